"""LLZO boundary construction (issue 12, structure half): the dopant builder, the
charge-neutral contact removal, the rigid-body translation, the boundary-free control,
the Li sites written for the occupancy analysis, the compensated excess-Li insertion and
the boundary-energy bookkeeping. No LAMMPS here (tests/test_llzo_relax.py runs it).

Checks are against independent facts: formal-charge neutrality, Wyckoff positions of the
garnet, oxide stoichiometry of what is removed, counts of the first construction.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.neighborlist import neighbor_list

from bundle.core.errors import InputError
from runbook.llzo import (
    FORMAL_CHARGE,
    bicrystal,
    contacts,
    garnet,
    insert,
    lmpdata,
    md,
    potential,
    refs,
)

AL = {"dopant": "Al", "dopant_level": 0.25}


def charge(symbols) -> int:
    return sum(FORMAL_CHARGE[s] for s in symbols)


@cache
def built(seed: int = 1, termination: int = 1, **kw) -> bicrystal.Bicrystal:
    spec = bicrystal.BicrystalSpec(plane=(2, 1), termination=termination, **kw)
    return bicrystal.build(spec, seed)


def al(**kw) -> bicrystal.Bicrystal:
    return built(**AL, **kw)


# ------------------------------------------------------------------------ dopant builder


def test_composition_formula_and_li_per_formula_unit():
    assert garnet.Composition().formula() == "Li7La3Zr2O12"
    c = garnet.Composition("Al", 0.25)
    assert c.formula() == "Li6.25Al0.25La3Zr2O12" and c.li_per_fu() == 6.25
    assert garnet.Composition("Ga", 0.25).li_per_fu() == 6.25
    assert garnet.Composition("Ta", 0.5).formula() == "Li6.5La3Zr1.5Ta0.5O12"
    with pytest.raises(ValueError, match="expected one of"):
        garnet.Composition("Nb", 0.25)
    with pytest.raises(ValueError, match="level"):
        garnet.Composition("Al", 2.5)  # would need more Li vacancies than Li


@pytest.mark.parametrize("seed", [1, 2])
def test_al_cell_composition_neutrality_and_sites(seed):
    cell = garnet.build_cell(seed, comp=garnet.Composition("Al", 0.25))
    syms = np.array(cell.get_chemical_symbols())
    assert cell.get_chemical_formula() == "Al2La24Li50O96Zr16"  # Li6.25Al0.25La3Zr2O12, Z = 8
    assert charge(syms) == 0
    # every Al sits on a 24d site of the all-sites cell, and no Li is within the rule of it
    sites = garnet.garnet_sites()
    d24 = sites.positions[sites.get_tags() == garnet.TAG_LI24D]
    for p in cell.positions[syms == "Al"]:
        assert np.linalg.norm(d24 - p, axis=1).min() < 1e-6
    i, j, d = neighbor_list("ijd", cell, 3.0)
    al_li = (syms[i] == "Al") & (syms[j] == "Li")
    assert d[al_li].min() >= garnet.DOPANT_LI_MIN_DIST
    assert d[(syms[i] == "Al") & (syms[j] == "O")].min() == pytest.approx(1.91, abs=0.03)
    assert d[(syms[i] == "Li") & (syms[j] == "Li")].min() >= garnet.LI_MIN_DIST


def test_ta_goes_on_zr_sites():
    cell = garnet.build_cell(1, comp=garnet.Composition("Ta", 0.5))
    assert cell.get_chemical_formula() == "La24Li52O96Ta4Zr12"
    assert charge(cell.get_chemical_symbols()) == 0
    sites = garnet.garnet_sites()
    zr = sites.positions[np.array(sites.get_chemical_symbols()) == "Zr"]
    for p in cell.positions[np.array(cell.get_chemical_symbols()) == "Ta"]:
        assert np.linalg.norm(zr - p, axis=1).min() < 1e-6


def test_doped_bicrystal_has_the_level_in_each_neutral_half():
    b = al()
    syms = np.array(b.atoms.get_chemical_symbols())
    half = bicrystal.half_of(b.atoms.positions[:, 2], b.cuts, b.box[2])
    q = np.array([FORMAL_CHARGE[s] for s in syms])
    for h in (0, 1):
        n_fu = np.sum((syms == "Zr") & (half == h)) / 2  # formula units left in the half
        assert np.sum((syms == "Al") & (half == h)) == round(0.25 * n_fu)
        assert q[half == h].sum() == 0
    assert b.counts()["Al"] == 20  # 2 x 38 formula units at x = 0.25, rounded per half


# -------------------------------------------------------------- charge-neutral removal


def _pair_system(b_atoms: list[tuple[str, tuple[float, float, float]]]) -> tuple:
    """Grain A: one O at the origin; grain B: the given atoms. A 20 Å cube."""
    syms = ["O"] + [s for s, _ in b_atoms]
    pos = [(10.0, 10.0, 10.0)] + [tuple(10.0 + x for x in p) for _, p in b_atoms]
    at = Atoms(syms, positions=pos, cell=[20.0] * 3, pbc=True)
    grain = np.array([0] + [1] * len(b_atoms))
    return at, grain, np.arange(len(at))


def test_contact_cation_leaves_with_its_nearest_oxygens():
    # a B Zr 1.0 Å from A's O (Zr-O minimum 1.8), three B O at 2.0, 2.2 and 2.6 Å from it
    at, grain, frame = _pair_system([("Zr", (1.0, 0, 0)), ("O", (3.0, 0, 0)),
                                     ("O", (1.0, 2.2, 0)), ("O", (1.0, 0, 2.6))])  # fmt: skip
    gone = contacts.remove(at, grain, frame, "neutral")
    assert sorted(gone.tolist()) == [1, 2, 3]  # ZrO2: the Zr and its two nearest B oxygens
    assert charge(np.array(at.get_chemical_symbols())[gone]) == 0
    assert contacts.remove(at, grain, frame, "single").tolist() == [1]  # first construction


def test_contact_la_pairs_leave_as_la2o3_and_oxygen_alone_as_li2o():
    la = [("La", (1.2, 0, 0)), ("La", (1.2, 4.0, 0))]
    oxy = [("O", (1.2 + dx, 4.0 * k, 2.4 + 0.1 * k)) for k in (0, 1) for dx in (0.0, 0.5)]
    at, grain, frame = _pair_system(la + oxy)
    at.positions[0] = at.positions[1] + [0.0, 2.0, 0.0]  # A's O 2.0 Å from both La (< 2.1)
    gone = contacts.remove(at, grain, frame, "neutral")
    syms = np.array(at.get_chemical_symbols())[gone]
    assert sorted(syms.tolist()) == ["La", "La", "O", "O", "O"]  # La2O3
    # an O-O contact: the B oxygen goes alone (a Li2O unit: the neutrality rule takes 2 Li)
    at2, g2, f2 = _pair_system([("O", (1.5, 0, 0)), ("O", (4.0, 0, 0))])
    assert contacts.remove(at2, g2, f2, "neutral").tolist() == [1]


def test_neutral_removal_never_adds_li_and_single_rule_is_the_first_construction():
    ctrl, b = built(control=True), built()
    d = {s: ctrl.counts()[s] - b.counts()[s] for s in ("Li", "La", "Zr", "O")}
    units = contacts.units(d)
    # the removed composition is a sum of oxide units: O balances the cations and the Li
    assert d["O"] == pytest.approx(2 * d["Zr"] + 1.5 * d["La"] + 0.5 * d["Li"])
    assert d["Li"] >= 0 and units["ZrO2"] == d["Zr"]
    first = built(removal="single")  # the counts of the first construction (seed-free)
    assert first.counts() == {"Li": 540, "La": 236, "Zr": 152, "O": 928}
    # the charge-neutral rule builds termination 0, which the first rule could not fill
    t0 = built(termination=0)
    assert t0.charge() == 0 and t0.half_charges() == (0, 0)


# ------------------------------------------------------------- translation and control


def test_control_is_the_stoichiometric_crystal_with_the_same_box():
    c, b = al(control=True), al()
    assert c.counts() == {"Li": 500, "La": 240, "Zr": 160, "O": 960, "Al": 20}
    assert c.removed == {} and c.half_charges() == (0, 0)
    assert c.box == pytest.approx(b.box) and c.gb_planes == pytest.approx(b.gb_planes)
    # a crystal: every Zr has its 6 O at the garnet distance, also at the nominal planes
    syms = np.array(c.atoms.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", c.atoms, 2.6)
    cn = np.bincount(i[(syms[i] == "Zr") & (syms[j] == "O")], minlength=len(syms))
    assert np.all(cn[syms == "Zr"] == 6)


def test_shift_and_gap_move_grain_b_rigidly():
    b0, b1 = built(), built(shift=(2.9, 6.48))
    bg = built(gap=1.0)
    assert bg.box[2] == pytest.approx(b0.box[2] + 2.0)
    for b in (b1, bg):
        assert b.charge() == 0 and b.half_charges() == (0, 0)

    # far from the planes, B's framework is A's mirror image moved by the shift
    def b_interior(bc):
        g = bc.atoms.get_array("grain")
        z = bc.atoms.positions[:, 2]
        fr = np.array([s != "Li" for s in bc.atoms.get_chemical_symbols()])
        dz = np.min([np.abs((z - p + bc.box[2] / 2) % bc.box[2] - bc.box[2] / 2)
                     for p in bc.gb_planes], axis=0)  # fmt: skip
        return bc.atoms.positions[(g == 1) & fr & (dz > 6.0)]

    p0, p1 = b_interior(b0), b_interior(b1)
    moved = np.mod(p0 + [2.9, 6.48, 0.0], b0.box)
    diff = moved[:, None, :] - p1[None, :, :]
    diff -= np.array(b0.box) * np.round(diff / np.array(b0.box))
    assert len(p0) == len(p1) and np.linalg.norm(diff, axis=2).min(axis=1).max() < 1e-6


def test_two_grain_thicknesses():
    thick = bicrystal.build(bicrystal.BicrystalSpec(plane=(2, 1), termination=1,
                                                    repeat=(1, 1, 2), **AL), 1)  # fmt: skip
    thin = al()
    assert thick.box[2] == pytest.approx(2 * thin.box[2])
    assert thick.half_charges() == (0, 0)
    # the boundaries are the same: the contact rule removes the same atoms
    assert thick.removed == thin.removed


# --------------------------------------------------------------------------- Li sites


def test_li_sites_for_the_occupancy_analysis():
    b = al()
    s = b.sites
    n = len(s["xyz"])
    assert s["xyz"].shape == (n, 3) and set(s["label"]) == {"24d", "96h"}
    assert set(np.unique(s["grain"])) == {0, 1} and s["anchor_ids"].shape == (n, 4)
    li = b.atoms.positions[np.array(b.atoms.get_chemical_symbols()) == "Li"]
    assert s["occupied"].sum() == len(li)
    occ = s["xyz"][s["occupied"]]
    d = occ[:, None, :] - li[None, :, :]
    d -= np.array(b.box) * np.round(d / np.array(b.box))
    assert np.linalg.norm(d, axis=2).min(axis=1).max() < 1e-6
    al_pos = b.atoms.positions[np.array(b.atoms.get_chemical_symbols()) == "Al"]
    on_al = s["blocked"] & (s["label"] == "24d")
    assert on_al.sum() >= len(al_pos) and not np.any(s["occupied"] & s["blocked"])
    # roughly 3 of 4 of the 24 + 96 sites per cell survive near the boundaries
    assert 0.9 * 1200 <= n <= 1200


# ---------------------------------------------------------------------- excess Li


def _data(b):
    return lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)


def test_excess_li_placements():
    b = al()
    d = _data(b)
    lz = b.box[2]
    for placement, ok in (("near", lambda x: x <= 2.0), ("away", lambda x: x >= 4.0)):
        spec = insert.InsertSpec(n=8, placement=placement, near_band_A=2.0, seed=3)
        out, ids = insert.insert(d, b.gb_planes, spec)
        z = out.positions[-8:, 2]
        dist = np.min([np.abs((z - p + lz / 2) % lz - lz / 2) for p in b.gb_planes], axis=0)
        assert np.all(ok(dist)), (placement, dist)
    uni, _ = insert.insert(d, b.gb_planes, insert.InsertSpec(n=8, placement="uniform", seed=3))
    assert uni.counts()["Li"] == d.counts()["Li"] + 8


def test_excess_li_compensation_models():
    b = al()
    d = _data(b)
    spec = insert.InsertSpec(n=4, compensation="reduce", seed=2)
    red, ids = insert.insert(d, b.gb_planes, spec)
    assert red.charge() == pytest.approx(0.0)
    zr = red.types == 3
    assert np.sum(red.charges[zr] == 3.0) == 4 and np.sum(red.charges[zr] == 4.0) == zr.sum() - 4
    partners = insert.reduced_partners(d, red.positions[-4:])
    assert set(red.ids[partners]) == set(red.ids[zr & (red.charges == 3.0)])
    # the first Li's partner is the Zr nearest to it
    box = np.array(b.box)
    dd = d.positions[d.types == 3] - red.positions[-4]
    dd -= box * np.round(dd / box)
    dk = d.positions[partners[0]] - red.positions[-4]
    dk -= box * np.round(dk / box)
    assert np.linalg.norm(dk) == pytest.approx(np.linalg.norm(dd, axis=1).min())
    neu, _ = insert.insert(d, b.gb_planes, insert.InsertSpec(n=4, compensation="neutral"))
    assert neu.charge() == pytest.approx(0.0) and np.all(neu.charges[-4:] == 0.0)
    # the MD inputs keep these per-atom charges (the potential's `set type` comes first)
    over = lmpdata.charge_overrides(red)
    assert sorted(over.values()) == [-1.0] * 4
    lines = md.charge_lines(red, potential.load())
    assert len(lines) == 4 and all(ln.endswith("charge 3.000000") for ln in lines)
    assert md.charge_lines(neu, potential.load())[0].endswith("charge 0.000000")


# ------------------------------------------------------------------ boundary energy


def test_boundary_energy_bookkeeping():
    mu = {"Li": -16.0, "La": -63.0, "Zr": -110.0}
    bulk = {"Li": 10, "La": 6, "Zr": 4, "O": 24}
    gb = {"Li": 8, "La": 6, "Zr": 3, "O": 21}  # lost one ZrO2 and one Li2O
    g = refs.boundary_energy(-1000.0, gb, -1200.0, bulk, 100.0, mu)
    # E_gb - (E_bulk - ZrO2 - Li2O) = -1000 - (-1200 + 110 + 32) = 58 eV over 2 x 100 Å^2
    assert g.gamma_J_m2 == pytest.approx(58.0 / 200.0 * 16.0217663, abs=1e-4)
    assert g.removed_units == {"LiO0.5": 2.0, "ZrO2": 1.0}
    with pytest.raises(ValueError, match="not a sum of neutral oxide units"):
        refs.boundary_energy(-1000.0, {**gb, "O": 22}, -1200.0, bulk, 100.0, mu)


def test_oxide_reference_cells_are_neutral_stoichiometric_and_orthorhombic():
    for cation, ratio in (("Li", 2.0), ("La", 2 / 3), ("Zr", 0.5), ("Al", 2 / 3)):
        at = refs.oxide(cation)
        syms = at.get_chemical_symbols()
        assert charge(syms) == 0
        assert syms.count(cation) / syms.count("O") == pytest.approx(ratio)
        assert np.allclose(at.cell.array, np.diag(at.cell.lengths()))
        assert min(at.cell.lengths()) > 11.0
        i, j, d = neighbor_list("ijd", at, 1.5)
        assert len(d) == 0  # no overlapping atoms from the orthogonalisation


# --------------------------------------------------------------------- bad study input


def _ctx(tmp_path, **blocks):
    from runbook import loader
    from runbook.stage import Context

    doc = {
        "schema": "study/1", "name": "t", "species": ["Li"], "profile": "cpu",
        "profiles": {"cpu": {"accelerator": "cpu"}}, "stages": list(blocks), **blocks,
    }  # fmt: skip
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(doc))
    study = loader.load(tmp_path / "t.yaml")
    return study, Context(study, tmp_path / "run")


def test_study_errors_name_the_field(tmp_path):
    from runbook.config import stage_config
    from runbook.llzo import buildstage, stages

    study, ctx = _ctx(tmp_path, build={"kind": "runbook.llzo.buildstage:Build", "dopant": "Ga",
                                       "dopant_level": 0.25})  # fmt: skip
    b = buildstage.Build("build", stage_config(study, "build", buildstage.Build.Config))
    with pytest.raises(InputError) as e:  # no verified Ga-O parameters in the shipped file
        b.preflight(ctx)
    assert e.value.field == "build.dopant" and "Ga-O" in str(e.value)
    study, ctx = _ctx(tmp_path, build={"kind": "runbook.llzo.buildstage:Build", "dopant": "Al",
                                       "dopant_level": 3.0})  # fmt: skip
    b = buildstage.Build("build", stage_config(study, "build", buildstage.Build.Config))
    with pytest.raises(InputError) as e:
        b.preflight(ctx)
    assert e.value.field == "build.dopant_level"
    study, ctx = _ctx(
        tmp_path,
        build={"kind": "runbook.llzo.buildstage:Build"},
        md={"kind": "runbook.llzo.stages:Md", "input": "build", "time_ps": 1.0,
            "barostat_z": True},
    )  # fmt: skip
    m = stages.Md("md", stage_config(study, "md", stages.Md.Config))
    with pytest.raises(InputError) as e:
        m.preflight(ctx)
    assert e.value.field == "md.barostat_z"
