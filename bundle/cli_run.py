"""`bundle run` (a study's stages, resumable) and `bundle status` (a run folder's stages)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bundle.core.errors import CheckFailed, InputError


def run(
    study: Annotated[str, typer.Argument(help="Study name (runbook/studies/NAME.yaml) or file.")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Run folder (default: runs/<study name>).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Redo this stage and every later one.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop after this stage.")] = None,
    force: Annotated[
        list[str] | None, typer.Option("--force", help="Redo this stage (repeatable).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Executor profile of the study (cpu, h200).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a study value: dotted.key=YAML (repeatable)."),
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="local (here) or slurm (batch jobs; returns).")
    ] = "local",
    wait: Annotated[
        bool, typer.Option("--wait", help="slurm: wait for the jobs and report the outcome.")
    ] = False,
) -> None:
    """Run a study's stages into NN_<stage>/ folders. A stage whose manifest matches its
    inputs is skipped; a killed or failed stage is redone; a finished stage whose inputs
    changed is refused unless --force/--from name it. Exit 1 if a `check` stage FAILed."""
    from bundle.core import atomic
    from runbook import config, engine, sweep

    if executor not in ("local", "slurm"):
        raise InputError("--executor", executor, "unknown executor", "allowed: local, slurm")
    if run_dir is not None:
        atomic.check_output(run_dir, "--run-dir")
    if executor == "slurm" or sweep.has_sweep(study):  # sweeps and Slurm: runbook.sweep/slurm
        if start or until or force:
            raise InputError("--from/--until/--force", executor, "not for sweeps or slurm runs")
        folder = run_dir or Path("runs") / config.load(study, overrides or [], profile).name
        if executor == "slurm":
            from runbook import slurm

            slurm.run_study(study, folder, overrides=overrides, profile=profile, wait=wait,
                            echo=typer.echo)  # fmt: skip
        else:
            sweep.run_local(study, folder, overrides, profile, echo=typer.echo)
        return
    cfg = config.load(study, overrides=overrides or [], profile=profile)
    folder = run_dir or Path("runs") / cfg.name
    summary = engine.run(cfg, folder, start=start, until=until, force=force or [], echo=typer.echo)
    _, states = engine.status(folder, verify=False)
    typer.echo(f"run folder: {summary.run_dir}")
    if summary.ran:
        times = ", ".join(f"{n} {s:.1f} s" for n, s in summary.wall_s.items())
        typer.echo(
            f"ran {len(summary.ran)} stage(s): {times}; total {sum(summary.wall_s.values()):.1f} s"
        )
    ctx = engine.Context(cfg, summary.run_dir)
    for st in states:
        if st.kind == "report" and st.status == "complete":
            typer.echo(f"report: {ctx.dir_of(st.name) / 'report.md'}")
    failed = [
        st.name
        for st in states
        if st.kind == "check"
        and st.status == "complete"
        and engine.read_manifest(ctx.dir_of(st.name))["result"]["verdict"] == "FAIL"
    ]
    if failed:
        raise CheckFailed(f"check stage(s) {', '.join(failed)} FAILED; see their check.json")


def status(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `bundle run`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each stage of a run: complete / failed / incomplete (killed) / pending, its wall
    time and input hash, and any file changed since its manifest was written."""
    from runbook import engine

    if (run_dir / "sweep" / "plan.json").exists() and not (run_dir / "study.json").exists():
        from runbook import slurm, sweep  # a sweep: one line per point, one column per stage

        pr = slurm.progress(sweep.load_plan(run_dir))
        if as_json:
            typer.echo(json.dumps({"points": pr.stages, "report": str(pr.report or "")}))
            return
        for line in slurm.describe(pr):
            typer.echo(line)
        typer.echo(f"report: {pr.report}" if pr.report else "report: not yet written")
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
