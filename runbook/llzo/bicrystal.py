"""A periodic LLZO bicrystal with two Sigma5 (hk0)/[001] symmetric-tilt grain boundaries, or
its boundary-free control.

Geometry (z is the boundary normal, the box is orthorhombic):

    x || [-k h 0], y || [0 0 1] (tilt axis), z || [h k 0]        (grain A, crystal axes)

Grain A is the garnet supercell with those axes, `repeat[2]` lattice periods thick
(period a*sqrt(h^2 + k^2)/gcd(h, k) along [h k 0]); grain B is its mirror image z -> -z.
Ia-3d is centrosymmetric, so the mirror equals a 180 deg rotation about [h k 0]: the two
grains are Sigma = h^2 + k^2 (halved while even) misoriented about [001], i.e. the
symmetric-tilt CSL boundary (Sigma5 for (210) and (310)). The interfaces are at z = Lz/4
and z = 3Lz/4 (recorded in the JSON).

Construction rules (documented for the tests and the report):
0. Termination: grain A is a closed slab between two Zr planes (the 16a Zr sites are the
   inversion centres of Ia-3d), inversion symmetric about a Zr at its centre;
   `termination` picks which of the equally spaced Zr planes ends the slab. Grain A owns
   the two boundary planes (its faces).
1. Grain B is the mirror image of A without A's face atoms (those planes are A's),
   translated rigidly in-plane by `shift` (x, y; Å) and set `gap` Å off A at each
   interface. A + B hold exactly 2 * repeat[2] lattice periods: the stoichiometric
   composition. At shift = gap = 0 both interfaces are mirror planes through A's faces; a
   shift makes the two boundaries the +shift and -shift variants of the same boundary.
   Control (`control=True`): grain A without its top face, stacked onto itself: the same
   crystal, box and (nominal) planes with no boundary.
2. Contacts: framework pairs from different grains closer than `contacts.MIN_DIST` are
   removed from grain B as charge-neutral oxide units (`contacts`, rule `neutral`; rule
   `single` drops single atoms as the first construction did). Li candidate sites (all
   24d and 96h half-sites of both grains) closer than the minimum distance to a remaining
   framework atom are dropped; sites coinciding across a plane (< 0.1 Å) keep A's copy.
3. Halves and neutrality: the cell is cut at the framework-free levels nearest the two
   grain centres, so that each half holds one boundary. In each half: dopants =
   round(x * formula units of the half) on their host sites (`garnet.place_dopants`), then
   N_Li = -(framework charge of the half) on the free candidate sites, by the seeded search
   of `garnet.choose_sites` (no two Li closer than 2.0 Å, none near a dopant). Each half,
   hence each boundary, is neutral: no capacitor-like field across the grains.
4. Nothing is relaxed here: the relax stage minimises and anneals (runbook.llzo.relax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from scipy.spatial import cKDTree

from runbook.llzo import FORMAL_CHARGE, FRAMEWORK, TYPE_IDS, contacts, garnet

MIN_DIST = contacts.MIN_DIST  # (kept here for the callers of the first construction)
min_dist = contacts.min_dist
close_pairs = contacts.close_pairs


@dataclass(frozen=True)
class BicrystalSpec:
    """What to build. Lengths in Å; `repeat` counts lattice periods along x, y, z (grain)."""

    plane: tuple[int, int] = (2, 1)
    repeat: tuple[int, int, int] = (1, 1, 1)
    a: float = garnet.LATTICE_A
    gap: float = 0.0  # extra spacing (Å) at each interface
    termination: int = 0  # which Zr plane of grain A lies on the interfaces (0 .. levels-1)
    shift: tuple[float, float] = (0.0, 0.0)  # rigid-body translation of grain B, x and y (Å)
    control: bool = False  # grain A stacked onto itself: no boundary
    dopant: str | None = None
    dopant_level: float = 0.0  # x per formula unit
    removal: contacts.Rule = "neutral"

    @property
    def sigma(self) -> int:
        h, k = self.plane
        s = (h * h + k * k) // math.gcd(h, k) ** 2
        while s % 2 == 0:
            s //= 2
        return s

    @property
    def composition(self) -> garnet.Composition:
        return garnet.Composition(self.dopant, self.dopant_level)


@dataclass
class Bicrystal:
    """The built structure and its bookkeeping (all lengths Å)."""

    atoms: Atoms  # framework + Li sorted by type id, orthorhombic box, array "grain"
    gb_planes: tuple[float, float]
    spec: BicrystalSpec
    seed: int
    removed: dict[str, int] = field(default_factory=dict)  # framework atoms removed, per species
    n_li_sites: int = 0  # Li candidate sites left after rule 2
    cuts: tuple[float, float] = (0.0, 0.0)  # z of the half boundaries (near the grain centres)
    sites: dict[str, np.ndarray] = field(default_factory=dict)  # the Li sites (`site_arrays`)

    @property
    def box(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.atoms.cell.lengths())

    @property
    def area(self) -> float:
        return self.box[0] * self.box[1]

    def counts(self) -> dict[str, int]:
        syms = self.atoms.get_chemical_symbols()
        out = {s: syms.count(s) for s in ("Li", "La", "Zr", "O")}
        out.update({s: syms.count(s) for s in TYPE_IDS if s not in out and s in syms})
        return out

    def charge(self) -> int:
        return sum(FORMAL_CHARGE[s] * n for s, n in self.counts().items())

    def half_charges(self) -> tuple[int, int]:
        """Formal charge of each half (the half around plane 0, then plane 1)."""
        q = np.array([FORMAL_CHARGE[s] for s in self.atoms.get_chemical_symbols()])
        h = half_of(self.atoms.positions[:, 2], self.cuts, self.box[2])
        return int(q[h == 0].sum()), int(q[h == 1].sum())


def grain_cell(spec: BicrystalSpec) -> Atoms:
    """Grain A with every Li candidate site, rotated so that its cell is diagonal.

    The slab is closed: it runs from one Zr plane (z = 0) to its periodic image (z = L),
    atoms on the z = 0 plane appear again at z = L (array "face": on either face). Zr sites
    (16a) are the inversion centres of Ia-3d and the Zr planes are equally spaced, so a Zr
    plane also lies at L/2 and the slab is inversion symmetric about a Zr atom there.
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
    out.set_array("face", np.concatenate([on_plane, np.ones(on_plane.sum(), bool)]))
    return out


def _stack(grain: Atoms, spec: BicrystalSpec) -> Atoms:
    """Grain A and grain B (or A again, for the control) stacked along z; interfaces at
    Lz/4 and 3Lz/4. Arrays: "grain" (0 A, 1 B)."""
    lx, ly, lg = grain.cell.lengths()
    face = grain.get_array("face")
    if spec.control:
        a = grain[~(face & (grain.positions[:, 2] > lg / 2))]  # open slab: one period
        za, zb = a.positions[:, 2], a.positions[:, 2] + lg
        lz, b, shift = 2.0 * lg, a, (0.0, 0.0)
    else:
        a, b = grain, grain[~face]
        lz = 2.0 * (lg + spec.gap)
        za = a.positions[:, 2] + spec.gap / 2.0
        zb = lz - (b.positions[:, 2] + spec.gap / 2.0)
        shift = spec.shift
    pos = np.concatenate([a.positions, b.positions])
    pos[len(a) :, 0] += shift[0]
    pos[len(a) :, 1] += shift[1]
    pos[:, 2] = np.concatenate([za, zb]) + lz / 4.0
    both = Atoms(a.get_chemical_symbols() + b.get_chemical_symbols(), positions=pos,
                 cell=np.diag([lx, ly, lz]), pbc=True)  # fmt: skip
    both.wrap()
    both.set_tags(np.concatenate([a.get_tags(), b.get_tags()]))
    both.set_array("grain", np.repeat([0, 1], [len(a), len(b)]))
    return both


def half_of(z: np.ndarray, cuts: tuple[float, float], lz: float) -> np.ndarray:
    """0 for heights in [cuts[0], cuts[1]) (the half around Lz/4), else 1 (periodic)."""
    return np.where((np.mod(z - cuts[0], lz) < np.mod(cuts[1] - cuts[0], lz)), 0, 1)


def _half_cuts(
    z_frame: np.ndarray, q_frame: np.ndarray, z_sites: np.ndarray, lz: float, reach: float = 1.5
) -> tuple[float, float]:
    """The two half boundaries: framework-free levels within `reach` Å of the grain
    centres (z = 0 and Lz/2), chosen so that each half is neutral on average.

    The framework charge of a slab swings by tens of e within one Zr-plane spacing, so a
    cut placed only by position would ask one half for far more Li than its sites hold.
    With every candidate site filled at the mean occupancy (total Li / sites), the charge
    below height z is C(z); the pair of cuts minimising |C(cut1) - C(cut0)| (the average
    charge of the half between them) is taken, nearest the centres on ties."""
    z = np.mod(z_frame, lz)
    zs = np.sort(z)
    gaps = np.diff(np.concatenate([zs, [zs[0] + lz]]))
    mids = np.mod(zs + gaps / 2.0, lz)[gaps > 0.05]
    occ = -q_frame.sum() / max(len(z_sites), 1)

    def mean_charge(c0: float, c1: float) -> float:
        q = q_frame[half_of(z, (c0, c1), lz) == 0].sum()
        return float(q + occ * np.sum(half_of(z_sites, (c0, c1), lz) == 0))

    def near(target: float) -> np.ndarray:
        d = np.abs((mids - target + lz / 2.0) % lz - lz / 2.0)
        return mids[d <= reach]

    def off_centre(c: float, target: float) -> float:
        return abs((c - target + lz / 2.0) % lz - lz / 2.0)

    best = None
    for c0 in near(0.0):
        for c1 in near(lz / 2.0):
            key = (round(abs(mean_charge(c0, c1)), 6), off_centre(c0, 0) + off_centre(c1, lz / 2))
            if best is None or key < best[0]:
                best = (key, float(c0), float(c1))
    if best is None:
        raise ValueError("no framework-free level near the grain centres")
    return best[1], best[2]


def build(spec: BicrystalSpec, seed: int) -> Bicrystal:
    """Build the charge-neutral bicrystal (or control) with seeded dopant sites and Li
    ordering (rules in the module docstring)."""
    comp = spec.composition  # validates the dopant
    both = _stack(grain_cell(spec), spec)
    tags, grain = both.get_tags(), both.get_array("grain")
    syms = np.array(both.get_chemical_symbols())
    lz = both.cell.lengths()[2]

    # 1-2. contacts across the interfaces, then Li candidates too close to the framework
    frame = np.flatnonzero(tags == garnet.TAG_FRAME)
    gone = contacts.remove(both, grain, frame, spec.removal) if not spec.control else frame[:0]
    removed = {
        str(s): int(n) for s, n in zip(*np.unique(syms[gone], return_counts=True), strict=True)
    }
    alive = np.ones(len(both), bool)
    alive[gone] = False
    cand = np.flatnonzero(tags != garnet.TAG_FRAME)
    for i, j in garnet.conflict_pairs(both.positions[cand], both.cell.array, 0.1):
        a, b = cand[i], cand[j]
        if grain[a] != grain[b]:
            alive[b if grain[b] == 1 else a] = False
    frame = frame[alive[frame]]
    cand = cand[alive[cand]]
    for _, i, j in close_pairs(both, np.concatenate([frame, cand])):
        for li, other in ((i, j), (j, i)):
            if tags[li] != garnet.TAG_FRAME and tags[other] == garnet.TAG_FRAME:
                alive[li] = False
    cand = cand[alive[cand]]
    n_sites = len(cand)

    # 3. per half: dopants, then N_Li = -(framework charge) on the free sites
    q_frame = np.array([FORMAL_CHARGE[str(x)] for x in syms[frame]])
    cuts = _half_cuts(both.positions[frame, 2], q_frame, both.positions[cand, 2], lz)
    rng = np.random.default_rng([seed, 1])
    chosen, dop_all = _populate(both, frame, cand, cuts, comp, rng, spec)
    keep = np.unique(np.concatenate([frame, dop_all, chosen]))
    sites = _site_arrays(both, cand, dop_all, chosen)
    atoms = both[keep]
    order = np.argsort([TYPE_IDS[s] for s in atoms.get_chemical_symbols()], kind="stable")
    atoms = atoms[order]
    sites["anchor_ids"] = _anchors(atoms, sites["xyz"])
    return Bicrystal(atoms=atoms, gb_planes=(lz / 4.0, 3.0 * lz / 4.0), spec=spec, seed=seed,
                     removed=removed, n_li_sites=n_sites, cuts=cuts, sites=sites)  # fmt: skip


def _populate(both, frame, cand, cuts, comp, rng, spec) -> tuple[np.ndarray, np.ndarray]:
    """Dopants in each half, then the Li of each half (rule 3). Returns (Li indices,
    dopant indices); dopant symbols/tags are set on `both` in place."""
    lz = both.cell.lengths()[2]
    half_f = half_of(both.positions[frame, 2], cuts, lz)
    dops = []
    for h in (0, 1):
        mine = frame[half_f == h]
        n_fu = np.isin(np.array(both.get_chemical_symbols())[mine], ["Zr", "Ta"]).sum() / 2.0
        pool = np.concatenate([mine, cand[half_of(both.positions[cand, 2], cuts, lz) == h]])
        dops.append(garnet.place_dopants(both, pool, comp, comp.n_dopants(n_fu), rng))
    dop_all = np.concatenate(dops)
    frame = np.concatenate([frame, dop_all[np.isin(dop_all, cand)]])  # dopants on Li sites
    free = cand[~np.isin(cand, dop_all)]
    free = free[~garnet.li_blocked_by(both, free, dop_all)]
    syms = np.array(both.get_chemical_symbols())
    q = np.array([FORMAL_CHARGE[s] for s in syms])
    chosen: list[np.ndarray] = []
    for h in (0, 1):
        n_li = -int(q[frame[half_of(both.positions[frame, 2], cuts, lz) == h]].sum())
        pool = free[half_of(both.positions[free, 2], cuts, lz) == h]
        if chosen:  # no Li within the minimum distance of the other half's Li
            pool = pool[~_near(both, pool, chosen[0], garnet.LI_MIN_DIST)]
        pairs = garnet.conflict_pairs(both.positions[pool], both.cell.array, garnet.LI_MIN_DIST)
        try:
            chosen.append(pool[garnet.choose_sites(len(pool), pairs, n_li, rng)])
        except ValueError as e:
            raise ValueError(f"bicrystal {spec}, half {h}: {e}") from None
    return np.concatenate(chosen), dop_all


def _near(atoms: Atoms, idx: np.ndarray, others: np.ndarray, cutoff: float) -> np.ndarray:
    if len(idx) == 0 or len(others) == 0:
        return np.zeros(len(idx), bool)
    box = atoms.cell.lengths()
    tree = cKDTree(np.mod(atoms.positions[others], box), boxsize=box)
    d, _ = tree.query(np.mod(atoms.positions[idx], box), k=1)
    return d < cutoff


def _site_arrays(both: Atoms, cand, dopants, chosen) -> dict[str, np.ndarray]:
    """The Li candidate sites of both grains that survived rule 2 (`li_sites.npz`):
    xyz (n, 3) Å, label '24d'/'96h', grain (0 A, 1 B; the two copies for the control),
    blocked (a dopant sits on it or excludes it), occupied (holds a Li as built)."""
    tags, grain = both.get_tags(), both.get_array("grain")
    orig = garnet.TAG_LI24D
    on_site = np.isin(cand, dopants)
    label = np.where((tags[cand] == orig) | on_site, "24d", "96h")
    blocked = on_site.copy()
    free = ~on_site
    blocked[free] = garnet.li_blocked_by(both, cand[free], dopants)
    return {
        "xyz": np.mod(both.positions[cand], both.cell.lengths()),
        "label": label.astype("<U3"),
        "grain": grain[cand].astype(np.int8),
        "blocked": blocked,
        "occupied": np.isin(cand, chosen),
    }


def _anchors(atoms: Atoms, xyz: np.ndarray, k: int = 4) -> np.ndarray:
    """Ids (1-based, file order) of the `k` O nearest each site: the relax step moves each
    site with the mean displacement of these."""
    box = atoms.cell.lengths()
    oxy = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O")
    tree = cKDTree(np.mod(atoms.positions[oxy], box), boxsize=box)
    _, nn = tree.query(np.mod(xyz, box), k=k)
    return (oxy[nn] + 1).astype(np.int64)


def framework_mask(atoms: Atoms) -> np.ndarray:
    return np.isin(atoms.get_chemical_symbols(), FRAMEWORK)
