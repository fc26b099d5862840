"""The llzo-potential study, cpu profile, run once per session for real (`potential_run`):
every stage complete; every environment class in training AND held-out frames; the
selection's rule and figure; DFT labels with their settings; the model manifest's
provenance; validation PASSes with stated margins over the trivial baselines; a model
trained on Li2O only FAILs it (species missing AND a numeric reason); the one-line error
for a model species without training data; the 96-atom SCF against a stored energy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from bundle.core.errors import InputError
from runbook import engine, files, loader, modelcard, qe, stages
from runbook.potential import ENV_CLASSES

pytestmark = [pytest.mark.engine, pytest.mark.potential, pytest.mark.slow]

STAGES = ["sample", "select", "dft", "dataset", "train", "deploy", "validate"]
REFERENCE = Path(__file__).parent / "references" / "llzo96_scf.json"


def _m(run: Path, name: str) -> dict:
    return json.loads((run / f"{STAGES.index(name) + 1:02d}_{name}" / "manifest.json").read_text())


def test_every_stage_is_complete(potential_run):
    study, run = potential_run
    assert study.stages == STAGES
    for name in STAGES:
        m = _m(run, name)
        assert m["status"] == "complete" and m["exit_status"] == 0, name
        d = run / f"{STAGES.index(name) + 1:02d}_{name}"
        assert m["outputs"] == files.hash_tree(d), f"{name}: outputs changed after completion"
    assert _m(run, "dft")["tools"]["probed"]["pw.x"].startswith("6.7")


def test_every_class_has_training_and_held_out_frames(potential_run):
    _, run = potential_run
    groups = _m(run, "dataset")["result"]["groups"]
    for cls in ENV_CLASSES:
        assert groups["train"][cls] >= 1 and groups["test"][cls] >= 1, (cls, groups)
    for split in ("train", "test"):
        frames = read(run / "04_dataset" / f"{split}.extxyz", index=":")
        assert {a.info["env_class"] for a in frames} == set(ENV_CLASSES)
        assert all(a.info["family"] for a in frames)


def test_sampling_and_selection_are_recorded(potential_run):
    _, run = potential_run
    sample = _m(run, "sample")["result"]
    assert set(sample["per_class"]) == set(ENV_CLASSES)
    assert any(g.startswith("md-") for g in sample["per_generator"])  # classical snapshots
    assert "never a label" in sample["provenance"]
    sel = _m(run, "select")["result"]
    assert "farthest-point" in sel["rule"] and "PCA" in sel["rule"]
    assert sel["parameters"]["descriptor"]["rc_radial_A"] == 6.0
    for cls, row in sel["classes"].items():
        assert row["selected"] == row["quota"] and row["shortfall"] == 0, cls
    assert (run / "02_select" / "selection.png").stat().st_size > 20_000
    picked = read(run / "02_select" / "structures.extxyz", index=":")
    assert len(picked) == sel["n_frames"] == 14


def test_dft_labels_carry_their_classes_and_settings(potential_run):
    _, run = potential_run
    dft = _m(run, "dft")
    assert dft["result"]["excluded"] == [] and dft["result"]["n_frames"] == 14
    frames = read(run / "03_dft" / "dft.extxyz", index=":")
    for a in frames:
        assert np.abs(a.get_forces().sum(axis=0)).max() < 0.05  # eV/Å, Newton's third law
        text = (run / "03_dft" / a.info["source"].replace(".out", ".in")).read_text()
        big = len(a) > 40
        assert ("K_POINTS gamma" in text) == big, a.info["family"]
        assert ("occupations = 'smearing'" in text) == (a.info["env_class"] == "excess_li")
    pseudos = {k for k in dft["inputs"] if k.startswith("pseudo/")}
    assert len(pseudos) == 5


def test_model_manifest_records_provenance(potential_run):
    _, run = potential_run
    card = modelcard.load(run / "06_deploy" / modelcard.FILENAME)
    assert card.type_names == ["Li", "La", "Zr", "O", "Al"]
    assert card.units.lammps_units == "metal" and card.r_max_angstrom == 5.0
    d = card.data
    assert d["dataset_output_hash"] == _m(run, "dataset")["output_hash"]
    assert d["dft_settings"]["ecutwfc_ry"] == 30 and "by_profile" not in d["dft_settings"]
    assert set(d["dft_settings"]["pseudopotentials"]) == {"Li", "La", "Zr", "O", "Al"}
    assert len(d["pseudopotentials_sha256"]) == 5
    assert set(d["env_classes"]["test"]) == set(ENV_CLASSES)
    assert card.training["hyperparameters"]["per_type_energy_shifts"] == "least_squares"
    assert card.artifacts["compiled"]["target"] == "ase"


def test_validation_passes_with_margins_over_the_trivial_baselines(potential_run):
    study, run = potential_run
    res = _m(run, "validate")["result"]
    assert res["verdict"] == "PASS", res["reasons"]
    bounds = study.blocks["validate"]["bounds"]
    doc = json.loads((run / "07_validate" / "validation.json").read_text())
    for cls in ENV_CLASSES:
        m = doc["classes"][cls]
        assert m["frames"] >= 1 and m["evaluated"] == m["frames"]
        assert m["force_rmse_ratio"] <= bounds["force_rmse_ratio_max"], (cls, m)
        assert m["energy_mae_ratio"] <= bounds["energy_mae_ratio_max"], (cls, m)
        assert m["force_rmse_ev_A"] < m["baseline_force_rmse_ev_A"]
    stab = doc["stability"]
    assert stab["stable"] and stab["min_pair_A"] >= stab["min_pair_bound_A"]
    lo, hi = stab["temperature_band_K"]
    assert lo <= stab["temperature_second_half_mean_K"] <= hi
    for f in ("parity_energy.png", "parity_forces.png"):
        assert (run / "07_validate" / "figures" / f).stat().st_size > 10_000


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".run.lock"))
    return dest


def test_a_model_trained_on_li2o_only_fails_validation(potential_run, smoke_run, tmp_path):
    """The smoke study's Li2O model: FAIL with the species it lacks and, on the frames it
    CAN evaluate (the Li2O family of the related class), a numeric reason too."""
    _, run = potential_run
    _, smoke = smoke_run
    model = smoke / "05_deploy" / "model.nequip.pt2"
    study = loader.load("llzo-potential", overrides=[f"validate.model={model}"])
    copy = _copy(run, tmp_path / "run")
    engine.run(study, copy, start="validate", echo=lambda _: None)
    doc = json.loads((copy / "07_validate" / "validation.json").read_text())
    assert doc["verdict"] == "FAIL"
    text = "\n".join(doc["reasons"])
    for cls in ("bulk", "gb", "excess_li", "related"):
        assert f"{cls}: " in text and "species the model does not know" in text
    assert "stability: not run, the model does not know La, Zr" in text
    # a numeric reason too, judged on the frames it CAN evaluate (the Li2O family)
    rel = doc["classes"]["related"]
    assert 0 < rel["evaluated"] < rel["frames"]
    assert [r for r in doc["reasons"] if r.startswith("related: ") and "evaluate)" in r]


def test_a_model_species_without_training_frames_is_one_line(potential_run, tmp_path):
    _, run = potential_run
    study = loader.load("llzo-potential", overrides=["species=[Li, La, Zr, O, Al, Mg]"])
    train = stages.build(study, "train")
    ctx = engine.Context(study, run)
    with pytest.raises(InputError) as e:
        train.render(ctx, tmp_path)
    assert e.value.field == "species" and "Mg would be a type of the model" in str(e.value)
    assert "\n" not in str(e.value)


def write_reference(run: Path) -> None:
    """Remake the stored reference from a finished cpu run (review the diff):
    python -c "from tests.test_potential_study import *; write_reference(Path('RUN'))"."""
    frames = read(run / "02_select" / "structures.extxyz", index=":")
    k = next(i for i, a in enumerate(frames) if len(a) == 96 and a.info["family"] == "llzo")
    out = qe.read_pw_output(run / "03_dft" / f"pw-{k:03d}.out", 96)
    text = (run / "03_dft" / f"pw-{k:03d}.out").read_text()
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps({
        "what": "pw.x SCF of the cpu llzo-potential study's 96-atom bulk label",
        "pw_version": qe.pw_version(text),
        "ranks": 2,
        "energy_ry": out.energy_ry,
        "scf_iterations": out.scf_iterations,
        "wall": text[text.rindex("PWSCF"):].splitlines()[0].strip(),
        "positions_A": np.round(frames[k].positions, 10).tolist(),
    }, indent=1) + "\n")  # fmt: skip


def test_the_96_atom_scf_reproduces_its_stored_energy(potential_run):
    """A real pw.x SCF of a 96-atom LLZO cell (the study's own bulk label), against the
    energy stored when the reference was made (tests/references/llzo96_scf.json), to
    1e-6 Ry: same pw.x, same 2 ranks, same inputs."""
    _, run = potential_run
    ref = json.loads(REFERENCE.read_text())
    frames = read(run / "02_select" / "structures.extxyz", index=":")
    want = np.array(ref["positions_A"])
    same = [i for i, a in enumerate(frames) if len(a) == 96 and np.allclose(a.positions, want)]
    assert same, f"the cpu study no longer labels the stored structure: remake {REFERENCE}"
    out = qe.read_pw_output(run / "03_dft" / f"pw-{same[0]:03d}.out", 96)
    assert abs(out.energy_ry - ref["energy_ry"]) < 1e-6, (out.energy_ry, ref["energy_ry"])
