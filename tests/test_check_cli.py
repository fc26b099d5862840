"""`bundle check`: PASS/FAIL per quantity against references built around a real results
document, the JSON report, missing quantities, unbounded entries, parameter mismatches,
bad reference files, and the shipped LLZO reference resolving every key."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from checks.lammpsio import dump_columns, write_frame
from checks.reference import load_reference
from checks.results import get_path

L = np.array([10.0, 10.0, 40.0])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results document of a 60 ps walk (60 frames, Li with excess ids 41..50)."""
    tmp = tmp_path_factory.mktemp("check")
    rng = np.random.default_rng(5)
    ids, types = np.arange(1, 61), np.r_[np.ones(50, int), np.full(10, 2)]
    pos = rng.uniform(0, 1, (60, 3)) * L
    with open(tmp / "t.dump", "wb") as f:
        for k in range(61):
            write_frame(
                f, 1000 * k, [0, 0, 0], L, dump_columns("unwrapped", ids, types, pos, [0, 0, 0], L)
            )
            pos = pos + rng.normal(scale=0.5, size=pos.shape)
    args = ["--timestep-fs", "1", "--type-map", "1:Li,2:O", "--excess-above-id", "40"]
    r = CliRunner().invoke(app, ["analyze", str(tmp / "t.dump"), *args, "--out", str(tmp / "out")])
    assert r.exit_code == 0, r.stderr
    return tmp / "out" / "results.json"


def check(*args):
    return CliRunner().invoke(app, ["check", *map(str, args)])


def write_ref(path, quantities, parameters=None):
    doc = {
        "schema": "gb-reference/1",
        "name": "test-ref",
        "source": "this test",
        "parameters": parameters or {"w_A": 2.0},
        "quantities": quantities,
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


def around(doc, key, rel=0.01, **extra):
    """A reference entry at the results' own value, ±rel."""
    return {
        "value": get_path(doc, key),
        "lower": rel,
        "upper": rel,
        "bounds": "relative",
        "unit": "1",
        "source": "test",
    } | extra


KEYS = [
    "rho_bulk_per_A3",
    "gamma_per_nm2.mean",
    "excess.enrichment",
    "diffusion.D_cm2_s.all",
    "excess.per_gb_mean.1",
]


def test_every_quantity_within_bounds_passes_and_the_report_says_so(results, tmp_path):
    doc = json.loads(results.read_text())
    ref = write_ref(tmp_path / "r.yaml", {k: around(doc, k) for k in KEYS})
    r = check(results, "--reference", ref, "--json", tmp_path / "rep" / "check.json")
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert [ln.split()[:2] for ln in lines[: len(KEYS)]] == [["PASS", k] for k in KEYS]
    assert lines[len(KEYS)].startswith("PASS: 5 pass, 0 fail of 5 judged")
    rep = json.loads((tmp_path / "rep" / "check.json").read_text())
    assert rep["schema"] == "gb-check/1" and rep["status"] == "PASS"
    assert set(rep["session"]) >= {"bundle_version", "time_utc", "host"}
    assert rep["results"]["parameters"] == doc["parameters"]
    row = rep["checks"][0]
    assert row["value"] == doc["rho_bulk_per_A3"] and row["status"] == "PASS"
    assert row["limits"] == pytest.approx([0.99 * row["value"], 1.01 * row["value"]])


def test_out_of_bounds_missing_and_unbounded_quantities(results, tmp_path):
    doc = json.loads(results.read_text())
    g = doc["gamma_per_nm2"]["mean"]
    quantities = {
        "gamma_per_nm2.mean": {
            "value": g - 1.0,
            "lower": 0.1,
            "upper": 0.5,
            "bounds": "absolute",
            "unit": "Li/nm²",
        },  # limits [g - 1.1, g - 0.5]: above
        "excess.enrichment": around(doc, "excess.enrichment"),
        "no.such.quantity": {
            "value": 1.0,
            "lower": 0.1,
            "upper": 0.1,
            "bounds": "relative",
            "unit": "1",
        },
        "box_A.2": {"value": 40.0, "unit": "Å"},  # no bounds: reported only
    }
    ref = write_ref(tmp_path / "r.yaml", quantities)
    r = check(results, "--reference", ref, "--json", tmp_path / "c.json")
    assert r.exit_code == EXIT_CHECK_FAILED, r.output
    out = r.stdout.splitlines()
    assert (
        out[0].startswith("FAIL  gamma_per_nm2.mean")
        and f"above the upper limit {g - 0.5:.4g}" in out[0]
    )
    assert out[1].startswith("PASS  excess.enrichment")
    assert out[2].startswith("FAIL  no.such.quantity") and "missing from the results" in out[2]
    assert out[3].startswith("----  box_A.2") and "no bounds" in out[3]
    assert "2 of 3 judged quantities FAILED" in r.stderr
    rep = json.loads((tmp_path / "c.json").read_text())
    assert [c["status"] for c in rep["checks"]] == ["FAIL", "PASS", "FAIL", "NOT-JUDGED"]
    assert rep["summary"] == {"judged": 3, "pass": 1, "fail": 2, "not_judged": 1}


def test_a_null_section_is_a_fail_with_its_reason(results, tmp_path):
    doc = json.loads(results.read_text())
    doc["excess"] = None  # as analyze writes it without excess ids
    (tmp_path / "results.json").write_text(json.dumps(doc))
    ref = write_ref(
        tmp_path / "r.yaml",
        {
            "excess.enrichment": {
                "value": 0.7,
                "lower": 0.2,
                "upper": 0.2,
                "bounds": "absolute",
                "unit": "1",
            }
        },
    )
    r = check(tmp_path, "--reference", ref)  # a results folder works too
    assert r.exit_code == EXIT_CHECK_FAILED
    assert "missing from the results (that section is null" in r.stdout


def test_results_with_other_parameters_are_refused_naming_both_values(results, tmp_path):
    doc = json.loads(results.read_text())
    ref = write_ref(
        tmp_path / "r.yaml",
        {"excess.enrichment": around(doc, "excess.enrichment")},
        parameters={"w_A": 3.0, "dz_A": 0.5},
    )
    r = check(results, "--reference", ref, "--json", tmp_path / "c.json")
    assert r.exit_code == EXIT_BAD_INPUT
    assert "w_A = 2.0 (reference test-ref: 3.0; --w)" in r.stderr and "dz_A" not in r.stderr
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"value": "high", "unit": "1"}, r"quantities\.x\.value: expected a number"),
        (
            {"value": 1.0, "lower": 0.1, "unit": "1", "bounds": "relative"},
            "give both lower and upper",
        ),
        (
            {"value": 1.0, "lower": 0.1, "upper": 0.1, "unit": "1", "bounds": "percent"},
            r"x\.bounds: expected one of",
        ),
        (
            {"value": 1.0, "lower": -0.1, "upper": 0.1, "unit": "1", "bounds": "absolute"},
            r"x\.lower: expected a non-negative",
        ),
        ({"value": 1.0}, r"x\.unit: expected a string"),
    ],
)
def test_a_bad_reference_entry_names_its_field(results, tmp_path, entry, message):
    ref = write_ref(tmp_path / "r.yaml", {"x": entry})
    r = check(results, "--reference", ref)
    assert r.exit_code == EXIT_BAD_INPUT
    assert len(r.stderr.strip().splitlines()) == 1 and "r.yaml: " in r.stderr
    assert re.search(message, r.stderr), r.stderr


def test_unknown_reference_and_foreign_results_are_bad_input(results, tmp_path):
    r = check(results, "--reference", "no-such-reference")
    assert r.exit_code == EXIT_BAD_INPUT and "llzo-gb-700K-published" in r.stderr
    (tmp_path / "other.json").write_text('{"schema": "something/2"}')
    r = check(tmp_path / "other.json", "--reference", "llzo-gb-700K-published")
    assert r.exit_code == EXIT_BAD_INPUT and "schema: expected 'gb-analysis/1'" in r.stderr


def test_the_shipped_llzo_reference_resolves_every_key_of_a_full_result(results, tmp_path):
    ref = load_reference("llzo-gb-700K-published")
    doc = json.loads(results.read_text())
    assert doc["excess"] and doc["diffusion"]
    for q in ref.quantities:
        assert get_path(doc, q.key, None) is not None, q.key
    judged = [q for q in ref.quantities if q.limits()]
    assert len(judged) >= 15 and all(q.source for q in ref.quantities)
    # every conclusion of the study survives at both ends of its interval
    lim = {q.key: q.limits() for q in judged}
    assert (
        lim["peak_ratio"][0] > 1 and lim["band_ratio"][0] > 1 and lim["gamma_per_nm2.mean"][0] > 0
    )
    assert lim["excess.enrichment"][1] < 1 and lim["diffusion.ratio_gb_bulk"][0] > 1
    # our toy walk was analysed with the reference's parameters: it is judged (and fails)
    r = check(results, "--reference", "llzo-gb-700K-published")
    assert r.exit_code == EXIT_CHECK_FAILED, r.output
    assert (
        "missing" not in r.stdout and len(r.stdout.strip().splitlines()) == len(ref.quantities) + 1
    )
