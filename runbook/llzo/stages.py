"""The stages of the `llzo-gb` study (plug-in kinds `runbook.llzo.stages:<Class>`).

    build -> equilibrate -> production -> insert -> production_excess -> analyze -> check
          -> report

Each stage is render (pure: parameters/inputs into the stage folder) / execute (commands
through the profile's launcher) / collect (typed result for the manifest). Stages name
the stage they read from (`input`, `profile_from`, ...) instead of searching by kind, so
the wiring is explicit in the study file.

Profiles: every block may carry `by_profile: {<profile>: {field: value}}`, applied when
that profile is active (e.g. the h200 profile's larger cell, the Allegro engine and its
longer runs). The MD engine follows the profile's accelerator: `cpu` runs the classical
baseline through the LAMMPS Python module, `cuda` runs `lmp` with `pair_style allegro`
and Kokkos, one MPI rank per GPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from bundle.core.errors import EngineError, InputError
from runbook import modelcard
from runbook.config import Strict
from runbook.engine import Context, Stage, write_commands, write_params
from runbook.launchers import Command
from runbook.llzo import TYPE_IDS, md, potential
from runbook.stages import analyze
from runbook.stages.report import ReportResult

TYPE_MAP = ",".join(f"{t}:{s}" for s, t in sorted(TYPE_IDS.items(), key=lambda kv: kv[1]))


def _f(x: float) -> str:
    return f"{x:.6g}"


class LlzoStage(Stage):
    """Shared: per-profile overrides and the wiring helpers."""

    def effective(self, ctx: Context) -> Any:
        over = getattr(self.cfg, "by_profile", {}).get(ctx.study.profile, {})
        if not over:
            return self.cfg
        data = {**self.cfg.model_dump(mode="python"), **over, "by_profile": {}}
        try:
            return type(self.cfg).model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InputError(
                ctx.study.source,
                f"{self.name}.by_profile.{ctx.study.profile}.{loc}",
                err["msg"],
            ) from None

    def need(self, ctx: Context, name: str, field: str) -> None:
        stages = ctx.study.stages
        if name not in stages or stages.index(name) >= stages.index(self.name):
            raise InputError(
                ctx.study.source,
                f"{self.name}.{field}",
                f"{name!r} is not a stage before {self.name!r}",
                f"stages: {', '.join(stages)}",
            )


# ------------------------------------------------------------------------------- build


class BuildConfig(Strict):
    plane: list[int] = Field([2, 1], min_length=2, max_length=2)
    repeat: list[int] = Field([1, 1, 1], min_length=3, max_length=3)
    termination: int = Field(1, ge=0)
    a_A: float = Field(12.9682, gt=0)
    gap_A: float = Field(0.0, ge=0)
    seed: int = Field(1, ge=0)
    by_profile: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class BuildResult:
    data_file: str
    box_A: list[float]
    gb_planes_A: list[float]
    counts: dict[str, int]
    charge_e: int
    sigma: int


class Build(LlzoStage):
    kind = "llzo-build"
    Config = BuildConfig
    tools = ("ase", "numpy")

    def preflight(self, ctx: Context) -> None:
        c = self.effective(ctx)
        if min(c.repeat) < 1:
            raise InputError(ctx.study.source, f"{self.name}.repeat", f"{c.repeat}: each >= 1")
        if min(c.plane) < 0 or max(c.plane) < 1:
            raise InputError(
                ctx.study.source, f"{self.name}.plane", f"{c.plane}: expected h, k >= 0, not both 0"
            )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.effective(ctx)
        p = {"plane": c.plane, "repeat": c.repeat, "termination": c.termination,
             "a_A": c.a_A, "gap_A": c.gap_A, "seed": c.seed}  # fmt: skip
        cmd = Command(("python", "-m", "runbook.llzo.steps", "build", "build.json"), "build.log")
        return [write_params(stage_dir, "build.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> BuildResult:
        path = stage_dir / "bicrystal.json"
        if not path.exists():
            raise EngineError(f"{path} not written; see {stage_dir / 'build.log'}")
        d = json.loads(path.read_text())
        return BuildResult(d["data_file"], d["box_A"], d["gb_planes_A"], d["counts"],
                           d["charge_e"], d["sigma"])  # fmt: skip


# ---------------------------------------------------------------------------------- md


class MdConfig(Strict):
    input: str = Field(min_length=1, description="stage whose data file this segment starts from")
    temperature_K: float = Field(700.0, gt=0)
    time_ps: float = Field(gt=0)
    timestep_fs: float = Field(2.0, gt=0, le=5)
    tdamp_fs: float = Field(100.0, gt=0)
    seed: int | None = Field(None, ge=1, description="draw Li velocities; null: keep them")
    dump_every_ps: float = Field(0.0, ge=0)
    thermo_every: int = Field(500, ge=1)
    engine: Literal["auto", "classical", "allegro"] = "auto"
    potential_file: str | None = None  # default: the shipped runbook/llzo/buckingham.yaml
    li_o_scale: float = Field(1.0, gt=0)
    cutoff_A: float = Field(8.0, gt=0)
    kspace_accuracy: float = Field(1e-4, gt=0)
    model: str | None = None  # allegro: the model compiled on site (--target pair_allegro)
    by_profile: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class MdStageResult:
    data_file: str
    dump: str | None
    timestep_fs: float
    temperature_K: float
    box_angstrom: list[float]
    type_map: dict[str, str]
    engine: str
    md: dict


class Md(LlzoStage):
    kind = "md"  # the role, for code that looks stages up by kind (result keys compatible)
    Config = MdConfig
    tools = ("lammps", "numpy")

    def params(self, ctx: Context) -> md.MDParams:
        c = self.effective(ctx)
        engine = c.engine
        if engine == "auto":
            engine = "allegro" if ctx.study.active.accelerator == "cuda" else "classical"
        steps = round(c.time_ps * 1000.0 / c.timestep_fs)
        dump_every = round(c.dump_every_ps * 1000.0 / c.timestep_fs) if c.dump_every_ps else 0
        if engine == "allegro" and not c.model:
            raise InputError(
                ctx.study.source, f"{self.name}.model", "the allegro engine needs a model path",
                "give the model compiled on site with --target pair_allegro",
            )  # fmt: skip
        pfile = c.potential_file or str(potential.DEFAULT_FILE)
        return md.MDParams(
            temperature_K=c.temperature_K, steps=steps, timestep_fs=c.timestep_fs,
            tdamp_fs=c.tdamp_fs, velocity_seed=c.seed, dump_every=dump_every,
            thermo_every=c.thermo_every, potential_file=pfile, li_o_scale=c.li_o_scale,
            cutoff=c.cutoff_A, kspace_accuracy=c.kspace_accuracy, engine=engine,
            model=c.model or "", gpus=max(1, ctx.study.active.gpus),
        )  # fmt: skip

    def preflight(self, ctx: Context) -> None:
        c = self.effective(ctx)
        self.need(ctx, c.input, "input")
        p = self.params(ctx)
        if p.engine == "classical":
            potential.load(Path(p.potential_file))  # a bad potential file fails before any run
            return
        # allegro: the model compiled on site, and its manifest's units and type names
        model = Path(p.model)
        if not model.exists():
            raise InputError(
                ctx.study.source, f"{self.name}.model", f"{model} does not exist",
                "compile the delivered model on this machine: nequip-compile --mode "
                "aotinductor --device cuda --target pair_allegro, and give its path",
            )  # fmt: skip
        card = model.parent / modelcard.FILENAME
        types = {t: s for s, t in TYPE_IDS.items()}
        modelcard.guard(modelcard.load(card), card, "metal", types, ctx.study.source, self.name)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.effective(ctx)
        p = self.params(ctx)
        data_in = ctx.rel(c.input, ctx.result(c.input)["data_file"])
        files = [md.render(p, stage_dir, data_in)]
        if p.engine == "allegro":
            g = str(p.gpus)
            argv = ("lmp", "-sf", "kk", "-k", "on", "g", g, "-pk", "kokkos", "newton", "on",
                    "neigh", "full", "-in", "in.lammps", "-log", "log.lammps")  # fmt: skip
            cmd = Command(argv, "md.log", mpi=True)
        else:
            cmd = Command(("python", "-m", "runbook.llzo.md", "in.lammps"), "md.log")
        files.append(write_commands(stage_dir, [cmd]))
        return files

    def collect(self, ctx: Context, stage_dir: Path) -> MdStageResult:
        c = self.effective(ctx)
        p = self.params(ctx)
        r = md.collect(stage_dir)
        box = _box_of(stage_dir / "final.data")
        dump = "traj.lammpstrj" if p.dump_every else None
        if dump and r.frames < 2:
            raise EngineError(f"{stage_dir / dump}: fewer than 2 frames")
        return MdStageResult(
            data_file="final.data",
            dump=dump,
            timestep_fs=c.timestep_fs,
            temperature_K=c.temperature_K,
            box_angstrom=box,
            type_map={str(t): s for s, t in TYPE_IDS.items()},
            engine=p.engine,
            md=asdict(r),
        )


def _box_of(data_file: Path) -> list[float]:
    box = [0.0, 0.0, 0.0]
    for line in data_file.read_text().splitlines()[:30]:
        w = line.split()
        for k, ax in enumerate("xyz"):
            if w[-2:] == [f"{ax}lo", f"{ax}hi"]:
                box[k] = float(w[1]) - float(w[0])
    return box


# ------------------------------------------------------------------------------ insert


class InsertConfig(Strict):
    input: str = Field(min_length=1)
    build: str = "build"
    n: int = Field(ge=1)
    gb_clearance_A: float = Field(4.0, ge=0)
    min_dist_A: float = Field(1.8, gt=0)
    seed: int = Field(1, ge=0)
    by_profile: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class InsertResult:
    data_file: str
    ids_file: str
    n_excess: int
    first_id: int
    charge_e: float


class Insert(LlzoStage):
    kind = "llzo-insert"
    Config = InsertConfig
    tools = ("numpy",)

    def preflight(self, ctx: Context) -> None:
        c = self.effective(ctx)
        self.need(ctx, c.input, "input")
        self.need(ctx, c.build, "build")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.effective(ctx)
        up = ctx.result(c.input)
        p = {
            "data_in": ctx.rel(c.input, up["data_file"]),
            "gb_planes_A": ctx.result(c.build)["gb_planes_A"],
            "n": c.n,
            "gb_clearance_A": c.gb_clearance_A,
            "min_dist_A": c.min_dist_A,
            "temperature_K": up.get("temperature_K", 700.0),
            "seed": c.seed,
        }
        argv = ("python", "-m", "runbook.llzo.steps", "insert", "insert_params.json")
        return [
            write_params(stage_dir, "insert_params.json", p),
            write_commands(stage_dir, [Command(argv, "insert.log")]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> InsertResult:
        path = stage_dir / "insert.json"
        if not path.exists():
            raise EngineError(f"{path} not written; see {stage_dir / 'insert.log'}")
        d = json.loads(path.read_text())
        return InsertResult(d["data_file"], d["ids_file"], d["n_excess"], min(d["ids"]),
                            d["charge_e"])  # fmt: skip


# ----------------------------------------------------------------------------- analyze


class AnalyzeConfig(Strict):
    build: str = "build"
    profile_from: str = "production"  # Li profile, Γ, diffusion (before insertion)
    excess_from: str = "production_excess"  # excess Li in the GB bands (after insertion)
    insert: str = "insert"
    dz: float = Field(0.5, gt=0)
    w: float = Field(2.0, gt=0)
    d_bulk: float = Field(8.0, gt=0)
    avg_window_ps: float = Field(50.0, gt=0)
    by_profile: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class LlzoAnalyzeResult:
    results: str
    gb_planes_A: list[float]
    numbers: dict[str, Any]


class Analyze(LlzoStage):
    """Two `bundle analyze` runs and one results.json: the profile, Γ and D from the
    production before insertion; the excess-Li band counts from the production after it
    (`sources` in results.json says which file each section came from)."""

    kind = "analyze"
    Config = AnalyzeConfig
    tools = ("numpy",)

    def preflight(self, ctx: Context) -> None:
        c = self.effective(ctx)
        for field in ("build", "profile_from", "excess_from", "insert"):
            self.need(ctx, getattr(c, field), field)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.effective(ctx)
        planes = ctx.result(c.build)["gb_planes_A"]
        common = ["--type-map", TYPE_MAP, "--li-type", "Li", "--gb", ",".join(map(_f, planes)),
                  "--dz", _f(c.dz), "--w", _f(c.w), "--d-bulk", _f(c.d_bulk)]  # fmt: skip
        cmds = []
        for out, src, extra in (
            ("profile", c.profile_from, []),
            ("excess", c.excess_from,
             ["--excess-ids", ctx.rel(c.insert, ctx.result(c.insert)["ids_file"]),
              "--avg-window-ps", _f(c.avg_window_ps)]),
        ):  # fmt: skip
            r = ctx.result(src)
            if not r.get("dump"):
                raise InputError(ctx.study.source, f"{src}.dump_every_ps", "no trajectory")
            argv = ["bundle", "analyze", ctx.rel(src, r["dump"]), "--timestep-fs",
                    _f(r["timestep_fs"]), "--temperature-K", _f(r["temperature_K"]), *common,
                    *extra, "--out", out]  # fmt: skip
            cmds.append(Command(tuple(argv), f"analyze_{out}.log"))
        cmds.append(Command(("python", "-m", "runbook.llzo.results", "profile", "excess",
                             "results.json"), "merge.log"))  # fmt: skip
        return [write_commands(stage_dir, cmds)]

    def collect(self, ctx: Context, stage_dir: Path) -> LlzoAnalyzeResult:
        path = stage_dir / "results.json"
        if not path.exists():
            raise EngineError(f"{path} not written; see the analyze_*.log files")
        r = json.loads(path.read_text())
        d = (r.get("diffusion") or {}).get("D_cm2_s") or {}
        ex = r.get("excess") or {}
        numbers = {
            "peak_ratio": r.get("peak_ratio"),
            "band_ratio": r.get("band_ratio"),
            "gamma_per_nm2": (r.get("gamma_per_nm2") or {}).get("mean"),
            "D_cm2_s": d,
            "enrichment": ex.get("enrichment"),
        }
        return LlzoAnalyzeResult("results.json", r.get("gb_planes_A", []), numbers)


# ------------------------------------------------------------------------------- check


class CheckConfig(Strict):
    analyze: str = "analyze"
    reference: str = Field(min_length=1)
    by_profile: dict[str, dict[str, Any]] = {}


class Check(LlzoStage, analyze.Check):
    """`bundle check` of the merged results: the built-in check stage, wired to this study's
    analyze stage and with per-profile overrides of the reference."""

    Config = CheckConfig

    def preflight(self, ctx: Context) -> None:
        self.need(ctx, self.effective(ctx).analyze, "analyze")

    def results_path(self, ctx: Context) -> str:
        return ctx.rel(self.effective(ctx).analyze, "results.json")

    def reference(self, ctx: Context) -> str:
        return self.effective(ctx).reference


# ------------------------------------------------------------------------------ report


class ReportConfig(Strict):
    build: str = "build"
    analyze: str = "analyze"
    check: str | None = "check"
    md_stages: list[str] = ["equilibrate", "production", "production_excess"]
    published: str = "llzo-gb-700K-published"
    control: str | None = None  # a stage whose folder holds the control run's results.json
    crystal: str | None = None  # ... the single crystal's
    by_profile: dict[str, dict[str, Any]] = {}


class Report(LlzoStage):
    kind = "report"
    Config = ReportConfig
    tools = ("numpy",)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.effective(ctx)
        p = {
            "study": ctx.study.name,
            "profile": ctx.study.profile,
            "build": ctx.rel(c.build),
            "analyze": ctx.rel(c.analyze),
            "check": ctx.rel(c.check) if c.check else None,
            "md": {n: ctx.rel(n) for n in c.md_stages},
            "published": c.published,
            "control": ctx.rel(c.control) if c.control else None,
            "crystal": ctx.rel(c.crystal) if c.crystal else None,
        }
        cmd = Command(("python", "-m", "runbook.llzo.report", "report.json"), "report.log")
        return [write_params(stage_dir, "report.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> ReportResult:
        if not (stage_dir / "report.md").exists():
            raise EngineError(f"{stage_dir / 'report.md'} not written; see report.log")
        return ReportResult("report.md", sorted(p.name for p in stage_dir.glob("*.png")))
