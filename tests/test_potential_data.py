"""The data rules of the potential study, without engines: per-species energies by least
squares (the trivial energy baseline and the model's energy shifts), the split per
environment class, the dataset step's refusal of a class with one frame, the `by_profile`
merge rule, and the dft stage's record of each command's cost."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from runbook import energyref, launchers, loader, stages
from runbook.files import write_commands
from runbook.potential.stages import TIMINGS, Dft
from runbook.stage import StageFailed
from runbook.steps import dataset

MU = {"Li": -200.0, "La": -900.0, "Zr": -1300.0, "O": -440.0}


def frame(formula: str, extra: float = 0.0, **info) -> Atoms:
    a = Atoms(formula, positions=np.random.default_rng(0).random((len(Atoms(formula)), 3)) * 5,
              cell=[6, 6, 6], pbc=True)  # fmt: skip
    e = sum(MU[s] for s in a.get_chemical_symbols()) + extra * len(a)
    a.calc = SinglePointCalculator(a, energy=e, forces=np.zeros((len(a), 3)),
                                   stress=np.zeros(6))  # fmt: skip
    a.info.update(info)
    return a


def test_least_squares_species_energies_recover_a_linear_model():
    frames = [frame(f) for f in ("Li2O", "ZrO2", "La2O3", "Li7La3Zr2O12", "Li8O4", "Li")]
    fit = energyref.fit(frames, ["Li", "La", "Zr", "O"])
    assert fit.rank == 4 and fit.rmse_ev_per_atom < 1e-9
    for s, mu in MU.items():
        assert fit.mu_ev[s] == pytest.approx(mu, abs=1e-8)
    assert fit.predict(["Li", "Li", "O"]) == pytest.approx(2 * MU["Li"] + MU["O"])


def test_neutral_oxides_alone_fix_only_neutral_combinations():
    """Only oxides: mu_O and the cations are fixed in neutral combinations; predictions for
    neutral compositions do not depend on the (minimum-norm) choice."""
    frames = [frame(f, extra=0.01 * k) for k, f in enumerate(("Li2O", "ZrO2", "La2O3"))]
    fit = energyref.fit(frames, ["Li", "La", "Zr", "O"])
    assert fit.rank == 3
    llzo = Atoms("Li7La3Zr2O12").get_chemical_symbols()  # = 3.5 Li2O + 1.5 La2O3 + 2 ZrO2
    want = 3.5 * frames[0].get_potential_energy() + 1.5 * frames[2].get_potential_energy() \
        + 2 * frames[1].get_potential_energy()  # fmt: skip
    assert fit.predict(llzo) == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="no frames"):
        energyref.fit([])


def test_stratified_split_keeps_every_class_in_train_and_held_out():
    groups = ["bulk"] * 2 + ["gb"] * 2 + ["excess_li"] * 3 + ["related"] * 8
    parts = dataset.stratified_split(groups, 0.15, 0.25, seed=1)
    assert sorted(sum(parts.values(), [])) == list(range(len(groups)))
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        assert set(idx) & set(parts["train"]) and set(idx) & set(parts["test"]), g
    assert len(parts["val"]) >= 1
    assert parts == dataset.stratified_split(groups, 0.15, 0.25, seed=1)  # seeded
    with pytest.raises(ValueError, match="gb hold a single frame"):
        dataset.stratified_split(["bulk", "bulk", "gb"], 0.15, 0.25, seed=1)


def test_the_dataset_step_splits_by_env_class_and_refuses_a_lonely_class(tmp_path, monkeypatch):
    frames = [frame("Li2O", env_class="related") for _ in range(4)]
    frames += [frame("Li7La3Zr2O12", env_class="bulk") for _ in range(2)]
    write(tmp_path / "dft.extxyz", frames, format="extxyz")
    p = {"source": "dft.extxyz", "val_fraction": 0.15, "test_fraction": 0.25, "seed": 0,
         "stratify_by": "env_class"}  # fmt: skip
    (tmp_path / "dataset.json").write_text(json.dumps(p))
    monkeypatch.chdir(tmp_path)
    assert dataset.main(["dataset.json"]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["groups"]["test"] == {"bulk": 1, "related": 1}
    assert stats["groups"]["train"]["bulk"] == 1 and stats["stratified_by"] == "env_class"
    write(tmp_path / "dft.extxyz", frames[:5], format="extxyz")  # one bulk frame left
    with pytest.raises(SystemExit, match="bulk hold a single frame"):
        dataset.main(["dataset.json"])


def test_by_profile_merge_replaces_leaves_and_merges_mappings():
    """The loader's `by_profile` rule (runbook.loader.merged)."""
    base = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": [1, 2]}
    over = {"b": {"d": {"e": 4}, "g": 5}, "f": [3]}
    assert loader.merged(base, over) == {"a": 1, "b": {"c": 2, "d": {"e": 4}, "g": 5},
                                         "f": [3]}  # fmt: skip
    assert base["b"]["d"]["e"] == 3  # not modified


def test_the_dft_stage_times_each_command_and_keeps_the_pw_exit_rule(tmp_path):
    """The study's dft stage records wall and CPU seconds per command in timings.json,
    and, like the generic stage, passes exit status 2 only with pw.x's non-convergence
    mark in the log (python stands in for pw.x: the rule reads exit status and log)."""
    stage = stages.build(loader.load("llzo-potential"), "dft")
    assert isinstance(stage, Dft)
    ok = (0, 2)
    burn = "sum(range(10**7))"
    unconverged = "print('convergence NOT achieved after 2 iterations'); raise SystemExit(2)"
    write_commands(tmp_path, [
        launchers.Command(("python", "-c", burn), "a.out", ok_codes=ok),
        launchers.Command(("python", "-c", unconverged), "b.out", ok_codes=ok),
        launchers.Command(("python", "-c", "raise SystemExit(2)"), "c.out", ok_codes=ok),
    ])  # fmt: skip
    with pytest.raises(StageFailed) as e:
        stage.execute(launchers.Local(threads=1), tmp_path)
    assert e.value.code == 2 and e.value.cmd.log == "c.out" and len(e.value.ran) == 3
    rows = json.loads((tmp_path / TIMINGS).read_text())
    assert [(r["log"], r["exit_status"]) for r in rows] == [("a.out", 0), ("b.out", 2),
                                                            ("c.out", 2)]  # fmt: skip
    assert rows[0]["cpu_s"] >= 0.05 and all(r["wall_s"] > 0 for r in rows)
