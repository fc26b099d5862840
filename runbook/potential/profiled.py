"""Per-profile overrides for the potential study's stages, and the generic `dft` and
`train` stages with them (the cpu and h200 profiles need other cutoffs and models).

A stage block may carry `by_profile: {<profile>: {field: value, ...}}`; when that
profile is active the values are merged into the block (nested mappings merged key by
key) and the result is validated again, so an error names
`<stage>.by_profile.<profile>.<field>`. A profile name the study does not define is an
error. This is the LLZO stages' rule (runbook.llzo.stages.LlzoStage.effective) as a
mixin; it becomes redundant when the study loader applies `by_profile` itself (issue 13).
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bundle.core.errors import InputError
from runbook import launchers, modelcard, stages
from runbook.files import read_commands
from runbook.stage import Context, StageFailed
from runbook.stages import dft, train
from runbook.stages.dataset import DatasetResult

TIMINGS = "timings.json"


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def effective(name: str, cfg: BaseModel, ctx: Context) -> BaseModel:
    """`cfg` with the active profile's `by_profile` entry merged in (module docstring)."""
    table: dict[str, dict[str, Any]] = getattr(cfg, "by_profile", {}) or {}
    unknown = sorted(set(table) - set(ctx.study.profiles))
    if unknown:
        raise InputError(
            ctx.study.source, f"{name}.by_profile.{unknown[0]}", "no such profile in the study",
            f"profiles: {', '.join(sorted(ctx.study.profiles))}",
        )  # fmt: skip
    over = table.get(ctx.study.profile)
    if not over:
        return cfg
    data = deep_merge(cfg.model_dump(mode="python", exclude_unset=True), over)
    data["by_profile"] = {}
    try:
        return type(cfg).model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(
            ctx.study.source, f"{name}.by_profile.{ctx.study.profile}.{loc}", err["msg"]
        ) from None


class ByProfile:
    """Mixin: `bind(ctx)` swaps `self.cfg` for the effective configuration once; every
    entry point (preflight, render, collect) binds first."""

    name: str
    cfg: BaseModel

    def bind(self, ctx: Context) -> None:
        if getattr(self, "_bound", None) != ctx.study.profile:
            self.cfg = effective(self.name, self.cfg, ctx)
            self._bound = ctx.study.profile

    def preflight(self, ctx: Context) -> None:
        self.bind(ctx)
        super().preflight(ctx)  # type: ignore[misc]

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        self.bind(ctx)
        return super().render(ctx, stage_dir)  # type: ignore[misc]

    def collect(self, ctx: Context, stage_dir: Path) -> Any:
        self.bind(ctx)
        return super().collect(ctx, stage_dir)  # type: ignore[misc]


class DftConfig(dft.DftConfig):
    by_profile: dict[str, dict[str, Any]] = {}


class Dft(ByProfile, dft.Dft):
    """The generic `dft` stage with `by_profile`; it also records, per pw.x run, the wall
    and CPU seconds (the CPU of pw.x and mpirun, from the kernel's accounting of finished
    children) in `timings.json`: on a shared machine the CPU seconds are the cost."""

    Config = DftConfig

    def execute(self, launcher, stage_dir: Path) -> list[list[str]]:
        ran, rows = [], []
        for cmd in read_commands(stage_dir):
            ran.append(launcher.argv(cmd, stage_dir))
            t0, c0 = time.perf_counter(), _children_cpu()
            code = launchers.run(launcher, cmd, stage_dir)
            rows.append({"log": cmd.log, "exit_status": code,
                         "wall_s": round(time.perf_counter() - t0, 2),
                         "cpu_s": round(_children_cpu() - c0, 2)})  # fmt: skip
            (stage_dir / TIMINGS).write_text(json.dumps(rows, indent=1) + "\n")
            if code not in cmd.ok_codes:
                raise StageFailed(code, cmd, ran)
        return ran


class TrainConfig(train.TrainConfig):
    by_profile: dict[str, dict[str, Any]] = {}


class Train(ByProfile, train.Train):
    """The generic `train` stage with `by_profile`; the model manifest records the DFT
    settings as run (the effective block, not the raw one) and the environment classes
    of each split."""

    Config = TrainConfig

    def collect(self, ctx: Context, stage_dir: Path) -> train.TrainResult:
        result = super().collect(ctx, stage_dir)
        ds = ctx.upstream_of_kind("dataset", self.name)
        name = ctx.upstream_of_kind("dft", ds)
        stage = stages.build(ctx.study, name)
        cfg = effective(name, stage.cfg, ctx)
        path = stage_dir / modelcard.FILENAME
        card = modelcard.load(path)
        # as run (by_profile applied); the pseudopotential files are identified by their
        # SHA-256 (data.pseudopotentials_sha256), not by host paths
        card.data["dft_settings"] = cfg.model_dump(mode="json", exclude={"by_profile"})
        card.data["env_classes"] = ctx.result(ds, DatasetResult).groups
        modelcard.write(path, card)
        return result
