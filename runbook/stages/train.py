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

from ase.io import read
from pydantic import Field

from bundle.core import lock, render
from bundle.core.errors import InputError
from runbook import energyref, files, modelcard
from runbook.config import Strict
from runbook.files import sha256_file, write_commands
from runbook.launchers import STAGE_DIR, Command
from runbook.stage import Context, Stage
from runbook.stages.dataset import DatasetResult, data_provenance


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
    seed: int = Field(0, description="model initialisation AND data order (shuffling)")
    per_type_energy_shifts: Literal["mean", "least_squares"] = Field(
        "mean",
        description="mean: one per-atom mean for every type; least_squares: per-species "
        "energies fitted on the training compositions (runbook.energyref)",
    )
    devices: int = Field(1, ge=1, description="GPUs of one node for data-parallel training")


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
        train_frames = read(ctx.dir_of(ds) / "train.extxyz", index=":")
        self.check_species(ctx, train_frames)
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
            devices=c.devices,
            energy_shifts=self.energy_shifts(ctx, train_frames),
        )
        cmd = Command(
            ("nequip-train", "-cp", STAGE_DIR, "-cn", "train", "hydra.run.dir=."), "train.log"
        )
        return [text, write_commands(stage_dir, [cmd])]

    def check_species(self, ctx: Context, frames) -> None:
        """Every species of the model (the study's) must occur in the training frames: a
        type never seen in training has an arbitrary energy and forces."""
        seen = {s for a in frames for s in a.get_chemical_symbols()}
        absent = [s for s in ctx.study.species if s not in seen]
        if absent:
            raise InputError(
                ctx.study.source,
                "species",
                f"{', '.join(absent)} would be a type of the model but no training frame holds it",
                "add frames with it (and their labels) or drop it from `species`",
            )

    def energy_shifts(self, ctx: Context, frames) -> dict[str, float]:
        """Per-species energy shifts (eV) when `per_type_energy_shifts: least_squares`."""
        c: TrainConfig = self.cfg  # type: ignore[assignment]
        if c.per_type_energy_shifts != "least_squares":
            return {}
        return energyref.fit(frames, ctx.study.species).mu_ev

    def collect(self, ctx: Context, stage_dir: Path) -> TrainResult:
        c: TrainConfig = self.cfg  # type: ignore[assignment]
        ckpt = stage_dir / "best.ckpt"
        files.written(ckpt, "train.log")
        epochs, val, test = read_metrics(stage_dir / "logs" / "version_0" / "metrics.csv")
        ds = ctx.upstream_of_kind("dataset", self.name)
        manifest = modelcard.ModelManifest(
            backend="allegro",
            units=modelcard.Units(**modelcard.DATA_UNITS),
            type_names=list(ctx.study.species),
            r_max_angstrom=c.r_max_angstrom,
            model_dtype=c.model_dtype,
            data=data_provenance(ctx, ds),
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
