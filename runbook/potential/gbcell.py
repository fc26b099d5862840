"""DFT-sized grain-boundary cells cut from the Sigma5 (hk0)/[001] bicrystal.

The smallest periodic bicrystal of the grain-boundary study (runbook.llzo.bicrystal) has
1,856 atoms: the in-plane CSL cell of Sigma5 (210) is a sqrt(5) x a = 29.0 x 13.0 Å and
the garnet holds 0.114 atoms/Å^3, so every Å of thickness costs ~43 atoms. A DFT label
needs far fewer atoms. This module builds the *thin mirror cell*:

1. Grain A is the garnet slab between two Zr planes of the bicrystal's grain (the same
   axes: x || [-k h 0], y || [001], z || [h k 0]), `levels` Zr-plane spacings thick
   (1.45 Å each for (210)); the first plane is `termination`, as in the study.
2. Grain B is its mirror image z -> -z; A and B stacked along z give a periodic cell of
   height 2 t whose two junctions (z = t/2 and 3t/2 after centring) are both mirror
   planes of A: two symmetric-tilt boundaries of the same misorientation, their
   terminations the two faces of A.
3. In-plane the cell keeps the exact CSL period along y (13.0 Å) and a window of
   `x_fraction` of the x period starting at `x_offset` (fraction). With x_fraction = 1
   the cell is an exact periodic bicrystal (the h200 profile's GB models, a few hundred
   atoms); below 1 the x faces of the window meet across the periodic boundary, an
   artificial junction (the cpu profile's ~100-atom cells).
4. Contacts are resolved as in the bicrystal (rule 1): every framework pair closer than
   bicrystal.MIN_DIST, nearest first, loses grain B's atom (across a mirror plane) or
   the atom of higher index (across the x junction); Li candidates coinciding across a
   plane keep A's copy; Li candidates too close to a remaining framework atom go (rule 2).
5. Neutrality with formal charges: N_Li = 2 N_O - 3 N_La - 4 N_Zr, chosen on the
   remaining candidate sites by the garnet search (no two Li closer than 2.0 Å, seeded).
   Windows whose Li count cannot be placed are skipped (the next offset is tried).

What the cells represent: boundary-core environments of the Sigma5 (210) mirror
boundary (the under-coordinated cations and the O and Li geometry at the mirror
plane), within the model's cutoff. What they do not: a relaxed boundary, the boundary
energy, grains thick enough to be bulk-like, and, below x_fraction = 1, any atom near
the x junction (its neighbours are an artefact of the cut). Nothing is relaxed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from runbook.llzo import bicrystal, garnet


@dataclass(frozen=True)
class GbCellSpec:
    plane: tuple[int, int] = (2, 1)
    levels: int = 2  # Zr-plane spacings per grain
    termination: int = 1
    x_fraction: float = 1.0
    x_offset: float = 0.0
    a: float = garnet.LATTICE_A


def grain_slab(spec: GbCellSpec) -> tuple[Atoms, float]:
    """Grain A between Zr plane `termination` and the one `levels` planes above it,
    shifted to z = 0 .. t; returns (atoms, t). Atoms on both faces are kept."""
    bspec = bicrystal.BicrystalSpec(plane=spec.plane, termination=spec.termination, a=spec.a)
    grain = bicrystal.grain_cell(bspec)  # closed slab from one Zr plane to its image
    syms = np.array(grain.get_chemical_symbols())
    zr = np.unique(np.round(grain.positions[syms == "Zr", 2], 6))
    if spec.levels >= len(zr):
        raise ValueError(f"levels must be < {len(zr)} (Zr planes in one period)")
    t = float(zr[spec.levels])
    keep = grain.positions[:, 2] <= t + 1e-6
    slab = grain[keep]
    lx = grain.cell.lengths()[0]
    x0 = spec.x_offset * lx
    w = spec.x_fraction * lx
    xs = (slab.positions[:, 0] - x0) % lx
    slab = slab[xs < w - 1e-6]
    slab.positions[:, 0] = (slab.positions[:, 0] - x0) % lx
    slab.set_cell(np.diag([w, grain.cell.lengths()[1], t]))
    return slab, t


def mirror_cell(slab: Atoms, t: float) -> Atoms:
    """A and its mirror B in a box of height 2t; the mirror planes at t/2 and 3t/2."""
    lz = 2.0 * t
    pos = np.concatenate([slab.positions, slab.positions])
    za = slab.positions[:, 2]
    pos[:, 2] = (np.concatenate([za, lz - za]) + t / 2.0) % lz
    cell = slab.cell.lengths().copy()
    cell[2] = lz
    both = Atoms(slab.get_chemical_symbols() * 2, positions=pos, cell=np.diag(cell), pbc=True)
    both.set_tags(np.concatenate([slab.get_tags(), slab.get_tags()]))
    both.set_array("grain", np.repeat([0, 1], len(slab)))
    return both


def _resolve_contacts(both: Atoms) -> np.ndarray:
    """Rules 4 (module docstring): the mask of atoms kept before the Li are chosen."""
    tags, grain = both.get_tags(), both.get_array("grain")
    alive = np.ones(len(both), bool)
    frame = np.flatnonzero(tags == garnet.TAG_FRAME)
    for _, i, j in bicrystal.close_pairs(both, frame):
        if alive[i] and alive[j]:
            alive[j if grain[j] != grain[i] and grain[j] == 1 else max(i, j)] = False
    cand = np.flatnonzero(tags != garnet.TAG_FRAME)
    for i, j in garnet.conflict_pairs(both.positions[cand], both.cell.array, 0.1):
        alive[cand[j] if grain[cand[j]] >= grain[cand[i]] else cand[i]] = False
    frame = frame[alive[frame]]
    cand = cand[alive[cand]]
    for _, i, j in bicrystal.close_pairs(both, np.concatenate([frame, cand])):
        for li, other in ((i, j), (j, i)):
            if tags[li] != garnet.TAG_FRAME and tags[other] == garnet.TAG_FRAME:
                alive[li] = False
    return alive


def build(spec: GbCellSpec, seed: int) -> tuple[Atoms, dict]:
    """The neutral thin mirror cell (rules in the module docstring) and its bookkeeping."""
    slab, t = grain_slab(spec)
    both = mirror_cell(slab, t)
    alive = _resolve_contacts(both)
    tags = both.get_tags()
    syms = np.array(both.get_chemical_symbols())
    frame = np.flatnonzero(alive & (tags == garnet.TAG_FRAME))
    cand = np.flatnonzero(alive & (tags != garnet.TAG_FRAME))
    n = {s: int(np.sum(syms[frame] == s)) for s in ("La", "Zr", "O")}
    n_li = 2 * n["O"] - 3 * n["La"] - 4 * n["Zr"]
    if n_li < 0:
        raise ValueError(f"{spec}: the framework is positive (needs {n_li} Li)")
    pairs = garnet.conflict_pairs(both.positions[cand], both.cell.array, garnet.LI_MIN_DIST)
    rng = np.random.default_rng([seed, 21])
    chosen = cand[garnet.choose_sites(len(cand), pairs, n_li, rng)]
    atoms = both[np.sort(np.concatenate([frame, chosen]))]
    info = {
        "plane_hkl": [spec.plane[0], spec.plane[1], 0],
        "levels": spec.levels,
        "termination": spec.termination,
        "grain_thickness_A": round(t, 4),
        "gb_planes_A": [round(t / 2.0, 4), round(1.5 * t, 4)],
        "x_fraction": spec.x_fraction,
        "x_offset": spec.x_offset,
        "exact_periodic": spec.x_fraction == 1.0,
    }
    return atoms, info


def build_any(spec: GbCellSpec, seed: int, offsets: int = 24) -> tuple[Atoms, dict]:
    """`build` at the spec's offset or, if its Li cannot be placed, the next of `offsets`
    equally spaced x offsets (deterministic)."""
    errors = []
    for k in range(offsets if spec.x_fraction < 1.0 else 1):
        off = (spec.x_offset + k / offsets) % 1.0
        try:
            return build(GbCellSpec(**{**spec.__dict__, "x_offset": off}), seed)
        except ValueError as e:
            errors.append(str(e))
    raise ValueError(f"no x offset gives a neutral cell: {errors[-1]}")
