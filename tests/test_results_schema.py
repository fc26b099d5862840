"""checks.schema (the typed gb-analysis/1 document) fits what checks.metrics writes, with
and without an excess section, after merging seeds (checks.aggregate), and refuses a
document that lacks a section, naming the key; checks.request runs the same analysis
`bundle analyze` runs, and a change of `w` is a change of one parameter."""

from __future__ import annotations

import dataclasses

import pytest

from bundle.core.errors import InputError
from checks import aggregate, request
from checks.schema import METRICS, Results, metrics_of
from tests.test_analyze_cli import write_dump


def analysis(tmp_path, seed: int, **change) -> dict:
    dump = write_dump(tmp_path / f"t{seed}.dump", seed=seed)
    req = request.AnalysisRequest(
        dumps=(str(dump),), timestep_fs=1.0, out=str(tmp_path / f"out{seed}"),
        type_map="1:Li,2:O", d_bulk=4.0, avg_window_ps=0.5, excess_above_id=35,
    )  # fmt: skip
    return request.analyze(dataclasses.replace(req, **change))[1]


def test_the_schema_fits_what_the_analysis_writes(tmp_path):
    doc = analysis(tmp_path, 0)
    r = Results.of(doc)
    assert r.parameters.w_A == 2.0 and r.n_excess == 5 and r.excess is not None
    assert r.D["all"] == doc["diffusion"]["D_cm2_s"]["all"]
    assert r.doc() == doc  # nothing dropped, nothing added
    m = metrics_of(doc)
    assert set(m) == set(METRICS) and m["enrichment"] == doc["excess"]["enrichment"]
    no_excess = analysis(tmp_path, 1, excess_above_id=None)
    assert Results.of(no_excess).excess is None and metrics_of(no_excess)["enrichment"] is None


def test_a_change_of_w_is_one_parameter(tmp_path):
    a, b = analysis(tmp_path, 0), analysis(tmp_path, 0, w=1.0, out=str(tmp_path / "w1"))
    assert a["parameters"]["w_A"] == 2.0 and b["parameters"]["w_A"] == 1.0
    assert a["gamma_per_nm2"] == b["gamma_per_nm2"]  # Γ does not depend on w
    assert a["band_ratio"] != b["band_ratio"]


def test_merged_seeds_fit_and_a_missing_section_is_named(tmp_path):
    merged = aggregate.aggregate([analysis(tmp_path, 0), analysis(tmp_path, 2)], ["a", "b"])
    assert Results.of(merged).seeds["n"] == 2  # type: ignore[attr-defined]
    broken = {k: v for k, v in merged.items() if k != "profile"}
    with pytest.raises(InputError, match="profile: Field required"):
        Results.of(broken, "x.json")
