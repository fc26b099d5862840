"""Make a `gb-reference/1` file from seed replicas of a study (the CPU reference).

    python -m runbook.llzo.mkref --name NAME --out FILE --command "..." RESULTS.json ...
        [--alpha-fw 0.01] [--method sidak|maxstat] [--probe LABEL=RESULTS.json ...]

Judged quantities (JUDGED) are chosen to discriminate what a user cares about, and
screened (checks.refstats.screen): none fixed by the setup (n_excess, N 4w / Lz), none on
a floor (the excess-Li counts are 0 in most replicas of the current protocol), no
measurement judged twice (Γ and rho_bulk are one number in a closed cell:
Γ = (N/V - rho_bulk) Lz / 2, so Γ is reported and rho_bulk judged). A screening failure
stops the reference with the reason. The comment at ALPHA_FW records what the choice
rests on.

Bounds: a prediction interval for ONE further independent replica, simultaneous over
the m judged quantities: |x_new - mean| <= c s sqrt(1 + 1/n) on the judged scale (log
for D, the MSD and hop rates), c set so that a correct new seed FAILs at least one
quantity with probability at most alpha_fw (the family-wise false-FAIL rate; default
ALPHA_FW = 0.01, method Sidak; see checks.refstats). The file records alpha_fw, the
method, c, and two measurements of the rate: leave-one-out on the replicas and a
parametric bootstrap. `--probe` runs (another temperature, a perturbed potential, a new
seed) are judged against the new bounds and their population's FAIL probability is
estimated (power); the verdicts go into made_by.discrimination.

Temperature is a reference parameter: the replicas must record the same
`parameters.temperature_K` (`bundle analyze --temperature-K`); `bundle check` refuses
results made at another (or an unstated) temperature, naming both, as for every
analysis parameter. A run that claims the temperature but did not run at it is what the
judged dynamics (the 1-ps MSD, D) catch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from checks import refstats as rs
from checks.results import get_path
from runbook import refdoc
from runbook.refdoc import r6 as _r

ALPHA_FW = 0.01
METHOD = "sidak"
# Measured on the relaxed cpu protocol (issue 12; 9 seeds at 700 K; probes from seed 11,
# shifts of the population mean in units of the seed scatter, see the reference's
# made_by.discrimination): the 1-ps MSD moves -6.9 s at 600 K and -16.9 s at 500 K, -1.1 s
# with the Li-O repulsion x 1.1 and +3.3 s with x 1.5; rho_bulk -0.8 to -1.2 s. No Li hops
# in 20 ps at 700 K (D not resolved, reported only). At alpha_fw = 0.01 (Sidak, m = 4)
# the 9-seed reference FAILs a 600 K run with probability ~0.95 and a 500 K run ~1, but
# Li-O x 1.1 only ~0.03 and x 1.5 ~0.26: a potential change that does not move the cage
# rattling is invisible to this protocol (more seeds narrow c: 20 seeds, c ~ 3.6).
GLS = "diffusion_gls.classes"
JUDGED = [
    rs.Judged("diffusion_gls.msd_short_A2.all", "Å²", "MSD at 1 ps, all Li: cage rattling "
              "and the first hops (scales with T)", log=True),
    rs.Judged(f"{GLS}.all.xyz.D_cm2_s", "cm²/s", "D of all Li, GLS with the MSD covariance",
              log=True),
    rs.Judged("rho_bulk_per_A3", "Li/Å³", "interior Li density: the partition of the Li "
              "between grain and boundaries (Γ carries the same number in a closed cell)"),
    rs.Judged("peak_ratio", "1", "peak / bulk: the shape of the Li profile at the boundary"),
    rs.Judged("band_ratio", "1", "band / bulk: the Li content of the ±w bands"),
]  # fmt: skip
REPORTED = [
    ("gamma_per_nm2.mean", "Li/nm²", "in a closed cell a function of rho_bulk"),
    ("diffusion.D_cm2_s.all", "cm²/s", "OLS slope / 6 (METRICS.md)"),
    ("diffusion.D_cm2_s.bulk_start", "cm²/s", "OLS slope / 6 (METRICS.md)"),
    (f"{GLS}.bulk_start.xyz.D_cm2_s", "cm²/s", "GLS"),
    (f"{GLS}.gb_start.xyz.D_cm2_s", "cm²/s", "GLS; flagged when the MSD is below 1 Å²"),
    ("hops.regions.gb.rate_per_li_ps", "1/ps", "hops of Li anchored in the GB bands"),
    ("hops.regions.bulk.rate_per_li_ps", "1/ps", "hops of Li anchored in the grain interior"),
]
PARAMETERS = ("dz_A", "w_A", "d_bulk_A", "avg_window_ps", "w_start_A", "timestep_fs",
              "temperature_K", "short_lag_ps", "gls_max_lags")  # fmt: skip


def values(docs: list[dict], key: str) -> np.ndarray:
    return np.array([float(get_path(d, key, np.nan)) for d in docs])


def common_parameters(docs: list[dict]) -> dict:
    params = {}
    for k in PARAMETERS:
        vals = {json.dumps(d["parameters"].get(k)) for d in docs}
        if len(vals) != 1:
            raise ValueError(f"the replicas differ in the analysis parameter {k}: {vals}")
        params[k] = docs[0]["parameters"].get(k)
    if params["temperature_K"] is None:
        raise ValueError("the replicas do not record their temperature: analyse them with "
                         "`bundle analyze --temperature-K T`")  # fmt: skip
    return params


def judged_matrix(docs: list[dict], judged: list[rs.Judged] | None = None) -> np.ndarray:
    judged = JUDGED if judged is None else judged
    raw = np.column_stack([values(docs, q.key) for q in judged])
    return rs.transform(raw, judged)


def resolved(docs: list[dict]) -> tuple[list[rs.Judged], dict[str, str]]:
    """The judged quantities every replica resolves, and why the others are not judged.
    A diffusion coefficient (log scale) with a value <= 0 in a replica was not measured:
    its MSD did not leave the cage rattling in the run (no Li hopped); it is reported with
    its values and the hop counts say how rare hopping was, but it cannot set bounds."""
    X = judged_matrix(docs)
    keep, dropped = [], {}
    for j, q in enumerate(JUDGED):
        bad = int((~np.isfinite(X[:, j])).sum())
        if q.log and bad:
            dropped[q.key] = (
                f"not resolved in {bad} of {len(docs)} replicas (<= 0: the MSD stays at the "
                "cage rattling, no Li hop to fit); reported only"
            )
        else:
            keep.append(q)
    return keep, dropped


def make(docs: list[dict], names: list[str], name: str, command: str,
         alpha_fw: float = ALPHA_FW, method: str = METHOD, seed: int = 0) -> dict:  # fmt: skip
    n = len(docs)
    if n < 5:
        raise ValueError(f"need at least 5 replicas (got {n})")
    params = common_parameters(docs)
    judged, not_judged = resolved(docs)
    X = judged_matrix(docs, judged)
    problems = rs.screen(X, judged)
    if problems:
        raise ValueError("the judged set cannot discriminate: " + "; ".join(problems))
    rng = np.random.default_rng(seed)
    c = rs.factor(X, alpha_fw, method, rng)
    centre, half = rs.bounds(X, c)
    q = {j.key: _entry(j, X[:, j_], centre[j_], half[j_], n, c)
         for j_, j in enumerate(judged)}  # fmt: skip
    unresolved = [(j.key, j.unit, not_judged[j.key]) for j in JUDGED if j.key in not_judged]
    for key, unit, why in unresolved + REPORTED:
        x = values(docs, key)
        q[key] = {"value": _r(np.nanmean(x)), "unit": unit,
                  "source": f"mean of {n} seeds, reported only; {why}".rstrip("; "),
                  "replicas": [_r(v) for v in x]}  # fmt: skip
    return refdoc.document(
        name, f"the llzo-gb study, cpu profile, {n} seeds ({', '.join(names)})", command,
        names, params, q, family_wise=family_wise(X, judged, alpha_fw, method, c, names, rng),
        not_judged=not_judged, run_se_vs_seed_scatter=run_se_check(docs),
    )  # fmt: skip


def _entry(j: rs.Judged, x: np.ndarray, centre: float, half: float, n: int, c: float) -> dict:
    if j.log:
        value, lo, hi = np.exp(centre), np.exp(centre - half), np.exp(centre + half)
        scale = f"log scale: exp(mean ln x +- {half:.4g})"
        reps = np.exp(x)
    else:
        value, lo, hi = centre, centre - half, centre + half
        scale = f"+- {half:.4g}"
        reps = x
    return {"value": _r(value), "lower": _r(value - lo), "upper": _r(hi - value),
            "bounds": "absolute", "unit": j.unit,
            "source": f"mean of {n} seeds; bounds c s sqrt(1+1/n), c = {c:.3f}, {scale} "
                      f"({j.why})",
            "replicas": [_r(v) for v in reps]}  # fmt: skip


def family_wise(X, judged: list[rs.Judged], alpha_fw: float, method: str, c: float,
                names: list[str], rng) -> dict:  # fmt: skip
    """The stated rate, the factor, and its two measurements."""
    n, m = X.shape
    fails = rs.loo(X, alpha_fw, method, rng)
    rate, se = rs.bootstrap_rate(X, alpha_fw, method, rng, 4000 if method == "sidak" else 300)
    failed = [f"{names[i]}: {', '.join(judged[j].key for j in f)}" for i, f in enumerate(fails)
              if f]  # fmt: skip
    return {
        "alpha_fw": alpha_fw,
        "method": method,
        "m_judged": m,
        "per_quantity_alpha": rs.sidak_alpha(alpha_fw, m) if method == "sidak" else None,
        "c": round(c, 4),
        "statement": f"a correct new seed FAILs at least one of the {m} judged quantities "
        f"with probability <= {alpha_fw:g} ({method})",
        "leave_one_out": f"{len(failed)} of {n} replicas fail against the others"
        + (": " + "; ".join(failed) if failed else ""),
        "bootstrap_rate": {"value": round(rate, 4), "se": round(se, 4)},
    }


def run_se_check(docs: list[dict]) -> dict:
    """Does one run's GLS standard error of D describe the scatter between seeds? The
    ratio std(D over seeds) / mean(per-run SE): ~1 when it does; above 1 the seeds differ
    by more than trajectory noise (starting structure, correlated Li motion)."""
    out = {}
    for name in ("all", "bulk_start"):
        d = values(docs, f"{GLS}.{name}.xyz.D_cm2_s")
        se = values(docs, f"{GLS}.{name}.xyz.se_cm2_s")
        if np.isfinite(d).all() and np.isfinite(se).all() and se.mean() > 0:
            out[name] = {"seed_std_cm2_s": _r(d.std(ddof=1)), "mean_run_se_cm2_s": _r(se.mean()),
                         "ratio": _r(d.std(ddof=1) / se.mean())}  # fmt: skip
    return out


def discrimination(ref_docs: list[dict], probes: dict[str, list[dict]], alpha_fw: float,
                   method: str, seed: int = 0) -> dict:  # fmt: skip
    """For each probe label: the verdict of each of its runs against bounds from the
    reference replicas, and the FAIL probability of its population (checks.refstats)."""
    rng = np.random.default_rng(seed)
    judged, _ = resolved(ref_docs)
    X = judged_matrix(ref_docs, judged)
    centre, half = rs.bounds(X, rs.factor(X, alpha_fw, method, rng))
    out = {}
    for label, docs in probes.items():
        P = judged_matrix(docs, judged)
        runs = []
        for x in P:
            bad = rs.failing(x, centre, half)
            margin = np.abs(x - centre) / half
            runs.append(
                {
                    "status": "FAIL" if bad.any() else "PASS",
                    "failing": [judged[j].key for j in np.flatnonzero(bad)],
                    "margin": {q.key: _r(v) for q, v in zip(judged, margin, strict=True)},
                }
            )
        out[label] = {"runs": runs} | rs.power(X, P, alpha_fw, method, rng, 2000)  # fmt: skip
    return out


def _names(paths: list[Path]) -> list[str]:
    return [p.parent.parent.name if p.parent.name.endswith("analyze") else str(p) for p in paths]


def main(argv: list[str] | None = None) -> int:
    ap = refdoc.parser("python -m runbook.llzo.mkref")
    ap.add_argument("--alpha-fw", type=float, default=ALPHA_FW)
    ap.add_argument("--method", choices=rs.METHODS, default=METHOD)
    ap.add_argument("--probe", action="append", default=[], metavar="LABEL=RESULTS.json")
    a = ap.parse_args(argv)
    docs = refdoc.read_results(a.results)
    doc = make(docs, _names(a.results), a.name, a.command, a.alpha_fw, a.method)
    probes: dict[str, list[dict]] = {}
    for spec in a.probe:
        label, _, path = spec.partition("=")
        probes.setdefault(label, []).append(json.loads(Path(path).read_text()))
    if probes:
        doc["made_by"]["discrimination"] = discrimination(docs, probes, a.alpha_fw, a.method)
    header = (
        f"# {a.name}: the llzo-gb cpu profile's own reference (made by runbook.llzo.mkref).\n"
        "# Values: mean over seed replicas; bounds: a simultaneous prediction interval for\n"
        "# one more seed (made_by.family_wise). The published reference stays the h200's.\n"
    )
    refdoc.write(a.out, header, doc)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
