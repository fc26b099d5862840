"""`bundle run` (a study's stages, resumable; a sweep's points; here or on Slurm) and
`bundle status` (a run folder's stages, or a sweep's points)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bundle.core import atomic
from bundle.core.errors import CheckFailed, InputError

Study = Annotated[str, typer.Argument(help="Study name (runbook/studies/NAME.yaml) or file.")]
RunDir = Annotated[
    Path | None, typer.Option("--run-dir", help="Run folder (default: runs/<study name>).")
]
Start = Annotated[str | None, typer.Option("--from", help="Redo this stage and every later one.")]
Until = Annotated[str | None, typer.Option("--until", help="Stop after this stage.")]
Force = Annotated[list[str] | None, typer.Option("--force", help="Redo this stage (repeatable).")]
Point = Annotated[str | None, typer.Option("--point", help="A sweep: run only this point.")]
Profile = Annotated[
    str | None, typer.Option("--profile", help="Executor profile of the study (cpu, h200).")
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a study value: dotted.key=YAML (repeatable)."),
]
Executor = Annotated[
    str, typer.Option("--executor", help="local (here) or slurm (batch jobs; returns).")
]
Wait = Annotated[
    bool, typer.Option("--wait", help="slurm: wait for the jobs and report the outcome.")
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Check the study, every sweep point, the selection and each stage's "
        "preflight; run nothing, write nothing.",
    ),
]


def run(
    study: Study,
    run_dir: RunDir = None,
    start: Start = None,
    until: Until = None,
    force: Force = None,
    point: Point = None,
    profile: Profile = None,
    overrides: Overrides = None,
    executor: Executor = "local",
    wait: Wait = False,
    dry_run: DryRun = False,
) -> None:
    """Run a study's stages into NN_<stage>/ folders (a sweep: one run folder per point,
    then the sweep report). A stage whose manifest matches its inputs is skipped; a killed
    or failed stage is redone; a finished stage whose inputs changed is refused unless
    --force/--from name it. The whole study is checked before anything runs. Exit 1 if a
    `check` stage FAILed (with --executor slurm: once --wait saw the jobs end)."""
    from runbook import loader
    from runbook.sweep import local, slurm

    if executor not in ("local", "slurm"):
        raise InputError("--executor", executor, "unknown executor", "allowed: local, slurm")
    if run_dir is not None:
        atomic.check_output(run_dir, "--run-dir")
    loaded = loader.load_all(study, overrides or [], profile)
    folder = run_dir or Path("runs") / loaded.study.name
    sel = local.Selection(point, start, until, tuple(force or ()))
    if dry_run:
        _dry_run(loaded, folder, sel)
    elif executor == "slurm":
        pr = slurm.run_study(loaded, folder, sel=sel, wait=wait, echo=typer.echo)
        _judge(pr.failed_checks() if wait else [])
    elif loaded.sweep is not None:
        _judge(local.run_local(loaded, folder, sel, echo=typer.echo).failed())
    else:
        if point:
            raise InputError("--point", point, "this study has no sweep", "leave --point out")
        _run_one(loaded.study, folder, sel)


def _dry_run(loaded, folder: Path, sel) -> None:
    from runbook import engine
    from runbook.sweep import local

    if loaded.sweep is not None:
        pl, _, _ = local.prepare(loaded, folder, sel)
        what = f"{len(sel.points(pl))} sweep point(s)"
    else:
        if sel.point:
            raise InputError("--point", sel.point, "this study has no sweep", "leave --point out")
        engine.prepare(loaded.study, folder, sel.start, sel.until, list(sel.force))
        what = "the study"
    typer.echo(f"{loaded.file}: {what} checked ({', '.join(loaded.study.stages)}); nothing run")


def _run_one(study, folder: Path, sel) -> None:
    from runbook import engine

    summary = engine.run(
        study, folder, start=sel.start, until=sel.until, force=list(sel.force), echo=typer.echo
    )
    typer.echo(f"run folder: {summary.run_dir}")
    if summary.ran:
        times = ", ".join(f"{n} {s:.1f} s" for n, s in summary.wall_s.items())
        typer.echo(
            f"ran {len(summary.ran)} stage(s): {times}; total {sum(summary.wall_s.values()):.1f} s"
        )
    _, states = engine.status(summary.run_dir, verify=False)
    for st in states:
        if st.kind == "report" and st.status == "complete":
            typer.echo(f"report: {summary.run_dir / f'{st.index:02d}_{st.name}' / 'report.md'}")
    verdicts = engine.verdicts(study, summary.run_dir)
    _judge([v.stage for v in verdicts if v.verdict == "FAIL"], "see their check.json")


def _judge(failed: list[str], where: str = "see the sweep report") -> None:
    if failed:
        raise CheckFailed(f"check stage(s) {', '.join(failed)} FAILED; {where}")


def status(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `bundle run`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each stage of a run: complete / failed / incomplete (killed) / pending, its wall
    time and input hash, and any file changed since its manifest was written."""
    from runbook import engine

    if (run_dir / "sweep" / "plan.json").exists() and not (run_dir / "study.json").exists():
        _sweep_status(run_dir, as_json)
        return
    study, states = engine.status(run_dir)
    if as_json:
        typer.echo(json.dumps([s.__dict__ for s in states], indent=2))
        return
    typer.echo(f"{study.name} (profile {study.profile}) in {run_dir}")
    for s in states:
        wall = f"{s.wall_s:8.1f} s" if s.wall_s is not None else " " * 10
        line = f"  {s.index:02d}_{s.name:<12} {s.status:<10} {wall}  {s.input_hash[:12]}"
        if s.modified:
            line += f"  MODIFIED since completion: {', '.join(s.modified[:5])}"
        typer.echo(line)


def _sweep_status(run_dir: Path, as_json: bool) -> None:
    """A sweep: one line per point, one column per stage."""
    from runbook.sweep import plan, slurm

    pr = slurm.progress(plan.load_plan(run_dir))
    if as_json:
        typer.echo(json.dumps({"points": pr.stages, "report": str(pr.report or "")}))
        return
    for line in slurm.describe(pr):
        typer.echo(line)
    typer.echo(f"report: {pr.report}" if pr.report else "report: not yet written")
