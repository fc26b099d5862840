"""Stage `dataset`: split the DFT frames into train/val/test and record statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from bundle.core.errors import EngineError
from runbook.config import Strict
from runbook.files import python_step, write_commands, write_params
from runbook.stage import Context, Stage


class DatasetConfig(Strict):
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, ge=0, lt=0.5)
    seed: int = 0
    stratify_by: str | None = Field(
        None, description="frame info key (e.g. env_class): split each group separately"
    )


@dataclass(frozen=True)
class DatasetResult:
    split: dict[str, int]
    energy_per_atom_ev: dict[str, float]
    force_rms_ev_a: dict[str, float]
    min_distance_a: float
    groups: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> group -> n


class Dataset(Stage):
    kind = "dataset"
    Config = DatasetConfig
    tools = ("ase", "numpy")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        dft = ctx.upstream_of_kind("dft", self.name)
        p = {**self.cfg.model_dump(mode="json"), "source": ctx.rel(dft, "dft.extxyz")}
        if p["stratify_by"] is None:  # the parameters of an unstratified split, as before
            del p["stratify_by"]
        return [
            write_params(stage_dir, "dataset.json", p),
            write_commands(stage_dir, [python_step("dataset", "dataset.json", "dataset.log")]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> DatasetResult:
        try:
            s = json.loads((stage_dir / "stats.json").read_text())
        except FileNotFoundError:
            raise EngineError(f"{stage_dir}/stats.json missing; see dataset.log") from None
        a = s["all"]
        return DatasetResult(
            s["split"],
            a["energy_per_atom_ev"],
            a["force_rms_ev_a"],
            a["min_distance_a"],
            s.get("groups", {}),
        )
