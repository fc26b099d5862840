"""Excess Li: +N Li placed (seeded) in the box, with or without charge compensation.

Placement (`placement`), positions drawn uniformly in the box and accepted when:
- `away`: the minimum-image distance along z to each GB plane is >= `gb_clearance_A`
  (the published protocol: Li inserted away from the boundaries);
- `near`: it is <= `near_band_A` to one of the planes (Li that start in the boundaries);
- `uniform`: anywhere;
and, always, the distance to every atom already present (including Li inserted before)
is >= `min_dist_A`. Comparing the enrichment of `away` and `near` starts shows whether the
result depends on where the Li started. New atoms get ids max(id) + 1 ... in order; their
velocities are drawn from the Maxwell-Boltzmann distribution at `temperature_K` (same seed
stream).

Charge (`compensation`), in the rigid-ion model:
- `none` (the first protocol): each excess Li carries +1 e and the cell carries +N e.
  Ewald/PPPM adds a uniform neutralising background; the forces are those of the point
  charges. Li+ ions with nothing to compensate them are pushed away from a positively
  charged boundary core, so near-zero enrichment is partly built in.
- `reduce`: each excess Li is Li+ and the Zr nearest to where it was placed is reduced to
  Zr3+ (charge 4 -> 3), as an electron brought with the Li would do: the Zr 4d states are
  the lowest empty cation states of the zirconate (the electron of Li metal reduces
  LLZO's Zr at the Li interface; recalled from the interface literature, not re-checked
  offline). The cell stays neutral and each Li+ starts next to its compensating charge;
  in a rigid-ion model the electron cannot hop with the Li, which is what the placement
  variants test. This is the model the study uses.
- `neutral`: each excess Li has charge 0 and interacts only through the Li-O short-range
  repulsion: a test of where there is room for Li, not a model of Li+ (the published ML
  study inserted neutral atoms, which an ML potential treats through its training data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    placement: Literal["away", "near", "uniform"] = "away"
    near_band_A: float = 2.0
    compensation: Literal["none", "reduce", "neutral"] = "none"

    def accepts(self, z: float, planes: tuple[float, float], lz: float) -> bool:
        d = min(float(_gb_distance(np.array([z]), p, lz)[0]) for p in planes)
        if self.placement == "away":
            return d >= self.gb_clearance_A
        if self.placement == "near":
            return d <= self.near_band_A
        return True


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
                "lower min_dist_A / gb_clearance_A, widen near_band_A or insert fewer"
            )
        p = rng.random(3) * box
        if not spec.accepts(float(p[2]), gb_planes, float(box[2])):
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
    q_li = float(FORMAL_CHARGE["Li"]) if spec.compensation != "neutral" else 0.0
    charges = data.charges.copy()
    if spec.compensation == "reduce":
        charges[reduced_partners(data, new)] -= 1.0
    out = DataFile(
        box=box,
        ids=np.concatenate([data.ids, ids]),
        types=np.concatenate([data.types, np.full(spec.n, TYPE_IDS["Li"])]),
        charges=np.concatenate([charges, np.full(spec.n, q_li)]),
        positions=np.concatenate([data.positions, new]),
        images=np.concatenate([old_img, np.zeros((spec.n, 3), int)]),
        velocities=np.concatenate([old_v, vel_new]),
    )
    return out, ids


def reduced_partners(data: DataFile, new: np.ndarray) -> np.ndarray:
    """Indices (into `data`) of the Zr reduced for each new Li: the nearest Zr not yet
    reduced (nor reduced before: a Zr whose charge is already below the usual)."""
    zr = np.flatnonzero(data.types == TYPE_IDS["Zr"])
    usual = np.median(data.charges[zr])
    free = np.ones(len(zr), bool) & (data.charges[zr] > usual - 1e-6)
    box = np.asarray(data.box, float)
    out = []
    for p in new:
        d = _pbc_dist(np.mod(data.positions[zr], box), p, box)
        d[~free] = np.inf
        k = int(np.argmin(d))
        if not np.isfinite(d[k]):
            raise ValueError("more excess Li than Zr to reduce")
        free[k] = False
        out.append(zr[k])
    return np.array(out, int)


def _pbc_dist(a: np.ndarray, p: np.ndarray, box: np.ndarray) -> np.ndarray:
    d = a - p
    d -= box * np.round(d / box)
    return np.linalg.norm(d, axis=1)
