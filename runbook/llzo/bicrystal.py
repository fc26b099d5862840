"""A periodic LLZO bicrystal with two Sigma5 (hk0)/[001] symmetric-tilt grain boundaries.

Geometry (z is the boundary normal, the box is orthorhombic):

    x || [-k h 0], y || [0 0 1] (tilt axis), z || [h k 0]        (grain A, crystal axes)

Grain A is the garnet supercell with those axes, `repeat[2]` lattice periods thick
(period a*sqrt(h^2 + k^2)/gcd(h, k) along [h k 0]); grain B is its mirror image z -> -z.
Ia-3d is centrosymmetric, so the mirror equals a 180 deg rotation about [h k 0]: the two
grains are Sigma = h^2 + k^2 (halved while even) misoriented about [001], i.e. the
symmetric-tilt CSL boundary (Sigma5 for (210) and (310)). Both interfaces are mirror
planes of the same termination, at z = Lz/4 and z = 3Lz/4 (recorded in the JSON).

Construction rules (documented for the tests and the report):
0. Termination: grain A is a closed slab between two Zr planes (the 16a Zr sites are the
   inversion centres of Ia-3d), so A is inversion symmetric about a Zr at its centre;
   `termination` picks which of the equally spaced Zr planes ends the slab.
1. Contacts: every pair of framework atoms from different grains closer than `MIN_DIST`
   is resolved, nearest first, by removing the atom of grain B (this removes the copies
   that sit exactly on a mirror plane); Li candidate sites that coincide across a plane
   (< 0.1 Å) keep grain A's copy.
2. Li candidate sites (all 24d and 96h half-sites of both grains) closer than `MIN_DIST`
   to a remaining framework atom are dropped.
3. Charge neutrality with formal charges (Li +1, La +3, Zr +4, O -2): the number of Li is
   N_Li = 2 N_O - 3 N_La - 4 N_Zr; the Li count, not the framework, absorbs the
   non-stoichiometry of the boundary. The sites are chosen by the seeded search of
   `garnet.choose_sites` (no two Li closer than 2.0 Å) in pairs related by the inversion
   about the Zr at the centre of grain A. That inversion maps the structure onto itself
   and one boundary onto the other, so both boundaries carry the same charge, i.e. each
   is neutral: without this, a random Li count per boundary charged the two boundaries
   by up to +-9 e and put a capacitor-like field of several V/Å across the grains.
4. Nothing is relaxed: the framework is the crystallographic (time-averaged cubic)
   structure, frozen in the MD as in the published study. A 0 K relaxation of the
   framework around one Li ordering tetragonalises it and traps the Li (measured:
   D < 1e-9 cm^2/s at 700 K, against ~1e-5 on the cubic framework).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.neighborlist import neighbor_list

from runbook.llzo import FORMAL_CHARGE, garnet

# Minimum distances (Å) that no pair of the finished structure violates. Bulk values
# on the ideal sites, for comparison: O-O 2.89, Zr-O 2.11, La-O 2.52, La-Zr 3.62,
# La-La 3.97, Li-O 1.74, Li-Zr 2.95, Li-La 3.08, Li-Li (allowed pairs) 2.33.
MIN_DIST: dict[frozenset[str], float] = {
    frozenset({"O"}): 2.4,
    frozenset({"Zr", "O"}): 1.8,
    frozenset({"La", "O"}): 2.1,
    frozenset({"La"}): 3.0,
    frozenset({"Zr"}): 3.0,
    frozenset({"La", "Zr"}): 3.0,
    frozenset({"Li", "O"}): 1.6,
    frozenset({"Li", "La"}): 2.6,
    frozenset({"Li", "Zr"}): 2.6,
    frozenset({"Li"}): garnet.LI_MIN_DIST,
}
_CUTOFF = max(MIN_DIST.values())


def min_dist(a: str, b: str) -> float:
    return MIN_DIST[frozenset({a, b})]


@dataclass(frozen=True)
class BicrystalSpec:
    """What to build. Lengths in Å; `repeat` counts lattice periods along x, y, z (grain)."""

    plane: tuple[int, int] = (2, 1)
    repeat: tuple[int, int, int] = (1, 1, 1)
    a: float = garnet.LATTICE_A
    gap: float = 0.0  # extra spacing (Å) inserted at each interface
    termination: int = 0  # which Zr plane of grain A lies on the interfaces (0 .. levels-1)

    @property
    def sigma(self) -> int:
        h, k = self.plane
        s = (h * h + k * k) // math.gcd(h, k) ** 2
        while s % 2 == 0:
            s //= 2
        return s


@dataclass
class Bicrystal:
    """The built structure and its bookkeeping (all lengths Å)."""

    atoms: Atoms  # framework + Li, orthorhombic box, array "grain" (0 = A, 1 = B)
    gb_planes: tuple[float, float]
    spec: BicrystalSpec
    seed: int
    removed: dict[str, int] = field(default_factory=dict)  # framework atoms removed, per species
    n_li_sites: int = 0  # Li candidate sites left after rule 2

    @property
    def box(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.atoms.cell.lengths())

    def counts(self) -> dict[str, int]:
        syms = self.atoms.get_chemical_symbols()
        return {s: syms.count(s) for s in ("Li", "La", "Zr", "O")}

    def charge(self) -> int:
        return sum(FORMAL_CHARGE[s] * n for s, n in self.counts().items())


def grain_cell(spec: BicrystalSpec) -> Atoms:
    """Grain A with every Li candidate site, rotated so that its cell is diagonal.

    The slab is closed: it runs from one Zr plane (z = 0) to its periodic image (z = L),
    atoms on the z = 0 plane appear again at z = L. Zr sites (16a) are the inversion
    centres of Ia-3d and the Zr planes are equally spaced, so a Zr plane also lies at
    L/2 and the slab is inversion symmetric about a Zr atom there.
    """
    h, k = spec.plane
    g = math.gcd(h, k)
    nx, ny, nz = spec.repeat
    vectors = np.array([(-k // g * nx, h // g * nx, 0), (0, 0, ny), (h // g * nz, k // g * nz, 0)])
    grain = make_supercell(garnet.garnet_sites(spec.a), vectors)
    frac = grain.get_scaled_positions()
    syms = np.array(grain.get_chemical_symbols())
    levels = np.unique(np.round(frac[syms == "Zr", 2] * nz, 6) % 1.0) / nz
    if not 0 <= spec.termination < len(levels):
        raise ValueError(f"termination must be 0..{len(levels) - 1} (Zr planes per period)")
    frac[:, 2] = np.round(frac[:, 2] - levels[spec.termination], 9) % 1.0
    on_plane = frac[:, 2] < 1e-7
    frac = np.concatenate([frac, frac[on_plane] + [0.0, 0.0, 1.0]])
    tags = np.concatenate([grain.get_tags(), grain.get_tags()[on_plane]])
    syms = np.concatenate([syms, syms[on_plane]])
    out = Atoms(list(syms), cell=np.diag(grain.cell.lengths()), pbc=True)
    out.set_scaled_positions(frac)  # ASE wraps nothing here: z = L stays at L
    out.positions[:, 2] = frac[:, 2] * grain.cell.lengths()[2]
    out.set_tags(tags)
    return out


def _mirror_pair(grain: Atoms, gap: float) -> Atoms:
    """Grain A and its mirror B stacked along z; interfaces at Lz/4 and 3Lz/4."""
    lx, ly, lg = grain.cell.lengths()
    lz = 2.0 * (lg + gap)
    za = grain.positions[:, 2] + gap / 2.0
    zb = 2.0 * (lg + gap) - za
    pos = np.concatenate([grain.positions, grain.positions])
    pos[:, 2] = (np.concatenate([za, zb]) + lz / 4.0) % lz
    both = Atoms(
        grain.get_chemical_symbols() * 2, positions=pos, cell=np.diag([lx, ly, lz]), pbc=True
    )
    both.set_tags(np.concatenate([grain.get_tags(), grain.get_tags()]))
    both.set_array("grain", np.repeat([0, 1], len(grain)))
    return both


def close_pairs(atoms: Atoms, idx: np.ndarray | None = None) -> list[tuple[float, int, int]]:
    """(distance, i, j) of every pair among `idx` closer than its `MIN_DIST`, nearest first."""
    idx = np.arange(len(atoms)) if idx is None else idx
    sub = atoms[idx]
    i, j, d = neighbor_list("ijd", sub, _CUTOFF)
    syms = np.array(sub.get_chemical_symbols())
    out = [
        (float(dd), int(idx[a]), int(idx[b]))
        for a, b, dd in zip(i, j, d, strict=True)
        if a < b and dd < min_dist(syms[a], syms[b])
    ]
    return sorted(out)


def inversion_images(atoms: Atoms, center: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each atom in `idx`, the index (into `idx`) of its image under inversion about
    `center` (periodic box), or -1 where no atom of `idx` sits there (within 1e-3 Å)."""
    box = atoms.cell.lengths()
    img = (2.0 * center - atoms.positions[idx]) % box
    pts = Atoms("H" * (2 * len(idx)), positions=np.concatenate([atoms.positions[idx], img]))
    pts.set_cell(np.diag(box))
    pts.pbc = True
    i, j = neighbor_list("ij", pts, 1e-3)
    out = -np.ones(len(idx), int)
    sel = (i >= len(idx)) & (j < len(idx))
    out[i[sel] - len(idx)] = j[sel]
    return out


def build(spec: BicrystalSpec, seed: int) -> Bicrystal:
    """Build the charge-neutral bicrystal with a seeded Li ordering (rules in the docstring)."""
    both = _mirror_pair(grain_cell(spec), spec.gap)
    tags, grain = both.get_tags(), both.get_array("grain")
    syms = np.array(both.get_chemical_symbols())
    lz = both.cell.lengths()[2]

    # 1. contacts across the interfaces (framework, and coinciding Li candidate sites):
    #    drop grain B's atom, nearest first
    alive = np.ones(len(both), bool)
    removed: dict[str, int] = {}
    frame = np.flatnonzero(tags == garnet.TAG_FRAME)
    for _, i, j in close_pairs(both, frame):
        if alive[i] and alive[j] and grain[i] != grain[j]:
            drop = j if grain[j] == 1 else i
            alive[drop] = False
            removed[str(syms[drop])] = removed.get(str(syms[drop]), 0) + 1
    cand = np.flatnonzero(tags != garnet.TAG_FRAME)
    for i, j in garnet.conflict_pairs(both.positions[cand], both.cell.array, 0.1):
        a, b = cand[i], cand[j]
        if grain[a] != grain[b]:
            alive[b if grain[b] == 1 else a] = False
    frame = frame[alive[frame]]

    # 2. Li candidates too close to a remaining framework atom
    cand = cand[alive[cand]]
    for _, i, j in close_pairs(both, np.concatenate([frame, cand])):
        for li, other in ((i, j), (j, i)):
            if tags[li] != garnet.TAG_FRAME and tags[other] == garnet.TAG_FRAME:
                alive[li] = False
    cand = cand[alive[cand]]

    # 3. neutrality: N_Li from the framework's charge, chosen in inversion-related pairs
    #    about the Zr at the centre of grain A, so that both interfaces stay equivalent
    #    (equal charge, hence neutral each: no field across the grains)
    n = {s: int(np.sum(syms[frame] == s)) for s in ("La", "Zr", "O")}
    n_li = 2 * n["O"] - 3 * n["La"] - 4 * n["Zr"]
    zr = frame[(syms[frame] == "Zr") & (grain[frame] == 0)]
    centre = both.positions[zr[np.argmin(np.abs(both.positions[zr, 2] - lz / 2.0))]]
    partner = inversion_images(both, centre, cand)
    if np.any(partner < 0) or n_li % 2:
        raise ValueError(f"bicrystal {spec}: the Li sites are not inversion symmetric")
    first = np.flatnonzero(np.arange(len(cand)) < partner)  # one site per pair
    members = np.stack([first, partner[first]], axis=1)
    site_pairs = garnet.conflict_pairs(both.positions[cand], both.cell.array, garnet.LI_MIN_DIST)
    orbit_of = np.empty(len(cand), int)
    orbit_of[members.ravel()] = np.repeat(np.arange(len(first)), 2)
    op = np.unique(np.sort(orbit_of[site_pairs], axis=1), axis=0)
    bad = op[op[:, 0] == op[:, 1], 0]  # a site conflicting with its own image
    op = op[(op[:, 0] != op[:, 1]) & ~np.isin(op, bad).any(axis=1)]
    usable = np.setdiff1d(np.arange(len(first)), bad)
    remap = -np.ones(len(first), int)
    remap[usable] = np.arange(len(usable))
    rng = np.random.default_rng([seed, 1])
    try:
        picked = garnet.choose_sites(len(usable), remap[op], n_li // 2, rng)
    except ValueError as e:
        raise ValueError(f"bicrystal {spec}: {e}") from None
    chosen = cand[members[usable[picked]].ravel()]

    keep = np.sort(np.concatenate([frame, chosen]))
    atoms = both[keep]
    order = np.argsort([_TYPE_ORDER[s] for s in atoms.get_chemical_symbols()], kind="stable")
    atoms = atoms[order]
    return Bicrystal(
        atoms=atoms,
        gb_planes=(lz / 4.0, 3.0 * lz / 4.0),
        spec=spec,
        seed=seed,
        removed=removed,
        n_li_sites=len(cand),
    )


_TYPE_ORDER = {"Li": 1, "La": 2, "Zr": 3, "O": 4}
