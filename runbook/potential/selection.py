"""Diverse selection in descriptor space: standardise, PCA, farthest-point sampling.

The route of shared/seeds/004 (K. Shimizu et al., PCA of symmetry-function descriptors
to thin a data set while keeping its diversity), made a rule:

1. One pooled descriptor vector per candidate (runbook.potential.descriptors.pooled).
2. Per environment class (the quotas are per class, and across classes the descriptors
   differ mostly by composition, which would swamp the spread inside a class):
   standardise each feature over the class's candidates (zero mean, unit variance;
   features that do not vary are dropped), then
3. PCA by SVD, keeping the fewest leading components that explain `variance` of the
   class's total (at most `max_components`), and
4. farthest-point sampling in that space: start from the candidate nearest the class
   centroid (a typical member), then repeatedly take the candidate farthest from those
   already taken, until the class quota is met. Ties go to the lower index, so the rule
   is deterministic.
A class with fewer candidates than its quota gives all it has (recorded as a shortfall);
a class of one candidate gives that one. The figure uses one global PCA (`pca`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pca:
    coords: np.ndarray  # (n, k) candidates in the kept components
    explained: np.ndarray  # variance fraction of each kept component
    n_features_used: int


def pca(x: np.ndarray, variance: float = 0.95, max_components: int = 10) -> Pca:
    """Standardised PCA of the rows of `x` (steps 2-3 of the module docstring)."""
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs at least 2 candidates (got {len(x)})")
    std = x.std(axis=0)
    keep = std > 1e-12 * max(1.0, float(np.abs(x).max()))
    if not keep.any():
        raise ValueError("no descriptor varies across the candidates")
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / std[keep]
    u, s, _vt = np.linalg.svd(z, full_matrices=False)
    frac = s**2 / float((s**2).sum())
    k = int(np.searchsorted(np.cumsum(frac), variance) + 1)
    k = max(1, min(k, max_components, len(frac)))
    return Pca(u[:, :k] * s[:k], frac[:k], int(keep.sum()))


def farthest_point(coords: np.ndarray, n: int) -> list[int]:
    """`n` row indices of `coords` by farthest-point sampling from the row nearest the
    centroid (step 4 of the module docstring), in the order picked."""
    n = min(n, len(coords))
    if n <= 0:
        return []
    chosen = [int(np.argmin(np.linalg.norm(coords - coords.mean(axis=0), axis=1)))]
    dist = np.linalg.norm(coords - coords[chosen[0]], axis=1)
    while len(chosen) < n:
        score = dist.copy()
        score[chosen] = -1.0
        best = int(np.argmax(score))  # argmax: first (lowest index) of equal maxima
        chosen.append(best)
        dist = np.minimum(dist, np.linalg.norm(coords - coords[best], axis=1))
    return chosen


@dataclass(frozen=True)
class Selection:
    chosen: list[int]  # candidate indices, class by class (sorted class names), in pick order
    explained: dict[str, list[float]]  # per class: variance fraction of each kept PC
    coords: dict[str, np.ndarray]  # per class: its candidates in its kept PCs (rows: members)
    members: dict[str, np.ndarray]  # per class: candidate indices of the rows of `coords`


def select(
    x: np.ndarray,
    classes: list[str],
    quota: dict[str, int],
    variance: float = 0.95,
    max_components: int = 10,
) -> Selection:
    """Steps 2-4 of the module docstring for every class with a quota > 0."""
    labels = np.array(classes)
    chosen: list[int] = []
    explained: dict[str, list[float]] = {}
    coords: dict[str, np.ndarray] = {}
    for c in sorted(quota):
        idx = np.flatnonzero(labels == c)
        if quota[c] <= 0 or len(idx) == 0:
            continue
        if len(idx) == 1:
            chosen.append(int(idx[0]))
            continue
        try:
            pc = pca(x[idx], variance, max_components)
        except ValueError:  # identical candidates: any order is as diverse as another
            chosen += [int(i) for i in idx[: quota[c]]]
            continue
        explained[c], coords[c] = [float(v) for v in pc.explained], pc.coords
        chosen += [int(idx[k]) for k in farthest_point(pc.coords, quota[c])]
    members = {c: np.flatnonzero(labels == c) for c in coords}
    return Selection(chosen, explained, coords, members)
