"""`bundle verify`'s engine check drives LAMMPS through the inputs production renders: the
md stage's data file and `templates/lammps/setup-fix-external.lmp.j2`, rendered by the
md stage's own function. A broken production template therefore fails verify.

The model is the smoke run's compiled one (session fixture `smoke_run`); the worker runs
as verify runs it (`python -m bundle.verify model-check`), with MLMD_BUNDLE_ROOT naming a
copy of the templates in which the fix-external setup is intact or broken.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bundle.core import paths
from bundle.verify import common, engines
from runbook import modelcard

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("smoke_run")]

SETUP = Path("lammps") / "setup-fix-external.lmp.j2"
STRUCTURE = paths.root() / "tests" / "data" / "li2o-96.extxyz"  # the smoke model's species


def model_check(tmp_path: Path, model: Path, templates: Path) -> dict:
    env = dict(os.environ, MLMD_BUNDLE_ROOT=str(templates.parent), OMP_NUM_THREADS="1")
    r_max = modelcard.load(model.parent / modelcard.FILENAME).r_max_angstrom
    argv = [sys.executable, "-m", "bundle.verify", "model-check", "--compiled", str(model),
            "--structure", str(STRUCTURE), "--r-max", repr(r_max), "--device", "cpu",
            "--out", "forces.json"]  # fmt: skip
    r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((tmp_path / "forces.json").read_text())


@pytest.mark.parametrize("broken", [False, True], ids=["intact", "broken"])
def test_verify_fails_when_the_production_template_is_broken(smoke_run, tmp_path, broken):
    _, run = smoke_run
    templates = tmp_path / "root" / "templates"
    shutil.copytree(paths.templates_dir(), templates)
    if broken:  # LAMMPS would no longer count the model's energy and virial
        text = (templates / SETUP).read_text()
        assert "energy yes virial yes" in text
        (templates / SETUP).write_text(text.replace("energy yes virial yes", "energy no virial no"))
    work = tmp_path / "work"
    work.mkdir()
    r = model_check(work, run / "05_deploy" / "model.nequip.pt2", templates)
    # what LAMMPS read is the template as production renders it (from MLMD_BUNDLE_ROOT)
    setup = (work / "lammps-cpu" / "setup.lmp").read_text()
    assert ("energy no virial no" in setup) == broken and "fix             mlmd_model" in setup
    lt = common.references().model_forces.lammps_tolerance
    status = {c.name: c.status for c in engines.lammps_checks(r, lt, "cpu")}
    assert status["lammps-forces[cpu]"] == "PASS"  # the forces are handed over either way
    want = "FAIL" if broken else "PASS"
    assert status["lammps-energy[cpu]"] == want and status["lammps-virial[cpu]"] == want, status
