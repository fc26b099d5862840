"""Shared test fixtures.

Real components (pw.x, LAMMPS, nequip, docker, slurm) are used for real. When
one is missing, `require` skips the test with the reason printed, except under
CI=true, where a missing component FAILS the test: CI must install everything.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.slurm_fixture import slurm_cluster  # noqa: F401

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def assert_golden(path: Path, text: str) -> None:
    """`text` equals the golden file `path`; UPDATE_GOLDEN=1 (re)writes it first, to be
    reviewed in the diff."""
    if os.environ.get("UPDATE_GOLDEN"):
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
    run_dir = os.environ.get("MLMD_SMOKE_RUN_DIR") or tmp_path_factory.mktemp("smoke") / "run"
    study = loader.load("smoke-li2o")
    engine.run(study, Path(run_dir), echo=lambda line: print(f"smoke_run: {line}"))
    return study, Path(run_dir).resolve()


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A docker SDK client for the session's engine: the running one if it answers,
    else dockerd started here (vfs, data root /var/lib/docker so image caches persist)
    and stopped at session end. Skips without docker (fails under CI=true)."""
    from bundle import images
    from bundle.core.errors import MissingComponent

    proc = None
    if not images.engine_answers():
        try:
            proc = images.start_engine(tmp_path_factory.mktemp("dockerd") / "dockerd.log")
        except MissingComponent as e:
            require(False, "Docker engine", str(e))
    try:
        yield images.docker_client()
    finally:
        if proc is not None:
            images.stop_engine(proc)


@pytest.fixture(scope="session")
def cpu_image(docker_engine, tmp_path_factory):
    """The cpu image, built for real once per session (layers cached between sessions):
    a bundle.images.BuildResult (tag, image_id, labels, manifest_path, build log)."""
    from bundle import images

    return images.build("cpu", client=docker_engine, out_dir=tmp_path_factory.mktemp("cpu-image"))
