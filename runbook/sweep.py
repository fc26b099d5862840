"""Sweeps: seeds x temperatures x band widths, and the aggregated sweep report.

The study YAML may carry a `sweep` block (the study's other fields stay as they are):

    sweep:
      seeds: [1, 2]
      temperatures_K: [600, 700]
      band_widths_A: [1.5, 2.0, 2.5]       # analysis only: no extra MD
      set:                                 # which study fields each axis sets (dotted)
        seed: [structure.seed, md.seed]
        temperature: [md.temperature_k]

Every (seed, temperature) is a *point*, run as its own study in `RUN/points/<name>/`
(its frozen study file beside it, `<name>.study.yaml`); band widths re-analyse each
point's trajectories. The report aggregates, per temperature and band width:
- every metric as mean ± standard error across seeds (SE = s / sqrt(n), n >= 2);
- an Arrhenius fit ln D = ln D0 - Ea / (kB T) of each diffusion coefficient over the
  temperatures, weighted by the seed SEs (uncertainties from the weighted least-squares
  covariance; with one seed per temperature, from the residuals when dof > 0);
- Γ and enrichment as functions of w. `Gamma_w` is the band-limited excess
  Σ_{|z - z_k| <= w} (rho - rho_bulk) dz (mean over the two planes, Li/nm²), which
  tends to METRICS.md's Γ as w -> d_bulk; Γ itself does not depend on w.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bundle.core import safeyaml
from bundle.core.errors import EngineError, InputError

SCHEMA = "sweep-report/1"
KB_EV_PER_K = 8.617333262e-5  # Boltzmann constant, eV/K (CODATA 2018)
PER_A2_TO_PER_NM2 = 100.0


class SweepSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    seed: list[str] = []
    temperature: list[str] = []


class SweepSpec(BaseModel):
    """The validated `sweep` block."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    seeds: list[int] = Field(default=[1], min_length=1)
    temperatures_K: list[float] = Field(default=[], description="empty: the study's own")
    band_widths_A: list[float] = []
    set: SweepSet = SweepSet()
    max_parallel: int | None = Field(None, ge=1, description="array tasks at once (%N)")

    def check(self, file: Path) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise InputError(file, "sweep.seeds", "a seed appears twice")
        if self.temperatures_K and not self.set.temperature:
            raise InputError(
                file,
                "sweep.set.temperature",
                "temperatures are swept but no study field is set from them",
                "list the dotted fields, e.g. [md.temperature_k]",
            )
        if len(self.seeds) > 1 and not self.set.seed:
            raise InputError(
                file, "sweep.set.seed", "seeds are swept but no study field is set from them"
            )
        for t in self.temperatures_K:
            if not t > 0:
                raise InputError(file, "sweep.temperatures_K", f"{t} is not a temperature in K")
        for w in self.band_widths_A:
            if not w > 0:
                raise InputError(file, "sweep.band_widths_A", f"{w} is not a width in Å")


def parse_spec(block: Any, file: Path) -> SweepSpec:
    try:
        spec = SweepSpec.model_validate(block or {})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(file, f"sweep.{loc}", f"{err['msg']} (got {err.get('input')!r})") from None
    spec.check(file)
    return spec


@dataclass(frozen=True)
class Point:
    """One (seed, temperature) run of the sweep; `overrides` are `--set` strings."""

    name: str
    seed: int
    temperature_K: float | None
    overrides: tuple[str, ...]


def points(spec: SweepSpec) -> list[Point]:
    temps: list[float | None] = list(spec.temperatures_K) or [None]
    out = []
    for t in temps:
        for s in spec.seeds:
            sets = [f"{f}={s}" for f in spec.set.seed]
            name = f"seed{s}"
            if t is not None:
                sets += [f"{f}={t:g}" for f in spec.set.temperature]
                name += f"_T{t:g}K"
            out.append(Point(name, s, t, tuple(sets)))
    return out


# ------------------------------------------------------------------------ statistics


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


# The per-point quantities aggregated at every (T, w); paths into gb-analysis/1 documents.
METRICS = {
    "peak_ratio": ("peak_ratio",),
    "band_ratio": ("band_ratio",),
    "gamma_per_nm2": ("gamma_per_nm2", "mean"),
    "enrichment": ("excess", "enrichment"),
    "excess_gb_mean": ("excess", "gb_mean"),
    "D_all_cm2_s": ("diffusion", "D_cm2_s", "all"),
    "D_gb_start_cm2_s": ("diffusion", "D_cm2_s", "gb_start"),
    "D_bulk_start_cm2_s": ("diffusion", "D_cm2_s", "bulk_start"),
}
D_KEYS = ("D_all_cm2_s", "D_gb_start_cm2_s", "D_bulk_start_cm2_s")


def _get(doc: dict | None, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return float(doc) if isinstance(doc, int | float) else None


def aggregate(results: dict[tuple[str, float | None, float], dict], spec: SweepSpec) -> dict:
    """results[(point name, T, w)] = a gb-analysis/1 document → the sweep report document."""
    temps = sorted({t for _, t, _ in results}, key=lambda t: (t is None, t))
    widths = sorted({w for *_, w in results})
    groups = []
    for t in temps:
        for w in widths:
            docs = [doc for (p, tt, ww), doc in results.items() if tt == t and ww == w]
            stats = {k: mean_se([_get(d, path) for d in docs]) for k, path in METRICS.items()}
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


def _pm(s: dict, fmt: str = ".4g") -> str:
    if s["mean"] is None:
        return "—"
    text = format(s["mean"], fmt)
    return f"{text} ± {format(s['se'], '.2g')}" if s["se"] is not None else f"{text} (n=1)"


def figures(doc: dict, out: Path) -> list[Path]:
    """arrhenius.png (ln D vs 1000/T with the fits) and bands_vs_w.png (Γ_w and enrichment
    vs w per temperature), error bars = standard errors across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fits = {k: v for k, v in doc["arrhenius"].items() if v}
    if fits:
        fig, ax = plt.subplots(figsize=(5, 4))
        for key, fit in fits.items():
            t = np.array([p["T_K"] for p in fit["points"]])
            d = np.array([p["D"] for p in fit["points"]])
            err = np.array([p["D_se"] or 0.0 for p in fit["points"]])
            line = ax.errorbar(1000 / t, d, yerr=err, fmt="o", label=key.removesuffix("_cm2_s"))
            tt = np.linspace(t.min(), t.max(), 50)
            ax.plot(1000 / tt, np.exp(fit["ln_D0"] - fit["Ea_eV"] / (KB_EV_PER_K * tt)),
                    color=line[0].get_color())  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("D (cm²/s)")
        ax.legend()
        path = out / "arrhenius.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    if len(doc["band_widths_A"]) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for t in sorted({g["T_K"] for g in doc["groups"]}, key=lambda x: (x is None, x)):
            gs = [g for g in doc["groups"] if g["T_K"] == t]
            w = [g["w_A"] for g in gs]
            for ax, key in zip(axes, ("gamma_within_w_per_nm2", "enrichment"), strict=True):
                m = [g["stats"][key]["mean"] for g in gs]
                e = [g["stats"][key]["se"] or 0.0 for g in gs]
                if all(v is not None for v in m):
                    ax.errorbar(w, m, yerr=e, fmt="o-", label=f"{_t(t)} K")
        axes[0].set_ylabel("Γ_w (Li/nm²)")
        axes[1].set_ylabel("enrichment")
        for ax in axes:
            ax.set_xlabel("w (Å)")
            ax.legend()
        path = out / "bands_vs_w.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _t(t: float | None) -> str:
    return "—" if t is None else f"{t:g}"


def report_md(doc: dict) -> str:
    """The sweep report as markdown: tables per T and w, then the Arrhenius fits."""
    lines = [
        "# Sweep report",
        "",
        f"Seeds {doc['seeds']}, temperatures {doc['temperatures_K'] or ['(study)']} K, "
        f"band widths {doc['band_widths_A']} Å. Values are mean ± standard error across seeds.",
        "",
        "## Grain-boundary Li: Γ and enrichment as functions of w",
        "",
        "| T (K) | w (Å) | seeds | Γ (Li/nm²) | Γ_w (Li/nm²) | band ratio | enrichment | "
        "n_gb (excess) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in doc["groups"]:
        s = g["stats"]
        lines.append(
            f"| {_t(g['T_K'])} | {g['w_A']:g} | {g['n_seeds']} | "
            f"{_pm(s['gamma_per_nm2'])} | {_pm(s['gamma_within_w_per_nm2'])} | "
            f"{_pm(s['band_ratio'])} | {_pm(s['enrichment'])} | {_pm(s['excess_gb_mean'])} |"
        )
    lines += ["", "## Diffusion", "", "| T (K) | D_all (cm²/s) | D_gb_start | D_bulk_start |"]
    lines.append("|---|---|---|---|")
    w0 = doc["band_widths_A"][0] if doc["band_widths_A"] else None
    for g in doc["groups"]:
        if g["w_A"] != w0:
            continue
        s = g["stats"]
        lines.append(
            f"| {_t(g['T_K'])} | {_pm(s['D_all_cm2_s'], '.3e')} | "
            f"{_pm(s['D_gb_start_cm2_s'], '.3e')} | {_pm(s['D_bulk_start_cm2_s'], '.3e')} |"
        )
    lines += ["", "## Arrhenius fits ln D = ln D0 − Ea/(kB T)", ""]
    for key, fit in doc["arrhenius"].items():
        if not fit:
            lines.append(f"- {key}: no fit (needs ≥ 2 temperatures with D > 0)")
            continue
        ea = f"{fit['Ea_eV']:.3f}" + (
            f" ± {fit['Ea_se_eV']:.3f}" if fit["Ea_se_eV"] is not None else " (no uncertainty)"
        )
        d0 = math.exp(fit["ln_D0"])
        how = "weighted by seed SEs" if fit["weighted"] else "unweighted"
        chi = f", χ²/dof {fit['chi2_per_dof']:.2f}" if fit["chi2_per_dof"] is not None else ""
        lines.append(
            f"- {key}: Ea = {ea} eV, D0 = {d0:.3e} cm²/s, {len(fit['points'])} temperatures, "
            f"dof {fit['dof']} ({how}{chi})"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ plan: points on disk

PLAN = "plan.json"


@dataclass(frozen=True)
class PlannedPoint:
    name: str
    seed: int
    temperature_K: float | None
    study_file: Path  # the frozen study of this point (sweep block removed, overrides applied)
    run_dir: Path


@dataclass(frozen=True)
class Plan:
    """A sweep laid out under `run_dir`: control files in `run_dir/sweep/`, one run folder
    per point in `run_dir/points/<name>/`. A study without a sweep block is one point
    whose run folder is `run_dir` itself."""

    run_dir: Path
    study: str
    stages: tuple[str, ...]
    points: tuple[PlannedPoint, ...]
    spec: SweepSpec | None

    @property
    def control(self) -> Path:
        return self.run_dir / "sweep"

    @property
    def widths(self) -> list[float]:
        return list(self.spec.band_widths_A) if self.spec else []


def _read_doc(path: Path) -> dict:
    doc = safeyaml.load(path)
    if not isinstance(doc, dict):
        raise InputError(path, "(top level)", "expected a mapping of study fields")
    return doc


def plan(
    study: str | Path, run_dir: Path, overrides: list[str] | None = None, profile: str | None = None
) -> Plan:
    """Validate the study and every point's variant of it, and write the frozen point
    studies. Nothing is run; a bad field fails here, before anything is submitted."""
    import copy

    import yaml

    from runbook import config

    path = config.resolve_path(study)
    if not path.exists():
        config.load(study)  # raises the "no such study" error with the shipped names
    doc = _read_doc(path)
    block = doc.pop("sweep", None)
    sweep_sets = [o for o in overrides or [] if o.startswith("sweep.")]
    overrides = [o for o in overrides or [] if not o.startswith("sweep.")]
    if sweep_sets:  # `--set sweep.temperatures_K=[600,700]` edits the sweep block itself
        block = config.apply_overrides({"sweep": dict(block or {})}, sweep_sets, path)["sweep"]
    spec = parse_spec(block, path) if block is not None else None
    run_dir = run_dir.resolve()
    control = run_dir / "sweep"
    control.mkdir(parents=True, exist_ok=True)
    chosen = (
        points(spec)
        if spec
        else [Point("study", 0, None, ())]  # no sweep: one point, the study itself
    )
    planned = []
    stages: tuple[str, ...] = ()
    for p in chosen:
        d = config.apply_overrides(copy.deepcopy(doc), [*overrides, *p.overrides], path)
        if profile:
            d["profile"] = profile
        frozen = control / "studies" / f"{p.name}.yaml"
        frozen.parent.mkdir(parents=True, exist_ok=True)
        frozen.write_text(
            f"# {p.name} of {path} (written by runbook.sweep; edit the study, not this file)\n"
            + yaml.safe_dump(d, sort_keys=False)
        )
        cfg = config.load(frozen)  # every point validated before anything runs
        stages = tuple(cfg.stages)
        point_dir = run_dir / "points" / p.name if spec else run_dir
        planned.append(PlannedPoint(p.name, p.seed, p.temperature_K, frozen, point_dir))
    result = Plan(run_dir, str(path), stages, tuple(planned), spec)
    (control / PLAN).write_text(
        json.dumps(
            {
                "schema": "sweep-plan/1",
                "study": str(path),
                "stages": list(stages),
                "sweep": spec.model_dump() if spec else None,
                "points": [
                    {
                        "name": p.name,
                        "seed": p.seed,
                        "temperature_K": p.temperature_K,
                        "study_file": str(p.study_file),
                        "run_dir": str(p.run_dir),
                    }
                    for p in planned
                ],
            },
            indent=2,
        )
        + "\n"
    )
    return result


def load_plan(run_dir: Path) -> Plan:
    path = run_dir.resolve() / "sweep" / PLAN
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(run_dir, "sweep/plan.json", "not a sweep run folder") from None
    spec = SweepSpec.model_validate(doc["sweep"]) if doc.get("sweep") else None
    pts = tuple(
        PlannedPoint(p["name"], p["seed"], p["temperature_K"], Path(p["study_file"]),
                     Path(p["run_dir"]))
        for p in doc["points"]
    )  # fmt: skip
    return Plan(run_dir.resolve(), doc["study"], tuple(doc["stages"]), pts, spec)


def point_progress(p: PlannedPoint) -> list[str]:
    """Each stage's status in the point's run folder (complete/failed/incomplete/pending)."""
    from runbook import config, engine

    cfg = config.load(p.study_file)
    ctx = engine.Context(cfg, p.run_dir)
    return [engine.stage_state(ctx, n).status for n in cfg.stages]


def first_incomplete(p: PlannedPoint) -> int | None:
    """Index of the first stage that is not complete; None when the point is done."""
    for i, status in enumerate(point_progress(p)):
        if status != "complete":
            return i
    return None


def run_point(study_file: Path, run_dir: Path, until: str | None = None, echo=print):
    """Run one point's stages (skipping finished ones) with the local stage engine."""
    from runbook import config, engine

    return engine.run(config.load(study_file), run_dir, until=until, echo=echo)


# ---------------------------------------------------------------- collect: the report


def analysis_stage(point_dir: Path) -> tuple[Path, dict]:
    """The point's analysis: the last stage folder whose results.json is gb-analysis/1."""
    from checks.results import load_results

    found = None
    for res in sorted(point_dir.glob("[0-9][0-9]_*/results.json")):
        doc = load_results(res)
        if doc.get("schema") == "gb-analysis/1":
            found = (res.parent, doc)
    if found is None:
        raise InputError(point_dir, "results.json", "no analysis results in this run folder")
    return found


def reanalyse(stage_dir: Path, w: float, out: Path) -> dict:
    """The analysis stage's own commands again, in `out`, with band half-width `w`: every
    `bundle analyze` gets `--w w`; arguments naming files of the run become absolute paths.
    Returns the results.json they write."""
    from checks.results import load_results
    from runbook import engine, launchers

    out.mkdir(parents=True, exist_ok=True)
    for cmd in engine.read_commands(stage_dir):
        argv = list(cmd.argv)
        if argv[:2] == ["bundle", "analyze"]:
            if "--w" in argv:
                argv[argv.index("--w") + 1] = f"{w:g}"
            else:
                argv += ["--w", f"{w:g}"]
        argv = [
            str((stage_dir / a).resolve()) if a.startswith("..") and (stage_dir / a).exists() else a
            for a in argv
        ]
        line = [launchers.resolve_local(argv[0]), *argv[1:]]
        with open(out / cmd.log, "w") as log:
            code = subprocess.run(line, cwd=out, stdout=log, stderr=subprocess.STDOUT).returncode
        if code not in cmd.ok_codes:
            raise EngineError(
                f"re-analysis at w={w:g} failed: `{argv[0]}` exit {code}; see {out / cmd.log}"
            )
    return load_results(out / "results.json")


def collect(run_dir: Path, echo=print) -> Path:
    """Aggregate every point's analysis at every band width into `sweep/report/`."""
    from checks import aggregate as agg
    from checks.results import write_results

    pl = load_plan(run_dir)
    spec = pl.spec or SweepSpec()
    report_dir = pl.control / "report"
    results: dict[tuple[str, float | None, float], dict] = {}
    for p in pl.points:
        stage_dir, doc = analysis_stage(p.run_dir)
        base_w = float(doc["parameters"]["w_A"])
        results[(p.name, p.temperature_K, base_w)] = doc
        for w in sorted(set(pl.widths) - {base_w}):
            scratch = report_dir / "points" / p.name / f"w{w:g}"
            results[(p.name, p.temperature_K, w)] = reanalyse(stage_dir, w, scratch)
    doc = aggregate(results, spec)
    report_dir.mkdir(parents=True, exist_ok=True)
    # per (T, w): the seeds merged by checks.aggregate, so `bundle check` can judge them
    for t in {t for _, t, _ in results}:
        for w in {w for *_, w in results}:
            group = [(n, d) for (n, tt, ww), d in results.items() if tt == t and ww == w]
            merged = agg.aggregate([d for _, d in group], [n for n, _ in group])
            tag = (f"T{t:g}K_" if t is not None else "") + f"w{w:g}"
            write_results(report_dir / tag, merged)
    (report_dir / "sweep.json").write_text(json.dumps(doc, indent=2) + "\n")
    pngs = figures(doc, report_dir)
    md = report_dir / "report.md"
    md.write_text(
        report_md(doc)
        + "\n## Files\n\n"
        + "".join(f"- ![{p.stem}]({p.name})\n" for p in pngs)
        + "- `sweep.json`: every number above (schema sweep-report/1)\n"
        + "- `T<T>K_w<w>/results.json`: the seeds of each (T, w) merged by checks.aggregate "
        "(judge one with `bundle check`)\n"
    )
    echo(f"sweep report: {md}")
    return md


def main(argv: list[str] | None = None) -> int:
    """Entry of the Slurm jobs: `python -m runbook.sweep stage STUDY RUN_DIR STAGE` runs a
    point's stages up to STAGE (finished ones are skipped by their manifests);
    `python -m runbook.sweep collect RUN_DIR` writes the sweep report."""
    import sys

    from bundle.core.errors import BundleError

    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 4 and args[0] == "stage":
            run_point(Path(args[1]), Path(args[2]), until=args[3])
        elif len(args) == 2 and args[0] == "collect":
            collect(Path(args[1]))
        else:
            print(main.__doc__, file=sys.stderr)
            return 2
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def has_sweep(study: str | Path) -> bool:
    """Whether the study file carries a `sweep` block."""
    from runbook import config

    path = config.resolve_path(study)
    return path.exists() and "sweep" in _read_doc(path)


def run_local(
    study: str | Path,
    run_dir: Path,
    overrides: list[str] | None = None,
    profile: str | None = None,
    echo=print,
) -> Path:
    """The sweep here, point after point (each resumable like any run), then the report."""
    pl = plan(study, run_dir, overrides, profile)
    for p in pl.points:
        echo(f"== point {p.name} ({p.run_dir})")
        run_point(p.study_file, p.run_dir, echo=echo)
    return collect(pl.run_dir, echo=echo)
