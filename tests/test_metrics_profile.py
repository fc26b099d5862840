"""The Li density profile (検証A) on synthetic dumps with analytic answers, through the CLI.

Li are placed at random heights inside chosen bins, so every frame has exactly the
prescribed count per bin: rho, rho_bulk, the peak and band ratios, Gamma and the GB
planes then follow by hand (worked out in the comments).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle.cli import app
from checks.lammpsio import dump_columns, write_frame

LX = LY = 10.0
ZLO, LZ, DZ = -3.0, 40.0, 0.5  # 80 bins; bin i centre = -3 + (i + 0.5) * 0.5
AREA = LX * LY
BIN_VOLUME = AREA * DZ  # 50 Å³


def centre(i: int) -> float:
    return ZLO + (i + 0.5) * DZ


def li_counts(peaks: dict[int, list[int]], base: int = 2) -> np.ndarray:
    """Li per bin: `base` everywhere, and around bin i the counts [c0, c1, c2, ...] at
    distances 0, 1, 2, ... bins on both sides."""
    counts = np.full(80, base)
    for i, shape in peaks.items():
        for d, c in enumerate(shape):
            counts[(i - d) % 80] = counts[(i + d) % 80] = c
    return counts


def write_profile_dump(path, counts, n_frames=4, n_excess=0, seed=0, style="unwrapped"):
    """Li (type 1) per `counts`, 300 O (type 2) anywhere, `n_excess` Li (ids > 10000)
    anywhere; new random heights inside the bins every frame, atoms in random order."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array([0, 0, ZLO]), np.array([LX, LY, ZLO + LZ])
    n_li = int(counts.sum())
    n_o = 300
    ids = np.concatenate([np.arange(1, n_li + n_o + 1), 10001 + np.arange(n_excess)])
    types = np.concatenate([np.ones(n_li, int), np.full(n_o, 2), np.ones(n_excess, int)])
    bins = np.repeat(np.arange(80), counts)
    with open(path, "wb") as f:
        for k in range(n_frames):
            z_li = ZLO + (bins + rng.uniform(0.02, 0.98, n_li)) * DZ
            z_other = rng.uniform(ZLO, ZLO + LZ, n_o + n_excess)
            z = np.concatenate([z_li, z_other])
            xy = rng.uniform(0, LX, (len(ids), 2)) + rng.integers(-2, 3, (len(ids), 2)) * LX
            pos = np.column_stack([xy, z])
            order = rng.permutation(len(ids))
            cols = dump_columns(style, ids[order], types[order], pos[order], lo, hi)
            write_frame(f, 1000 * k, lo, hi, cols)


def analyze(tmp_path, dump, *extra):
    out = tmp_path / "out"
    args = ["analyze", str(dump), "--timestep-fs", "1", "--type-map", "1:Li,2:O", "--out", str(out)]
    r = CliRunner().invoke(app, [*args, *map(str, extra)])
    assert r.exit_code == 0, r.stderr
    return json.loads((out / "results.json").read_text())


# Two GBs at bins 20 and 60 (z = 7.25, 27.25 Å): peak shapes [10, 6, 4] and [8, 6, 4].
PEAKS = {20: [10, 6, 4], 60: [8, 6, 4]}


@pytest.fixture(scope="module")
def two_gb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    write_profile_dump(tmp / "gb.dump", li_counts(PEAKS), n_excess=25, style="wrapped+image")
    return tmp, analyze(tmp, tmp / "gb.dump", "--excess-above-id", 10000)


def test_profile_matches_the_prescribed_counts(two_gb):
    _, r = two_gb
    counts = li_counts(PEAKS)
    np.testing.assert_allclose(r["profile"]["z_A"], [centre(i) for i in range(80)])
    np.testing.assert_allclose(r["profile"]["rho_li_per_A3"], counts / BIN_VOLUME, rtol=1e-12)
    assert r["profile"]["dz_A"] == DZ and r["box_A"] == [LX, LY, LZ]
    assert r["n_li"] == counts.sum() and r["n_excess"] == 25 and r["n_frames"] == 4


def test_planes_bulk_peak_band_and_gamma_by_hand(two_gb):
    _, r = two_gb
    # symmetric neighbours (6, 6) → the parabola does not shift the highest bin's centre
    assert r["gb_planes_A"] == pytest.approx([centre(20), centre(60)], abs=1e-12)
    # bins >= 8 Å from both planes hold the base 2 Li: 2 / 50 Å³
    assert r["rho_bulk_per_A3"] == pytest.approx(2 / BIN_VOLUME, rel=1e-12)
    assert r["rho_peak_per_A3"] == pytest.approx(10 / BIN_VOLUME, rel=1e-12)
    assert r["peak_ratio"] == pytest.approx(5.0, rel=1e-12)
    # within 2 Å: 9 bins per plane: 10+6+6+4+4+2*4 = 38 and 8+6+6+4+4+2*4 = 36
    assert r["rho_band_per_A3"] == pytest.approx(74 / 18 / BIN_VOLUME, rel=1e-12)
    assert r["band_ratio"] == pytest.approx(74 / 36, rel=1e-12)
    # Gamma_k = sum of the excess Li over the base, per area: 20 and 18 Li per 100 Å²
    assert r["gamma_per_nm2"]["per_gb"] == pytest.approx([20.0, 18.0], rel=1e-12)
    assert r["gamma_per_nm2"]["mean"] == pytest.approx(19.0, rel=1e-12)


def test_excess_li_join_the_profile_only_when_asked(two_gb):
    tmp, r = two_gb
    with_excess = analyze(tmp, tmp / "gb.dump", "--excess-above-id", 10000, "--include-excess")
    rho = np.array(with_excess["profile"]["rho_li_per_A3"])
    assert rho.sum() * BIN_VOLUME == pytest.approx(li_counts(PEAKS).sum() + 25, rel=1e-12)
    assert with_excess["parameters"]["include_excess"] is True
    assert r["parameters"]["include_excess"] is False


def test_an_asymmetric_peak_is_refined_by_the_parabola(tmp_path):
    # highest bin 30 holds 10, its neighbours 8 (left) and 4 (right):
    # shift = 0.5 (8 - 4) / (8 - 2*10 + 4) = -0.25 bin → z0 = centre(30) - 0.125 Å
    counts = li_counts({30: [10]})
    counts[29], counts[31] = 8, 4
    write_profile_dump(tmp_path / "p.dump", counts, n_frames=1)
    r = analyze(tmp_path, tmp_path / "p.dump", "--d-bulk", 5)
    z0 = centre(30) - 0.125
    assert r["gb_planes_A"] == pytest.approx([z0, z0 + LZ / 2], abs=1e-12)
    assert r["diffusion"] is None and r["excess"] is None  # one frame, no excess ids


def test_given_planes_are_used_and_a_plane_outside_the_box_is_refused(tmp_path):
    write_profile_dump(tmp_path / "g.dump", li_counts(PEAKS), n_frames=2)
    outside = ["analyze", str(tmp_path / "g.dump"), "--timestep-fs", "1", "--type-map", "1:Li"]
    outside += ["--out", str(tmp_path / "o"), "--gb", f"{centre(20) + LZ},{centre(60)}"]
    bad = CliRunner().invoke(app, outside)
    assert bad.exit_code == 3 and "--gb: plane 47.25 Å is outside the box" in bad.stderr
    assert f"periodic image of 47.25 is {centre(20):.3f}" in bad.stderr
    r = analyze(tmp_path, tmp_path / "g.dump", "--gb", f"{centre(20)},{centre(60)}")
    assert r["gb_planes_A"] == pytest.approx([centre(20), centre(60)], abs=1e-9)
    assert r["parameters"]["gb_planes_given"] is True
    assert r["gamma_per_nm2"]["per_gb"] == pytest.approx([20.0, 18.0], rel=1e-12)


def test_a_narrower_band_and_a_bulk_margin_change_what_is_averaged(tmp_path):
    write_profile_dump(tmp_path / "g.dump", li_counts(PEAKS), n_frames=1)
    r = analyze(tmp_path, tmp_path / "g.dump", "--w", 0.5, "--d-bulk", 1.5)
    # bulk (>= 1.5 Å = 3 bins from both planes): the base 2 Li per bin
    assert r["rho_bulk_per_A3"] == pytest.approx(2 / BIN_VOLUME, rel=1e-12)
    # w = 0.5 Å: 3 bins per plane, 10+6+6 and 8+6+6 Li
    assert r["rho_band_per_A3"] == pytest.approx(42 / 6 / BIN_VOLUME, rel=1e-12)
    # Gamma: bins closer than 1.5 Å (0, ±1, ±2 bins): (10-2) + 2(6-2) + 2(4-2) = 20, and 18
    assert r["gamma_per_nm2"]["per_gb"] == pytest.approx([20.0, 18.0], rel=1e-12)
    r = analyze(tmp_path, tmp_path / "g.dump", "--d-bulk", 0.75)
    # d_bulk 0.75 Å: the bulk now includes the four bins holding 4 Li: b = (4*4 + 70*2) / 74,
    # and Gamma counts bins 0 and ±1 only: (10 - b) + 2 (6 - b), (8 - b) + 2 (6 - b)
    b = (4 * 4 + 70 * 2) / 74
    assert r["rho_bulk_per_A3"] == pytest.approx(b / BIN_VOLUME, rel=1e-12)
    assert r["gamma_per_nm2"]["per_gb"] == pytest.approx([22 - 3 * b, 20 - 3 * b], rel=1e-12)
