"""Excess Li: +N Li placed away from both grain boundaries and from every atom.

Rule: positions are drawn uniformly in the box (seeded) and accepted when the
minimum-image distance along z to each GB plane is >= `gb_clearance_A` and the distance
to every atom already present (including Li inserted before) is >= `min_dist_A`.
New atoms get ids max(id) + 1 ... in order; their velocities are drawn from the
Maxwell-Boltzmann distribution at `temperature_K` (same seed stream).

Charge: each excess Li carries the formal +1 e of the model, so the cell carries +N e.
Ewald/PPPM treats a charged periodic cell with a uniform neutralising background (the
electrons of the inserted Li are not localised on any ion); this shifts the energy by a
constant and leaves the forces those of the point charges. The published ML study
inserted neutral Li atoms, which has no meaning in a formal-charge model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_masses, atomic_numbers
from scipy.spatial import cKDTree

from runbook.llzo import FORMAL_CHARGE, TYPE_IDS
from runbook.llzo.lmpdata import DataFile

KB_EV_PER_K = 8.617333262e-5
EV_PER_AMU_IN_A2_PER_PS2 = 9648.533212  # 1 eV / 1 g mol^-1 = 9648.53 Å^2 ps^-2


@dataclass(frozen=True)
class InsertSpec:
    n: int
    gb_clearance_A: float = 4.0
    min_dist_A: float = 1.8
    temperature_K: float = 700.0
    seed: int = 0
    max_tries: int = 200_000


def _gb_distance(z: np.ndarray, plane: float, lz: float) -> np.ndarray:
    d = (z - plane) % lz
    return np.minimum(d, lz - d)


def insert(
    data: DataFile, gb_planes: tuple[float, float], spec: InsertSpec
) -> tuple[DataFile, np.ndarray]:
    """`data` plus `spec.n` Li (rule in the module docstring); returns (new data, new ids)."""
    rng = np.random.default_rng([spec.seed, 2])
    box = np.asarray(data.box, float)
    pos = np.mod(data.positions, box)
    placed: list[np.ndarray] = []
    tree = cKDTree(pos, boxsize=box)
    tries = 0
    while len(placed) < spec.n:
        tries += 1
        if tries > spec.max_tries:
            raise ValueError(
                f"placed only {len(placed)} of {spec.n} excess Li in {spec.max_tries} draws; "
                "lower min_dist_A / gb_clearance_A or insert fewer"
            )
        p = rng.random(3) * box
        if min(_gb_distance(p[2:3], z, box[2])[0] for z in gb_planes) < spec.gb_clearance_A:
            continue
        if tree.query(p, k=1)[0] < spec.min_dist_A:
            continue
        if placed and np.min(_pbc_dist(np.array(placed), p, box)) < spec.min_dist_A:
            continue
        placed.append(p)
    new = np.array(placed)
    ids = np.arange(data.ids.max() + 1, data.ids.max() + 1 + spec.n)
    mass = atomic_masses[atomic_numbers["Li"]]
    sigma = np.sqrt(KB_EV_PER_K * spec.temperature_K / mass * EV_PER_AMU_IN_A2_PER_PS2)
    vel_new = rng.normal(0.0, sigma, size=(spec.n, 3))
    old_v = data.velocities if data.velocities is not None else np.zeros_like(data.positions)
    old_img = data.images if data.images is not None else np.zeros((len(data.ids), 3), int)
    out = DataFile(
        box=box,
        ids=np.concatenate([data.ids, ids]),
        types=np.concatenate([data.types, np.full(spec.n, TYPE_IDS["Li"])]),
        charges=np.concatenate([data.charges, np.full(spec.n, float(FORMAL_CHARGE["Li"]))]),
        positions=np.concatenate([data.positions, new]),
        images=np.concatenate([old_img, np.zeros((spec.n, 3), int)]),
        velocities=np.concatenate([old_v, vel_new]),
    )
    return out, ids


def _pbc_dist(a: np.ndarray, p: np.ndarray, box: np.ndarray) -> np.ndarray:
    d = a - p
    d -= box * np.round(d / box)
    return np.linalg.norm(d, axis=1)
