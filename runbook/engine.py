"""The stage engine: render / execute / collect, manifests, skip and resume.

A run folder holds one folder per stage, `NN_<stage>/` (NN = position in the study),
plus `study.json` (the validated study as run, each stage's effective block). A stage is:

1. **render** (pure): config + upstream outputs → input files, written first into a
   sibling scratch folder `.render-NN_<stage>/`; the *input hash* is SHA-256 over the
   rendered files, the output hashes of every earlier stage, the stage kind and the
   locked versions of the tools it uses.
2. **execute**: `commands.json` run through a launcher (runbook.launchers).
3. **collect**: outputs → a typed result; then `manifest.json` is written LAST
   (atomically). A folder without a complete manifest is incomplete by definition, so a
   SIGKILL can never leave a "complete" stage with partial outputs.

On re-run a stage whose complete manifest carries the same input hash is skipped and its
folder is not touched. An incomplete (killed/failed) stage is wiped and redone. A
complete stage whose inputs changed is *refused* (one line naming the stage and the
changed inputs) unless `--force` names it or an earlier stage was redone in the same run:
finished work is never overwritten by accident. A refused run changes no file of the
run folder (`study.json` is written only once every refusal check has passed).

Each command of a stage runs in a session of its own, recorded in the stage folder
while it runs (runbook.children). A re-run first terminates the sessions a killed run
left running (SIGTERM, then SIGKILL) and says so in its log; their stages are
incomplete and are redone.

A stage whose result carries a non-empty `stop_reason` ends the run after it (a labelling
loop whose exploration is trusted enough: runbook.al.select); the later stages are not
run and the reason is echoed (again on every re-run, which skips up to that stage).

Where the commands run is the profile's launcher; `in_batch_job=True` says the caller is
already inside this stage's Slurm job (a sweep's job array), a parameter of `run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bundle.core import __version__, io, lock
from bundle.core.errors import BundleError, EngineError, InputError
from runbook import children, launchers, loader, stages
from runbook.config import Study
from runbook.files import (
    MANIFEST,
    SCHEMA,
    hash_tree,
    installed_versions,
    read_manifest,
    sha256_json,
    tool_versions,
    write_json_atomic,
)
from runbook.stage import Context, Stage, StageFailed


@dataclass
class StageState:
    """What `bundle status` shows for one stage folder."""

    index: int
    name: str
    kind: str
    status: str  # complete | failed | incomplete | pending
    wall_s: float | None = None
    exit_status: int | None = None
    input_hash: str = ""
    modified: list[str] = dataclasses.field(default_factory=list)


def stage_state(ctx: Context, name: str, verify: bool = False) -> StageState:
    d = ctx.dir_of(name)
    st = StageState(ctx.index(name), name, ctx.kind_of(name), "pending")
    if not d.exists():
        return st
    m = read_manifest(d)
    if m is None:
        st.status = "incomplete"
        return st
    st.status = m.get("status", "incomplete")
    st.wall_s, st.exit_status, st.input_hash = (
        m.get("wall_s"),
        m.get("exit_status"),
        m["input_hash"],
    )
    if verify and st.status == "complete":
        now = hash_tree(d)
        rec = m.get("outputs", {})
        st.modified = sorted(k for k in set(now) | set(rec) if now.get(k) != rec.get(k))
    return st


LOCK = ".run.lock"


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """The run folder, locked for this run. A folder this run created is removed again
    when the run ends before it recorded anything (a refused run leaves nothing)."""
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(run_dir / LOCK, "a") as f:  # "a": an existing lock file is not rewritten
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    run_dir, "(run folder)", "another `bundle run` is using it",
                    "wait or use --run-dir",
                ) from None  # fmt: skip
            yield
    finally:
        if made and {p.name for p in run_dir.iterdir()} <= {LOCK}:
            shutil.rmtree(run_dir)
            for p in made[1:]:  # the parents this run created, while empty
                with contextlib.suppress(OSError):
                    p.rmdir()


@dataclass
class RunSummary:
    run_dir: Path
    ran: list[str]
    skipped: list[str]
    wall_s: dict[str, float]
    stopped: tuple[str, str] | None = None  # (stage, why): a stage's result ended the run


def check_selection(study: Study, names: list[str], flag: str) -> None:
    """Each name given to --from/--until/--force is a stage of the study."""
    for n in names:
        if n not in study.stages:
            raise InputError(
                flag, n, "unknown stage of this study", f"stages: {', '.join(study.stages)}"
            )


def run(
    study: Study,
    run_dir: Path,
    *,
    start: str | None = None,
    until: str | None = None,
    force: list[str] | None = None,
    in_batch_job: bool = False,
    echo: Callable[[str], None] = print,
    on_record: Callable[[], None] | None = None,
) -> RunSummary:
    """Run the study's stages in order into `run_dir`, skipping finished ones.

    A refused run (a bad selection, a preflight error, the lock held, a finished stage
    whose inputs changed) changes no file of the run folder: `study.json` is written
    (atomically) only once every refusal check has passed, right before the first stage
    folder changes, or at the end when every stage was skipped; `on_record` is called
    then, just before (a sweep writes its control files)."""
    force = list(force or [])
    objs = prepare(study, run_dir, start, until, force)
    ctx = Context(study, run_dir.resolve())
    first = study.stages.index(start) if start else 0
    last = study.stages.index(until) if until else len(study.stages) - 1
    summary = RunSummary(ctx.run_dir, [], [], {})
    with _run_lock(ctx.run_dir):
        _reap_orphans(ctx, echo)
        for scratch in ctx.run_dir.glob(".render-*"):
            shutil.rmtree(scratch)
        record = _Record(ctx, on_record)
        redone = False
        for i, name in enumerate(study.stages[: last + 1]):
            if i < first:
                _require_complete(ctx, name, start)
                continue
            forced = name in force or (start is not None and i >= first)
            launcher = launchers.from_spec(
                study.active.launcher_for(name), in_batch_job=in_batch_job
            )
            ran = _run_stage(
                ctx, objs[name], launcher, forced=forced, redone=redone, echo=echo, record=record
            )
            if ran:
                summary.ran.append(name)
                summary.wall_s[name] = read_manifest(ctx.dir_of(name))["wall_s"]
                redone = True
            else:
                summary.skipped.append(name)
            why = stop_reason(ctx, name)
            if why:
                later = study.stages[i + 1 : last + 1]
                if later:
                    echo(f"stopped after {name}: {why} (not run: {', '.join(later)})")
                summary.stopped = (name, why)
                break
        record()
    return summary


def stop_reason(ctx: Context, name: str) -> str | None:
    """A finished stage's `stop_reason` (its result says the later stages are not needed,
    e.g. a labelling loop that converged), else None."""
    result = (read_manifest(ctx.dir_of(name)) or {}).get("result")
    why = result.get("stop_reason") if isinstance(result, dict) else None
    return str(why) if why else None


def prepare(
    study: Study, run_dir: Path, start: str | None, until: str | None, force: list[str]
) -> dict[str, Stage]:
    """Every check that needs no outputs (the selection, each stage's preflight); writes
    nothing. The stages, built."""
    check_selection(study, [s for s in (start, until) if s], "--from/--until")
    check_selection(study, force, "--force")
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "(run folder)", "is a file, not a folder", "give a folder")
    ctx = Context(study, run_dir.resolve())
    objs = {n: stages.build(study, n) for n in study.stages}
    for n in study.stages:
        objs[n].preflight(ctx)
    return objs


class _Record:
    """Writes `study.json` once, when called first: before the first stage folder of the
    run changes (or at the end of a run that skipped every stage). Unchanged bytes are
    not rewritten."""

    def __init__(self, ctx: Context, also: Callable[[], None] | None = None):
        self.ctx, self.also, self.done = ctx, also, False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        if self.also:
            self.also()
        path = self.ctx.run_dir / "study.json"
        doc = self.ctx.study.model_dump(mode="json", by_alias=True)
        if path.exists() and _read_json(path) == doc:
            return
        write_json_atomic(path, doc)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _reap_orphans(ctx: Context, echo: Callable[[str], None]) -> None:
    """End what a killed run left running in a stage folder (runbook.children: its
    session is terminated, SIGTERM then SIGKILL; the stage is then redone as any
    incomplete stage). Under the run lock: no living run owns such a session."""
    for name in ctx.study.stages:
        line = children.reap(ctx.dir_of(name))
        if line:
            echo(line)


def _require_complete(ctx: Context, name: str, start: str | None) -> None:
    if stage_state(ctx, name).status != "complete":
        raise InputError(
            ctx.dir_of(name),
            "manifest",
            f"--from {start}: earlier stage {name} is not complete",
            "run without --from first",
        )


def _upstream_hashes(ctx: Context, name: str) -> dict[str, str]:
    return {n: ctx.manifest(n)["output_hash"] for n in ctx.before(name)}


@dataclass(frozen=True)
class _Rendered:
    scratch: Path
    inputs: dict[str, str]
    upstream: dict[str, str]
    locked: dict[str, str]
    input_hash: str


def _render(ctx: Context, stage: Stage, d: Path) -> _Rendered:
    scratch = d.with_name(f".render-{d.name}")
    scratch.mkdir(parents=True)
    try:
        stage.render(ctx, scratch)
    except BaseException:
        shutil.rmtree(scratch)  # a refused render leaves nothing behind
        raise
    inputs = hash_tree(scratch)
    upstream = _upstream_hashes(ctx, stage.name)
    locked = tool_versions(stage.tools)
    digest = sha256_json(
        {"kind": stage.kind, "inputs": inputs, "upstream": upstream, "tools": locked}
    )
    return _Rendered(scratch, inputs, upstream, locked, digest)


def _run_stage(
    ctx: Context, stage: Stage, launcher, *, forced: bool, redone: bool, echo, record: _Record
) -> bool:
    """Returns True if the stage was executed, False if skipped."""
    d = ctx.dir_of(stage.name)
    label = f"[{ctx.index(stage.name)}/{len(ctx.study.stages)}] {stage.name}"
    r = _render(ctx, stage, d)
    old = read_manifest(d) if d.exists() else None
    if old and old.get("status") == "complete" and not forced:
        if old["input_hash"] == r.input_hash:
            shutil.rmtree(r.scratch)
            echo(f"{label}: complete, skipped (manifest matches)")
            return False
        if not redone:
            shutil.rmtree(r.scratch)
            raise _refusal(d, stage.name, r, old)
    record()  # every refusal check has passed: the run's record, then its changes
    if d.exists():
        why = "forced" if forced else "incomplete"
        if not forced and old:
            why = "failed" if old.get("status") == "failed" else "inputs changed upstream"
        echo(f"{label}: removing previous folder ({why})")
        shutil.rmtree(d)
    r.scratch.replace(d)
    echo(f"{label}: running ({launcher.describe()})")
    wall = _execute(ctx, stage, launcher, d, r)
    echo(f"{label}: complete in {wall:.1f} s")
    return True


def _refusal(d: Path, name: str, r: _Rendered, old: dict) -> InputError:
    changed = sorted(
        k for k in set(r.inputs) | set(old["inputs"]) if r.inputs.get(k) != old["inputs"].get(k)
    )
    if old.get("upstream") != r.upstream:
        changed.append("upstream outputs")
    if old.get("tools", {}).get("locked") != r.locked:
        changed.append("locked tool versions")
    return InputError(
        d / MANIFEST,
        name,
        f"finished with other inputs (changed: {', '.join(changed) or '?'})",
        f"redo it with --force {name}, or use another --run-dir",
    )


def _execute(ctx: Context, stage: Stage, launcher, d: Path, r: _Rendered) -> float:
    """Execute and collect; the manifest (complete or failed) is written last."""
    t0, cpu0 = time.perf_counter(), _children_cpu()
    manifest = {
        "schema": SCHEMA,
        "stage": stage.name,
        "kind": stage.kind,
        "index": ctx.index(stage.name),
        "study": ctx.study.name,
        "profile": ctx.study.profile,
        "bundle_version": __version__,
        "input_hash": r.input_hash,
        "inputs": r.inputs,
        "upstream": r.upstream,
        "launcher": launcher.describe(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        ran = stage.execute(launcher, d)
        result = stage.collect(ctx, d)
    except StageFailed as e:
        manifest.update(status="failed", exit_status=e.code, commands=e.ran)
        _failed(d, manifest, t0)
        raise EngineError(
            f"stage {stage.name}: `{e.cmd.argv[0]}` exited with status {e.code}; "
            f"see {d / e.cmd.log}"
        ) from None
    except BundleError as e:  # collect found bad outputs, or a guard refused
        manifest.update(status="failed", exit_status=None, error=str(e))
        _failed(d, manifest, t0)
        raise
    wall = round(time.perf_counter() - t0, 3)
    outputs = hash_tree(d)
    manifest.update(
        status="complete",
        exit_status=0,
        commands=ran,
        wall_s=wall,
        cpu_s=round(_children_cpu() - cpu0, 3),
        tools={
            "lock_hash": lock.lock_hash(),
            "locked": r.locked,
            "installed": installed_versions(stage.tools),
            "probed": stage.probe(d),
        },
        outputs=outputs,
        output_hash=sha256_json(outputs),
        result=plain(result),
    )
    write_json_atomic(d / MANIFEST, manifest)
    return wall


def _failed(d: Path, manifest: dict, t0: float) -> None:
    manifest.update(wall_s=round(time.perf_counter() - t0, 3))
    write_json_atomic(d / MANIFEST, manifest)


def _children_cpu() -> float:
    """User + system CPU seconds of finished child processes (the stage's commands)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def plain(result: Any) -> Any:
    """A typed stage result as plain JSON data (what the manifest records)."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


def status(run_dir: Path, verify: bool = True) -> tuple[Study, list[StageState]]:
    """The state of every stage of the study recorded in `run_dir/study.json`."""
    path = run_dir / "study.json"
    if not path.exists():
        raise InputError(run_dir, "study.json", "not a run folder", "give the --run-dir of a run")
    study = loader.from_record(io.read_mapping(path))
    ctx = Context(study, run_dir.resolve())
    return study, [stage_state(ctx, n, verify=verify) for n in study.stages]


@dataclass(frozen=True)
class Verdict:
    """The recorded verdict of one complete `check` stage."""

    stage: str
    verdict: str  # PASS | FAIL
    report: Path


@dataclass(frozen=True)
class _Judged:
    """What every check stage's result holds: its verdict, and maybe its report file (the
    reference check's CheckResult has one; the potential study's ValidateResult, whose
    report is validation.json, does not name it). Other fields are ignored."""

    verdict: str
    report: str = ""


def verdicts(study: Study, run_dir: Path) -> list[Verdict]:
    """The verdicts of the study's complete check stages in `run_dir` (a value each stage
    recorded when it collected; a check that could not judge is a failed stage, not here)."""
    ctx = Context(study, run_dir.resolve())
    out = []
    for name in study.stages:
        m = read_manifest(ctx.dir_of(name))
        if ctx.kind_of(name) == "check" and m and m.get("status") == "complete":
            r = ctx.result(name, _Judged)
            out.append(Verdict(name, r.verdict, ctx.dir_of(name) / r.report))
    return out
