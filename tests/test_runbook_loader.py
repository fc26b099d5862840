"""One study loader (runbook.loader): a typo inside a stage block, inside `by_profile` (an
unknown profile too) or in a `sweep.set` field is refused before any stage runs or any
job is submitted, in one line naming the user's file and the dotted field; exit 3.

The study is the shipped llzo-gb (its sweep included). With `--executor slurm` the
machine's PATH is emptied: a submission would fail with exit 5 (no sbatch), so exit 3
shows the study was refused before anything was submitted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook import config, loader
from tests.test_runbook_config import assert_one_line_error, run_cli


def llzo() -> dict:
    return yaml.safe_load(config.resolve_path("llzo-gb").read_text())


def refused(res, lines, study: Path, run: Path, *needles: str) -> None:
    assert_one_line_error(res, lines, study, run, *needles)
    assert not run.exists(), "nothing may be written before the study is valid"


def _edit(doc: dict, path: tuple, value) -> dict:
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


TYPOS = {
    "in a stage block": (
        ("production", "tim_ps"),
        20,
        ("production.tim_ps: Extra inputs are not permitted",),
    ),
    "in by_profile, a profile not active": (
        ("equilibrate", "by_profile", "h200", "timestep"),
        0.5,
        ("equilibrate.by_profile.h200.timestep: Extra inputs are not permitted", "profile h200"),
    ),
    "a bad value in by_profile": (
        ("insert", "by_profile", "h200", "n"),
        "many",
        ("insert.by_profile.h200.n: should be a valid integer (got 'many')",),
    ),
    "an unknown profile in by_profile": (
        ("build", "by_profile", "h100"),
        {"repeat": [3, 5, 1]},
        ("build.by_profile.h100: unknown profile 'h100'", "profiles: cpu, cpu-allegro, h200"),
    ),
    "a sweep.set field no stage has": (
        ("sweep", "set", "seed"),
        ["build.seed", "equilibrate.sed", "insert.seed"],
        ("sweep.set.seed: 'equilibrate.sed': equilibrate has no field 'sed'", "temperature_K"),
    ),
    "a sweep.set field naming no stage": (
        ("sweep", "set", "temperature"),
        ["equilibrat.temperature_K"],
        ("sweep.set.temperature: 'equilibrat.temperature_K' does not name a field of a stage",),
    ),
    "a sweep.set field that cannot hold the value": (
        ("sweep", "set", "seed"),
        ["build.plane"],
        ("build.plane: should be a valid list (got 1)", "(sweep point seed1)"),
    ),
}


@pytest.mark.parametrize("executor", ["local", "slurm"])
@pytest.mark.parametrize("case", sorted(TYPOS))
def test_a_typo_is_refused_before_anything_runs(tmp_path, monkeypatch, case, executor):
    path, value, needles = TYPOS[case]
    doc = _edit(llzo(), path, value)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no sbatch: submitting exits 5
    res, lines, study, run = run_cli(tmp_path, doc, "--executor", executor)
    refused(res, lines, study, run, *needles)


def test_the_shipped_studies_load_under_every_profile():
    for name in ("llzo-gb", "smoke-li2o"):
        for profile in ("cpu", "h200"):
            loaded = loader.load_all(name, profile=profile)
            assert loaded.study.profile == profile
            for p in loaded.points:
                assert p.study.stages == loaded.study.stages


def test_by_profile_is_applied_by_the_loader():
    """Every stage's block is the active profile's: the h200 entries win under h200, the
    plain block under cpu; the recorded blocks carry no by_profile left to apply."""
    cpu = loader.load("llzo-gb")
    h200 = loader.load("llzo-gb", profile="h200")
    assert cpu.blocks["insert"]["n"] == 24 and h200.blocks["insert"]["n"] == 100
    assert cpu.blocks["build"]["plane"] == [2, 1] and h200.blocks["build"]["plane"] == [3, 1]
    assert h200.blocks["check"]["reference"] == "llzo-gb-700K-published"
    assert all("by_profile" not in b for b in h200.blocks.values())
    assert h200.kinds["production"] == "md" and h200.kinds["check"] == "check"


def test_sweep_points_are_validated_studies():
    loaded = loader.load_all("llzo-gb", overrides=["sweep.temperatures_K=[600,700]"])
    names = [p.point.name for p in loaded.points]
    assert names == [f"seed{s}_T{t}K" for t in (600, 700) for s in (1, 2, 3)]
    p = loaded.points[4]  # seed2 at 700 K
    assert p.study.blocks["build"]["seed"] == 2 and p.study.blocks["insert"]["seed"] == 2
    assert p.study.blocks["production"]["temperature_K"] == 700
