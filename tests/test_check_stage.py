"""The check stage's verdict is a value its report states; a check that could not judge
is an engine error, never a FAIL. `python -m checks check` runs for real on a real
analysis (tests/test_results_schema.py) against a reference it cannot meet."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bundle.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EngineError
from runbook.stages.analyze import REPORT, Check, CheckConfig
from tests.test_results_schema import analysis
from tests.test_sweep_runs import unmeetable_reference


def python_m_checks(folder, request: dict) -> subprocess.CompletedProcess:
    (folder / "check_request.json").write_text(json.dumps(request))
    argv = [sys.executable, "-m", "checks", "check", "check_request.json"]
    return subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=300)


def collect(folder):
    stage = Check("check", CheckConfig(reference="unmeetable"))
    return stage.collect(None, folder)  # type: ignore[arg-type]


def test_a_fail_verdict_is_a_value_and_a_crash_an_engine_error(tmp_path):
    analysis(tmp_path, 0)  # tmp_path/out0/results.json
    ref = unmeetable_reference(tmp_path)
    stage = tmp_path / "07_check"
    stage.mkdir()
    r = python_m_checks(stage, {"results": "../out0", "reference": str(ref), "report": REPORT})
    assert r.returncode == EXIT_CHECK_FAILED, r.stderr
    (stage / "verdict.json").write_text(json.dumps({"exit_status": r.returncode}))
    res = collect(stage)
    assert res.verdict == "FAIL" and res.exit_status == 1 and res.report == REPORT
    # the report is gone (a crash before it was written): exit 1 is not a FAIL
    (stage / REPORT).unlink()
    with pytest.raises(EngineError, match="wrote no report"):
        collect(stage)
    # a report that contradicts the exit status is not believed either
    (stage / REPORT).write_text(json.dumps({"status": "PASS"}))
    with pytest.raises(EngineError, match="says PASS but it exited 1"):
        collect(stage)


def test_bad_input_to_the_check_is_exit_3_and_no_report(tmp_path):
    r = python_m_checks(tmp_path, {"results": "nowhere", "reference": "x", "report": REPORT})
    assert r.returncode == EXIT_BAD_INPUT and "nowhere" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / REPORT).exists()


def test_a_check_without_a_reference_says_not_judged_and_why_never_pass(tmp_path):
    from runbook.llzo import report
    from runbook.stages.analyze import NOT_JUDGED

    with pytest.raises(ValueError, match="not_judged"):
        CheckConfig()  # neither: refused
    with pytest.raises(ValueError, match="not_judged"):
        CheckConfig(reference="x", not_judged="toy lengths")  # both: refused
    stage = Check("check", CheckConfig(not_judged="toy lengths no reference was made with"))
    written = stage.render(None, tmp_path)  # type: ignore[arg-type]
    assert sorted(p.name for p in written) == ["commands.json", NOT_JUDGED]
    assert stage.execute(None, tmp_path) == []  # type: ignore[arg-type]
    res = stage.collect(None, tmp_path)  # type: ignore[arg-type]
    assert (res.verdict, res.exit_status, res.report) == ("NOT JUDGED", 0, NOT_JUDGED)
    doc = json.loads((tmp_path / NOT_JUDGED).read_text())
    lines = report.metrics_table({}, {}, None, doc)
    assert "**bundle check: NOT JUDGED** (toy lengths no reference was made with)." in lines
