"""The smoke loop, run once per session for real (the `smoke_run` fixture): every stage
complete with a truthful manifest, units and provenance carried through, the compiled
model identical to the trained one, sane MD, the analysis and the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ase.io import read
from typer.testing import CliRunner

from bundle.cli import app
from runbook import engine, files

pytestmark = pytest.mark.engine

STAGES = ["structure", "dft", "dataset", "train", "deploy", "md", "analyze", "report"]


def _m(run, i, name):
    return json.loads((run / f"{i:02d}_{name}" / "manifest.json").read_text())


def test_every_stage_is_complete_with_a_truthful_manifest(smoke_run):
    study, run = smoke_run
    assert study.stages == STAGES
    for i, name in enumerate(STAGES, start=1):
        m = _m(run, i, name)
        assert m["status"] == "complete" and m["exit_status"] == 0, name
        assert m["wall_s"] > 0 and len(m["input_hash"]) == 64 and m["commands"], name
        d = run / f"{i:02d}_{name}"
        assert m["outputs"] == files.hash_tree(d), f"{name}: outputs changed after completion"
    dft = _m(run, 2, "dft")
    assert dft["tools"]["locked"]["qe"] == "6.7" and dft["tools"]["probed"]["pw.x"].startswith(
        "6.7"
    )
    assert dft["launcher"].startswith("Mpi(np=1")  # the fixture's one-core launchers
    assert all(c[0].endswith("mpirun") and c[1:3] == ["-np", "1"] for c in dft["commands"])
    assert {"pseudo/Li.pbesol-s-rrkjus_psl.0.2.1.UPF", "pw-000.in"} <= set(dft["inputs"])
    train = _m(run, 4, "train")
    assert train["tools"]["installed"]["nequip"] == train["tools"]["locked"]["nequip"]
    out = CliRunner().invoke(app, ["status", str(run)])
    assert (
        out.exit_code == 0 and out.output.count(" complete ") == 8 and "MODIFIED" not in out.output
    )


def test_dft_data_are_in_ev_angstrom_and_consistent(smoke_run):
    _, run = smoke_run
    frames = read(run / "02_dft" / "dft.extxyz", index=":")
    assert len(frames) == 20 and {len(a) for a in frames} == {12, 24}
    for a in frames:
        f = a.get_forces()
        assert np.abs(f.sum(axis=0)).max() < 5e-3  # Newton's third law, in eV/Å
        assert -300 < a.get_potential_energy() / len(a) < -270  # eV/atom (Li2O, these PPs)
        assert a.get_stress(voigt=False).shape == (3, 3)
    split = _m(run, 3, "dataset")["result"]["split"]
    assert sum(split.values()) == 20 and min(split.values()) >= 1


def test_model_manifest_carries_units_types_and_provenance(smoke_run):
    _, run = smoke_run
    card = json.loads((run / "05_deploy" / "model_manifest.json").read_text())
    assert card["schema"] == "model-manifest/1"
    assert card["units"]["lammps_units"] == "metal" and card["units"]["energy"] == "eV"
    assert card["type_names"] == ["Li", "O"] and card["r_max_angstrom"] == 4.0
    assert card["data"]["dataset_output_hash"] == _m(run, 3, "dataset")["output_hash"]
    assert card["data"]["dft_output_hash"] == _m(run, 2, "dft")["output_hash"]
    li = "/usr/share/espresso/pseudo/Li.pbesol-s-rrkjus_psl.0.2.1.UPF"
    assert card["data"]["pseudopotentials_sha256"]["Li.pbesol-s-rrkjus_psl.0.2.1.UPF"] == (
        files.sha256_file(__import__("pathlib").Path(li))
    )
    compiled = run / "05_deploy" / "model.nequip.pt2"
    assert card["artifacts"]["compiled"]["sha256"] == files.sha256_file(compiled)
    assert card["artifacts"]["compiled"]["target"] == "ase"


def test_the_compiled_model_is_the_trained_model_and_it_learned(smoke_run):
    """The AOTInductor model evaluated on the test split reproduces nequip-train's own test
    metrics of the checkpoint, and beats the trivial model (zero forces) by far."""
    _, run = smoke_run
    ev = json.loads((run / "05_deploy" / "evaluation.json").read_text())
    test = _m(run, 4, "train")["result"]["test"]
    assert ev["force_mae_ev_a"] == pytest.approx(test["forces_mae"], rel=1e-6)
    assert ev["energy_per_atom_mae_ev"] == pytest.approx(test["per_atom_energy_mae"], rel=1e-6)
    frames = read(run / "03_dataset" / "test.extxyz", index=":")
    rms = float(np.sqrt(np.mean(np.concatenate([a.get_forces().ravel() for a in frames]) ** 2)))
    assert ev["force_rmse_ev_a"] < 0.6 * rms, (ev["force_rmse_ev_a"], rms)


def test_md_ran_nvt_with_the_model_and_wrote_the_dump(smoke_run):
    _, run = smoke_run
    r = _m(run, 6, "md")["result"]
    assert r["n_atoms"] == 192 and r["n_steps"] == 1000 and r["type_map"] == {"1": "Li", "2": "O"}
    assert 450 < r["temperature_mean_k"] < 750
    assert abs(r["conserved_drift_ev_per_atom_ps"]) < 5e-3
    assert r["model_fraction_of_step"] > 0.5  # the model, not LAMMPS, is the cost
    dump = (run / "06_md" / "dump.lammpstrj").read_text()
    assert dump.count("ITEM: TIMESTEP") == 51 and "ITEM: ATOMS id type x y z ix iy iz" in dump


def test_analysis_and_report(smoke_run):
    _, run = smoke_run
    res = json.loads((run / "07_analyze" / "analysis" / "results.json").read_text())
    assert res["schema"] == "gb-analysis/1" and res["n_frames"] == 51 and res["n_li"] == 128
    assert res["gb_planes_A"] == pytest.approx([5.7625, 14.9825])
    assert res["peak_ratio"] > 2  # a crystal: Li sits in layers
    rep = run / "08_report"
    text = (rep / "report.md").read_text()
    for i, name in enumerate(STAGES[:-1], start=1):
        assert f"`{i:02d}_{name}`" in text
        assert (rep / "manifests" / f"{i:02d}_{name}.json").exists()
    for fig in ("training.png", "force_parity.png", "md.png", "profile.png"):
        assert (rep / "figures" / fig).stat().st_size > 5000, fig
        assert f"figures/{fig}" in text
    assert json.loads((rep / "results" / "results.json").read_text()) == res


def test_a_second_run_skips_everything_and_changes_no_file(smoke_run, tmp_path):
    study, run = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    lines: list[str] = []
    summary = engine.run(study, copy, echo=lines.append)
    assert summary.ran == [] and summary.skipped == STAGES
    after = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert {p.name for p in changed} <= {"study.json", ".run.lock"}, changed


def test_check_stage_records_the_verdict_and_a_fail_exits_1(smoke_run, tmp_path):
    """`check` runs `bundle check` on the analysis: PASS → exit 0; a reference the run
    cannot meet → the stage completes with verdict FAIL and `bundle run` exits 1."""
    import yaml

    from bundle.core import paths

    _, run = smoke_run
    copy = tmp_path / "run"
    for i, name in enumerate(STAGES[:-1], start=1):
        shutil.copytree(run / f"{i:02d}_{name}", copy / f"{i:02d}_{name}")
    rho = json.loads((run / "07_analyze" / "analysis" / "results.json").read_text())[
        "rho_bulk_per_A3"
    ]

    def reference(value: float, name: str):
        path = tmp_path / f"{name}.yaml"
        q = {"value": value, "lower": 0.3, "upper": 0.3, "bounds": "relative", "unit": "Li/Å³"}
        doc = {
            "schema": "gb-reference/1",
            "name": name,
            "source": "test",
            "parameters": {"dz_A": 0.2, "w_A": 0.6, "d_bulk_A": 2.0},
            "quantities": {"rho_bulk_per_A3": {**q, "source": "test"}},
        }
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        return path

    doc = yaml.safe_load((paths.root() / "runbook/studies/smoke-li2o.yaml").read_text())
    doc["stages"] = [*STAGES[:-1], "check", "report"]
    doc["check"] = {"reference": str(reference(rho, "pass"))}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    cli = CliRunner()
    out = cli.invoke(app, ["run", str(study), "--run-dir", str(copy)])
    assert out.exit_code == 0, out.output
    assert "[7/9] analyze: complete, skipped" in out.output
    assert _m(copy, 8, "check")["result"]["verdict"] == "PASS"
    assert "**PASS**" in (copy / "09_report" / "report.md").read_text()

    doc["check"] = {"reference": str(reference(10 * rho, "fail"))}
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = cli.invoke(app, ["run", str(study), "--run-dir", str(copy), "--force", "check"])
    assert out.exit_code == 1, out.output
    assert out.output.strip().splitlines()[-1] == (
        "error: check stage(s) check FAILED; see their check.json"
    )
    m = _m(copy, 8, "check")
    assert m["status"] == "complete" and m["result"]["verdict"] == "FAIL"
    assert (copy / "08_check" / "check.json").exists()
