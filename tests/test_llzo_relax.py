"""The boundary protocol for real (LAMMPS, classical set) on the cpu cell, through the
study stages: a two-point translation scan keeps the lower boundary energy; the relax
stage (minimise with the box free along z, anneal at 1000 K, quench) meets the
residual-force bound and leaves a garnet in the grain interiors; the boundary-free control
builds, relaxes and runs MD.

One session fixture runs the chain once (`bundle run` of a cut-down llzo-gb: short anneal,
no production); the tests read it. Marked slow: a few CPU minutes on one core.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from runbook import config, engine, loader

STAGES = ["build_control", "relax_control", "build", "relax", "equilibrate_control"]


@pytest.fixture(scope="session")
def relaxed(tmp_path_factory, lammps_module) -> Path:
    doc = yaml.safe_load(config.resolve_path("llzo-gb").read_text())
    doc.pop("sweep")
    doc = {k: v for k, v in doc.items() if k in ("schema", "name", "species", "profile",
                                                 "profiles", *STAGES)}  # fmt: skip
    doc["stages"] = STAGES
    doc["build"]["scan"] = {"termination": [1], "shift_x_A": [0.0], "shift_y_A": [0.0],
                            "gap_A": [1.0, 2.0], "seed": 1}  # fmt: skip
    for name in ("relax", "relax_control"):
        doc[name]["anneal_ps"] = 0.5
    doc["equilibrate_control"].update(time_ps=0.2, dump_every_ps=0.1)
    root = tmp_path_factory.mktemp("llzo_relax")
    (root / "study.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    run = root / "run"
    engine.run(loader.load(root / "study.yaml"), run, echo=lambda line: print(f"relax: {line}"))
    return run


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
    assert len(gammas) == 2 and all(math.isfinite(g) and 0.0 < g < 10.0 for g in gammas)
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
    m = _json(relaxed, "equilibrate_control", "manifest.json")
    assert m["status"] == "complete" and m["result"]["md"]["frames"] >= 2
