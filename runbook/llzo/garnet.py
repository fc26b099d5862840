"""Cubic garnet Li7La3Zr2O12 (LLZO): site data, the all-sites cell, and a seeded Li ordering.

Crystallographic source
-----------------------
Space group Ia-3d (No. 230; ITA setting, origin at -3), a = 12.9682 Å: J. Awaka, A. Takashima,
K. Kataoka, N. Kijima, Y. Idemoto, J. Akimoto, "Crystal structure of fast lithium-ion-
conducting cubic Li7La3Zr2O12", Chem. Lett. 40 (2011) 60-62 (single-crystal X-ray).
Sites: La 24c, Zr 16a, O 96h, Li1 24d (tetrahedral), Li2 96h (the octahedral 48g site
split into two half-sites, displaced towards the face-shared tetrahedra).
The free coordinates below are given to three decimals, as recalled from that refinement:
this offline build could not re-check them against the paper. What they produce is
checked by the tests against the bond lengths reported for cubic LLZO (Zr-O 2.10-2.11 Å
x 6, La-O about 2.5 and 2.6 Å x 4 each, Li1-O about 1.9 Å x 4); they give 2.113,
2.517/2.583 and 1.909 Å.

Li ordering rule
----------------
The 24 tetrahedral + 96 octahedral half-sites per cell hold 56 Li (Li7La3Zr2O12, Z = 8).
Two Li may not be closer than `LI_MIN_DIST` = 2.0 Å. On the ideal sites this forbids
exactly two contacts: the two halves of one split 96h pair (0.89 Å) and a 96h half-site
with the 24d tetrahedron it faces (1.55 Å; the "1.6 Å" Li-Li contact that garnet
structure analyses exclude, e.g. Xie et al., Chem. Mater. 23 (2011) 3587 and the
tetragonal ordering of Awaka et al., J. Solid State Chem. 182 (2009) 2046), while every
other site pair (>= 2.33 Å) is allowed. 56 is then the largest admissible filling, so
an ordering of exactly 56 is a maximum independent set of the conflict graph; we find
one by a seeded random local search (`choose_sites`).

Dopants (cubic-stable compositions)
-----------------------------------
`Composition(dopant, level)`, level x per formula unit, charge compensated by Li vacancies:
- Al3+ or Ga3+ on the tetrahedral Li site 24d: Li(7-3x) M(x) La3 Zr2 O12 (each M takes one
  Li site and leaves two more empty). Al on 24d is what 27Al NMR and DFT site energies
  point to (Rettenwander et al., Chem. Mater. 26 (2014) 2617); x = 0.25 (Li6.25Al0.25) is
  inside the range reported to keep LLZO cubic at room temperature (about x >= 0.2,
  Geiger et al., Inorg. Chem. 50 (2011) 1089; recalled, not re-checked offline).
- Ta5+ on the Zr site 16a: Li(7-x) La3 Zr(2-x) Ta(x) O12.
The dopant sites are drawn (seeded) among the host sites; no Li is placed on the dopant's
24d site or within `DOPANT_LI_MIN_DIST` of a dopant: 2.0 Å, the Li rule (it excludes the
four facing 96h half-sites at 1.56 Å). Excluding the next four (2.43 Å) as well would leave
too few sites for Li6.25 in some seeded halves; the minimisation pushes those Li off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal

from runbook.llzo import FORMAL_CHARGE

LATTICE_A = 12.9682  # Å, Awaka et al. 2011
LI_MIN_DIST = 2.0  # Å, see the module docstring
LI_PER_CELL = 56
FU_PER_CELL = 8  # Li7La3Zr2O12 formula units per conventional cell (Z = 8)
DOPANT_LI_MIN_DIST = LI_MIN_DIST  # Å, see the module docstring

# Wyckoff site -> (species, representative fractional coordinates).
SITES: dict[str, tuple[str, tuple[float, float, float]]] = {
    "La24c": ("La", (0.125, 0.0, 0.25)),
    "Zr16a": ("Zr", (0.0, 0.0, 0.0)),
    "O96h": ("O", (0.282, 0.100, 0.195)),
    "Li24d": ("Li", (0.375, 0.0, 0.25)),
    "Li96h": ("Li", (0.095, 0.689, 0.584)),
}
# ASE tags of the all-sites cell: 0 framework, 1 Li 24d candidate, 2 Li 96h candidate.
TAG_FRAME, TAG_LI24D, TAG_LI96H = 0, 1, 2
# Dopant -> the species whose site it takes ("Li": a 24d site; "Zr": a 16a site).
DOPANT_HOST: dict[str, str] = {"Al": "Li", "Ga": "Li", "Ta": "Zr"}


@dataclass(frozen=True)
class Composition:
    """Undoped Li7La3Zr2O12 (`dopant=None`) or doped at `level` x per formula unit."""

    dopant: str | None = None
    level: float = 0.0

    def __post_init__(self) -> None:
        if self.dopant is None:
            if self.level != 0.0:
                raise ValueError("a dopant level needs a dopant")
            return
        if self.dopant not in DOPANT_HOST:
            raise ValueError(f"dopant {self.dopant!r}: expected one of {', '.join(DOPANT_HOST)}")
        if not 0.0 < self.level < self.max_level:
            raise ValueError(
                f"{self.dopant} level {self.level}: expected 0 < x < {self.max_level:g}"
            )

    @property
    def host(self) -> str | None:
        return DOPANT_HOST[self.dopant] if self.dopant else None

    @property
    def max_level(self) -> float:
        """x at which the Li count per formula unit would reach zero (Zr: all of 16a)."""
        return 7.0 / self._li_loss if self.host == "Li" else 2.0

    @property
    def _li_loss(self) -> float:  # Li removed per dopant
        if not self.dopant:
            return 0.0
        host = self.host or "Li"
        return FORMAL_CHARGE[self.dopant] - FORMAL_CHARGE[host] + (1.0 if host == "Li" else 0.0)

    def li_per_fu(self) -> float:
        return 7.0 - self._li_loss * self.level

    def formula(self) -> str:
        if not self.dopant:
            return "Li7La3Zr2O12"
        x = self.level
        zr = f"Zr{2 - x:g}{self.dopant}{x:g}" if self.host == "Zr" else "Zr2"
        dop = f"{self.dopant}{x:g}" if self.host == "Li" else ""
        return f"Li{self.li_per_fu():g}{dop}La3{zr}O12"

    def n_dopants(self, n_fu: float) -> int:
        """Dopants for `n_fu` formula units (rounded to the nearest whole atom)."""
        return int(round(self.level * n_fu)) if self.dopant else 0


def garnet_sites(a: float = LATTICE_A) -> Atoms:
    """The conventional cubic cell with the framework and *every* Li candidate site.

    192 framework atoms (La24 Zr16 O96) + 24 + 96 Li candidates, tagged as above.
    """
    names = list(SITES)
    cell = crystal(
        symbols=[SITES[n][0] for n in names],
        basis=[SITES[n][1] for n in names],
        spacegroup=230,
        setting=1,
        cellpar=[a, a, a, 90, 90, 90],
        onduplicates="error",
    )
    kinds = np.asarray(cell.get_array("spacegroup_kinds"))
    tag_of = {"Li24d": TAG_LI24D, "Li96h": TAG_LI96H}
    cell.set_tags([tag_of.get(names[k], TAG_FRAME) for k in kinds])
    return cell


def conflict_pairs(positions: np.ndarray, cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Pairs (i < j) of points closer than `cutoff` (Å) under periodic boundaries."""
    pts = Atoms("H" * len(positions), positions=positions, cell=cell, pbc=True)
    i, j = neighbor_list("ij", pts, cutoff)
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1)


def choose_sites(
    n_sites: int, pairs: np.ndarray, n_target: int, rng: np.random.Generator, max_iter: int = 0
) -> np.ndarray:
    """Indices of exactly `n_target` of `n_sites` sites, no two of which form a `pair`.

    Random local search for an independent set of the conflict graph: draw a free site;
    add it when it has no occupied neighbour, swap it in when it has exactly one (a
    plateau move that lets the search wander between maximal sets). Seeded by `rng`.
    Raises ValueError when `n_target` is not reached in `max_iter` draws.
    """
    nbrs: list[list[int]] = [[] for _ in range(n_sites)]
    for i, j in pairs:
        nbrs[i].append(int(j))
        nbrs[j].append(int(i))
    occ = np.zeros(n_sites, bool)
    n_conf = np.zeros(n_sites, int)  # occupied neighbours of each site
    count = 0
    max_iter = max_iter or 400 * n_sites + 20000
    draws = rng.integers(n_sites, size=max_iter)
    for s in draws:
        if count == n_target:
            break
        if occ[s] or n_conf[s] > 1:
            continue
        if n_conf[s] == 1:
            (j,) = (k for k in nbrs[s] if occ[k])
            occ[j] = False
            for k in nbrs[j]:
                n_conf[k] -= 1
            count -= 1
        occ[s] = True
        for k in nbrs[s]:
            n_conf[k] += 1
        count += 1
    if count != n_target:
        raise ValueError(
            f"could place only {count} of {n_target} Li with no pair closer than the "
            "minimum distance; fewer Li or more candidate sites are needed"
        )
    return np.flatnonzero(occ)


def order_li(
    sites: Atoms, n_li: int, rng: np.random.Generator, min_dist: float = LI_MIN_DIST
) -> Atoms:
    """Keep the framework and `n_li` of the Li candidate sites (tags 1, 2) of `sites`."""
    tags = sites.get_tags()
    cand = np.flatnonzero(tags != TAG_FRAME)
    pairs = conflict_pairs(sites.positions[cand], sites.cell.array, min_dist)
    chosen = cand[choose_sites(len(cand), pairs, n_li, rng)]
    keep = np.concatenate([np.flatnonzero(tags == TAG_FRAME), np.sort(chosen)])
    return sites[keep]


def place_dopants(
    sites: Atoms, idx: np.ndarray, comp: Composition, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Turn `n` host sites among `idx` (indices into `sites`) into `comp.dopant`, in place.

    Host sites: the 24d Li candidates (Al, Ga) or the Zr atoms (Ta) among `idx`, drawn
    without two dopants closer than `DOPANT_LI_MIN_DIST`. Returns the dopant indices."""
    if n == 0:
        return np.zeros(0, int)
    syms = np.array(sites.get_chemical_symbols())
    tags = sites.get_tags()
    host = idx[tags[idx] == TAG_LI24D] if comp.host == "Li" else idx[syms[idx] == "Zr"]
    pairs = conflict_pairs(sites.positions[host], sites.cell.array, DOPANT_LI_MIN_DIST)
    try:
        chosen = host[choose_sites(len(host), pairs, n, rng)]
    except ValueError as e:
        raise ValueError(f"{comp.dopant} on {comp.host} sites: {e}") from None
    syms[chosen] = comp.dopant
    sites.set_chemical_symbols(list(syms))
    tags[chosen] = TAG_FRAME  # a dopant is part of the framework from now on
    sites.set_tags(tags)
    return chosen


def li_blocked_by(sites: Atoms, cand: np.ndarray, dopants: np.ndarray) -> np.ndarray:
    """Boolean over `cand`: Li candidate sites a dopant excludes (itself and within
    `DOPANT_LI_MIN_DIST`; a dopant on a Li site was already turned into framework)."""
    if len(dopants) == 0 or len(cand) == 0:
        return np.zeros(len(cand), bool)
    pts = np.concatenate([sites.positions[cand], sites.positions[dopants]])
    pairs = conflict_pairs(pts, sites.cell.array, DOPANT_LI_MIN_DIST)
    n = len(cand)
    hit = pairs[(pairs[:, 0] < n) & (pairs[:, 1] >= n), 0]
    out = np.zeros(n, bool)
    out[hit] = True
    return out


def build_cell(seed: int, a: float = LATTICE_A, comp: Composition | None = None) -> Atoms:
    """One conventional cell (Z = 8) with seeded dopant sites and Li ordering:
    Li56La24Zr16O96 undoped, e.g. Li50Al2La24Zr16O96 for Al at x = 0.25."""
    comp = comp or Composition()
    rng = np.random.default_rng([seed, 0])
    sites = garnet_sites(a)
    n_dop = comp.n_dopants(FU_PER_CELL)
    if comp.dopant and abs(n_dop - comp.level * FU_PER_CELL) > 1e-9:
        raise ValueError(f"{comp.formula()}: x * 8 must be whole in one conventional cell")
    dop = place_dopants(sites, np.arange(len(sites)), comp, n_dop, rng)
    cand = np.flatnonzero(sites.get_tags() != TAG_FRAME)
    keep_cand = cand[~li_blocked_by(sites, cand, dop)]
    frame = np.flatnonzero(sites.get_tags() == TAG_FRAME)
    n_li = int(round(comp.li_per_fu() * FU_PER_CELL))
    sub = sites[np.concatenate([frame, keep_cand])]
    return order_li(sub, n_li, rng)
