"""The stages of the `llzo-gb` study (plug-in kinds `runbook.llzo.stages:<Class>`, and
`runbook.llzo.buildstage:Build`, `runbook.llzo.relaxstage:Relax`).

    build (translation scan) -> relax (minimise, anneal, minimise) -> equilibrate
          -> production -> insert -> production_excess -> analyze -> check -> report
    build_control -> relax_control -> equilibrate_control -> production_control -> analyze

Each stage is render (pure: parameters/inputs into the stage folder) / execute (commands
through the profile's launcher) / collect (typed result for the manifest). Stages name
the stage they read from (`input`, `profile_from`, ...) instead of searching by kind, so
the wiring is explicit in the study file.

Profiles: every block may carry `by_profile: {<profile>: {field: value}}`, applied by
the study loader (runbook.loader) when that profile is active (e.g. the h200 profile's
larger cell, the Allegro engine and its longer runs), so `self.cfg` is already the
profile's configuration. Results are read typed (`ctx.result(name, WithPlanes)`).
The MD engine follows the profile's accelerator: `cpu` runs the classical baseline
through the LAMMPS Python module, `cuda` runs `lmp` with `pair_style allegro` and
Kokkos, one MPI rank per GPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bundle.core.errors import EngineError, InputError
from checks import request
from checks.schema import Results
from runbook import files, modelcard
from runbook.config import Strict
from runbook.files import read_json, write_commands, write_params
from runbook.launchers import Command
from runbook.llzo import TYPE_IDS, lmpdata, md, potential, results
from runbook.stage import Context, Stage
from runbook.stages import analyze
from runbook.stages.analyze import fmt6
from runbook.stages.report import ReportResult

MODEL_KIND = "llzo-model"  # runbook.llzo.modelstage:Model
TYPE_MAP = ",".join(f"{t}:{s}" for s, t in sorted(TYPE_IDS.items(), key=lambda kv: kv[1]))


class LlzoStage(Stage):
    """Shared: the wiring helpers (per-profile values are the loader's `by_profile`)."""

    def need(self, ctx: Context, name: str, field: str) -> None:
        stages = ctx.study.stages
        if name not in stages or stages.index(name) >= stages.index(self.name):
            raise InputError(
                ctx.study.source,
                f"{self.name}.{field}",
                f"{name!r} is not a stage before {self.name!r}",
                f"stages: {', '.join(stages)}",
            )

    def engine(self, ctx: Context) -> str:
        """The block's `engine` with `auto` resolved: `allegro` (the ML potential) when the
        profile names a model (`profiles.<p>.model`), else the classical set; then the
        coupling the accelerator gives the model: `allegro` (`pair_style allegro`, Kokkos)
        on cuda, `external` (`fix external` + the compiled ASE-target model) on cpu."""
        engine, prof = self.cfg.engine, ctx.study.active
        if engine == "auto":
            engine = "allegro" if prof.model is not None else "classical"
        if engine == "allegro" and prof.model is None:
            raise InputError(ctx.study.source, f"profiles.{ctx.study.profile}.model",
                             f"stage {self.name} runs the allegro engine but the profile "
                             "names no model", "add model: {run: <potential run>}")  # fmt: skip
        if engine == "allegro" and prof.accelerator != "cuda":
            return "external"
        return engine

    def model_stage(self, ctx: Context) -> str:
        """The model stage (kind llzo-model) before this one: the model it loads."""
        return ctx.upstream_of_kind(MODEL_KIND, self.name)

    def model_use(self, ctx: Context, data_file: Path) -> ModelUse:
        """The model stage's result, after refusing a data file whose species the model
        does not know (the preflight checked the build blocks; this, the file itself)."""
        use = ctx.result(self.model_stage(ctx), ModelUse)
        if use.file is None or use.provenance is None:
            raise InputError(ctx.study.source, f"{self.name}.engine",
                             "the model stage recorded no model (classical profile?)")  # fmt: skip
        counts = lmpdata.read_data(data_file).counts()
        species = [s for s, n in counts.items() if n]
        card = Path(use.provenance["manifest"])
        modelcard.guard_species(modelcard.load(card), card, species, str(data_file),
                                ctx.study.source, f"{self.name}.input")  # fmt: skip
        return use

    def loaded(self, ctx: Context, stage_dir: Path, engine: str) -> dict | None:
        """The model's provenance, with the SHA-256 of the file the driver loaded (cpu)."""
        if engine == "classical":
            return None
        prov = dict(ctx.result(self.model_stage(ctx), ModelUse).provenance or {})
        info = read_json(stage_dir / "md.json") if (stage_dir / "md.json").exists() else {}
        prov["sha256"] = info.get("model_sha256", prov.get("sha256"))
        return prov


@dataclass(frozen=True)
class ModelUse:
    """What a model-driven stage reads of the model stage's result: the file it loads and
    its provenance (runbook.modelref.provenance); None on a classical profile."""

    file: str | None
    provenance: dict | None
    r_max_A: float = 0.0

    @staticmethod
    def params(use: ModelUse | None) -> dict:
        """The model fields of MD and relax parameters (model, model_manifest, r_max)."""
        if use is None:
            return {"model": "", "model_manifest": "", "r_max": 0.0}
        manifest = (use.provenance or {}).get("manifest", "")
        return {"model": use.file or "", "model_manifest": manifest, "r_max": use.r_max_A}


@dataclass(frozen=True)
class WithDataFile:
    """What a stage that starts from another stage's LAMMPS data file reads of its result
    (a build, an MD segment or an insertion)."""

    data_file: str


@dataclass(frozen=True)
class WithPlanes:
    """What a stage that needs the boundary planes reads of a build or relax result (and
    the Li candidate sites carried with it, for the occupancies)."""

    gb_planes_A: list[float]
    li_sites: str | None = None


# ---------------------------------------------------------------------------------- md


class MdConfig(Strict):
    input: str = Field(min_length=1, description="stage whose data file this segment starts from")
    temperature_K: float = Field(700.0, gt=0)
    time_ps: float = Field(gt=0, le=1e5, description="ps (at most 100 ns)")
    timestep_fs: float = Field(2.0, gt=0, le=5)
    tdamp_fs: float = Field(100.0, gt=0)
    seed: int | None = Field(None, ge=1, description="draw Li velocities; null: keep them")
    dump_every_ps: float = Field(0.0, ge=0, le=1e5)
    thermo_every: int = Field(500, ge=1)
    engine: Literal["auto", "classical", "allegro"] = "auto"
    framework: Literal["frozen", "mobile"] = "frozen"  # frozen: Li-only MD (published)
    barostat_z: bool = False  # mobile only: NPT, box free along z (p_z = 0)
    pdamp_fs: float = Field(1000.0, gt=0)
    potential_file: str | None = None  # default: the shipped runbook/llzo/buckingham.yaml
    li_o_scale: float = Field(1.0, gt=0)
    cutoff_A: float = Field(8.0, gt=0)
    kspace_accuracy: float = Field(1e-4, gt=0)
    # allegro: the profile's model (profiles.<p>.model), loaded from the model stage


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
    model: dict | None = None  # the model loaded (file, sha256, dataset hash, ...)
    framework: str = "frozen"  # frozen (only Li integrated) | mobile (every atom)


class Md(LlzoStage):
    kind = "md"  # the role, for code that looks stages up by kind (result keys compatible)
    Config = MdConfig
    tools = ("lammps", "numpy")

    def params(self, ctx: Context, use: ModelUse | None = None) -> md.MDParams:
        c = self.cfg
        engine = self.engine(ctx)
        steps = round(c.time_ps * 1000.0 / c.timestep_fs)
        dump_every = round(c.dump_every_ps * 1000.0 / c.timestep_fs) if c.dump_every_ps else 0
        pfile = c.potential_file or str(potential.DEFAULT_FILE)
        return md.MDParams(
            temperature_K=c.temperature_K, steps=steps, timestep_fs=c.timestep_fs,
            tdamp_fs=c.tdamp_fs, velocity_seed=c.seed, dump_every=dump_every,
            thermo_every=c.thermo_every, potential_file=pfile, li_o_scale=c.li_o_scale,
            cutoff=c.cutoff_A, kspace_accuracy=c.kspace_accuracy, engine=engine,
            gpus=max(1, ctx.study.active.gpus), framework=c.framework,
            barostat_z=c.barostat_z, pdamp_fs=c.pdamp_fs, **ModelUse.params(use),
        )  # fmt: skip

    def preflight(self, ctx: Context) -> None:
        c = self.cfg
        self.need(ctx, c.input, "input")
        if c.barostat_z and c.framework == "frozen":
            raise InputError(ctx.study.source, f"{self.name}.barostat_z",
                             "a barostat needs `framework: mobile`")  # fmt: skip
        p = self.params(ctx)
        if p.engine == "classical":
            potential.load(Path(p.potential_file))  # a bad potential file fails before any run
            return
        self.model_stage(ctx)  # the model stage resolves, guards and records the model

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        data_in = ctx.rel(c.input, ctx.result(c.input, WithDataFile).data_file)
        use = None if self.engine(ctx) == "classical" else self.model_use(ctx, stage_dir / data_in)
        p = self.params(ctx, use)
        rendered = [md.render(p, stage_dir, data_in)]
        if p.engine == "allegro":
            g = str(p.gpus)
            argv = ("lmp", "-sf", "kk", "-k", "on", "g", g, "-pk", "kokkos", "newton", "on",
                    "neigh", "full", "-in", "in.lammps", "-log", "log.lammps")  # fmt: skip
            cmd = Command(argv, "md.log", mpi=True)
        else:
            cmd = Command(("python", "-m", "runbook.llzo.md", "in.lammps"), "md.log")
        rendered.append(write_commands(stage_dir, [cmd]))
        return rendered

    def collect(self, ctx: Context, stage_dir: Path) -> MdStageResult:
        c = self.cfg
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
            model=self.loaded(ctx, stage_dir, p.engine),
            framework=c.framework,
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
    placement: Literal["away", "near", "uniform"] = "away"
    near_band_A: float = Field(2.0, gt=0)
    compensation: Literal["none", "reduce", "neutral"] = "none"
    seed: int = Field(1, ge=0)


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
        c = self.cfg
        self.need(ctx, c.input, "input")
        self.need(ctx, c.build, "build")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        up = ctx.result(c.input, MdStageResult)
        p = {
            "data_in": ctx.rel(c.input, up.data_file),
            "gb_planes_A": ctx.result(c.build, WithPlanes).gb_planes_A,
            "n": c.n,
            "gb_clearance_A": c.gb_clearance_A,
            "min_dist_A": c.min_dist_A,
            "placement": c.placement,
            "near_band_A": c.near_band_A,
            "compensation": c.compensation,
            "temperature_K": up.temperature_K,
            "seed": c.seed,
        }
        argv = ("python", "-m", "runbook.llzo.steps", "insert", "insert_params.json")
        return [
            write_params(stage_dir, "insert_params.json", p),
            write_commands(stage_dir, [Command(argv, "insert.log")]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> InsertResult:
        path = files.written(stage_dir / "insert.json", "insert.log")
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
    control_from: str | None = None  # MD of the boundary-free control: profile beside it
    control_build: str | None = None  # its build or relax stage (nominal planes, sites)


@dataclass(frozen=True)
class LlzoAnalyzeResult:
    results: str
    gb_planes_A: list[float]
    numbers: dict[str, Any]


class Analyze(LlzoStage, analyze.AnalysisStage):
    """Two analyses and one results.json: the profile, Γ and D from the production before
    insertion; the excess-Li band counts from the production after it (`sources` in
    results.json says which file each section came from). With `control_from`, a third
    analysis of the boundary-free control (at its own nominal planes) gives results.json
    its `reference_runs` block (checks.crystal). Each analysis is a request run by
    `python -m checks analyze`; the merge is runbook.llzo.results."""

    kind = "analyze"
    Config = AnalyzeConfig
    tools = ("numpy",)
    results_file = "results.json"
    PARTS = ("profile", "excess", "control")  # control: only with `control_from`

    def preflight(self, ctx: Context) -> None:
        c = self.cfg
        for field in ("build", "profile_from", "excess_from", "insert"):
            self.need(ctx, getattr(c, field), field)
        if (c.control_from is None) != (c.control_build is None):
            raise InputError(ctx.study.source, f"{self.name}.control_build",
                             "give control_from and control_build together")  # fmt: skip
        for field in ("control_from", "control_build"):
            if getattr(c, field) is not None:
                self.need(ctx, getattr(c, field), field)

    def _request(
        self, ctx: Context, out: str, src: str, build: str, **extra
    ) -> request.AnalysisRequest:
        c = self.cfg
        r = ctx.result(src, MdStageResult)
        if not r.dump:
            raise InputError(ctx.study.source, f"{src}.dump_every_ps", "no trajectory")
        planes = ctx.result(build, WithPlanes).gb_planes_A
        return request.AnalysisRequest(
            dumps=(ctx.rel(src, r.dump),), timestep_fs=fmt6(r.timestep_fs), out=out,
            type_map=TYPE_MAP, li_type="Li", gb=(fmt6(planes[0]), fmt6(planes[1])),
            dz=fmt6(c.dz), w=fmt6(c.w), d_bulk=fmt6(c.d_bulk),
            temperature_K=fmt6(r.temperature_K), **extra,
        )  # fmt: skip

    def _sites(self, ctx: Context, build: str) -> str | None:
        """The build (or relax) stage's Li candidate sites: occupancies and hops."""
        sites = ctx.result(build, WithPlanes).li_sites
        return ctx.rel(build, sites) if sites else None

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        ids = ctx.rel(c.insert, ctx.result(c.insert, InsertResult).ids_file)
        reqs = {
            "profile": self._request(ctx, "profile", c.profile_from, c.build,
                                     li_sites=self._sites(ctx, c.build)),
            "excess": self._request(ctx, "excess", c.excess_from, c.build, excess_ids=ids,
                                    avg_window_ps=fmt6(c.avg_window_ps)),
        }  # fmt: skip
        merge = ["python", "-m", "runbook.llzo.results", "profile", "excess", self.results_file]
        if c.control_from and c.control_build:
            reqs["control"] = self._request(ctx, "control", c.control_from, c.control_build,
                                            li_sites=self._sites(ctx, c.control_build))  # fmt: skip
            merge += ["--control", "control"]
        out = [write_params(stage_dir, f"analyze_{n}.json", r.to_json()) for n, r in reqs.items()]
        cmds = [analyze.analysis_command(f"analyze_{n}.json", f"analyze_{n}.log") for n in reqs]
        cmds.append(Command(tuple(merge), "merge.log"))
        return [*out, write_commands(stage_dir, cmds)]

    def requests(self, stage_dir: Path) -> dict[str, request.AnalysisRequest]:
        return {
            n: request.AnalysisRequest.from_json(read_json(stage_dir / f"analyze_{n}.json"))
            for n in self.PARTS
            if (stage_dir / f"analyze_{n}.json").exists()
        }

    def reanalyse(self, stage_dir: Path, w: float, out: Path) -> dict:
        docs = self.rerun(stage_dir, out, w=w)
        doc = results.merge(
            docs["profile"], docs["excess"], "profile/results.json", "excess/results.json"
        )
        return results.with_reference_runs(doc, docs.get("control"), None)

    def collect(self, ctx: Context, stage_dir: Path) -> LlzoAnalyzeResult:
        path = stage_dir / self.results_file
        files.written(path, "analyze_*.log")
        r = Results.of(self.results(stage_dir), path)
        numbers = {
            "peak_ratio": r.peak_ratio,
            "band_ratio": r.band_ratio,
            "gamma_per_nm2": r.gamma_per_nm2.mean,
            "D_cm2_s": r.diffusion.D_cm2_s if r.diffusion else {},
            "enrichment": r.excess.enrichment if r.excess else None,
        }
        return LlzoAnalyzeResult(self.results_file, r.gb_planes_A, numbers)


# ------------------------------------------------------------------------------- check


class CheckConfig(analyze.CheckConfig):
    analyze: str = "analyze"


class Check(LlzoStage, analyze.Check):
    """The merged results judged by the built-in check stage (`python -m checks check`),
    wired to this study's analyze stage; per-profile references come from `by_profile`."""

    Config = CheckConfig

    def preflight(self, ctx: Context) -> None:
        self.need(ctx, self.cfg.analyze, "analyze")

    def results_path(self, ctx: Context) -> str:
        return ctx.rel(self.cfg.analyze, "results.json")

    def reference(self, ctx: Context) -> str | None:
        return self.cfg.reference


# ------------------------------------------------------------------------------ report


class ReportConfig(Strict):
    build: str = "build"
    analyze: str = "analyze"
    check: str | None = "check"
    md_stages: list[str] = ["equilibrate", "production", "production_excess"]
    published: str = "llzo-gb-700K-published"
    control: str | None = None  # a stage whose folder holds the control run's results.json
    # (default: `<analyze>/control`, where the analyze stage's `control_from` puts it)
    crystal: str | None = None  # ... the single crystal's


class Report(LlzoStage):
    kind = "report"
    Config = ReportConfig
    tools = ("numpy",)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        p = {
            "study": ctx.study.name,
            "profile": ctx.study.profile,
            "build": ctx.rel(c.build),
            "analyze": ctx.rel(c.analyze),
            "check": ctx.rel(c.check) if c.check else None,
            "md": {n: ctx.rel(n) for n in c.md_stages},
            "published": c.published,
            # default: the control analysed by the analyze stage (absent: no control section)
            "control": ctx.rel(c.control) if c.control else ctx.rel(c.analyze, "control"),
            "crystal": ctx.rel(c.crystal) if c.crystal else None,
            "model": ctx.rel(m) if (m := ctx.last_of_kind(MODEL_KIND, self.name)) else None,
        }
        cmd = Command(("python", "-m", "runbook.llzo.report", "report.json"), "report.log")
        return [write_params(stage_dir, "report.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> ReportResult:
        files.written(stage_dir / "report.md", "report.log")
        return ReportResult("report.md", sorted(p.name for p in stage_dir.glob("*.png")))
