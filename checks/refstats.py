"""Statistics of a seed-replica reference: bounds with a stated, controlled family-wise
false-FAIL rate, its measurement, and the discrimination of wrong runs.

Model: the judged quantities of one correct run, x (m values; the logarithm of the
positive, multiplicatively varying ones such as D), are a draw from one multivariate
normal; the reference holds n independent replicas (seeds). A new correct run must pass
every judged quantity: |x_new,j - mean_j| <= c s_j sqrt(1 + 1/n) for all j.

The family-wise false-FAIL rate (a correct new seed failing ANY quantity) is set to
alpha_fw by the choice of c:
- "sidak": each quantity at alpha = 1 - (1 - alpha_fw)^(1/m), c = t(1 - alpha/2, n-1).
  By Sidak's inequality the family-wise rate is at most alpha_fw for normal quantities
  whatever their correlation (exact when independent; conservative when correlated).
- "maxstat": c is the (1 - alpha_fw) quantile of max_j |x_new,j - mean_j| / (s_j
  sqrt(1 + 1/n)), simulated (parametric bootstrap) with the replicas' correlation
  matrix shrunk halfway to the identity (a 10-replica correlation is noisy; shrinking
  to independence errs towards Sidak). Narrower bounds when quantities are correlated.
Defaults: alpha_fw and the method are arguments of runbook.llzo.mkref (it records both).

Measured, not assumed: `loo` judges each replica against bounds made from the others
(leave-one-out; coarse: n trials), `bootstrap_rate` simulates many references and new
seeds from the fitted normal (precise under the model). `power` gives the probability
that a run from another population (a probe: 100 K off, a perturbed potential) FAILs,
with the probe's shift measured from its runs and the seed scatter of the reference.

`screen` refuses judged sets that cannot work: a quantity with no spread across seeds
(fixed by the setup), one that sits on a floor (the same value in most replicas), and
pairs that are the same measurement twice (|correlation| > REDUNDANT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

REDUNDANT = 0.995
SHRINK = 0.5
METHODS = ("sidak", "maxstat")


@dataclass(frozen=True)
class Judged:
    key: str  # path into results.json
    unit: str
    why: str
    log: bool = False  # judged on log(value): positive, multiplicative scatter


def transform(values: np.ndarray, judged: list[Judged]) -> np.ndarray:
    """(n, m) values -> the judged scale (log where asked). Non-positive logs are NaN."""
    x = np.array(values, dtype=float)
    for j, q in enumerate(judged):
        if q.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                x[:, j] = np.where(x[:, j] > 0, np.log(np.abs(x[:, j])), np.nan)
    return x


def sidak_alpha(alpha_fw: float, m: int) -> float:
    return 1.0 - (1.0 - alpha_fw) ** (1.0 / m)


def pi_factor(n: int, alpha: float) -> float:
    """t(1 - alpha/2, n-1) sqrt(1 + 1/n): prediction-interval half-width in units of s."""
    return float(stats.t.ppf(1 - alpha / 2, n - 1) * math.sqrt(1 + 1 / n))


def shrunk_correlation(X: np.ndarray, shrink: float = SHRINK) -> np.ndarray:
    r = np.corrcoef(X, rowvar=False) if X.shape[1] > 1 else np.ones((1, 1))
    return (1 - shrink) * np.nan_to_num(r) + shrink * np.eye(X.shape[1])


def maxstat_c(n: int, corr: np.ndarray, alpha_fw: float, rng, n_sim: int = 20000) -> float:
    """(1 - alpha_fw) quantile of the max standardised prediction error over quantities."""
    m = len(corr)
    chol = np.linalg.cholesky(corr + 1e-12 * np.eye(m))
    z = rng.standard_normal((n_sim, n + 1, m)) @ chol.T
    ref, new = z[:, :n], z[:, n]
    t = np.abs(new - ref.mean(axis=1)) / (ref.std(axis=1, ddof=1) * math.sqrt(1 + 1 / n))
    return float(np.quantile(t.max(axis=1), 1 - alpha_fw))


def factor(X: np.ndarray, alpha_fw: float, method: str, rng) -> float:
    """c (in units of s sqrt(1 + 1/n)) for n replicas X (n, m) and the method."""
    n, m = X.shape
    if method == "sidak":
        return pi_factor(n, sidak_alpha(alpha_fw, m)) / math.sqrt(1 + 1 / n)
    if method == "maxstat":
        return maxstat_c(n, shrunk_correlation(X), alpha_fw, rng)
    raise ValueError(f"method {method!r}: expected one of {METHODS}")


def bounds(X: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(centre, half-width) per quantity on the judged scale."""
    n = len(X)
    return X.mean(axis=0), c * X.std(axis=0, ddof=1) * math.sqrt(1 + 1 / n)


def failing(x: np.ndarray, centre: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Which quantities of x fall outside [centre - half, centre + half] (NaN fails)."""
    with np.errstate(invalid="ignore"):
        return ~(np.abs(x - centre) <= half)


def loo(X: np.ndarray, alpha_fw: float, method: str, rng) -> list[list[int]]:
    """Per replica, the quantities it fails against bounds made from the other n - 1."""
    out = []
    for i in range(len(X)):
        rest = np.delete(X, i, axis=0)
        centre, half = bounds(rest, factor(rest, alpha_fw, method, rng))
        out.append([int(j) for j in np.flatnonzero(failing(X[i], centre, half))])
    return out


def fitted_normal(X: np.ndarray, shrink: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the replicas (correlation lightly shrunk: a regulariser for
    fewer replicas than quantities, not the conservative shrinkage of maxstat)."""
    s = X.std(axis=0, ddof=1)
    return X.mean(axis=0), shrunk_correlation(X, shrink) * np.outer(s, s)


def bootstrap_rate(
    X: np.ndarray, alpha_fw: float, method: str, rng, n_boot: int = 2000,
    shift: np.ndarray | None = None, n_ref: int | None = None,
) -> tuple[float, float]:  # fmt: skip
    """P(a new run FAILs any quantity) and its Monte-Carlo SE: references of n replicas and
    a new run drawn from the fitted normal (the new run displaced by `shift`: power).
    `n_ref`: the size of the simulated references (default: as many as X has), to
    project how many seeds a reference needs."""
    m = X.shape[1]
    n = n_ref or len(X)
    mean, cov = fitted_normal(X)
    chol = np.linalg.cholesky(cov + 1e-12 * np.diag(np.diag(cov)))
    ref = mean + rng.standard_normal((n_boot, n, m)) @ chol.T
    new = mean + (0 if shift is None else shift) + rng.standard_normal((n_boot, m)) @ chol.T
    if method == "sidak":
        c = np.full(n_boot, factor(ref[0], alpha_fw, method, rng))  # depends on n, m only
    else:
        c = np.array([maxstat_c(n, shrunk_correlation(r), alpha_fw, rng, 1000) for r in ref])
    half = c[:, None] * ref.std(axis=1, ddof=1) * math.sqrt(1 + 1 / n)
    with np.errstate(invalid="ignore"):
        fail = ~(np.abs(new - ref.mean(axis=1)) <= half)
    p = float(fail.any(axis=1).mean())
    return p, math.sqrt(max(p * (1 - p), 1.0 / n_boot) / n_boot)


def power(X: np.ndarray, probe: np.ndarray, alpha_fw: float, method: str, rng,
          n_boot: int = 2000, n_ref: int | None = None) -> dict:  # fmt: skip
    """Probability that a run of the probe's population FAILs: the probe runs (k, m) give
    the shift of the population mean; the seed scatter is the reference's."""
    shift = np.nanmean(probe, axis=0) - X.mean(axis=0)
    p, se = bootstrap_rate(X, alpha_fw, method, rng, n_boot, shift, n_ref)
    s = X.std(axis=0, ddof=1)
    return {"p_fail": p, "p_fail_se": se, "shift_in_s": [float(v) for v in shift / s]}


def screen(X: np.ndarray, judged: list[Judged]) -> list[str]:
    """Reasons a judged set cannot discriminate (empty when it is fine)."""
    problems = []
    for j, q in enumerate(judged):
        col = X[:, j]
        if not np.isfinite(col).all():
            problems.append(f"{q.key}: not finite (or not positive on a log scale) in a replica")
            continue
        if np.ptp(col) <= 1e-9 * max(1.0, float(np.abs(col).max())):
            problems.append(f"{q.key}: the same in every replica (fixed by the setup)")
        elif np.mean(np.isclose(col, stats.mode(col, keepdims=False).mode)) >= 0.5:
            problems.append(f"{q.key}: half the replicas sit on one value (a floor)")
    ok = [j for j in range(len(judged)) if np.isfinite(X[:, j]).all() and np.ptp(X[:, j]) > 0]
    if len(ok) > 1:
        r = np.corrcoef(X[:, ok], rowvar=False)
        for a in range(len(ok)):
            for b in range(a + 1, len(ok)):
                if abs(r[a, b]) > REDUNDANT:
                    problems.append(
                        f"{judged[ok[a]].key} and {judged[ok[b]].key}: correlation "
                        f"{r[a, b]:.4f} across replicas: one measurement judged twice"
                    )
    return problems
