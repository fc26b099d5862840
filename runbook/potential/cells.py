"""96-atom primitive cells of cubic LLZO: Li orderings, Al on the 24d site, one excess Li.

Primitive cell
--------------
Ia-3d is body-centred: the conventional cubic cell of `runbook.llzo.garnet` (Z = 8,
Li56La24Zr16O96) holds two primitive cells, spanned by the bcc vectors
a(-1/2, 1/2, 1/2), a(1/2, -1/2, 1/2), a(1/2, 1/2, -1/2) (|v| = a sqrt(3)/2 = 11.23 Å,
angles 109.47 deg). Folding every site of the all-sites cell into it gives 68 framework
atoms (La12 Zr8 O48) and 60 Li candidates (12 on 24d, 48 on 96h); 28 Li are then
ordered on them with the garnet rule (no two Li closer than 2.0 Å; 28 is the densest
such filling, the tetragonal-LLZO count), seeded: Li28La12Zr8O48 = 96 atoms, 600
valence electrons with the study's pseudopotentials.

Al doping (Li6.25Al0.25La3Zr2O12)
---------------------------------
Al3+ sits on the tetrahedral 24d Li site (the site of the Al in Ga/Al-doped cubic LLZO).
One Al per primitive cell (Z = 4) gives x = 0.25: an occupied 24d Li becomes Al and two
more Li are removed, chosen at random among the remaining Li (seeded), so the formal
charges stay neutral: Li25AlLa12Zr8O48, 94 atoms. This is our own small helper: the
dopant option of the garnet builder (runbook.llzo.garnet) is being written separately;
switch to it when it lands.

Excess Li (charge model)
------------------------
One Li *atom* is added to a neutral cell (Li29La12Zr8O48, 97 atoms, 601 electrons): the
cell stays neutral and the extra electron goes where DFT puts it (in PBEsol, the bottom
of the conduction band: delocalised, Zr 4d-like), so these frames need smeared
occupations (dft.smearing_classes). This is the neutral insertion of the published ML
study (an electrode supplying Li+ + e-). It is NOT a localised Zr3+ polaron (that needs
DFT+U or a hybrid functional) and NOT Li+ in a charged cell with a neutralising
background (whose energy carries a cell-size dependent electrostatic term that a local
model cannot learn). The position is drawn uniformly and accepted at >= `min_dist` from
every atom (the rule of runbook.llzo.insert, the same as the grain-boundary study's).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.geometry import get_distances

from runbook.llzo import garnet

BCC_PRIMITIVE = 0.5 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
LI_PER_PRIMITIVE = garnet.LI_PER_CELL // 2  # 28


def primitive_sites(a: float = garnet.LATTICE_A) -> Atoms:
    """Every site of the garnet folded into the bcc primitive cell (tags as in garnet)."""
    conv = garnet.garnet_sites(a)
    cell = BCC_PRIMITIVE * a
    frac = np.linalg.solve(cell.T, conv.positions.T).T % 1.0
    frac[np.isclose(frac, 1.0, atol=1e-9)] = 0.0
    keep: list[int] = []
    seen: list[np.ndarray] = []
    for i, f in enumerate(frac):  # the two body-centring images of a site coincide here
        if not any(np.all(np.abs(((f - g) + 0.5) % 1.0 - 0.5) < 1e-6) for g in seen):
            keep.append(i)
            seen.append(f)
    out = Atoms(
        [conv.get_chemical_symbols()[i] for i in keep],
        scaled_positions=np.array(seen),
        cell=cell,
        pbc=True,
    )
    out.set_tags(conv.get_tags()[keep])
    return out


def primitive_cell(seed: int, a: float = garnet.LATTICE_A) -> Atoms:
    """Li28La12Zr8O48 with a seeded Li ordering (tags 1: Li on 24d, 2: Li on 96h)."""
    rng = np.random.default_rng([seed, 11])
    return garnet.order_li(primitive_sites(a), LI_PER_PRIMITIVE, rng)


def al_doped(atoms: Atoms, rng: np.random.Generator, n_al: int = 1) -> Atoms:
    """`n_al` occupied 24d Li -> Al, and 2 n_al further Li removed (module docstring)."""
    tags = atoms.get_tags()
    syms = np.array(atoms.get_chemical_symbols())
    on24d = np.flatnonzero((syms == "Li") & (tags == garnet.TAG_LI24D))
    if len(on24d) < n_al:
        raise ValueError(f"only {len(on24d)} Li on 24d sites; cannot place {n_al} Al there")
    al = rng.choice(on24d, size=n_al, replace=False)
    others = np.setdiff1d(np.flatnonzero(syms == "Li"), al)
    gone = rng.choice(others, size=2 * n_al, replace=False)
    syms[al] = "Al"
    out = atoms.copy()
    out.set_chemical_symbols(list(syms))
    del out[sorted(gone.tolist())]
    return out


def add_li(atoms: Atoms, rng: np.random.Generator, min_dist: float = 1.8, tries: int = 20000):
    """A copy with one Li atom at a random position >= `min_dist` Å from every atom."""
    cell = atoms.cell.array
    for _ in range(tries):
        p = rng.random(3) @ cell
        _, d = get_distances(p[None, :], atoms.positions, cell=cell, pbc=True)
        if d.min() >= min_dist:
            out = atoms.copy()
            out.append("Li")
            out.positions[-1] = p
            return out
    raise ValueError(f"no position >= {min_dist} Å from every atom in {tries} draws")
