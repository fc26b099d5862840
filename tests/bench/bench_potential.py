"""Benchmark `potential`: the cpu profile of `llzo-potential` end to end, pw.x cost per
SCF per structure family at the cpu settings, and the selection's cost.

1. The study run fresh into the work folder (MLMD_POTENTIAL_RUN_DIR reuses a run and
   reports its recorded stage times): wall and child-CPU seconds per stage, the load.
2. pw.x per SCF, grouped by the frame's `family`: the stage's timings.json (wall, and
   CPU seconds of pw.x + mpirun from the kernel: the load-independent cost), pw.x's own
   `PWSCF ... WALL` line, atoms, valence electrons, k-points, SCF iterations.
3. Selection: pooled symmetry functions of every candidate and PCA + FPS, timed here in
   one process (seconds and microseconds per atom), beside what the stage recorded.
4. Model MD: the study's two models, the Allegro model through `fix external` (the
   llzo-gb cpu-allegro path, runbook.llzo.md) and the DeePMD model through `pair_style
   deepmd` (a child process with DeePMD's loader path), against the classical baseline
   (Buckingham + PPPM, the llzo-gb cpu profile's potential) on the same 1,856-atom Sigma5
   bicrystal (bench_llzo's cell), every atom mobile, NVT 700 K, 1 fs, one thread each:
   atom-steps per second of wall and of the process's CPU, and classical/model ratios.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from ase.io import read

from runbook import engine, files, loader, modelcard
from runbook.llzo import TYPE_IDS
from runbook.potential import choose, descriptors, selection
from runbook.potential.config import SelectConfig

# bench_llzo's bicrystal is undoped: LAMMPS types 1-4 (runbook.llzo.TYPE_IDS)
UNDOPED_TYPES = {t: s for s, t in TYPE_IDS.items() if t <= 4}
DEEPMD_COEFF = "pair_coeff * * " + " ".join(UNDOPED_TYPES[t] for t in sorted(UNDOPED_TYPES))
MARK_TIME = re.compile(r"PWSCF\s+:\s+(.+?) CPU\s+(.+?) WALL")
MARK_TIME_PART = re.compile(r"([\d.]+)([hms])")
MARK_ELECTRONS = re.compile(r"number of electrons\s+=\s+([\d.]+)")
MARK_KPOINTS = re.compile(r"number of k points=\s+(\d+)")


def study_run(work: Path) -> tuple[dict, Path]:
    study = loader.load("llzo-potential")
    reused = os.environ.get("MLMD_POTENTIAL_RUN_DIR")
    run = Path(reused or work / "potential")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    engine.run(study, run, echo=lambda s: None)
    total = time.perf_counter() - t0
    ctx = engine.Context(study, run)
    stages = {}
    for name in study.stages:
        m = files.read_manifest(ctx.dir_of(name))
        stages[name] = {"wall_s": m["wall_s"], "cpu_s": m.get("cpu_s")}
    return {
        "total_wall_s": None if reused else round(total, 1),
        "sum_stage_wall_s": round(sum(v["wall_s"] for v in stages.values()), 1),
        "stages": stages,
        "reused_run": reused,
        "load_avg_1min": {"start": load0, "end": os.getloadavg()[0]},
    }, run


def qe_seconds(text: str) -> float:
    """pw.x's clock format: `12.34s`, `2m35.10s`, `1h 5m` -> seconds."""
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(v) * scale[u] for v, u in MARK_TIME_PART.findall(text))


def _mean(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.mean(v)), 1) if v else None


def scf_cost(run: Path) -> dict:
    """pw.x's own CPU and WALL per SCF, by structure family."""
    ctx = engine.Context(loader.load("llzo-potential"), run)
    dft = ctx.dir_of("dft")
    frames = read(ctx.dir_of("select") / "structures.extxyz", index=":")
    tfile = dft / "timings.json"  # written by runbook.potential.stages.Dft
    timings = {r["log"]: r for r in json.loads(tfile.read_text())} if tfile.exists() else {}
    by: dict[str, list[dict]] = defaultdict(list)
    for i, a in enumerate(frames):
        text = (dft / f"pw-{i:03d}.out").read_text(errors="replace")
        t = MARK_TIME.search(text)
        it = re.search(r"convergence has been achieved in\s+(\d+)", text)
        by[str(a.info["family"])].append({
            "atoms": len(a),
            "electrons": float(MARK_ELECTRONS.search(text).group(1)),
            "k_points": int(MARK_KPOINTS.search(text).group(1)),
            "gamma": "gamma-point specific algorithms are used" in text,
            "iterations": int(it.group(1)) if it else None,
            "pw_wall_s": qe_seconds(t.group(2)) if t else None,
            "wall_s": timings.get(f"pw-{i:03d}.out", {}).get("wall_s"),
            "cpu_s": timings.get(f"pw-{i:03d}.out", {}).get("cpu_s"),
        })  # fmt: skip
    out = {}
    for fam, rows in sorted(by.items()):
        out[fam] = {
            "frames": len(rows),
            "atoms": sorted({r["atoms"] for r in rows}),
            "electrons": sorted({r["electrons"] for r in rows}),
            "k_points": sorted({r["k_points"] for r in rows}),
            "gamma_tricks": all(r["gamma"] for r in rows),
            "iterations_mean": float(np.mean([r["iterations"] or 0 for r in rows])),
            "wall_s_per_scf": _mean([r["wall_s"] for r in rows]),
            "cpu_s_per_scf_2_ranks": _mean([r["cpu_s"] for r in rows]),
            "pw_wall_s_per_scf": round(float(np.mean([r["pw_wall_s"] or 0 for r in rows])), 1),
        }
    return out


def selection_cost(run: Path) -> dict:
    study = loader.load("llzo-potential")
    cfg = SelectConfig.model_validate(
        {k: v for k, v in study.blocks["select"].items() if k != "kind"}
    )
    ctx = engine.Context(study, run)
    frames = read(ctx.dir_of("sample") / "candidates.extxyz", index=":")
    sf = choose.symmetry_functions(list(study.species), cfg.descriptor)
    t0 = time.perf_counter()
    x = np.array([descriptors.pooled(a, sf) for a in frames])
    t1 = time.perf_counter()
    classes = [str(a.info["env_class"]) for a in frames]
    selection.select(x, classes, cfg.quota, cfg.variance, cfg.max_components)
    t2 = time.perf_counter()
    atoms = sum(len(a) for a in frames)
    recorded = files.read_manifest(ctx.dir_of("select"))["result"]["seconds"]
    return {
        "candidates": len(frames),
        "atoms": atoms,
        "features_per_structure": int(x.shape[1]),
        "descriptors_s": round(t1 - t0, 3),
        "descriptors_us_per_atom": round(1e6 * (t1 - t0) / atoms, 1),
        "pca_fps_s": round(t2 - t1, 4),
        "stage_recorded_s": recorded,
        "load_avg_1min": os.getloadavg()[0],
    }


MODEL_STEPS, CLASSICAL_STEPS = 10, 200


def timed_md(lmp, steps: int, model_seconds=lambda: 0.0) -> dict:
    """NVT at 700 K after 2 warm-up steps; wall and process-CPU seconds of `steps` steps
    (and of them, the seconds spent in the model, from `model_seconds()`)."""
    lmp.commands_string(
        "timestep 0.001\nvelocity all create 700 4 dist gaussian\n"
        "fix nvt all nvt temp 700 700 0.1\nrun 2"
    )
    w0, c0, m0 = time.perf_counter(), time.process_time(), model_seconds()
    lmp.command(f"run {steps} pre no post no")
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = lmp.get_natoms()
    return {"atoms": n, "steps": steps, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "model_s": round(model_seconds() - m0, 3),
            "atom_steps_per_s_wall": round(n * steps / wall, 1),
            "atom_steps_per_s_cpu": round(n * steps / cpu, 1)}  # fmt: skip


def lammps_on(data: Path, lines: list[str]):
    from bundle.core import engines

    lmp = engines.load_lammps().lammps(cmdargs=["-log", "none", "-screen", "none"])
    lmp.commands_string(
        f"units metal\natom_style charge\nread_data {data}\nneighbor 2.0 bin\n" + "\n".join(lines)
    )
    return lmp


def _classical(data: Path) -> dict:
    from runbook.llzo import potential

    lmp = lammps_on(data, potential.lammps_lines(potential.load()))
    try:
        return timed_md(lmp, CLASSICAL_STEPS)
    finally:
        lmp.close()


def _allegro(d: Path, data: Path) -> dict:
    """`d`: the run's deploy stage folder."""
    from runbook.llzo import md

    card = modelcard.load(d / modelcard.FILENAME)
    lmp = lammps_on(
        data, md.model_lines(SimpleNamespace(engine="external", r_max=card.r_max_angstrom), 4)
    )
    spec = {"model": str(d / files.read_manifest(d)["result"]["compiled"]),
            "manifest": str(d / modelcard.FILENAME),
            "type_map": {str(t): s for t, s in UNDOPED_TYPES.items()}}  # fmt: skip
    try:
        coupling, _ = md.couple(lmp, spec, threads=1)
        return timed_md(lmp, MODEL_STEPS, lambda: coupling.model_seconds) | {"model": spec["model"]}
    finally:
        lmp.close()


def _deepmd(d: Path, data: Path) -> dict:
    """`d`: the run's train_deepmd stage folder. In a child process started with DeePMD's
    loader path (engines.runtime_env), one thread for TensorFlow's op pools and OpenMP."""
    from bundle.core import engines

    model = d / files.read_manifest(d)["result"]["model"]
    one = {k: "1" for k in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                            "DP_INTER_OP_PARALLELISM_THREADS")}  # fmt: skip
    env = engines.runtime_env(("deepmd",), os.environ | one)
    argv = [sys.executable, "-m", "tests.bench.bench_potential", "deepmd-md", str(data), str(model)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"deepmd-md exited {out.returncode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"model": str(model)}


def deepmd_md(data: Path, model: Path) -> dict:
    """(child) `pair_style deepmd` on the LLZO types 1-4 of `data`, timed."""
    from bundle.core import engines

    lmp = lammps_on(data, [f"pair_style deepmd {model}", DEEPMD_COEFF])
    try:
        engines.require_deepmd_plugin(lmp)
        return timed_md(lmp, MODEL_STEPS)
    finally:
        lmp.close()


def model_md(work: Path, run: Path) -> dict:
    from tests.bench import bench_llzo

    ctx = engine.Context(loader.load("llzo-potential"), run)
    data = bench_llzo._system(work)
    rates = {
        "classical_buckingham_pppm": _classical(data),
        "allegro_fix_external": _allegro(ctx.dir_of("deploy"), data),
        "deepmd_pair_style": _deepmd(ctx.dir_of("train_deepmd"), data),
    }
    base = rates["classical_buckingham_pppm"]["atom_steps_per_s_cpu"]
    return {
        "system": "Sigma5 (210) bicrystal, single-atom contact removal, undoped (bench_llzo)",
        "threads": 1,
        **rates,
        "classical_over_model_cpu": {
            k: round(base / v["atom_steps_per_s_cpu"], 1) for k, v in rates.items() if "model" in v
        },
        "load_avg_1min": os.getloadavg()[0],
    }


def run(work: Path) -> dict:
    loop, folder = study_run(work)
    return {
        "study": loop,
        "pw_per_scf_by_family": scf_cost(folder),
        "selection": selection_cost(folder),
        "model_md": model_md(work, folder),
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["deepmd-md"] or len(sys.argv) != 4:
        raise SystemExit("usage: python -m tests.bench.bench_potential deepmd-md DATA MODEL")
    print(json.dumps(deepmd_md(Path(sys.argv[2]), Path(sys.argv[3]))))
