"""Per-species reference energies by least squares: E(frame) ~ sum_s n_s(frame) mu_s.

The trivial energy model of a data set (what a potential must beat on held-out frames)
and the per-type energy shifts an Allegro model starts from. With compositions that do
not fix every species (e.g. only charge-neutral oxides: mu_O and the cation energies are
then known only in neutral combinations), `numpy.linalg.lstsq` returns the minimum-norm
solution; its predictions for compositions in the span of the training compositions do
not depend on that choice. `rank` records how many combinations the data fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeciesEnergies:
    mu_ev: dict[str, float]  # eV per atom of each species
    rank: int  # independent compositions in the fit
    rmse_ev_per_atom: float  # of the fit on its own frames

    def predict(self, symbols: Sequence[str]) -> float:
        """Energy (eV) of a frame with these atoms; KeyError for an unfitted species."""
        return float(sum(self.mu_ev[s] for s in symbols))


def counts(symbols_per_frame: Sequence[Sequence[str]], species: Sequence[str]) -> np.ndarray:
    """(n_frames, n_species) atom counts."""
    index = {s: k for k, s in enumerate(species)}
    out = np.zeros((len(symbols_per_frame), len(species)))
    for f, syms in enumerate(symbols_per_frame):
        for s in syms:
            out[f, index[s]] += 1
    return out


def fit(frames, species: Sequence[str] | None = None) -> SpeciesEnergies:
    """Least-squares mu_s from ASE frames with energies (eV). `species` defaults to those
    present; a species given but absent from every frame gets mu = 0 (unconstrained)."""
    if not frames:
        raise ValueError("no frames to fit species energies on")
    syms = [a.get_chemical_symbols() for a in frames]
    species = list(species or sorted({s for f in syms for s in f}))
    n = counts(syms, species)
    e = np.array([a.get_potential_energy() for a in frames])
    mu, _res, rank, _sv = np.linalg.lstsq(n, e, rcond=None)
    natoms = n.sum(axis=1)
    rmse = float(np.sqrt(np.mean(((n @ mu - e) / natoms) ** 2)))
    return SpeciesEnergies({s: float(m) for s, m in zip(species, mu, strict=True)}, int(rank), rmse)
