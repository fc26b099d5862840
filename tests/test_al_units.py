"""The labelling loop's pieces without engines: farthest-point selection, the distance
descriptor, the label store's key and its all-or-nothing `done`, the loop's stage
blocks (runbook.al)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runbook import labelstore
from runbook.al import loop, select


def test_farthest_points_spreads_and_caps():
    x = np.array([[0.0], [0.1], [5.0], [5.1], [10.0]])
    assert select.farthest_points(x, 3, start=0) == [0, 4, 2]
    assert select.farthest_points(x, 1, start=3) == [3]
    # duplicates of what is chosen are never taken: fewer than k
    assert select.farthest_points(np.zeros((4, 2)), 3, start=1) == [1]


def test_descriptor_sees_compression_and_ignores_order():
    from runbook import crystal

    a = crystal.antifluorite("Li", "O", 4.61)
    d = select.descriptor(a, 4.0, 16)
    assert d.shape == (48,) and d.sum() > 0  # Li-Li, Li-O, O-O
    perm = a[np.random.default_rng(0).permutation(len(a))]
    np.testing.assert_allclose(select.descriptor(perm, 4.0, 16), d)
    small = crystal.antifluorite("Li", "O", 0.85 * 4.61)
    assert np.linalg.norm(select.descriptor(small, 4.0, 16) - d) > 1.0


def test_label_key_covers_the_input_and_the_pseudopotentials(tmp_path):
    (tmp_path / "pseudo").mkdir()
    (tmp_path / "pseudo" / "Li.UPF").write_text("li")
    (tmp_path / "pw-000.in").write_text("&control\n/\n")
    k0 = labelstore.key(tmp_path, "pw-000.in")
    (tmp_path / "pseudo" / "Li.UPF").write_text("li, another version")
    k1 = labelstore.key(tmp_path, "pw-000.in")
    (tmp_path / "pw-000.in").write_text("&control\n calculation='scf'\n/\n")
    assert len({k0, k1, labelstore.key(tmp_path, "pw-000.in")}) == 3


def test_store_keeps_a_finished_label_once(tmp_path):
    out = tmp_path / "pw.out"
    out.write_text("first")
    store = tmp_path / "labels"
    (store / "k").mkdir(parents=True)  # a folder a kill left without `done`
    (store / "k" / "pw.out").write_text("partial")
    final = labelstore.keep(store, "k", out, 0)
    assert (final / "pw.out").read_text() == "first"
    assert json.loads((final / "done").read_text())["exit_status"] == 0
    mtime = (final / "done").stat().st_mtime_ns
    out.write_text("second")
    labelstore.keep(store, "k", out, 2)  # finished already: untouched
    assert (final / "pw.out").read_text() == "first"
    assert (final / "done").stat().st_mtime_ns == mtime
    assert not list(store.glob(".tmp-*"))
    dest = tmp_path / "again.out"
    assert labelstore.fetch(store, "k", dest) == 0 and dest.read_text() == "first"
    assert labelstore.fetch(store, "other", dest) is None


def test_loop_blocks_wire_each_iteration_to_the_previous():
    doc = {
        "dft": {"ecutwfc_ry": 30},
        "train_deepmd": {"seed": 1, "numb_steps": 300},
        "train_deepmd_b": {"kind": "train_deepmd", "seed": 2, "numb_steps": 300},
        "train_deepmd_c": {"kind": "train_deepmd", "seed": 3, "numb_steps": 300},
    }
    cfg = loop.LoopConfig(
        iterations=2, base_members=["train_deepmd", "train_deepmd_b", "train_deepmd_c"],
        explore={"n_steps": 10, "deepmd": {"devi_every": 5}}, select={"max_frames": 2},
    )  # fmt: skip
    b = loop.blocks(doc, cfg)
    assert list(b)[:4] == ["explore_0", "select_1", "label_1", "dataset_1"]
    assert b["explore_0"]["deepmd"] == {
        "devi_every": 5, "stage": "train_deepmd", "committee": ["train_deepmd_b", "train_deepmd_c"],
    }  # fmt: skip
    assert b["select_2"]["md"] == "explore_1" and b["dataset_2"]["base"] == "dataset_1"
    assert b["label_2"] == {"kind": loop.LABEL, "ecutwfc_ry": 30}
    assert [b[f"train_2_{m}"]["seed"] for m in "abc"] == [1, 2, 3]
    assert {b[f"train_2_{m}"]["dataset"] for m in "abc"} == {"dataset_2"}
    assert b["committee_2"]["members"] == ["train_2_a", "train_2_b", "train_2_c"]
    assert b["explore_2"]["deepmd"]["stage"] == "train_2_a"
    with pytest.raises(ValueError):
        loop.LoopConfig(iterations=1, base_members=["a", "b"], explore={}, select={})


def _loop_study(tmp_path, change: dict | None = None):
    """The DeePMD overlay study (a committee of three) with the CI loop's `loop:` block
    (tests/data/deepmd/al-loop.yaml), `change` merged into the block."""
    import yaml

    from bundle.core import paths
    from runbook import config
    from tests.deepmd_fixture import compose

    path = compose(config.resolve_path("smoke-li2o"), tmp_path / "study.yaml")
    al = paths.root() / "tests" / "data" / "deepmd" / "al-loop.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["loop"] = {**yaml.safe_load(al.read_text()), **(change or {})}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_loop_block_makes_the_study_a_labelling_loop(tmp_path):
    from runbook import loader

    study = loader.load(_loop_study(tmp_path), overrides=["loop.iterations=1"])
    assert study.stages[study.stages.index("md_deepmd") + 1 :] == [
        "explore_0", "select_1", "label_1", "dataset_1", "train_1_a", "train_1_b",
        "train_1_c", "committee_1", "explore_1",
    ]  # fmt: skip
    assert study.blocks["label_1"]["ecutwfc_ry"] == study.blocks["dft"]["ecutwfc_ry"]
    assert study.active.launchers["label_1"] == study.active.launchers["dft"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"iterations": 0}, "loop.iterations"),
     ({"base_members": ["train_deepmd", "x", "y"]}, "loop: names stage 'x'"),
     ({"dft": "no_dft"}, "loop: names stage 'no_dft'")],
)  # fmt: skip
def test_a_bad_loop_block_is_one_line_naming_the_field(tmp_path, change, field):
    from bundle.core.errors import InputError
    from runbook import loader

    path = _loop_study(tmp_path, change)
    with pytest.raises(InputError) as e:
        loader.load(path)
    assert field in str(e.value) and str(path) in str(e.value), str(e.value)


def _summary(boundary: dict | None, frames: dict) -> dict:
    out = {"lo_ev_a": 0.15, "hi_ev_a": 0.45, "frames": frames}
    if boundary is not None:
        out["regions"] = {"boundary": {"frames": frames, "atom_frames": boundary},
                          "interior": {"frames": frames, "atom_frames": frames}}  # fmt: skip
    return out


class _Ctx:
    """What Select.converged reads: the exploration's result (typed view)."""

    def __init__(self, deviation_summary: dict):
        self.dev = deviation_summary

    def result(self, name, typ):
        return typ(type_map={"1": "Li"}, deviation=self.dev)


def _levels(candidate: float, failed: float, n: int = 100) -> dict:
    return {"accurate": 1 - candidate - failed, "candidate": candidate, "failed": failed, "n": n}


def test_the_loop_stops_on_the_band_fraction_outside_trust_and_never_on_nan():
    cfg = select.SelectConfig(md="explore_1", max_frames=2, stop_below=0.05)
    sel = select.Select("select_2", cfg)
    busy_frames = _levels(0.5, 0.2)
    why = sel.converged(_Ctx(_summary(_levels(0.03, 0.01), busy_frames)))
    assert why and "boundary" in why and "0.0400 < stop_below 0.05" in why
    # few candidates but many failed atom-frames: not converged (failed are never labelled)
    assert sel.converged(_Ctx(_summary(_levels(0.01, 0.30), busy_frames))) is None
    assert sel.converged(_Ctx(_summary(_levels(0.04, 0.02), busy_frames))) is None
    # no atom-frame in the band (NaN levels) proves nothing
    nan = {"accurate": float("nan"), "candidate": float("nan"), "failed": float("nan"), "n": 0}
    assert sel.converged(_Ctx(_summary(nan, busy_frames))) is None
    # no per-atom record: the frames decide
    assert "frames" in sel.converged(_Ctx(_summary(None, _levels(0.0, 0.0))))
    off = select.Select("select_2", select.SelectConfig(md="explore_1", max_frames=2))
    assert off.converged(_Ctx(_summary(_levels(0.0, 0.0), busy_frames))) is None
    with pytest.raises(ValueError):
        select.SelectConfig(md="explore_1", max_frames=2, stop_below=0.0)
