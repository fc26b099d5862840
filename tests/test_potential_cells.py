"""The structures the potential study samples: the 96-atom primitive LLZO cell, Al on 24d,
one excess Li, the related phases, the thin Sigma5 mirror cells, and classical-MD
snapshots (LAMMPS, for real, a few hundred steps). Checked against independent numbers:
formal-charge neutrality, published bond lengths and coordinations, the bicrystal's
minimum distances, the mirror geometry."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from ase.geometry import find_mic, get_distances
from ase.neighborlist import neighbor_list

from runbook.llzo import bicrystal, garnet
from runbook.potential import cells, classical, gbcell, phases

CHARGE = {"Li": 1, "La": 3, "Zr": 4, "O": -2, "Al": 3}


def charge(atoms) -> int:
    return sum(CHARGE[s] for s in atoms.get_chemical_symbols())


def bonds(atoms, a: str, b: str, cutoff: float) -> np.ndarray:
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    s = np.array(atoms.get_chemical_symbols())
    return d[(s[i] == a) & (s[j] == b)]


@cache
def gb_cell(levels: int = 2, x_fraction: float = 1.0, seed: int = 1):
    return gbcell.build_any(gbcell.GbCellSpec(levels=levels, x_fraction=x_fraction), seed)


def test_primitive_cell_is_half_the_conventional_one_with_garnet_bonds():
    sites = cells.primitive_sites()
    assert sites.get_chemical_formula() == "La12Li60O48Zr8"  # 68 framework + 12 + 48 Li sites
    assert np.allclose(sites.cell.lengths(), garnet.LATTICE_A * np.sqrt(3) / 2)
    assert np.allclose(sites.cell.angles(), 109.4712206, atol=1e-6)
    assert sites.get_volume() == pytest.approx(garnet.LATTICE_A**3 / 2)
    cell = cells.primitive_cell(1)
    assert cell.get_chemical_formula() == "La12Li28O48Zr8" and charge(cell) == 0
    assert np.allclose(bonds(cell, "Zr", "O", 2.3), 2.113, atol=2e-3)  # ZrO6, Awaka 2011
    assert len(bonds(cell, "Zr", "O", 2.3)) == 8 * 6
    assert len(bonds(cell, "La", "O", 2.7)) == 12 * 8  # LaO8
    assert bonds(cell, "Li", "Li", 2.3).size == 0  # the ordering rule: no Li pair < 2.0 Å
    assert cells.primitive_cell(2).positions.tolist() != cell.positions.tolist()


def test_al_doping_and_excess_li_keep_the_charge_model():
    rng = np.random.default_rng(4)
    base = cells.primitive_cell(3)
    al = cells.al_doped(base, rng)
    assert al.get_chemical_formula() == "AlLa12Li25O48Zr8" and charge(al) == 0
    (k,) = [i for i, s in enumerate(al.get_chemical_symbols()) if s == "Al"]
    assert al.get_tags()[k] == garnet.TAG_LI24D  # on a tetrahedral 24d site
    assert len(bonds(al, "Al", "O", 2.0)) == 4
    ex = cells.add_li(base, rng, min_dist=1.8)
    assert ex.get_chemical_formula() == "La12Li29O48Zr8" and charge(ex) == 1  # one Li ATOM
    i, j, d = neighbor_list("ijd", ex, 3.0)
    assert d[i == len(ex) - 1].min() >= 1.8
    with pytest.raises(ValueError, match="no position"):
        cells.add_li(base, rng, min_dist=4.0, tries=50)


@pytest.mark.parametrize(
    ("name", "cation", "coordination", "bond"),
    [("li2o", "Li", 4, 2.00), ("zro2-cubic", "Zr", 8, 2.20), ("la2o3-hex", "La", 7, 2.37),
     ("al2o3-corundum", "Al", 6, 1.85), ("la2zr2o7-pyrochlore", "Zr", 6, 2.10)],
)  # fmt: skip
def test_related_phases_have_their_textbook_coordination(name, cation, coordination, bond):
    atoms = phases.PHASES[name].build()
    assert charge(atoms) == 0
    d = bonds(atoms, cation, "O", 2.8)
    n_cation = atoms.get_chemical_symbols().count(cation)
    assert len(d) == coordination * n_cation
    assert d.min() == pytest.approx(bond, abs=0.01)


def test_thin_mirror_cell_is_a_neutral_periodic_bicrystal():
    atoms, info = gb_cell()
    assert info["exact_periodic"] and info["grain_thickness_A"] == pytest.approx(2.9, abs=1e-3)
    assert charge(atoms) == 0 and 90 <= len(atoms) <= 140
    lx, ly, lz = atoms.cell.lengths()
    assert lx == pytest.approx(garnet.LATTICE_A * np.sqrt(5)) and ly == pytest.approx(12.9682)
    assert lz == pytest.approx(2 * info["grain_thickness_A"], abs=1e-3)  # info: 4 decimals
    # no pair closer than the bicrystal's minimum distances
    i, j, d = neighbor_list("ijd", atoms, 3.0)
    s = np.array(atoms.get_chemical_symbols())
    assert all(
        dd >= bicrystal.min_dist(s[a], s[b]) - 1e-9 for a, b, dd in zip(i, j, d, strict=True)
    )
    # the framework is mirror symmetric about each plane wherever both images survive
    frame = [k for k, x in enumerate(s) if x != "Li"]
    z0 = info["gb_planes_A"][0]
    pos = atoms.positions[frame]
    img = pos.copy()
    img[:, 2] = 2 * z0 - img[:, 2]
    near = np.abs(((pos[:, 2] - z0 + lz / 2) % lz) - lz / 2) < 1.0
    _, dist = get_distances(img[near], pos, cell=atoms.cell, pbc=True)
    assert (dist.min(axis=1) < 1e-3).mean() > 0.3  # z0 is recorded to 1e-4 Å


def test_windowed_cells_are_smaller_and_their_offsets_deterministic():
    a, info = gb_cell(levels=4, x_fraction=0.3)
    b, _ = gb_cell(levels=4, x_fraction=0.3)
    assert not info["exact_periodic"] and charge(a) == 0
    assert a.cell.lengths()[0] == pytest.approx(0.3 * garnet.LATTICE_A * np.sqrt(5))
    assert a.positions.tolist() == b.positions.tolist()


def test_classical_snapshots_move_every_atom_and_keep_them_apart(lammps_module):
    base = cells.primitive_cell(1)
    spec = classical.MdSpec(temperature_K=700, steps=200, every=100, seed=3)
    snaps = classical.snapshots(base, spec)
    assert len(snaps) == 2 and [s.info["md_step"] for s in snaps] == [100, 200]
    for s in snaps:
        assert s.get_chemical_symbols() == base.get_chemical_symbols()
        assert np.allclose(s.cell.array, base.cell.array)
        dv, d = find_mic(s.positions - base.positions, base.cell, pbc=True)
        assert 0.01 < d.mean() < 1.0  # thermal motion of every species, no jumps
        assert classical.min_distance(s) >= spec.min_pair_A
    li_only = classical.snapshots(base, classical.MdSpec(700, 100, 100, mobile="li", seed=3))
    frame = np.array(base.get_chemical_symbols()) != "Li"
    _, d = find_mic(li_only[0].positions - base.positions, base.cell, pbc=True)
    assert np.allclose(d[frame], 0.0, atol=1e-6) and d[~frame].mean() > 0.01
    with pytest.raises(ValueError, match="Al"):
        classical.snapshots(cells.al_doped(base, np.random.default_rng(0)), spec)
