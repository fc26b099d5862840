"""Hop counts: what to report where the MSD is too small to fit a diffusion coefficient.

A Li that rattles in its cage and escapes once in 20 ps has an MSD of a fraction of an
Å²: a line through it is not a diffusion coefficient (checks.diffusion flags it). What
is measurable is how often Li leave the place they sit, with a counting error.

Definition (stated, not tuned): positions are averaged over consecutive blocks of
`block` frames (default BLOCK_PS of trajectory; the average removes the thermal
rattling, whose single-frame amplitude at 700 K is ~0.3 Å per axis). Each atom keeps an
anchor, its first block-mean position; a hop is counted when the block-mean position is
more than `r_hop` (default HOP_A = 1.5 Å, just under the shortest Li site-to-site
distance of the garnet that is not a split-pair partner: 24d-96h, 1.55 Å; the two halves
of a split 96h pair are 0.89 Å apart and are not a hop) from the anchor, and the anchor
moves there. A hop is attributed to the region of its anchor (GB band: within w_start of
a plane; bulk: at least d_bulk from both; other), and the time at risk of a region is
the atom-time spent anchored in it.

Rate = hops / time at risk (per Li per ps), with the exact 95 % Poisson (Garwood)
interval: zero hops gives an upper bound, not zero. `D_jump` = rate <l^2> / 6 is the
random-walk estimate from the hops (uncorrelated jumps; back-and-forth hopping makes it
an upper bound of the long-time D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

HOP_A = 1.5  # Å
BLOCK_PS = 0.4  # ps of trajectory averaged per block
REGIONS = ("gb", "bulk", "other")
MAX_STEPS = 2_000_000  # block steps x atom chunks: above this, blocks are made longer
A2_PER_PS_TO_CM2_PER_S = 1e-4


def block_frames(n_frames: int, dt_ps: float, n_chunks: int = 1) -> int:
    """Frames per block: BLOCK_PS of trajectory, longer when the sequential pass over
    blocks would exceed MAX_STEPS (very long trajectories)."""
    b = max(1, round(BLOCK_PS / dt_ps))
    return max(b, math.ceil(n_frames * n_chunks / MAX_STEPS))


def region_codes(dmin: np.ndarray, w_start: float, d_bulk: float, eps: float = 1e-9):
    """0 GB band, 1 bulk, 2 other, from the distance to the nearest GB plane (Å)."""
    return np.where(dmin <= w_start + eps, 0, np.where(dmin >= d_bulk - eps, 1, 2))


@dataclass
class HopCounter:
    n_frames: int
    dt_ps: float
    block: int
    r_hop: float = HOP_A
    hops: np.ndarray = field(init=False)  # (3,) by region of the anchor
    at_risk: np.ndarray = field(init=False)  # (3,) atom-blocks anchored in each region
    sq_len: np.ndarray = field(init=False)  # (3,) sum of squared hop lengths, Å²
    n_atoms: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.hops = np.zeros(len(REGIONS), dtype=np.int64)
        self.at_risk = np.zeros(len(REGIONS))
        self.sq_len = np.zeros(len(REGIONS))

    def add(self, r: np.ndarray, codes: np.ndarray) -> None:
        """r: (F, m, 3) unwrapped positions (Å); codes: (F, m) region code per frame."""
        n_blocks = self.n_frames // self.block
        m = r.shape[1]
        self.n_atoms += m
        if n_blocks < 2:
            return
        used = n_blocks * self.block
        pos = r[:used].reshape(n_blocks, self.block, m, 3).mean(axis=1)
        code = codes[self.block // 2 : used : self.block][:n_blocks]
        anchor, where = pos[0].copy(), code[0].copy()
        n = len(REGIONS)
        for j in range(1, n_blocks):
            self.at_risk += np.bincount(where, minlength=n)
            d2 = ((pos[j] - anchor) ** 2).sum(axis=1)
            moved = d2 > self.r_hop**2
            if moved.any():
                self.hops += np.bincount(where[moved], minlength=n)
                self.sq_len += np.bincount(where[moved], weights=d2[moved], minlength=n)
                anchor[moved] = pos[j][moved]
                where[moved] = code[j][moved]

    def section(self) -> dict:
        """Per region: hops, Li-ps at risk, rate with its 95 % interval, mean hop length
        and the jump estimate of D; plus the definition's parameters."""
        tblock = self.block * self.dt_ps
        out = {"r_hop_A": self.r_hop, "block_ps": tblock, "n_li": self.n_atoms, "regions": {}}
        for i, name in enumerate(REGIONS):
            k, t = int(self.hops[i]), float(self.at_risk[i] * tblock)
            lo, hi = poisson_interval(k)
            rate = k / t if t > 0 else None
            l2 = float(self.sq_len[i] / k) if k else None
            d_jump = rate * l2 / 6 * A2_PER_PS_TO_CM2_PER_S if k and rate else None
            out["regions"][name] = {
                "hops": k,
                "li_ps": t,
                "rate_per_li_ps": rate,
                "rate_ci95_per_li_ps": [lo / t, hi / t] if t > 0 else None,
                "mean_hop_length_A": math.sqrt(l2) if l2 else None,
                "D_jump_cm2_s": d_jump,
            }
        return out


def poisson_interval(k: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from k counts."""
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(stats.chi2.ppf(a / 2, 2 * k) / 2)
    return lo, float(stats.chi2.ppf(1 - a / 2, 2 * k + 2) / 2)
