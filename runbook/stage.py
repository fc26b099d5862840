"""The stage base: what a stage is (render / execute / collect) and what it may know of
the run (`Context`). Stage kinds (runbook.stages, plug-ins such as runbook.llzo.stages)
subclass `Stage`; the engine (runbook.engine) runs them.

A stage's result is a typed value (a dataclass) that collect returns and the manifest
records; a later stage reads it back typed: `ctx.result("md", MdResult)`. A recorded
result that does not fit the type is an error naming the manifest, never a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from bundle.core.errors import InputError
from runbook import launchers
from runbook.config import Study
from runbook.files import MANIFEST, read_commands, read_manifest

R = TypeVar("R")


@cache
def _adapter(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


def typed(kind: type[R], value: Any, where: Path | str, field: str = "result") -> R:
    """`value` (plain JSON data) as `kind`; InputError naming `where` and the field."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in (field, *err["loc"]))
        raise InputError(where, loc, f"{err['msg']} (not a {kind.__name__})") from None


@dataclass(frozen=True)
class Context:
    """What a stage may know about the run: the study, the run folder, earlier stages."""

    study: Study
    run_dir: Path

    def index(self, name: str) -> int:
        return self.study.stages.index(name) + 1

    def dir_of(self, name: str) -> Path:
        return self.run_dir / f"{self.index(name):02d}_{name}"

    def rel(self, name: str, *parts: str) -> str:
        """Path of another stage's file as written into rendered inputs (relative)."""
        return "/".join(["..", self.dir_of(name).name, *parts])

    def kind_of(self, name: str) -> str:
        """The stage's role (`md`, `check`, `report`, ...), resolved by the loader."""
        return self.study.kinds[name]

    def manifest(self, name: str) -> dict:
        m = read_manifest(self.dir_of(name))
        if not m or m.get("status") != "complete":
            raise InputError(
                self.dir_of(name), "manifest", f"stage {name} is not complete", "run it first"
            )
        return m

    def result(self, name: str, kind: type[R]) -> R:
        """The result of a complete earlier stage as `kind` (its result dataclass, or a
        view of some of its fields); one that does not fit is an InputError naming the
        stage's manifest and the field."""
        return typed(kind, self.manifest(name).get("result"), self.dir_of(name) / MANIFEST)

    def before(self, name: str) -> list[str]:
        """The stages listed before `name`, in order."""
        return self.study.stages[: self.study.stages.index(name)]

    def last_of_kind(self, kind: str, before: str) -> str | None:
        """The name of the last stage of `kind` before stage `before`, or None."""
        found = [n for n in self.before(before) if self.kind_of(n) == kind]
        return found[-1] if found else None

    def upstream_of_kind(self, kind: str, before: str) -> str:
        """The name of the last stage of `kind` before stage `before` (input wiring)."""
        name = self.last_of_kind(kind, before)
        if name is None:
            raise InputError(
                self.study.source, "stages", f"stage {before} needs a `{kind}` stage before it"
            )
        return name


class Stage:
    """Base of every stage: a small typed dataclass (`name`, validated `cfg`).

    Subclasses set `kind`, `Config` (pydantic model of their study block), `tools`
    (runbook.files.LOCKED_TOOLS keys recorded in the manifest) and implement `render` and
    `collect`. `preflight` runs for every stage before any stage executes (missing files,
    guards).
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]]
    tools: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, cfg: BaseModel):
        self.name, self.cfg = name, cfg

    def preflight(self, ctx: Context) -> None:
        """Cheap checks that need no upstream outputs; raise InputError."""

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        raise NotImplementedError

    def execute(self, launcher: launchers.Launcher, stage_dir: Path) -> list[list[str]]:
        """Run `commands.json` in order; stop at the first failing command."""
        ran = []
        for cmd in read_commands(stage_dir):
            ran.append(launcher.argv(cmd, stage_dir))
            code = self.run_command(launcher, cmd, stage_dir)
            if not self.accepts(code, cmd, stage_dir):
                raise StageFailed(code, cmd, ran)
        return ran

    def run_command(
        self, launcher: launchers.Launcher, cmd: launchers.Command, stage_dir: Path
    ) -> int:
        """Run one command through the launcher; its exit status (a stage may time it)."""
        return launchers.run(launcher, cmd, stage_dir)

    def accepts(self, code: int, cmd: launchers.Command, stage_dir: Path) -> bool:
        """Whether a command's exit status lets the stage go on (default: its ok_codes)."""
        return code in cmd.ok_codes

    def collect(self, ctx: Context, stage_dir: Path) -> Any:
        raise NotImplementedError

    def probe(self, stage_dir: Path) -> dict[str, str]:
        """Versions found in the outputs (e.g. the pw.x banner); default: none."""
        return {}


class StageFailed(Exception):
    def __init__(self, code: int, cmd: launchers.Command, ran: list[list[str]]):
        super().__init__(f"exit status {code}")
        self.code, self.cmd, self.ran = code, cmd, ran
