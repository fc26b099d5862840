"""Close contacts across a grain boundary, removed as charge-neutral units.

Rule `neutral` (the default): pairs of framework atoms from different grains closer than
their minimum distance (`MIN_DIST`) are taken nearest first; of each pair still standing,
the atom of grain B goes, with the charge-neutral unit it belongs to:
- a cation M(q+) takes q/2 O of grain B with it, the O nearest to it; a running balance
  carries the half O of La3+ and Al3+, so two La leave with three O. Units: ZrO2, LaO1.5
  (La2O3), AlO1.5 (Al2O3), GaO1.5, TaO2.5. A half O still owed at the end is removed too
  (so the removal never adds Li);
- an O goes alone: the unit is Li2O, whose two Li leave through the neutrality rule of the
  bicrystal (the Li count of each half is minus its framework charge).
Removing units of the crystal's own oxides keeps the boundary's framework charge equal to
what the removed oxides carried (zero): the Li count no longer absorbs a cation excess
or deficit of the contact rule, as it did when single atoms were dropped.

Rule `single` (the first construction, kept for comparison): only the B atom of each pair
goes; the Li count absorbs whatever charge that removes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree

from runbook.llzo import FORMAL_CHARGE, garnet

Rule = Literal["neutral", "single"]

# Minimum distances (Å) that no pair of a finished structure violates. Bulk values on the
# ideal sites, for comparison: O-O 2.89, Zr-O 2.11, La-O 2.52, La-Zr 3.62, La-La 3.97,
# Li-O 1.74, Li-Zr 2.95, Li-La 3.08, Li-Li (allowed pairs) 2.33; Al on 24d: Al-O 1.91.
_CATIONS = ("La", "Zr", "Al", "Ga", "Ta")
MIN_DIST: dict[frozenset[str], float] = {
    frozenset({"O"}): 2.4,
    frozenset({"Li", "O"}): 1.6,
    frozenset({"Li"}): garnet.LI_MIN_DIST,
}
for _a in _CATIONS:
    MIN_DIST[frozenset({_a, "O"})] = 2.1 if _a == "La" else 1.7 if _a == "Al" else 1.8
    MIN_DIST[frozenset({_a, "Li"})] = 2.6 if _a in ("La", "Zr") else garnet.DOPANT_LI_MIN_DIST
    for _b in _CATIONS:
        MIN_DIST[frozenset({_a, _b})] = 3.0
CUTOFF = max(MIN_DIST.values())


def min_dist(a: str, b: str) -> float:
    return MIN_DIST[frozenset({a, b})]


def close_pairs(atoms: Atoms, idx: np.ndarray | None = None) -> list[tuple[float, int, int]]:
    """(distance, i, j) of every pair among `idx` closer than its `MIN_DIST`, nearest first."""
    idx = np.arange(len(atoms)) if idx is None else idx
    sub = atoms[idx]
    i, j, d = neighbor_list("ijd", sub, CUTOFF)
    syms = np.array(sub.get_chemical_symbols())
    out = [
        (float(dd), int(idx[a]), int(idx[b]))
        for a, b, dd in zip(i, j, d, strict=True)
        if a < b and dd < min_dist(syms[a], syms[b])
    ]
    return sorted(out)


def remove(atoms: Atoms, grain: np.ndarray, frame: np.ndarray, rule: Rule) -> np.ndarray:
    """Indices of the framework atoms (among `frame`) to remove by `rule` (module docstring).

    `grain` is 0 for grain A and 1 for grain B, per atom of `atoms`."""
    syms = np.array(atoms.get_chemical_symbols())
    alive = np.zeros(len(atoms), bool)
    alive[frame] = True
    b_oxygen = frame[(grain[frame] == 1) & (syms[frame] == "O")]
    box = atoms.cell.lengths()
    tree = cKDTree(np.mod(atoms.positions[b_oxygen], box), boxsize=box)
    owed, last = 0.0, -1
    for _, i, j in close_pairs(atoms, frame):
        if not (alive[i] and alive[j]) or grain[i] == grain[j]:
            continue
        drop = j if grain[j] == 1 else i
        alive[drop] = False
        if rule == "single" or syms[drop] == "O":
            continue
        owed += FORMAL_CHARGE[str(syms[drop])] / 2.0
        k = int(np.floor(owed + 1e-9))
        owed += _take_oxygen(atoms, drop, k, tree, b_oxygen, alive) - k
        last = drop
    if rule == "neutral" and owed > 1e-9:  # a half O left over: it goes too
        _take_oxygen(atoms, last, 1, tree, b_oxygen, alive)
    return frame[~alive[frame]]


def _take_oxygen(atoms, near: int, k: int, tree, b_oxygen, alive) -> float:
    """Remove the `k` alive grain-B O nearest to atom `near`; returns the O still owed."""
    if k == 0:
        return 0.0
    box = atoms.cell.lengths()
    _, order = tree.query(np.mod(atoms.positions[near], box), k=min(len(b_oxygen), 24 + k))
    taken = 0
    for o in b_oxygen[np.atleast_1d(order)]:
        if taken == k:
            break
        if alive[o]:
            alive[o] = False
            taken += 1
    return float(k - taken)


def units(removed: dict[str, int]) -> dict[str, float]:
    """The removed composition as oxide units, given the species counts removed (Li
    included as the change the neutrality rule made): ZrO2, LaO1.5, AlO1.5, GaO1.5, TaO2.5
    and LiO0.5. Neutral removals are exactly a sum of these (O balances)."""
    out = {f"{m}O{FORMAL_CHARGE[m] / 2:g}": float(removed.get(m, 0)) for m in ("Li", *_CATIONS)}
    return {k: v for k, v in out.items() if v}
