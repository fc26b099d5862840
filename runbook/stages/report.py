"""Stage `report`: markdown + PNG + results + the manifests of every earlier stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bundle.core.errors import EngineError
from runbook import stages as _stages
from runbook.config import Strict
from runbook.engine import Context, Stage, python_step, write_commands, write_params


class ReportConfig(Strict):
    pass


@dataclass(frozen=True)
class ReportResult:
    report: str
    figures: list[str]


class Report(Stage):
    kind = "report"
    Config = ReportConfig
    tools = ("numpy",)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        before = ctx.study.stages[: ctx.study.stages.index(self.name)]
        p = {
            "study": ctx.study.name,
            "description": ctx.study.description,
            "profile": ctx.study.profile,
            "stages": [
                {"name": n, "kind": _stages.kind_of(ctx.study, n), "dir": ctx.rel(n)}
                for n in before
            ],
        }
        return [
            write_params(stage_dir, "report.json", p),
            write_commands(stage_dir, [python_step("report", "report.json", "report.log")]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> ReportResult:
        if not (stage_dir / "report.md").exists():
            raise EngineError(f"{stage_dir / 'report.md'} not written; see report.log")
        figs = sorted(p.name for p in (stage_dir / "figures").glob("*.png"))
        return ReportResult("report.md", figs)
