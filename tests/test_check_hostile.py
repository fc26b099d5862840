"""`bundle check` against hostile references and results: a NaN or infinite value or bound
is refused at load (it would PASS anything); NaN/inf results give a strict-JSON report
(explicit nulls) that FAILs saying why; --json never overwrites an input."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED

QUANTITIES = {
    "n_frames": {"value": 10, "lower": 1, "upper": 1, "bounds": "absolute", "unit": "1"},
    "peak_ratio": {"value": 3.0, "lower": 0.1, "upper": 0.1, "bounds": "relative", "unit": "1"},
    "band_ratio": {"value": 2.0, "unit": "1"},  # reported only
}


def run(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def strict(text: str):
    def refuse(name):
        raise ValueError(f"bare {name} in the report")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def files(tmp_path):
    results = tmp_path / "results.json"
    doc = {"schema": "gb-analysis/1", "parameters": {"w_A": 2.0}, "n_frames": 10}
    results.write_text(json.dumps(doc | {"peak_ratio": 3.0, "band_ratio": 2.0}))
    ref = tmp_path / "ref.yaml"
    ref.write_text(yaml.safe_dump({"schema": "gb-reference/1", "quantities": QUANTITIES}))
    assert run("check", results, "--reference", ref).exit_code == 0
    return results, ref


BAD_REFERENCES = [
    ("quantities:\n  n_frames: {value: .nan, unit: '1'}", r"quantities.n_frames.value: nan is not"),
    ("quantities:\n  n_frames: {value: .inf, unit: '1'}", r"quantities.n_frames.value: inf is not"),
    (
        "quantities:\n  n_frames: {value: 10, lower: .nan, upper: 1, bounds: absolute, unit: '1'}",
        r"quantities.n_frames.lower: nan is not a finite number",
    ),
    (
        "quantities:\n  n_frames: {value: 10, lower: 1, upper: .inf, bounds: absolute, unit: '1'}",
        r"quantities.n_frames.upper: inf is not a finite number",
    ),
    (
        "parameters: {w_A: .nan}\nquantities:\n  n_frames: {value: 10, unit: '1'}",
        r"parameters.w_A: nan is not a finite number",
    ),
    (
        "parameters: [w_A, 2.0]\nquantities:\n  n_frames: {value: 10, unit: '1'}",
        r"parameters: expected a mapping",
    ),
]


@pytest.mark.parametrize("body, message", BAD_REFERENCES)
def test_non_finite_or_malformed_references_are_refused_naming_the_field(
    files, tmp_path, body, message
):
    results, _ = files
    ref = tmp_path / "bad.yaml"
    ref.write_text("schema: gb-reference/1\n" + body + "\n")
    r = run("check", results, "--reference", ref, "--json", tmp_path / "report.json")
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml: " + message.replace("\\", "") in lines[0], lines
    assert not (tmp_path / "report.json").exists()


def test_nan_and_inf_results_fail_with_the_reason_in_a_strict_json_report(files, tmp_path):
    results, ref = files
    # Python writes NaN/Infinity unless told not to: such a file is what a careless tool makes
    doc = json.loads(results.read_text()) | {"peak_ratio": float("nan"), "band_ratio": 1e999}
    doc["parameters"]["extra"] = float("-inf")
    results.write_text(json.dumps(doc))
    out = tmp_path / "report.json"
    r = run("check", results, "--reference", ref, "--json", out)
    assert r.exit_code == EXIT_CHECK_FAILED, (r.exit_code, r.stderr, r.exception)
    report = strict(out.read_text())
    rows = {c["quantity"]: c for c in report["checks"]}
    assert rows["peak_ratio"]["status"] == "FAIL" and rows["peak_ratio"]["value"] is None
    assert rows["peak_ratio"]["reason"] == "not a finite number in the results: nan"
    assert rows["band_ratio"]["status"] == "NOT-JUDGED" and rows["band_ratio"]["value"] is None
    assert "inf" in rows["band_ratio"]["reason"]
    assert rows["n_frames"]["status"] == "PASS"
    assert report["results"]["parameters"]["extra"] is None
    assert "FAIL  peak_ratio" in r.stdout and "not a finite number in the results" in r.stdout


def test_json_pointing_at_an_input_is_refused_and_the_input_untouched(files, tmp_path):
    results, ref = files
    before = results.read_bytes(), ref.read_bytes()
    for args in (
        (results, "--json", results),
        (tmp_path, "--json", tmp_path / "results.json"),  # RESULTS given as its folder
        (results, "--json", ref),
        (results, "--json", tmp_path),  # a folder
    ):
        r = run("check", args[0], "--reference", ref, *args[1:])
        assert r.exit_code == EXIT_BAD_INPUT, (args, r.exit_code, r.stderr, r.exception)
        assert r.stderr.startswith("error: command line: --json: ") and r.stderr.count("\n") == 1
    assert (results.read_bytes(), ref.read_bytes()) == before


def test_results_whose_parameters_are_not_a_mapping_are_one_line_exit_3(files):
    results, ref = files
    for bad in ([1, 2], "w=2", 3):
        results.write_text(json.dumps({"schema": "gb-analysis/1", "parameters": bad}))
        r = run("check", results, "--reference", ref)
        assert r.exit_code == EXIT_BAD_INPUT, (bad, r.exit_code, r.stderr, r.exception)
        assert "results.json: parameters: expected a mapping" in r.stderr
