"""Li diffusion from the li-diffusion runs: MSD -> D(T) -> Arrhenius -> conductivity.

    python -m runbook.lidiff.analysis analysis.json   -> results.json

Per run (one temperature, one seed): the Li MSD over every time origin (checks.msd, FFT
correlations), and D from `fit_diffusion`: MSD = 6 D t + c over the lag window
`fit_window` (fractions of the production length). The run's own error of D comes from
`n_groups` groups of Li atoms (D per group, standard error of their mean).
Per temperature: D = mean over seeds; its error the larger of the standard error across
seeds (n >= 2) and the runs' own group errors carried to the mean (sqrt(sum se_i^2) / n),
so that two seeds agreeing by chance do not make one temperature dominate the weighted
Arrhenius fit. A temperature whose seed-averaged MSD
has a log-log slope below `diffusive_min_slope` over the fit window is flagged "not yet
diffusive" (caged or sub-diffusive: the run is too short for that temperature) and left
out of the Arrhenius fit. Arrhenius: runbook.sweep.arrhenius (weighted by the errors of
ln D). Conductivity (Nernst-Einstein, Haven ratio H_R = 1 assumed, i.e. tracer and charge
diffusion taken equal): sigma = n_Li e^2 D / (k_B T H_R), at each temperature and at
`conductivity_T_K` from the Arrhenius line (with the fit's covariance).

Units: Å, ps, K, eV; D in cm²/s, sigma in S/cm (1 Å²/ps = 1e-4 cm²/s).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from checks import lammpsio
from checks.msd import MSDAccumulator, fit_slope
from checks.results import LIDIFF_SCHEMA
from runbook.sweep.stats import KB_EV_PER_K, Stat, arrhenius, mean_se

SCHEMA = LIDIFF_SCHEMA  # `bundle check` accepts it (checks.results.CHECKABLE)
A2_PS_TO_CM2_S = 1e-4
E_CHARGE_C = 1.602176634e-19
KB_J_PER_K = 1.380649e-23
PER_A3_TO_PER_CM3 = 1e24


@dataclass(frozen=True)
class DFit:
    D_cm2_s: float
    intercept_A2: float
    loglog_slope: float | None  # d ln MSD / d ln t over the window (1: diffusive)
    t_lo_ps: float
    t_hi_ps: float
    msd_end_A2: float


def fit_diffusion(t_ps: np.ndarray, msd_A2: np.ndarray, window: tuple[float, float]) -> DFit:
    """THE fit of D from an MSD curve (one place; checks/diffusion.py's GLS estimator is to
    replace it): ordinary least squares MSD = 6 D t + c over lags in
    [window[0], window[1]] x the longest lag, and the log-log slope over the same lags."""
    t, m = np.asarray(t_ps, float), np.asarray(msd_A2, float)
    lo, hi = window[0] * t[-1], window[1] * t[-1]
    sel = (t >= lo) & (t <= hi) & (t > 0) & np.isfinite(m)
    if sel.sum() < 3:
        raise ValueError(f"fewer than 3 lags in the fit window {lo:g}-{hi:g} ps")
    slope, _ = fit_slope(t[sel], m[sel])
    intercept = float(m[sel].mean() - slope * t[sel].mean())
    pos = sel & (m > 0)
    loglog = fit_slope(np.log(t[pos]), np.log(m[pos]))[0] if pos.sum() >= 3 else None
    return DFit(slope / 6.0 * A2_PS_TO_CM2_S, intercept, loglog, float(t[sel][0]),
                float(t[sel][-1]), float(m[sel][-1]))  # fmt: skip


def run_msd(dump: Path, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(lag times ps, MSD Å² over all Li, MSD per atom group (F, K), number of Li) of one
    run's Li trajectory (unwrapped), every frame a time origin."""
    frames = list(lammpsio.read_frames([dump]))
    steps = np.array([f.timestep for f in frames])
    if len(frames) < 10 or len(set(np.diff(steps))) != 1:
        raise ValueError(f"{dump}: need >= 10 equally spaced frames")
    r = np.stack([f.unwrapped for f in frames])  # (F, N, 3)
    acc = MSDAccumulator(len(frames), ("all",), n_groups)
    groups = np.arange(r.shape[1]) % n_groups
    acc.add(r, {"all": np.ones(r.shape[:2])}, groups)
    msd, _ = acc.msd("all")
    per_group = np.stack([acc.msd("all", g)[0] for g in range(n_groups)], axis=1)
    return (steps - steps[0]).astype(float), msd, per_group, r.shape[1]


def per_run(run: dict, p: dict) -> dict:
    t_steps, msd, groups, n_li = run_msd(Path(run["dump"]), int(p["n_groups"]))
    t_ps = t_steps * p["md"]["timestep_fs"] / 1000.0
    window = tuple(p["fit_window"])
    fit = fit_diffusion(t_ps, msd, window)
    d_groups = [fit_diffusion(t_ps, groups[:, g], window).D_cm2_s for g in range(groups.shape[1])]
    se = float(np.std(d_groups, ddof=1) / math.sqrt(len(d_groups)))
    return {"name": run["name"], "T_K": run["T_K"], "seed": run["seed"], "n_li": n_li,
            "fit": asdict(fit), "D_group_se_cm2_s": se, "t_ps": t_ps, "msd_A2": msd,
            "T_li_mean_K": run["T_li_mean_K"],
            "nve_drift_ev_per_li_ps": run["nve_drift_ev_per_li_ps"]}  # fmt: skip


def per_temperature(runs: list[dict], p: dict) -> dict[str, dict]:
    out = {}
    for t in sorted({r["T_K"] for r in runs}):
        rs = [r for r in runs if r["T_K"] == t]
        stat = mean_se([r["fit"]["D_cm2_s"] for r in rs])
        within = math.sqrt(sum(r["D_group_se_cm2_s"] ** 2 for r in rs)) / len(rs)
        se = max(stat.se or 0.0, within)
        msd = np.mean([r["msd_A2"] for r in rs], axis=0)
        fit = fit_diffusion(rs[0]["t_ps"], msd, tuple(p["fit_window"]))
        diffusive = fit.loglog_slope is not None and fit.loglog_slope >= p["diffusive_min_slope"]
        t_li = float(np.mean([r["T_li_mean_K"] for r in rs]))
        out[f"T{t:g}"] = {
            "T_K": t, "D_cm2_s": stat.mean, "D_se_cm2_s": se, "n_seeds": stat.n,
            "se_from": "seeds" if (stat.se or 0.0) >= within else "atom groups of the runs",
            "loglog_slope": fit.loglog_slope, "msd_end_A2": fit.msd_end_A2,
            "diffusive": bool(diffusive), "T_li_mean_K": t_li,
            "seeds": {str(r["seed"]): r["fit"]["D_cm2_s"] for r in rs},
            "msd": _thin(rs[0]["t_ps"], msd),
        }  # fmt: skip
    return out


def _thin(t: np.ndarray, m: np.ndarray, at_most: int = 200) -> dict:
    idx = np.unique(np.linspace(0, len(t) - 1, min(at_most, len(t))).round().astype(int))
    return {"t_ps": [float(t[i]) for i in idx], "msd_A2": [float(m[i]) for i in idx]}


def ln_d_at(temps: list[float], stats: list[Stat], t_star: float) -> tuple[float, float | None]:
    """ln D at `t_star` on the Arrhenius line of `temps`, and its standard error from the
    fit's covariance (weighted as runbook.sweep.arrhenius): the intercept of the same fit
    in x - x*, x = 1/(k_B T)."""
    x = np.array([1.0 / (KB_EV_PER_K * t) for t in temps]) - 1.0 / (KB_EV_PER_K * t_star)
    y = np.array([math.log(s.mean) for s in stats])
    design = np.column_stack([np.ones_like(x), -x])
    if all(s.se for s in stats):
        w = np.array([(s.mean / s.se) ** 2 for s in stats])
        cov = np.linalg.inv(design.T @ (design * w[:, None]))
        beta = cov @ design.T @ (w * y)
        return float(beta[0]), float(math.sqrt(cov[0, 0]))
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(y) - 2
    if dof < 1:
        return float(beta[0]), None
    s2 = float(np.sum((y - design @ beta) ** 2)) / dof
    return float(beta[0]), float(math.sqrt(s2 * np.linalg.inv(design.T @ design)[0, 0]))


def nernst_einstein(n_per_A3: float, d_cm2_s: float, t_k: float, haven: float = 1.0) -> float:
    """sigma (S/cm) = n e^2 D / (k_B T H_R) for monovalent carriers."""
    n = n_per_A3 * PER_A3_TO_PER_CM3
    return n * E_CHARGE_C**2 * d_cm2_s / (KB_J_PER_K * t_k * haven)


def arrhenius_and_conductivity(temps: dict[str, dict], n_per_A3: float, t_star: float) -> dict:
    used = [v for v in temps.values() if v["diffusive"] and v["D_cm2_s"] and v["D_cm2_s"] > 0]
    stats = [Stat(v["D_cm2_s"], v["D_se_cm2_s"], v["n_seeds"]) for v in used]
    fit = arrhenius([v["T_K"] for v in used], stats)
    out: dict = {"arrhenius": None, "conductivity": None}
    excluded = [v["T_K"] for v in temps.values() if v not in used]
    if fit is None:
        out["arrhenius"] = {"error": "fewer than 2 diffusive temperatures", "excluded_K": excluded}
        return out
    out["arrhenius"] = {
        "Ea_eV": fit.Ea_eV, "Ea_se_eV": fit.Ea_se_eV, "ln_D0": fit.ln_D0,
        "ln_D0_se": fit.ln_D0_se, "D0_cm2_s": math.exp(fit.ln_D0), "dof": fit.dof,
        "weighted": fit.weighted, "chi2_per_dof": fit.chi2_per_dof,
        "used_K": [v["T_K"] for v in used], "excluded_K": excluded,
    }  # fmt: skip
    ln_d, ln_se = ln_d_at([v["T_K"] for v in used], stats, t_star)
    span = [v["T_K"] for v in used]
    out["conductivity"] = {
        "T_K": t_star, "D_cm2_s": math.exp(ln_d), "ln_D_se": ln_se,
        "sigma_S_cm": nernst_einstein(n_per_A3, math.exp(ln_d), t_star), "ln_sigma_se": ln_se,
        "extrapolated": not min(span) <= t_star <= max(span),
        "haven_ratio": 1.0,
        "note": "Nernst-Einstein with Haven ratio 1 (tracer D taken as the charge D)",
    }  # fmt: skip
    return out


def analyse(p: dict) -> dict:
    runs = [per_run(r, p) for r in p["runs"]]
    b = p["build"]
    n_li = b["counts"]["Li"]
    n_per_A3 = n_li / b["volume_A3"]
    temps = per_temperature(runs, p)
    for v in temps.values():
        v["sigma_S_cm"] = nernst_einstein(n_per_A3, v["D_cm2_s"], v["T_K"])
        v["sigma_se_S_cm"] = nernst_einstein(n_per_A3, v["D_se_cm2_s"] or 0.0, v["T_K"])
    md = p["md"]
    return {
        "schema": SCHEMA,
        "parameters": {
            "potential": md["potential"],
            "frozen_framework": md["frozen_framework"],
            "timestep_fs": md["timestep_fs"],
            "production_ps": md["production_ps"],
            "dump_every_ps": md["dump_every_ps"],
            "fit_window": list(p["fit_window"]),
            "n_li": n_li,
            "diffusive_min_slope": p["diffusive_min_slope"],
        },  # fmt: skip
        "n_li_per_A3": n_per_A3,
        "temperatures": temps,
        **arrhenius_and_conductivity(temps, n_per_A3, p["conductivity_T_K"]),
        "runs": [{k: v for k, v in r.items() if k not in ("t_ps", "msd_A2")} for r in runs],
        "md_cost": md["cost"],
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m runbook.lidiff.analysis analysis.json")
    doc = analyse(json.loads(Path(args[0]).read_text()))
    Path("results.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    a = doc["arrhenius"] or {}
    print(json.dumps({"Ea_eV": a.get("Ea_eV"), "Ea_se_eV": a.get("Ea_se_eV")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
