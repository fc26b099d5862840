"""`python -m bundle.verify deepmd-check ...`: the engines phase's DeePMD worker.

The shipped frozen DeePMD-kit model on the stored structure, evaluated twice: in
DeePMD-kit's Python (`DeepPot`: energy, forces, virial) and through LAMMPS `pair_style
deepmd` driven by the input production renders (runbook.deepmd.md.render_setup, i.e.
`templates/lammps/setup-deepmd.lmp.j2`, and the md stage's data file). TensorFlow and the
LAMMPS plugin need DeePMD's loader path before Python starts: the caller runs this as a
command with `needs=("deepmd",)` (bundle.core.engines.deepmd_env).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from ase.io import read

from bundle.core import engines
from bundle.core.errors import InputError
from bundle.verify import worker
from bundle.verify.worker import EV_A3_TO_BAR
from runbook.deepmd.evaluate import deeppot_evaluator
from runbook.deepmd.md import DeepmdMd, render_setup


def python_eval(model: Path, atoms) -> dict:
    """DeepPot's energy (eV), forces (eV/Å) and pressure (bar, from the virial)."""
    try:
        e, f, v = deeppot_evaluator(str(model))(atoms)
    except ValueError as err:
        raise InputError(model, "type_map", str(err)) from None
    press = float(np.trace(v)) / (3 * atoms.get_volume())
    return {"energy_ev": e, "forces_ev_a": f, "press_bar": press * EV_A3_TO_BAR}


def lammps_eval(model: Path, atoms, type_map: dict[int, str], workdir: Path) -> dict:
    """LAMMPS `pair_style deepmd` at step 0 through the production setup, one rank, on the
    data file `lammps_input` wrote into `workdir`."""
    setup = render_setup(workdir, units="metal", model=str(model.resolve()), committee=[],
                         type_names=list(type_map.values()), cfg=DeepmdMd(),
                         where="bundle verify")  # fmt: skip
    here = Path.cwd()
    os.chdir(workdir)  # the setup names data.lmp relative to its folder
    try:
        lmp = engines.load_lammps().lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
        engines.require_deepmd_plugin(lmp)
        lmp.file(setup.name)
        lmp.command("thermo_style custom step pe press")
        lmp.command("run 0")
        out = worker.step0(lmp, len(atoms))
        lmp.close()
    finally:
        os.chdir(here)
    return {"lammps_energy_ev": out["energy"], "lammps_forces_ev_a": out["forces"],
            "lammps_press_bar": out["press_bar"]}  # fmt: skip


def deepmd_check(model: Path, structure: Path) -> dict:
    atoms, type_map, _ = worker.lammps_input(read(structure), Path("lammps-deepmd"), structure)
    atoms.calc = None
    doc = {"device": "cpu", "n_atoms": len(atoms)}
    doc |= python_eval(model, atoms) | lammps_eval(model, atoms, type_map, Path("lammps-deepmd"))
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in doc.items()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bundle.verify deepmd-check")
    ap.add_argument("--model", type=Path, required=True, help="frozen DeePMD-kit model (.pb)")
    ap.add_argument("--structure", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    doc = deepmd_check(a.model, a.structure)
    a.out.write_text(json.dumps(doc) + "\n")
    print(f"energy {doc['energy_ev']:.8f} eV, LAMMPS {doc['lammps_energy_ev']:.8f} eV")
    return 0
