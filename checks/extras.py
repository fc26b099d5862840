"""The results.json sections added for issue 12, in ONE place (to fold into the typed
results schema). METRICS.md keys keep their meaning; everything here is under new keys.

Top-level keys (null when their inputs are absent, never invented):
  diffusion_gls   D by GLS with the MSD covariance, per class of time origin (all,
                  gb_start, bulk_start) and component (xyz, xy in-plane, z normal):
                  D, SE, 95 % interval, intercept, log-log slope, flags (checks.diffusion);
                  `fit_lags_ps`; `msd_short_A2`: the MSD at a short lag per class
  hops            hop counts and rates by region of the anchor (checks.hops)
  profile_se      block standard errors of the profile metrics, per-block profiles and
                  the whole-cell mean density (checks.blocks)
  li_sites        24d/96h occupancies by region and site hops, with --li-sites
                  (checks.sites)
  reference_runs  Γ against a single-crystal density and the control-vs-boundary table,
                  written by the study's merge step when those runs exist (checks.crystal)
New `parameters` keys: temperature_K (the thermostat target, recorded for `bundle check`:
a temperature-specific reference refuses results made at another or an unstated
temperature), li_sites (sha256 of the file or null), site_A, hop_A, gls_max_lags,
short_lag_ps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np

from checks import diffusion, hops
from checks.blocks import BlockProfile
from checks.sites import Occupancy, load_sites

DIFFUSION_GLS = "diffusion_gls"
HOPS = "hops"
PROFILE_SE = "profile_se"
LI_SITES = "li_sites"
REFERENCE_RUNS = "reference_runs"
SECTIONS = (DIFFUSION_GLS, HOPS, PROFILE_SE, LI_SITES)  # written by `bundle analyze`
SHORT_LAG_PS = 1.0


# --- the shapes of the new sections (for the typed results schema) --------------------


class GlsFit(TypedDict, total=False):  # diffusion_gls.classes.<class>.<xyz|xy|z>
    D_cm2_s: float | None
    se_cm2_s: float
    ci95_cm2_s: list[float]  # [lo, hi], flat prior D >= 0
    intercept_A2: float
    intercept_se_A2: float
    loglog_slope: float | None
    loglog_slope_se: float | None
    msd_end_A2: float
    kappa: float  # non-Gaussian scale of the covariance
    n_lags: int
    ols: dict  # D_cm2_s, se_naive_cm2_s, se_model_cm2_s (same lags)
    flags: list[str]
    usable: bool


class HopRegion(TypedDict):  # hops.regions.<gb|bulk|other>
    hops: int
    li_ps: float
    rate_per_li_ps: float | None
    rate_ci95_per_li_ps: list[float] | None
    mean_hop_length_A: float | None
    D_jump_cm2_s: float | None


class ProfileSe(TypedDict):  # profile_se
    method: str
    n_blocks: int
    frames_per_block: list[int]
    rho_li_per_A3: list[list[float]]  # per block
    values: dict[str, list[float]]  # per METRICS key (checks.blocks.METRICS), per block
    se: dict[str, float | None]
    rho_cell_per_A3: float
    rho_cell_se_per_A3: float | None
    gamma_unit: str


class SiteRegion(TypedDict):  # li_sites.regions.<all|boundary|between|interior>
    occupancy: dict[str, float | None]  # per label (24d, 96h)
    n_sites: dict[str, int]


@dataclass(frozen=True)
class ExtraParams:
    w: float
    w_start: float
    d_bulk: float
    n_blocks: int
    include_excess: bool
    temperature_K: float | None = None
    li_sites: Path | None = None
    site_A: float = 1.0
    hop_A: float = hops.HOP_A
    gls_max_lags: int = diffusion.MAX_LAGS
    short_lag_ps: float = SHORT_LAG_PS

    def validate(self) -> None:
        """Bad inputs fail before the pass over the trajectory."""
        if self.li_sites is not None:
            load_sites(self.li_sites)

    def parameters(self) -> dict:
        """The new keys of results.json `parameters`."""
        sites = load_sites(self.li_sites).sha256 if self.li_sites else None
        return {
            "temperature_K": self.temperature_K,
            "li_sites": sites,
            "site_A": self.site_A,
            "hop_A": self.hop_A,
            "gls_max_lags": self.gls_max_lags,
            "short_lag_ps": self.short_lag_ps,
        }


@dataclass
class Extras:
    """Accumulators fed by the atom-chunk pass of checks.metrics (same read as the MSD)."""

    p: ExtraParams
    times_ps: np.ndarray
    lo: np.ndarray  # (F, 3)
    lengths: np.ndarray  # (F, 3)
    planes: list[float]
    frac_planes: list[float]
    n_bins: int
    dt: float = field(init=False, default=0.0)
    moments: diffusion.LagMoments | None = field(init=False, default=None)
    hop_counter: hops.HopCounter | None = field(init=False, default=None)
    blocks: BlockProfile | None = field(init=False, default=None)
    occupancy: Occupancy | None = field(init=False, default=None)
    msd: dict | None = field(init=False, default=None)

    def start(self, fit_frames: tuple[int, int], classes: tuple[str, ...], n_chunks: int):
        """Called once the fit window (lags in frames) and the chunking are known."""
        n = len(self.times_ps)
        self.dt = float(self.times_ps[1] - self.times_ps[0])
        lags = diffusion.fit_lags(n, *fit_frames, self.p.gls_max_lags)
        self.moments = diffusion.LagMoments(n, lags, classes)
        block = hops.block_frames(n, self.dt, n_chunks)
        self.hop_counter = hops.HopCounter(n, self.dt, block, self.p.hop_A)
        if not self.p.include_excess and self.p.n_blocks <= n:
            self.blocks = BlockProfile(n, self.p.n_blocks, self.n_bins)
        if self.p.li_sites is not None:
            self.occupancy = Occupancy(
                load_sites(self.p.li_sites), self.lengths[0], self.lo[0], self.frac_planes,
                self.p.w, self.p.d_bulk, self.p.site_A,
            )  # fmt: skip

    def add(self, r: np.ndarray, frac_z: np.ndarray, dmin: np.ndarray, weights: dict) -> None:
        """One atom chunk: r (F, m, 3) unwrapped, frac_z (F, m), dmin (F, m) to the planes."""
        self.moments.add(r, weights)
        self.hop_counter.add(r, hops.region_codes(dmin, self.p.w_start, self.p.d_bulk))
        if self.blocks is not None:
            self.blocks.add(frac_z)
        if self.occupancy is not None:
            self.occupancy.add((r - self.lo[:, None, :]) / self.lengths[:, None, :])

    def finish(self, msd: dict) -> None:
        """msd: the FFT MSD curves of checks.metrics (lag_ps and one curve per class)."""
        self.msd = msd

    def sections(self) -> dict:
        if self.moments is None:
            return {k: None for k in SECTIONS}
        return {
            DIFFUSION_GLS: self._gls(),
            HOPS: self.hop_counter.section(),
            PROFILE_SE: self._blocks(),
            LI_SITES: self.occupancy.section(len(self.times_ps)) if self.occupancy else None,
        }

    def _gls(self) -> dict:
        k = max(1, round(self.p.short_lag_ps / self.dt))
        short = None
        if k < len(self.msd["lag_ps"]):
            short = {name: _num(self.msd[name][k]) for name in self.moments.classes}
            short["lag_ps"] = float(self.msd["lag_ps"][k])
        return {
            "method": "GLS with the random-walk MSD covariance (checks.diffusion); interval: "
            "equal-tailed 95 % credible, flat prior on D >= 0",
            "fit_lags_ps": [float(x) for x in self.moments.lags * self.dt],
            "alpha_tolerance": diffusion.ALPHA_TOL,
            "msd_min_A2": diffusion.MSD_MIN_A2,
            "classes": diffusion.section(self.moments, self.dt),
            "msd_short_A2": short,
        }

    def _blocks(self) -> dict | None:
        if self.blocks is None:
            return None
        return self.blocks.section(
            self.lengths, self.lo[:, 2], self.planes, self.p.w, self.p.d_bulk
        )


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
