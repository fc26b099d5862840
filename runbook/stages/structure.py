"""Stage `structure`: seeded strained and rattled supercells of a prototype crystal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ase.io import read
from pydantic import Field

from bundle.core.errors import InputError
from runbook import files
from runbook.config import Strict
from runbook.files import python_step, write_commands, write_params
from runbook.stage import Context, Stage


class FrameSet(Strict):
    supercell: list[int] = Field(min_length=3, max_length=3)
    n: int = Field(ge=1)


class StructureConfig(Strict):
    prototype: Literal["antifluorite"] = "antifluorite"
    cation: str = "Li"
    anion: str = "O"
    a_angstrom: float = Field(gt=0)
    frames: list[FrameSet] = Field(min_length=1)
    strain_max: float = Field(0.02, ge=0, le=0.2)
    rattle_angstrom: float = Field(0.05, ge=0, le=0.5)
    seed: int = 0


@dataclass(frozen=True)
class StructureResult:
    file: str
    n_frames: int
    n_atoms: list[int]


class Structure(Stage):
    kind = "structure"
    Config = StructureConfig
    tools = ("ase", "numpy")

    def preflight(self, ctx: Context) -> None:
        c: StructureConfig = self.cfg  # type: ignore[assignment]
        for field, sym in (("cation", c.cation), ("anion", c.anion)):
            if sym not in ctx.study.species:
                raise InputError(
                    ctx.study.source,
                    f"{self.name}.{field}",
                    f"{sym!r} is not in the study's species {ctx.study.species}",
                )
        for i, fs in enumerate(c.frames):
            if min(fs.supercell) < 1:
                raise InputError(
                    ctx.study.source,
                    f"{self.name}.frames.{i}.supercell",
                    f"repetitions must be >= 1 (got {fs.supercell})",
                )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        return [
            write_params(stage_dir, "structure.json", self.cfg.model_dump(mode="json")),
            write_commands(
                stage_dir, [python_step("structure", "structure.json", "structure.log")]
            ),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> StructureResult:
        path = stage_dir / "structures.extxyz"
        files.written(path, "structure.log")
        frames = read(path, index=":")
        return StructureResult(path.name, len(frames), [len(a) for a in frames])
