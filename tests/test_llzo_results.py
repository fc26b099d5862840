"""The LLZO study's results plumbing: merging the two analyses, and making a reference
from seed replicas (bounds = a simultaneous prediction interval for one more replica,
with a stated family-wise false-FAIL rate; temperature a reference parameter); the
li-diffusion reference maker, which shares the document and command line (runbook.refdoc)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from bundle.core.errors import InputError
from checks.reference import compare, load_reference
from runbook import loader, stages
from runbook.lidiff import mkref as lidiff_mkref
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


def replica(rng, d_all=8e-6, msd=0.82, peak=2.75, band=0.556, temperature=700.0) -> dict:
    """A merged results document with the keys the reference judges, seed scatter added."""
    doc = results.merge(analysis(d_all), analysis(d_all, gb_mean=0.0), "p", "e")
    doc["parameters"] |= {"temperature_K": temperature, "short_lag_ps": 1.0, "gls_max_lags": 32}
    doc["rho_bulk_per_A3"] = 0.026 * (1 + 0.001 * rng.normal())
    doc["peak_ratio"] = peak * (1 + 0.04 * rng.normal())
    doc["band_ratio"] = band * (1 + 0.012 * rng.normal())
    doc["diffusion_gls"] = {
        "msd_short_A2": {"all": msd * (1 + 0.02 * rng.normal()), "lag_ps": 1.0},
        "classes": {c: {"xyz": {"D_cm2_s": d_all * (1 + 0.1 * rng.normal()),
                                "se_cm2_s": 0.05 * d_all}}
                    for c in ("all", "gb_start", "bulk_start")},
    }  # fmt: skip
    doc["hops"] = {"regions": {r: {"rate_per_li_ps": 0.1} for r in ("gb", "bulk")}}
    return doc


def test_mkref_bounds_are_a_simultaneous_prediction_interval(tmp_path):
    rng = np.random.default_rng(1)
    docs = [replica(rng) for _ in range(10)]
    ref = mkref.make(docs, [f"seed{i}" for i in range(1, 11)], "test-ref", "made in a test")
    fw = ref["made_by"]["family_wise"]
    m, n = len(mkref.JUDGED), 10
    alpha = 1 - (1 - mkref.ALPHA_FW) ** (1 / m)  # Sidak: the family-wise rate is alpha_fw
    c = stats.t.ppf(1 - alpha / 2, n - 1)
    assert fw["c"] == pytest.approx(c, rel=1e-3) and fw["m_judged"] == m
    x = np.log([d["diffusion_gls"]["msd_short_A2"]["all"] for d in docs])
    half = c * x.std(ddof=1) * math.sqrt(1 + 1 / n)
    q = ref["quantities"]["diffusion_gls.msd_short_A2.all"]
    assert q["value"] == pytest.approx(math.exp(x.mean()), rel=1e-5)  # log scale
    assert q["value"] - q["lower"] == pytest.approx(math.exp(x.mean() - half), rel=1e-5)
    assert q["value"] + q["upper"] == pytest.approx(math.exp(x.mean() + half), rel=1e-5)
    assert 0 <= fw["bootstrap_rate"]["value"] <= 0.02 and "of 10 replicas" in fw["leave_one_out"]
    assert ref["parameters"]["temperature_K"] == 700.0
    # seeds scatter by 10 %, one run's SE says 5 %: the reference says so
    assert ref["made_by"]["run_se_vs_seed_scatter"]["all"]["ratio"] == pytest.approx(2, rel=0.6)
    for key in ("n_excess", "excess.gb_mean", "gamma_per_nm2.mean"):
        assert "lower" not in ref["quantities"].get(key, {})  # fixed, floored or redundant
    path = tmp_path / "ref.yaml"
    path.write_text(yaml.safe_dump(ref, allow_unicode=True))
    loaded = load_reference(path)
    judged = {x.key for x in loaded.quantities if x.limits()}
    assert judged == {q.key for q in mkref.JUDGED}
    # a new seed passes; the same run labelled with another temperature is refused
    new = replica(rng)
    assert compare(new, loaded, results_path=path)["status"] == "PASS"
    with pytest.raises(InputError, match="temperature_K = 600.0 .*--temperature-K"):
        compare(replica(rng, temperature=600.0), loaded, results_path=path)


def test_discrimination_fails_shifted_populations_and_passes_a_new_seed():
    rng = np.random.default_rng(2)
    ref_docs = [replica(rng) for _ in range(10)]
    probes = {
        "cold": [replica(rng, d_all=5.8e-6, msd=0.61) for _ in range(2)],
        "seed": [replica(rng) for _ in range(2)],
    }
    out = mkref.discrimination(ref_docs, probes, 0.01, "sidak")
    assert [r["status"] for r in out["cold"]["runs"]] == ["FAIL", "FAIL"]
    assert "diffusion_gls.msd_short_A2.all" in out["cold"]["runs"][0]["failing"]
    assert out["cold"]["p_fail"] > 0.95
    assert [r["status"] for r in out["seed"]["runs"]] == ["PASS", "PASS"]
    assert out["seed"]["p_fail"] < 0.1


def test_mkref_refuses_what_cannot_make_a_reference():
    rng = np.random.default_rng(3)
    docs = [replica(rng) for _ in range(6)]
    bad = copy.deepcopy(docs[0])
    bad["parameters"]["d_bulk_A"] = 6.0
    with pytest.raises(ValueError, match="d_bulk_A"):
        mkref.make([*docs, bad], ["x"] * 7, "x", "y")
    with pytest.raises(ValueError, match="at least 5"):
        mkref.make(docs[:4], ["x"] * 4, "x", "y")
    no_t = [copy.deepcopy(d) for d in docs]
    for d in no_t:
        d["parameters"]["temperature_K"] = None
    with pytest.raises(ValueError, match="--temperature-K"):
        mkref.make(no_t, ["x"] * 6, "x", "y")
    fixed = [copy.deepcopy(d) for d in docs]
    for d in fixed:
        d["band_ratio"] = 0.5
    with pytest.raises(ValueError, match="band_ratio: the same in every replica"):
        mkref.make(fixed, ["x"] * 6, "x", "y")


def _write_results(tmp_path: Path, docs: list[dict]) -> list[str]:
    paths = []
    for i, d in enumerate(docs, 1):
        p = tmp_path / f"seed{i}" / "07_analyze" / "results.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(d))
        paths.append(str(p))
    return paths


def test_both_makers_write_a_reference_that_check_reads(tmp_path):
    """`python -m runbook.llzo.mkref` and `... lidiff.mkref`: the file starts with its
    header, names the replicas by run folder, and loads as a reference; li-diffusion's
    bounds are t(0.995, n-1) s sqrt(1+1/n) per quantity."""
    rng = np.random.default_rng(4)
    out = tmp_path / "llzo.yaml"
    paths = _write_results(tmp_path / "llzo", [replica(rng) for _ in range(6)])
    assert mkref.main(["--name", "t", "--out", str(out), "--command", "c", *paths]) == 0
    assert out.read_text().startswith("# t: the llzo-gb cpu profile's own reference")
    ref = yaml.safe_load(out.read_text())
    assert ref["made_by"]["replicas"] == [f"seed{i}" for i in range(1, 7)]
    assert {q.key for q in load_reference(out).quantities if q.limits()} == {
        q.key for q in mkref.JUDGED
    }
    docs = [{"parameters": {"fit_window": [0.1, 0.5]},
             "temperatures": {f"T{t}": {"T_K": t, "D_cm2_s": d * (1 + 0.1 * rng.normal())}
                              for t, d in ((900, 1e-6), (1200, 1e-5))},
             "arrhenius": {"Ea_eV": 0.5 + 0.02 * rng.normal(), "ln_D0": -5.0},
             "conductivity": {"sigma_S_cm": 1e-4}} for _ in range(4)]  # fmt: skip
    out = tmp_path / "lidiff.yaml"
    paths = _write_results(tmp_path / "lidiff", docs)
    assert lidiff_mkref.main(["--name", "l", "--out", str(out), "--command", "c", *paths]) == 0
    ref = yaml.safe_load(out.read_text())
    assert ref["schema"] == "gb-reference/1" and ref["made_by"]["command"] == "c"
    ea = np.array([d["arrhenius"]["Ea_eV"] for d in docs])
    half = stats.t.ppf(0.995, 3) * ea.std(ddof=1) * math.sqrt(1 + 1 / 4)
    q = ref["quantities"]["arrhenius.Ea_eV"]
    assert q["value"] == pytest.approx(ea.mean(), rel=1e-5)
    assert q["lower"] == q["upper"] == pytest.approx(half, rel=1e-5)
    assert "lower" not in ref["quantities"]["conductivity.sigma_S_cm"]  # reported only
    judged = {q.key for q in load_reference(out).quantities if q.limits()}
    assert judged == {"temperatures.T900.D_cm2_s", "temperatures.T1200.D_cm2_s",
                      "arrhenius.Ea_eV"}  # fmt: skip


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


def test_mkref_reports_an_unresolved_diffusion_coefficient_without_judging_it():
    """A D <= 0 in a replica (no Li hopped in the run: the MSD is cage rattling) is not a
    value a log-scale bound can be set from: mkref reports it with the reason and judges
    the rest (the refined reference of the relaxed protocol has this case)."""
    rng = np.random.default_rng(2)
    docs = [replica(rng) for _ in range(6)]
    key = "diffusion_gls.classes.all.xyz.D_cm2_s"
    docs[2]["diffusion_gls"]["classes"]["all"]["xyz"]["D_cm2_s"] = -3e-10
    ref = mkref.make(docs, [f"seed{i}" for i in range(1, 7)], "test-ref", "made in a test")
    assert (
        "lower" not in ref["quantities"][key]
        and "not resolved in 1 of 6" in (ref["quantities"][key]["source"])
    )
    assert key in ref["made_by"]["not_judged"]
    judged = {k for k, q in ref["quantities"].items() if "lower" in q}
    assert judged == {q.key for q in mkref.JUDGED} - {key}
    assert ref["made_by"]["family_wise"]["m_judged"] == len(mkref.JUDGED) - 1
