"""Diffusion from the MSD, through the CLI: (1) the FFT accumulation equals a brute-force
double loop over origins and lags, per region of the time origin; (2) Brownian walkers
with a known D per region give that D within the statistical error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle.cli import app
from checks.lammpsio import dump_columns, write_frame

L = np.array([20.0, 20.0, 40.0])
PLANES = (10.0, 30.0)


def analyze(tmp_path, dump, *extra):
    out = tmp_path / "out"
    args = ["analyze", str(dump), "--timestep-fs", "1", "--type-map", "1:Li,2:O", "--out", str(out)]
    r = CliRunner().invoke(app, [*args, "--gb", "10,30", *map(str, extra)])
    assert r.exit_code == 0, r.stderr
    return json.loads((out / "results.json").read_text())


def brute_force_msd(pos, every, w_start, d_bulk):
    """MSD(lag) per class by the double loop over origins t0 (every `every` frames)."""
    n_frames = len(pos)
    sums = {c: np.zeros(n_frames) for c in ("all", "gb_start", "bulk_start")}
    counts = {c: np.zeros(n_frames) for c in sums}
    for t0 in range(0, n_frames, every):
        z = pos[t0, :, 2] % L[2]
        d = np.min([np.abs((z - p + L[2] / 2) % L[2] - L[2] / 2) for p in PLANES], axis=0)
        member = {"all": np.ones(len(z), bool), "gb_start": d <= w_start, "bulk_start": d >= d_bulk}
        for lag in range(1, n_frames - t0):
            sq = ((pos[t0 + lag] - pos[t0]) ** 2).sum(axis=1)
            for c, m in member.items():
                sums[c][lag] += sq[m].sum()
                counts[c][lag] += m.sum()
    return {c: np.where(counts[c] > 0, sums[c] / np.maximum(counts[c], 1), np.nan) for c in sums}


def test_msd_by_region_equals_the_brute_force_double_loop(tmp_path):
    rng = np.random.default_rng(3)
    n, n_frames = 40, 45
    ids, types = np.arange(1, n + 1), np.where(np.arange(n) < 30, 1, 2)  # 30 Li, 10 O
    pos = np.cumsum(rng.normal(scale=1.5, size=(n_frames, n, 3)), axis=0)
    pos += rng.uniform(0, 1, n)[:, None] * L  # start anywhere; walks cross the boundaries
    pos = np.round(pos, 4)  # what the dump holds (written with 5 decimals)
    with open(tmp_path / "w.dump", "wb") as f:
        for k in range(n_frames):
            write_frame(
                f,
                100 * k,
                [0, 0, 0],
                L,
                dump_columns("unwrapped", ids, types, pos[k], [0, 0, 0], L),
            )
    r = analyze(tmp_path, tmp_path / "w.dump", "--origin-every", 3, "--w-start", 4, "--d-bulk", 6)
    d = r["diffusion"]
    want = brute_force_msd(pos[:, :30], every=3, w_start=4.0, d_bulk=6.0)
    lag = np.arange(n_frames) * 0.1
    np.testing.assert_allclose(d["msd_A2"]["lag_ps"], lag, rtol=1e-12)
    for c, curve in want.items():
        got = np.array([np.nan if v is None else v for v in d["msd_A2"][c]], dtype=float)
        np.testing.assert_allclose(got[1:], curve[1:], rtol=1e-9, equal_nan=True)
        # default fit window: 10 %..50 % of the longest lag (4.4 ps): lags 0.5 .. 2.2 ps
        fit = (lag >= 0.44 - 1e-9) & (lag <= 2.2 + 1e-9) & np.isfinite(curve)
        slope = np.polyfit(lag[fit], curve[fit], 1)[0]
        assert d["D_cm2_s"][c] == pytest.approx(slope / 6 * 1e-4, rel=1e-9)
    assert d["fit_window_ps"] == pytest.approx([0.5, 2.2])
    assert d["ratio_gb_bulk"] == pytest.approx(
        d["D_cm2_s"]["gb_start"] / d["D_cm2_s"]["bulk_start"]
    )


# Brownian walkers in x and y (z fixed, so each stays in its region): D_xy per region.
# MSD(3D) = 4 D_xy t, so D = MSD slope / 6 = (2/3) D_xy.
D_XY = {"gb": 0.5, "bulk": 0.1, "middle": 0.25}  # Å²/ps
N_WALKERS = {"gb": 600, "bulk": 600, "middle": 300}
Z_CENTRES = {"gb": PLANES, "bulk": (20.0, 0.0), "middle": (15.0, 35.0)}  # bulk: 10 Å away


@pytest.fixture(scope="module")
def brownian(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("brownian")
    rng = np.random.default_rng(11)
    z = (
        np.concatenate(
            [
                rng.choice(Z_CENTRES[k], N_WALKERS[k]) + rng.uniform(-1.5, 1.5, N_WALKERS[k])
                for k in D_XY
            ]
        )
        % L[2]
    )
    dxy = np.concatenate([np.full(N_WALKERS[k], D_XY[k]) for k in D_XY])
    n = len(z)
    ids, types = np.arange(1, n + 1), np.ones(n, int)
    xy = rng.uniform(0, L[0], (n, 2))
    dt = 0.5  # ps: 500 steps of 1 fs
    with open(tmp / "b.dump", "wb") as f:
        for k in range(400):
            pos = np.column_stack([xy, z])
            cols = dump_columns("wrapped+image", ids, types, pos, [0, 0, 0], L)
            write_frame(f, 500 * k, [0, 0, 0], L, cols)
            xy = xy + rng.normal(size=(n, 2)) * np.sqrt(2 * dxy * dt)[:, None]
    return analyze(tmp, tmp / "b.dump", "--fit-window-ps", "1,10")


def test_brownian_walkers_give_their_D_per_region(brownian):
    d = brownian["diffusion"]
    expect = {  # cm²/s: (2/3) D_xy × 1e-4
        "gb_start": 2 / 3 * D_XY["gb"] * 1e-4,
        "bulk_start": 2 / 3 * D_XY["bulk"] * 1e-4,
        "all": 2 / 3 * sum(N_WALKERS[k] * D_XY[k] for k in D_XY) / sum(N_WALKERS.values()) * 1e-4,
    }
    # 600 walkers x 400 frames, fit to 10 ps of a 200 ps run: the statistical error of D is
    # ~1 % (measured over seeds); 5 % is a 4-5 sigma bound
    for name, want in expect.items():
        assert d["D_cm2_s"][name] == pytest.approx(want, rel=0.05), name
        assert 0 < d["D_se_cm2_s"][name] < 0.03 * want, name
    assert d["ratio_gb_bulk"] == pytest.approx(5.0, rel=0.08)
    assert d["fit_window_ps"] == [1.0, 10.0]
    assert brownian["parameters"]["fit_window_ps"] == [1.0, 10.0]


def test_one_frame_has_no_diffusion_section(tmp_path):
    ids, types = np.arange(1, 11), np.ones(10, int)
    pos = np.random.default_rng(0).uniform(0, 1, (10, 3)) * L
    with open(tmp_path / "one.dump", "wb") as f:
        write_frame(f, 0, [0, 0, 0], L, dump_columns("unwrapped", ids, types, pos, [0, 0, 0], L))
    r = analyze(tmp_path, tmp_path / "one.dump", "--d-bulk", 2)
    assert r["diffusion"] is None and r["excess"] is None and r["n_frames"] == 1
