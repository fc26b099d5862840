"""The new results sections of issue 12 on synthetic data with known answers: hop counts,
site occupancies and site hops, block standard errors of the profile, and the whole
`bundle analyze` pass that writes them (checks.extras)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import InputError
from checks import hops
from checks.blocks import BlockProfile
from checks.lammpsio import dump_columns, write_frame
from checks.profile import profile_numbers
from checks.sites import Occupancy, load_sites

BOX = np.array([12.0, 12.0, 24.0])
LOST = [1.75, 1.75, 2.75]  # > 1.5 Å from every site of _sites


def test_hops_are_counted_per_region_through_the_rattling():
    rng = np.random.default_rng(1)
    F, m = 120, 20
    r = np.zeros((F, m, 3))
    r[:, :, 0] = np.arange(m) * 10.0
    jumps = {0: [30], 1: [30, 70], 12: [50], 13: []}  # atom -> frames of a 2.5 Å jump
    for a, frames in jumps.items():
        for t in frames:
            r[t:, a, 1] += 2.5
    r += rng.normal(scale=0.3, size=r.shape)  # thermal rattling, single frame
    codes = np.repeat(np.where(np.arange(m) < 10, 0, 1)[None, :], F, axis=0)  # gb | bulk
    hc = hops.HopCounter(F, 0.2, hops.block_frames(F, 0.2))
    hc.add(r, codes)
    sec = hc.section()["regions"]
    assert (sec["gb"]["hops"], sec["bulk"]["hops"], sec["other"]["hops"]) == (3, 1, 0)
    assert sec["gb"]["li_ps"] == pytest.approx(10 * 59 * 0.4)  # 60 blocks: 59 steps each
    assert sec["gb"]["mean_hop_length_A"] == pytest.approx(2.5, abs=0.3)
    lo, hi = sec["other"]["rate_ci95_per_li_ps"] or (None, None)
    assert sec["other"]["li_ps"] == 0 and lo is None


def test_poisson_interval_of_zero_counts_is_an_upper_bound():
    assert hops.poisson_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)
    lo, hi = hops.poisson_interval(10)
    assert lo == pytest.approx(4.795, abs=1e-3) and hi == pytest.approx(18.39, abs=1e-2)


def _sites(tmp_path):
    """24d-like single sites on a 3 Å grid and 96h-like pairs (0.9 Å apart) between them."""
    g = np.stack(np.meshgrid(*(np.arange(0, L, 3.0) for L in BOX), indexing="ij"), -1)
    s24 = g.reshape(-1, 3) + 0.25
    pair = g.reshape(-1, 3) + np.array([1.25, 1.25, 1.25])
    s96 = np.concatenate([pair + [0.45, 0, 0], pair - [0.45, 0, 0]])
    xyz = np.concatenate([s24, s96])
    label = np.array(["24d"] * len(s24) + ["96h"] * len(s96))
    path = tmp_path / "li_sites.npz"
    np.savez(path, xyz=xyz, label=label, grain=(xyz[:, 2] > 12).astype(int))
    return path, xyz, label


def test_occupancies_per_region_recover_the_filling(tmp_path):
    path, xyz, label = _sites(tmp_path)
    sites = load_sites(path)
    occ = Occupancy(sites, BOX, np.zeros(3), [0.25, 0.75], w=2.0, d_bulk=4.5)
    rng = np.random.default_rng(2)
    want = {"24d": 0.6, "96h": 0.4}
    F = 30
    frames = []
    for _ in range(F):
        pos = []
        for region in range(3):
            for lab, p in want.items():
                idx = np.flatnonzero((occ.region == region) & (label == lab))
                pos.append(xyz[rng.choice(idx, round(p * len(idx)), replace=False)])
        pos = np.concatenate(pos)
        frames.append(pos + rng.normal(scale=0.08, size=pos.shape))
    n_li = len(frames[0])
    stray = np.tile([LOST], (F, 1))[:, None, :]
    r = np.concatenate([np.array(frames), stray], axis=1)
    occ.add(r / BOX)
    sec = occ.section(F)
    for region in ("boundary", "between", "interior", "all"):
        got = sec["regions"][region]["occupancy"]
        for lab, p in want.items():
            n = sec["regions"][region]["n_sites"][lab]
            assert got[lab] == pytest.approx(round(p * n) / n if region != "all" else p, abs=0.02)
    assert sec["unassigned_fraction"] == pytest.approx(1 / (n_li + 1), rel=1e-9)


def test_site_hops_count_cage_changes_only(tmp_path):
    path, xyz, label = _sites(tmp_path)
    occ = Occupancy(load_sites(path), BOX, np.zeros(3), [0.25, 0.75], w=2.0, d_bulk=4.5)
    a96, b96 = xyz[len(xyz) - 64], None
    partner = np.flatnonzero(np.linalg.norm(xyz - a96, axis=1) < 1.0)
    b96 = xyz[partner[partner != len(xyz) - 64][0]]
    s24 = xyz[0]
    path_ = [a96] * 5 + [b96] * 5 + [LOST] * 3 + [s24] * 7  # 96h, its pair, lost, 24d
    occ.add(np.array(path_)[:, None, :] / BOX)
    from_region = ("boundary", "between", "interior")[occ.region[len(xyz) - 64]]
    assert sum(occ.section(20)["site_hops"].values()) == 1
    assert occ.section(20)["site_hops"][from_region] == 1


def test_bad_sites_file_is_one_line_naming_the_array(tmp_path):
    np.savez(tmp_path / "bad.npz", xyz=np.zeros((3, 3)), label=np.array(["24d"] * 3))
    with pytest.raises(InputError, match="grain: array missing"):
        load_sites(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad2.npz", xyz=np.zeros((3, 2)), label=np.zeros(3), grain=np.zeros(3))
    with pytest.raises(InputError, match=r"xyz: expected finite \(n, 3\)"):
        load_sites(tmp_path / "bad2.npz")


def test_block_profiles_give_the_metrics_per_block_and_their_se():
    rng = np.random.default_rng(3)
    F, n_bins = 50, 48
    lengths = np.tile(BOX, (F, 1))
    frac = rng.random((F, 300))
    frac[:25, :40] = 0.25 + rng.normal(scale=0.01, size=(25, 40))  # GB-rich first half
    bp = BlockProfile(F, 5, n_bins)
    bp.add(frac)
    sec = bp.section(lengths, np.zeros(F), [6.0, 18.0], 2.0, 4.0)
    z = (np.arange(n_bins) + 0.5) * 0.5
    for b in range(5):
        sel = np.arange(F) * 5 // F == b
        hist = np.bincount((frac[sel] * n_bins).astype(int).ravel(), minlength=n_bins)
        rho = hist / sel.sum() / (144.0 * 0.5)
        nums = profile_numbers(rho, z, 24.0, [6.0, 18.0], 2.0, 4.0)
        assert sec["values"]["band_ratio"][b] == pytest.approx(nums["band_ratio"])
        assert sec["values"]["gamma_per_nm2.mean"][b] == pytest.approx(np.mean(nums["gammas"]))
    v = sec["values"]["rho_bulk_per_A3"]
    assert sec["se"]["rho_bulk_per_A3"] == pytest.approx(np.std(v, ddof=1) / np.sqrt(5))
    assert sec["rho_cell_per_A3"] == pytest.approx(300 / BOX.prod())
    assert sec["rho_cell_se_per_A3"] == pytest.approx(0.0, abs=1e-15)
    assert sec["values"]["band_ratio"][0] > 1.3  # the GB-rich blocks stand out ...
    assert sec["values"]["band_ratio"][4] == pytest.approx(1.0, abs=0.2)  # ... from uniform


def test_analyze_writes_the_new_sections_beside_the_metrics(tmp_path):
    path, xyz, label = _sites(tmp_path)
    rng = np.random.default_rng(5)
    n_li = 60
    start = xyz[rng.choice(len(xyz), n_li, replace=False)]
    ids, types = np.arange(1, n_li + 1), np.ones(n_li, int)
    with open(tmp_path / "t.dump", "wb") as f:
        for k in range(40):
            pos = start + rng.normal(scale=0.1, size=start.shape)
            cols = dump_columns("unwrapped", ids, types, pos, [0, 0, 0], BOX)
            write_frame(f, 100 * k, [0, 0, 0], BOX, cols)
    out = tmp_path / "out"
    args = ["analyze", str(tmp_path / "t.dump"), "--timestep-fs", "2", "--type-map", "1:Li",
            "--gb", "6,18", "--d-bulk", "4", "--temperature-K", "700", "--li-sites", str(path),
            "--out", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert r["parameters"]["temperature_K"] == 700.0
    assert r["parameters"]["li_sites"] == load_sites(path).sha256
    occ = r["li_sites"]["regions"]["all"]
    placed = sum(occ["occupancy"][lab] * occ["n_sites"][lab] for lab in occ["n_sites"])
    assert placed == pytest.approx(n_li, rel=1e-9)  # every Li sits within 1 Å of its site
    assert r["li_sites"]["unassigned_fraction"] == pytest.approx(0.0, abs=1e-12)
    assert sum(reg["hops"] for reg in r["hops"]["regions"].values()) == 0  # rattling only
    gls = r["diffusion_gls"]["classes"]["all"]["xyz"]
    assert not gls["usable"]  # caged Li: flagged, not a diffusion coefficient
    assert r["profile_se"]["n_blocks"] == 5
    assert r["diffusion_gls"]["msd_short_A2"]["lag_ps"] == pytest.approx(1.0)


def test_bad_li_sites_path_is_a_one_line_input_error(tmp_path):
    ids, types = np.arange(1, 4), np.ones(3, int)
    with open(tmp_path / "t.dump", "wb") as f:
        for k in range(5):
            cols = dump_columns("unwrapped", ids, types, np.ones((3, 3)) * k, [0] * 3, BOX)
            write_frame(f, k, [0, 0, 0], BOX, cols)
    args = ["analyze", str(tmp_path / "t.dump"), "--timestep-fs", "1", "--type-map", "1:Li",
            "--gb", "6,18", "--d-bulk", "4", "--li-sites", str(tmp_path / "no.npz"),
            "--out", str(tmp_path / "o")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3
    assert "no.npz" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o" / "results.json").exists()
