"""The related phases of the training set: ideal crystals built from site data.

Why these (the subset is a choice; see also the study file):
- Li2O (antifluorite): the Li-O bond without La/Zr; the Li source and Li-rich limit.
- c-ZrO2 (fluorite): Zr-O in eightfold coordination (sixfold in the garnet), a
  decomposition product of LLZO.
- h-La2O3 (A-type, P-3m1): La-O in sevenfold coordination (eightfold in the garnet).
- alpha-Al2O3 (corundum): the only Al-O environment besides the Al-doped garnet; the
  oxide that Al-doped LLZO segregates at its grain boundaries.
- La2Zr2O7 (pyrochlore): the Li-loss decomposition product of LLZO, formed at surfaces
  and grain boundaries during sintering; La-O-Zr connectivity without Li. 22 atoms in
  the primitive cell, so the cpu profile may leave it out (cost per SCF in the bench).
- Li2ZrO3 is left out: its monoclinic site data could not be checked offline, and its
  Li-O-Zr environments are those of the garnet itself.

Site data (space group, Wyckoff positions, lattice constants) as commonly tabulated for
these structure types; they were recalled, not re-checked against the original papers
in this offline build, so `tests/test_potential_cells.py` checks what they produce
against textbook bond lengths (Li-O 2.00, Zr-O 2.20, La-O 2.37-2.73, Al-O 1.86/1.97,
pyrochlore Zr-O 2.10 Å). The DFT labels do not depend on the constants being exact:
every frame is strained and rattled, and the DFT relaxes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ase import Atoms
from ase.spacegroup import crystal as sg_crystal

from runbook import crystal


@dataclass(frozen=True)
class Phase:
    name: str
    formula: str
    source: str
    build: Callable[[], Atoms]


def li2o() -> Atoms:
    """Antifluorite Fm-3m, a = 4.61 Å (the smoke study's value), conventional 12 atoms."""
    return crystal.antifluorite("Li", "O", 4.61)


def zro2_cubic() -> Atoms:
    """Fluorite Fm-3m (Zr 4a, O 8c), a = 5.09 Å; conventional 12 atoms."""
    return crystal.antifluorite("O", "Zr", 5.09)


def la2o3_hex() -> Atoms:
    """A-type P-3m1 (No. 164): La 2d (1/3, 2/3, 0.2454), O1 1a, O2 2d (1/3, 2/3, 0.6460);
    a = 3.938, c = 6.136 Å; 5 atoms."""
    return sg_crystal(
        ["La", "O", "O"],
        [(1 / 3, 2 / 3, 0.2454), (0, 0, 0), (1 / 3, 2 / 3, 0.6460)],
        spacegroup=164,
        cellpar=[3.938, 3.938, 6.136, 90, 90, 120],
    )


def al2o3_corundum() -> Atoms:
    """Corundum R-3c (No. 167, hexagonal axes): Al 12c (0, 0, 0.3522), O 18e (0.3064, 0,
    1/4); a = 4.759, c = 12.991 Å; the rhombohedral primitive cell, 10 atoms."""
    return sg_crystal(
        ["Al", "O"],
        [(0, 0, 0.3522), (0.3064, 0, 0.25)],
        spacegroup=167,
        cellpar=[4.759, 4.759, 12.991, 90, 90, 120],
        primitive_cell=True,
    )


def la2zr2o7_pyrochlore() -> Atoms:
    """Pyrochlore Fd-3m (No. 227, origin choice 2): La 16d (1/2, 1/2, 1/2), Zr 16c
    (0, 0, 0), O 48f (0.332, 1/8, 1/8), O' 8b (3/8, 3/8, 3/8); a = 10.80 Å; the fcc
    primitive cell, 22 atoms."""
    return sg_crystal(
        ["La", "Zr", "O", "O"],
        [(0.5, 0.5, 0.5), (0, 0, 0), (0.332, 0.125, 0.125), (0.375, 0.375, 0.375)],
        spacegroup=227,
        setting=2,
        cellpar=[10.80] * 3 + [90] * 3,
        primitive_cell=True,
    )


PHASES: dict[str, Phase] = {
    p.name: p
    for p in (
        Phase("li2o", "Li2O", "antifluorite, a 4.61 Å", li2o),
        Phase("zro2-cubic", "ZrO2", "fluorite, a 5.09 Å", zro2_cubic),
        Phase("la2o3-hex", "La2O3", "A-type P-3m1, a 3.938 c 6.136 Å", la2o3_hex),
        Phase("al2o3-corundum", "Al2O3", "R-3c, a 4.759 c 12.991 Å", al2o3_corundum),
        Phase("la2zr2o7-pyrochlore", "La2Zr2O7", "Fd-3m, a 10.80 Å", la2zr2o7_pyrochlore),
    )
}
