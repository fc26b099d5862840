"""The boundary protocol for real (LAMMPS, classical set) on the cpu cell, through the
study stages: the 4-point translation scan keeps the lowest boundary energy; the relax
stage (minimise with the box free along z, anneal at 1000 K, quench) meets the
residual-force bound and leaves a garnet in the grain interiors; the boundary-free control
builds, relaxes and runs MD.

The chain is the shipped study's (the session fixture `llzo_gb_runs`, run once for these
tests and tests/test_llzo_study.py); the tests read it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def relaxed(llzo_gb_runs) -> Path:
    """The new seed's run of the shipped study (tests/llzo_fixture.py): its 4-point scan,
    builds, relaxations and control MD are what these tests read."""
    run = llzo_gb_runs["new_seed"]
    for name in ("build_control", "relax_control", "build", "relax", "production_control"):
        m = _stage(run["dir"], name) / "manifest.json"
        assert m.is_file(), run["log"][-2000:]
    return run["dir"]


def _stage(run: Path, name: str) -> Path:
    (d,) = run.glob(f"[0-9][0-9]_{name}")
    return d


def _json(run: Path, name: str, file: str) -> dict:
    return json.loads((_stage(run, name) / file).read_text())


@pytest.mark.slow
@pytest.mark.engine
def test_scan_keeps_the_lowest_boundary_energy(relaxed):
    scan = _json(relaxed, "build", "scan.json")
    gammas = [p["gamma_J_m2"] for p in scan["points"]]
    assert len(gammas) == 4 and all(math.isfinite(g) and 0.0 < g < 10.0 for g in gammas)
    assert scan["best"] == int(np.argmin(gammas))
    built = _json(relaxed, "build", "bicrystal.json")
    assert built["gap_A"] == scan["best_point"]["gap_A"]  # the structure is the winner's
    # what the contact rule removed at each point is a sum of neutral oxide units
    for p in scan["points"]:
        assert set(p["removed_units"]) <= {"LiO0.5", "LaO1.5", "ZrO2", "AlO1.5"}


@pytest.mark.slow
@pytest.mark.engine
def test_relax_meets_the_force_bound_and_leaves_a_garnet(relaxed):
    r = _json(relaxed, "relax", "relax.json")
    assert r["meets_force_bound"] and r["fmax_eV_A"] <= r["fmax_bound_eV_A"] == 0.05
    assert set(r["phases"]) == {"min1", "anneal", "min2"}
    assert r["phases"]["anneal"]["energy_eV"] > r["phases"]["min2"]["energy_eV"]
    for when in ("anneal", "final"):  # interior Zr keeps its 6 O, Al its 4
        zr = r["coordination"][when]["Zr-O"]
        assert zr["n"] > 50 and zr["fraction_bulk"] >= (1.0 if when == "final" else 0.95)
    assert r["coordination"]["final"]["Al-O"]["fraction_bulk"] == 1.0
    # boundary energy against the relaxed control, finite and positive
    g = r["gamma"]["gamma_J_m2"]
    assert 0.0 < g < 5.0
    # the planes moved with the grains, by less than the box shrank
    lz0 = _json(relaxed, "build", "bicrystal.json")["box_A"][2]
    scaled = [z * r["box_A"][2] / lz0 for z in r["gb_planes_built_A"]]
    assert np.allclose(r["gb_planes_A"], scaled, atol=1.0)
    assert sum(r["li_per_half"]["final"]) == r["counts"]["Li"]
    sites = np.load(_stage(relaxed, "relax") / "li_sites.npz")
    built = np.load(_stage(relaxed, "build") / "li_sites.npz")
    assert sites["xyz"].shape == built["xyz"].shape and np.all(sites["xyz"][:, 2] < r["box_A"][2])


@pytest.mark.slow
@pytest.mark.engine
def test_control_builds_relaxes_and_runs(relaxed):
    c = _json(relaxed, "build_control", "bicrystal.json")
    assert c["control"] and c["removed_at_boundaries"] == {}
    assert c["counts"] == {"Li": 500, "La": 240, "Zr": 160, "O": 960, "Al": 20}
    r = _json(relaxed, "relax_control", "relax.json")
    assert r["meets_force_bound"] and r["control"] and "gamma" not in r
    assert r["coordination"]["final"]["Zr-O"]["fraction_bulk"] == 1.0
    for name in ("equilibrate_control", "production_control"):
        m = _json(relaxed, name, "manifest.json")
        assert m["status"] == "complete" and m["result"]["md"]["steps"] > 0, name
    assert m["result"]["md"]["frames"] >= 2  # the production dumps its frames
