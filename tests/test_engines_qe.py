"""Engine-level reproducibility of pw.x and of our parser's units (real pw.x 6.7 runs).

(i) The SCF energy of the fixed 12-atom Li2O cell, rendered from the smoke study's DFT
settings with the project's template, equals the stored reference to 1e-6 Ry; 1 and 2
MPI ranks agree to 1e-6 Ry. (ii) Units at the parser boundary: the force on a displaced
Li equals the central finite difference of the energy (eV/Å, independent of the
Ry/Bohr constants pw.x prints forces in), and the stress equals minus pw.x's own
pressure in kbar (ASE sign, eV/Å³).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from bundle.core import engines, paths, render
from runbook import crystal, qe
from runbook.stages.dft import DftConfig
from tests.conftest import require_program

# pw.x 6.7MaX (Debian bookworm), templates/qe/pw-scf.in.j2 with the smoke-li2o `dft`
# block and conv_thr 1.2e-10 Ry: conventional Li2O cell, a = 4.61 Å, 1 MPI rank.
REFERENCE_ENERGY_RY = -252.74268148
KBAR_PER_EV_A3 = 1602.1766208  # 1 eV/Å³ = 160.21766208 GPa

pytestmark = pytest.mark.engine


def _settings() -> DftConfig:
    study = paths.root() / "runbook" / "studies" / "smoke-li2o.yaml"
    block = yaml.safe_load(study.read_text())["dft"]
    return DftConfig(**{**block, "conv_thr_per_atom_ry": 1e-11})


def _scf(folder: Path, atoms, name: str, np_ranks: int = 1) -> tuple[qe.PwResult, str]:
    cfg = _settings()
    (folder / "pseudo").mkdir(exist_ok=True)
    for f in cfg.pseudopotentials.values():
        shutil.copyfile(Path(cfg.pseudo_dir) / f, folder / "pseudo" / f)
    species = {s: cfg.pseudopotentials[s] for s in ("Li", "O")}
    render.render_to(
        folder / f"{name}.in", "qe/pw-scf.in.j2", **qe.input_context(atoms, species, cfg, name)
    )
    argv = [engines.program("pw.x"), "-in", f"{name}.in"]
    env = engines.mpirun_env()
    env["OMP_NUM_THREADS"] = "1"
    if np_ranks > 1:
        argv = [engines.mpirun(), "-np", str(np_ranks), *argv]
    out = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, check=True)
    (folder / f"{name}.out").write_text(out.stdout)
    return qe.parse_pw_output(out.stdout, len(atoms), name), out.stdout


@pytest.fixture(scope="module")
def pw(tmp_path_factory):
    require_program("pw.x")
    return tmp_path_factory.mktemp("pw")


@pytest.fixture(scope="module")
def reference_scf(pw):
    return _scf(pw, crystal.antifluorite("Li", "O", 4.61), "np1")


def test_scf_energy_of_the_fixed_cell_equals_the_stored_reference(pw, reference_scf):
    atoms = crystal.antifluorite("Li", "O", 4.61)
    r1, text = reference_scf
    assert r1.version.startswith("6.7")
    assert abs(r1.energy_ry - REFERENCE_ENERGY_RY) <= 1e-6, r1.energy_ry
    assert np.isclose(r1.energy_ev, r1.energy_ry * qe.RY_EV, rtol=0, atol=1e-9)
    r2, _ = _scf(pw, atoms, "np2", np_ranks=2)
    assert "running on     2 processors" in (pw / "np2.out").read_text()  # really 2 ranks
    assert abs(r2.energy_ry - r1.energy_ry) <= 1e-6
    # perfect crystal: forces vanish by symmetry up to the FFT grid's residue (~2 meV/Å at
    # 30/240 Ry); cubic stress is isotropic
    assert np.abs(r1.forces_ev_a).max() < 5e-3
    s = r1.stress_ev_a3
    assert (
        np.allclose(np.diag(s), s[0, 0], atol=1e-8) and np.abs(s - np.diag(np.diag(s))).max() < 1e-8
    )
    # sign and unit of the stress: ASE stress = -pressure, pw.x prints P in kbar
    p_kbar = float(text.split("P=")[1].split()[0])
    assert abs(-np.trace(s) / 3 * KBAR_PER_EV_A3 - p_kbar) < 0.02


@pytest.mark.slow
def test_force_equals_the_finite_difference_of_the_energy(pw):
    """F_x(Li) = -(E(x+h) - E(x-h)) / 2h in eV/Å: checks the Ry/Bohr -> eV/Å conversion."""
    base = crystal.antifluorite("Li", "O", 4.61)
    base.positions[4] += [0.12, -0.05, 0.03]  # a displaced Li: a real restoring force
    h = 0.005
    r0, _ = _scf(pw, base, "fd0")
    energies = []
    for sign in (+1, -1):
        a = base.copy()
        a.positions[4, 0] += sign * h
        energies.append(_scf(pw, a, f"fd{'p' if sign > 0 else 'm'}")[0].energy_ev)
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert abs(r0.forces_ev_a[4, 0]) > 0.1  # not a trivially small force
    assert abs(r0.forces_ev_a[4, 0] - fd) < 2e-3 * abs(fd) + 1e-4, (r0.forces_ev_a[4, 0], fd)
    assert np.abs(r0.forces_ev_a.sum(axis=0)).max() < 1e-3  # Newton's third law


def test_parser_refuses_an_unfinished_or_unconverged_output(reference_scf):
    from bundle.core.errors import EngineError

    _, text = reference_scf
    cut = text[: text.index(qe.MARK_DONE)]
    with pytest.raises(EngineError, match="did not finish"):
        qe.parse_pw_output(cut, 12, "cut.out")
    with pytest.raises(EngineError, match="did not converge"):
        qe.parse_pw_output(text + "\n     convergence NOT achieved after 100 iterations", 12, "x")
    with pytest.raises(EngineError, match="expected 13"):
        qe.parse_pw_output(text, 13, "x")


@pytest.mark.slow
def test_the_study_cutoffs_keep_forces_translation_invariant(pw):
    """Egg-box check of the shipped settings: rigidly translating a rattled cell must not
    change the forces (at 25/200 Ry it changed them by 1.4 eV/Å: unlearnable labels)."""
    rng = np.random.default_rng(11)
    a = crystal.antifluorite("Li", "O", 4.61)
    a.positions += rng.normal(0, 0.08, a.positions.shape)
    b = a.copy()
    b.positions += [0.37, 0.21, 0.11]
    ra, _ = _scf(pw, a, "egg-a")
    rb, _ = _scf(pw, b, "egg-b")
    assert np.abs(ra.forces_ev_a).max() > 0.3  # rattled: real forces
    assert np.abs(ra.forces_ev_a - rb.forces_ev_a).max() < 0.1
    assert abs(ra.energy_ev - rb.energy_ev) / len(a) < 1e-3  # eV/atom
