"""Quantum ESPRESSO `pw.x`: the input context for `templates/qe/pw-scf.in.j2` and the
output parser.

Parser contract (checked against pw.x 6.7MaX, Debian bookworm; the banner is parsed and
recorded): one SCF run per output; reads the final `!    total energy` (Ry), the block
after `Forces acting on atoms (cartesian axes, Ry/au)` (Ry/Bohr, one line per atom in
input order), and the 3 lines after `total   stress  (Ry/bohr**3)`. Units are fixed
HERE, at the boundary: eV, Å, eV/Å³. Stress is returned in the ASE sign convention
(positive = tensile): pw.x prints the pressure-like tensor (P = trace/3), so it is
negated. An output that lacks `JOB DONE` or misses a block is an EngineError naming the
file; one that says `convergence NOT achieved` (pw.x then stops with exit status 2,
`EXIT_NOT_CONVERGED`) raises its subclass `ScfNotConverged`, so that a caller labelling
many frames can record and exclude that frame instead of failing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core.errors import EngineError

# Constants compiled into pw.x 6.7 (Modules/constants.f90, CODATA 2006): using the same
# values pw.x used to convert our Å input to Bohr keeps geometry and forces consistent.
BOHR_ANGSTROM = 0.52917720859
RY_EV = 13.60569193
RY_PER_BOHR_TO_EV_PER_A = RY_EV / BOHR_ANGSTROM
RY_PER_BOHR3_TO_EV_PER_A3 = RY_EV / BOHR_ANGSTROM**3

MARK_BANNER = re.compile(r"Program PWSCF v\.(\S+) starts")
MARK_ENERGY = re.compile(r"^!\s+total energy\s+=\s+(-?\d+\.\d+)\s+Ry", re.M)
MARK_FORCES = "Forces acting on atoms (cartesian axes, Ry/au):"
MARK_FORCE_LINE = re.compile(r"atom\s+(\d+)\s+type\s+\d+\s+force =\s+(\S+)\s+(\S+)\s+(\S+)")
MARK_STRESS = "total   stress  (Ry/bohr**3)"
MARK_SCF_ITER = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
MARK_NOT_CONVERGED = "convergence NOT achieved"
MARK_DONE = "JOB DONE."
MARK_NOT_CONVERGED_ITER = re.compile(r"convergence NOT achieved after\s+(\d+)\s+iterations")
EXIT_NOT_CONVERGED = 2  # pw.x 6.7: `STOP 2` after an SCF that did not converge


class ScfNotConverged(EngineError):
    """pw.x ran to its end but the SCF did not reach conv_thr (no label: exclude it)."""

    def __init__(self, source: str, iterations: int):
        self.source, self.iterations = source, iterations
        super().__init__(
            f"{source}: SCF did not converge in {iterations} iterations; "
            "raise electron_maxstep or lower mixing_beta"
        )


@dataclass(frozen=True)
class PwResult:
    energy_ev: float
    forces_ev_a: np.ndarray  # (nat, 3)
    stress_ev_a3: np.ndarray  # (3, 3), ASE sign (positive = tensile)
    energy_ry: float
    scf_iterations: int
    version: str


def pw_version(text: str) -> str:
    m = MARK_BANNER.search(text)
    return m.group(1) if m else "unknown"


def parse_pw_output(text: str, nat: int, source: str = "pw.x output") -> PwResult:
    """Parse one pw.x SCF output (see module contract)."""
    if MARK_NOT_CONVERGED in text:
        m = MARK_NOT_CONVERGED_ITER.search(text)
        raise ScfNotConverged(source, int(m.group(1)) if m else -1)
    if MARK_DONE not in text:
        raise EngineError(f"{source}: pw.x did not finish (no `{MARK_DONE}`)")
    energies = MARK_ENERGY.findall(text)
    if not energies:
        raise EngineError(f"{source}: no final `!    total energy` line")
    e_ry = float(energies[-1])
    try:
        fblock = text[text.rindex(MARK_FORCES) :]
        sblock = text[text.rindex(MARK_STRESS) :].splitlines()[1:4]
    except ValueError:
        raise EngineError(f"{source}: forces or stress missing (tprnfor/tstress off?)") from None
    forces = np.zeros((nat, 3))
    seen = 0
    for m in MARK_FORCE_LINE.finditer(fblock):
        i = int(m.group(1)) - 1
        if i >= nat or seen == nat:
            break
        forces[i] = [float(m.group(k)) for k in (2, 3, 4)]
        seen += 1
    if seen != nat:
        raise EngineError(f"{source}: found {seen} force lines, expected {nat}")
    stress = np.array([[float(v) for v in line.split()[:3]] for line in sblock])
    if stress.shape != (3, 3):
        raise EngineError(f"{source}: malformed stress block")
    it = MARK_SCF_ITER.search(text)
    return PwResult(
        energy_ev=e_ry * RY_EV,
        forces_ev_a=forces * RY_PER_BOHR_TO_EV_PER_A,
        stress_ev_a3=-stress * RY_PER_BOHR3_TO_EV_PER_A3,
        energy_ry=e_ry,
        scf_iterations=int(it.group(1)) if it else -1,
        version=pw_version(text),
    )


def read_pw_output(path: Path, nat: int) -> PwResult:
    return parse_pw_output(path.read_text(errors="replace"), nat, str(path))


def kpoint_grid(cell: np.ndarray, spacing_inv_a: float) -> list[int]:
    """Monkhorst-Pack grid with |b_i|/n_i <= spacing (b_i with the 2π), at least 1."""
    recip = 2 * math.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    return [max(1, math.ceil(float(np.linalg.norm(b)) / spacing_inv_a - 1e-9)) for b in recip]


def input_context(
    atoms, species: dict[str, str], cfg, prefix: str, smeared: bool = False, local_tf=False
) -> dict:
    """Template context for one SCF: `species` maps symbol → pseudopotential file name;
    pw.x reads the pseudopotentials from `./pseudo` of the stage folder. `smeared`: the
    frame has partly filled bands (e.g. an extra electron), so occupations are smeared
    (`cfg.smearing`, `cfg.degauss_ry`). `local_tf`: density mixing with local Thomas-Fermi
    screening (`mixing_mode = 'local-TF'`), against charge sloshing in inhomogeneous cells;
    it changes the path of the SCF, not its converged result. With `cfg.kpoint_gamma` a
    single unshifted k-point is written as `K_POINTS gamma` (real wavefunctions: about
    half the cost)."""
    from ase.data import atomic_masses, atomic_numbers

    symbols = atoms.get_chemical_symbols()
    present = [s for s in species if s in symbols]
    kpoints = kpoint_grid(atoms.cell, cfg.kpoint_spacing_inv_angstrom)
    gamma = cfg.kpoint_gamma and kpoints == [1, 1, 1] and not cfg.kpoint_shift
    return {
        "prefix": prefix,
        "nat": len(atoms),
        "species": [
            {"symbol": s, "mass": atomic_masses[atomic_numbers[s]], "pseudo": species[s]}
            for s in present
        ],
        "cell": np.asarray(atoms.cell).tolist(),
        "atoms": [(s, *p) for s, p in zip(symbols, atoms.positions.tolist(), strict=True)],
        "kpoints": kpoints,
        "kshift": 1 if cfg.kpoint_shift else 0,
        "gamma": gamma,
        "occupations": "smearing" if smeared else "fixed",
        "smearing": cfg.smearing,
        "degauss": cfg.degauss_ry,
        "electron_maxstep": cfg.electron_maxstep,
        "ecutwfc": cfg.ecutwfc_ry,
        "ecutrho": cfg.ecutrho_ry,
        "conv_thr": f"{cfg.conv_thr_per_atom_ry * len(atoms):.3e}",
        "mixing_beta": cfg.mixing_beta,
        "mixing_mode": "local-TF" if local_tf else None,
    }
