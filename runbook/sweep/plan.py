"""A sweep laid out on disk: the points, each a run folder and a frozen study file.

    RUN/sweep/plan.json              the points, their study files and run folders
    RUN/sweep/studies/<point>.yaml   the point's study (sweep block removed, the point's
                                     seed and temperature set, the profile chosen)
    RUN/points/<point>/              the point's run folder (NN_<stage>/ ...)

`plan()` reads the study through runbook.loader, so the study, its stage blocks, its
`by_profile` entries, its `sweep.set` fields and every point are validated (errors
naming the user's file) before a file is written; the frozen files are what the Slurm
jobs load. A study without a sweep block is one point whose run folder is RUN itself.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from bundle.core import io
from bundle.core.errors import InputError
from runbook import engine, loader
from runbook.config import Study, SweepSpec
from runbook.stage import Context

PLAN = "plan.json"
PLAN_SCHEMA = "sweep-plan/1"


@dataclass(frozen=True)
class PlannedPoint:
    name: str
    seed: int
    temperature_K: float | None
    study_file: Path  # the frozen study of this point (sweep block removed, overrides applied)
    run_dir: Path


@dataclass(frozen=True)
class Plan:
    """A sweep laid out under `run_dir`: control files in `run_dir/sweep/`, one run folder
    per point in `run_dir/points/<name>/`. A study without a sweep block is one point
    whose run folder is `run_dir` itself."""

    run_dir: Path
    study: str
    stages: tuple[str, ...]
    points: tuple[PlannedPoint, ...]
    spec: SweepSpec | None

    @property
    def control(self) -> Path:
        return self.run_dir / "sweep"

    @property
    def widths(self) -> list[float]:
        return list(self.spec.band_widths_A) if self.spec else []

    def point(self, name: str) -> PlannedPoint:
        """The point called `name` (`--point NAME`)."""
        for p in self.points:
            if p.name == name:
                return p
        raise InputError(
            "--point", name, "no such point", f"points: {', '.join(p.name for p in self.points)}"
        )


def plan(
    study: str | Path, run_dir: Path, overrides: list[str] | None = None, profile: str | None = None
) -> Plan:
    """Validate the study and every point's variant of it, and write the frozen point
    studies. Nothing is run; a bad field fails here, before anything is submitted."""
    return lay_out(loader.load_all(study, overrides, profile), run_dir)


def lay_out(loaded: loader.Loaded, run_dir: Path) -> Plan:
    """The plan of a loaded study under `run_dir`, its control files written (frozen
    point studies and plan.json; a file whose bytes are unchanged is not rewritten)."""
    pl, texts = layout(loaded, run_dir)
    write_files(texts)
    return pl


def layout(loaded: loader.Loaded, run_dir: Path) -> tuple[Plan, dict[Path, str]]:
    """The plan of a loaded study under `run_dir` and the text of each control file
    (pure: nothing is written, so a refused sweep leaves nothing behind)."""
    run_dir = run_dir.resolve()
    control = run_dir / "sweep"
    chosen = [(p.point.name, p.point.seed, p.point.temperature_K, p.doc) for p in loaded.points]
    if loaded.sweep is None:  # no sweep: one point, the study itself
        chosen = [("study", 0, None, loaded.doc)]
    planned, texts = [], {}
    for name, seed, temperature, doc in chosen:
        frozen = control / "studies" / f"{name}.yaml"
        texts[frozen] = (
            f"# {name} of {loaded.file} (written by runbook.sweep; edit the study, not this "
            "file)\n" + yaml.safe_dump(doc, sort_keys=False)
        )
        point_dir = run_dir / "points" / name if loaded.sweep else run_dir
        planned.append(PlannedPoint(name, seed, temperature, frozen, point_dir))
    result = Plan(
        run_dir, str(loaded.file), tuple(loaded.study.stages), tuple(planned), loaded.sweep
    )
    texts[control / PLAN] = _plan_text(result)
    return result, texts


def write_files(texts: dict[Path, str]) -> None:
    """Each file atomically (temp file, rename), unless its bytes are already these."""
    for path, text in texts.items():
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def _plan_text(pl: Plan) -> str:
    doc = {
        "schema": PLAN_SCHEMA,
        "study": pl.study,
        "stages": list(pl.stages),
        "sweep": pl.spec.model_dump() if pl.spec else None,
        "points": [
            {
                "name": p.name,
                "seed": p.seed,
                "temperature_K": p.temperature_K,
                "study_file": str(p.study_file),
                "run_dir": str(p.run_dir),
            }
            for p in pl.points
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def load_plan(run_dir: Path) -> Plan:
    path = run_dir.resolve() / "sweep" / PLAN
    doc = io.read_mapping(path, missing="not a sweep run folder", fix="give the --run-dir of a run")
    spec = SweepSpec.model_validate(doc["sweep"]) if doc.get("sweep") else None
    pts = tuple(
        PlannedPoint(p["name"], p["seed"], p["temperature_K"], Path(p["study_file"]),
                     Path(p["run_dir"]))
        for p in doc["points"]
    )  # fmt: skip
    return Plan(run_dir.resolve(), doc["study"], tuple(doc["stages"]), pts, spec)


def point_progress(p: PlannedPoint) -> list[str]:
    """Each stage's status in the point's run folder (complete/failed/incomplete/pending)."""
    return statuses(loader.load(p.study_file), p.run_dir)


def statuses(study: Study, run_dir: Path) -> list[str]:
    ctx = Context(study, run_dir)
    return [engine.stage_state(ctx, n).status for n in study.stages]


def first_incomplete(p: PlannedPoint) -> int | None:
    """Index of the first stage that is not complete; None when the point is done."""
    for i, status in enumerate(point_progress(p)):
        if status != "complete":
            return i
    return None
