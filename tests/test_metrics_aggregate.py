"""checks.aggregate: two seeds' results.json → means under the same keys, the standard
error per scalar, per-GB lists aligned, refusal of runs with other parameters."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import InputError
from checks.aggregate import aggregate, aggregate_files
from checks.lammpsio import dump_columns, write_frame
from checks.reference import judge, load_reference

L = np.array([10.0, 10.0, 40.0])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    paths = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        ids, types = np.arange(1, 121), np.ones(120, int)
        pos = rng.uniform(0, 1, (120, 3)) * L
        pos[:40, 2] = rng.choice([10.0, 30.0], 40) + rng.normal(0, 0.5, 40)  # two Li-rich planes
        with open(tmp / f"s{seed}.dump", "wb") as f:
            for k in range(20):
                write_frame(
                    f,
                    100 * k,
                    [0, 0, 0],
                    L,
                    dump_columns("unwrapped", ids, types, pos, [0, 0, 0], L),
                )
                pos[40:] += rng.normal(0, 0.3, (80, 3))
        out = tmp / f"out{seed}"
        args = ["analyze", str(tmp / f"s{seed}.dump"), "--timestep-fs", "1", "--type-map", "1:Li",
                "--excess-above-id", "110", "--avg-window-ps", "1", "--out", str(out)]  # fmt: skip
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.stderr
        paths.append(out / "results.json")
    return paths


def test_means_and_standard_errors_under_the_same_keys(two_seeds):
    a, b = (json.loads(p.read_text()) for p in two_seeds)
    agg = aggregate_files(two_seeds)
    assert agg["schema"] == "gb-analysis/1" and agg["seeds"]["n"] == 2
    for key, x, y in [
        ("peak_ratio", a["peak_ratio"], b["peak_ratio"]),
        ("excess.enrichment", a["excess"]["enrichment"], b["excess"]["enrichment"]),
        (
            "diffusion.D_cm2_s.all",
            a["diffusion"]["D_cm2_s"]["all"],
            b["diffusion"]["D_cm2_s"]["all"],
        ),
    ]:
        node = agg
        for part in key.split("."):
            node = node[part]
        assert node == pytest.approx((x + y) / 2, rel=1e-12)
        assert agg["seeds"]["values"][key] == [x, y]
        assert agg["seeds"]["sem"][key] == pytest.approx(abs(x - y) / 2, rel=1e-9)  # n = 2
    np.testing.assert_allclose(
        agg["profile"]["rho_li_per_A3"],
        (np.array(a["profile"]["rho_li_per_A3"]) + b["profile"]["rho_li_per_A3"]) / 2,
    )
    q = next(
        q for q in load_reference("llzo-gb-700K-published").quantities if q.key == "peak_ratio"
    )
    assert judge(agg, q)["value"] == agg["peak_ratio"]  # bundle check reads it like one run


def test_per_gb_lists_are_aligned_on_the_first_runs_planes(two_seeds):
    a = json.loads(two_seeds[0].read_text())
    swapped = copy.deepcopy(a)
    swapped["gb_planes_A"] = a["gb_planes_A"][::-1]
    swapped["excess"]["per_gb_mean"] = a["excess"]["per_gb_mean"][::-1]
    swapped["gamma_per_nm2"]["per_gb"] = a["gamma_per_nm2"]["per_gb"][::-1]
    agg = aggregate([a, swapped], ["a", "swapped"])
    assert agg["gb_planes_A"] == pytest.approx(a["gb_planes_A"])
    assert agg["excess"]["per_gb_mean"] == pytest.approx(a["excess"]["per_gb_mean"])
    assert agg["gamma_per_nm2"]["per_gb"] == pytest.approx(a["gamma_per_nm2"]["per_gb"])
    assert agg["seeds"]["sem"]["excess.per_gb_mean.0"] == 0.0


def test_runs_with_other_parameters_or_a_single_run_are_refused(two_seeds):
    a, b = (json.loads(p.read_text()) for p in two_seeds)
    b["parameters"]["w_A"] = 3.0
    with pytest.raises(InputError, match=r"b: parameters.w_A: 3.0 differs from 2.0 in a"):
        aggregate([a, b], ["a", "b"])
    with pytest.raises(InputError, match="need at least two runs"):
        aggregate([a], ["a"])
