"""Golden tests of the rendered input templates (exact text), plus the profile switch:
the same study renders CPU `fix external` inputs or GPU `pair_style allegro` + Kokkos.

Regenerate the golden files after an intended template change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_templates.py` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bundle.core import paths, render
from runbook import crystal, launchers, qe
from runbook.stages.dft import DftConfig
from tests.conftest import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "templates"
SMOKE = paths.root() / "runbook" / "studies" / "smoke-li2o.yaml"


def _li2o():
    return crystal.antifluorite("Li", "O", 4.61)


def _dft_cfg() -> DftConfig:
    return DftConfig(**yaml.safe_load(SMOKE.read_text())["dft"])


CASES = {
    "pw-scf.in": lambda: render.render_text(
        "qe/pw-scf.in.j2",
        **qe.input_context(
            _li2o(),
            {"Li": "Li.pbesol-s-rrkjus_psl.0.2.1.UPF", "O": "O.pbesol-n-rrkjus_psl.0.1.UPF"},
            _dft_cfg(),
            "pw-000",
        ),
    ),
    "allegro-train.yaml": lambda: render.render_text(
        "nequip/allegro-train.yaml.j2",
        versions={"nequip": "0.19.1", "allegro": "0.8.3"},
        seed=1,
        r_max=4.0,
        species=["Li", "O"],
        data={
            "train": "../03_dataset/train.extxyz",
            "val": "../03_dataset/val.extxyz",
            "test": "../03_dataset/test.extxyz",
        },
        batch_size=4,
        accelerator="cpu",
        max_epochs=40,
        max_time="00:00:02:30",
        ema_decay=0.99,
        loss={"energy": 1.0, "forces": 10.0, "stress": 1.0},
        learning_rate=0.01,
        model_dtype="float64",
        num_bessels=8,
        num_scalar_features=16,
        num_tensor_features=4,
        mlp_width=16,
        l_max=1,
        num_layers=1,
        zbl=True,
    ),
    "data.lmp": lambda: render.render_text(
        "lammps/data.lmp.j2",
        title="Li8O4 [1, 1, 1]",
        box=[4.61, 4.61, 4.61],
        style="atomic",
        masses=[
            {"type": 1, "symbol": "Li", "mass": 6.94},
            {"type": 2, "symbol": "O", "mass": 15.999},
        ],
        atoms=[
            ({"Li": 1, "O": 2}[s], *p)
            for s, p in zip(_li2o().get_chemical_symbols(), _li2o().positions.tolist(), strict=True)
        ],
    ),
    "setup-fix-external.lmp": lambda: render.render_text(
        "lammps/setup-fix-external.lmp.j2", units="metal", data_file="data.lmp", r_max=4.0
    ),
    "setup-allegro-kokkos.lmp": lambda: render.render_text(
        "lammps/setup-allegro-kokkos.lmp.j2",
        units="metal",
        data_file="data.lmp",
        model="../05_deploy/model.nequip.pt2",
        type_names=["Li", "O"],
        command_line="mpirun -np 8 lmp -k on g 8 -sf kk -pk kokkos newton on neigh full -in x",
    ),
    "setup-baseline.lmp": lambda: render.render_text(
        "lammps/setup-baseline.lmp.j2",
        units="metal",
        data_file="data.lmp",
        baseline={
            "source": "Lewis & Catlow, J. Phys. C 18 (1985) 1149",
            "cutoff_angstrom": 10.0,
            "kspace": "pppm",
            "kspace_accuracy": 1e-5,
        },
        pairs=[
            {
                "i": 1,
                "j": 1,
                "A_ev": 0.0,
                "rho_angstrom": 1.0,
                "C_ev_a6": 0.0,
                "label": "no short-range term",
            },
            {"i": 1, "j": 2, "A_ev": 426.48, "rho_angstrom": 0.3, "C_ev_a6": 0.0, "label": "Li-O"},
            {
                "i": 2,
                "j": 2,
                "A_ev": 22764.0,
                "rho_angstrom": 0.149,
                "C_ev_a6": 27.88,
                "label": "O-O",
            },
        ],
        types=[
            {"type": 1, "symbol": "Li", "charge": 1.0},
            {"type": 2, "symbol": "O", "charge": -2.0},
        ],
    ),
    "run-md-nvt.lmp": lambda: render.render_text(
        "lammps/run-md.lmp.j2",
        ensemble="nvt",
        temperature_k=600.0,
        tdamp_ps=0.05,
        timestep_ps=0.001,
        seed=4242,
        thermo_every=10,
        dump_every=20,
        dump_file="dump.lammpstrj",
        n_steps=1000,
    ),
    "run-md-nve.lmp": lambda: render.render_text(
        "lammps/run-md.lmp.j2",
        ensemble="nve",
        temperature_k=300.0,
        tdamp_ps=0.1,
        timestep_ps=0.0005,
        seed=1,
        thermo_every=1,
        dump_every=100,
        dump_file="nve.dump",
        n_steps=50,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_matches_golden(name):
    assert_golden(GOLDEN / name, CASES[name]())


def test_a_missing_template_value_is_an_error_not_an_empty_string():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render.render_text("lammps/setup-fix-external.lmp.j2", units="metal", data_file="x")


def test_kpoint_grid_density():
    assert qe.kpoint_grid(np.eye(3) * 4.61, 0.7) == [2, 2, 2]
    assert qe.kpoint_grid(np.diag([9.22, 4.61, 4.61]), 0.7) == [1, 2, 2]


def test_container_command_lines():
    cmd = launchers.Command(("pw.x", "-in", "pw-000.in"), "pw-000.out", mpi=True)
    cwd = Path("/runs/s/02_dft")
    docker = launchers.Container("docker", "mlmd-bundle:cpu", ("/data",), np=2).argv(cmd, cwd)
    assert docker == [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "/data:/data",
        "-v",
        "/runs/s:/runs/s",
        "-e",
        "OMP_NUM_THREADS=1",
        "-w",
        "/runs/s/02_dft",
        "mlmd-bundle:cpu",
        "mpirun",
        "--allow-run-as-root",
        "-np",
        "2",
        "pw.x",
        "-in",
        "pw-000.in",
    ]
    app = launchers.Container("apptainer", "/img/h200.sif", (), np=8, gpus=8).argv(cmd, cwd)
    assert app == [
        "mpirun",
        "-np",
        "8",
        "apptainer",
        "exec",
        "--cleanenv",
        "--nv",
        "--bind",
        "/runs/s",
        "--env",
        "OMP_NUM_THREADS=1",
        "--pwd",
        "/runs/s/02_dft",
        "/img/h200.sif",
        "pw.x",
        "-in",
        "pw-000.in",
    ]
    train = launchers.Command(("nequip-train", "-cp", "{stage_dir}", "-cn", "train"), "train.log")
    assert launchers.Container("docker", "i", ()).argv(train, cwd)[-4:] == [
        "-cp",
        "/runs/s/02_dft",
        "-cn",
        "train",
    ]


def test_the_h200_profile_renders_pair_allegro_with_kokkos(smoke_run, tmp_path):
    """The same study under --profile h200: md inputs for `lmp` + Kokkos on 8 GPUs."""
    from runbook import files, loader, stages
    from runbook.stage import Context

    study, run = smoke_run
    h200 = loader.load("smoke-li2o", profile="h200")
    md = stages.build(h200, "md")
    out = tmp_path / "md"
    out.mkdir()
    md.render(Context(h200, run), out)
    setup = (out / "setup.lmp").read_text()
    assert "pair_style      allegro" in setup
    assert "pair_coeff      * * ../05_deploy/model.nequip.pt2 Li O" in setup
    assert "units           metal" in setup and "fix" not in setup
    (cmd,) = files.read_commands(out)
    assert cmd.mpi and cmd.argv[:9] == ("lmp", "-k", "on", "g", "8", "-sf", "kk", "-pk", "kokkos")
    assert "newton" in cmd.argv and "full" in cmd.argv
    assert launchers.from_spec(h200.active.launcher_for("md")) == launchers.Mpi(np=8, threads=1)
    assert (out / "in.lammps").read_text().splitlines()[1:] == [
        "include         setup.lmp",
        "include         run.lmp",
    ]
    # the cpu profile of the same study: fix external driven by the Python step
    cpu_md = stages.build(study, "md")
    out2 = tmp_path / "md-cpu"
    out2.mkdir()
    cpu_md.render(Context(study, run), out2)
    assert "external pf/callback" in (out2 / "setup.lmp").read_text()
    assert files.read_commands(out2)[0].argv[:3] == ("python", "-m", "runbook.steps.md")
