"""Our deepmd/npy writer and reader (runbook.deepmd.npy) against dpdata 1.1.0, both ways,
and the parsers of DeePMD-kit's text outputs on stored real outputs (tests/data/deepmd/,
written by deepmd-kit 3.2.0 in the DeePMD test run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from runbook.deepmd import logs, npy

DATA = Path(__file__).parent / "data" / "deepmd"
TYPE_MAP = ["Li", "O"]


def frames(seed: int = 3) -> list[Atoms]:
    """Labelled frames of two compositions (two atom orders of Li2O, one Li4O3), triclinic,
    with energies, forces and stresses (random: the format does not care about physics)."""
    rng = np.random.default_rng(seed)
    out = []
    for symbols, n in (("Li2OLiO", 3), ("OLi2", 2), ("Li4O3", 2)):
        for _ in range(n):
            a = Atoms(symbols, cell=np.eye(3) * 5 + rng.normal(0, 0.2, (3, 3)), pbc=True)
            a.positions = rng.uniform(0, 5, (len(a), 3))
            s = rng.normal(0, 0.01, 6)
            a.calc = SinglePointCalculator(
                a,
                energy=float(rng.normal(-10, 1)),
                forces=rng.normal(0, 1, (len(a), 3)),
                stress=s,
            )
            out.append(a)
    return out


def test_write_then_dpdata_reads_the_same(tmp_path):
    import dpdata

    fr = frames()
    written = npy.write_systems(fr, TYPE_MAP, tmp_path)
    assert written == {"Li3O2": 3, "Li2O1": 2, "Li4O3": 2}  # dpdata's names
    k = 0
    for name, n in written.items():
        s = dpdata.LabeledSystem(str(tmp_path / name), fmt="deepmd/npy")
        assert s.get_nframes() == n and s["atom_names"] == TYPE_MAP
        for i in range(n):
            a = fr[k + i]
            np.testing.assert_allclose(s["coords"][i], a.positions)
            np.testing.assert_allclose(s["cells"][i], a.cell.array)
            np.testing.assert_allclose(s["energies"][i], a.get_potential_energy())
            np.testing.assert_allclose(s["forces"][i], a.get_forces())
            vir = -a.get_volume() * a.get_stress(voigt=False)
            np.testing.assert_allclose(s["virials"][i], vir)
            assert [TYPE_MAP[t] for t in s["atom_types"]] == a.get_chemical_symbols()
        k += n


def test_dpdata_writes_then_we_read_the_same(tmp_path):
    import dpdata

    fr = [a for a in frames() if a.get_chemical_formula() == "Li4O3"]
    write(tmp_path / "f.extxyz", fr, format="extxyz")
    ms = dpdata.MultiSystems.from_file(tmp_path / "f.extxyz", fmt="extxyz", type_map=TYPE_MAP)
    ms.to_deepmd_npy(str(tmp_path / "dp"))
    (folder,) = npy.find_systems(tmp_path / "dp")
    s = npy.read_system(folder)
    ours = npy.to_systems(fr, TYPE_MAP)[0]
    assert s.type_map == TYPE_MAP and s.formula() == "Li4O3"
    # dpdata may order atoms by type: compare per atom through the type-sorted order
    order = np.argsort(ours.types, kind="stable")
    np.testing.assert_array_equal(s.types, ours.types[order])
    for name in ("coord", "force"):
        mine = getattr(ours, name).reshape(len(fr), -1, 3)[:, order].reshape(len(fr), -1)
        np.testing.assert_allclose(getattr(s, name), mine, atol=1e-8)
    for name in ("box", "energy", "virial"):
        np.testing.assert_allclose(getattr(s, name), getattr(ours, name), atol=1e-8)


def test_round_trip_and_refusals(tmp_path):
    fr = frames()
    npy.write_systems(fr, TYPE_MAP, tmp_path)
    back = npy.read_system(tmp_path / "Li3O2")
    np.testing.assert_array_equal(back.coord, npy.to_systems(fr, TYPE_MAP)[0].coord)
    with pytest.raises(ValueError, match="not in the type map"):
        npy.to_systems(fr, ["Li"])
    flat = fr[0].copy()
    flat.pbc = [True, True, False]
    with pytest.raises(ValueError, match="not periodic"):
        npy.to_systems([flat], TYPE_MAP)
    assert npy.names(npy.to_systems(fr[:3] + [fr[0][[2, 1, 0, 3, 4]]], TYPE_MAP)) == [
        "Li3O2",
        "Li3O2-2",
    ]


def test_dp_test_log_parsed():
    r = logs.parse_dp_test((DATA / "dp-test.log").read_text())
    assert sorted(r["systems"]) == ["data/test/Li16O8", "data/test/Li8O4"]
    assert r["all"]["n_frames"] == 3
    assert r["systems"]["data/test/Li8O4"]["n_frames"] == 2
    for k in ("energy_rmse_ev_per_atom", "force_rmse_ev_a", "virial_rmse_ev_per_atom"):
        assert r["all"][k] > 0
    with pytest.raises(ValueError, match="no `# testing system`"):
        logs.parse_dp_test("Traceback (most recent call last):\n")


def test_one_system_dp_test_log_has_no_weighted_block():
    text = (DATA / "dp-test.log").read_text()
    one = text[: text.index("# testing system : data/test/Li16O8")]
    r = logs.parse_dp_test(one)
    assert list(r["systems"]) == ["data/test/Li8O4"] and r["all"]["n_frames"] == 2
    assert r["all"]["force_rmse_ev_a"] == r["systems"]["data/test/Li8O4"]["force_rmse_ev_a"]


def test_neighbour_statistics_and_learning_curve():
    stat = logs.parse_neighbour_stat((DATA / "dp-train.log").read_text())
    assert stat == {"max_neighbours": [32, 16], "rcut_angstrom": 4.0,
                    "min_distance_angstrom": pytest.approx(1.650188)}  # fmt: skip
    assert logs.parse_neighbour_stat("no statistics here") is None
    curve = logs.read_lcurve(DATA / "lcurve.out")
    assert curve["step"][0] == 0 and curve["step"][-1] == 300
    assert {"rmse_e_val", "rmse_f_trn", "lr"} <= set(curve)


def test_stage_steps_run_in_one_process_each_into_its_log(tmp_path):
    """`python -m runbook.steps.deepmd_steps` (the train_deepmd stage's one command) on its data
    step, no TensorFlow: each step's output (file descriptors 1 and 2) lands in its own
    log, a failing step stops the rest with a line naming its log, timings.json has each
    step."""
    import json
    import subprocess
    import sys

    write(tmp_path / "train.extxyz", frames(), format="extxyz")
    good = {"type_map": TYPE_MAP, "splits": {"train": "train.extxyz", "val": None}}
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "bad.json").write_text(json.dumps({**good, "type_map": ["Li"]}))
    spec = {
        "steps": [
            {"name": "data", "log": "data.log", "argv": ["deepmd_data", "good.json"]},
            {"name": "bad", "log": "bad.log", "argv": ["deepmd_data", "bad.json"]},
            {"name": "never", "log": "never.log", "argv": ["deepmd_data", "good.json"]},
        ]
    }
    (tmp_path / "steps.json").write_text(json.dumps(spec))
    argv = [sys.executable, "-m", "runbook.steps.deepmd_steps", "steps.json"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("data: done in") and out[0].endswith("(data.log)")
    assert out[1].startswith("bad: failed after") and out[1].endswith("see bad.log")
    assert len(out) == 2 and not (tmp_path / "never.log").exists()
    data_log = (tmp_path / "data.log").read_text().splitlines()
    assert data_log[0].startswith("# deepmd_data good.json  (in-process")
    assert json.loads(data_log[1]) == {"train": {"Li3O2": 3, "Li2O1": 2, "Li4O3": 2}}
    assert (
        "train.extxyz: frame 0: species ['O'] are not in the type map"
        in (tmp_path / "bad.log").read_text()
    )
    assert npy.find_systems(tmp_path / "data" / "train")
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert set(timings) == {"data", "bad", "process"}
    assert all(t["wall_s"] >= 0 and t["cpu_s"] >= 0 for k, t in timings.items() if k != "process")
