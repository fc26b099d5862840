"""Behler-Parrinello atom-centred symmetry functions, element-resolved (numpy + ASE).

For atom i, neighbours j, k within the cutoff R_c, with the cosine cutoff
f_c(R) = 0.5 [cos(pi R / R_c) + 1] (R < R_c, else 0):

    G2_i(eta; s)       = sum_{j of species s} exp(-eta R_ij^2) f_c(R_ij)
    G3_i(eta, zeta, lambda; s, t)
                       = 2^(1 - zeta) sum_{pairs {j, k}, species {s, t}}
                         (1 + lambda cos theta_ijk)^zeta exp(-eta (R_ij^2 + R_ik^2))
                         f_c(R_ij) f_c(R_ik)

(J. Behler and M. Parrinello, Phys. Rev. Lett. 98, 146401 (2007); the angular form is
the one written in shared/seeds/004: no R_jk term, Behler's "wide" G5.) Each unordered
neighbour pair {j, k} counts once; theta_ijk is the angle at i. Radial terms use
`rc_radial`, angular terms `rc_angular` (shorter: the triplet count grows as R_c^6).
Element resolution: G2 has one block per neighbour species, G3 one per unordered species
pair, both in the order of `species`. Neighbour lists: matscipy (the same contract as
`ase.neighborlist.neighbor_list`, ~30x faster on the 96-atom triclinic cell).
Everything is invariant under rotation, translation and permutation of like atoms by
construction; tests check it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from matscipy.neighbours import neighbour_list


@dataclass(frozen=True)
class SymmetryFunctions:
    species: tuple[str, ...]
    rc_radial: float = 6.0
    rc_angular: float = 4.5
    eta_radial: tuple[float, ...] = (0.01, 0.05, 0.15, 0.4, 1.0)  # Å^-2
    eta_angular: tuple[float, ...] = (0.005, 0.05)  # Å^-2
    zeta: tuple[float, ...] = (1.0, 4.0)
    lambdas: tuple[float, ...] = (1.0, -1.0)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return list(itertools.combinations_with_replacement(self.species, 2))

    @property
    def angular_params(self) -> list[tuple[float, float, float]]:
        return list(itertools.product(self.eta_angular, self.zeta, self.lambdas))

    @property
    def n_radial(self) -> int:
        return len(self.species) * len(self.eta_radial)

    @property
    def n_features(self) -> int:
        return self.n_radial + len(self.pairs) * len(self.angular_params)

    def names(self) -> list[str]:
        out = [f"G2[{s}](eta={e})" for s in self.species for e in self.eta_radial]
        out += [
            f"G3[{a}-{b}](eta={e},zeta={z},lambda={lam:+g})"
            for a, b in self.pairs
            for e, z, lam in self.angular_params
        ]
        return out


def cutoff_fn(r: np.ndarray, rc: float) -> np.ndarray:
    return np.where(r < rc, 0.5 * (np.cos(np.pi * r / rc) + 1.0), 0.0)


def radial(atoms: Atoms, sf: SymmetryFunctions) -> np.ndarray:
    """(n_atoms, n_species * n_eta) G2 values."""
    kind = _kinds(atoms, sf)
    i, j, r = neighbour_list("ijd", atoms, sf.rc_radial)
    fc = cutoff_fn(r, sf.rc_radial)
    eta = np.asarray(sf.eta_radial)
    terms = np.exp(-np.outer(r**2, eta)) * fc[:, None]  # (pairs, n_eta)
    out = np.zeros((len(atoms), len(sf.species), len(eta)))
    np.add.at(out, (i, kind[j]), terms)
    return out.reshape(len(atoms), -1)


def angular(atoms: Atoms, sf: SymmetryFunctions) -> np.ndarray:
    """(n_atoms, n_pairs * n_params) G3 values."""
    kind = _kinds(atoms, sf)
    n_sp, n_at, n_pairs = len(sf.species), len(atoms), len(sf.pairs)
    pair_index = np.full((n_sp, n_sp), -1)
    for p, (a, b) in enumerate(sf.pairs):
        ia, ib = sf.species.index(a), sf.species.index(b)
        pair_index[ia, ib] = pair_index[ib, ia] = p
    params = np.array(sf.angular_params)  # (n_params, 3): eta, zeta, lambda
    i, j, r, vec = neighbour_list("ijdD", atoms, sf.rc_angular)
    order = np.argsort(i, kind="stable")
    i, j, r, vec = i[order], j[order], r[order], vec[order]
    fc = cutoff_fn(r, sf.rc_angular)
    u, v = _neighbour_pairs(np.searchsorted(i, np.arange(n_at + 1)))
    cos = np.einsum("ij,ij->i", vec[u], vec[v]) / (r[u] * r[v])
    eta, zeta, lam = params[:, 0], params[:, 1], params[:, 2]
    terms = (
        2.0 ** (1.0 - zeta)
        * np.clip(1.0 + np.outer(cos, lam), 0.0, None) ** zeta
        * np.exp(-np.outer(r[u] ** 2 + r[v] ** 2, eta))
        * (fc[u] * fc[v])[:, None]
    )
    flat = i[u] * n_pairs + pair_index[kind[j[u]], kind[j[v]]]
    out = np.stack(
        [
            np.bincount(flat, weights=terms[:, k], minlength=n_at * n_pairs)
            for k in range(len(params))
        ],
        axis=1,
    )
    return out.reshape(n_at, n_pairs * len(params))


def _neighbour_pairs(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (u, v), u < v, of every pair of neighbour-list entries with the same centre."""
    us, vs = [], []
    for lo, hi in zip(starts[:-1], starts[1:], strict=True):
        if hi - lo >= 2:
            a, b = np.triu_indices(hi - lo, k=1)
            us.append(a + lo)
            vs.append(b + lo)
    if not us:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(us), np.concatenate(vs)


def per_atom(atoms: Atoms, sf: SymmetryFunctions) -> np.ndarray:
    """(n_atoms, n_features): G2 blocks then G3 blocks (see `SymmetryFunctions.names`)."""
    return np.hstack([radial(atoms, sf), angular(atoms, sf)])


def pooled(atoms: Atoms, sf: SymmetryFunctions) -> np.ndarray:
    """One vector per structure: for each central species (in `sf.species` order), the
    mean descriptor of its atoms (zeros where the structure has none of that species)."""
    g = per_atom(atoms, sf)
    kind = _kinds(atoms, sf)
    out = np.zeros((len(sf.species), sf.n_features))
    for k in range(len(sf.species)):
        sel = kind == k
        if sel.any():
            out[k] = g[sel].mean(axis=0)
    return out.ravel()


def _kinds(atoms: Atoms, sf: SymmetryFunctions) -> np.ndarray:
    index = {s: k for k, s in enumerate(sf.species)}
    try:
        return np.array([index[s] for s in atoms.get_chemical_symbols()], int)
    except KeyError as e:
        raise ValueError(f"species {e} is not among the descriptor species {sf.species}") from None
