"""Snapshots of classical MD: the LLZO Buckingham + Coulomb baseline through LAMMPS.

This is *cheap sampling*: the classical set (runbook/llzo/buckingham.yaml, a rigid-ion
Lewis-Catlow model) only proposes configurations; every selected frame is labelled by
pw.x and the classical energies and forces are thrown away. Only Li, La, Zr and O are
sampled this way (SAMPLED): the Al-O term the grain-boundary study added (GULP
catlow.lib) was fitted for Al2O3, and all-atom MD of the 96-atom Al-doped primitive cell
with it loses atoms in LAMMPS within 200 steps at 700 K (measured), so Al-doped cells are
strained and rattled instead.

Protocol: NVT (Nose-Hoover) at `temperature_K` from Maxwell-Boltzmann velocities
(seeded), `units metal`, PPPM 1e-4 with an 8 Å real-space cutoff (the baseline's), a
snapshot every `every` steps after `skip` steps. `mobile = "all"` integrates every
atom; `"li"` integrates Li only with the framework frozen and its internal pairs
excluded, as the grain-boundary study runs the baseline. Any triclinic cell is accepted
(LAMMPS gets the ASE cell rotated to its lower-triangular form, and positions are
rotated back). A snapshot with a pair closer than `min_pair_A` is dropped: the rigid-ion
model can let ions overlap at high temperature, and such a frame is no label at all.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism
from ase.io import write
from ase.neighborlist import neighbor_list

from runbook.llzo import FORMAL_CHARGE, TYPE_IDS, potential

SPECIES_ORDER = [s for s, _ in sorted(TYPE_IDS.items(), key=lambda kv: kv[1])]
SAMPLED = {"Li", "La", "Zr", "O"}  # module docstring


@dataclass(frozen=True)
class MdSpec:
    temperature_K: float
    steps: int
    every: int
    skip: int = 0
    timestep_fs: float = 1.0
    tdamp_fs: float = 100.0
    mobile: str = "all"  # all | li
    seed: int = 1
    min_pair_A: float = 1.2


def _input(spec: MdSpec, data: str) -> list[str]:
    pset = potential.load()
    lines = ["units metal", "atom_style charge", "boundary p p p", f"read_data {data}"]
    lines += potential.lammps_lines(pset)
    lines += ["neighbor 2.0 bin", "group li type 1", "group frame type 2 3 4"]
    if spec.mobile == "li":
        lines += ["neigh_modify every 1 delay 0 check yes exclude group frame frame"]
        group = "li"
    else:
        lines += ["neigh_modify every 1 delay 0 check yes"]
        group = "all"
    t = spec.temperature_K
    lines += [
        f"timestep {spec.timestep_fs / 1000.0:.6f}",
        f"velocity {group} create {t:.2f} {spec.seed} dist gaussian mom yes rot no",
        f"fix nvt {group} nvt temp {t:.2f} {t:.2f} {spec.tdamp_fs / 1000.0:.4f}",
        "thermo 0",
    ]
    return lines


def snapshots(atoms: Atoms, spec: MdSpec) -> list[Atoms]:
    """Frames of an NVT run of `atoms` (module docstring); species Li, La, Zr, O only."""
    from bundle.core import engines

    unknown = sorted(set(atoms.get_chemical_symbols()) - SAMPLED)
    if unknown:
        raise ValueError(f"the classical sampler takes {sorted(SAMPLED)} only, not {unknown}")
    work = atoms.copy()
    work.set_initial_charges([FORMAL_CHARGE[s] for s in work.get_chemical_symbols()])
    prism = Prism(work.cell.array)
    out: list[Atoms] = []
    with tempfile.TemporaryDirectory(prefix="mlmd-classical-") as tmp:
        data = Path(tmp) / "cell.data"
        write(data, work, format="lammps-data", atom_style="charge",
              specorder=SPECIES_ORDER, masses=True, units="metal")  # fmt: skip
        lmp = engines.load_lammps().lammps(cmdargs=["-log", "none", "-screen", "none"])
        try:
            lmp.commands_list(_input(spec, str(data)))
            lmp.command(f"run {spec.skip}")
            n = len(work)
            while spec.every and len(out) < (spec.steps - spec.skip) // spec.every:
                lmp.command(f"run {spec.every}")
                x = np.array(lmp.gather_atoms("x", 1, 3)[:]).reshape(n, 3)
                snap = atoms.copy()
                snap.positions = prism.vector_to_ase(x, wrap=True)
                snap.info = dict(atoms.info)
                snap.info["md_step"] = spec.skip + spec.every * (len(out) + 1)
                out.append(snap)
        finally:
            lmp.close()
    return [s for s in out if min_distance(s) >= spec.min_pair_A]


def min_distance(atoms: Atoms, cutoff: float = 3.0) -> float:
    d = neighbor_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else cutoff
