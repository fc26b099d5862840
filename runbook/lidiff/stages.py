"""The stages of the `li-diffusion` study (plug-in kinds `runbook.lidiff.stages:<Class>`).

    build -> md (temperatures x seeds: NVT equilibration, NVE production) -> analyze
          -> check -> report

`md` renders one folder per (temperature, seed), `runs/T<T>_s<seed>/` (setup.lmp,
run.lmp, run.json), and one command per run; `analyze` turns the Li trajectories into
D(T), Arrhenius and the Nernst-Einstein conductivity (runbook.lidiff.analysis); `check`
is the built-in `bundle check` against a reference; `report` writes report.md with the MSD
and Arrhenius figures. Blocks may carry `by_profile` overrides (merged by runbook.loader).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bundle.core import render
from bundle.core.errors import EngineError, InputError
from runbook import files, lammpslog, modelcard
from runbook.config import Strict
from runbook.files import write_commands, write_params
from runbook.launchers import Command
from runbook.llzo import TYPE_IDS, garnet, potential
from runbook.llzo.stages import Check, LlzoStage, WithDataFile  # noqa: F401  (Check: the study's kind)
from runbook.stage import Context
from runbook.stages.analyze import CheckResult
from runbook.stages.report import ReportResult

# the undoped garnet of this study: LAMMPS types 1-4 (runbook.llzo.TYPE_IDS; the dopant
# types 5+ of the grain-boundary builder never occur here, and a model need not know them)
SPECIES = ("Li", "La", "Zr", "O")
TYPE_NAMES = sorted(SPECIES, key=TYPE_IDS.__getitem__)
TYPES = {TYPE_IDS[s]: s for s in SPECIES}
BACKEND = {"deepmd": "deepmd", "allegro": "allegro"}


# ------------------------------------------------------------------------------- build


class BuildConfig(Strict):
    source: str = Field(
        "garnet",
        description="`garnet` (runbook.llzo.garnet conventional cell, seeded Li ordering) or "
        "a LAMMPS data file (atom_style charge, orthorhombic, types 1 Li 2 La 3 Zr 4 O)",
    )
    supercell: list[int] = Field([1, 1, 1], min_length=3, max_length=3)
    a_A: float = Field(garnet.LATTICE_A, gt=0)
    seed: int = Field(1, ge=0, description="Li ordering of the garnet cell")


@dataclass(frozen=True)
class BuildResult:
    data_file: str
    box_A: list[float]
    volume_A3: float
    counts: dict[str, int]
    source: str


class Build(LlzoStage):
    kind = "lidiff-build"
    Config = BuildConfig
    tools = ("ase", "numpy")

    def preflight(self, ctx: Context) -> None:
        c = self.cfg
        if min(c.supercell) < 1:
            raise InputError(ctx.study.source, f"{self.name}.supercell", "each entry >= 1")
        if c.source != "garnet" and not Path(c.source).is_file():
            raise InputError(
                ctx.study.source, f"{self.name}.source", f"{c.source}: no such file",
                "give `garnet` or a LAMMPS data file",
            )  # fmt: skip

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        src = c.source if c.source == "garnet" else str(Path(c.source).resolve())
        p = {"source": src, "supercell": c.supercell, "a_A": c.a_A, "seed": c.seed}
        cmd = Command(("python", "-m", "runbook.lidiff.steps", "build", "build.json"), "build.log")
        return [write_params(stage_dir, "build.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> BuildResult:
        path = files.written(stage_dir / "cell.json", "build.log")
        d = json.loads(path.read_text())
        return BuildResult(d["data_file"], d["box_A"], d["volume_A3"], d["counts"], d["source"])


# ---------------------------------------------------------------------------------- md


class MdConfig(Strict):
    input: str = "build"
    potential: Literal["baseline", "deepmd", "allegro"] = "baseline"
    model: str | None = Field(None, description="deepmd/allegro: the model file (manifest beside)")
    potential_file: str | None = None  # baseline: default runbook/llzo/buckingham.yaml
    cutoff_A: float = Field(8.0, gt=0)
    kspace_accuracy: float = Field(1e-4, gt=0)
    frozen_framework: bool | None = Field(None, description="default: yes for the baseline")
    temperatures_K: list[float] = Field(min_length=2)
    seeds: list[int] = Field(min_length=1)
    timestep_fs: float = Field(gt=0, le=5)
    tdamp_fs: float = Field(100.0, gt=0)
    equilibrate_ps: float = Field(gt=0)
    production_ps: float = Field(gt=0)
    dump_every_ps: float = Field(gt=0)
    thermo_every: int = Field(500, ge=1)
    skin_A: float = Field(2.0, gt=0)


def run_name(t: float, seed: int) -> str:
    return f"T{t:g}_s{seed}"


@dataclass(frozen=True)
class MdGridResult:
    runs: list[dict]
    potential: str
    frozen_framework: bool
    timestep_fs: float
    dump_every_ps: float
    production_ps: float
    cost: dict


class Md(LlzoStage):
    kind = "md"
    Config = MdConfig
    tools = ("lammps", "numpy")

    def steps(self, c: MdConfig) -> tuple[int, int, int]:
        def n(ps: float) -> int:
            return round(ps * 1000.0 / c.timestep_fs)

        return n(c.equilibrate_ps), n(c.production_ps), max(1, n(c.dump_every_ps))

    def preflight(self, ctx: Context) -> None:
        c, src = self.cfg, ctx.study.source
        self.need(ctx, c.input, "input")
        if len(set(c.temperatures_K)) < 2 or min(c.temperatures_K) <= 0:
            raise InputError(src, f"{self.name}.temperatures_K", "two or more distinct T > 0")
        _, prod, every = self.steps(c)
        if prod // every < 10:
            raise InputError(src, f"{self.name}.dump_every_ps", "fewer than 10 frames per run")
        if c.potential == "baseline":
            potential.load(Path(c.potential_file or potential.DEFAULT_FILE))
            return
        if not c.model or not Path(c.model).exists():
            raise InputError(src, f"{self.name}.model", f"potential {c.potential} needs a model")
        card = Path(c.model).parent / modelcard.FILENAME
        modelcard.guard(
            modelcard.load(card), card, "metal", TYPES, src, self.name, backend=BACKEND[c.potential]
        )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        equil, prod, every = self.steps(c)
        gpu = ctx.study.active.accelerator == "cuda"
        frozen = c.frozen_framework if c.frozen_framework is not None else c.potential == "baseline"
        common = self._potential_context(c)
        data_in = ctx.rel(c.input, ctx.result(c.input, WithDataFile).data_file)
        rendered, cmds = [], []
        for t in c.temperatures_K:
            for seed in c.seeds:
                run = Path("runs") / run_name(t, seed)
                (stage_dir / run).mkdir(parents=True, exist_ok=True)
                rendered.append(render.render_to(
                    stage_dir / run / "setup.lmp", "lammps/li_diffusion_setup.lmp.j2",
                    temperature_K=t, seed=seed, data_in=data_in, frozen=frozen,
                    skin=c.skin_A, accelerator=ctx.study.active.accelerator, **common,
                ))  # fmt: skip
                rendered.append(render.render_to(
                    stage_dir / run / "run.lmp", "lammps/li_diffusion_run.lmp.j2",
                    temperature_K=t, seed=seed, timestep_fs=c.timestep_fs,
                    tdamp_fs=c.tdamp_fs, equilibrate_steps=equil, production_steps=prod,
                    dump_every=every, dump_file=str(run / "traj.lammpstrj"),
                    thermo_every=c.thermo_every,
                ))  # fmt: skip
                p = {"setup": str(run / "setup.lmp"), "run": str(run / "run.lmp"),
                     "log": str(run / "log.lammps"), "potential": c.potential,
                     "model": c.model, "type_names": TYPE_NAMES}  # fmt: skip
                rendered.append(write_params(stage_dir / run, "run.json", p))
                if gpu:
                    rendered.append(self._gpu_input(stage_dir, run))
                cmds.append(self._command(c, ctx, run))
        rendered.append(write_commands(stage_dir, cmds))
        return rendered

    def _potential_context(self, c: MdConfig) -> dict:
        if c.potential == "baseline":
            pfile = Path(c.potential_file or potential.DEFAULT_FILE)
            pset = potential.load(pfile)
            text = f"{pset.name} ({pfile.name}), Buckingham + Coulomb (PPPM)"
            lines = potential.lammps_lines(pset, c.cutoff_A, c.kspace_accuracy)
            return dict(potential="baseline", potential_text=text, potential_lines=lines)
        model = str(Path(c.model or "").resolve())
        card = modelcard.load(Path(model).parent / modelcard.FILENAME)
        text = f"{c.potential} model {Path(model).name} (r_max {card.r_max_angstrom:g} Å)"
        return dict(potential=c.potential, potential_text=text, model=model,
                    type_names=TYPE_NAMES, r_max=card.r_max_angstrom)  # fmt: skip

    def _gpu_input(self, stage_dir: Path, run: Path) -> Path:
        path = stage_dir / run / "in.lammps"
        path.write_text(f"include {run / 'setup.lmp'}\ninclude {run / 'run.lmp'}\n")
        return path

    def _command(self, c: MdConfig, ctx: Context, run: Path) -> Command:
        """cpu: the LAMMPS Python module (runbook.lidiff.steps md); cuda: `lmp` of the image
        on one MPI rank per GPU (Allegro with Kokkos; DeePMD through its plugin)."""
        if ctx.study.active.accelerator == "cuda":
            argv = ["lmp", "-in", str(run / "in.lammps"), "-log", str(run / "log.lammps")]
            if c.potential == "allegro":
                g = str(max(1, ctx.study.active.gpus))
                argv[1:1] = ["-sf", "kk", "-k", "on", "g", g, "-pk", "kokkos", "newton", "on",
                             "neigh", "full"]  # fmt: skip
            return Command(tuple(argv), str(run / "md.log"), mpi=True)
        needs = ("deepmd",) if c.potential == "deepmd" else ()
        argv = ("python", "-m", "runbook.lidiff.steps", "md", str(run / "run.json"))
        return Command(argv, str(run / "md.log"), needs=needs)

    def collect(self, ctx: Context, stage_dir: Path) -> MdGridResult:
        c = self.cfg
        runs, loop_s, steps = [], 0.0, 0
        for t in c.temperatures_K:
            for seed in c.seeds:
                run = Path("runs") / run_name(t, seed)
                runs.append(_collect_run(stage_dir, run, t, seed))
                loop_s += runs[-1]["loop_s"]
                steps += runs[-1]["steps"]
        frozen = c.frozen_framework if c.frozen_framework is not None else c.potential == "baseline"
        atoms = runs[0]["atoms"]
        rate = round(atoms * steps / loop_s, 1) if loop_s else None
        cost = {"loop_s": round(loop_s, 2), "steps": steps, "atoms": atoms,
                "atom_steps_per_s": rate}  # fmt: skip
        return MdGridResult(runs, c.potential, frozen, c.timestep_fs, c.dump_every_ps,
                            c.production_ps, cost)  # fmt: skip


def _collect_run(stage_dir: Path, run: Path, t: float, seed: int) -> dict:
    """One run's numbers: the NVE production's Li temperature and energy drift, its cost."""
    log, traj = stage_dir / run / "log.lammps", stage_dir / run / "traj.lammpstrj"
    files.written(traj, "md.log")
    text = log.read_text(errors="replace")
    blocks, loops = lammpslog.thermo_blocks(text), lammpslog.loop_times(text)
    if len(blocks) < 2 or len(loops) < 2:
        raise EngineError(f"{log}: expected the NVT and NVE thermo tables")
    nve = blocks[-1]
    n_li = int(traj.read_text().split("ITEM: NUMBER OF ATOMS\n", 1)[1].split()[0])
    drift = 0.0
    if len(nve["Time"]) > 2:
        drift = float(np.polyfit(nve["Time"], nve["TotEng"], 1)[0]) / n_li
    return {
        "name": run.name, "dir": str(run), "T_K": t, "seed": seed,
        "dump": str(run / "traj.lammpstrj"),
        "T_li_mean_K": round(float(nve["c_tli"].mean()), 2),
        "nve_drift_ev_per_li_ps": drift,
        "loop_s": sum(x[0] for x in loops), "steps": sum(x[2] for x in loops),
        "atoms": loops[-1][3],
    }  # fmt: skip


# ----------------------------------------------------------------------------- analyze


class AnalyzeConfig(Strict):
    build: str = "build"
    md: str = "md"
    fit_window: list[float] = Field(
        [0.1, 0.5], min_length=2, max_length=2, description="lag range, fractions of the run"
    )
    n_groups: int = Field(5, ge=2, description="atom groups for a run's own error of D")
    diffusive_min_slope: float = Field(0.85, gt=0, le=1.2, description="log-log MSD slope")
    conductivity_T_K: float = Field(300.0, gt=0)


@dataclass(frozen=True)
class LidiffAnalyzeResult:
    results: str
    numbers: dict[str, Any]


class Analyze(LlzoStage):
    kind = "analyze"
    Config = AnalyzeConfig
    tools = ("numpy",)

    def preflight(self, ctx: Context) -> None:
        c = self.cfg
        self.need(ctx, c.build, "build")
        self.need(ctx, c.md, "md")
        if not 0 <= c.fit_window[0] < c.fit_window[1] <= 1:
            raise InputError(ctx.study.source, f"{self.name}.fit_window", "0 <= start < end <= 1")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        md = ctx.result(c.md, MdGridResult)
        runs = [{**r, "dump": ctx.rel(c.md, r["dump"])} for r in md.runs]
        p = {
            "runs": runs,
            "build": asdict(ctx.result(c.build, BuildResult)),
            "md": {k: getattr(md, k) for k in ("potential", "frozen_framework", "timestep_fs",
                                               "dump_every_ps", "production_ps", "cost")},
            **c.model_dump(mode="json", exclude={"build", "md"}),
        }  # fmt: skip
        cmd = Command(("python", "-m", "runbook.lidiff.analysis", "analysis.json"), "analyze.log")
        return [write_params(stage_dir, "analysis.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> LidiffAnalyzeResult:
        path = files.written(stage_dir / "results.json", "analyze.log")
        r = json.loads(path.read_text())
        a = r.get("arrhenius") or {}
        numbers = {
            "D_cm2_s": {k: v["D_cm2_s"] for k, v in r["temperatures"].items()},
            "not_diffusive": [v["T_K"] for v in r["temperatures"].values() if not v["diffusive"]],
            "Ea_eV": a.get("Ea_eV"),
            "Ea_se_eV": a.get("Ea_se_eV"),
            "sigma_S_cm": (r.get("conductivity") or {}).get("sigma_S_cm"),
        }
        return LidiffAnalyzeResult("results.json", numbers)


# ------------------------------------------------------------------------ check, report


class ReportConfig(Strict):
    analyze: str = "analyze"
    check: str | None = "check"


class Report(LlzoStage):
    kind = "report"
    Config = ReportConfig
    tools = ("numpy",)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        p = {
            "study": ctx.study.name,
            "profile": ctx.study.profile,
            "results": ctx.rel(c.analyze, "results.json"),
            "check": ctx.rel(c.check, ctx.result(c.check, CheckResult).report) if c.check else None,
        }
        cmd = Command(("python", "-m", "runbook.lidiff.report", "report.json"), "report.log")
        return [write_params(stage_dir, "report.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> ReportResult:
        files.written(stage_dir / "report.md", "report.log")
        return ReportResult("report.md", sorted(p.name for p in stage_dir.glob("*.png")))
