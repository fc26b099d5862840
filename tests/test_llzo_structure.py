"""LLZO structures: garnet cell, bicrystal, excess Li, data files, potential file.

Physics checks against independent numbers: the published bond lengths of cubic LLZO,
formal-charge neutrality, the documented minimum distances, the mirror geometry of the
recorded boundary planes. No LAMMPS here (see test_llzo_md.py).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from bundle.core.errors import InputError
from runbook.llzo import FORMAL_CHARGE, bicrystal, garnet, insert, lmpdata, potential


def charge(symbols) -> int:
    return sum(FORMAL_CHARGE[s] for s in symbols)


def pair_distances(atoms, cutoff=3.5):
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    s = np.array(atoms.get_chemical_symbols())
    return s[i], s[j], d


@cache
def small_bicrystal(seed: int = 1):
    return bicrystal.build(bicrystal.BicrystalSpec(plane=(2, 1), termination=1), seed)


# ------------------------------------------------------------------------- garnet cell


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_garnet_cell_composition_neutrality_and_li_sites(seed):
    cell = garnet.build_cell(seed)
    assert cell.get_chemical_formula() == "La24Li56O96Zr16"
    assert charge(cell.get_chemical_symbols()) == 0
    assert np.allclose(cell.cell.lengths(), garnet.LATTICE_A)
    tags = cell.get_tags()
    # 56 is the densest filling: 8 tetrahedral (24d) + all 48 octahedra (one 96h half each)
    assert (tags == garnet.TAG_LI24D).sum() == 8
    assert (tags == garnet.TAG_LI96H).sum() == 48


def test_garnet_li_ordering_obeys_minimum_distance_and_depends_on_seed():
    a, b, c = garnet.build_cell(3), garnet.build_cell(3), garnet.build_cell(4)
    li = [x for x in (a, b, c)]
    for cell in li:
        si, sj, d = pair_distances(cell)
        assert d[(si == "Li") & (sj == "Li")].min() >= garnet.LI_MIN_DIST
    assert np.array_equal(a.positions, b.positions)  # same seed, same ordering
    assert not np.array_equal(a.positions, c.positions)


def test_garnet_framework_bond_lengths_match_cubic_llzo():
    """Cubic LLZO: Zr-O 6 x ~2.11, La-O 4 x ~2.52 + 4 x ~2.58, Li(24d)-O 4 x ~1.91 Å."""
    sites = garnet.garnet_sites()
    s = np.array(sites.get_chemical_symbols())
    tags = sites.get_tags()
    i, j, d = neighbor_list("ijd", sites, 2.7)

    def shell(mask_i, species="O"):
        k = np.flatnonzero(mask_i)[0]
        return np.sort(d[(i == k) & (s[j] == species)])

    assert shell(s == "Zr") == pytest.approx([2.11] * 6, abs=0.02)
    assert shell(s == "La") == pytest.approx([2.52] * 4 + [2.58] * 4, abs=0.03)
    assert shell(tags == garnet.TAG_LI24D) == pytest.approx([1.91] * 4, abs=0.03)
    # the conflicts the 2.0 Å rule encodes: the split 96h pair and 24d facing 96h
    li = tags != garnet.TAG_FRAME
    dli = np.unique(np.round(d[li[i] & li[j]], 2))
    assert dli[0] == pytest.approx(0.89, abs=0.01) and dli[1] == pytest.approx(1.56, abs=0.01)
    assert dli[2] > garnet.LI_MIN_DIST


def test_choose_sites_refuses_an_impossible_count():
    pairs = np.array([[0, 1], [1, 2]])
    rng = np.random.default_rng(0)
    assert sorted(garnet.choose_sites(3, pairs, 2, rng)) == [0, 2]
    with pytest.raises(ValueError, match="could place only 2 of 3"):
        garnet.choose_sites(3, pairs, 3, rng, max_iter=2000)


# --------------------------------------------------------------------------- bicrystal


def test_bicrystal_neutral_and_box():
    b = small_bicrystal()
    assert b.charge() == 0 and b.half_charges() == (0, 0)
    lx, ly, lz = b.box
    a = garnet.LATTICE_A
    assert lx == pytest.approx(a * np.sqrt(5)) and ly == pytest.approx(a)
    assert lz == pytest.approx(2 * a * np.sqrt(5))
    assert b.gb_planes == pytest.approx((lz / 4, 3 * lz / 4))
    assert b.spec.sigma == 5
    # 10 cells' worth of framework, less what the contact rule removed at the boundaries
    c = b.counts()
    assert c["Zr"] + b.removed.get("Zr", 0) == 160 and c["La"] + b.removed.get("La", 0) == 240
    assert c["Li"] > 0.85 * 56 * 10


def test_bicrystal_no_pair_closer_than_documented_minimum():
    b = small_bicrystal()
    si, sj, d = pair_distances(b.atoms)
    for a_, b_, dd in zip(si, sj, d, strict=True):
        assert dd >= bicrystal.min_dist(a_, b_) - 1e-9, (a_, b_, dd)


def test_bicrystal_planes_are_mirror_planes_and_halves_are_neutral():
    b = small_bicrystal()
    at = b.atoms
    lz = b.box[2]
    frame = np.array([s != "Li" for s in at.get_chemical_symbols()])
    z = at.positions[:, 2]
    q = np.array([FORMAL_CHARGE[s] for s in at.get_chemical_symbols()], float)
    for z0 in b.gb_planes:
        # framework 4-9 Å from the plane (beyond the contact clean-up and the O removed with
        # a cation: within 1.5 + 2.2 Å of the plane) has its mirror image
        dz = (z - z0 + lz / 2) % lz - lz / 2
        near = frame & (np.abs(dz) > 4.0) & (np.abs(dz) < 9.0)
        mirrored = at.positions[near].copy()
        mirrored[:, 2] = (2 * z0 - mirrored[:, 2]) % lz
        box = np.array(b.box)
        diff = mirrored[:, None, :] - at.positions[frame][None, :, :]
        diff -= box * np.round(diff / box)
        assert np.linalg.norm(diff, axis=2).min(axis=1).max() < 1e-6
    # each half (cut near the grain centres, one boundary each) carries no net charge
    half = bicrystal.half_of(z, b.cuts, lz)
    assert q[half == 0].sum() == 0 and q[half == 1].sum() == 0
    assert all(
        abs(((c - zc + lz / 2) % lz) - lz / 2) < 1.5
        for c, zc in zip(b.cuts, (0, lz / 2), strict=True)
    )
    assert b.removed  # the contact rule did act


def test_bicrystal_li_ordering_is_seeded():
    a, a2, c = small_bicrystal(1), small_bicrystal(1), small_bicrystal(2)
    assert np.array_equal(a.atoms.positions, a2.atoms.positions)
    assert not np.array_equal(a.atoms.positions, c.atoms.positions)
    assert a.counts() == c.counts()


def test_bicrystal_unreachable_li_count_names_the_spec():
    # the first construction (single-atom removal) asks termination 0 for more Li than its
    # sites hold; the charge-neutral rule builds it (tests/test_llzo_gbbuild.py)
    spec = bicrystal.BicrystalSpec(plane=(2, 1), termination=0, removal="single")
    with pytest.raises(ValueError, match="termination=0"):
        bicrystal.build(spec, 1)
    with pytest.raises(ValueError, match="termination must be"):
        bicrystal.grain_cell(bicrystal.BicrystalSpec(plane=(2, 1), termination=99))


# ------------------------------------------------------------------ data file round trip


def test_data_file_round_trip(tmp_path):
    b = small_bicrystal()
    d = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    p = lmpdata.write_data(tmp_path / "x.data", d, "test")
    text = p.read_text()
    assert "4 atom types" in text and "1 6.9" in text and "Atoms # charge" in text
    back = lmpdata.read_data(p)
    assert back.counts() == b.counts()
    assert back.charge() == pytest.approx(0.0)
    assert np.allclose(back.positions, b.atoms.positions, atol=1e-7)
    assert np.allclose(back.box, b.box)


# ------------------------------------------------------------------------- excess Li


def test_excess_li_inserted_where_required():
    b = small_bicrystal()
    d = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    spec = insert.InsertSpec(n=12, gb_clearance_A=4.0, min_dist_A=1.8, seed=5)
    out, ids = insert.insert(d, b.gb_planes, spec)
    assert len(ids) == 12 and ids.min() == d.ids.max() + 1
    assert out.counts()["Li"] == d.counts()["Li"] + 12
    assert out.charge() == pytest.approx(12.0)
    lz = b.box[2]
    new = out.positions[-12:]
    for z0 in b.gb_planes:
        dz = np.abs((new[:, 2] - z0 + lz / 2) % lz - lz / 2)
        assert dz.min() >= 4.0
    box = np.array(b.box)
    diff = new[:, None, :] - out.positions[None, :, :]
    diff -= box * np.round(diff / box)
    dist = np.linalg.norm(diff, axis=2)
    dist[np.arange(12), len(out.ids) - 12 + np.arange(12)] = np.inf  # self
    assert dist.min() >= 1.8
    # Maxwell-Boltzmann at 700 K: <v^2> = 3 kT/m (loose: 36 samples)
    v2 = (out.velocities[-12:] ** 2).sum(axis=1).mean()
    expect = 3 * insert.KB_EV_PER_K * 700 / 6.94 * insert.EV_PER_AMU_IN_A2_PER_PS2
    assert 0.4 * expect < v2 < 2.0 * expect
    again, _ = insert.insert(d, b.gb_planes, spec)
    assert np.array_equal(again.positions, out.positions)


def test_excess_li_refuses_an_impossible_request():
    b = small_bicrystal()
    d = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    with pytest.raises(ValueError, match="placed only"):
        insert.insert(d, b.gb_planes, insert.InsertSpec(n=5, min_dist_A=4.0, max_tries=2000))


# ------------------------------------------------------------------------ potential file


def test_potential_file_cites_and_renders():
    text = potential.DEFAULT_FILE.read_text()
    assert "Lewis" in text and "J. Phys. C" in text and "Table" in text
    p = potential.load()
    lio = p.pair("Li", "O")
    assert lio is not None and lio.A > 0 and lio.rho > 0
    assert sum(p.charges[s] * n for s, n in {"Li": 7, "La": 3, "Zr": 2, "O": 12}.items()) == 0
    lines = potential.lammps_lines(p)
    assert lines[0] == "set type 1 charge 1" and "kspace_style pppm 0.0001" in lines
    assert any(line.startswith("pair_coeff 1 4 ") for line in lines)
    s = p.scaled("Li", "O", 1.5).pair("Li", "O")
    assert s.A == pytest.approx(1.5 * lio.A) and s.rho == lio.rho


@pytest.mark.parametrize(
    "body, field",
    [
        ("schema: other/1\n", "schema"),
        ("schema: llzo-potential/1\ncharges: {Li: 1}\n", "charges"),
        (
            "schema: llzo-potential/1\ncharges: {Li: 1, La: 3, Zr: 4, O: -2}\n"
            "pairs:\n  Li-O: {A: 1.0, rho: -0.3, C: 0}\n",
            "pairs.Li-O",
        ),
        (
            "schema: llzo-potential/1\ncharges: {Li: 1, La: 3, Zr: 4, O: -2}\n"
            "pairs:\n  La-O: {A: 1.0, rho: 0.3, C: 0}\n",
            "pairs.Li-O",
        ),
    ],
)
def test_potential_file_errors_name_the_field(tmp_path, body, field):
    f = tmp_path / "p.yaml"
    f.write_text(body)
    with pytest.raises(InputError) as e:
        potential.load(f)
    assert e.value.field == field and str(f) in str(e.value)
