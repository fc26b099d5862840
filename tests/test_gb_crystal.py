"""checks.crystal: Γ against a single-crystal density, the interior-equals-crystal test and
the control-vs-boundary table, on results documents built from synthetic Li heights
through the same profile functions as `bundle analyze` (checks.profile, checks.blocks)."""

from __future__ import annotations

import numpy as np
import pytest

from checks import aggregate, crystal
from checks.blocks import BlockProfile
from checks.profile import profile_numbers

BOX = np.array([10.0, 10.0, 40.0])
PLANES = [10.0, 30.0]
N_BINS = 80  # 0.5 Å


def make_doc(frac: np.ndarray, d_bulk: float = 6.0) -> dict:
    """A gb-analysis/1-shaped document (profile metrics + profile_se) of heights (F, m)."""
    F = len(frac)
    hist = np.bincount((np.mod(frac, 1) * N_BINS).astype(int).ravel(), minlength=N_BINS)
    dz = BOX[2] / N_BINS
    rho = hist / F / (BOX[0] * BOX[1] * dz)
    z = (np.arange(N_BINS) + 0.5) * dz
    n = profile_numbers(rho, z, BOX[2], PLANES, 2.0, d_bulk)
    bp = BlockProfile(F, 5, N_BINS)
    bp.add(frac)
    return {
        "schema": "gb-analysis/1",
        "parameters": {"dz_A": 0.5, "w_A": 2.0, "d_bulk_A": d_bulk},
        "box_A": list(BOX),
        "gb_planes_A": PLANES,
        "profile": {"z_A": list(z), "rho_li_per_A3": list(rho), "dz_A": dz},
        "rho_bulk_per_A3": n["rho_bulk"],
        "rho_peak_per_A3": n["rho_peak"],
        "peak_ratio": n["peak_ratio"],
        "rho_band_per_A3": n["rho_band"],
        "band_ratio": n["band_ratio"],
        "gamma_per_nm2": {"per_gb": n["gammas"], "mean": float(np.mean(n["gammas"]))},
        "profile_se": bp.section(np.tile(BOX, (F, 1)), np.zeros(F), PLANES, 2.0, d_bulk),
    }


def heights(rng, F, m, extra_at_planes=0, spread=0.02):
    """Uniform Li heights plus `extra_at_planes` Li held near each plane."""
    frac = rng.random((F, m))
    if extra_at_planes:
        near = np.concatenate([np.full(extra_at_planes, p / BOX[2]) for p in PLANES])
        frac = np.concatenate([frac, near + rng.normal(scale=spread, size=(F, len(near)))], 1)
    return frac


def test_gamma_against_the_crystal_is_the_excess_over_its_density():
    rng = np.random.default_rng(1)
    gb = make_doc(heights(rng, 100, 400, extra_at_planes=20))
    sc = make_doc(heights(rng, 100, 400))
    out = crystal.gamma_vs_crystal(gb, sc)
    rho = np.array(gb["profile"]["rho_li_per_A3"])
    rho_sc = float(np.mean(sc["profile"]["rho_li_per_A3"]))
    assert rho_sc == pytest.approx(400 / BOX.prod())  # the whole-cell mean: N / V exactly
    z = np.array(gb["profile"]["z_A"])
    d0, d1 = (np.abs((z - p + 20) % 40 - 20) for p in PLANES)
    near0 = (d0 < d1) & (d0 < 6.0)
    want0 = float((rho[near0] - rho_sc).sum() * 0.5 * 100)
    assert out["per_gb"][0]["vs_crystal"]["value"] == pytest.approx(want0, rel=1e-12)
    # 20 Li per plane on a 10 x 10 Å² boundary: 20 Li/nm² on top of the crystal density
    assert out["mean"]["vs_crystal"]["value"] == pytest.approx(20.0, abs=3.0)
    # in cell, the grain interior is the crystal plus nothing: the two agree within error
    diff = out["mean"]["vs_crystal_minus_in_cell"]
    assert diff["se"] > 0 and diff["agree"] is True
    assert out["mean"]["vs_crystal"]["se"] > 0


def test_gamma_against_the_crystal_sees_what_a_thin_grain_hides():
    """A cell with fewer Li between the boundaries than the crystal: in-cell Γ takes
    rho_bulk from that interior and misses the depletion; against the crystal it shows."""
    rng = np.random.default_rng(2)
    gb = make_doc(heights(rng, 100, 300, extra_at_planes=10))
    sc = make_doc(heights(rng, 100, 400))
    out = crystal.gamma_vs_crystal(gb, sc)
    inside = crystal.interior_vs_crystal(gb, sc)
    assert inside["agree"] is False and inside["difference"] < 0
    assert out["mean"]["vs_crystal_minus_in_cell"]["agree"] is False
    assert out["mean"]["vs_crystal"]["value"] < out["mean"]["in_cell"]["value"]


def test_interior_equals_the_crystal_within_error_when_it_is_bulk():
    rng = np.random.default_rng(3)
    gb = make_doc(heights(rng, 200, 400, extra_at_planes=15))
    sc = make_doc(heights(rng, 200, 400 + 0))
    # the same bulk density in both: rho_bulk of the bicrystal is 400 / V by construction
    out = crystal.interior_vs_crystal(gb, sc)
    assert out["rho_bulk"]["se"] > 0 and out["rho_bulk"]["se_from"] == "blocks (n=5)"
    assert out["agree"] is True and abs(out["z"]) <= 2.0


def test_control_table_and_checks():
    rng = np.random.default_rng(4)
    control = make_doc(heights(rng, 100, 400))
    gb = make_doc(heights(rng, 100, 400, extra_at_planes=20))
    rows = {r["quantity"]: r for r in crystal.control_table(control, gb)}
    assert set(rows) == {k for k, _, _ in crystal.PROFILE_KEYS}
    br = rows["band_ratio"]
    assert br["control"]["value"] == pytest.approx(1.0, abs=0.1)
    assert br["boundary"]["value"] > 1.3 and br["agree"] is False and br["z"] > 2
    assert br["difference"] == pytest.approx(br["boundary"]["value"] - br["control"]["value"])
    checks = crystal.control_checks(control)
    assert checks["band_ratio"]["ok"] is True and checks["gamma"]["ok"] is True
    assert crystal.control_checks(gb)["band_ratio"]["ok"] is False


def test_seeds_of_an_aggregate_give_the_standard_errors():
    rng = np.random.default_rng(5)
    docs = [make_doc(heights(rng, 60, 400, extra_at_planes=20)) for _ in range(4)]
    for d in docs:  # what aggregate needs of a full results document
        d["parameters"] |= {"timestep_fs": 1.0}
    agg = aggregate.aggregate(docs, [f"s{i}" for i in range(4)])
    est = crystal.estimate(agg, "band_ratio")
    vals = [d["band_ratio"] for d in docs]
    assert est.source == "seeds (n=4)"
    assert est.se == pytest.approx(np.std(vals, ddof=1) / 2)
    assert len(agg["profile_se"]["rho_li_per_A3"]) == 5  # block profiles survive the merge
    sc = make_doc(heights(rng, 60, 400))
    assert crystal.section(agg, sc, docs[0])["gamma"]["mean"]["vs_crystal"]["se"] > 0
    assert crystal.section(agg) is None
