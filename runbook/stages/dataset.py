"""Stage `dataset`: split the DFT frames into train/val/test and record statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from bundle.core.errors import EngineError
from runbook.config import Strict
from runbook.files import python_step, sha256_file, write_commands, write_params
from runbook.stage import Context, Stage
from runbook.stages.dft import DftResult


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


@dataclass(frozen=True)
class DatasetSplit:
    """What a training reads of any dataset stage's result: the split counts (this
    stage's DatasetResult, or the labelling loop's grown dataset, runbook.al.dataset)."""

    split: dict[str, int]


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


def data_provenance(ctx: Context, dataset_stage: str) -> dict[str, Any]:
    """What a model was trained on, for its manifest (runbook.modelcard): the dataset and
    DFT stages, their output hashes, the split, the DFT settings and the pseudopotentials'
    hashes."""
    dft = ctx.upstream_of_kind("dft", dataset_stage)
    dft_manifest = ctx.manifest(dft)
    return {
        "study": ctx.study.name,
        "dataset_stage": dataset_stage,
        "dataset_output_hash": ctx.manifest(dataset_stage)["output_hash"],
        "split": ctx.result(dataset_stage, DatasetSplit).split,
        "dft_stage": dft,
        "dft_output_hash": dft_manifest["output_hash"],
        "dft_settings": ctx.study.blocks.get(dft, {}),
        "pseudopotentials_sha256": {
            k.removeprefix("pseudo/"): v
            for k, v in dft_manifest["inputs"].items()
            if k.startswith("pseudo/")
        },
        "pw_version": ctx.result(dft, DftResult).pw_version,
        "lineage": lineage(ctx, dataset_stage),
    }


GROWN = "added.json"  # a grown dataset's record of the frames one iteration added


def lineage(ctx: Context, dataset_stage: str) -> list[dict[str, Any]]:
    """Which iteration added which frames: newest first, one entry per grown dataset
    (its `added.json`, hashed: every added frame with its labels' SHA-256), down to the
    dataset the loop started from (iteration 0)."""
    out, stage = [], dataset_stage
    while (ctx.dir_of(stage) / GROWN).is_file():
        path = ctx.dir_of(stage) / GROWN
        doc = json.loads(path.read_text())
        out.append({"iteration": doc["iteration"], "stage": stage,
                    "added": len(doc["added"]), "excluded": len(doc["excluded"]),
                    "record": f"{ctx.dir_of(stage).name}/{GROWN}",
                    "record_sha256": sha256_file(path)})  # fmt: skip
        stage = doc["grown_from"]["stage"]
    split = ctx.result(stage, DatasetSplit).split
    out.append({"iteration": 0, "stage": stage, "frames": sum(split.values())})
    return out
