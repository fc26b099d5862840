"""The llzo-gb study (cpu profile) run for real once per session, for the modules that
read it (tests/test_llzo_study.py, tests/test_llzo_relax.py: one xdist unit, see
tests/conftest.py):

- `new_seed`: the shipped study with every seed set to NEW_SEED (not a replica of
  checks/references/llzo-gb-700K-cpu.yaml), the translation scan included;
- `cold`: the same seed with every MD stage at COLD_K. Its first five stages (the model
  record, both builds and relaxations: the anneal is at its own 1000 K, so the
  temperature sets leave their inputs unchanged) are the new seed's, copied once they are
  complete, so the engine skips them (same input hashes); the two runs then go on side by
  side, one core each (the cpu profile is single-threaded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from bundle.core import engines
from runbook import config

NEW_SEED = 11  # not a replica of checks/references/llzo-gb-700K-cpu.yaml
COLD_K = 500
# no temperature among them (the model stage: the classical baseline's record on cpu)
SHARED = ("model", "build_control", "relax_control", "build", "relax")


def shipped() -> dict:
    return yaml.safe_load(config.resolve_path("llzo-gb").read_text())


def single_seed_study(folder: Path) -> Path:
    """The shipped study without its sweep block: one run, seeds given by --set."""
    doc = shipped()
    doc.pop("sweep")
    path = folder / "llzo-gb-one-seed.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _start(study: Path, run: Path, sets: list[str], log: Path, *extra: str) -> subprocess.Popen:
    argv = [engines.venv_bin("bundle"), "run", str(study), "--run-dir", str(run), *extra]
    for s in sets:
        argv += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log, "a") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="session")
def llzo_gb_runs(tmp_path_factory, lammps_module) -> dict:
    root = tmp_path_factory.mktemp("llzo_gb")
    study = single_seed_study(root)
    sweep = shipped()["sweep"]["set"]
    seeds = [f"{key}={NEW_SEED}" for key in sweep["seed"]]
    runs = {"new_seed": seeds, "cold": seeds + [f"{key}={COLD_K}" for key in sweep["temperature"]]}
    t0 = time.perf_counter()
    logs = {name: root / f"{name}.log" for name in runs}
    first = _start(study, root / "new_seed", seeds, logs["new_seed"], "--until", SHARED[-1])
    shared_ok = first.wait(timeout=2700) == 0
    if shared_ok:
        order = shipped()["stages"]
        for name in SHARED:
            stage = f"{order.index(name) + 1:02d}_{name}"
            shutil.copytree(root / "new_seed" / stage, root / "cold" / stage)
    procs = {name: _start(study, root / name, sets, logs[name]) for name, sets in runs.items()}
    out = {}
    for name, p in procs.items():
        code = p.wait(timeout=2700)
        out[name] = {"code": code, "dir": root / name, "log": logs[name].read_text()}
    out["wall_s"] = time.perf_counter() - t0
    print(f"\nllzo-gb cpu study: two seeds, five stages shared, in {out['wall_s']:.0f} s")
    return out
