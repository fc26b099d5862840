"""Excess Li in the GB bands (検証B) with a prescribed band occupancy per frame, through
the CLI: means, standard deviations, block standard error, enrichment and slope follow
from the prescribed counts; the slope and its error are checked against scipy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from bundle.cli import app
from checks.lammpsio import dump_columns, write_frame

L = np.array([12.0, 12.0, 40.0])
N_CORE, N_EXC = 200, 20
W = 2.0


def _heights(rng, planes, n_k, n_total):
    """n_k[k] atoms within 1.9 Å of plane k, the rest >= 2.5 Å from both planes."""
    z = []
    for zk, n in zip(planes, n_k, strict=True):
        z += list(zk + rng.uniform(-1.9, 1.9, n))
    while len(z) < n_total:
        c = rng.uniform(0, L[2])
        d = [abs((c - zk + L[2] / 2) % L[2] - L[2] / 2) for zk in planes]
        if min(d) >= 2.5:
            z.append(c)
    return np.array(z) % L[2]


def write_excess_dump(path, planes, occupancy, seed=0, step=500):
    """Frame k has occupancy[k] = (n_0, n_1) excess Li (ids 1001..) in the bands of
    `planes`; 200 other Li (ids 1..200) anywhere; frame k at TIMESTEP step*k."""
    rng = np.random.default_rng(seed)
    ids = np.concatenate([np.arange(1, N_CORE + 1), 1001 + np.arange(N_EXC)])
    types = np.ones(len(ids), int)
    with open(path, "wb") as f:
        for k, n_k in enumerate(occupancy):
            z = np.concatenate(
                [rng.uniform(0, L[2], N_CORE), rng.permutation(_heights(rng, planes, n_k, N_EXC))]
            )
            pos = np.column_stack([rng.uniform(0, L[0], (len(ids), 2)), z])
            cols = dump_columns("unwrapped", ids, types, pos, [0, 0, 0], L)
            write_frame(f, step * k, [0, 0, 0], L, cols)


def analyze(tmp_path, dump, *extra):
    out = tmp_path / "out"
    args = ["analyze", str(dump), "--timestep-fs", "2", "--type-map", "1:Li", "--out", str(out)]
    r = CliRunner().invoke(app, [*args, *map(str, extra)])
    assert r.exit_code == 0, r.stderr
    return json.loads((out / "results.json").read_text())


# 30 frames, 1 ps apart (500 steps x 2 fs). Before the window: nobody in the bands.
N0 = [3, 5, 4, 6, 2, 5, 7, 3, 4, 6]
N1 = [1, 0, 2, 1, 3, 2, 1, 0, 2, 1]
OCCUPANCY = [(0, 0)] * 20 + list(zip(N0, N1, strict=True))


@pytest.fixture(scope="module")
def prescribed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("excess")
    write_excess_dump(tmp / "e.dump", [10.0, 30.0], OCCUPANCY)
    # last 9 ps of a 0..29 ps run: frames at t = 20..29 ps, exactly the prescribed ones
    return analyze(
        tmp, tmp / "e.dump", "--excess-above-id", 1000, "--gb", "10,30", "--avg-window-ps", 9
    )


def test_means_and_standard_deviations_of_the_prescribed_counts(prescribed):
    e = prescribed["excess"]
    n0, n1 = np.array(N0), np.array(N1)
    gb = n0 + n1
    assert e["window_ps"] == [20.0, 29.0] and e["n_frames"] == 10
    assert e["per_gb_mean"] == pytest.approx([n0.mean(), n1.mean()], rel=1e-12)
    assert e["per_gb_std"] == pytest.approx([n0.std(), n1.std()], rel=1e-12)
    assert e["gb_mean"] == pytest.approx(gb.mean(), rel=1e-12)  # 6.2
    assert e["gb_std"] == pytest.approx(gb.std(), rel=1e-12)
    assert e["bulk_mean"] == pytest.approx(N_EXC - gb.mean(), rel=1e-12)
    assert e["bulk_std"] == pytest.approx(gb.std(), rel=1e-12)
    # 5 blocks of 2 frames: block means, their ddof=1 std / sqrt(5)
    blocks = gb.reshape(5, 2).mean(axis=1)
    assert e["gb_sem"] == pytest.approx(blocks.std(ddof=1) / np.sqrt(5), rel=1e-12)
    assert e["series"]["n_gb"] == [0] * 20 + gb.tolist()
    assert e["series"]["t_ps"] == [float(k) for k in range(30)]


def test_uniform_expectation_enrichment_and_slope(prescribed):
    e = prescribed["excess"]
    gb = np.array(N0) + np.array(N1)
    assert e["uniform_expected"] == pytest.approx(N_EXC * (2 * W * 2) / L[2], rel=1e-12)  # 4.0
    assert e["enrichment"] == pytest.approx(gb.mean() / 4.0, rel=1e-12)
    fit = stats.linregress(np.arange(20.0, 30.0), gb)
    assert e["slope_per_ps"] == pytest.approx(fit.slope, rel=1e-12)
    assert e["slope_se_per_ps"] == pytest.approx(fit.stderr, rel=1e-10)
    assert prescribed["n_excess"] == N_EXC and prescribed["n_li"] == N_CORE


def test_a_linear_inflow_gives_its_slope_exactly_across_the_periodic_boundary(tmp_path):
    # planes at 1 Å and 21 Å: band atoms of plane 0 sit on both sides of z = 0;
    # n_gb = 1, 2, ..., 10 in the last 10 frames, 0.5 ps apart → slope 2 atoms/ps exactly
    occupancy = [(n - n // 2, n // 2) for n in [0] * 5 + list(range(1, 11))]
    write_excess_dump(tmp_path / "lin.dump", [1.0, 21.0], occupancy, step=250)
    r = analyze(
        tmp_path,
        tmp_path / "lin.dump",
        "--excess-above-id",
        1000,
        "--gb",
        "1,21",
        "--avg-window-ps",
        4.5,
    )
    e = r["excess"]
    assert e["series"]["n_gb"] == [0] * 5 + list(range(1, 11))
    assert e["window_ps"] == [2.5, 7.0]
    assert e["slope_per_ps"] == pytest.approx(2.0, rel=1e-12)
    assert e["slope_se_per_ps"] == pytest.approx(0.0, abs=1e-12)


def test_excess_ids_from_a_file(tmp_path):
    write_excess_dump(tmp_path / "e.dump", [10.0, 30.0], OCCUPANCY)
    (tmp_path / "ids.txt").write_text(
        "# the inserted Li\n" + "\n".join(map(str, range(1001, 1021)))
    )
    r = analyze(
        tmp_path,
        tmp_path / "e.dump",
        "--excess-ids",
        tmp_path / "ids.txt",
        "--gb",
        "10,30",
        "--avg-window-ps",
        9,
    )
    assert r["excess"]["gb_mean"] == pytest.approx(np.mean(np.add(N0, N1)), rel=1e-12)
    assert r["n_excess"] == N_EXC and r["n_li_total"] == N_CORE + N_EXC
