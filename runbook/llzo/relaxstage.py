"""The relax stage of the `llzo-gb` study (plug-in kind `runbook.llzo.relaxstage:Relax`):
minimise -> anneal -> minimise the structure of a build stage, every atom mobile and the
box free along the normal (runbook.llzo.relax), then the post step (boundary energy,
residual forces, interior coordination, the Li sites carried with the framework).

The engine follows the profile like the MD stages: without a profile model the classical
baseline through the LAMMPS Python module; with one (`profiles.<p>.model`, loaded from the
model stage) `lmp` with Allegro and Kokkos, one rank per GPU, on cuda, and the compiled
ASE-target model through `fix external` on cpu. With a model the boundary energy is left
out, saying why: its bulk references (Li2O, La2O3, ZrO2) are minimised classically, and a
boundary energy mixing the model's bicrystal with classical oxides would mean nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from bundle.core.errors import InputError
from runbook import files
from runbook.config import Strict
from runbook.files import write_commands, write_params
from runbook.launchers import Command
from runbook.llzo import potential, relax
from runbook.llzo.buildstage import Build
from runbook.llzo.stages import LlzoStage, ModelUse
from runbook.stage import Context


class RelaxConfig(Strict):
    input: str = Field("build", min_length=1, description="the build stage it relaxes")
    reference: str | None = None  # a control's relax stage: boundary energy against it
    anneal_K: float = Field(1000.0, gt=0)
    anneal_ps: float = Field(5.0, ge=0, le=1e4, description="0: minimise only")
    cool_to_K: float = Field(300.0, gt=0)
    cool_ps: float = Field(0.0, ge=0, description="linear cooling after the anneal")
    timestep_fs: float = Field(1.0, gt=0, le=2)
    tdamp_fs: float = Field(100.0, gt=0)
    pdamp_fs: float = Field(1000.0, gt=0)
    seed: int = Field(1, ge=1, description="anneal velocities")
    ftol: float = Field(
        0.02, gt=0, description="largest force on an atom that ends a minimize (eV/Å)"
    )
    maxiter: int = Field(5000, ge=1)
    fmax_bound_eV_A: float = Field(0.05, gt=0, description="largest residual force allowed")
    interior_A: float = Field(6.0, ge=0, description="grain interior: this far from both planes")
    engine: Literal["auto", "classical", "allegro"] = "auto"
    potential_file: str | None = None
    cutoff_A: float = Field(8.0, gt=0)
    kspace_min: float = Field(1e-4, gt=0)
    kspace_md: float = Field(1e-4, gt=0)


@dataclass(frozen=True)
class BuiltStructure:
    """What the relax stage reads of its build stage's result."""

    data_file: str
    li_sites: str


@dataclass(frozen=True)
class RelaxResult:
    data_file: str
    gb_planes_A: list[float]
    box_A: list[float]
    energy_eV: float
    fmax_eV_A: float
    gamma_J_m2: float | None
    control: bool
    li_sites: str
    engine: str
    model: dict | None = None  # the model loaded (file, sha256, dataset hash, ...)


class Relax(LlzoStage):
    kind = "llzo-relax"
    Config = RelaxConfig
    tools = ("lammps", "numpy")

    def params(self, ctx: Context, use: ModelUse | None = None) -> relax.RelaxParams:
        c = self.cfg
        engine = self.engine(ctx)
        dt = c.timestep_fs
        return relax.RelaxParams(
            anneal_K=c.anneal_K, anneal_steps=round(c.anneal_ps * 1000 / dt),
            cool_to_K=c.cool_to_K, cool_steps=round(c.cool_ps * 1000 / dt), timestep_fs=dt,
            tdamp_fs=c.tdamp_fs, pdamp_fs=c.pdamp_fs, seed=c.seed, ftol=c.ftol,
            maxiter=c.maxiter, engine=engine,
            potential_file=c.potential_file or str(potential.DEFAULT_FILE), cutoff=c.cutoff_A,
            kspace_min=c.kspace_min, kspace_md=c.kspace_md, **ModelUse.params(use),
        )  # fmt: skip

    def preflight(self, ctx: Context) -> None:
        c = self.cfg
        self.need(ctx, c.input, "input")
        if ctx.kind_of(c.input) != Build.kind:
            raise InputError(ctx.study.source, f"{self.name}.input",
                             f"{c.input!r} is not a build stage of this study")  # fmt: skip
        if c.reference:
            self.need(ctx, c.reference, "reference")
        p = self.params(ctx)
        if p.engine == "classical":
            potential.load(Path(p.potential_file))
        else:
            self.model_stage(ctx)  # the model stage resolves, guards and records the model

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        up = ctx.result(c.input, BuiltStructure)
        data_in = ctx.rel(c.input, up.data_file)
        use = None if self.engine(ctx) == "classical" else self.model_use(ctx, stage_dir / data_in)
        p = self.params(ctx, use)
        post = {
            "data_in": data_in,
            "build_json": ctx.rel(c.input, "bicrystal.json"),
            "sites": ctx.rel(c.input, up.li_sites),
            "grains": ctx.rel(c.input, "grains.npz"),
            "reference": ctx.rel(c.reference, "relax.json") if c.reference else None,
            "fmax_bound_eV_A": c.fmax_bound_eV_A,
            "interior_A": c.interior_A,
            "engine": p.engine,
            "potential_file": p.potential_file,
            "kspace_min": p.kspace_min,
        }
        rendered = [
            relax.render(p, stage_dir, data_in),
            write_params(stage_dir, "relax_post.json", post),
        ]
        if p.engine == "allegro":
            g = str(max(1, ctx.study.active.gpus))
            argv = ("lmp", "-sf", "kk", "-k", "on", "g", g, "-pk", "kokkos", "newton", "on",
                    "neigh", "full", "-in", "in.lammps", "-log", "log.lammps")  # fmt: skip
            run = Command(argv, "relax.log", mpi=True)
        else:
            run = Command(("python", "-m", "runbook.llzo.md", "in.lammps"), "relax.log")
        post_cmd = Command(("python", "-m", "runbook.llzo.relax", "relax_post.json"), "post.log")
        rendered.append(write_commands(stage_dir, [run, post_cmd]))
        return rendered

    def collect(self, ctx: Context, stage_dir: Path) -> RelaxResult:
        path = files.written(stage_dir / "relax.json", "relax.log", "post.log")
        d = json.loads(path.read_text())
        gamma = (d.get("gamma") or {}).get("gamma_J_m2")
        engine = self.params(ctx).engine
        return RelaxResult(d["data_file"], d["gb_planes_A"], d["box_A"], d["energy_eV"],
                           d["fmax_eV_A"], gamma, d["control"], d["li_sites"], engine,
                           self.loaded(ctx, stage_dir, engine))  # fmt: skip
