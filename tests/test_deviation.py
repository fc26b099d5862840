"""The committee deviation record (checks.deviation): the DP-GEN definition, DeePMD's
model_devi.out (a stored real file from the DeePMD test run: 2 models, 96 atoms, 4 frames),
trust levels per region, the on-disk format and its size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bundle.core.errors import InputError
from checks import deviation

DATA = Path(__file__).parent / "data" / "deepmd"
TYPE_MAP = {1: "Li", 2: "O"}


def test_force_deviation_is_dpgen_eps():
    # two models, one frame, two atoms: atom 0 differs by (2, 0, 0), atom 1 agrees
    f = np.zeros((2, 1, 2, 3))
    f[0, 0, 0] = [1.0, 0, 0]
    f[1, 0, 0] = [-1.0, 0, 0]
    f[:, 0, 1] = [0.3, -0.2, 0.1]
    eps = deviation.force_deviation(f)
    # <F> = 0; |F_m - <F>|^2 = 1 for both models; eps = sqrt(mean) = 1
    np.testing.assert_allclose(eps, [[1.0, 0.0]], atol=1e-15)
    # three models: the population standard deviation of the vectors (1/M, not 1/(M-1))
    g = np.random.default_rng(1).normal(size=(3, 4, 5, 3))
    want = np.sqrt(((g - g.mean(0)) ** 2).sum(-1).mean(0))
    np.testing.assert_allclose(deviation.force_deviation(g), want)
    with pytest.raises(ValueError, match="models >= 2"):
        deviation.force_deviation(g[:1])


def test_model_devi_out_read_with_its_atomic_columns():
    d = deviation.read_model_devi(DATA / "model_devi.out")
    assert list(d["step"]) == [0, 10, 20, 30]
    assert d["atomic"].shape == (4, 96)
    # the per-frame columns are the statistics of the per-atom ones (as printed, 7 digits)
    np.testing.assert_allclose(d["max_devi_f"], d["atomic"].max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(d["min_devi_f"], d["atomic"].min(axis=1), rtol=1e-6, atol=1e-20)
    np.testing.assert_allclose(d["avg_devi_f"], d["atomic"].mean(axis=1), rtol=1e-5)


def test_record_from_lammps_outputs(tmp_path):
    rec = deviation.from_lammps(
        DATA / "model_devi.out", DATA / "devi.lammpstrj", TYPE_MAP, 0.001, n_models=2
    )
    assert rec.n_frames == 4 and rec.n_atoms == 96 and rec.type_names == ["Li", "O"]
    assert list(rec.ids) == list(range(1, 97))
    assert (rec.species() == "Li").sum() == 64 and list(rec.time_ps) == [0, 0.01, 0.02, 0.03]
    assert np.all((rec.z >= rec.box_z[:, :1] - 1e-9) & (rec.z < rec.box_z[:, 1:]))
    back = deviation.load(deviation.save(tmp_path / "d.npz", rec))
    for name in ("step", "time_ps", "ids", "types", "z", "eps", "frame_max", "box_z"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rec, name))
    assert back.type_names == rec.type_names and back.n_models == 2


def test_malformed_model_devi_is_refused(tmp_path):
    text = (DATA / "model_devi.out").read_text().splitlines()
    bad = tmp_path / "bad.out"
    bad.write_text("\n".join([text[0], text[1], text[2][:-20]]) + "\n")
    with pytest.raises(InputError, match="row 2"):
        deviation.read_model_devi(bad)
    bad.write_text("# step foo bar\n 0 1 2\n")
    with pytest.raises(InputError, match="header"):
        deviation.read_model_devi(bad)
    with pytest.raises(InputError, match="no deviation file"):
        deviation.read_model_devi(tmp_path / "absent.out")


def test_repeated_step_keeps_the_later_row(tmp_path):
    lines = (DATA / "model_devi.out").read_text().splitlines()
    again = lines[2]  # step 10 again, with another max_devi_v
    path = tmp_path / "m.out"
    path.write_text("\n".join([*lines, again.replace(lines[2].split()[1], "9.9e-01", 1)]) + "\n")
    d = deviation.read_model_devi(path)
    assert list(d["step"]) == [0, 20, 30, 10] and d["max_devi_v"][-1] == pytest.approx(0.99)


def synthetic(frames: int, atoms: int, seed: int = 0) -> deviation.DeviationRecord:
    rng = np.random.default_rng(seed)
    forces = rng.normal(0, 1, (2, frames, atoms, 3))
    forces[1] += rng.lognormal(-3.0, 0.8, (frames, atoms, 1)) * rng.normal(0, 1, (1, 1, 3))
    return deviation.from_forces(
        forces,
        step=np.arange(frames) * 100,
        time_ps=np.arange(frames) * 0.2,
        ids=np.arange(1, atoms + 1),
        types=rng.integers(0, 4, atoms),
        type_names=["Li", "La", "Zr", "O"],
        z=rng.uniform(0, 58.0, (frames, atoms)),
        box_z=np.tile([0.0, 58.0], (frames, 1)),
    )


def test_trust_levels_per_region():
    rec = synthetic(3, 4)
    rec.eps[:] = [[0.01, 0.02, 0.30, 0.04], [0.01, 0.10, 0.01, 0.01], [0.05, 0.0, 0.0, 0.0]]
    rec.frame_max[:] = rec.eps.max(axis=1)
    rec.z[:] = [[1.0, 57.5, 29.0, 20.0]] * 3  # atoms 0, 1 within 1.5 Å of z = 0 (periodic)
    out = deviation.trust_levels(rec, 0.05, 0.15, planes_z=[0.0], half_width=1.5)
    # frames: max 0.30 failed, 0.10 candidate, 0.05 candidate (lo belongs to candidate)
    assert out["frames"] == {"accurate": 0.0, "candidate": 2 / 3, "failed": 1 / 3, "n": 3}
    band, inner = out["regions"]["boundary"], out["regions"]["interior"]
    assert band["frames"] == {"accurate": 1 / 3, "candidate": 2 / 3, "failed": 0.0, "n": 3}
    assert inner["frames"] == {"accurate": 2 / 3, "candidate": 0.0, "failed": 1 / 3, "n": 3}
    assert band["atom_frames"]["n"] == 6 and inner["atom_frames"]["failed"] == 1 / 6
    assert deviation.worst_frames(rec, 1) == [
        {"step": 0, "time_ps": 0.0, "max_devi_f_ev_a": pytest.approx(0.30), "atom_id": 3}
    ]
    with pytest.raises(ValueError, match="lo < hi"):
        deviation.trust_levels(rec, 0.2, 0.1)


def test_size_per_1000_frames_of_1856_atoms(tmp_path):
    """The stated size: 1,000 frames of the 1,856-atom LLZO bicrystal (z and eps as
    float32, 8 bytes per atom-frame uncompressed)."""
    rec = synthetic(1000, 1856)
    path = deviation.save(tmp_path / "d.npz", rec)
    mb = path.stat().st_size / 1e6
    print(f"deviation record: 1000 frames x 1856 atoms = {mb:.1f} MB (npz, compressed)")
    assert 10.0 < mb <= 14.9  # at most the raw float32 size plus the frame columns
