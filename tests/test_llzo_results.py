"""The LLZO study's results plumbing: merging the two analyses, and making a reference
from seed replicas (bounds = a Student-t prediction interval for one more replica)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from scipy import stats

from bundle.core.errors import InputError
from checks.reference import load_reference
from runbook import loader, stages
from runbook.llzo import mkref, results
from runbook.stage import Context


def analysis(d_all: float, gb_mean: float | None = None, w: float = 2.0) -> dict:
    """A gb-analysis/1 document with the keys the study uses (numbers are arbitrary)."""
    doc = {
        "schema": "gb-analysis/1",
        "parameters": {"dz_A": 0.5, "w_A": w, "d_bulk_A": 8.0, "w_start_A": w,
                       "avg_window_ps": 50.0, "n_blocks": 5, "timestep_fs": 2.0},
        "n_frames": 101, "n_excess": 0, "excess": None,
        "rho_bulk_per_A3": 0.026 + d_all * 1e3, "rho_peak_per_A3": 0.07 + d_all * 1e3,
        "peak_ratio": 2.7 + d_all * 1e4, "rho_band_per_A3": 0.0145 + d_all * 1e3,
        "band_ratio": 0.55 + d_all * 1e4, "gamma_per_nm2": {"mean": -3.7 + d_all * 1e4},
        "diffusion": {"D_cm2_s": {"all": d_all, "gb_start": d_all / 50, "bulk_start": 1.6 * d_all},
                      "ratio_gb_bulk": 1 / 80 + d_all * 1e3},
    }  # fmt: skip
    if gb_mean is not None:
        doc["n_excess"] = 24
        doc["parameters"]["avg_window_ps"] = 10.0
        doc["excess"] = {"gb_mean": gb_mean, "uniform_expected": 3.31,
                         "enrichment": gb_mean / 3.31, "slope_per_ps": 0.0,
                         "per_gb_mean": [gb_mean / 2, gb_mean / 2]}  # fmt: skip
    return doc


def test_merge_takes_profile_from_one_and_excess_from_the_other():
    prof, exc = analysis(8e-6), analysis(9e-6, gb_mean=0.5)
    out = results.merge(prof, exc, "p/results.json", "e/results.json")
    assert out["diffusion"] == prof["diffusion"] and out["peak_ratio"] == prof["peak_ratio"]
    assert out["excess"] == exc["excess"] and out["n_excess"] == 24
    assert out["parameters"]["avg_window_ps"] == 10.0 and out["parameters"]["w_A"] == 2.0
    assert out["sources"]["excess"] == "e/results.json"
    with pytest.raises(ValueError, match="w_A"):
        results.merge(prof, analysis(9e-6, gb_mean=0.5, w=1.5), "p", "e")
    with pytest.raises(ValueError, match="no excess section"):
        results.merge(prof, analysis(9e-6), "p", "e")


def test_mkref_bounds_are_a_prediction_interval_and_floors_degenerate_counts(tmp_path):
    ds = [8.1e-6, 9.3e-6, 8.7e-6, 9.0e-6]
    docs = [results.merge(analysis(d), analysis(d, gb_mean=0.0), "p", "e") for d in ds]
    ref = mkref.make(docs, [f"seed{i}" for i in range(1, 5)], "test-ref", "made in a test")
    q = ref["quantities"]["diffusion.D_cm2_s.all"]
    n = len(ds)
    mean = sum(ds) / n
    s = math.sqrt(sum((x - mean) ** 2 for x in ds) / (n - 1))
    half = stats.t.ppf(1 - mkref.ALPHA / 2, n - 1) * s * math.sqrt(1 + 1 / n)
    assert q["value"] == pytest.approx(mean, rel=1e-5)
    assert q["lower"] == pytest.approx(half, rel=1e-5) == q["upper"]
    # no replica had excess Li in the bands: +-1 Li (the count resolution), not +-0
    assert ref["quantities"]["excess.gb_mean"]["upper"] == 1.0
    assert ref["quantities"]["excess.enrichment"]["upper"] == pytest.approx(1 / 3.31, rel=1e-5)
    assert ref["quantities"]["n_excess"]["value"] == 24
    # the written file is a valid reference for `bundle check`
    path = tmp_path / "ref.yaml"
    path.write_text(yaml.safe_dump(ref, allow_unicode=True))
    loaded = load_reference(path)
    assert loaded.parameters["avg_window_ps"] == 10.0
    assert {x.key for x in loaded.quantities if x.limits()} >= {"excess.enrichment", "peak_ratio"}


def test_mkref_refuses_replicas_that_disagree():
    a = results.merge(analysis(8e-6), analysis(8e-6, gb_mean=0.0), "p", "e")
    b = copy.deepcopy(a)
    b["parameters"]["d_bulk_A"] = 6.0
    with pytest.raises(ValueError, match="d_bulk_A"):
        mkref.make([a, a, b], ["1", "2", "3"], "x", "y")
    with pytest.raises(ValueError, match="at least 3"):
        mkref.make([a, a], ["1", "2"], "x", "y")


# ------------------------------------------------------------------- study configuration


@pytest.mark.parametrize(
    "override, field",
    [
        ("insert.n=0", "insert.n"),
        ("production.timestep_fs=9", "production.timestep_fs"),
        ("build.repeat=[1, 0, 1]", "build.repeat"),
        ("insert.input=analyze", "insert.input"),
        ("equilibrate.by_profile={cpu: {time_ps: -1}}", "equilibrate.by_profile.cpu.time_ps"),
    ],
)
def test_bad_study_values_name_the_file_and_field(override, field):
    with pytest.raises(InputError) as e:
        study = loader.load("llzo-gb", overrides=[override])
        ctx = Context(study, Path("/nonexistent"))
        for name in study.stages:
            stages.build(study, name).preflight(ctx)
    assert e.value.field == field and "llzo-gb.yaml" in e.value.file
