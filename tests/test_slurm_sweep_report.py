"""Sweep aggregation: mean ± SE across seeds, the Arrhenius fit and its uncertainty, Γ_w."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from bundle.core.errors import InputError
from runbook import config
from runbook.sweep import report, stats

KB = stats.KB_EV_PER_K


def test_mean_se_skips_missing_values():
    s = stats.mean_se([1.0, None, 2.0, 3.0, float("nan")])
    assert s.n == 3 and s.mean == pytest.approx(2.0)
    assert s.se == pytest.approx(statistics.stdev([1, 2, 3]) / math.sqrt(3))
    one = stats.mean_se([5.0])
    assert one.mean == 5.0 and one.se is None
    assert stats.mean_se([None]).mean is None


def test_arrhenius_recovers_exact_parameters():
    ea, d0 = 0.35, 2.0e-3
    temps = [600.0, 700.0, 800.0]
    ds = [
        stats.Stat(d0 * math.exp(-ea / (KB * t)), 0.01 * d0 * math.exp(-ea / (KB * t)), 3)
        for t in temps
    ]
    fit = stats.arrhenius(temps, ds)
    assert fit.weighted and fit.dof == 1
    assert fit.Ea_eV == pytest.approx(ea, rel=1e-10)
    assert math.exp(fit.ln_D0) == pytest.approx(d0, rel=1e-9)
    assert fit.chi2_per_dof == pytest.approx(0.0, abs=1e-12)


def test_arrhenius_uncertainty_matches_the_scatter_it_claims():
    """Draw seed-averaged D with a 5 % standard error many times: the spread of the fitted
    Ea must match the reported Ea standard error (weighted fit, 2 temperatures, dof 0)."""
    rng = np.random.default_rng(11)
    ea, d0, temps, rel = 0.3, 1e-3, [600.0, 800.0], 0.05
    fits, reported = [], []
    for _ in range(2000):
        draws = []
        for t in temps:
            true = d0 * math.exp(-ea / (KB * t))
            draws.append(stats.Stat(true * (1 + rel * rng.standard_normal()), true * rel, 4))
        f = stats.arrhenius(temps, draws)
        fits.append(f.Ea_eV)
        reported.append(f.Ea_se_eV)
    assert np.std(fits) == pytest.approx(np.median(reported), rel=0.1)
    assert np.mean(fits) == pytest.approx(ea, abs=3 * np.std(fits) / math.sqrt(len(fits)) + 2e-3)


def test_arrhenius_needs_two_temperatures_and_reports_unweighted_errors():
    assert stats.arrhenius([700.0], [stats.Stat(1e-6, 1e-7, 3)]) is None
    temps = [600.0, 700.0, 800.0, 900.0]
    rng = np.random.default_rng(3)
    ds = [
        stats.Stat(1e-3 * math.exp(-0.4 / (KB * t)) * (1 + 0.03 * rng.standard_normal()), None, 1)
        for t in temps
    ]
    fit = stats.arrhenius(temps, ds)
    assert not fit.weighted and fit.dof == 2 and fit.Ea_se_eV is not None
    assert abs(fit.Ea_eV - 0.4) < 5 * fit.Ea_se_eV


def profile_doc(amplitude: float, sigma: float, lz: float = 80.0, dz: float = 0.5) -> dict:
    """A gb-analysis/1 profile with Gaussian Li peaks (amplitude Li/Å³, width sigma Å)."""
    z = np.arange(dz / 2, lz, dz)
    planes = [20.0, 60.0]
    bulk = 0.02
    rho = bulk + sum(amplitude * np.exp(-0.5 * ((z - p) / sigma) ** 2) for p in planes)
    return {
        "parameters": {"dz_A": dz},
        "box_A": [20.0, 20.0, lz],
        "gb_planes_A": planes,
        "rho_bulk_per_A3": bulk,
        "profile": {"z_A": z.tolist(), "rho_li_per_A3": rho.tolist()},
    }


def test_gamma_within_w_tends_to_the_peak_integral():
    amp, sig = 0.04, 1.2
    doc = profile_doc(amp, sig)
    full = amp * sig * math.sqrt(2 * math.pi) * 100  # Li/nm² per plane
    assert stats.gamma_within(doc, 10.0) == pytest.approx(full, rel=1e-3)
    # bins whose centre is within 1.5 Å of the plane span exactly ±1.5 Å (dz 0.5, centres
    # at 0.25 + k/2): they hold erf(1.5 / (sigma √2)) of the peak (midpoint rule)
    w1 = stats.gamma_within(doc, 1.5)
    assert w1 == pytest.approx(full * math.erf(1.5 / (sig * math.sqrt(2))), rel=0.01)
    assert stats.gamma_within(doc, 0.5) < w1 < stats.gamma_within(doc, 3.0)


def test_aggregate_and_report():
    spec = config.SweepSpec(
        seeds=[1, 2],
        temperatures_K=[600.0, 700.0],
        band_widths_A=[1.0, 2.0],
        set=config.SweepSet(seed=["md.seed"], temperature=["md.temperature_k"]),
    )
    results = {}
    for p in config.sweep_points(spec):
        d_all = 1e-3 * math.exp(-0.3 / (KB * p.temperature_K)) * (1 + 0.02 * p.seed)
        for w in spec.band_widths_A:
            doc = profile_doc(0.03 + 0.001 * p.seed, 1.0)
            doc.update(
                peak_ratio=3.0 + 0.1 * p.seed,
                band_ratio=2.0,
                gamma_per_nm2={"mean": 15.0 + p.seed},
                excess={"enrichment": 0.7 + 0.05 * w, "gb_mean": 7.0},
                diffusion={
                    "D_cm2_s": {"all": d_all, "gb_start": 2 * d_all, "bulk_start": d_all / 2}
                },
            )
            results[(p.name, p.temperature_K, w)] = doc
    rep = stats.aggregate(results, spec)
    assert len(rep["groups"]) == 4
    g = rep["groups"][0]["stats"]
    assert g["gamma_per_nm2"]["mean"] == pytest.approx(16.5) and g["gamma_per_nm2"]["n"] == 2
    assert g["gamma_per_nm2"]["se"] == pytest.approx(0.5)
    enr = {
        grp["w_A"]: grp["stats"]["enrichment"]["mean"] for grp in rep["groups"] if grp["T_K"] == 600
    }
    assert enr == {1.0: pytest.approx(0.75), 2.0: pytest.approx(0.8)}
    fit = rep["arrhenius"]["D_all_cm2_s"]
    assert fit["Ea_eV"] == pytest.approx(0.3, rel=1e-6) and fit["dof"] == 0
    md = report.report_md(rep)
    assert "Arrhenius" in md and "Ea = 0.300" in md and "| 600 | 2 | 2 |" in md


def test_spec_validation_names_the_field():
    with pytest.raises(InputError, match="sweep.set.temperature"):
        config.parse_sweep({"seeds": [1], "temperatures_K": [600.0]}, Path("s.yaml"))
    with pytest.raises(InputError, match="sweep.seeds"):
        config.parse_sweep({"seeds": [1, 1], "set": {"seed": ["md.seed"]}}, Path("s.yaml"))
    with pytest.raises(InputError, match="sweep.band_widths_A"):
        config.parse_sweep({"band_widths_A": [0.0]}, Path("s.yaml"))
    with pytest.raises(InputError, match="sweep.seedz"):
        config.parse_sweep({"seedz": [1]}, Path("s.yaml"))
    names = [
        p.name
        for p in config.sweep_points(
            config.parse_sweep(
                {
                    "seeds": [1, 2],
                    "temperatures_K": [600, 700.5],
                    "set": {"seed": ["a.seed"], "temperature": ["a.t"]},
                },
                Path("s.yaml"),
            )
        )
    ]
    assert names == ["seed1_T600K", "seed2_T600K", "seed1_T700.5K", "seed2_T700.5K"]
