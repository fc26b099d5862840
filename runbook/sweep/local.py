"""The sweep here: point after point through the stage engine, then the report.

Partial runs select like a single study's: `--point NAME` runs one point, `--until
STAGE` stops every point after STAGE, `--from STAGE` redoes STAGE and later, `--force
STAGE` redoes one stage. The report is written once every point is complete.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runbook import engine, loader
from runbook.config import Study
from runbook.engine import RunSummary
from runbook.sweep import collect
from runbook.sweep.plan import PLAN, Plan, PlannedPoint, first_incomplete, layout, write_files


@dataclass(frozen=True)
class Selection:
    """Which points and stages a run covers (`--point`, `--from`, `--until`, `--force`)."""

    point: str | None = None
    start: str | None = None
    until: str | None = None
    force: tuple[str, ...] = ()

    def points(self, pl: Plan) -> tuple[PlannedPoint, ...]:
        return (pl.point(self.point),) if self.point else pl.points

    def check(self, pl: Plan, study: Study) -> None:
        """Every name is a point or a stage of the study (before anything is written)."""
        engine.check_selection(study, [s for s in (self.start, self.until) if s], "--from/--until")
        engine.check_selection(study, list(self.force), "--force")
        self.points(pl)


ALL = Selection()  # every point, every stage


@dataclass(frozen=True)
class Outcome:
    """What a sweep run left: the plan, the report (None until every point is complete),
    and the check verdicts of each point."""

    plan: Plan
    report: Path | None
    verdicts: dict[str, list[engine.Verdict]]

    def failed(self) -> list[str]:
        """`point:stage` of every check that FAILed."""
        return [
            f"{name}:{v.stage}"
            for name, vs in self.verdicts.items()
            for v in vs
            if v.verdict == "FAIL"
        ]


def run_point(
    study_file: Path,
    run_dir: Path,
    sel: Selection = ALL,
    *,
    in_batch_job: bool = False,
    echo: Callable[[str], None] = print,
) -> RunSummary:
    """One point's stages (finished ones skipped) through the stage engine."""
    return engine.run(
        loader.load(study_file),
        run_dir,
        start=sel.start,
        until=sel.until,
        force=list(sel.force),
        in_batch_job=in_batch_job,
        echo=echo,
    )


def run_local(
    loaded: loader.Loaded,
    run_dir: Path,
    sel: Selection = ALL,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """The sweep of a loaded study here, point after point (each resumable like any run),
    then the report when every point is complete.

    Everything that can refuse is checked before a file is written: the selection and
    every selected point's preflight. A point's control files (plan.json, its frozen
    study, and the frozen studies not yet on disk) are written when its run records
    itself (runbook.engine: once every refusal check of that point has passed), so a
    refused sweep leaves no file behind, and a frozen study never describes stages that
    were refused."""
    pl, texts, studies = prepare(loaded, run_dir, sel)
    for p in sel.points(pl):
        echo(f"== point {p.name} ({p.run_dir})")
        own = {k: v for k, v in texts.items() if k.name == PLAN or k == p.study_file}
        own |= {k: v for k, v in texts.items() if not k.exists()}
        engine.run(
            studies[p.name],
            p.run_dir,
            start=sel.start,
            until=sel.until,
            force=list(sel.force),
            echo=echo,
            on_record=functools.partial(write_files, own),
        )
    return outcome(pl, echo)


def prepare(
    loaded: loader.Loaded, run_dir: Path, sel: Selection = ALL
) -> tuple[Plan, dict[Path, str], dict[str, Study]]:
    """Every check of a sweep run that needs no outputs, writing nothing: the selection
    and each selected point's preflight (runbook.engine.prepare). The plan, the text of
    its control files and each point's study."""
    pl, texts = layout(loaded, run_dir)
    sel.check(pl, loaded.study)
    studies = {p.point.name: p.study for p in loaded.points}
    for p in sel.points(pl):
        engine.prepare(studies[p.name], p.run_dir, sel.start, sel.until, list(sel.force))
    return pl, texts, studies


def outcome(pl: Plan, echo: Callable[[str], None] = print) -> Outcome:
    """The report (written when every point is complete) and every point's verdicts."""
    report = None
    if all(first_incomplete(p) is None for p in pl.points):
        report = collect.collect(pl.run_dir, echo=echo)
    else:
        echo("sweep report: not written (not every point is complete)")
    return Outcome(pl, report, collect.point_verdicts(pl))
