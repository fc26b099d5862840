"""Standard errors of the profile metrics by block averaging (one run), and across seeds.

The analysis window is cut into `n_blocks` consecutive blocks of frames; the Li profile
of each block gives each METRICS.md profile metric (checks.profile.profile_numbers, the
same definitions and GB planes as the whole-window values); the standard error of a
metric is std(block values, ddof=1) / sqrt(n_blocks). Blocks shorter than the
correlation time of the profile make this too small: the number of blocks is recorded
and the seeds of a sweep give the independent estimate (`across_seeds`).

Also: the mean Li density of the whole cell (`rho_cell`), the quantity a single-crystal
run of the same composition supplies for Γ against the crystal (checks.crystal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from checks.profile import PER_A2_TO_PER_NM2, profile_numbers

# results key -> profile_numbers key (index for per-GB lists)
METRICS: dict[str, tuple[str, int | None]] = {
    "rho_bulk_per_A3": ("rho_bulk", None),
    "rho_peak_per_A3": ("rho_peak", None),
    "peak_ratio": ("peak_ratio", None),
    "rho_band_per_A3": ("rho_band", None),
    "band_ratio": ("band_ratio", None),
    "gamma_per_nm2.per_gb.0": ("gammas", 0),
    "gamma_per_nm2.per_gb.1": ("gammas", 1),
    "gamma_per_nm2.mean": ("gammas", -1),
}


@dataclass
class BlockProfile:
    n_frames: int
    n_blocks: int
    n_bins: int
    counts: np.ndarray = field(init=False)  # (n_blocks, n_bins) Li summed over frames

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.n_blocks, self.n_bins))

    def block_of_frame(self) -> np.ndarray:
        return np.arange(self.n_frames) * self.n_blocks // self.n_frames

    def add(self, frac_z: np.ndarray) -> None:
        """frac_z: (F, m) fractional heights of the profile's Li in each frame's box."""
        b = np.minimum((np.mod(frac_z, 1.0) * self.n_bins).astype(np.int64), self.n_bins - 1)
        flat = self.block_of_frame()[:, None] * self.n_bins + b
        self.counts += np.bincount(flat.ravel(), minlength=self.counts.size).reshape(
            self.counts.shape
        )

    def section(self, lengths: np.ndarray, lo_z: np.ndarray, planes: list[float], w: float,
                d_bulk: float) -> dict:  # fmt: skip
        """Per-block profiles and metrics, and the block standard errors."""
        blk = self.block_of_frame()
        lz = float(lengths[:, 2].mean())
        zlo = float(lo_z.mean())
        dz = lz / self.n_bins
        z = zlo + (np.arange(self.n_bins) + 0.5) * dz
        rows, values = [], {k: [] for k in METRICS}
        for b in range(self.n_blocks):
            sel = blk == b
            area = float(lengths[sel, 0].mean() * lengths[sel, 1].mean())
            rho = self.counts[b] / sel.sum() / (area * dz)
            rows.append(rho)
            nums = profile_numbers(rho, z, lz, planes, w, d_bulk)
            for key, (name, i) in METRICS.items():
                v = nums[name]
                values[key].append(float(np.mean(v)) if i == -1 else (v if i is None else v[i]))
        rho_cell = [float(r.mean()) for r in rows]
        return {
            "method": "block averaging: std(ddof=1) of block values / sqrt(n_blocks)",
            "n_blocks": self.n_blocks,
            "frames_per_block": [int((blk == b).sum()) for b in range(self.n_blocks)],
            "rho_li_per_A3": [[float(x) for x in r] for r in rows],
            "values": values,
            "se": {k: sem(v) for k, v in values.items()},
            "rho_cell_per_A3": float(np.mean(rho_cell)),
            "rho_cell_se_per_A3": sem(rho_cell),
            "gamma_unit": f"Li/nm² ({PER_A2_TO_PER_NM2:g} per Å²)",
        }


def sem(values: list[float | None]) -> float | None:
    """std(ddof=1) / sqrt(n) of the non-null values; None with fewer than two."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if len(xs) < 2:
        return None
    return float(np.std(xs, ddof=1) / math.sqrt(len(xs)))
