"""Bulk references of the boundary energy, and the boundary energy itself.

    gamma = [E_gb - E_bulk + sum_u dN_u * mu_u] / (2 A)          (J/m^2; two boundaries)

- E_gb: the bicrystal's energy (eV) after minimisation (and anneal) with the classical set.
- E_bulk: the boundary-free control (`bicrystal.build` with control=True: the same
  composition, orientation, box and protocol; its energy per formula unit is the single
  crystal's). It holds exactly the 2 x repeat[2] lattice periods the bicrystal was made
  from, so every atom the contact rule removed is accounted for by
- dN_u, mu_u: the removed composition as oxide units (control count minus bicrystal count
  of the unit's cation: ZrO2, LaO1.5, AlO1.5, LiO0.5; `contacts.units`), each at the
  energy per unit of its own binary oxide relaxed with the same potential: Li2O
  (antifluorite), La2O3 (A-type, P-3m1), ZrO2 (cubic fluorite), Al2O3 (corundum). This is
  the "removed atoms go to their binary oxides" reference; it is a choice (another
  chemical-potential choice shifts gamma by dN_u * delta_mu_u / 2A, and the JSON records
  dN_u so it can be redone). Removals are charge neutral, so O balances (checked).
- A: the boundary area Lx * Ly (Å^2). 1 eV/Å^2 = 16.0218 J/m^2.

Oxide structures (experimental cells as starting points, relaxed here with box/relax;
positions as recalled, not re-checked offline): Li2O Fm-3m a 4.61, Li 8c, O 4a; ZrO2
Fm-3m a 5.07; La2O3 P-3m1 a 3.94, c 6.13, La 2d z 0.245, O 1a + 2d z 0.646; Al2O3 R-3c
a 4.76, c 12.99, Al 12c z 0.352, O 18e x 0.306.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.spacegroup import crystal

from runbook.llzo import FORMAL_CHARGE, lmpdata, minimize, potential

EV_PER_A2_TO_J_PER_M2 = 16.0217663
# oxide unit (per cation) -> (structure builder, cations per cell)
UNIT_OF = {"Li": "LiO0.5", "La": "LaO1.5", "Zr": "ZrO2", "Al": "AlO1.5"}


def _orthohex(cell: Atoms) -> Atoms:
    """An orthorhombic supercell (a, a*sqrt(3), c) of a hexagonal cell."""
    out = make_supercell(cell, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])
    lengths = out.cell.cellpar()[:3]
    frac = out.get_scaled_positions()
    ortho = Atoms(out.get_chemical_symbols(), cell=np.diag(lengths), pbc=True)
    ortho.set_scaled_positions(np.mod(frac @ out.cell.array @ np.linalg.inv(np.diag(lengths)), 1))
    return ortho


def oxide(cation: str) -> Atoms:
    """The binary oxide of `cation` (see the module docstring), at least ~12 Å a side."""
    if cation == "Li":
        c = crystal(["O", "Li"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225,
                    cellpar=[4.61, 4.61, 4.61, 90, 90, 90])  # fmt: skip
    elif cation == "Zr":
        c = crystal(["Zr", "O"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225,
                    cellpar=[5.07, 5.07, 5.07, 90, 90, 90])  # fmt: skip
    elif cation == "La":
        c = _orthohex(crystal(["La", "O", "O"], [(1 / 3, 2 / 3, 0.245), (0, 0, 0),
                      (1 / 3, 2 / 3, 0.646)], spacegroup=164,
                      cellpar=[3.94, 3.94, 6.13, 90, 90, 120]))  # fmt: skip
    elif cation == "Al":
        c = _orthohex(crystal(["Al", "O"], [(0, 0, 0.352), (0.306, 0, 0.25)], spacegroup=167,
                      cellpar=[4.76, 4.76, 12.99, 90, 90, 120]))  # fmt: skip
    else:
        raise ValueError(f"no binary-oxide reference for {cation}")
    reps = [max(1, int(np.ceil(12.0 / L))) for L in c.cell.lengths()]
    return c.repeat(reps)


def oxide_energies(pset: potential.PotentialSet, cations, settings=None) -> dict[str, float]:
    """eV per cation (i.e. per unit MO(q/2)) of each relaxed binary oxide."""
    s = settings or minimize.MinSettings(box="aniso")
    out = {}
    for m in cations:
        at = oxide(m)
        charge = sum(FORMAL_CHARGE[x] for x in at.get_chemical_symbols())
        if charge:
            raise ValueError(f"{m} oxide cell is not neutral ({charge})")
        d = lmpdata.from_symbols(at.cell.lengths(), at.get_chemical_symbols(), at.positions)
        r = minimize.minimise(d, pset, s)
        out[m] = r.energy_eV / at.get_chemical_symbols().count(m)
    return out


@dataclass(frozen=True)
class Gamma:
    gamma_J_m2: float
    e_gb_eV: float
    e_bulk_eV: float
    area_A2: float
    removed_units: dict[str, float]  # unit -> count (control minus bicrystal)
    mu_eV: dict[str, float]  # unit -> eV per unit


def boundary_energy(
    e_gb: float, counts_gb: dict, e_bulk: float, counts_bulk: dict, area: float, mu: dict
) -> Gamma:
    """gamma of the module docstring; `mu` is {cation: eV per unit} (oxide_energies)."""
    d = {s: counts_bulk.get(s, 0) - counts_gb.get(s, 0) for s in set(counts_bulk) | set(counts_gb)}
    o_from_units = sum(FORMAL_CHARGE[s] / 2.0 * n for s, n in d.items() if s != "O")
    if abs(o_from_units - d.get("O", 0)) > 1e-9:
        raise ValueError(f"removed composition {d} is not a sum of neutral oxide units")
    units = {UNIT_OF[s]: float(n) for s, n in d.items() if s != "O" and n}
    missing = [s for s, n in d.items() if s != "O" and n and s not in mu]
    if missing:
        raise ValueError(f"no oxide reference energy for {', '.join(missing)}")
    corr = sum(n * mu[s] for s, n in d.items() if s != "O" and n)
    g = (e_gb - e_bulk + corr) / (2.0 * area) * EV_PER_A2_TO_J_PER_M2
    return Gamma(round(g, 5), e_gb, e_bulk, area, units,
                 {UNIT_OF[s]: round(mu[s], 5) for s, n in d.items() if s != "O" and n})  # fmt: skip
