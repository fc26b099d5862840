"""A real (tiny) DeePMD model through the potential study's shared validation step
(`python -m runbook.potential.validate`, backend `deepmd`) on held-out frames.

The data are made here in seconds, not taken from DFT: 12-atom Li2O cells
(runbook.potential.phases.li2o), strained and rattled, labelled by ASE's Lennard-Jones
calculator and tagged with two environment classes. The LLZO pw.x labels take hours on
two cores, and the smoke run's Li2O labels are only made by the long session fixtures;
the numbers here mean nothing, the path is what is tested: deepmd/npy data, `dp --tf
train` (30 steps), `dp freeze`, `dp test`, then the validate step's per-class records
from DeepPot, checked against `dp test`'s own errors on the same frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from bundle.core import engines, render
from bundle.core.errors import MissingComponent
from runbook import config, loader, modelcard, stages
from runbook.deepmd import logs
from runbook.potential import compare, phases
from tests.conftest import require

TYPE_MAP = ["Li", "O"]


def labelled(n: int, seed: int = 7) -> list:
    rng = np.random.default_rng(seed)
    calc = LennardJones(sigma=1.9, epsilon=0.05, rc=4.0, smooth=True)
    out = []
    for k in range(n):
        a = phases.li2o()
        a.set_cell(a.cell.array @ (np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))), scale_atoms=True)
        a.positions += rng.normal(0, 0.08, a.positions.shape)
        a.calc = calc
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        a.info["env_class"] = ("bulk", "gb")[k % 2]
        a.info["family"] = "li2o-lj"
        out.append(a)
    return out


def run(argv: list[str], cwd, env) -> None:
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]


def test_a_tiny_deepmd_model_validated_per_class_matches_dp_test(tmp_path):
    try:
        engines.deepmd_libs()
    except MissingComponent as e:
        require(False, "deepmd-kit", str(e))
    frames = labelled(10)
    write(tmp_path / "train.extxyz", frames[:6], format="extxyz")
    write(tmp_path / "test.extxyz", frames[6:], format="extxyz")  # 2 bulk, 2 gb
    # the llzo-potential study's block, cut to two species and 30 steps
    block = stages.build(loader.load(config.resolve_path("llzo-potential")), "train_deepmd").cfg
    c = block.model_copy(update={"numb_steps": 30, "disp_freq": 10, "save_freq": 30})
    render.render_to(
        tmp_path / "input.json", "deepmd/input.json.j2", version="3.2.0", type_map=TYPE_MAP,
        d=c.descriptor, sel=[c.descriptor.sel[s] for s in TYPE_MAP], fit=c.fitting_net,
        lr=c.learning_rate.model_copy(update={"decay_steps": 10}), loss=c.loss,
        precision=c.precision, seed=c.seed, batch_size=c.batch_size, numb_steps=c.numb_steps,
        disp_freq=c.disp_freq, save_freq=c.save_freq,
        data={"train": "data/train", "val": "data/test"},
    )  # fmt: skip
    splits = {"train": "train.extxyz", "test": "test.extxyz"}
    (tmp_path / "data.json").write_text(json.dumps({"type_map": TYPE_MAP, "splits": splits}))
    steps = [
        ("data", ["deepmd_data", "data.json"]),
        ("train", ["dp", "--tf", "train", "input.json"]),
        ("freeze", ["dp", "--tf", "freeze", "-o", "model.pb"]),
        ("test", ["dp", "--tf", "test", "-m", "model.pb", "-s", "data/test", "-n", "0"]),
    ]
    spec = {"steps": [{"name": n, "log": f"{n}.log", "argv": a} for n, a in steps]}
    (tmp_path / "steps.json").write_text(json.dumps(spec))
    env = engines.deepmd_env({**os.environ, "OMP_NUM_THREADS": "1"})
    run([sys.executable, "-m", "runbook.steps.deepmd_steps", "steps.json"], tmp_path, env)

    units = modelcard.Units(**modelcard.DATA_UNITS)
    card = modelcard.ModelManifest(backend="deepmd", units=units, type_names=TYPE_MAP,
                                   r_max_angstrom=c.descriptor.rcut_angstrom)  # fmt: skip
    modelcard.write(tmp_path / modelcard.FILENAME, card)
    bounds = {"force_rmse_ratio_max": 10.0, "energy_mae_ratio_max": 1e6,
              "force_rmse_max_ev_A": 100.0, "energy_mae_max_meV_atom": 1e6}  # fmt: skip
    p = {"model": "model.pb", "model_manifest": modelcard.FILENAME, "device": "cpu",
         "held_out": "test.extxyz", "train": "train.extxyz", "species": TYPE_MAP,
         "classes": ["bulk", "gb"], "bounds": bounds, "stability": {},
         "backend": "deepmd"}  # fmt: skip
    (tmp_path / "validate.json").write_text(json.dumps(p))
    run([sys.executable, "-m", "runbook.potential.validate", "validate.json"], tmp_path, env)

    doc = json.loads((tmp_path / "validation.json").read_text())
    assert doc["backend"] == "deepmd"
    for cls in ("bulk", "gb"):
        m = doc["classes"][cls]
        assert m["frames"] == m["evaluated"] == 2 and m["atoms"] == 24
        assert m["force_rmse_ev_A"] > 0 and m["baseline_force_rmse_ev_A"] > 0
    # a model of Li and O cannot run the LLZO stability MD: a FAIL that says so
    assert doc["verdict"] == "FAIL"
    assert doc["reasons"] == ["stability: not run, the model does not know La, Zr (bulk LLZO)"]
    # the shared per-frame errors, pooled, are dp test's errors on the same frames
    dp = logs.parse_dp_test((tmp_path / "test.log").read_text())["all"]
    pooled = compare.class_errors(doc["frames"])
    assert dp["n_frames"] == len(doc["frames"]) == 4
    assert pooled["force_rmse_ev_A"] == pytest.approx(dp["force_rmse_ev_a"], rel=1e-4)
    assert pooled["energy_mae_meV_atom"] == pytest.approx(
        dp["energy_mae_ev_per_atom"] * 1e3, rel=1e-4
    )
