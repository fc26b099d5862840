"""The LAMMPS driver of the LLZO study: NVT MD with the framework frozen (Li only, the
published protocol) or mobile (every atom; optionally NPT with the box free along z).

Three steps, kept apart:
- `render(params, stage_dir, data_in)`: writes `in.lammps` from
  `templates/lammps/llzo_classical.in.j2` (cpu: Buckingham + PPPM; with the framework
  frozen, frame-frame pairs excluded) or `llzo_allegro_kokkos.in.j2` (h200: the delivered
  Allegro model, Kokkos). It reads the input data file for the number of atom types and
  for per-atom charges that differ from their type's usual one (a reduced cation, a
  neutral inserted Li: `lmpdata.charge_overrides`), which the classical input keeps.
- `python -m runbook.llzo.md in.lammps`: runs the input through the LAMMPS Python module
  (`bundle.core.engines.load_lammps`), with OpenMP threads when OMP_NUM_THREADS > 1 and on
  as many MPI ranks as the launcher started; writes `md.json` (rank 0).
- `collect(stage_dir)`: `md.json` + the thermo table of `log.lammps` -> `MDResult`.

Outputs of a run: `final.data` (positions, image flags, velocities: the next stage's
input), `traj.lammpstrj` when dumping (Li only: `id type xu yu zu`, sorted by id),
`log.lammps`, `md.json`.

The log is read by `runbook.lammpslog` (its contract: LAMMPS 2025-07-22 thermo tables).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bundle.core import render as jrender
from bundle.core.errors import EngineError
from runbook import lammpslog
from runbook.llzo import TYPE_IDS, lmpdata, potential

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
    framework: str = "frozen"  # frozen (Li-only MD) | mobile (every atom)
    barostat_z: bool = False  # mobile only: NPT with the box free along z (p_z = 0)
    pdamp_fs: float = 1000.0
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
    if p.barostat_z and p.framework == "frozen":
        raise ValueError("a barostat needs the framework mobile")
    data = lmpdata.read_data(stage_dir / data_in)
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
        framework=p.framework,
        barostat_z=p.barostat_z,
        pdamp_fs=p.pdamp_fs,
    )
    if p.engine == "allegro":
        names = [s for s, _ in sorted(TYPE_IDS.items(), key=lambda kv: kv[1])][: data.n_types]
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
            potential_lines=potential.lammps_lines(pset, p.cutoff, p.kspace_accuracy, data.n_types),
            charge_lines=charge_lines(data, pset),
            **common,
        )
    path = stage_dir / "in.lammps"
    path.write_text(text)
    (stage_dir / "md_params.json").write_text(
        json.dumps(asdict(p), indent=2, sort_keys=True) + "\n"
    )
    return path


def charge_lines(data: lmpdata.DataFile, pset: potential.PotentialSet) -> list[str]:
    """`set atom ID charge q` for atoms whose charge differs from their type's usual one."""
    types = dict(zip(data.ids.tolist(), data.types.tolist(), strict=True))
    sym = lmpdata.SYMBOL_OF_TYPE
    return [f"set atom {i} charge {pset.charges[sym[types[i]]] + dq:.6f}"
            for i, dq in sorted(lmpdata.charge_overrides(data).items())]  # fmt: skip


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


def collect(stage_dir: Path) -> MDResult:
    """The segment's numbers from `log.lammps` (runbook.lammpslog) and `md.json`."""
    log = stage_dir / "log.lammps"
    if not (stage_dir / "final.data").exists():
        raise EngineError(f"{stage_dir}: LAMMPS did not finish (no final.data); see {log}")
    mdj = stage_dir / "md.json"  # written by the Python driver (cpu), not by `lmp` (h200)
    info = json.loads(mdj.read_text()) if mdj.exists() else {}
    text = log.read_text(errors="replace") if log.exists() else ""
    blocks, loops = lammpslog.thermo_blocks(text), lammpslog.loop_times(text)
    if not blocks or not loops or "c_tli" not in blocks[-1]:
        raise EngineError(f"{log}: no thermo table with c_tli / no loop time")
    t = blocks[-1]["c_tli"]
    loop_s, nprocs, steps, atoms = loops[-1]
    traj = stage_dir / "traj.lammpstrj"
    frames = traj.read_text().count("ITEM: TIMESTEP") if traj.exists() else 0
    return MDResult(
        steps=steps,
        loop_s=loop_s,
        steps_per_s=round(steps / loop_s, 2) if loop_s else 0.0,
        nprocs=nprocs,
        threads=int(info.get("threads", 1)),
        atoms=atoms,
        temperature_mean_K=round(float(t[len(t) // 2 :].mean()), 2),
        frames=frames,
    )


def run_input(path: Path) -> dict:
    """Run a LAMMPS input file in its folder; OpenMP threads from OMP_NUM_THREADS."""
    from bundle.core import engines

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
