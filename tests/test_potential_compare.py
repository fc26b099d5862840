"""The llzo-potential study's DeePMD side without running DeePMD: the rendered
`train_deepmd` input for the LLZO type map, its `sel` against neighbour counts of the
study's own cells, and the comparison's arithmetic (runbook.potential.compare) on small
synthetic per-frame errors (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matscipy.neighbours import neighbour_list

from bundle.core.errors import InputError
from runbook import config, loader, stages
from runbook.files import write_json_atomic
from runbook.potential import cells, compare, phases, validate
from runbook.stage import Context

SPECIES = ["Li", "La", "Zr", "O", "Al"]


def study(profile: str = "cpu"):
    return loader.load(config.resolve_path("llzo-potential"), profile=profile)


def rendered(tmp_path, profile: str = "cpu") -> tuple[dict, dict]:
    """input.json and deepmd_steps.json of the study's train_deepmd stage, rendered
    against a dataset stage result written by hand (the split counts are all it reads)."""
    st = study(profile)
    ctx = Context(st, tmp_path)
    ds = ctx.dir_of("dataset")
    ds.mkdir(parents=True)
    result = {"split": {"train": 8, "val": 1, "test": 5}}
    write_json_atomic(ds / "manifest.json", {"status": "complete", "result": result})
    out = tmp_path / "render"
    out.mkdir()
    stages.build(st, "train_deepmd").render(ctx, out)
    return json.loads((out / "input.json").read_text()), json.loads(
        (out / "deepmd_steps.json").read_text()
    )


@pytest.mark.parametrize("profile", ["cpu", "h200"])
def test_train_deepmd_renders_the_llzo_type_map_and_allegros_cutoff(tmp_path, profile):
    doc, steps = rendered(tmp_path, profile)
    st = study(profile)
    block = stages.build(st, "train_deepmd").cfg
    d = doc["model"]["descriptor"]
    assert doc["model"]["type_map"] == SPECIES == st.species
    assert d["type"] == "se_e2_a"
    assert d["sel"] == [block.descriptor.sel[s] for s in SPECIES]
    # the two models see the same neighbour shell
    assert d["rcut"] == stages.build(st, "train").cfg.r_max_angstrom
    assert doc["training"]["numb_steps"] == block.numb_steps
    # dp test runs on the held-out split validate reads (test.extxyz)
    test = next(s for s in steps["steps"] if s["name"] == "test")["argv"]
    assert test[test.index("-s") + 1] == "data/test"
    if profile == "cpu":
        assert d["rcut"] == 5.0 and doc["training"]["numb_steps"] <= 1000


def neighbour_counts(frames, rcut: float) -> list[int]:
    """Max neighbours of each species within rcut over the frames (type-map order), what
    dp train's neighbour statistics report."""
    best = dict.fromkeys(SPECIES, 0)
    for a in frames:
        i, j = neighbour_list("ij", a, rcut)
        sym = np.array(a.get_chemical_symbols())
        for s in SPECIES:
            m = sym[j] == s
            if m.any():
                best[s] = max(best[s], int(np.bincount(i[m]).max()))
    return [best[s] for s in SPECIES]


@pytest.mark.parametrize("profile", ["cpu", "h200"])
def test_sel_covers_llzo_and_the_related_phases_at_the_cutoff(profile):
    """The study's sel passes the stage's own check (TrainDeepmd._check_sel) on the
    neighbour counts of bulk LLZO, Al-doped LLZO and the related phases (the densest
    frames: Li2O for Li, Al2O3 for O); 10 % fewer than Li2O's count is refused."""
    st = study(profile)
    stage = stages.build(st, "train_deepmd")
    rng = np.random.default_rng(0)
    frames = [cells.primitive_cell(1), cells.al_doped(cells.primitive_cell(2), rng)]
    frames += [p.build() for p in phases.PHASES.values()]
    counts = neighbour_counts(frames, stage.cfg.descriptor.rcut_angstrom)
    ctx = Context(st, Path("."))  # _check_sel reads no file
    stage._check_sel(ctx, {"max_neighbours": counts})  # no refusal
    short = stage.cfg.descriptor.model_copy(
        update={"sel": {**stage.cfg.descriptor.sel, "Li": int(counts[0] * 0.9)}}
    )
    small = type(stage)(stage.name, stage.cfg.model_copy(update={"descriptor": short}))
    with pytest.raises(InputError, match=r"descriptor\.sel\.Li"):
        small._check_sel(ctx, {"max_neighbours": counts})


# ------------------------------------------------------------------ the comparison


def frames_of(cls: str, e_err: list[float], f_sq: list[float], base=(30.0, 4.0), start=0):
    """Per-frame records as validate.frame_errors writes them (10 atoms, 30 components)."""
    return [
        {"index": start + k, "env_class": cls, "family": "", "n": 10, "e_dft_ev": -1.0 * k,
         "components": 30, "e_err_meV_atom": e, "f_sq": f,
         "e_err_base_meV_atom": base[0] * (-1) ** k, "f_sq_base": base[1] * 30}
        for k, (e, f) in enumerate(zip(e_err, f_sq, strict=True))
    ]  # fmt: skip


BOOT = {"resamples": 500, "level": 0.95, "seed": 1, "min_frames": 3}


def test_class_errors_are_the_mae_and_the_pooled_rmse():
    fr = frames_of("bulk", [2.0, -4.0], [30 * 0.01, 30 * 0.04])
    got = compare.class_errors(fr)
    assert got["energy_mae_meV_atom"] == pytest.approx(3.0)
    assert got["force_rmse_ev_A"] == pytest.approx(np.sqrt(0.025))
    base = compare.class_errors(fr, model=False)
    assert base == pytest.approx({"energy_mae_meV_atom": 30.0, "force_rmse_ev_A": 2.0})


def test_the_same_numbers_as_validate_metrics():
    """compare.class_errors of validate.frame_errors == validate.metrics on the same records."""
    rng = np.random.default_rng(5)
    recs = []
    for k in range(4):
        f = rng.normal(0, 1, (7, 3))
        noisy = f + rng.normal(0, 0.1, f.shape)
        recs.append({"index": k, "env_class": "gb", "family": "x", "n": 7, "missing": [],
                     "e_dft": -30.0 + k, "e_base": -30.2 + k, "f_dft": f,
                     "e_model": -30.05 + k * 1.01, "f_model": noisy})  # fmt: skip
    m = validate.metrics(recs)
    fe = validate.frame_errors(recs)
    got, base = compare.class_errors(fe), compare.class_errors(fe, model=False)
    assert got["energy_mae_meV_atom"] == pytest.approx(m["energy_mae_meV_atom"])
    assert got["force_rmse_ev_A"] == pytest.approx(m["force_rmse_ev_A"])
    assert base["energy_mae_meV_atom"] == pytest.approx(m["baseline_energy_mae_meV_atom"])
    assert base["force_rmse_ev_A"] == pytest.approx(m["baseline_force_rmse_ev_A"])


def test_a_winner_only_outside_the_bootstrap_spread():
    n = 8
    a = frames_of("bulk", [1.0, -1.0] * 4, [30 * 0.01] * n)  # 1 meV/atom, 0.1 eV/Å
    b = frames_of("bulk", [5.0, -6.0] * 4, [30 * 0.09] * n)  # 5.5 meV/atom, 0.3 eV/Å
    row = compare.compare_class("bulk", {"allegro": a, "deepmd": b}, BOOT)
    assert row["frames"] == row["evaluated_by_all"] == n and row["atoms"] == 10 * n
    for s in ("energy_mae_meV_atom", "force_rmse_ev_A"):
        assert row["winner"][s]["winner"] == "allegro", row["winner"][s]
        lo, hi = row["winner"][s]["interval"]
        assert hi < 0
    assert row["models"]["deepmd"]["energy_mae_meV_atom"] == pytest.approx(5.5)
    # the same frames, errors that trade places frame by frame: no winner
    c = frames_of("bulk", [1.0, 9.0] * 4, [30 * 0.01, 30 * 0.25] * 4)
    d = frames_of("bulk", [9.0, 1.0] * 4, [30 * 0.25, 30 * 0.01] * 4)
    tie = compare.compare_class("bulk", {"allegro": c, "deepmd": d}, BOOT)
    assert all(w["winner"] is None for w in tie["winner"].values())
    assert "within the spread" in tie["winner"]["force_rmse_ev_A"]["why"]


def test_too_few_frames_no_winner_and_unevaluable_frames_left_out():
    a = frames_of("gb", [1.0, 1.0, 1.0], [3.0, 3.0, 3.0])
    b = frames_of("gb", [50.0, 50.0, 50.0], [300.0, 300.0, 300.0])
    b[2] = {**b[2], "e_err_meV_atom": None, "f_sq": None}  # species unknown to model b
    row = compare.compare_class("gb", {"allegro": a, "deepmd": b}, BOOT)
    assert row["frames"] == 3 and row["evaluated_by_all"] == 2 and row["atoms"] == 20
    assert all(w["winner"] is None and "no spread" in w["why"] for w in row["winner"].values())
    assert row["models"]["allegro"]["force_rmse_ev_A_bootstrap_sd"] is None


def test_main_writes_the_table_and_keeps_verdicts_per_model(tmp_path, monkeypatch):
    frames = frames_of("bulk", [1.0] * 4, [3.0] * 4) + frames_of(
        "gb", [2.0] * 3, [6.0] * 3, start=4
    )
    other = [{**f, "e_err_meV_atom": f["e_err_meV_atom"] * 3} for f in frames]
    docs = {"a.json": ("PASS", frames, []), "b.json": ("FAIL", other, ["gb: too large"])}
    speed = {"atoms": 96, "steps": 200, "temperature_K": 600.0, "atom_steps_per_s": 4392.4,
             "wall_s": 4.37, "model_s": 4.07, "stable": False}  # fmt: skip
    for name, (verdict, fr, reasons) in docs.items():
        doc = {"verdict": verdict, "reasons": reasons, "model": name, "frames": fr,
               "stability": speed if name == "a.json" else {}}  # fmt: skip
        (tmp_path / name).write_text(json.dumps(doc))
    p = {"models": {m: {"validation": f, "training": {"stage": m, "wall_s": 1.5, "cpu_s": 2.5}}
                    for m, f in (("allegro", "a.json"), ("deepmd", "b.json"))},
         "classes": ["bulk", "gb"], "bootstrap": BOOT}  # fmt: skip
    p["models"]["deepmd"]["training"]["steps"] = {"train": {"wall_s": 1.0, "cpu_s": 2.0}}
    (tmp_path / "compare.json").write_text(json.dumps(p))
    monkeypatch.chdir(tmp_path)
    assert compare.main(["compare.json"]) == 0
    out = json.loads((tmp_path / "comparison.json").read_text())
    assert out["verdict"] == "FAIL" and out["verdicts"] == {"allegro": "PASS", "deepmd": "FAIL"}
    assert out["classes"]["bulk"]["winner"]["energy_mae_meV_atom"]["winner"] == "allegro"
    md = (tmp_path / "comparison.md").read_text()
    assert "| bulk | 4 | 40 |" in md and "| deepmd | FAIL | 1.5 | 2.5 |" in md
    assert "deepmd: the training step alone (`dp train`) took 1.0 s wall, 2.0 s CPU" in md
    assert "| allegro | 96 | 200 | 600.0 | 4392.4 | 4.37 | 4.07 | no |" in md
    assert out["md"]["deepmd"] is None and "| deepmd | 96" not in md  # no stability run
    # models validated on different frames are refused
    (tmp_path / "b.json").write_text(json.dumps({"verdict": "PASS", "reasons": [],
                                                 "model": "b", "frames": frames[:3]}))  # fmt: skip
    with pytest.raises(ValueError, match="other held-out frames"):
        compare.main(["compare.json"])


def test_the_run_verdict_covers_both_validate_stages(tmp_path):
    """Each validate stage is a check: `bundle run` judges both (engine.verdicts reads a
    ValidateResult, which is no reference CheckResult), so a DeePMD FAIL cannot hide
    behind an Allegro PASS."""
    from runbook import engine

    st = study()
    ctx = Context(st, tmp_path)
    for name, verdict in (("validate", "PASS"), ("validate_deepmd", "FAIL")):
        result = {"verdict": verdict, "reasons": [], "classes": {}, "stability": {},
                  "model": "m", "figures": []}  # fmt: skip
        if name == "validate":
            result["report"] = "validation.json"
        ctx.dir_of(name).mkdir()
        write_json_atomic(ctx.dir_of(name) / "manifest.json",
                          {"status": "complete", "result": result})  # fmt: skip
    got = {v.stage: v.verdict for v in engine.verdicts(st, tmp_path)}
    assert got == {"validate": "PASS", "validate_deepmd": "FAIL"}


def test_compare_refuses_a_validation_without_per_frame_errors(tmp_path):
    """A run validated by an older bundle keeps its validate stage (same inputs, skipped)
    but has no per-frame errors: compare names the stage to redo."""
    st = study()
    ctx = Context(st, tmp_path)
    result = {"verdict": "PASS", "reasons": [], "classes": {"bulk": {}}, "stability": {},
              "model": "m"}  # fmt: skip
    for name in ("train", "validate", "train_deepmd", "validate_deepmd"):
        ctx.dir_of(name).mkdir()
        m = {"status": "complete", "wall_s": 1.0, "cpu_s": 1.0, "result": result}
        write_json_atomic(ctx.dir_of(name) / "manifest.json", m)
    (ctx.dir_of("validate") / "validation.json").write_text(json.dumps({"verdict": "PASS"}))
    (ctx.dir_of("validate_deepmd") / "validation.json").write_text(json.dumps({"frames": []}))
    out = tmp_path / "render"
    out.mkdir()
    with pytest.raises(InputError, match="--force validate"):
        stages.build(st, "compare").render(ctx, out)
