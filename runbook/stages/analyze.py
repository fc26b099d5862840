"""Stages `analyze` (`bundle analyze` on the MD dump) and `check` (`bundle check` of the
results against a reference). Both run the `bundle` CLI as a process through the
launcher, with the command-line contract of issue 2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bundle.core.errors import EngineError
from runbook import launchers
from runbook.config import Strict
from runbook.engine import Context, Stage, StageFailed, read_commands, read_json, write_commands
from runbook.launchers import Command

OUT = "analysis"


class AnalyzeConfig(Strict):
    gb: Literal["auto"] | list[float] = "auto"
    gb_fractions: list[float] | None = Field(
        None, min_length=2, max_length=2, description="GB planes as fractions of Lz"
    )
    li_type: str = "Li"
    dz: float = Field(0.5, gt=0)
    w: float = Field(2.0, gt=0)
    d_bulk: float = Field(8.0, gt=0)
    window_ps: list[float] | None = Field(None, min_length=2, max_length=2)
    avg_window_ps: float | None = Field(None, gt=0)
    excess_above_id: int | None = Field(None, ge=0)


@dataclass(frozen=True)
class AnalyzeResult:
    results: str
    gb_planes_angstrom: list[float]
    n_frames: int
    numbers: dict[str, Any]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class Analyze(Stage):
    kind = "analyze"
    Config = AnalyzeConfig
    tools = ("numpy",)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: AnalyzeConfig = self.cfg  # type: ignore[assignment]
        md = ctx.upstream_of_kind("md", self.name)
        mdr = ctx.result(md)
        type_map = ",".join(
            f"{t}:{s}" for t, s in sorted(mdr["type_map"].items(), key=lambda x: int(x[0]))
        )
        argv = [
            "bundle",
            "analyze",
            ctx.rel(md, mdr["dump"]),
            "--timestep-fs",
            _fmt(mdr["timestep_fs"]),
            "--type-map",
            type_map,
            "--li-type",
            c.li_type,
            "--dz",
            _fmt(c.dz),
            "--w",
            _fmt(c.w),
            "--d-bulk",
            _fmt(c.d_bulk),
        ]
        planes = None
        if c.gb_fractions:
            lz = mdr["box_angstrom"][2]
            planes = [f * lz for f in c.gb_fractions]
        elif c.gb != "auto":
            planes = list(c.gb)
        if planes:
            argv += ["--gb", ",".join(_fmt(z) for z in planes)]
        if c.window_ps:
            argv += ["--window-ps", ",".join(_fmt(t) for t in c.window_ps)]
        if c.avg_window_ps:
            argv += ["--avg-window-ps", _fmt(c.avg_window_ps)]
        if c.excess_above_id is not None:
            argv += ["--excess-above-id", str(c.excess_above_id)]
        argv += ["--out", OUT]
        return [write_commands(stage_dir, [Command(tuple(argv), "analyze.log")])]

    def collect(self, ctx: Context, stage_dir: Path) -> AnalyzeResult:
        path = stage_dir / OUT / "results.json"
        if not path.exists():
            raise EngineError(f"{path} not written; see {stage_dir / 'analyze.log'}")
        r = read_json(path)
        keys = ("rho_bulk_per_A3", "rho_peak_per_A3", "peak_ratio", "band_ratio")
        numbers: dict[str, Any] = {k: r.get(k) for k in keys}
        numbers["gamma_per_nm2"] = (r.get("gamma_per_nm2") or {}).get("mean")
        numbers["D_cm2_s"] = (r.get("diffusion") or {}).get("D_cm2_s")
        return AnalyzeResult(
            f"{OUT}/results.json", r.get("gb_planes_A", []), r.get("n_frames", 0), numbers
        )


class CheckConfig(Strict):
    reference: str = Field(min_length=1)


@dataclass(frozen=True)
class CheckResult:
    reference: str
    verdict: str  # PASS | FAIL
    exit_status: int
    report: str


class Check(Stage):
    """`bundle check` exits 1 on a FAIL verdict: a result, not an engine failure. The stage
    completes and records the verdict; `bundle run` then exits 1."""

    kind = "check"
    Config = CheckConfig

    def results_path(self, ctx: Context) -> str:
        """The results.json to judge (a plug-in study may wire another analyze stage)."""
        return ctx.rel(ctx.upstream_of_kind("analyze", self.name), OUT, "results.json")

    def reference(self, ctx: Context) -> str:
        return self.cfg.reference  # type: ignore[attr-defined]

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        argv = (
            "bundle",
            "check",
            self.results_path(ctx),
            "--reference",
            self.reference(ctx),
            "--json",
            "check.json",
        )
        return [write_commands(stage_dir, [Command(argv, "check.log", ok_codes=(0, 1))])]

    def execute(self, launcher: launchers.Launcher, stage_dir: Path) -> list[list[str]]:
        (cmd,) = read_commands(stage_dir)
        code = launchers.run(launcher, cmd, stage_dir)
        if code not in cmd.ok_codes:
            raise StageFailed(code, cmd, [launcher.argv(cmd, stage_dir)])
        (stage_dir / "verdict.json").write_text(json.dumps({"exit_status": code}) + "\n")
        return [launcher.argv(cmd, stage_dir)]

    def collect(self, ctx: Context, stage_dir: Path) -> CheckResult:
        code = read_json(stage_dir / "verdict.json")["exit_status"]
        verdict = "PASS" if code == 0 else "FAIL"
        return CheckResult(self.reference(ctx), verdict, code, "check.json")
