"""The LLZO report's plain-language reading follows the intervals (never written in
advance), and the report puts control, boundary, Γ, D by region and occupancies side by
side (runbook.llzo.reading, runbook.llzo.report_parts, runbook.llzo.report)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from checks.extras import REFERENCE_RUNS
from runbook.llzo import reading, report, results
from tests.test_gb_crystal import heights, make_doc


def fit(d: float, lo: float, hi: float, usable: bool = True, msd_end: float = 5.0) -> dict:
    flags = [] if usable else ["MSD < 1"]
    return {"D_cm2_s": d, "ci95_cm2_s": [lo, hi], "usable": usable, "msd_end_A2": msd_end,
            "loglog_slope": 1.0 if usable else 0.1, "flags": flags}  # fmt: skip


def with_dynamics(doc: dict, gb: dict, bulk: dict, hops: dict | None = None) -> dict:
    classes = {"all": {"xyz": bulk}, "gb_start": {"xyz": gb}, "bulk_start": {"xyz": bulk}}
    return doc | {"diffusion_gls": {"classes": classes}, "hops": hops, "excess": None}


def test_li_rich_is_seen_only_against_a_control_and_beyond_two_se():
    rng = np.random.default_rng(1)
    rich = make_doc(heights(rng, 100, 400, extra_at_planes=20))
    control = make_doc(heights(rng, 100, 400))
    same = make_doc(heights(rng, 100, 400))
    assert reading.li_rich(rich, None)[0] == reading.UNDECIDED
    verdict, text = reading.li_rich(rich, control)
    assert verdict == reading.SEEN and "Li-rich" in text
    assert reading.li_rich(same, control)[0] == reading.NOT_SEEN
    assert reading.gamma(rich, None)[0] == reading.UNDECIDED  # in-cell Γ decides nothing
    verdict, text = reading.gamma(rich, control)  # the uniform cell as the single crystal
    assert verdict == reading.SEEN and "an excess" in text


def test_diffusion_wording_follows_the_intervals():
    base = make_doc(heights(np.random.default_rng(2), 50, 200))
    apart = with_dynamics(base, fit(3e-6, 2.5e-6, 3.5e-6), fit(1e-6, 0.8e-6, 1.2e-6))
    verdict, text = reading.diffusion(apart)
    assert verdict == reading.SEEN and "faster" in text
    overlap = with_dynamics(base, fit(1.1e-6, 0.7e-6, 1.5e-6), fit(1e-6, 0.8e-6, 1.2e-6))
    verdict, text = reading.diffusion(overlap)
    assert verdict == reading.NOT_SEEN and "overlapping" in text
    hops = {"regions": {
        "gb": {"hops": 0, "li_ps": 800.0, "rate_ci95_per_li_ps": [0.0, 0.0046]},
        "bulk": {"hops": 900, "li_ps": 5000.0, "rate_ci95_per_li_ps": [0.17, 0.19]}}}  # fmt: skip
    trapped = with_dynamics(base, fit(5e-8, 1e-8, 9e-8, False, 0.2), fit(1e-5, 9e-6, 1.1e-5), hops)
    verdict, text = reading.diffusion(trapped)
    assert verdict == reading.SEEN and "barely move" in text and "less often" in text
    hops["regions"]["gb"]["rate_ci95_per_li_ps"] = [0.05, 0.2]
    assert reading.diffusion(trapped)[0] == reading.NOT_SEEN


def test_excess_reading():
    doc = {"n_excess": 24, "excess": {"gb_mean": 0.0, "gb_sem": 0.0, "uniform_expected": 3.3}}
    assert reading.excess(doc)[0] == reading.NOT_SEEN
    doc["excess"] |= {"gb_mean": 7.0, "gb_sem": 0.5}
    verdict, text = reading.excess(doc)
    assert verdict == reading.SEEN and "drawn in" in text
    doc["excess"] |= {"gb_mean": 3.5, "gb_sem": 0.5}
    assert reading.excess(doc)[0] == reading.NOT_SEEN


def test_report_shows_control_and_boundary_side_by_side(tmp_path):
    rng = np.random.default_rng(3)
    res = with_dynamics(make_doc(heights(rng, 60, 400, extra_at_planes=20)),
                        fit(3e-6, 2.5e-6, 3.5e-6), fit(1e-6, 0.8e-6, 1.2e-6))  # fmt: skip
    control = make_doc(heights(rng, 60, 400))
    build = {"counts": {"O": 1, "Zr": 1, "La": 1, "Al": 4, "Li": 420}, "sigma": 5,
             "plane_hkl": [2, 1, 0], "seed": 1, "charge_e": 0,
             "box_A": [float(x) for x in res["box_A"]],
             "gb_planes_A": res["gb_planes_A"]}  # fmt: skip
    seg = {
        "wall_s": 9,
        "result": {
            "engine": "classical",
            "temperature_K": 700,
            "timestep_fs": 2,
            "framework": "mobile",
            "md": {"temperature_mean_K": 701.0, "steps": 100, "steps_per_s": 11.0},
        },
    }
    for name, doc in (("build/bicrystal.json", build), ("ana/results.json", res),
                      ("control/results.json", control), ("md/manifest.json", seg)):  # fmt: skip
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(json.dumps(doc))
    p = {"study": "llzo-gb", "profile": "cpu", "build": "build", "analyze": "ana", "md": {},
         "published": "llzo-gb-700K-published", "control": "control", "crystal": None}  # fmt: skip
    p["md"] = {"production": "md"}
    text = report.render_report(p, tmp_path)
    assert "| production | classical | mobile (every atom) | 700 / 701.0 |" in text
    assert "**Seen (見えた):** a Li-rich boundary" in text
    assert "bicrystal, seed 1: Li420 Al4 La1 Zr1 O1 (charge 0 e)" in text  # dopant named
    assert "| band ratio |" in text and "blocks (n=5)" in text
    assert "Control checks: band ratio" in text and "No single-crystal run" in text
    assert "| start in a GB band | 3D | 3.000e-06 | 2.50e-06 – 3.50e-06 |" in text
    assert (tmp_path / "profiles_control_boundary.png").stat().st_size > 0
    p["control"] = None
    text = report.render_report(p, tmp_path)
    assert "No boundary-free control run" in text and "**Not decided:**" in text


def test_merge_step_adds_reference_runs_only_when_they_exist():
    rng = np.random.default_rng(4)
    doc = make_doc(heights(rng, 60, 400, extra_at_planes=20))
    sc = make_doc(heights(rng, 60, 400))
    assert results.with_reference_runs(doc, None, None) is doc
    out = results.with_reference_runs(doc, sc, sc)
    runs = out[REFERENCE_RUNS]
    assert {r["quantity"] for r in runs["control_table"]} >= {"band_ratio", "gamma_per_nm2.mean"}
    assert runs["gamma"]["mean"]["vs_crystal"]["se"] > 0
    assert runs["interior_vs_crystal"]["rho_sc"]["value"] == pytest.approx(400 / 4000)
