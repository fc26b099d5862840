"""Prototype crystals for the smoke loop (pure numpy/ASE; no I/O)."""

from __future__ import annotations

import numpy as np
from ase import Atoms

# Antifluorite (Li2O, space group Fm-3m): anions on the fcc sites 4a, cations on all
# eight tetrahedral sites 8c (1/4, 1/4, 1/4) family. Conventional cubic cell, 12 atoms.
FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
TETRA = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])


def antifluorite(cation: str, anion: str, a: float) -> Atoms:
    """The 12-atom conventional cell, anions first then cations (a in Å)."""
    frac = np.vstack([FCC, TETRA])
    symbols = [anion] * len(FCC) + [cation] * len(TETRA)
    return Atoms(symbols, scaled_positions=frac, cell=np.eye(3) * a, pbc=True)


def supercell(atoms: Atoms, reps: list[int]) -> Atoms:
    return atoms.repeat(tuple(int(r) for r in reps))


def strained_rattled(
    atoms: Atoms, rng: np.random.Generator, strain_max: float, rattle: float
) -> tuple[Atoms, np.ndarray]:
    """A copy with a random symmetric strain (entries uniform in ±strain_max) applied to
    cell and positions, then Gaussian displacements of standard deviation `rattle` (Å)."""
    eps = rng.uniform(-strain_max, strain_max, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    out.positions += rng.normal(0.0, rattle, size=out.positions.shape)
    return out, eps
