"""Descriptors and selection of the potential study: symmetry-function invariances, a
hand-checked value, PCA + farthest-point sampling with class quotas, the select step on
real candidates, and the one-line errors for an empty or unusable selection. No engines
beyond the classical-free parts (fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT
from runbook import crystal
from runbook.potential import cells, choose, descriptors, phases, selection

SF = descriptors.SymmetryFunctions(("Li", "La", "Zr", "O", "Al"))


def rattled_llzo(seed: int = 1) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms, _ = crystal.strained_rattled(cells.primitive_cell(seed), rng, 0.02, 0.1)
    return atoms


# ------------------------------------------------------------------------- descriptors


def test_a_hand_checked_value():
    """O at the origin, Li at 2 Å along x and along y (90 deg), no periodicity."""
    atoms = Atoms("OLiLi", positions=[(0, 0, 0), (2, 0, 0), (0, 2, 0)], cell=[20, 20, 20])
    sf = descriptors.SymmetryFunctions(("Li", "O"), rc_radial=6.0, rc_angular=4.5,
                                       eta_radial=(0.15,), eta_angular=(0.005,),
                                       zeta=(1.0, 4.0), lambdas=(1.0, -1.0))  # fmt: skip
    g = descriptors.per_atom(atoms, sf)
    names = sf.names()
    o = dict(zip(names, g[0], strict=True))
    # G2: 2 exp(-0.15 * 4) * 0.5 (cos(pi 2/6) + 1) = 2 * 0.548812 * 0.75
    assert o["G2[Li](eta=0.15)"] == pytest.approx(0.823217, rel=1e-5)
    assert o["G2[O](eta=0.15)"] == 0.0
    # G3 (Li, Li), theta = 90 deg: f_c(2; 4.5)^2 = (0.5 (cos(2 pi / 4.5) + 1))^2 = 0.344364
    fc2 = 0.586824**2
    assert o["G3[Li-Li](eta=0.005,zeta=1.0,lambda=+1)"] == pytest.approx(
        math.exp(-0.04) * fc2, rel=1e-5
    )
    assert o["G3[Li-Li](eta=0.005,zeta=4.0,lambda=-1)"] == pytest.approx(
        2.0**-3 * math.exp(-0.04) * fc2, rel=1e-5
    )
    assert o["G3[Li-O](eta=0.005,zeta=1.0,lambda=+1)"] == 0.0
    # a Li sees O at 2 Å and the other Li at 2.83 Å; its angle O-Li-Li is 45 deg
    li = dict(zip(names, g[1], strict=True))
    r = 2 * math.sqrt(2)
    fc = lambda d: 0.5 * (math.cos(math.pi * d / 4.5) + 1)  # noqa: E731
    want = 2.0**-3 * (1 + math.cos(math.pi / 4)) ** 4 * math.exp(-0.005 * (4 + 8)) * fc(2) * fc(r)
    assert li["G3[Li-O](eta=0.005,zeta=4.0,lambda=+1)"] == pytest.approx(want, rel=1e-5)


def test_invariant_under_rotation_translation_and_permutation():
    atoms = rattled_llzo()
    ref = descriptors.per_atom(atoms, SF)
    assert ref.shape == (96, SF.n_features) and np.abs(ref).sum() > 0

    rot = atoms.copy()
    r = Rotation.from_euler("zyx", [31, -47, 112], degrees=True).as_matrix()
    rot.set_cell(atoms.cell.array @ r.T, scale_atoms=False)
    rot.positions = atoms.positions @ r.T
    np.testing.assert_allclose(descriptors.per_atom(rot, SF), ref, rtol=1e-9, atol=1e-10)

    moved = atoms.copy()
    moved.positions += [3.7, -1.2, 8.9]
    moved.wrap()
    np.testing.assert_allclose(descriptors.per_atom(moved, SF), ref, rtol=1e-9, atol=1e-10)

    perm = np.random.default_rng(3).permutation(len(atoms))
    shuffled = atoms[perm]
    np.testing.assert_allclose(descriptors.per_atom(shuffled, SF), ref[perm], rtol=1e-9,
                               atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(descriptors.pooled(shuffled, SF), descriptors.pooled(atoms, SF),
                               rtol=1e-9, atol=1e-10)  # fmt: skip


def test_descriptors_tell_structures_apart_and_resolve_elements():
    a, b = descriptors.pooled(rattled_llzo(1), SF), descriptors.pooled(rattled_llzo(2), SF)
    assert np.linalg.norm(a - b) > 1e-3
    al = descriptors.pooled(cells.al_doped(cells.primitive_cell(1), np.random.default_rng(0)), SF)
    block = SF.n_features
    assert not a[4 * block : 5 * block].any() and al[4 * block : 5 * block].any()  # Al centres
    with pytest.raises(ValueError, match="Mg"):
        descriptors.per_atom(Atoms("Mg", cell=[5, 5, 5], pbc=True), SF)


# ---------------------------------------------------------------------------- selection


def test_farthest_point_starts_central_then_takes_the_extremes():
    line = np.arange(11.0)[:, None]
    assert selection.farthest_point(line, 3) == [5, 0, 10]  # tie 0/10: the lower index
    assert selection.farthest_point(line, 0) == []
    assert sorted(selection.farthest_point(line, 50)) == list(range(11))


def test_pca_keeps_the_components_that_carry_the_variance():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    # three copies of one signal and an independent one: after standardisation 3/4 and 1/4
    x = np.stack([t, 2 * t, -t, rng.normal(scale=1e-3, size=200)], axis=1)
    pc = selection.pca(x, variance=0.7)
    assert pc.coords.shape == (200, 1) and pc.explained[0] == pytest.approx(0.75, abs=0.03)
    assert selection.pca(x, variance=0.95).coords.shape == (200, 2)
    assert selection.pca(x, variance=0.95, max_components=1).coords.shape == (200, 1)
    with pytest.raises(ValueError, match="at least 2"):
        selection.pca(x[:1])


def test_select_meets_quotas_per_class_and_reports_shortfalls():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 6))
    classes = ["bulk"] * 12 + ["gb"] * 3 + ["related"] * 14 + ["excess_li"]
    sel = selection.select(x, classes, {"bulk": 4, "gb": 5, "related": 6, "excess_li": 2})
    got = [classes[i] for i in sel.chosen]
    assert got.count("bulk") == 4 and got.count("gb") == 3  # all it has
    assert got.count("related") == 6 and got.count("excess_li") == 1
    assert len(set(sel.chosen)) == len(sel.chosen)
    # FPS in a class's PCA space spreads: the picks are farther apart than random picks
    idx = np.flatnonzero(np.array(classes) == "related")
    picked = [k for k, i in enumerate(idx) if i in sel.chosen]
    c = sel.coords["related"]
    spread = min(np.linalg.norm(c[a] - c[b]) for a in picked for b in picked if a < b)
    rand = np.median([
        min(np.linalg.norm(c[a] - c[b]) for a in s for b in s if a < b)
        for s in (rng.choice(len(idx), 6, replace=False) for _ in range(200))
    ])  # fmt: skip
    assert spread > rand


def _candidates(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for k in range(3):
        a, _ = crystal.strained_rattled(cells.primitive_cell(k), rng, 0.02, 0.05)
        a.info.update(env_class="bulk", family="llzo", candidate=len(frames))
        frames.append(a)
    for name in ("li2o", "zro2-cubic"):
        for _ in range(2):
            a, _ = crystal.strained_rattled(phases.PHASES[name].build(), rng, 0.04, 0.08)
            a.info.update(env_class="related", family=name, candidate=len(frames))
            frames.append(a)
    write(tmp_path / "candidates.extxyz", frames, format="extxyz")
    return frames


def test_the_select_step_writes_frames_rule_and_figure(tmp_path, monkeypatch):
    _candidates(tmp_path)
    p = {"candidates": "candidates.extxyz", "species": ["Li", "La", "Zr", "O", "Al"],
         "quota": {"bulk": 2, "related": 3}, "descriptor": {}, "variance": 0.95,
         "max_components": 10}  # fmt: skip
    (tmp_path / "select.json").write_text(json.dumps(p))
    monkeypatch.chdir(tmp_path)
    assert choose.main(["select.json"]) == 0
    doc = json.loads((tmp_path / "selection.json").read_text())
    assert doc["classes"]["bulk"] == {"quota": 2, "candidates": 3, "selected": 2, "shortfall": 0}
    assert doc["classes"]["related"]["selected"] == 3
    assert "farthest-point" in doc["rule"] and doc["parameters"]["descriptor"] == {}
    assert (tmp_path / "selection.png").stat().st_size > 10_000
    from ase.io import read

    out = read(tmp_path / "structures.extxyz", index=":")
    assert [a.info["selected_rank"] for a in out] == list(range(5))
    assert {a.info["env_class"] for a in out} == {"bulk", "related"}
    # quotas that pick nothing: exit 3 and one line naming the quota
    p["quota"] = {"gb": 2}
    (tmp_path / "select.json").write_text(json.dumps(p))
    assert choose.main(["select.json"]) == 3


@pytest.mark.parametrize(
    ("quota", "field"),
    [("{bulk: 0, gb: 0, excess_li: 0, related: 0}", "select.quota"),
     ("{bulk: 1, gb: 2, excess_li: 2, related: 2}", "select.quota.bulk"),
     ("{bulk: 2, grain: 2}", "select.quota")],
)  # fmt: skip
def test_an_empty_or_unusable_selection_is_one_line_before_anything_runs(tmp_path, quota, field):
    res = CliRunner().invoke(
        app, ["run", "llzo-potential", "--run-dir", str(tmp_path / "run"),
              "--set", f"select.quota={quota}"],
    )  # fmt: skip
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and f": {field}" in lines[0], res.output
    assert not (tmp_path / "run" / "01_sample").exists()  # nothing ran
