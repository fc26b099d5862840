"""The shipped llzo-gb sweep run here (`bundle run llzo-gb`, no --executor): partial runs
of a sweep study, and the verdict of every point's check stage reaching the exit status.

The MD is cut to under a picosecond with `--set` (real bicrystals, real Buckingham +
PPPM MD, real analyses and checks; the numbers are not physics). The failing check is
the study's own check stage given a reference whose one quantity no run can meet.
The same on Slurm with --wait: tests/test_slurm_sweep.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_CHECK_FAILED

pytestmark = [pytest.mark.engine, pytest.mark.slow]

runner = CliRunner()
# the relaxation is tests/test_llzo_relax.py's: here a fixed translation, brief minimisation
TINY = [
    "build.scan=null",
    "build.gap_A=1.0",
    *(
        f"{r}.{k}"
        for r in ("relax", "relax_control")
        for k in ("anneal_ps=0.0", "maxiter=40", "fmax_bound_eV_A=100.0")
    ),
    "equilibrate_control.time_ps=0.2",
    "production_control.time_ps=0.4",
    "production_control.dump_every_ps=0.04",
    "equilibrate.time_ps=0.2",
    "production.time_ps=0.4",
    "production.dump_every_ps=0.04",
    "production_excess.time_ps=0.4",
    "production_excess.dump_every_ps=0.04",
    "analyze.avg_window_ps=0.4",
]


def unmeetable_reference(folder: Path) -> Path:
    """A gb-reference/1 whose one judged quantity no run meets (peak ratio 1000 ± 1)."""
    path = folder / "unmeetable.yaml"
    doc = {
        "schema": "gb-reference/1",
        "name": "unmeetable",
        "source": "tests/test_sweep_runs.py: a check that must FAIL",
        "parameters": {},
        "quantities": {
            "peak_ratio": {"value": 1000.0, "lower": 1.0, "upper": 1.0, "bounds": "absolute",
                           "unit": "1", "source": "none"},
        },
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    return path


def tiny_sets(*more: str) -> list[str]:
    args = []
    for s in (*TINY, *more):
        args += ["--set", s]
    return args


def bundle_run(run: Path, *args: str):
    return runner.invoke(app, ["run", "llzo-gb", "--run-dir", str(run), *args])


def stage_dirs(point: Path) -> list[str]:
    return sorted(p.name for p in point.glob("[0-9][0-9]_*"))


def test_until_builds_every_point_and_point_selects_one(tmp_path):
    run = tmp_path / "run"
    seeds = ["--set", "sweep.seeds=[1,2]"]
    r = bundle_run(run, *seeds, "--point", "seed2", "--until", "build_control")
    assert r.exit_code == 0, r.output
    assert stage_dirs(run / "points" / "seed2") == ["01_model", "02_build_control"]
    assert not (run / "points" / "seed1").exists()  # --point: only that point
    r = bundle_run(run, *seeds, "--until", "build_control")
    assert r.exit_code == 0, r.output
    for point in ("seed1", "seed2"):
        assert stage_dirs(run / "points" / point) == ["01_model", "02_build_control"]
        m = json.loads((run / "points" / point / "02_build_control" / "manifest.json").read_text())
        assert m["status"] == "complete"
    assert "[2/14] build_control: complete, skipped" in r.output  # seed2 was built already
    assert "sweep report: not written" in r.output
    assert not (run / "sweep" / "report" / "report.md").exists()
    # the recorded study is the point's effective one (its seed set, by_profile applied)
    study = json.loads((run / "points" / "seed1" / "study.json").read_text())
    assert study["blocks"]["build"]["seed"] == 1 and "by_profile" not in study["blocks"]["build"]
    r = bundle_run(run, *seeds, "--point", "seed3", "--until", "build_control")
    assert r.exit_code == 3 and "--point: seed3: no such point" in r.output


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep_fail")
    ref = unmeetable_reference(tmp)
    run = tmp / "run"
    r = bundle_run(run, *tiny_sets("sweep.seeds=[1,2]", f"check.reference={ref}"))
    return r, run


def test_a_failing_check_of_the_shipped_sweep_exits_1(failing_sweep):
    r, run = failing_sweep
    assert r.exit_code == EXIT_CHECK_FAILED, r.output
    assert "seed1:check" in r.output and "seed2:check" in r.output and "FAILED" in r.output
    for point in ("seed1", "seed2"):
        check = run / "points" / point / "13_check"
        assert json.loads((check / "check.json").read_text())["status"] == "FAIL"
        m = json.loads((check / "manifest.json").read_text())
        assert m["status"] == "complete" and m["result"]["verdict"] == "FAIL"


def test_the_sweep_report_lists_each_points_verdict(failing_sweep):
    _, run = failing_sweep
    report = run / "sweep" / "report"
    doc = json.loads((report / "sweep.json").read_text())
    assert doc["verdicts"] == {"seed1": {"check": "FAIL"}, "seed2": {"check": "FAIL"}}
    text = (report / "report.md").read_text()
    assert "| seed1 | check | FAIL |" in text and "| seed2 | check | FAIL |" in text
    assert "2 check(s) FAILED." in text
