"""The DeePMD committee (issue 15) on the shared DeePMD run (tests/deepmd_fixture.py):
three members packaged with one manifest; the committee evaluated in Python on given
frames (runbook.deepmd.evaluate) calls a Li2O cell compressed by 15 % (lattice constant
x 0.85, volume x 0.61) `failed` and a training-like cell not; a real MD of the compressed
cell through `pair_style deepmd` with the committee makes `bundle check` FAIL, naming
why in one line.

Both cells are rattled the same way (the smoke study's rattle, 0.08 Å per coordinate):
a perfect crystal has zero forces by symmetry for every model, so no deviation at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.deepmd_run]

A_LI2O = 4.61  # Å, the smoke study's structure.a_angstrom
RATTLE = 0.08  # Å, the smoke study's structure.rattle_angstrom
LO, HI = 0.15, 0.45  # eV/Å, the DeePMD overlay's trust levels (scaled to the toy models)


def stage_dir(run, name: str) -> Path:
    from runbook import engine

    study, run_dir = run
    return engine.Context(study, run_dir).dir_of(name)


def li2o(a: float, reps=(2, 2, 2), seed: int = 11):
    from runbook import crystal

    atoms = crystal.supercell(crystal.antifluorite("Li", "O", a), list(reps))
    atoms.positions += np.random.default_rng(seed).normal(0, RATTLE, atoms.positions.shape)
    return atoms


def test_committee_of_three_with_one_manifest(deepmd_run, tmp_path):
    from bundle.core.errors import InputError
    from runbook.deepmd import committee
    from runbook.files import sha256_file

    d = stage_dir(deepmd_run, "committee")
    doc = committee.load(d)
    assert [m["seed"] for m in doc["members"]] == [1, 2, 3]
    assert [m["stage"] for m in doc["members"]] == [
        "train_deepmd", "train_deepmd_b", "train_deepmd_c",
    ]  # fmt: skip
    for m in doc["members"]:
        member_dir = stage_dir(deepmd_run, m["stage"])
        assert m["model_sha256"] == sha256_file(member_dir / "model.pb")
    assert len({m["model_sha256"] for m in doc["members"]}) == 3
    ds = json.loads((stage_dir(deepmd_run, "dataset") / "manifest.json").read_text())
    assert doc["dataset"]["output_hash"] == ds["output_hash"]
    assert doc["type_names"] == ["Li", "O"] and doc["units"]["lammps_units"] == "metal"
    # a modified member is refused
    copy = shutil.copytree(d, tmp_path / "c")
    (copy / "model-1.pb").write_bytes((copy / "model-1.pb").read_bytes()[:-1] + b"\0")
    with pytest.raises(InputError, match="members.1.model"):
        committee.load(copy)


def test_md_committee_deviation_has_three_models_and_regions(deepmd_run):
    from checks import deviation

    d = stage_dir(deepmd_run, "md_deepmd")
    res = json.loads((d / "manifest.json").read_text())["result"]["deviation"]
    rec = deviation.load(d / "deviation.npz")
    assert rec.n_models == 3 and rec.eps.shape == (res["frames"]["n"], 96)
    band, inner = res["regions"]["boundary"], res["regions"]["interior"]
    assert band["atom_frames"]["n"] + inner["atom_frames"]["n"] == rec.eps.size
    assert res["band"] == {"planes_z_a": [2.3, 6.9], "half_width_a": 1.2}
    print("md_deepmd (600 K, committee of 3):", {k: res["regions"][k] for k in res["regions"]})


def test_compressed_cell_is_failed_training_like_is_not(deepmd_run, tmp_path):
    from ase.io import read

    from checks import deviation
    from runbook.deepmd import committee, evaluate

    models = committee.model_files(stage_dir(deepmd_run, "committee"))
    train = read(stage_dir(deepmd_run, "dataset") / "train.extxyz", index="0")
    recs = {
        "training frame": evaluate.committee_record(models, [train], tmp_path / "t"),
        "rattled 96-atom cell": evaluate.committee_record(models, [li2o(A_LI2O)], tmp_path / "n"),
        "compressed 15 %": evaluate.committee_record(models, [li2o(0.85 * A_LI2O)], tmp_path / "f"),
    }
    got = {k: float(r.frame_max[0]) for k, r in recs.items()}
    print("max force deviation (eV/Å):", {k: round(v, 3) for k, v in got.items()}, LO, HI)
    assert all(r.n_models == 3 for r in recs.values())
    assert recs["compressed 15 %"].eps.shape == (1, 96)
    assert got["training frame"] < HI and got["rattled 96-atom cell"] < HI  # not failed
    far = recs["compressed 15 %"]
    assert got["compressed 15 %"] >= HI
    assert deviation.trust_levels(far, LO, HI)["frames"]["failed"] == 1.0


def test_md_outside_the_domain_makes_check_fail(deepmd_run, tmp_path):
    """A few tens of steps of the compressed cell through pair_style deepmd with the
    committee, analysed by the analyze stage (which carries the MD's deviation summary
    into results.json); `bundle check` of those results FAILs."""
    from typer.testing import CliRunner

    from bundle.cli import app
    from tests.deepmd_fixture import extend

    md = {
        "kind": "md", "potential": "deepmd", "supercell": [2, 2, 2],
        "a_angstrom": round(0.85 * A_LI2O, 4), "units": "metal", "type_map": {1: "Li", 2: "O"},
        "ensemble": "nvt", "temperature_k": 600, "tdamp_fs": 50, "timestep_fs": 1.0,
        "n_steps": 60, "thermo_every": 10, "dump_every": 6, "seed": 4243,
        "deepmd": {"stage": "train_deepmd", "committee": ["train_deepmd_b", "train_deepmd_c"],
                   "devi_every": 5, "trust_lo_ev_a": LO, "trust_hi_ev_a": HI,
                   "band_planes_z_a": [2.0, 5.9], "band_half_width_a": 1.0},
    }  # fmt: skip
    analyze = {"kind": "analyze", "gb_fractions": [0.25, 0.75], "li_type": "Li", "dz": 0.2,
               "w": 0.5, "d_bulk": 1.0}  # fmt: skip
    blocks = {"md_compressed": md, "analyze_compressed": analyze}
    study, run_dir, _ = extend(deepmd_run, tmp_path / "run", blocks)
    summary = json.loads((stage_dir((study, run_dir), "md_compressed") / "manifest.json")
                         .read_text())["result"]["deviation"]  # fmt: skip
    adir = stage_dir((study, run_dir), "analyze_compressed")
    assert json.loads((adir / "deviation.json").read_text()) == summary  # rendered input
    produced = adir / "analysis" / "results.json"
    results = json.loads(produced.read_text())
    assert results["deviation"] == summary
    summary_md = (adir / "analysis" / "summary.md").read_text()
    assert "| committee trust domain | the run left" in summary_md
    ref = tmp_path / "ref.yaml"
    ref.write_text(
        "schema: gb-reference/1\nname: domain-only\nsource: test\nquantities:\n"
        "  n_frames: {value: 1, unit: '1', source: reported only}\n"
    )
    r = CliRunner().invoke(app, ["check", str(produced), "--reference", str(ref)])
    print(r.stdout)
    assert r.exit_code == 1, r.stdout
    line = next(ln for ln in r.stdout.splitlines() if "deviation.trust_domain" in ln)
    assert line.startswith("FAIL") and "left the committee's trust domain" in line
    assert "atom-frames" in line and "failed" in line
    # the same results inside the domain pass: the check can pass
    inside = dict(results, deviation=dict(summary, domain_tolerance=1.0))
    (tmp_path / "inside.json").write_text(json.dumps(inside))
    r = CliRunner().invoke(app, ["check", str(tmp_path / "inside.json"), "--reference", str(ref)])
    assert r.exit_code == 0 and "PASS  deviation.trust_domain" in r.stdout, r.stdout
