"""The model-check worker: `python -m bundle.verify model-check --compiled M --structure S
--r-max R --device D --out F.json` (run by the engines phase, in the image or on the host).

It evaluates the compiled model on the structure in Python, then drives LAMMPS with it
through the inputs production renders: the md stage's data file (runbook.stages.md.
write_data) and `templates/lammps/setup-fix-external.lmp.j2` rendered by the same function
the md stage uses (runbook.stages.md.render_fix_external), with the same coupling
(runbook.mdcoupling). So a broken production template fails verify's engine check.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase.io import read

from bundle.core import engines
from bundle.core.errors import InputError
from runbook.mdcoupling import ModelCoupling, load_calculator
from runbook.stages.md import render_fix_external, write_data

EV_A3_TO_BAR = 1.602176634e6  # 1 eV/A^3 in bar (LAMMPS metal pressure unit)


def lammps_input(atoms, workdir: Path, source="structure") -> tuple[Any, dict[int, str], Path]:
    """An orthorhombic, wrapped copy of `atoms`, its LAMMPS type map (species in order of
    appearance) and the md stage's data file of it in `workdir`."""
    cell = np.asarray(atoms.cell)
    if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-9:
        raise InputError(source, "cell", "not orthorhombic", "use an orthorhombic cell")
    atoms = atoms.copy()
    atoms.wrap()
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    type_map = {i + 1: s for i, s in enumerate(species)}
    workdir.mkdir(parents=True, exist_ok=True)
    data = write_data(workdir / "data.lmp", atoms, type_map, "atomic", "bundle verify")
    return atoms, type_map, data


def step0(lmp, n: int) -> dict:
    """Forces (by atom id), potential energy and pressure of a LAMMPS run just done."""
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    forces = np.empty((n, 3))
    forces[ids - 1] = lmp.numpy.extract_atom("f")[:n]
    return {
        "forces": forces,
        "energy": float(lmp.get_thermo("pe")),
        "press_bar": float(lmp.get_thermo("press")),
    }


def lammps_run(atoms, calc, r_max: float, workdir: Path, md_steps: int = 0) -> dict:
    """LAMMPS on `atoms` through the production CPU inputs (data file + fix-external setup
    rendered into `workdir`), the model coupled by `fix external pf/callback` on 1 rank:
    forces, energy and pressure at step 0, then `md_steps` of NVE, timed."""
    atoms, type_map, data = lammps_input(atoms, workdir)
    setup = render_fix_external(workdir, "metal", str(data.resolve()), r_max)
    n = len(atoms)
    lmp = engines.load_lammps().lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
    lmp.file(str(setup))
    lmp.command("thermo_style custom step pe press")
    coupling = ModelCoupling(lmp, calc, type_map).attach()
    lmp.command("run 0")
    if coupling.error is not None:
        raise RuntimeError(f"the model callback failed: {coupling.error!r}")
    out = step0(lmp, n)
    if md_steps:
        lmp.commands_string("velocity all create 700.0 4928459 dist gaussian\nfix md all nve\n")
        t0 = time.perf_counter()
        lmp.command(f"run {md_steps}")
        out["md_seconds"] = time.perf_counter() - t0
    lmp.close()
    return out


def model_check(compiled: Path, structure: Path, device: str, r_max: float, bench: int = 0) -> dict:
    """Energy, forces and stress of the compiled model on `structure`, in Python and
    through LAMMPS; with `bench` > 0, also NVE steps/s on the structure replicated to
    about `bench` atoms (the throughput `bundle size` needs)."""
    atoms = read(structure)
    atoms.calc = None
    calc = load_calculator(str(compiled), device=device)
    probe = atoms.copy()
    probe.calc = calc
    energy, forces = float(probe.get_potential_energy()), probe.get_forces()
    press_bar = -float(np.trace(probe.get_stress(voigt=False))) / 3 * EV_A3_TO_BAR
    tag = device.replace(":", "")
    lmp = lammps_run(atoms, calc, r_max, Path(f"lammps-{tag}"))
    doc = {
        "device": device,
        "n_atoms": len(atoms),
        "energy_ev": energy,
        "forces_ev_a": forces.tolist(),
        "press_bar": press_bar,
        "lammps_energy_ev": lmp["energy"],
        "lammps_forces_ev_a": lmp["forces"].tolist(),
        "lammps_press_bar": lmp["press_bar"],
    }
    if bench:
        k = max(1, round((bench / len(atoms)) ** (1 / 3)))
        big = atoms.repeat((k, k, k))
        steps = 20
        run = lammps_run(big, calc, r_max, Path(f"lammps-bench-{tag}"), md_steps=steps)
        doc["bench"] = {
            "atoms": len(big),
            "steps": steps,
            "seconds": run["md_seconds"],
            "atom_steps_per_s": len(big) * steps / run["md_seconds"],
        }
    return doc


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bundle.verify model-check")
    ap.add_argument("--compiled", type=Path, required=True)
    ap.add_argument("--structure", type=Path, required=True)
    ap.add_argument("--r-max", type=float, required=True, help="the model's cutoff, Å")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bench", type=int, default=0, help="also time NVE on ~N atoms")
    a = ap.parse_args(argv)
    doc = model_check(a.compiled, a.structure, a.device, a.r_max, a.bench)
    a.out.write_text(json.dumps(doc) + "\n")
    print(f"energy {doc['energy_ev']:.8f} eV, LAMMPS {doc['lammps_energy_ev']:.8f} eV")
    return 0
