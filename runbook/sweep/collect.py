"""The sweep report: every point's analysis at every band width, aggregated.

`collect(run_dir)` reads each point's analysis stage (its results.json), re-analyses its
trajectories at the other band widths (the stage's own analysis requests with `w`
changed, runbook.stages.analyze.AnalysisStage), aggregates (runbook.sweep.stats) and writes
`sweep/report/` (report.md, sweep.json, figures, and per (T, w) the seeds merged by
checks.aggregate, which `bundle check` can judge). The report lists every point's check
verdicts (`point_verdicts`).
"""

from __future__ import annotations

import json
from pathlib import Path

from bundle.core.errors import InputError
from checks import aggregate as agg
from checks.results import write_results
from checks.schema import Results
from runbook import engine, loader, stages
from runbook.config import SweepSpec
from runbook.stage import Context
from runbook.stages.analyze import AnalysisStage
from runbook.sweep import report, stats
from runbook.sweep.plan import Plan, PlannedPoint, load_plan


def analysis_stage(p: PlannedPoint) -> tuple[AnalysisStage, Path]:
    """The point's analysis: its last stage of kind `analyze` (and the stage's folder)."""
    study = loader.load(p.study_file)
    names = [n for n in study.stages if study.kinds[n] == "analyze"]
    stage = stages.build(study, names[-1]) if names else None
    if not isinstance(stage, AnalysisStage):
        raise InputError(p.study_file, "stages", "no analysis stage (kind analyze) to report on")
    return stage, Context(study, p.run_dir).dir_of(stage.name)


def reanalyse(p: PlannedPoint, stage: AnalysisStage, stage_dir: Path, w: float, out: Path):
    """The point's analysis again with band half-width `w`, into `out`."""
    try:
        return stage.reanalyse(stage_dir, w, out)
    except InputError as e:
        why = f"{e.problem} (re-analysis of point {p.name} at w = {w:g} Å)"
        raise InputError(e.file, e.field, why, e.fix) from None


def collect(run_dir: Path, echo=print) -> Path:
    """Aggregate every point's analysis at every band width into `sweep/report/`, with
    every point's check verdicts."""
    pl = load_plan(run_dir)
    report_dir = pl.control / "report"
    results = point_results(pl, report_dir)
    doc = stats.aggregate(results, pl.spec or SweepSpec())
    doc["verdicts"] = {
        name: {v.stage: v.verdict for v in vs} for name, vs in point_verdicts(pl).items()
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    # per (T, w): the seeds merged by checks.aggregate, so `bundle check` can judge them
    for t in {t for _, t, _ in results}:
        for w in {w for *_, w in results}:
            group = [(n, d) for (n, tt, ww), d in results.items() if tt == t and ww == w]
            merged = (  # one seed: its own results (checks.aggregate needs two)
                agg.aggregate([d for _, d in group], [n for n, _ in group])
                if len(group) > 1
                else group[0][1]
            )
            tag = (f"T{t:g}K_" if t is not None else "") + f"w{w:g}"
            write_results(report_dir / tag, merged)
    (report_dir / "sweep.json").write_text(json.dumps(doc, indent=2) + "\n")
    pngs = report.figures(doc, report_dir)
    md = report_dir / "report.md"
    md.write_text(
        report.report_md(doc)
        + "\n## Files\n\n"
        + "".join(f"- ![{p.stem}]({p.name})\n" for p in pngs)
        + "- `sweep.json`: every number above (schema sweep-report/1)\n"
        + "- `T<T>K_w<w>/results.json`: the seeds of each (T, w) merged by checks.aggregate "
        "(judge one with `bundle check`)\n"
    )
    echo(f"sweep report: {md}")
    return md


def point_results(pl: Plan, report_dir: Path) -> dict[tuple[str, float | None, float], dict]:
    """results[(point, T, w)]: each point's analysis, re-analysed at every other width."""
    results: dict[tuple[str, float | None, float], dict] = {}
    for p in pl.points:
        stage, stage_dir = analysis_stage(p)
        doc = stage.results(stage_dir)
        base_w = Results.of(doc, stage_dir).parameters.w_A
        results[(p.name, p.temperature_K, base_w)] = doc
        for w in sorted(set(pl.widths) - {base_w}):
            scratch = report_dir / "points" / p.name / f"w{w:g}"
            results[(p.name, p.temperature_K, w)] = reanalyse(p, stage, stage_dir, w, scratch)
    return results


def point_verdicts(pl: Plan) -> dict[str, list[engine.Verdict]]:
    """Each point's check verdicts (complete check stages only)."""
    return {p.name: engine.verdicts(loader.load(p.study_file), p.run_dir) for p in pl.points}
