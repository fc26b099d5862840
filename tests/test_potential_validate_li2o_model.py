"""Validation FAILs when it should (issue 11): the smoke study's Allegro model, trained on
Li2O pw.x labels only, validated by the potential study's own step on the LLZO potential
study's held-out frames.

The frames are real pw.x labels of the llzo-potential cpu study (tests/data/llzo/
potential-{train,test}.extxyz: its 04_dataset split, run of 2026-12-01 at 30/240 Ry,
`bundle run llzo-potential --run-dir /tmp/pot/run4`; held out: one bulk, one excess-Li,
one GB-window, one cubic ZrO2 and one Li2O frame). Computing them takes ~75 CPU-minutes,
so the suite reads them; the model and the validation run here. The Li2O-only model knows
Li and O: the Li2O frame is evaluated (numbers, not a verdict on them), every class with a
La or Zr frame FAILs naming the species, and the stability MD of bulk LLZO is not run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bundle.core import paths

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("smoke_run")]

DATA = paths.root() / "tests" / "data" / "llzo"
CLASSES = ["bulk", "excess_li", "gb", "related"]


def test_a_model_trained_on_li2o_only_fails_the_llzo_validation(smoke_run, tmp_path):
    _, run = smoke_run
    deploy = run / "05_deploy"
    p = {
        "backend": "allegro", "device": "cpu", "classes": CLASSES,
        "model": str(deploy / "model.nequip.pt2"),
        "model_manifest": str(deploy / "model_manifest.json"),
        "train": str(DATA / "potential-train.extxyz"),
        "held_out": str(DATA / "potential-test.extxyz"),
        "species": ["Li", "La", "Zr", "O", "Al"],
        "bounds": {"energy_mae_max_meV_atom": 50.0, "energy_mae_ratio_max": 1.0,
                   "force_rmse_max_ev_A": 1.0, "force_rmse_ratio_max": 0.7},
        "stability": {"steps": 200, "temperature_K": 600.0},
    }  # fmt: skip
    (tmp_path / "validate.json").write_text(json.dumps(p))
    argv = [sys.executable, "-m", "runbook.potential.validate", "validate.json"]
    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "validation.json").read_text())
    assert doc["verdict"] == "FAIL" and doc["model_type_names"] == ["Li", "O"]
    reasons = "\n".join(doc["reasons"])
    for cls in CLASSES:  # each class holds a La or Zr frame the model cannot evaluate
        assert any(x.startswith(f"{cls}:") and "Zr" in x for x in doc["reasons"]), reasons
    assert "stability: not run, the model does not know La, Zr" in reasons
    assert "related: 1 of 2 held-out frames hold species the model does not know (Zr)" in reasons
    evaluated = {f["family"] for f in doc["frames"] if f["e_err_meV_atom"] is not None}
    assert evaluated == {"li2o"}, doc["frames"]  # its own chemistry: evaluated, not excused
    related = doc["classes"]["related"]
    assert related["evaluated"] == 1 and related["force_rmse_ev_A"] > 0
    print(
        f"Li2O-only model on the LLZO study's held-out Li2O frame: force RMSE "
        f"{related['force_rmse_ev_A']:.3f} eV/Å (zero-force "
        f"{related['baseline_force_rmse_ev_A']:.3f} over both related frames)"
    )
