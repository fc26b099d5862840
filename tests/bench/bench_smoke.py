"""Benchmark `smoke`: the smoke loop per stage; `fix external` MD vs a bare model call;
a 96-atom Li2O SCF with OpenBLAS vs Debian's reference BLAS.

1. `smoke-li2o` run fresh into the work folder: wall and child-CPU seconds per stage
   (CPU beside wall because the box may be shared). MLMD_SMOKE_RUN_DIR reuses a run.
2. Same 192-atom structure, same compiled model: LAMMPS steps through `fix external`
   (loop time / step) against `calc.calculate` alone (time / call); target ratio ≤ 1.2.
3. pw.x, 1 rank, one SCF of a rattled 2×2×2 Li2O supercell (96 atoms) at the smoke
   study's DFT settings, first with the default BLAS (the `libblas.so.3` alternative =
   OpenBLAS serial), then with `LD_LIBRARY_PATH` pointing at the reference BLAS/LAPACK
   (libblas3/liblapack3). What is loaded is read from /proc/PID/maps while pw.x runs,
   not assumed; the two energies must agree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from ase.calculators.calculator import all_changes

from bundle.core import engines, paths, render
from runbook import crystal, engine, files, lammpslog, loader, mdcoupling, qe
from runbook.stage import Context
from runbook.stages.dft import DftConfig
from runbook.stages.md import write_data

REFERENCE_BLAS = ["/usr/lib/x86_64-linux-gnu/blas", "/usr/lib/x86_64-linux-gnu/lapack"]
TYPE_MAP = {1: "Li", 2: "O"}


def smoke_loop(work: Path) -> tuple[dict, Path]:
    """A fresh run (MLMD_SMOKE_RUN_DIR reuses a finished one: its recorded stage times)."""
    study = loader.load("smoke-li2o")
    reused = os.environ.get("MLMD_SMOKE_RUN_DIR")
    run = Path(reused or work / "smoke")
    t0 = time.perf_counter()
    engine.run(study, run, echo=lambda s: None)
    total = time.perf_counter() - t0
    stages = {}
    for name in study.stages:
        m = files.read_manifest(Context(study, run).dir_of(name))
        stages[name] = {"wall_s": m["wall_s"], "cpu_s": m.get("cpu_s")}
    doc = {
        "total_wall_s": round(total, 1) if not reused else None,
        "sum_stage_wall_s": round(sum(v["wall_s"] for v in stages.values()), 1),
        "stages": stages,
        "reused_run": reused,
        "load_avg_1min": os.getloadavg()[0],
    }
    return doc, run


def fix_external_overhead(run: Path, work: Path, steps: int = 10, rounds: int = 8) -> dict:
    """Rounds alternate `steps` bare calls and `steps` MD steps so that both see the same
    machine load (the box may be shared); per-round ratios, median reported."""
    model = run / "05_deploy" / "model.nequip.pt2"
    atoms = crystal.supercell(crystal.antifluorite("Li", "O", 4.61), [2, 2, 4])
    atoms.rattle(0.05, seed=1)
    atoms.wrap()
    calc = mdcoupling.load_calculator(str(model))
    folder = work / "overhead"
    folder.mkdir()
    write_data(folder / "data.lmp", atoms, TYPE_MAP, "atomic", "bench")
    render.render_to(
        folder / "setup.lmp",
        "lammps/setup-fix-external.lmp.j2",
        units="metal",
        data_file=str(folder / "data.lmp"),
        r_max=4.0,
    )
    log = str(folder / "log.lammps")
    lmp = engines.load_lammps().lammps(cmdargs=["-log", log, "-screen", "none"])
    lmp.file(str(folder / "setup.lmp"))
    mdcoupling.ModelCoupling(lmp, calc, TYPE_MAP).attach()
    lmp.commands_string("velocity all create 600 7 dist gaussian\nfix nve all nve\nrun 2")
    probe = atoms.copy()
    bare, md = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):  # fresh positions each call, as in MD
            probe.positions = atoms.positions + 1e-3
            calc.calculate(probe, ["energy", "forces", "stress"], all_changes)
        bare.append((time.perf_counter() - t0) / steps)
        lmp.command(f"run {steps}")
        md.append(lammpslog.loop_times((folder / "log.lammps").read_text())[-1][0] / steps)
    lmp.close()
    ratios = [m / b for m, b in zip(md, bare, strict=True)]
    return {
        "atoms": len(atoms),
        "md_step_s_median": round(float(np.median(md)), 5),
        "bare_model_call_s_median": round(float(np.median(bare)), 5),
        "ratio_step_over_call_median": round(float(np.median(ratios)), 3),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "target_ratio_max": 1.2,
        "steps_per_s_median": round(1 / float(np.median(md)), 2),
        "torch_threads": torch.get_num_threads(),
        "method": f"{rounds} interleaved rounds of {steps} bare calls then {steps} MD steps; "
        "the ratio is taken per round (same machine load) and its median reported",
    }


def pw_cpu_seconds(text: str) -> float | None:
    """pw.x's own `PWSCF : <t> CPU <t> WALL` line (t like `1h 2m`, `2m 3.28s`, `3.27s`)."""
    m = re.search(r"PWSCF\s*:\s*(.+?)\s+CPU", text)
    if not m:
        return None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(v) * units[u] for v, u in re.findall(r"([\d.]+)([hms])", m.group(1)))


def _pw_once(folder: Path, name: str, env: dict) -> tuple[float, float, list[str]]:
    """(wall s, energy Ry, BLAS/LAPACK libraries mapped into the running pw.x)."""
    proc = subprocess.Popen(
        [engines.program("pw.x"), "-in", "pw96.in"],
        cwd=folder,
        env=env,
        stdout=open(folder / f"{name}.out", "w"),
        stderr=subprocess.STDOUT,
    )
    libs: set[str] = set()

    def watch() -> None:
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/maps").read_text().splitlines():
                    path = line.split()[-1]
                    if "blas" in path or "lapack" in path:
                        libs.add(path)
            except OSError:
                pass
            time.sleep(1.0)

    t0 = time.perf_counter()
    th = threading.Thread(target=watch)
    th.start()
    proc.wait()
    wall = time.perf_counter() - t0
    th.join()
    r = qe.read_pw_output(folder / f"{name}.out", 96)
    return wall, r.energy_ry, sorted(libs)


def blas_scf(work: Path) -> dict:
    block = yaml.safe_load((paths.root() / "runbook/studies/smoke-li2o.yaml").read_text())["dft"]
    cfg = DftConfig(**{**block, "conv_thr_per_atom_ry": 1e-9})
    folder = work / "scf96"
    (folder / "pseudo").mkdir(parents=True)
    for f in cfg.pseudopotentials.values():
        shutil.copyfile(Path(cfg.pseudo_dir) / f, folder / "pseudo" / f)
    atoms = crystal.supercell(crystal.antifluorite("Li", "O", 4.61), [2, 2, 2])
    atoms.rattle(0.05, seed=2)
    species = {s: cfg.pseudopotentials[s] for s in ("Li", "O")}
    ctxt = qe.input_context(atoms, species, cfg, "pw96")
    render.render_to(folder / "pw96.in", "qe/pw-scf.in.j2", **ctxt)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    w_open, e_open, libs_open = _pw_once(folder, "openblas", env)
    libs = zip(REFERENCE_BLAS, ("libblas.so.3", "liblapack.so.3"), strict=True)
    if not all(Path(d, n).exists() for d, n in libs):
        missing = "not installed (Debian libblas3 liblapack3)"
        return {"openblas_s": round(w_open, 1), "reference_blas": missing}
    ref_env = dict(env, LD_LIBRARY_PATH=":".join(REFERENCE_BLAS))
    w_ref, e_ref, libs_ref = _pw_once(folder, "reference", ref_env)
    cpu_open = pw_cpu_seconds((folder / "openblas.out").read_text())
    cpu_ref = pw_cpu_seconds((folder / "reference.out").read_text())
    return {
        "atoms": 96,
        "openblas_s": round(w_open, 1),
        "reference_blas_s": round(w_ref, 1),
        "speedup_openblas": round(w_ref / w_open, 2),
        "openblas_cpu_s": cpu_open,
        "reference_blas_cpu_s": cpu_ref,
        "speedup_openblas_cpu": round(cpu_ref / cpu_open, 2) if cpu_open and cpu_ref else None,
        "energy_difference_ry": abs(e_open - e_ref),
        "libraries_openblas_run": libs_open,
        "libraries_reference_run": libs_ref,
        "switch": "LD_LIBRARY_PATH=" + ":".join(REFERENCE_BLAS),
    }


def run(work: Path) -> dict:
    loop, smoke_run = smoke_loop(work)
    return {
        "smoke_loop": loop,
        "fix_external_vs_bare_model": fix_external_overhead(smoke_run, work),
        "scf_96_atoms_blas": blas_scf(work),
    }
