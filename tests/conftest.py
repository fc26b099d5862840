"""Shared test fixtures.

Real components (pw.x, LAMMPS, nequip, docker, slurm) are used for real. When
one is missing, `require` skips the test with the reason printed, except under
CI=true, where a missing component FAILS the test: CI must install everything.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.slurm_fixture import slurm_cluster  # noqa: F401

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
    from bundle import engines
    from bundle.errors import MissingComponent

    try:
        return engines.load_lammps()
    except MissingComponent as e:
        require(False, "lammps Python module", str(e))
