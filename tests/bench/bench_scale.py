"""Scale-out bench: LAMMPS throughput on 1 and 2 MPI ranks, and the sizing model against it.

Peer run: the same system on 1 rank in the same session. Figures: the 2-rank speedup
(ratio to the 1-rank peer), and how well `bundle size`'s scaling model (runbook.sizing),
fitted on three runs, predicts two runs it did not see (predicted / measured).
System: the Li2O buck/coul/long + PPPM toy of tests/test_multirank.py (CPU, the wheel's
MPI via the venv's mpiexec). Run as a worker: `mpiexec -n N python -m tests.bench.bench_scale SPEC`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

STEPS = 40
REPS = {"small": 4, "medium": 6, "large": 8}  # 768, 2592, 6144 atoms


def worker(spec_path: str) -> None:
    from bundle.core import engines

    spec = json.loads(Path(spec_path).read_text())
    lmp = engines.load_lammps().lammps(cmdargs=["-screen", "none", "-log", "none"])
    for line in spec["setup"]:
        lmp.command(line)
    lmp.command("run 5")  # setup, neighbour lists, PPPM plans: not timed
    t0 = time.perf_counter()
    lmp.command(f"run {spec['steps']} pre no post no")
    wall = time.perf_counter() - t0
    if lmp.extract_setting("world_rank") == 0:
        Path(spec["out"]).write_text(
            json.dumps(
                {"nprocs": lmp.extract_setting("world_size"), "atoms": lmp.get_natoms(), "s": wall}
            )
        )
    lmp.close()


def measure(ranks: int, reps: int, work: Path) -> dict:
    from bundle.core import engines
    from tests.test_multirank import li2o_setup

    tag = f"{ranks}r{reps}"
    spec, out = work / f"{tag}.json", work / f"{tag}.out.json"
    setup = li2o_setup(work / f"li2o{reps}.data", reps=reps)
    spec.write_text(json.dumps({"setup": setup, "steps": STEPS, "out": str(out)}))
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [engines.venv_bin("mpiexec"), "-n", str(ranks), sys.executable, "-m",
         "tests.bench.bench_scale", str(spec)],
        cwd=root, capture_output=True, text=True, timeout=900,
        env=dict(engines.mpirun_env(), OMP_NUM_THREADS="1"),
    )  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    res = json.loads(out.read_text())
    if res["nprocs"] != ranks:
        raise RuntimeError(f"asked for {ranks} ranks, LAMMPS ran on {res['nprocs']}")
    rate = res["atoms"] * STEPS / res["s"]
    return {"ranks": ranks, "atoms": res["atoms"], "wall_s": round(res["s"], 3), "rate": rate}


def model_throughput(model: Path, reps: int, work: Path, steps: int = 20) -> dict:
    """atom-steps/s of a compiled model driving LAMMPS through runbook.mdcoupling, 1 rank."""
    from bundle.core import engines
    from runbook.mdcoupling import ModelCoupling, load_calculator
    from tests.test_multirank import model_setup

    lmp = engines.load_lammps().lammps(cmdargs=["-screen", "none", "-log", "none"])
    for line in model_setup(work / f"li2o-model{reps}.data", reps=reps):
        lmp.command(line)
    coupling = ModelCoupling(lmp, load_calculator(str(model)), {1: "Li", 2: "O"}).attach()
    lmp.command("run 2")  # model load, first calls: not timed
    t0 = time.perf_counter()
    lmp.command(f"run {steps} pre no post no")
    wall = time.perf_counter() - t0
    n = lmp.get_natoms()
    lmp.close()
    if coupling.error is not None:
        raise RuntimeError(f"model callback failed: {coupling.error!r}")
    return {"atoms": n, "wall_s": round(wall, 3), "rate": n * steps / wall}


def run(work: Path) -> dict:
    from runbook import sizing

    runs = {(r, k): measure(r, n, work) for k, n in REPS.items() for r in (1, 2)}
    fit_on = [(1, "small"), (1, "medium"), (2, "medium")]
    dev = sizing.Device(
        "cpu",
        "li2o buck/coul/long pppm",
        8.0 - 1.0,  # pair cutoff 8 Å = r_max + the model's 1 Å skin
        "this bench",
        tuple(sizing.Point(k[0], runs[k]["atoms"], runs[k]["rate"]) for k in fit_on),
    )
    li2o_density = 12 / 4.61**3
    model = sizing.fit(dev, density=li2o_density)
    checks = {}
    for key in [(1, "large"), (2, "large")]:
        m = runs[key]
        predicted = m["atoms"] / model.step_s(m["atoms"], key[0])
        checks[f"{key[0]}rank_{m['atoms']}atoms"] = round(predicted / m["rate"], 3)
    label = {key: f"{key[0]}rank_{m['atoms']}" for key, m in runs.items()}
    return {
        "atom_steps_per_s": {label[key]: round(m["rate"]) for key, m in runs.items()},
        "speedup_2_vs_1_rank": {
            runs[(1, k)]["atoms"]: round(runs[(2, k)]["rate"] / runs[(1, k)]["rate"], 3)
            for k in REPS
        },
        "model_fit": {
            "t0_s": model.t0_s,
            "rate": model.rate,
            "halo_s_per_atom": model.halo_s_per_atom,
            "fitted_on": [label[key] for key in fit_on],
        },
        "model_predicted_over_measured": checks,
        "peer": "1-rank run of the same system, same session",
        "model_driven": _model_rows(work),
    }


def _model_rows(work: Path) -> dict | None:
    """With MLMD_SMOKE_RUN_DIR (a finished smoke-li2o run): the compiled Allegro model's
    throughput at two sizes, as rows for runbook/sizing's table (device `cpu`)."""
    import os

    run_dir = os.environ.get("MLMD_SMOKE_RUN_DIR")
    model = Path(run_dir or "/nonexistent") / "05_deploy" / "model.nequip.pt2"
    if not model.exists():
        return None
    return {f"reps{r}": model_throughput(model, r, work) for r in (2, 4)}


if __name__ == "__main__":
    worker(sys.argv[1])
