"""Stage `report`: markdown + PNG + results + the manifests of every earlier stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook import files
from runbook.config import Strict
from runbook.files import python_step, write_commands, write_params
from runbook.stage import Context, Stage


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
        p = {
            "study": ctx.study.name,
            "description": ctx.study.description,
            "profile": ctx.study.profile,
            "stages": [
                {"name": n, "kind": ctx.kind_of(n), "dir": ctx.rel(n)}
                for n in ctx.before(self.name)
            ],
        }
        return [
            write_params(stage_dir, "report.json", p),
            write_commands(stage_dir, [python_step("report", "report.json", "report.log")]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> ReportResult:
        files.written(stage_dir / "report.md", "report.log")
        figs = sorted(p.name for p in (stage_dir / "figures").glob("*.png"))
        return ReportResult("report.md", figs)
