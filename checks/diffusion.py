"""D from the MSD with an honest uncertainty: generalised least squares with the MSD covariance.

Why: the MSD at neighbouring lags is computed from the same displacements, so its points
are strongly correlated and their variance grows with the lag. An ordinary least-squares
line through them gives a fair slope but a standard error that is too small (the residuals
look smooth because they are correlated). The approach of kinisi (A. R. McCluskey,
S. W. Coles, B. J. Morgan, "Accurate estimation of diffusion coefficients and their
uncertainties from computer simulation", J. Chem. Theory Comput. 2024) is to model the
covariance of the MSD of a random walk and fit a straight line by generalised least
squares (GLS) with it; the posterior of the slope under a flat prior (D >= 0) is then
the interval. This module does the same with its own covariance model (written here):

- The walk: each atom's position per Cartesian component is x(t) = w(t) + e(t), w a
  random walk with variance 2 D dt per frame and e white noise of variance s_e^2 (the
  rattling in a cage, seen at the dump interval as uncorrelated). Then
  MSD_d(tau) = 2 d D tau + b with b = 2 d s_e^2 for d components.
- For lags k, l (frames) and time origins t, t + delta of one atom, the per-component
  covariance of the two displacements is
      C = 2 D dt * overlap(k, l, delta) + s_e^2 ([delta = 0] + [delta + l = k]
                                                 - [delta = k] - [delta + l = 0]),
  and for Gaussian displacements cov(|u|^2, |v|^2) = 2 d C^2. Summing over the pairs of
  origins each lag uses (every origin, overlapping windows included; origins weighted
  by region membership through their autocorrelation) and dividing by the numbers of
  pairs gives cov(MSD_k, MSD_l) exactly for that model, atoms independent.
- Non-Gaussian motion (hops) makes |u|^2 more variable than the Gaussian 2/d MSD^2.
  The observed ratio kappa_k = var(|u|^2) / (2/d MSD_k^2) is averaged over the fit lags
  and scales the whole covariance (one factor, as kinisi fits one scale to the observed
  variances): the GLS line is unchanged, its standard error grows by sqrt(kappa).
  A per-lag kappa was tried and rejected: its noise, fed into a nearly singular
  covariance, made the interval cover the true D in only 80 % of random walks.
- The covariance depends on D and b, so the fit is iterated (feasible GLS: start from
  OLS, rebuild the covariance from the fit, refit) until the slope changes < 1e-5 (relative).

The fit uses at most MAX_LAGS lags spread evenly over the fit window (the MSD at
adjacent lags carries almost the same information, and fewer points keep the covariance
well conditioned); the MSD at those lags is accumulated directly (with its second
moment, for kappa) in the same pass over atom chunks as the FFT MSD of checks.msd, with
separate in-plane (xy) and normal (z) components.

Diffusive check: the log-log slope alpha = d ln MSD / d ln tau over the fit window (OLS
on the logs; its standard error from the propagated covariance) must be within
ALPHA_TOL of 1; a window whose
MSD stays below MSD_MIN_A2 measures rattling and rare events, not diffusion. Both are
flagged, never hidden; `checks.hops` counts what happens there instead.

Validated against synthetic random walks with known D (tests/test_diffusion_gls.py,
tests/bench/bench_gls.py): coverage of the 95 % interval and agreement with OLS.
Atoms are treated as independent: collective (Li-Li correlated) motion is not in the
model; the per-group D spread of checks.metrics stays the cross-check for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from scipy import linalg, stats

MAX_LAGS = 32
ALPHA_TOL = 0.15  # |alpha - 1| above this: the window is not diffusive
MSD_MIN_A2 = 1.0  # below this at the end of the window: too small to fit
LEVEL = 0.95
A2_PER_PS_TO_CM2_PER_S = 1e-4
# component name -> (axes, dimensionality)
COMPONENTS: dict[str, tuple[tuple[int, ...], int]] = {
    "xyz": ((0, 1, 2), 3),
    "xy": ((0, 1), 2),
    "z": ((2,), 1),
}


def fit_lags(n_frames: int, k0: int, k1: int, max_lags: int = MAX_LAGS) -> np.ndarray:
    """At most `max_lags` distinct lags (frames) spread evenly over [k0, k1], k >= 1."""
    k0, k1 = max(1, int(k0)), min(int(k1), n_frames - 1)
    if k1 < k0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(k0, k1, min(max_lags, k1 - k0 + 1))).astype(np.int64))


@dataclass
class LagMoments:
    """Sums over (atom, origin) pairs at chosen lags, per class of time origin:
    N[k] pairs, S1[k, c] = sum |u_c|^2 and S2[k, c] = sum |u_c|^4 per component c, and
    the autocorrelation of the origin weights (for the covariance model)."""

    n_frames: int
    lags: np.ndarray
    classes: tuple[str, ...]
    N: dict[str, np.ndarray] = field(init=False)
    S1: dict[str, np.ndarray] = field(init=False)
    S2: dict[str, np.ndarray] = field(init=False)
    auto: dict[str, np.ndarray] = field(init=False)  # sum_atoms sum_t c(t) c(t + delta)

    def __post_init__(self) -> None:
        n_l, n_c = len(self.lags), len(COMPONENTS)
        self.N = {c: np.zeros(n_l) for c in self.classes}
        self.S1 = {c: np.zeros((n_l, n_c)) for c in self.classes}
        self.S2 = {c: np.zeros((n_l, n_c)) for c in self.classes}
        self.auto = {c: np.zeros(self.n_frames) for c in self.classes}
        self._nfft = sfft.next_fast_len(2 * self.n_frames, real=True)

    def add(self, r: np.ndarray, weights: dict[str, np.ndarray]) -> None:
        """r: (F, m, 3) unwrapped positions (Å); weights[class]: (F, m) origin weights."""
        F = self.n_frames
        for name, c in weights.items():
            fc = sfft.rfft(np.asarray(c, dtype=np.float64), self._nfft, axis=0)
            self.auto[name] += sfft.irfft((fc * np.conj(fc)).real.sum(axis=1), self._nfft)[:F]
        for i, k in enumerate(self.lags):
            sq = (r[k:] - r[: F - k]) ** 2  # (F - k, m, 3)
            parts = np.stack([sq.sum(axis=2), sq[..., 0] + sq[..., 1], sq[..., 2]], axis=-1)
            for name, c in weights.items():
                cw = np.asarray(c[: F - k], dtype=np.float64)
                self.N[name][i] += cw.sum()
                self.S1[name][i] += np.einsum("tm,tmc->c", cw, parts)
                self.S2[name][i] += np.einsum("tm,tmc->c", cw, parts * parts)

    def curve(self, name: str, comp: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(MSD_k of the component in Å², pairs N_k, kappa_k); NaN where no pair."""
        j = list(COMPONENTS).index(comp)
        d = COMPONENTS[comp][1]
        n = self.N[name]
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.S1[name][:, j] / n
            var = self.S2[name][:, j] / n - m * m
            kappa = var / (2.0 / d * m * m)
        return m, n, kappa

    def origin_density(self, name: str) -> np.ndarray:
        """rho(delta): sum over atoms of the mean of c(t) c(t + delta) over t (delta >= 0)."""
        return self.auto[name] / (self.n_frames - np.arange(self.n_frames))


def covariance_basis(lags: np.ndarray, n_frames: int, rho: np.ndarray) -> np.ndarray:
    """(3, L, L): the sums over origin pairs of overlap^2, overlap * noise and noise^2
    (module doc), so that for any walk and noise variance the MSD covariance is a
    weighted sum of three fixed matrices (msd_covariance). rho: origin density by
    separation (LagMoments.origin_density)."""
    lags = np.asarray(lags, dtype=np.int64)
    kk, ll = lags[:, None, None], lags[None, :, None]
    dd = np.arange(-int(lags.max()), int(lags.max()) + 1)[None, None, :]  # origin separation
    ov = np.clip(np.minimum(kk, dd + ll) - np.maximum(0, dd), 0, None).astype(float)
    nz = (dd == 0) * 1.0 + (dd + ll == kk) - (dd == kk) - (dd + ll == 0)
    # number of origins t with t <= F-1-k and t + delta in [0, F-1-l]
    n_t = np.minimum(n_frames - 1 - kk, n_frames - 1 - ll - dd) - np.maximum(0, -dd) + 1
    w = rho[np.abs(dd)] * np.clip(n_t, 0, None)
    return np.stack([np.einsum("kld,kld->kl", w * ov, ov), np.einsum("kld,kld->kl", w * ov, nz),
                     np.einsum("kld,kld->kl", w * nz, nz)])  # fmt: skip


def msd_covariance(
    basis: np.ndarray,
    n_pairs: np.ndarray,
    step_var: float,
    noise_var: float,
    d: int,
    kappa: float = 1.0,
) -> np.ndarray:
    """cov(MSD_k, MSD_l) (Å^4) of the random-walk + white-noise model (module doc).

    step_var: per-component variance of a one-frame step of the walk (2 D dt, Å²);
    noise_var: per-component white-noise variance s_e^2 (Å²); n_pairs: (atom, origin)
    pairs at each lag; kappa: the non-Gaussian scale."""
    a, b, c = basis
    s = step_var * step_var * a + 2.0 * step_var * noise_var * b + noise_var * noise_var * c
    return kappa * 2.0 * d * s / np.outer(n_pairs, n_pairs)


def gls(x: np.ndarray, y: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight line y = a x + b by GLS: ([a, b], their covariance)."""
    X = np.column_stack([x, np.ones_like(x)])
    scale = float(np.mean(np.diag(cov)))
    cov = cov / scale + 1e-12 * np.eye(len(x))  # scaled and minimally regularised
    cf = linalg.cho_factor(cov, lower=True)
    xtw = linalg.cho_solve(cf, X).T  # X^T C^-1
    prec = xtw @ X
    beta = np.linalg.solve(prec, xtw @ y)
    return beta, np.linalg.inv(prec) * scale


def ols(x: np.ndarray, y: np.ndarray, cov: np.ndarray) -> dict:
    """OLS slope, its naive (residual) standard error, and its standard error under the
    MSD covariance (sandwich): the comparison that shows what OLS understates."""
    X = np.column_stack([x, np.ones_like(x)])
    xtx_inv = np.linalg.inv(X.T @ X)
    beta = xtx_inv @ X.T @ y
    resid = y - X @ beta
    dof = max(1, len(x) - 2)
    naive = float(np.sqrt(resid @ resid / dof * xtx_inv[0, 0]))
    sandwich = xtx_inv @ X.T @ cov @ X @ xtx_inv
    return {"slope": float(beta[0]), "se_naive": naive, "se_model": float(np.sqrt(sandwich[0, 0]))}


def positive_interval(mean: float, se: float, level: float = LEVEL) -> tuple[float, float]:
    """Equal-tailed interval of N(mean, se^2) truncated to >= 0 (flat prior on D >= 0)."""
    if not se > 0:
        return max(mean, 0.0), max(mean, 0.0)
    p0 = stats.norm.cdf(-mean / se)
    q = p0 + np.array([(1 - level) / 2, (1 + level) / 2]) * (1 - p0)
    lo, hi = mean + se * stats.norm.ppf(np.clip(q, 0, 1 - 1e-16))
    return max(float(lo), 0.0), float(hi)


@dataclass(frozen=True)
class Curve:
    """The MSD of one class and component at the fit lags, with what the model needs."""

    tau_ps: np.ndarray
    lags: np.ndarray
    msd: np.ndarray
    n_pairs: np.ndarray
    kappa: np.ndarray
    basis: np.ndarray  # covariance_basis of the lags
    dt_ps: float
    d: int


def fit_curve(cv: Curve, max_iter: int = 20) -> dict:
    """Feasible GLS of MSD = 2 d D tau + b: D (cm²/s), its SE and 95 % interval, the
    intercept, the log-log slope, the OLS comparison and the flags (module doc)."""
    ok = np.isfinite(cv.msd) & (cv.n_pairs > 0)
    if ok.sum() < 3:
        return {"D_cm2_s": None, "flags": ["fewer than 3 lags with data"]}
    x, y = cv.tau_ps[ok], cv.msd[ok]
    finite = np.isfinite(cv.kappa[ok])
    kappa = float(np.mean(cv.kappa[ok][finite])) if finite.any() else 1.0
    beta = np.polyfit(x, y, 1)
    for _ in range(max_iter):
        new, _ = gls(x, y, _model_cov(cv, ok, beta, kappa))
        done = abs(new[0] - beta[0]) <= 1e-5 * max(abs(new[0]), 1e-12)
        beta = new
        if done:
            break
    cov = _model_cov(cv, ok, beta, kappa)
    beta, pcov = gls(x, y, cov)
    to_d = A2_PER_PS_TO_CM2_PER_S / (2 * cv.d)
    se = float(np.sqrt(pcov[0, 0]))
    lo, hi = positive_interval(float(beta[0]), se)
    alpha, alpha_se = loglog_slope(x, y, cov, beta[0] * x + beta[1])
    flags = []
    if alpha is None or abs(alpha - 1.0) > ALPHA_TOL:
        flags.append(f"not diffusive: log-log slope {_g(alpha)} outside 1 +- {ALPHA_TOL}")
    if y[-1] < MSD_MIN_A2:
        flags.append(f"MSD {y[-1]:.3g} A^2 < {MSD_MIN_A2} A^2 at the end of the window")
    o = ols(x, y, cov)
    return {
        "D_cm2_s": float(beta[0]) * to_d,
        "se_cm2_s": se * to_d,
        "ci95_cm2_s": [lo * to_d, hi * to_d],
        "intercept_A2": float(beta[1]),
        "intercept_se_A2": float(np.sqrt(pcov[1, 1])),
        "loglog_slope": alpha,
        "loglog_slope_se": alpha_se,
        "msd_end_A2": float(y[-1]),
        "kappa": kappa,
        "n_lags": int(ok.sum()),
        "ols": {
            "D_cm2_s": o["slope"] * to_d,
            "se_naive_cm2_s": o["se_naive"] * to_d,
            "se_model_cm2_s": o["se_model"] * to_d,
        },  # fmt: skip
        "flags": flags,
        "usable": not flags,
    }


def _model_cov(cv: Curve, ok: np.ndarray, beta: np.ndarray, kappa: float) -> np.ndarray:
    step_var = max(float(beta[0]), 1e-12) / cv.d * cv.dt_ps
    noise_var = max(float(beta[1]), 0.0) / (2 * cv.d)
    basis = cv.basis[:, ok][:, :, ok]
    return msd_covariance(basis, cv.n_pairs[ok], step_var, noise_var, cv.d, kappa)


def loglog_slope(x: np.ndarray, y: np.ndarray, cov: np.ndarray, model: np.ndarray):
    """(alpha, se) of d ln MSD / d ln tau: OLS on the logs, its standard error from the
    MSD covariance propagated to the logs at the fitted line `model` (first order)."""
    if (y <= 0).any() or (x <= 0).any() or (model <= 0).any():
        return None, None
    o = ols(np.log(x), np.log(y), cov / np.outer(model, model))
    return o["slope"], o["se_model"]


def _g(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def section(mom: LagMoments, dt_ps: float) -> dict:
    """The `diffusion_gls` block: per class and component, fit_curve's numbers."""
    tau = mom.lags * dt_ps
    out: dict[str, dict] = {}
    for name in mom.classes:
        basis = covariance_basis(mom.lags, mom.n_frames, mom.origin_density(name))
        out[name] = {}
        for comp, (_, d) in COMPONENTS.items():
            msd, n, kappa = mom.curve(name, comp)
            cv = Curve(tau, mom.lags, msd, n, kappa, basis, dt_ps, d)
            out[name][comp] = fit_curve(cv)
    return out


# --- validation on synthetic random walks (tests, bench) ----------------------------


def random_walk(
    rng: np.random.Generator, n_frames: int, n_atoms: int, d_a2_ps: float, dt_ps: float,
    noise_A: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """(F, N, 3) positions of independent Gaussian walkers with D (Å²/ps) per component
    variance 2 D dt per frame, plus white noise of standard deviation noise_A per axis."""
    steps = rng.normal(scale=np.sqrt(2 * d_a2_ps * dt_ps), size=(n_frames, n_atoms, 3))
    r = np.cumsum(steps, axis=0)
    return r + rng.normal(scale=noise_A, size=r.shape) if noise_A else r


def coverage(
    rng: np.random.Generator, n_rep: int, n_frames: int, n_atoms: int, d_a2_ps: float,
    dt_ps: float = 0.2, noise_A: float = 0.0, half_origins: bool = False,
) -> dict:  # fmt: skip
    """Fraction of replicas whose 95 % interval holds the true D, per component, for GLS
    and for OLS with its naive standard error (fit window 10-50 % of the longest lag;
    `half_origins`: origins only where sin(z / 3 Å) > 0, a region-like selection)."""
    lags = fit_lags(n_frames, round(0.1 * (n_frames - 1)), round(0.5 * (n_frames - 1)))
    hits = {c: 0 for c in COMPONENTS} | {"ols_naive": 0}
    z = []
    for _ in range(n_rep):
        r = random_walk(rng, n_frames, n_atoms, d_a2_ps, dt_ps, noise_A)
        c = (np.sin(r[..., 2] / 3.0) > 0) if half_origins else np.ones(r.shape[:2])
        mom = LagMoments(n_frames, lags, ("all",))
        mom.add(r, {"all": c})
        fits = section(mom, dt_ps)["all"]
        true = d_a2_ps * A2_PER_PS_TO_CM2_PER_S
        for comp, f in fits.items():
            hits[comp] += f["ci95_cm2_s"][0] <= true <= f["ci95_cm2_s"][1]
        o = fits["xyz"]["ols"]
        hits["ols_naive"] += abs(o["D_cm2_s"] - true) <= 1.96 * o["se_naive_cm2_s"]
        z.append((fits["xyz"]["D_cm2_s"] - true) / fits["xyz"]["se_cm2_s"])
    return {k: v / n_rep for k, v in hits.items()} | {"z_sd": float(np.std(z)), "n": n_rep}
