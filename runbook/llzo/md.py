"""The LAMMPS driver of the LLZO study: Li-only NVT MD with the framework frozen.

Three steps, kept apart:
- `render(params, stage_dir, data_in)`: pure; writes `in.lammps` from
  `templates/lammps/llzo_classical.in.j2` (cpu: Buckingham + PPPM, frame-frame pairs
  excluded) or `llzo_allegro_kokkos.in.j2` (h200: the delivered Allegro model, Kokkos).
- `python -m runbook.llzo.md in.lammps`: runs the input through the LAMMPS Python module
  (`bundle.engines.load_lammps`), with OpenMP threads when OMP_NUM_THREADS > 1 and on
  as many MPI ranks as the launcher started; writes `md.json` (rank 0).
- `collect(stage_dir)`: `md.json` + the thermo table of `log.lammps` -> `MDResult`.

Outputs of a run: `final.data` (positions, image flags, velocities: the next stage's
input), `traj.lammpstrj` when dumping (Li only: `id type xu yu zu`, sorted by id),
`log.lammps`, `md.json`.

Log contract (LAMMPS 2025-07-22): the thermo table starts at a line whose first word is
`Step`, rows are numbers, and it ends at `Loop time of <s> on <P> procs for <N> steps`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bundle.errors import EngineError
from runbook import render as jrender
from runbook.llzo import TYPE_IDS, potential

CLASSICAL_TEMPLATE = "lammps/llzo_classical.in.j2"
ALLEGRO_TEMPLATE = "lammps/llzo_allegro_kokkos.in.j2"


@dataclass(frozen=True)
class MDParams:
    """One MD segment. Times in fs, temperatures in K, lengths in Å."""

    temperature_K: float
    steps: int
    timestep_fs: float = 1.0
    tdamp_fs: float = 100.0
    velocity_seed: int | None = None  # draw Li velocities (first segment); None: keep
    dump_every: int = 0  # steps between trajectory frames; 0: no trajectory
    thermo_every: int = 500
    skin: float = 2.0
    # classical baseline (cpu)
    potential_file: str = str(potential.DEFAULT_FILE)
    li_o_scale: float = 1.0  # multiplies the Li-O Buckingham energy (perturbation runs)
    cutoff: float = 8.0
    kspace_accuracy: float = 1e-4
    # Allegro (h200)
    engine: str = "classical"  # classical | allegro
    model: str = ""
    gpus: int = 1


def render(p: MDParams, stage_dir: Path, data_in: str) -> Path:
    """Write `in.lammps` for segment `p` reading `data_in` (a path relative to the stage)."""
    common = dict(
        data_in=data_in,
        data_out="final.data",
        temperature_K=p.temperature_K,
        steps=p.steps,
        timestep_fs=p.timestep_fs,
        tdamp_fs=p.tdamp_fs,
        velocity_seed=p.velocity_seed,
        dump_every=p.dump_every,
        thermo_every=p.thermo_every,
        skin=p.skin,
    )
    if p.engine == "allegro":
        names = [s for s, _ in sorted(TYPE_IDS.items(), key=lambda kv: kv[1])]
        text = jrender.render_text(
            ALLEGRO_TEMPLATE, model=p.model, type_names=names, gpus=p.gpus, **common
        )
    else:
        pset = potential.load(Path(p.potential_file))
        if p.li_o_scale != 1.0:
            pset = pset.scaled("Li", "O", p.li_o_scale)
        text = jrender.render_text(
            CLASSICAL_TEMPLATE,
            potential_name=pset.name,
            potential_file=Path(p.potential_file).name,
            potential_lines=potential.lammps_lines(pset, p.cutoff, p.kspace_accuracy),
            **common,
        )
    path = stage_dir / "in.lammps"
    path.write_text(text)
    (stage_dir / "md_params.json").write_text(
        json.dumps(asdict(p), indent=2, sort_keys=True) + "\n"
    )
    return path


@dataclass(frozen=True)
class MDResult:
    steps: int
    loop_s: float
    steps_per_s: float
    nprocs: int
    threads: int
    atoms: int
    temperature_mean_K: float  # Li temperature over the second half of the thermo rows
    frames: int  # trajectory frames written (0 without a dump)


def thermo_table(log: Path) -> tuple[list[str], list[list[float]], dict]:
    """(columns, rows, loop) of the last run in a LAMMPS log (contract in the docstring)."""
    cols: list[str] = []
    rows: list[list[float]] = []
    loop: dict = {}
    in_table = False
    for line in log.read_text().splitlines():
        w = line.split()
        if w and w[0] == "Step":
            cols, rows, in_table = w, [], True
        elif w[:3] == ["Loop", "time", "of"]:
            loop = {"loop_s": float(w[3]), "nprocs": int(w[5]), "steps": int(w[8]),
                    "atoms": int(w[11])}  # fmt: skip
            in_table = False
        elif in_table and w:
            try:
                rows.append([float(x) for x in w])
            except ValueError:
                in_table = False
    return cols, rows, loop


def collect(stage_dir: Path) -> MDResult:
    log = stage_dir / "log.lammps"
    if not (stage_dir / "md.json").exists() or not (stage_dir / "final.data").exists():
        raise EngineError(f"{stage_dir}: LAMMPS did not finish; see {log}")
    info = json.loads((stage_dir / "md.json").read_text())
    cols, rows, loop = thermo_table(log)
    if not rows or not loop:
        raise EngineError(f"{log}: no thermo table / loop time found")
    tcol = cols.index("c_tli")
    half = rows[len(rows) // 2 :]
    traj = stage_dir / "traj.lammpstrj"
    frames = traj.read_text().count("ITEM: TIMESTEP") if traj.exists() else 0
    return MDResult(
        steps=loop["steps"],
        loop_s=loop["loop_s"],
        steps_per_s=round(loop["steps"] / loop["loop_s"], 2) if loop["loop_s"] else 0.0,
        nprocs=loop["nprocs"],
        threads=int(info.get("threads", 1)),
        atoms=loop["atoms"],
        temperature_mean_K=round(sum(r[tcol] for r in half) / len(half), 2),
        frames=frames,
    )


def run_input(path: Path) -> dict:
    """Run a LAMMPS input file in its folder; OpenMP threads from OMP_NUM_THREADS."""
    from bundle import engines

    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    args = ["-log", "log.lammps", "-screen", "none"]
    if threads > 1:
        args += ["-sf", "omp", "-pk", "omp", str(threads)]
    lmp = engines.load_lammps().lammps(cmdargs=args)
    t0 = time.perf_counter()
    try:
        lmp.file(str(path))
    except Exception as e:  # the lammps module raises plain Exceptions on input errors
        raise EngineError(f"LAMMPS failed on {path}: {e}; see log.lammps") from None
    info = {
        "wall_s": round(time.perf_counter() - t0, 3),
        "threads": threads,
        "nprocs": lmp.extract_setting("world_size"),
        "rank": lmp.extract_setting("world_rank"),
        "lammps_version": lmp.version(),
    }
    lmp.close()
    return info


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m runbook.llzo.md in.lammps")
    path = Path(args[0]).resolve()
    os.chdir(path.parent)
    info = run_input(path)
    if info.pop("rank") == 0:
        Path("md.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
