"""Mean squared displacement by region of the time origin: exact, FFT correlations.

For one atom with positions r(t), t = 0..F-1 (frames equally spaced), and an origin
weight c(t) in {0, 1} (1 when t is a time origin and the atom is in the region at t):

    S(tau) = sum_t c(t) |r(t+tau) - r(t)|^2 = A(tau) + B(tau) - 2 C(tau)
    A(tau) = sum_t c(t) q(t+tau),   q = |r|^2            (correlation: FFT)
    B(tau) = sum_{t <= F-1-tau} c(t) q(t)                 (cumulative sum)
    C(tau) = sum_t c(t) r(t) . r(t+tau)                   (correlation: FFT)
    N(tau) = sum_{t <= F-1-tau} c(t)                      (number of origins)

MSD(tau) = sum_atoms S / sum_atoms N: every origin and every lag, the same numbers as
the double loop, in O(F log F) per atom. Atoms are fed in chunks; a chunk costs about
BYTES_PER_ATOM_FRAME x F x m bytes, so the caller bounds memory by choosing m.
Sums are also kept per atom group (K groups) to estimate the error of D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

A2_PER_PS_TO_CM2_PER_S = 1e-4
BYTES_PER_ATOM_FRAME = 400  # rfft of r, c*r (complex, 3 dims, padded x2), q, c, temporaries


@dataclass
class MSDAccumulator:
    n_frames: int
    classes: tuple[str, ...]
    n_groups: int = 5
    S: dict[str, np.ndarray] = field(init=False)  # (F, K) summed squared displacements, Å²
    N: dict[str, np.ndarray] = field(init=False)  # (F, K) number of (atom, origin) pairs

    def __post_init__(self) -> None:
        shape = (self.n_frames, self.n_groups)
        self.S = {c: np.zeros(shape) for c in self.classes}
        self.N = {c: np.zeros(shape) for c in self.classes}
        self._nfft = sfft.next_fast_len(2 * self.n_frames, real=True)

    def add(self, r: np.ndarray, weights: dict[str, np.ndarray], group: np.ndarray) -> None:
        """r: (F, m, 3) unwrapped positions (Å); weights[class]: (F, m) origin weights
        in {0, 1}; group: (m,) group number of each atom."""
        F, n = self.n_frames, self._nfft
        r = r - r.mean(axis=0)  # displacements do not change; round-off does
        q = np.einsum("tmd,tmd->tm", r, r)
        fr = sfft.rfft(r, n, axis=0)
        fq = sfft.rfft(q, n, axis=0)
        onehot = np.zeros((r.shape[1], self.n_groups))
        onehot[np.arange(r.shape[1]), group] = 1.0
        for name, c in weights.items():
            c = c.astype(np.float64)
            fc = sfft.rfft(c, n, axis=0)
            fcr = sfft.rfft(c[..., None] * r, n, axis=0)
            spec = np.conj(fc) * fq - 2.0 * np.einsum("fmd,fmd->fm", np.conj(fcr), fr)
            a_minus_2c = sfft.irfft(spec @ onehot, n, axis=0)[:F]
            b = (np.cumsum(c * q, axis=0) @ onehot)[::-1]
            self.S[name] += a_minus_2c + b
            self.N[name] += (np.cumsum(c, axis=0) @ onehot)[::-1]

    def msd(self, name: str, group: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(MSD(tau) in Å², number of pairs) for lags 0..F-1; NaN where no pair."""
        s = self.S[name].sum(axis=1) if group is None else self.S[name][:, group]
        n = self.N[name].sum(axis=1) if group is None else self.N[name][:, group]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        out[0] = 0.0 if n[0] > 0 else np.nan
        return out, n


def fit_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    """Least-squares slope of y(x) with intercept, and its standard error (None if n < 3)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (y - y.mean())) / sxx
    if len(x) < 3:
        return slope, None
    resid = y - y.mean() - slope * xc
    return slope, float(np.sqrt(resid @ resid / (len(x) - 2) / sxx))


def _d_cm2_s(lags: np.ndarray, curve: np.ndarray, ok: np.ndarray) -> float:
    return fit_slope(lags[ok], curve[ok])[0] / 6 * A2_PER_PS_TO_CM2_PER_S


def fit_classes(acc: MSDAccumulator, lags: np.ndarray, fit: np.ndarray, n_groups: int):
    """D (cm²/s) of each start class by OLS on the fit window, its SE from the `n_groups`
    atom groups (each group fitted alone), and the MSD curves."""
    d_cm2, d_se, msd = {}, {}, {"lag_ps": lags}
    for name in acc.classes:
        curve, npairs = acc.msd(name)
        msd[name] = curve
        ok = fit & (npairs > 0)
        if ok.sum() < 2:
            d_cm2[name] = d_se[name] = None
            continue
        d_cm2[name] = _d_cm2_s(lags, curve, ok)
        per_group = []
        for g in range(n_groups):
            cg, ng = acc.msd(name, g)
            okg = fit & (ng > 0)
            if okg.sum() >= 2:
                per_group.append(_d_cm2_s(lags, cg, okg))
        d_se[name] = (
            float(np.std(per_group, ddof=1) / math.sqrt(len(per_group)))
            if len(per_group) == n_groups
            else None
        )
    return d_cm2, d_se, msd
