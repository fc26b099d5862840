"""Li site occupancies (24d / 96h) by region, and site-to-site hops, from a trajectory.

Input: the candidate Li sites the build wrote, `li_sites.npz` with arrays
  xyz   (n, 3) float, Å, in the box of the trajectory's first frame
  label (n,)   str, '24d' or '96h' (other labels are accepted and reported as given)
  grain (n,)   int, the grain each site belongs to (reported, not used)
Optional: `box` (3,) the box lengths the sites were written for (default: the first
frame's); positions are compared in fractional coordinates, so a box that changes
during the run (NPT) scales the sites with it.

Assignment (stated): in every frame each Li goes to its nearest candidate site when it
is within `r_assign` (default SITE_A = 1.0 Å: the two halves of a split 96h pair are
0.89 Å apart, so a Li between them is assigned to one of them; a 96h half-site and its
24d neighbour are 1.55 Å apart); a Li farther than that from every site is
'unassigned' (interstitial, or a disordered boundary core).

Occupancy of a label in a region = (Li-frames assigned to sites of that label in the
region) / (frames x sites of that label in the region): the mean number of Li per site,
the quantity of the garnet literature (cubic LLZO: 24d ~0.56, 96h ~0.44). Regions are
by the site's distance to the nearest GB plane: boundary (<= w), interior (>= d_bulk),
between; and all.

Site hops: a Li's assigned site sequence, with unassigned frames skipped, changes
cage; a cage is a set of sites closer than CAGE_A = 1.2 Å (a split 96h pair is one
octahedral cage, so rattling between its halves is not a hop). Counted by the region
of the site left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from bundle.core.errors import InputError

SITE_A = 1.0
CAGE_A = 1.2
REGIONS = ("boundary", "between", "interior")


@dataclass(frozen=True)
class Sites:
    xyz: np.ndarray  # (n, 3) Å
    label: np.ndarray  # (n,) str
    grain: np.ndarray  # (n,) int
    box: np.ndarray | None  # (3,) Å or None
    source: str
    sha256: str


def load_sites(path: Path) -> Sites:
    """li_sites.npz, validated (errors name the file, the array and the fix)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        msg = f"not a readable .npz ({e})"
        raise InputError(path, "(file)", msg, "give li_sites.npz") from None
    for key in ("xyz", "label", "grain"):
        if key not in arrays:
            raise InputError(path, key, "array missing", "the build writes xyz, label, grain")
    xyz, label, grain = arrays["xyz"], arrays["label"].astype(str), arrays["grain"]
    n = len(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or n == 0 or not np.isfinite(xyz).all():
        raise InputError(path, "xyz", f"expected finite (n, 3) positions, got {xyz.shape}")
    if label.shape != (n,) or grain.shape != (n,):
        raise InputError(path, "label/grain", f"expected {n} entries each, like xyz")
    box = arrays.get("box")
    if box is not None and (box.shape != (3,) or not (box > 0).all()):
        raise InputError(path, "box", f"expected three positive lengths, got {box}")
    return Sites(xyz.astype(float), label, grain.astype(int), box, str(path),
                 hashlib.sha256(path.read_bytes()).hexdigest())  # fmt: skip


def cages(frac: np.ndarray, box: np.ndarray, within: float = CAGE_A) -> np.ndarray:
    """Cage id of each site: connected groups of sites closer than `within` (periodic)."""
    pts = np.mod(frac, 1.0) * box
    pairs = cKDTree(pts, boxsize=box).query_pairs(within, output_type="ndarray")
    n = len(pts)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass
class Occupancy:
    """Accumulates assignments over atom chunks (all frames of each chunk at once)."""

    sites: Sites
    box0: np.ndarray  # (3,) first-frame box lengths
    lo0: np.ndarray  # (3,) first-frame box origin
    frac_planes: list[float]
    w: float
    d_bulk: float
    r_assign: float = SITE_A
    frac: np.ndarray = field(init=False)
    region: np.ndarray = field(init=False)  # (n,) code into REGIONS
    cage: np.ndarray = field(init=False)
    labels: list[str] = field(init=False)
    assigned: np.ndarray = field(init=False)  # (n_sites,) Li-frames per site
    n_li_frames: int = field(init=False, default=0)
    hops: np.ndarray = field(init=False)  # (3,) site hops by region of the site left

    def __post_init__(self) -> None:
        ref = self.sites.box if self.sites.box is not None else self.box0
        self.frac = np.mod((self.sites.xyz - self.lo0) / ref, 1.0)
        lz = self.box0[2]
        d = np.min([np.abs((self.frac[:, 2] - s + 0.5) % 1.0 - 0.5) for s in self.frac_planes],
                   axis=0) * lz  # fmt: skip
        self.region = np.where(d <= self.w + 1e-9, 0, np.where(d >= self.d_bulk - 1e-9, 2, 1))
        self.cage = cages(self.frac, self.box0)
        self.labels = sorted(set(self.sites.label.tolist()))
        self.assigned = np.zeros(len(self.frac))
        self.hops = np.zeros(len(REGIONS), dtype=np.int64)
        self._tree = cKDTree(self.frac * self.box0, boxsize=self.box0)

    def add(self, frac_li: np.ndarray) -> None:
        """frac_li: (F, m, 3) fractional Li positions (any image) in each frame's box."""
        F, m, _ = frac_li.shape
        pts = np.mod(frac_li, 1.0).reshape(-1, 3) * self.box0
        pts = np.minimum(pts, self.box0 * (1 - 1e-12))  # cKDTree wants [0, L)
        dist, idx = self._tree.query(pts, distance_upper_bound=self.r_assign)
        ok = np.isfinite(dist)
        self.assigned += np.bincount(idx[ok], minlength=len(self.frac))
        self.n_li_frames += F * m
        self._count_hops(np.where(ok, idx, -1).reshape(F, m))

    def _count_hops(self, idx: np.ndarray) -> None:
        """Cage changes along each Li's sequence of assigned sites (unassigned skipped)."""
        F = idx.shape[0]
        t = np.where(idx >= 0, np.arange(F)[:, None], -1)
        last = np.maximum.accumulate(t, axis=0)  # frame of the latest assignment
        has = last >= 0
        site = np.where(has, np.take_along_axis(idx, np.maximum(last, 0), axis=0), -1)
        prev, cur = site[:-1], site[1:]
        moved = (prev >= 0) & (cur >= 0) & (idx[1:] >= 0)
        moved &= self.cage[np.maximum(prev, 0)] != self.cage[np.maximum(cur, 0)]
        self.hops += np.bincount(self.region[prev[moved]], minlength=len(REGIONS))

    def section(self, n_frames: int) -> dict:
        """Occupancy per label and region, unassigned fraction, site hops."""
        per_region = {}
        for r, name in [(None, "all"), *enumerate(REGIONS)]:
            in_r = np.ones(len(self.frac), bool) if r is None else self.region == r
            occ, n_sites = {}, {}
            for lab in self.labels:
                sel = in_r & (self.sites.label == lab)
                n_sites[lab] = int(sel.sum())
                hits = self.assigned[sel].sum()
                occ[lab] = float(hits / (n_frames * sel.sum())) if sel.any() else None
            per_region[name] = {"occupancy": occ, "n_sites": n_sites}
        total = float(self.assigned.sum())
        return {
            "file": self.sites.source,
            "sha256": self.sites.sha256,
            "r_assign_A": self.r_assign,
            "cage_A": CAGE_A,
            "regions": per_region,
            "unassigned_fraction": 1.0 - total / self.n_li_frames if self.n_li_frames else None,
            "site_hops": {name: int(self.hops[i]) for i, name in enumerate(REGIONS)},
        }
