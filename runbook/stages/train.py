"""Stage `train`: `nequip-train` of a small Allegro model, bounded in epochs and wall time.

Writes `model_manifest.json` (runbook.modelcard): units of the data, type names, r_max,
and provenance (dataset and DFT stages, their output hashes, the pseudopotentials).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import Field

from bundle.core import lock, render
from bundle.core.errors import EngineError
from runbook import modelcard
from runbook.config import Strict
from runbook.files import sha256_file, write_commands
from runbook.launchers import STAGE_DIR, Command
from runbook.stage import Context, Stage
from runbook.stages.dataset import DatasetResult
from runbook.stages.dft import DftResult


class LossCoeffs(Strict):
    energy: float = Field(1.0, ge=0)
    forces: float = Field(10.0, ge=0)
    stress: float = Field(1.0, ge=0)


class TrainConfig(Strict):
    r_max_angstrom: float = Field(gt=0)
    l_max: int = Field(1, ge=1, le=3)
    num_layers: int = Field(1, ge=1, le=4)
    num_scalar_features: int = Field(16, ge=2)
    num_tensor_features: int = Field(4, ge=1)
    mlp_width: int = Field(16, ge=2)
    num_bessels: int = Field(8, ge=2)
    model_dtype: Literal["float32", "float64"] = "float64"
    zbl: bool = True
    max_epochs: int = Field(ge=1)
    max_time_s: int = Field(ge=10)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    ema_decay: float = Field(0.99, gt=0, lt=1)
    loss: LossCoeffs = LossCoeffs()
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    checkpoint: str
    epochs: int
    stopped_by: str  # max_epochs | max_time
    val: dict[str, float]
    test: dict[str, float]
    model_manifest: str


def hhmmss(seconds: int) -> str:
    """Lightning's max_time string DD:HH:MM:SS."""
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d:02d}:{h:02d}:{m:02d}:{s:02d}"


def read_metrics(path: Path) -> tuple[int, dict[str, float], dict[str, float]]:
    """Lightning CSVLogger metrics.csv → (epochs run, last val0 metrics, test0 metrics)."""
    rows = list(csv.DictReader(path.open()))
    validated, val, test = set(), {}, {}
    for r in rows:
        for k, v in r.items():
            if v and k.startswith("val0_epoch/"):
                val[k.split("/", 1)[1]] = float(v)
                validated.add(r["epoch"])
            if v and k.startswith("test0_epoch/"):
                test[k.split("/", 1)[1]] = float(v)
    return len(validated), val, test


class Train(Stage):
    kind = "train"
    Config = TrainConfig
    tools = ("torch", "nequip", "nequip-allegro")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: TrainConfig = self.cfg  # type: ignore[assignment]
        ds = ctx.upstream_of_kind("dataset", self.name)
        split = ctx.result(ds, DatasetResult).split
        pins = lock.python_pins()
        text = render.render_to(
            stage_dir / "train.yaml",
            "nequip/allegro-train.yaml.j2",
            versions={"nequip": pins["nequip"], "allegro": pins["nequip-allegro"]},
            seed=c.seed,
            r_max=c.r_max_angstrom,
            species=ctx.study.species,
            data={
                "train": ctx.rel(ds, "train.extxyz"),
                "val": ctx.rel(ds, "val.extxyz"),
                "test": ctx.rel(ds, "test.extxyz") if split.get("test") else "",
            },
            batch_size=c.batch_size,
            accelerator="gpu" if ctx.study.active.accelerator == "cuda" else "cpu",
            max_epochs=c.max_epochs,
            max_time=hhmmss(c.max_time_s),
            ema_decay=c.ema_decay,
            loss=c.loss.model_dump(),
            learning_rate=c.learning_rate,
            model_dtype=c.model_dtype,
            num_bessels=c.num_bessels,
            num_scalar_features=c.num_scalar_features,
            num_tensor_features=c.num_tensor_features,
            mlp_width=c.mlp_width,
            l_max=c.l_max,
            num_layers=c.num_layers,
            zbl=c.zbl,
        )
        cmd = Command(
            ("nequip-train", "-cp", STAGE_DIR, "-cn", "train", "hydra.run.dir=."), "train.log"
        )
        return [text, write_commands(stage_dir, [cmd])]

    def collect(self, ctx: Context, stage_dir: Path) -> TrainResult:
        c: TrainConfig = self.cfg  # type: ignore[assignment]
        ckpt = stage_dir / "best.ckpt"
        if not ckpt.exists():
            raise EngineError(f"{ckpt} not written; see {stage_dir / 'train.log'}")
        epochs, val, test = read_metrics(stage_dir / "logs" / "version_0" / "metrics.csv")
        ds = ctx.upstream_of_kind("dataset", self.name)
        dft = ctx.upstream_of_kind("dft", ds)
        dft_manifest = ctx.manifest(dft)
        manifest = modelcard.ModelManifest(
            units=modelcard.Units(**modelcard.DATA_UNITS),
            type_names=list(ctx.study.species),
            r_max_angstrom=c.r_max_angstrom,
            model_dtype=c.model_dtype,
            data={
                "study": ctx.study.name,
                "dataset_stage": ds,
                "dataset_output_hash": ctx.manifest(ds)["output_hash"],
                "split": ctx.result(ds, DatasetResult).split,
                "dft_stage": dft,
                "dft_output_hash": dft_manifest["output_hash"],
                "dft_settings": ctx.study.blocks.get(dft, {}),
                "pseudopotentials_sha256": {
                    k.removeprefix("pseudo/"): v
                    for k, v in dft_manifest["inputs"].items()
                    if k.startswith("pseudo/")
                },
                "pw_version": ctx.result(dft, DftResult).pw_version,
            },
            training={
                "architecture": "allegro.model.AllegroModel",
                "hyperparameters": c.model_dump(mode="json"),
                "epochs": epochs,
                "val_metrics": val,
                "test_metrics": test,
                "checkpoint": ckpt.name,
                "checkpoint_sha256": sha256_file(ckpt),
                "versions": {p: metadata.version(p) for p in self.tools},
            },
        )
        modelcard.write(stage_dir / modelcard.FILENAME, manifest)
        return TrainResult(
            ckpt.name,
            epochs,
            "max_epochs" if epochs >= c.max_epochs else "max_time",
            val,
            test,
            modelcard.FILENAME,
        )
