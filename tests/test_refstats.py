"""checks.refstats: family-wise false-FAIL rate of seed-replica bounds, stated and measured,
and the screening of judged sets, on synthetic replicas with known distributions."""

from __future__ import annotations

import numpy as np
import pytest

from checks import refstats as rs


def test_sidak_bounds_hold_the_family_wise_rate_for_independent_quantities():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 4)) * [1, 2, 3, 4] + [0, 5, 10, 20]
    rate, se = rs.bootstrap_rate(X, 0.05, "sidak", rng, n_boot=4000)
    assert rate == pytest.approx(0.05, abs=4 * se + 0.005)  # ~exact when independent


def test_correlated_quantities_sidak_is_conservative_maxstat_is_closer():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(12, 1))
    X = base + 0.15 * rng.normal(size=(12, 5))  # five strongly correlated quantities
    c_sidak = rs.factor(X, 0.05, "sidak", rng)
    c_max = rs.factor(X, 0.05, "maxstat", rng)
    assert c_max < c_sidak
    r_sidak, se = rs.bootstrap_rate(X, 0.05, "sidak", rng, n_boot=2000)
    assert r_sidak < 0.05 - 2 * se
    r_max, se_max = rs.bootstrap_rate(X, 0.05, "maxstat", rng, n_boot=150)
    assert r_sidak - 3 * se_max <= r_max <= 0.05 + 3 * se_max  # Monte-Carlo error ~0.015


def test_power_of_a_shifted_population_and_leave_one_out():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 3))
    far = X.mean(axis=0) + [12.0, 0.0, 0.0]  # ~12 s off in one quantity
    p = rs.power(X, far[None, :], 0.01, "sidak", rng, n_boot=500)
    assert p["p_fail"] > 0.95 and p["shift_in_s"][0] > 5
    same = rs.power(X, X.mean(axis=0)[None, :], 0.01, "sidak", rng, n_boot=2000)
    assert same["p_fail"] < 0.03
    fails = rs.loo(X, 0.01, "sidak", rng)
    assert len(fails) == 10 and sum(bool(f) for f in fails) <= 1


def test_log_scale_and_bounds():
    judged = [rs.Judged("a", "1", "", log=True), rs.Judged("b", "1", "")]
    x = rs.transform(np.array([[np.e, 2.0], [0.0, 3.0]]), judged)
    assert x[0, 0] == pytest.approx(1.0) and np.isnan(x[1, 0]) and x[1, 1] == 3.0
    X = np.array([[1.0], [2.0], [3.0]])
    centre, half = rs.bounds(X, 2.0)
    assert centre[0] == 2.0 and half[0] == pytest.approx(2.0 * 1.0 * np.sqrt(4 / 3))
    assert rs.failing(np.array([np.nan]), centre, half)[0]


def test_screen_refuses_fixed_floored_and_duplicated_quantities():
    rng = np.random.default_rng(4)
    d = rng.normal(1.0, 0.1, 10)
    X = np.column_stack([d, np.full(10, 24.0), [0.0] * 8 + [0.1, 0.2], -3 * d + 1,
                         rng.normal(size=10)])  # fmt: skip
    judged = [rs.Judged(k, "1", "") for k in ("D", "n_excess", "gb_mean", "gamma", "ok")]
    problems = rs.screen(X, judged)
    assert any("n_excess" in p and "fixed by the setup" in p for p in problems)
    assert any("gb_mean" in p and "floor" in p for p in problems)
    assert any("D and gamma" in p and "judged twice" in p for p in problems)
    assert not any(p.startswith("ok") for p in problems)
    assert rs.screen(X[:, [0, 4]], [judged[0], judged[4]]) == []


def test_more_seeds_in_the_reference_raise_the_power():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 2))
    probe = (X.mean(axis=0) + 5 * X.std(axis=0, ddof=1))[None, :]
    few = rs.power(X, probe, 0.01, "sidak", rng, 3000)["p_fail"]
    many = rs.power(X, probe, 0.01, "sidak", rng, 3000, n_ref=30)["p_fail"]
    assert many > few + 0.1 and many > 0.9
