"""checks.diffusion: D by GLS with the MSD covariance, on synthetic walks with a known D."""

from __future__ import annotations

import numpy as np
import pytest

from checks import diffusion as dif
from checks.msd import MSDAccumulator


def test_lag_moments_equal_the_fft_msd_per_class_and_component():
    rng = np.random.default_rng(4)
    F, m = 40, 12
    r = dif.random_walk(rng, F, m, 0.3, 0.5)
    mask = rng.random((F, m)) < 0.4  # a region-like selection of origins
    lags = dif.fit_lags(F, 3, 20, 8)
    mom = dif.LagMoments(F, lags, ("all", "sel"))
    mom.add(r, {"all": np.ones((F, m)), "sel": mask})
    acc = MSDAccumulator(F, ("all", "sel"), 1)
    acc.add(r, {"all": np.ones((F, m)), "sel": mask}, np.zeros(m, int))
    for name in ("all", "sel"):
        want, pairs = acc.msd(name)
        got, n, _ = mom.curve(name, "xyz")
        np.testing.assert_allclose(got, want[lags], rtol=1e-10)
        np.testing.assert_allclose(n, pairs[lags])
    xy, _, _ = mom.curve("all", "xy")
    z, _, _ = mom.curve("all", "z")
    np.testing.assert_allclose(xy + z, mom.curve("all", "xyz")[0], rtol=1e-12)


def test_the_covariance_model_matches_the_scatter_of_the_msd_over_replicas():
    rng = np.random.default_rng(5)
    F, m, D, dt = 50, 30, 0.2, 0.1
    lags = dif.fit_lags(F, 5, 25, 6)
    curves = []
    for _ in range(300):
        mom = dif.LagMoments(F, lags, ("all",))
        mom.add(dif.random_walk(rng, F, m, D, dt, noise_A=0.2), {"all": np.ones((F, m))})
        curves.append(mom.curve("all", "xyz")[0])
    basis = dif.covariance_basis(lags, F, mom.origin_density("all"))
    model = dif.msd_covariance(basis, mom.curve("all", "xyz")[1], 2 * D * dt, 0.2**2, 3)
    emp = np.cov(np.array(curves).T)
    # 300 replicas: a variance is known to ~8 %; the model is exact for this walk
    np.testing.assert_allclose(np.diag(emp), np.diag(model), rtol=0.25)
    assert emp[0, -1] == pytest.approx(model[0, -1], rel=0.3)


def test_the_95_interval_covers_the_true_D_and_ols_naive_does_not():
    rng = np.random.default_rng(6)
    cov = dif.coverage(rng, 100, n_frames=60, n_atoms=40, d_a2_ps=0.1)
    # 100 replicas: binomial sd of a 95 % coverage is 2.2 %
    for comp in ("xyz", "xy", "z"):
        assert 0.88 <= cov[comp] <= 1.0, (comp, cov)
    assert 0.75 < cov["z_sd"] < 1.3
    assert cov["ols_naive"] < 0.4  # OLS with its residual error understates it badly


def test_gls_agrees_with_ols_and_flags_what_is_not_diffusion():
    rng = np.random.default_rng(7)
    F, m, dt = 100, 200, 0.2
    lags = dif.fit_lags(F, 10, 50)
    mom = dif.LagMoments(F, lags, ("walk", "cage"))
    walk = dif.random_walk(rng, F, m, 0.5, dt, noise_A=0.3)
    cage = rng.normal(scale=0.3, size=(F, m, 3))  # rattling in place: no diffusion
    mom.add(np.concatenate([walk, cage], axis=1),
            {"walk": np.repeat([[1.0] * m + [0.0] * m], F, 0),
             "cage": np.repeat([[0.0] * m + [1.0] * m], F, 0)})  # fmt: skip
    fits = dif.section(mom, dt)
    w = fits["walk"]["xyz"]
    assert w["D_cm2_s"] == pytest.approx(0.5e-4, rel=0.1)
    assert w["D_cm2_s"] == pytest.approx(w["ols"]["D_cm2_s"], abs=3 * w["ols"]["se_model_cm2_s"])
    assert w["usable"] and abs(w["loglog_slope"] - 1) < dif.ALPHA_TOL
    assert w["intercept_A2"] == pytest.approx(6 * 0.3**2, abs=4 * w["intercept_se_A2"])
    c = fits["cage"]["xyz"]
    assert not c["usable"] and len(c["flags"]) == 2  # log-log slope ~0, MSD ~0.5 Å²
    assert c["ci95_cm2_s"][0] >= 0.0 and c["ci95_cm2_s"][1] < 0.05 * w["D_cm2_s"]


def test_positive_interval_is_the_truncated_posterior():
    lo, hi = dif.positive_interval(10.0, 1.0)
    assert (lo, hi) == pytest.approx((10 - 1.959964, 10 + 1.959964), rel=1e-5)
    lo, hi = dif.positive_interval(-1.0, 1.0)  # mostly below zero: an upper bound
    assert lo == pytest.approx(0.0, abs=0.02) and 0 < hi < 2.0
    assert dif.positive_interval(0.5, 0.0) == (0.5, 0.5)


def test_fit_lags_spread_over_the_window():
    assert list(dif.fit_lags(100, 10, 50, 5)) == [10, 20, 30, 40, 50]
    assert list(dif.fit_lags(100, 0, 3, 32)) == [1, 2, 3]
    assert len(dif.fit_lags(10, 8, 5)) == 0
