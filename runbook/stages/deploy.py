"""Stage `deploy`: `nequip-package` the trained checkpoint, then `nequip-compile --mode
aotinductor` for the target of the profile: `ase` on CPU (the `fix external` driver
loads it), `pair_allegro` on a CUDA site (compiled ON the target machine: AOTInductor
artifacts are GPU/ISA specific). On CPU the compiled model is then evaluated against the
held-out DFT frames. The model manifest is copied beside the artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runbook import files, modelcard
from runbook.config import Strict
from runbook.files import python_step, sha256_file, write_commands, write_params
from runbook.launchers import Command
from runbook.stage import Context, Stage
from runbook.stages.dataset import DatasetResult

PACKAGED = "model.nequip.zip"
COMPILED = "model.nequip.pt2"


class DeployConfig(Strict):
    target: Literal["auto", "ase", "pair_allegro"] = "auto"
    evaluate: bool = True


@dataclass(frozen=True)
class DeployResult:
    packaged: str
    compiled: str
    target: str
    device: str
    evaluation: dict[str, float]


class Deploy(Stage):
    kind = "deploy"
    Config = DeployConfig
    tools = ("torch", "nequip", "nequip-allegro")

    def target(self, ctx: Context) -> tuple[str, str]:
        c: DeployConfig = self.cfg  # type: ignore[assignment]
        cuda = ctx.study.active.accelerator == "cuda"
        target = c.target if c.target != "auto" else ("pair_allegro" if cuda else "ase")
        return target, "cuda" if cuda else "cpu"

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: DeployConfig = self.cfg  # type: ignore[assignment]
        train = ctx.upstream_of_kind("train", self.name)
        target, device = self.target(ctx)
        cmds = [
            Command(
                ("nequip-package", "build", ctx.rel(train, "best.ckpt"), PACKAGED), "package.log"
            ),
            Command(
                (
                    "nequip-compile",
                    PACKAGED,
                    COMPILED,
                    "--mode",
                    "aotinductor",
                    "--device",
                    device,
                    "--target",
                    target,
                ),
                "compile.log",
            ),
        ]
        files = []
        if c.evaluate and target == "ase":
            ds = ctx.upstream_of_kind("dataset", train)
            split = ctx.result(ds, DatasetResult).split
            held = "test.extxyz" if split.get("test") else "val.extxyz"
            files.append(
                write_params(
                    stage_dir, "evaluate.json", {"model": COMPILED, "frames": ctx.rel(ds, held)}
                )
            )
            cmds.append(python_step("evaluate", "evaluate.json", "evaluate.log"))
        return [*files, write_commands(stage_dir, cmds)]

    def collect(self, ctx: Context, stage_dir: Path) -> DeployResult:
        target, device = self.target(ctx)
        for f in (PACKAGED, COMPILED):
            files.written(stage_dir / f, "package.log", "compile.log")
        train = ctx.upstream_of_kind("train", self.name)
        card = modelcard.load(ctx.dir_of(train) / modelcard.FILENAME)
        card.artifacts = {
            "packaged": {"file": PACKAGED, "sha256": sha256_file(stage_dir / PACKAGED)},
            "compiled": {
                "file": COMPILED,
                "sha256": sha256_file(stage_dir / COMPILED),
                "mode": "aotinductor",
                "target": target,
                "device": device,
            },
        }
        modelcard.write(stage_dir / modelcard.FILENAME, card)
        ev = {}
        if (stage_dir / "evaluation.json").exists():
            doc = json.loads((stage_dir / "evaluation.json").read_text())
            ev = {k: v for k, v in doc.items() if isinstance(v, float)}
        return DeployResult(PACKAGED, COMPILED, target, device, ev)
