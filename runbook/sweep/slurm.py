"""The sweep as Slurm job arrays: `bundle run STUDY --executor slurm`.

Per stage one job array over the points that still need it (task i = point i;
`aftercorr` on the previous stage's array, so a point moves on as soon as its own
previous stage ends OK), then a collect job (`afterok` on the last array) that writes
the sweep report. Each task runs `python -m runbook.sweep stage POINT_STUDY POINT_DIR
STAGE`, which is told it runs inside its batch job (a parameter, runbook.sweep.__main__).
The stage manifests on disk are the truth: a cancelled or failed task leaves an
incomplete stage, which the next `bundle run` resubmits. Batch scripts are rendered by
runbook.slurm; the jobs of a run are recorded in `sweep/slurm/jobs.json`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bundle.core.errors import EngineError, InputError
from runbook import engine, loader
from runbook.config import Study
from runbook.slurm import Allocation, BatchJob, TaskState, queue, render_batch, sbatch, sh, states
from runbook.sweep.local import ALL, Selection
from runbook.sweep.plan import Plan, first_incomplete, layout, statuses, write_files

JOBS = "jobs.json"


def allocation_for(cfg: Study, stage: str) -> Allocation:
    """A stage job's request from the profile's launcher spec of that stage. On a CUDA
    profile an MPI stage takes one GPU per rank (the spec's `gpus`, else its `np`, capped
    by the profile's GPU count)."""
    spec = cfg.active.launcher_for(stage)
    ranks = spec.np if spec.kind != "local" else 1
    gpus = spec.gpus
    if not gpus and cfg.active.accelerator == "cuda" and spec.kind != "local":
        gpus = min(ranks, cfg.active.gpus) if cfg.active.gpus else ranks
    return Allocation(
        gpus=gpus,
        ranks=ranks,
        threads=spec.threads or 1,
        time=spec.time,
        partition=spec.partition,
        account=spec.account,
        extra=tuple(spec.sbatch),
    )


def _record(control: Path) -> dict:
    path = control / "slurm" / JOBS
    return json.loads(path.read_text()) if path.exists() else {"submissions": []}


def _save_record(control: Path, rec: dict) -> None:
    path = control / "slurm" / JOBS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(path)


def _job_ids(rec: dict) -> set[str]:
    return {s["job"] for s in rec["submissions"]}


@dataclass
class Progress:
    """Where a sweep stands: per point, each stage's status on disk; the active jobs; the
    report; each point's check verdicts."""

    plan: Plan
    stages: dict[str, list[str]]  # point name -> stage statuses
    active: list[TaskState]
    report: Path | None
    verdicts: dict[str, list[engine.Verdict]]

    @property
    def done(self) -> bool:
        return all(all(s == "complete" for s in v) for v in self.stages.values())

    def done_for(self, sel: Selection) -> bool:
        """Every selected point complete up to the selected last stage."""
        last = self.plan.stages.index(sel.until) + 1 if sel.until else len(self.plan.stages)
        chosen = [p.name for p in sel.points(self.plan)]
        return all(all(s == "complete" for s in self.stages[n][:last]) for n in chosen)

    def failed_checks(self) -> list[str]:
        return [
            f"{n}:{v.stage}" for n, vs in self.verdicts.items() for v in vs if v.verdict == "FAIL"
        ]


def progress(pl: Plan) -> Progress:
    rec = _record(pl.control)
    active = [t for t in queue(_job_ids(rec)) if t.active]
    report = pl.control / "report" / "report.md"
    studies = {p.name: loader.load(p.study_file) for p in pl.points}
    return Progress(
        pl,
        {p.name: statuses(studies[p.name], p.run_dir) for p in pl.points},
        active,
        report if report.exists() else None,
        {p.name: engine.verdicts(studies[p.name], p.run_dir) for p in pl.points},
    )


def describe(pr: Progress) -> list[str]:
    """A table: one line per point, one column per stage; then the active jobs."""
    pl = pr.plan
    width = max(len(p.name) for p in pl.points)
    cols = [max(len(n), 10) for n in pl.stages]
    lines = [
        f"{'point':<{width}}  "
        + "  ".join(f"{n:<{c}}" for n, c in zip(pl.stages, cols, strict=True))
    ]
    for name, sts in pr.stages.items():
        lines.append(
            f"{name:<{width}}  " + "  ".join(f"{s:<{c}}" for s, c in zip(sts, cols, strict=True))
        )
    if pr.active:
        jobs = [f"{t.job}" + (f"_{t.task}" if t.task is not None else "") + f" {t.state}"
                for t in pr.active]  # fmt: skip
        lines.append("active jobs: " + ", ".join(jobs))
    return [ln.rstrip() for ln in lines]


def stage_job(
    pl: Plan, cfg: Study, k: int, tasks: tuple[int, ...], after: str | None, python: str
) -> BatchJob:
    """The job array of stage k over the point indices `tasks` (pure: no submission)."""
    stage = pl.stages[k]
    point_dir = '"points/$POINT"' if pl.spec is not None else "."
    return BatchJob(
        name=f"{cfg.name}.{stage}",
        workdir=pl.run_dir,
        output=str(pl.control / "slurm" / "logs" / "%x-%A_%a.out"),
        alloc=allocation_for(cfg, stage),
        steps=(
            f'{sh(python)} -m runbook.sweep stage "sweep/studies/$POINT.yaml" {point_dir} '
            f"{sh(stage)}",
        ),
        after_corr=after,
        array=tuple(p.name for p in pl.points),
        array_tasks=tasks,
        array_parallel=pl.spec.max_parallel if pl.spec else None,
        env=(("PYTHONUNBUFFERED", "1"),),
    )


def collect_job(pl: Plan, cfg: Study, after: str | None, python: str) -> BatchJob:
    return BatchJob(
        name=f"{cfg.name}.collect",
        workdir=pl.run_dir,
        output=str(pl.control / "slurm" / "logs" / "%x-%j.out"),
        alloc=Allocation(time="01:00:00"),
        steps=(f"{sh(python)} -m runbook.sweep collect .",),
        after=(after,) if after else (),
        env=(("PYTHONUNBUFFERED", "1"),),
    )


def submit(pl: Plan, python: str, sel: Selection = ALL) -> list[dict]:
    """Submit what is unfinished among the selected points and stages: per stage one job
    array, then (when the selection is the whole sweep) the collect job. Returns the
    submissions made."""
    chosen = {p.name for p in sel.points(pl)}
    last = pl.stages.index(sel.until) if sel.until else len(pl.stages) - 1
    firsts = {p.name: first_incomplete(p) for p in pl.points}
    cfg = loader.load(pl.points[0].study_file)
    slurm_dir = pl.control / "slurm"
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    subs: list[dict] = []
    prev: str | None = None
    for k, stage in enumerate(pl.stages[: last + 1]):
        tasks = tuple(
            i
            for i, p in enumerate(pl.points)
            if p.name in chosen and (f := firsts[p.name]) is not None and f <= k
        )
        if not tasks:
            continue
        script = slurm_dir / f"{k + 1:02d}_{stage}.sbatch"
        script.write_text(render_batch(stage_job(pl, cfg, k, tasks, prev, python)))
        prev = sbatch(script)
        names = [pl.points[i].name for i in tasks]
        subs.append(
            {"stage": stage, "job": prev, "tasks": list(tasks), "points": names,
             "script": str(script)}
        )  # fmt: skip
    if sel.point is None and sel.until is None:
        script = slurm_dir / "collect.sbatch"
        script.write_text(render_batch(collect_job(pl, cfg, prev, python)))
        subs.append({"stage": "collect", "job": sbatch(script), "tasks": [], "points": [],
                     "script": str(script)})  # fmt: skip
    return subs


def run_study(
    loaded: loader.Loaded,
    run_dir: Path,
    *,
    sel: Selection = ALL,
    wait: bool = False,
    poll_s: float = 2.0,
    echo=print,
) -> Progress:
    """`bundle run STUDY --executor slurm`: submit, track, resume, collect.

    - jobs of this run still queued or running: report them, submit nothing (with
      `wait`, wait for them to end first);
    - otherwise submit exactly what is unfinished on disk (stage manifests are the
      truth: a cancelled or failed task leaves an incomplete stage, which is redone),
      plus the collect job if the report is missing;
    - with `wait`, block until the jobs end and say where the report is, or which
      point and stage failed and where its log is. The caller judges the verdicts."""
    if sel.start or sel.force:
        raise InputError(
            "--from/--force", "--executor slurm", "not for slurm runs",
            "redo stages with a local run (--executor local), or remove their folders",
        )  # fmt: skip
    pl, texts = layout(loaded, run_dir)
    sel.check(pl, loaded.study)  # before a file is written
    write_files(texts)
    pr = progress(pl)
    if pr.active:
        echo(f"{len(pr.active)} job(s) of this run are still queued or running; nothing submitted")
        for line in describe(pr):
            echo(line)
        if not wait:
            return pr
        pr = _wait(pl, poll_s)
    if pr.done_for(sel) and (pr.report or sel.point or sel.until):
        echo(f"complete: every stage of every point is finished; report {pr.report}")
        return pr
    _submit(pl, sel, echo)
    if wait:
        pr = _wait(pl, poll_s)
        for line in describe(pr):
            echo(line)
        if not pr.done_for(sel) or not (pr.report or sel.point or sel.until):
            raise EngineError(_failure(pl, pr))
        echo(f"complete; report {pr.report}" if pr.report else "complete")
    return pr


def _submit(pl: Plan, sel: Selection, echo) -> None:
    rec = _record(pl.control)
    subs = submit(pl, sys.executable, sel)
    rec["submissions"] += subs
    _save_record(pl.control, rec)
    for s in subs:
        what = f"points {','.join(s['points'])}" if s["points"] else "the sweep report"
        echo(f"submitted {s['stage']}: job {s['job']} ({what})")


def _wait(pl: Plan, poll_s: float) -> Progress:
    while True:
        pr = progress(pl)
        if not pr.active:
            return pr
        time.sleep(poll_s)


def _failure(pl: Plan, pr: Progress) -> str:
    rec = _record(pl.control)
    st = states(_job_ids(rec))
    bad = [
        f"{t.job}_{t.task} {t.state}" if t.task is not None else f"{t.job} {t.state}"
        for t in st.values()
        if t.state not in ("COMPLETED",) and not t.active
    ]
    unfinished = [
        f"{name}:{stage}"
        for name, sts in pr.stages.items()
        for stage, s in zip(pl.stages, sts, strict=True)
        if s != "complete"
    ]
    return (
        f"slurm run incomplete: {', '.join(unfinished[:6]) or 'report missing'}"
        f"{' ...' if len(unfinished) > 6 else ''}; jobs {', '.join(bad[:6]) or '?'}; logs in "
        f"{pl.control / 'slurm' / 'logs'}; run again to resubmit what is unfinished"
    )
