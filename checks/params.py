"""The analysis parameters of `bundle analyze`, and their validation at the boundary.

Two stages, each with one-line errors naming the option and the fix:
- `Params.validate()`: what the numbers alone must satisfy (finite, positive, ordered);
- `check_geometry(...)`: what they must satisfy against the box and the GB planes, once the
  trajectory's first frames are known (a band wider than a quarter of the box, two planes
  at one height, a plane outside the box, bins too coarse for a bulk region, ...).
`check_box(...)` refuses a box that is not one simulation cell through the trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core.errors import InputError
from checks.extras import ExtraParams
from checks.profile import CLI, EPS_A

MAX_BOX_CHANGE = 0.10  # relative change of a box length over the trajectory (NPT: < 1 %)
MIN_BINS = 4  # a profile with two planes and two bulk regions needs at least this many
MAX_BINS = 1_000_000  # 8 MB of histogram; 0.5 Å bins of a 500 µm box


@dataclass(frozen=True)
class Params:
    """Analysis parameters; lengths in Å, times in ps (timestep in fs)."""

    timestep_fs: float
    dz: float = 0.5
    w: float = 2.0
    d_bulk: float = 8.0
    window_ps: tuple[float, float] | None = None  # analysis window; None = all frames
    avg_window_ps: float = 50.0  # excess-Li averaging window: the last ... ps
    n_blocks: int = 5
    gb: tuple[float, float] | None = None  # GB planes; None = from the Li profile
    w_start: float | None = None  # MSD "GB start" half-width; None = w
    origin_every: int = 1  # MSD time-origin spacing, frames
    fit_window_ps: tuple[float, float] | None = None  # MSD fit; None = 10 %..50 % of max lag
    include_excess: bool = False  # count excess Li in the profile
    drop_incomplete_frame: bool = False
    temperature_K: float | None = None  # thermostat target, recorded (checks.extras)
    li_sites: Path | None = None  # candidate Li sites for occupancies (checks.sites)
    site_A: float = 1.0  # site assignment radius
    hop_A: float = 1.5  # hop distance (checks.hops)

    def extra(self) -> ExtraParams:
        w_start = self.w_start if self.w_start is not None else self.w
        return ExtraParams(self.w, w_start, self.d_bulk, self.n_blocks, self.include_excess,
                           self.temperature_K, self.li_sites, self.site_A, self.hop_A)  # fmt: skip

    def validate(self) -> None:
        positive = {
            "--timestep-fs": self.timestep_fs,
            "--dz": self.dz,
            "--w": self.w,
            "--d-bulk": self.d_bulk,
            "--avg-window-ps": self.avg_window_ps,
        }
        if self.w_start is not None:
            positive["--w-start"] = self.w_start
        if self.temperature_K is not None:
            positive["--temperature-K"] = self.temperature_K
        positive |= {"--site-A": self.site_A, "--hop-A": self.hop_A}
        for flag, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise InputError(CLI, flag, f"must be a positive number (got {value})")
        if self.n_blocks < 2:
            raise InputError(CLI, "--n-blocks", f"must be >= 2 (got {self.n_blocks})")
        if self.origin_every < 1:
            raise InputError(CLI, "--origin-every", f"must be >= 1 (got {self.origin_every})")
        for flag, pair in (
            ("--window-ps", self.window_ps),
            ("--fit-window-ps", self.fit_window_ps),
            ("--gb", self.gb),
        ):
            if pair is not None and not all(math.isfinite(x) for x in pair):
                raise InputError(CLI, flag, f"must be finite numbers (got {pair[0]},{pair[1]})")
        for flag, win in (("--window-ps", self.window_ps), ("--fit-window-ps", self.fit_window_ps)):
            if win is not None and not (win[0] < win[1]):
                raise InputError(CLI, flag, f"start must be before end (got {win[0]},{win[1]})")
        self.extra().validate()


def n_bins(p: Params, lz: float) -> int:
    """round(Lz / dz) profile bins, refused below MIN_BINS or above MAX_BINS."""
    n = round(lz / p.dz)
    if not MIN_BINS <= n <= MAX_BINS:
        bound = f"<= {lz / MIN_BINS:.3f}" if n < MIN_BINS else f">= {lz / MAX_BINS:.3g}"
        raise InputError(
            CLI,
            "--dz",
            f"{p.dz:g} Å makes {n} bins of Lz = {lz:.3f} Å (from {MIN_BINS} to {MAX_BINS})",
            f"use --dz {bound} (the default is 0.5)",
        )
    return n


def check_box(lengths: np.ndarray, first: np.ndarray, where: str, what: str) -> None:
    """A frame's box lengths against the first analysed frame's: the same cell (NPT
    fluctuations allowed, up to MAX_BOX_CHANGE per axis)."""
    change = np.abs(lengths / first - 1.0)
    if (change > MAX_BOX_CHANGE).any():
        ax = int(np.argmax(change))
        raise InputError(
            where,
            what,
            f"the box length along {'xyz'[ax]} changes from {first[ax]:.4g} to "
            f"{lengths[ax]:.4g} Å (more than {MAX_BOX_CHANGE:.0%}): not one simulation cell",
            "analyse one run (split the dumps, or choose frames with --window-ps)",
        )


def _dist(a: float, b: float, lz: float) -> float:
    return abs((a - b + 0.5 * lz) % lz - 0.5 * lz)


def check_planes(p: Params, zlo: float, lz: float) -> None:
    """--gb planes: inside the (frame-averaged) box and apart."""
    if p.gb is None:
        return
    for g in p.gb:
        if not (zlo - EPS_A <= g <= zlo + lz + EPS_A):
            raise InputError(
                CLI,
                "--gb",
                f"plane {g:g} Å is outside the box (z from {zlo:.3f} to {zlo + lz:.3f} Å)",
                f"give heights inside the box (the periodic image of {g:g} is "
                f"{zlo + (g - zlo) % lz:.3f})",
            )
    if _dist(p.gb[0], p.gb[1], lz) <= 2 * EPS_A:
        raise InputError(
            CLI,
            "--gb",
            f"the two planes are at the same height ({p.gb[0]:g}, {p.gb[1]:g} Å)",
            "give the two GB planes of the bicrystal (about Lz/2 apart)",
        )


def check_geometry(p: Params, planes: list[float], lz: float, centres: np.ndarray) -> None:
    """Bands, bulk region and bins against the box and the planes; `centres`: bin centres."""
    d01 = _dist(planes[0], planes[1], lz)
    gb = " or move the --gb planes apart" if p.gb is not None else ""
    dz = lz / len(centres)
    if 2 * p.w >= d01 - EPS_A:
        raise InputError(
            CLI,
            "--w",
            f"bands of ±{p.w:g} Å around planes {d01:.3f} Å apart overlap (Lz = {lz:.3f} Å): "
            "excess Li would be counted twice and the bulk count go negative",
            f"use --w below {d01 / 2:.3f}{gb}",
        )
    reach = max(d01, lz - d01) / 2  # the farthest any height gets from both planes
    if p.d_bulk > reach + EPS_A:
        raise InputError(
            CLI,
            "--d-bulk",
            f"no height is {p.d_bulk:g} Å from both GB planes {planes[0]:.2f}, {planes[1]:.2f} "
            f"(Lz = {lz:.2f} Å)",
            f"use --d-bulk <= {reach:.2f}{gb}",
        )
    d = [np.abs((centres - zk + 0.5 * lz) % lz - 0.5 * lz) for zk in planes]
    if not ((d[0] >= p.d_bulk - EPS_A) & (d[1] >= p.d_bulk - EPS_A)).any():
        best = float(np.minimum(d[0], d[1]).max())
        raise InputError(
            CLI,
            "--dz",
            f"bins of {dz:.3f} Å are too coarse: no bin centre is {p.d_bulk:g} Å (--d-bulk) "
            "from both planes",
            f"use a smaller --dz, or --d-bulk <= {best:.3f}",
        )
    if not ((d[0] <= p.w + EPS_A) | (d[1] <= p.w + EPS_A)).any():
        raise InputError(
            CLI,
            "--w",
            f"no bin centre within w = {p.w:g} Å of a GB plane (bins of {dz:.3f} Å)",
            f"use --w >= {dz / 2:.3f} (half the bin width) or a smaller --dz",
        )
