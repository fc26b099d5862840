"""Small reference crystals for the pseudopotential validation and the DFT cost table,
and the 96-atom primitive LLZO cell (plain ASE, no I/O).

Structures and their sources (values as recalled from the cited refinements; this
offline build could not re-check them against the papers, so every E(V) fit below
relaxes nothing that these numbers would bias beyond the stated tolerance):

- c-ZrO2, fluorite (Fm-3m), 3-atom primitive cell: Zr 4a, O 8c. No free coordinate.
- Li2O, antifluorite (Fm-3m), 3-atom primitive cell: O 4a, Li 8c. No free coordinate.
- h-La2O3, A-type (P-3m1), 5 atoms: La 2d (1/3, 2/3, z), O1 1a, O2 2d (1/3, 2/3, z);
  z(La) = 0.2467, z(O2) = 0.6470, c/a = 1.5569 (Aldebert & Traverse, Mater. Res. Bull.
  14, 303 (1979), neutron diffraction at room temperature).
- alpha-Al2O3, corundum (R-3c), 10-atom rhombohedral cell: Al 12c (0, 0, z), O 18e
  (x, 0, 1/4); z(Al) = 0.35216, x(O) = 0.30624, c/a = 2.7297 (hexagonal setting; Lewis,
  Schwarzenbach & Flack, Acta Cryst. A38, 733 (1982)).
- LLZO, cubic garnet (Ia-3d): `runbook.llzo.garnet` (Awaka et al. 2011); the primitive
  cell of the body-centred lattice holds half the conventional cell, Li28La12Zr8O48.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

from runbook.llzo import garnet

LA2O3_C_OVER_A = 1.5569
LA2O3_Z = {"La": 0.2467, "O2": 0.6470}
AL2O3_C_OVER_A = 2.7297
AL2O3_FREE = {"Al_z": 0.35216, "O_x": 0.30624}
BCC_PRIMITIVE = 0.5 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])


def fluorite(cation: str, anion: str, a: float) -> Atoms:
    """Fluorite MX2 primitive cell (3 atoms), cation at the origin (a: cubic, Å)."""
    return bulk(f"{cation}{anion}2", "fluorite", a=a)


def antifluorite(cation: str, anion: str, a: float) -> Atoms:
    """Antifluorite M2X primitive cell (3 atoms), anion at the origin (a: cubic, Å)."""
    atoms = bulk(f"{anion}{cation}2", "fluorite", a=a)
    return atoms


def la2o3(a: float, c_over_a: float = LA2O3_C_OVER_A) -> Atoms:
    """A-type La2O3 (P-3m1, 5 atoms) with the room-temperature internal coordinates."""
    z_la, z_o = LA2O3_Z["La"], LA2O3_Z["O2"]
    return crystal(
        ["La", "O", "O"],
        basis=[(1 / 3, 2 / 3, z_la), (0, 0, 0), (1 / 3, 2 / 3, z_o)],
        spacegroup=164,
        cellpar=[a, a, a * c_over_a, 90, 90, 120],
    )


def corundum(a: float, c_over_a: float = AL2O3_C_OVER_A) -> Atoms:
    """alpha-Al2O3 in its 10-atom rhombohedral primitive cell (a: hexagonal setting, Å)."""
    hexa = crystal(
        ["Al", "O"],
        basis=[(0, 0, AL2O3_FREE["Al_z"]), (AL2O3_FREE["O_x"], 0, 0.25)],
        spacegroup=167,
        cellpar=[a, a, a * c_over_a, 90, 90, 120],
    )
    rhomb = np.array([[2, 1, 1], [-1, 1, 1], [-1, -2, 1]]) / 3.0  # R (obverse) -> primitive
    return _to_primitive(hexa, rhomb @ np.asarray(hexa.cell), 10)


def _to_primitive(atoms: Atoms, cell: np.ndarray, n_expected: int) -> Atoms:
    """The atoms of `atoms` inside the primitive `cell` (duplicates by translation dropped)."""
    frac = np.linalg.solve(cell.T, atoms.positions.T).T
    frac -= np.floor(frac + 1e-6)
    keys, keep = set(), []
    for i, f in enumerate(np.round(frac, 5) % 1.0):
        k = tuple(np.round(f, 4) % 1.0)
        if k not in keys:
            keys.add(k)
            keep.append(i)
    out = Atoms([atoms[i].symbol for i in keep], scaled_positions=frac[keep], cell=cell, pbc=True)
    if "tags" in atoms.arrays:
        out.set_tags(atoms.get_tags()[keep])
    if len(out) != n_expected:
        raise ValueError(f"primitive cell holds {len(out)} atoms, expected {n_expected}")
    return out


def llzo_primitive(seed: int, a: float = garnet.LATTICE_A) -> Atoms:
    """Li28La12Zr8O48: the bcc primitive cell of cubic LLZO with a seeded Li ordering
    (the ordering rule of `garnet.order_li`, applied in the primitive cell)."""
    sites = _to_primitive(garnet.garnet_sites(a), BCC_PRIMITIVE * a, 128)
    atoms = garnet.order_li(sites, garnet.LI_PER_CELL // 2, np.random.default_rng([seed, 1]))
    return _species_sorted(atoms)


def llzo_al_primitive(seed: int, a: float = garnet.LATTICE_A) -> Atoms:
    """Li25Al1La12Zr8O48: one 24d Li of `llzo_primitive` becomes Al3+, and two further Li
    (seeded draw among the rest) are removed for charge balance."""
    atoms = llzo_primitive(seed, a)
    rng = np.random.default_rng([seed, 2])
    tags = atoms.get_tags()
    li24d = np.flatnonzero((tags == garnet.TAG_LI24D) & (atoms.numbers == 3))
    al = int(rng.choice(li24d))
    others = np.setdiff1d(np.flatnonzero(atoms.numbers == 3), [al])
    gone = rng.choice(others, size=2, replace=False)
    atoms[al].symbol = "Al"
    del atoms[sorted(int(i) for i in gone)]
    return _species_sorted(atoms)


def _species_sorted(atoms: Atoms) -> Atoms:
    order = {"Li": 0, "Al": 1, "La": 2, "Zr": 3, "O": 4}
    idx = sorted(range(len(atoms)), key=lambda i: (order[atoms[i].symbol], i))
    return atoms[idx]
