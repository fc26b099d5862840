"""Sweep statistics (pure): mean ± standard error across seeds, the weighted Arrhenius
fit of D over temperatures, the band-limited Γ_w, and the sweep report document."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from checks.schema import DIFFUSION_CLASSES, METRICS, metrics_of
from runbook.config import SweepSpec

SCHEMA = "sweep-report/1"
KB_EV_PER_K = 8.617333262e-5  # Boltzmann constant, eV/K (CODATA 2018)
PER_A2_TO_PER_NM2 = 100.0


@dataclass
class Stat:
    mean: float | None
    se: float | None  # standard error of the mean across seeds; None with one value
    n: int
    values: list[float] = field(default_factory=list)


def mean_se(values: list[float | None]) -> Stat:
    """Mean ± standard error over the finite values (missing ones are skipped, not zeroed)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return Stat(None, None, 0, [])
    m = float(np.mean(xs))
    se = float(np.std(xs, ddof=1) / math.sqrt(len(xs))) if len(xs) >= 2 else None
    return Stat(m, se, len(xs), xs)


@dataclass
class Arrhenius:
    Ea_eV: float
    Ea_se_eV: float | None
    ln_D0: float  # D0 in the unit of D
    ln_D0_se: float | None
    dof: int
    weighted: bool  # by the seed SEs (else unweighted, residual-based errors)
    chi2_per_dof: float | None
    points: list[dict]


def arrhenius(temps: list[float], d: list[Stat]) -> Arrhenius | None:
    """Fit ln D = ln D0 - Ea/(kB T) over temperatures. Needs >= 2 temperatures with D > 0.

    Weighted by sigma(ln D) = SE(D)/D when every temperature has an SE: the parameter
    errors are then the covariance (X^T W X)^-1 (valid even with dof = 0). Otherwise an
    unweighted fit whose errors come from the residuals (needs dof >= 1)."""
    rows = [(t, s) for t, s in zip(temps, d, strict=True) if s.mean is not None and s.mean > 0]
    if len(rows) < 2 or len({t for t, _ in rows}) < 2:
        return None
    x = np.array([1.0 / (KB_EV_PER_K * t) for t, _ in rows])  # 1/(kB T), 1/eV
    y = np.array([math.log(s.mean) for _, s in rows])
    design = np.column_stack([np.ones_like(x), -x])  # y = ln D0 - Ea x
    dof = len(rows) - 2
    weighted = all(s.se is not None and s.se > 0 for _, s in rows)
    if weighted:
        sigma = np.array([s.se / s.mean for _, s in rows])
        wts = 1.0 / sigma**2
        cov = np.linalg.inv(design.T @ (design * wts[:, None]))
        beta = cov @ design.T @ (wts * y)
        resid = y - design @ beta
        chi2 = float(np.sum(wts * resid**2))
        chi2_dof = chi2 / dof if dof > 0 else None
        errs: list[float | None] = [float(math.sqrt(cov[0, 0])), float(math.sqrt(cov[1, 1]))]
    else:
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ beta
        chi2_dof = None
        if dof > 0:
            s2 = float(np.sum(resid**2)) / dof
            cov = s2 * np.linalg.inv(design.T @ design)
            errs = [float(math.sqrt(cov[0, 0])), float(math.sqrt(cov[1, 1]))]
        else:
            errs = [None, None]
    return Arrhenius(
        Ea_eV=float(beta[1]),
        Ea_se_eV=errs[1],
        ln_D0=float(beta[0]),
        ln_D0_se=errs[0],
        dof=dof,
        weighted=weighted,
        chi2_per_dof=chi2_dof,
        points=[{"T_K": t, "D": s.mean, "D_se": s.se, "n": s.n} for t, s in rows],
    )


def gamma_within(results: dict, w: float) -> float | None:
    """Band-limited excess Li per GB (Li/nm²): Σ (rho_i - rho_bulk) dz over bins whose
    centre is within w of a plane and closer to it than to the other; mean of the planes."""
    prof = results.get("profile") or {}
    z, rho = np.asarray(prof.get("z_A", [])), np.asarray(prof.get("rho_li_per_A3", []))
    bulk, planes = results.get("rho_bulk_per_A3"), results.get("gb_planes_A")
    if z.size < 2 or bulk is None or not planes:
        return None
    dz = float(results["parameters"]["dz_A"])
    lz = float(results["box_A"][2])

    def dist(p: float) -> np.ndarray:
        d = np.abs(z - p) % lz
        return np.minimum(d, lz - d)

    ds = [dist(p) for p in planes]
    per = []
    for k, d in enumerate(ds):
        closer = np.all([d <= o for j, o in enumerate(ds) if j != k], axis=0)
        sel = (d <= w) & closer
        per.append(float(np.sum(rho[sel] - bulk) * dz * PER_A2_TO_PER_NM2))
    return float(np.mean(per))


D_KEYS = tuple(f"D_{k}_cm2_s" for k in DIFFUSION_CLASSES)


def aggregate(results: dict[tuple[str, float | None, float], dict], spec: SweepSpec) -> dict:
    """results[(point name, T, w)] = a gb-analysis/1 document → the sweep report document."""
    temps = sorted({t for _, t, _ in results}, key=lambda t: (t is None, t))
    widths = sorted({w for *_, w in results})
    groups = []
    for t in temps:
        for w in widths:
            docs = [doc for (p, tt, ww), doc in results.items() if tt == t and ww == w]
            per_doc = [metrics_of(d) for d in docs]
            stats = {k: mean_se([m[k] for m in per_doc]) for k in METRICS}
            stats["gamma_within_w_per_nm2"] = mean_se([gamma_within(d, w) for d in docs])
            groups.append({"T_K": t, "w_A": w, "n_seeds": len(docs), "stats": stats})
    fits = {}
    real_temps = [t for t in temps if t is not None]
    w0 = widths[0] if widths else None
    for key in D_KEYS:  # D does not depend on w: fit at one width
        ds = [
            g["stats"][key] for t in real_temps for g in groups if g["T_K"] == t and g["w_A"] == w0
        ]
        fit = arrhenius(real_temps, ds) if len(ds) == len(real_temps) else None
        fits[key] = fit.__dict__ if fit else None
    return {
        "schema": SCHEMA,
        "seeds": list(spec.seeds),
        "temperatures_K": real_temps,
        "band_widths_A": widths,
        "groups": [{**g, "stats": {k: s.__dict__ for k, s in g["stats"].items()}} for g in groups],
        "arrhenius": fits,
    }
