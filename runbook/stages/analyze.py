"""Stages `analyze` (grain-boundary metrics of the MD dump) and `check` (the results
against a reference). Both call the analysis library, not the `bundle` CLI: render writes
the typed request (checks.request) as JSON, execute runs `python -m checks analyze|check
REQUEST.json` through the launcher, collect reads what it wrote. A check's verdict is the
value its report states (PASS/FAIL); a check that crashed, or wrote no report, is a
failed stage (an engine error), never a FAIL.

`AnalysisStage` is what a sweep needs of an analysis: its results and a re-analysis at
another band half-width `w` (the same request, one parameter changed).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from bundle.core.errors import EngineError
from checks import request
from checks.results import load_results
from checks.schema import Results
from runbook import files, launchers
from runbook.config import Strict
from runbook.files import read_commands, read_json, write_commands, write_params
from runbook.launchers import Command
from runbook.stage import Context, Stage, StageFailed
from runbook.stages.md import MdResult

OUT = "analysis"
REQUEST = "analyze.json"
DEVIATION = "deviation.json"  # the MD's committee summary, when it ran with one


def fmt6(x: float) -> float:
    """A length or time as rendered into inputs (6 significant digits)."""
    return float(f"{x:.6g}")


def analysis_command(request_file: str, log: str) -> Command:
    return Command(("python", "-m", "checks", "analyze", request_file), log)


class AnalysisStage(Stage):
    """A stage whose output is a gb-analysis/1 results.json; `requests` are the analyses it
    ran (name -> request, each run in the stage folder)."""

    results_file: ClassVar[str]

    def results(self, stage_dir: Path) -> dict:
        return load_results(stage_dir / self.results_file)

    def requests(self, stage_dir: Path) -> dict[str, request.AnalysisRequest]:
        raise NotImplementedError

    def rerun(self, stage_dir: Path, out: Path, **change: Any) -> dict[str, dict]:
        """Every analysis of the stage again in `out`, with `change`d parameters (e.g.
        `w=1.5`); the stage's input files are read where they are."""
        docs = {}
        for name, req in self.requests(stage_dir).items():
            moved = req.absolute(stage_dir)
            again = dataclasses.replace(moved, out=str(out / Path(req.out).name), **change)
            docs[name] = request.analyze(again)[1]
        return docs

    def reanalyse(self, stage_dir: Path, w: float, out: Path) -> dict:
        """The stage's results.json as it would be with band half-width `w`."""
        (doc,) = self.rerun(stage_dir, out, w=w).values()
        return doc


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


class Analyze(AnalysisStage):
    kind = "analyze"
    Config = AnalyzeConfig
    tools = ("numpy",)
    results_file = f"{OUT}/results.json"

    def request(self, ctx: Context, md: str, mdr: MdResult) -> request.AnalysisRequest:
        """The analysis of md stage `md` (result `mdr`); with its committee summary in
        DEVIATION when a committee ran with it (render writes that file)."""
        c: AnalyzeConfig = self.cfg  # type: ignore[assignment]
        planes = None
        if c.gb_fractions:
            planes = [f * mdr.box_angstrom[2] for f in c.gb_fractions]
        elif c.gb != "auto":
            planes = list(c.gb)
        return request.AnalysisRequest(
            dumps=(ctx.rel(md, mdr.dump),),
            timestep_fs=fmt6(mdr.timestep_fs),
            out=OUT,
            type_map=",".join(f"{t}:{s}" for t, s in sorted(mdr.type_map.items(), key=_int)),
            li_type=c.li_type,
            excess_above_id=c.excess_above_id,
            gb=tuple(fmt6(z) for z in planes) if planes else None,  # type: ignore[arg-type]
            dz=fmt6(c.dz),
            w=fmt6(c.w),
            d_bulk=fmt6(c.d_bulk),
            window_ps=tuple(fmt6(t) for t in c.window_ps) if c.window_ps else None,  # type: ignore[arg-type]
            avg_window_ps=fmt6(c.avg_window_ps) if c.avg_window_ps else 50.0,
            deviation=DEVIATION if mdr.deviation is not None else None,
        )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        md = ctx.upstream_of_kind("md", self.name)
        mdr = ctx.result(md, MdResult)
        req = self.request(ctx, md, mdr)
        written = []
        if mdr.deviation is not None:  # a committee ran with the MD: its verdict goes along
            written.append(write_params(stage_dir, DEVIATION, mdr.deviation))
        return [
            *written,
            write_params(stage_dir, REQUEST, req.to_json()),
            write_commands(stage_dir, [analysis_command(REQUEST, "analyze.log")]),
        ]

    def requests(self, stage_dir: Path) -> dict[str, request.AnalysisRequest]:
        return {"analysis": request.AnalysisRequest.from_json(read_json(stage_dir / REQUEST))}

    def collect(self, ctx: Context, stage_dir: Path) -> AnalyzeResult:
        path = stage_dir / self.results_file
        files.written(path, "analyze.log")
        r = Results.of(self.results(stage_dir), path)
        numbers: dict[str, Any] = {
            "rho_bulk_per_A3": r.rho_bulk_per_A3,
            "rho_peak_per_A3": r.rho_peak_per_A3,
            "peak_ratio": r.peak_ratio,
            "band_ratio": r.band_ratio,
            "gamma_per_nm2": r.gamma_per_nm2.mean,
            "D_cm2_s": r.diffusion.D_cm2_s if r.diffusion else None,
        }
        return AnalyzeResult(self.results_file, r.gb_planes_A, int(r.n_frames), numbers)


def _int(item: tuple[str, str]) -> int:
    return int(item[0])


class CheckConfig(Strict):
    reference: str | None = Field(None, min_length=1)
    not_judged: str | None = Field(
        None, min_length=1, description="instead of `reference`: why no shipped reference can "
        "judge this profile's results (the stage records it; the verdict is NOT JUDGED)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one(self) -> CheckConfig:
        if (self.reference is None) == (self.not_judged is None):
            raise ValueError("give `reference`, or `not_judged` saying why none applies")
        return self


@dataclass(frozen=True)
class CheckResult:
    reference: str
    verdict: str  # PASS | FAIL: the report's status; NOT JUDGED: no reference applies
    exit_status: int
    report: str


CHECK_REQUEST = "check_request.json"
REPORT = "check.json"
NOT_JUDGED = "not_judged.json"  # a check with no reference: why (read by reports)


class Check(Stage):
    """The results judged against a reference by `python -m checks check`. Its exit status
    1 is a FAIL verdict, not a failure: the stage completes and records the report's
    verdict; `bundle run` then exits 1."""

    kind = "check"
    Config = CheckConfig

    def results_path(self, ctx: Context) -> str:
        """The results.json to judge (a plug-in study may wire another analyze stage)."""
        return ctx.rel(ctx.upstream_of_kind("analyze", self.name), OUT, "results.json")

    def reference(self, ctx: Context) -> str | None:
        return self.cfg.reference  # type: ignore[attr-defined]

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        if self.reference(ctx) is None:
            why = {"verdict": "NOT JUDGED", "reason": self.cfg.not_judged}  # type: ignore[attr-defined]
            return [write_params(stage_dir, NOT_JUDGED, why), write_commands(stage_dir, [])]
        req = request.CheckRequest(self.results_path(ctx), self.reference(ctx), REPORT)
        argv = ("python", "-m", "checks", "check", CHECK_REQUEST)
        return [
            write_params(stage_dir, CHECK_REQUEST, dataclasses.asdict(req)),
            write_commands(stage_dir, [Command(argv, "check.log", ok_codes=(0, 1))]),
        ]

    def execute(self, launcher: launchers.Launcher, stage_dir: Path) -> list[list[str]]:
        cmds = read_commands(stage_dir)
        if not cmds:
            return []  # not judged: nothing to run
        (cmd,) = cmds
        code = launchers.run(launcher, cmd, stage_dir)
        if code not in cmd.ok_codes:
            raise StageFailed(code, cmd, [launcher.argv(cmd, stage_dir)])
        (stage_dir / "verdict.json").write_text(json.dumps({"exit_status": code}) + "\n")
        return [launcher.argv(cmd, stage_dir)]

    def collect(self, ctx: Context, stage_dir: Path) -> CheckResult:
        if self.reference(ctx) is None:
            return CheckResult("", "NOT JUDGED", 0, NOT_JUDGED)
        code = read_json(stage_dir / "verdict.json")["exit_status"]
        if not (stage_dir / REPORT).is_file():  # exit 1 without a report: it crashed
            raise EngineError(
                f"the check wrote no report (exit {code}); see {stage_dir / 'check.log'}"
            )
        verdict = read_json(stage_dir / REPORT)["status"]
        if (verdict, code) not in (("PASS", 0), ("FAIL", 1)):
            raise EngineError(
                f"the check's report says {verdict} but it exited {code}; see "
                f"{stage_dir / 'check.log'}"
            )
        return CheckResult(self.reference(ctx), verdict, code, REPORT)
