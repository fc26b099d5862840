"""The llzo-potential study's profiles: `by_profile` as the study loader merges it into
each stage block (runbook.loader) and its errors, and golden
renderings of what the h200 profile runs (pw.x input of a 96-atom LLZO cell at converged
settings, the data-parallel Allegro training config, the Slurm jobs of dft and train).
`UPDATE_GOLDEN=1` rewrites the golden files: review the diff."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from bundle.core import render
from bundle.core.errors import InputError
from runbook import engine, loader, qe, slurm, stages
from runbook.potential import cells, phases
from runbook.sweep import plan as sweep_plan
from runbook.sweep import slurm as sweep_slurm
from tests.conftest import assert_golden

GOLDEN = Path(__file__).parent / "golden"
SPECIES = {
    "Li": "Li.pbesol-s-rrkjus_psl.0.2.1.UPF",
    "La": "La.pbesol-spfn-rrkjus_psl.1.0.0.UPF",
    "Zr": "Zr.pbesol-spn-rrkjus_psl.1.0.0.UPF",
    "O": "O.pbesol-n-rrkjus_psl.0.1.UPF",
    "Al": "Al.pbesol-n-rrkjus_psl.1.0.0.UPF",
}


def bound(name: str, profile: str, tmp_path: Path, overrides=()):
    """The study as the loader gives it under `profile`, and stage `name` built from it:
    its `cfg` is the block with that profile's `by_profile` entry merged in."""
    study = loader.load("llzo-potential", overrides=list(overrides), profile=profile)
    return study, stages.build(study, name)


def test_by_profile_merges_nested_blocks_and_keeps_the_rest(tmp_path):
    _, cpu = bound("sample", "cpu", tmp_path)
    _, h200 = bound("sample", "h200", tmp_path)
    assert cpu.cfg.bulk.orderings == 2 and h200.cfg.bulk.orderings == 12
    assert h200.cfg.bulk.strain_max == cpu.cfg.bulk.strain_max  # not named: kept
    # kept from the block, not the model's defaults (0.02, 0.05): mappings merge key by key
    assert (h200.cfg.related.strain_max, h200.cfg.related.rattle_A) == (0.04, 0.08)
    assert h200.cfg.related.per_phase == 60 and cpu.cfg.related.per_phase == 4
    assert [c.levels for c in h200.cfg.gb.cells] == [4, 6]
    assert all(c.x_fraction == 1.0 for c in h200.cfg.gb.cells)  # exact periodic bicrystals
    _, dft = bound("dft", "h200", tmp_path)
    assert (dft.cfg.ecutwfc_ry, dft.cfg.kpoint_gamma, dft.cfg.pseudo_path[0]) == (
        60,
        False,
        "runbook/pseudo",
    )
    _, train = bound("train", "h200", tmp_path)
    assert train.cfg.devices == 8 and train.cfg.loss.stress == 1.0 and train.cfg.seed == 1


@pytest.mark.parametrize(
    ("override", "field"),
    [("train.by_profile={h100: {devices: 4}}", "train.by_profile.h100"),
     ("dft.by_profile={h200: {ecutwfc_ry: -1}}", "dft.by_profile.h200.ecutwfc_ry"),
     ("select.by_profile={h200: {quota: {grains: 3}}}", "select.by_profile.h200.quota")],
)  # fmt: skip
def test_a_bad_by_profile_entry_names_its_field(tmp_path, override, field):
    with pytest.raises(InputError) as e:
        bound(override.split(".")[0], "h200", tmp_path, [override])
    assert e.value.field == field


def test_golden_h200_pw_input_of_a_96_atom_cell(tmp_path):
    _, dft = bound("dft", "h200", tmp_path)
    atoms = cells.primitive_cell(1)
    text = render.render_text(
        "qe/pw-scf.in.j2", **qe.input_context(atoms, SPECIES, dft.cfg, prefix="pw-000")
    )
    assert "ecutwfc = 60.0000" in text and "K_POINTS automatic\n  2 2 2 0 0 0" in text
    assert_golden(GOLDEN / "templates" / "llzo-potential-h200-pw.in", text)
    _, cpu = bound("dft", "cpu", tmp_path)
    text = render.render_text(
        "qe/pw-scf.in.j2",
        **qe.input_context(cells.add_li(atoms, np.random.default_rng(0)), SPECIES, cpu.cfg,
                           prefix="pw-001", smeared=True),
    )  # fmt: skip
    assert "K_POINTS gamma" in text and "occupations = 'smearing'" in text
    assert "degauss = 0.0200" in text and "nat = 97" in text
    assert "mixing_mode" not in text  # plain mixing unless the frame's class asks
    assert cpu.cfg.local_tf_classes == ["gb"]
    text = render.render_text(
        "qe/pw-scf.in.j2", **qe.input_context(atoms, SPECIES, cpu.cfg, "pw-002", local_tf=True)
    )
    assert "  mixing_beta = 0.4000\n  mixing_mode = 'local-TF'\n  electron_maxstep" in text


def _fake_dataset(run: Path) -> None:
    """A dataset stage folder with fixed labels: what train.render reads."""
    d = run / "04_dataset"
    d.mkdir(parents=True)
    frames = [cells.primitive_cell(1)] + [phases.PHASES[n].build() for n in
              ("li2o", "zro2-cubic", "la2o3-hex", "al2o3-corundum")]  # fmt: skip
    per_atom = {"Li": -200.0, "La": -900.0, "Zr": -1300.0, "O": -440.0, "Al": -70.0}
    for k, a in enumerate(frames):
        e = sum(per_atom[s] for s in a.get_chemical_symbols()) - 0.1 * k
        a.calc = SinglePointCalculator(a, energy=e, forces=np.zeros((len(a), 3)))
    write(d / "train.extxyz", frames, format="extxyz")
    split = {"train": 5, "val": 1, "test": 1}
    result = {"split": split, "energy_per_atom_ev": {}, "force_rms_ev_a": {}, "min_distance_a": 1.5}
    (d / "manifest.json").write_text(json.dumps({"status": "complete", "result": result}))


def test_golden_h200_training_is_data_parallel_with_ls_energy_shifts(tmp_path):
    study, train = bound("train", "h200", tmp_path)
    _fake_dataset(tmp_path)
    stage_dir = tmp_path / "05_train"
    stage_dir.mkdir()
    train.render(engine.Context(study, tmp_path), stage_dir)
    text = (stage_dir / "train.yaml").read_text()
    assert "  devices: 8\n  num_nodes: 1\n  strategy: ddp\n" in text
    assert "accelerator: gpu" in text and "per_type_energy_shifts:\n      Li: " in text
    assert_golden(GOLDEN / "templates" / "llzo-potential-h200-train.yaml", text)


def test_golden_h200_slurm_jobs_of_dft_and_train(tmp_path):
    pl = sweep_plan.plan("llzo-potential", tmp_path / "run", profile="h200")
    cfg = loader.load(pl.points[0].study_file)
    py = "/opt/mlmd/venv/bin/python"
    for name in ("dft", "train"):
        job = sweep_slurm.stage_job(pl, cfg, pl.stages.index(name), (0,), None, py)
        text = slurm.render_batch(job).replace(str(pl.run_dir), "/scratch/runs/llzo-potential")
        assert_golden(GOLDEN / "slurm" / f"potential_h200_{name}.sbatch", text)
    dft = (GOLDEN / "slurm" / "potential_h200_dft.sbatch").read_text()
    assert "#SBATCH --gres=gpu:8\n" in dft and "#SBATCH --ntasks=8\n" in dft
    assert "#SBATCH --time=72:00:00\n" in dft
    tr = (GOLDEN / "slurm" / "potential_h200_train.sbatch").read_text()
    # 8 GPUs and 8 x 8 cores; nequip-train runs ONCE (no srun, no per-rank GPU binding):
    # it sees all 8 GPUs and Lightning starts the 8 DDP processes itself
    assert "#SBATCH --gres=gpu:8\n" in tr and "#SBATCH --cpus-per-task=8\n" in tr
    assert "BIND_GPU" not in tr and not [ln for ln in tr.splitlines() if ln.startswith("srun")]


def test_the_effective_dft_settings_reach_the_model_manifest_rule(tmp_path):
    """What the potential study's train stage records as `dft_settings` (the dft stage
    built from the loaded study) is the h200 block, with no `by_profile` left in it."""
    study, dft = bound("dft", "h200", tmp_path)
    assert "by_profile" not in study.blocks["dft"] and study.blocks["dft"]["ecutrho_ry"] == 480
    settings = dft.cfg.model_dump(mode="json")
    assert settings["ecutrho_ry"] == 480 and "by_profile" not in settings
