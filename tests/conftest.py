"""Shared test fixtures.

Real components (pw.x, LAMMPS, nequip, docker, slurm) are used for real. When
one is missing, `require` skips the test with the reason printed, except under
CI=true, where a missing component FAILS the test: CI must install everything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deepmd_fixture import deepmd_run  # noqa: F401
from tests.llzo_fixture import llzo_gb_runs  # noqa: F401
from tests.slurm_fixture import slurm_cluster  # noqa: F401

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# `make test` runs the suite on xdist workers (--dist loadgroup, no reorder; three on two
# cores: the docker and slurm units wait on I/O and jobs much of the time). Each module is
# one unit of work (its module fixtures run once); the tests that share a machine-wide
# service are one unit each: slurm (one cluster) and docker, in two units that share one
# engine and one image build (the first to need it builds, the other waits for it):
# `docker` (the build, then pack/install/verify offline and every other test that uses
# the engine) starts first, `docker_images` (the image's own tests) in its alphabetical
# place among the units that need no shared study, so its worker comes to it about when
# the build ends (~23 min) and runs it beside the offline acceptance instead of after it
# (in the CI run of 2026-11-30 one worker ran the docker tests alone for 11 min at the
# end; placed last, the unit started only at ~35 min in the third rehearsal).
# Order: the three longest units first, each worker's second unit a short one
# (xdist hands every worker two units at the start), then the smoke study's own test
# (it runs the shared smoke fixture), then every unit that needs no shared study, and
# last the units that read the smoke run: a worker reaching one early would wait on the
# fixture's lock instead of working (measured in the rehearsal: a worker idle ~15 min).
SERVICE_GROUPS = {
    "docker": ("test_offline",),  # and every other test that uses the engine (_unit)
    "docker_images": ("test_images_build",),
    "llzo_gb": ("test_llzo_study", "test_llzo_relax"),  # one llzo-gb run (tests/llzo_fixture.py)
    "slurm": ("test_slurm_cluster", "test_slurm_launcher", "test_slurm_sweep",
              "test_slurm_templates"),
}  # fmt: skip
# the smoke fixture heads the longest chain (smoke -> DeePMD fixture -> labelling loop):
# it starts at once, beside the image build and the llzo-gb study
FIRST = ("docker", "test_smoke", "llzo_gb", "slurm", "test_golden_helper",
         "test_lock", "test_layers")  # fmt: skip
AFTER_SMOKE = ("test_deepmd", "test_committee", "test_al_loop", "test_engines_lammps",
               "test_multirank", "test_resume",
               "test_runbook_config", "test_templates", "test_verify_engines",
               "smoke_run")  # fmt: skip


def _rank(item: pytest.Item) -> int:
    g = _group(item)
    if g in FIRST:
        return FIRST.index(g)
    return len(FIRST) + 1 + AFTER_SMOKE.index(g) if g in AFTER_SMOKE else len(FIRST)


def _unit(item: pytest.Item) -> str:
    module = item.module.__name__.rpartition(".")[2] if item.module else item.nodeid
    group = next((g for g, mods in SERVICE_GROUPS.items() if module in mods), None)
    if group is None and "docker_engine" in getattr(item, "fixturenames", ()):
        group = "docker"
    return group or module


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(_unit(item)))
        if getattr(config.option, "loadgroup", False):
            _suffix_group(item)
    items.sort(key=_rank)  # stable: within a rank as collected


def _suffix_group(item: pytest.Item) -> None:
    """What xdist 3.8's loadgroup does, done so pytest 9 keeps it: xdist's scheduler reads
    the group from a `@group` suffix of the node id, which xdist writes to `item._nodeid`;
    pytest 9 derives `nodeid` from the structured `item._id` and ignores `_nodeid`, so
    every test would be its own unit (measured: the three workers each built the image)."""
    from _pytest.nodeid import NodeId

    if "@" not in item.nodeid:
        item._id = NodeId.parse(f"{item.nodeid}@{_group(item)}")


def _group(item: pytest.Item) -> str:
    return next(item.iter_markers("xdist_group")).args[0]


@contextlib.contextmanager
def shared_dir(tmp_path_factory, name: str) -> Iterator[Path]:
    """A folder every xdist worker of this session shares, held exclusively while open.

    A session fixture runs once per worker; one that runs a study does it through
    `run_once`: the first worker runs it, the others wait for it and then only read it
    (a second engine pass, even one that skips every stage, rewrites study.json while
    another worker's tests copy the folder)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder above the workers' own
    with open(base / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (base / name).mkdir(exist_ok=True)
        yield base / name


def run_once(shared: Path, run_dir: Path, run) -> None:
    """Call `run()` unless an earlier worker finished it for this session's `shared`
    folder (marked by `shared/done` after a run that returned; a raised error leaves no
    mark, so the next worker tries again and fails the same way)."""
    if not (shared / "done").exists():
        run()
        (shared / "done").write_text(str(run_dir))


def assert_golden(path: Path, text: str) -> None:
    """`text` equals the golden file `path`; UPDATE_GOLDEN=1 (exactly) (re)writes it first,
    to be reviewed in the diff. Any other value (0, false, empty) only compares."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{path} differs: review, then UPDATE_GOLDEN=1"


def require(ok: bool, component: str, how: str = "run `make setup` as root") -> None:
    """Skip (outside CI) or fail (under CI=true) when `component` is unavailable."""
    if ok:
        return
    msg = f"{component} is not available ({how})"
    if IN_CI:
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


def require_program(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, name)
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def lammps_module():
    from bundle.core import engines
    from bundle.core.errors import MissingComponent

    try:
        return engines.load_lammps()
    except MissingComponent as e:
        require(False, "lammps Python module", str(e))


# The smoke fixture runs beside two or three other heavy units on 2 cores: one rank and one
# thread per command. A rank or thread waiting on a descheduled partner burns CPU: in the
# CI run of 2026-11-30 the 2-rank SCF of a 12-atom cell took 47.8 s wall for 8.5 s of
# pw.x CPU per rank (alone: 8.9 s wall 2 ranks, 11.5 s 1 rank). The launcher is not an
# input of a stage (runbook.engine), so tests that re-run copies of this run with the
# shipped launchers (2 ranks, 2 threads) skip its stages all the same.
SMOKE_ONE_CORE = [
    f"profiles.cpu.launchers.{stage}.threads=1" for stage in ("train", "deploy", "md")
]
SMOKE_ONE_CORE.append("profiles.cpu.launchers.dft.np=1")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke-li2o study run ONCE per session, for real (pw.x -> Allegro -> compiled
    model -> LAMMPS -> bundle analyze -> report): (validated study, run folder). Tests
    read it and never write into it (copy stages elsewhere to modify). MLMD_SMOKE_RUN_DIR
    names a persistent run folder to reuse across sessions (finished stages are skipped)."""
    from bundle.core import engines
    from bundle.core.errors import MissingComponent
    from runbook import engine, loader

    require_program("pw.x")
    try:
        engines.venv_bin("nequip-train")
        engines.load_lammps()
    except MissingComponent as e:
        require(False, "nequip / lammps", str(e))
    study = loader.load("smoke-li2o", SMOKE_ONE_CORE)
    with shared_dir(tmp_path_factory, "smoke") as shared:
        run_dir = Path(os.environ.get("MLMD_SMOKE_RUN_DIR") or shared / "run")
        run_once(shared, run_dir, lambda: engine.run(study, run_dir, echo=_echo("smoke_run")))
    return study, run_dir.resolve()


def _echo(prefix: str):
    return lambda line: print(f"{prefix}: {line}")


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A docker SDK client for the session's engine: the running one if it answers,
    else dockerd started here (vfs, data root /var/lib/docker so image caches persist)
    by the first worker that needs it. Two workers use it (the docker and docker_images
    units), so no worker stops it: the session's controller does, at the end
    (`pytest_sessionfinish`), when this session started it. Skips without docker (fails
    under CI=true)."""
    from bundle import images
    from bundle.core.errors import MissingComponent

    with shared_dir(tmp_path_factory, "dockerd") as shared:
        if not images.engine_answers():
            try:
                proc = images.start_engine(shared / "dockerd.log")
            except MissingComponent as e:
                require(False, "Docker engine", str(e))
            (shared / DOCKERD_PID).write_text(str(proc.pid))
    return images.docker_client()


DOCKERD_PID = "dockerd.pid"


def pytest_sessionfinish(session):
    """The controller (or a run without workers) stops the engine this session started."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    pid_file = factory.getbasetemp() / "dockerd" / DOCKERD_PID if factory else None
    if pid_file is None or not pid_file.is_file():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(600):  # 60 s, then SIGKILL
            time.sleep(0.1)
            if _exited(pid):
                return
        os.kill(pid, signal.SIGKILL)


def _exited(pid: int) -> bool:
    """Gone, or a zombie child of this process (a run without workers started it here),
    reaped now; raises ProcessLookupError when no such process exists."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    os.kill(pid, 0)
    return False


@pytest.fixture(scope="session")
def cpu_image(docker_engine, tmp_path_factory):
    """The cpu image, built for real once per session (layers cached between sessions)
    by the first worker that needs it, read by the others: a bundle.images.BuildResult
    (tag, image_id, labels, manifest_path, build log)."""
    import dataclasses
    import json

    from bundle import images

    with shared_dir(tmp_path_factory, "cpu-image") as shared:
        done = shared / "build-result.json"
        if not done.is_file():
            r = images.build("cpu", client=docker_engine, out_dir=shared)
            done.write_text(json.dumps(dataclasses.asdict(r), default=str))
        d = json.loads(done.read_text())
    d["step_seconds"] = [tuple(x) for x in d["step_seconds"]]
    d["manifest_path"] = Path(d["manifest_path"]) if d["manifest_path"] else None
    return images.BuildResult(**d)


@contextlib.contextmanager
def cpu_tag_held(tmp_path_factory) -> Iterator[None]:
    """Held by a test that moves or removes the cpu image's tag (the docker units run on
    two workers): no other such test runs meanwhile."""
    with shared_dir(tmp_path_factory, "cpu-tag"):
        yield
