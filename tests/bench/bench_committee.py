"""Benchmark `committee` (issue 15): what on-the-fly uncertainty costs in MD on CPU.

A committee of N = 3 DeePMD models of the llzo-potential study (the run's own
`train_deepmd` model, seed 1, and two members trained here on the same data and input
with seeds 2 and 3: the committee stage's rule, one architecture, N seeds) evaluated
inside LAMMPS by `pair_style deepmd m1 m2 m3 out_freq 1 out_file F atomic`, against the
single model `pair_style deepmd m1`, on the same 1,856-atom Sigma5 bicrystal (bench_llzo's
cell), every atom mobile, NVT 700 K, 1 fs, one thread, both runs dumping `id type xu yu
zu` every step (what the deviation record needs). Reported: CPU seconds per MD step of
each (one thread: the load-independent cost; wall beside it), the ratio committee/single
against the target <= 1.1 x N, and the size on disk of the deviation record
(checks.deviation, compressed npz) made from the committee run, extrapolated to 1,000
frames of these 1,856 atoms.

The potential run: MLMD_POTENTIAL_RUN_DIR, or a fresh cpu run (bench_potential.study_run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from checks import deviation
from runbook import engine, files, loader
from tests.bench.bench_potential import DEEPMD_COEFF, UNDOPED_TYPES, lammps_on, timed_md

N_MEMBERS, STEPS, WARMUP = 3, 10, 2
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                               "DP_INTER_OP_PARALLELISM_THREADS")}  # fmt: skip


def _env() -> dict:
    from bundle.core import engines

    return engines.runtime_env(("deepmd",), os.environ | ONE_THREAD)


def train_member(src: Path, seed: int, folder: Path) -> tuple[Path, float]:
    """Another member: the run's train_deepmd input with every seed set to `seed`, on
    the stage's own converted data; `dp --tf train` then `dp --tf freeze`."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = json.loads((src / "input.json").read_text())
    doc["model"]["descriptor"]["seed"] = seed
    doc["model"]["fitting_net"]["seed"] = seed
    doc["training"]["seed"] = seed
    (folder / "input.json").write_text(json.dumps(doc, indent=1))
    if not (folder / "data").exists():
        (folder / "data").symlink_to((src / "data").resolve())
    t0 = time.perf_counter()
    for argv in (["dp", "--tf", "train", "input.json"], ["dp", "--tf", "freeze", "-o", "model.pb"]):
        out = subprocess.run(argv, cwd=folder, env=_env(), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr[-2000:]}")
    return folder / "model.pb", time.perf_counter() - t0


def committee_md(data: Path, models: list[Path], out: Path) -> dict:
    """(child) `pair_style deepmd` with one model or a committee, timed per step."""
    from bundle.core import engines

    names = " ".join(str(m) for m in models)
    extra = f" out_freq 1 out_file {out / 'model_devi.out'} atomic" if len(models) > 1 else ""
    lmp = lammps_on(data, [f"pair_style deepmd {names}{extra}", DEEPMD_COEFF,
                         f"dump d all custom 1 {out / 'traj.lammpstrj'} id type xu yu zu",
                         "dump_modify d sort id"])  # fmt: skip
    try:
        engines.require_deepmd_plugin(lmp)
        return timed_md(lmp, STEPS)
    finally:
        lmp.close()


def _child(data: Path, models: list[Path], out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tests.bench.bench_committee", str(data), str(out),
            *map(str, models)]  # fmt: skip
    r = subprocess.run(argv, env=_env(), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"committee-md exited {r.returncode}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def record_size(out: Path, timestep_ps: float = 0.001) -> dict:
    rec = deviation.from_lammps(out / "model_devi.out", out / "traj.lammpstrj", UNDOPED_TYPES,
                                timestep_ps, n_models=N_MEMBERS)  # fmt: skip
    path = deviation.save(out / "deviation.npz", rec)
    size = path.stat().st_size
    return {"frames": rec.n_frames, "atoms": rec.n_atoms, "bytes": size,
            "mb_per_1000_frames": round(size / rec.n_frames * 1000 / 1e6, 2),
            "max_deviation_ev_A": round(float(rec.frame_max.max()), 4)}  # fmt: skip


def run(work: Path) -> dict:
    from tests.bench import bench_llzo, bench_potential

    _, run_dir = bench_potential.study_run(work)
    ctx = engine.Context(loader.load("llzo-potential"), run_dir)
    src = ctx.dir_of("train_deepmd")
    models, train_s = [src / files.read_manifest(src)["result"]["model"]], []
    for seed in range(2, N_MEMBERS + 1):
        model, seconds = train_member(src, seed, work / f"member-{seed}")
        models.append(model)
        train_s.append(round(seconds, 1))
    data = bench_llzo._system(work)
    single = _child(data, models[:1], work / "single")
    committee = _child(data, models, work / "committee")
    pair = {"single": single, "committee": committee}
    per_step = {k: v["cpu_s"] / v["steps"] for k, v in pair.items()}  # one thread: CPU s
    ratio = per_step["committee"] / per_step["single"]
    return {
        "system": "Sigma5 (210) bicrystal, 1,856 atoms, every atom mobile (bench_llzo)",
        "members": [str(m) for m in models],
        "member_train_s": train_s,
        "single": single,
        "committee": committee,
        "cpu_seconds_per_step": {k: round(v, 4) for k, v in per_step.items()},
        "committee_over_single_wall": round(committee["wall_s"] / single["wall_s"], 2),
        "committee_over_single": round(ratio, 2),
        "target": f"<= 1.1 x N = {1.1 * N_MEMBERS:.1f}",
        "within_target": ratio <= 1.1 * N_MEMBERS,
        "deviation_record": record_size(work / "committee"),
        "load_avg_1min": os.getloadavg()[0],
    }


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit("usage: python -m tests.bench.bench_committee DATA OUT MODEL [MODEL ...]")
    out = committee_md(Path(sys.argv[1]), [Path(m) for m in sys.argv[3:]], Path(sys.argv[2]))
    print(json.dumps(out))
