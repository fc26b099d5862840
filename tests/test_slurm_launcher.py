"""The per-command Slurm launcher (`kind: slurm` in a profile): a real stage through sbatch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook import config, engine, launchers, loader

pytestmark = pytest.mark.engine

STUDY = {
    "schema": "study/1",
    "name": "mini",
    "species": ["Li", "O"],
    "profile": "cpu",
    "profiles": {"cpu": {"launchers": {"default": {"kind": "slurm", "time": "00:10:00"}}}},
    "stages": ["structure"],
    "structure": {
        "prototype": "antifluorite",
        "cation": "Li",
        "anion": "O",
        "a_angstrom": 4.61,
        "frames": [{"supercell": [1, 1, 1], "n": 2}],
        "strain_max": 0.03,
        "rattle_angstrom": 0.08,
        "seed": 7,
    },
}


def test_a_stage_runs_as_a_batch_job_and_resumes(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    study = tmp_path / "mini.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    run = tmp_path / "run"
    summary = engine.run(loader.load(study), run, echo=lambda s: None)
    assert summary.ran == ["structure"]
    d = run / "01_structure"
    script = (d / "structure.sbatch").read_text()
    assert f"#SBATCH --chdir={d}" in script and "runbook.steps.structure" in script
    assert (d / "structures.extxyz").stat().st_size > 0
    job = (d / "structure.sbatch.out").read_text().strip()
    comp = slurm_cluster.jobcomp.read_text()
    assert f"JobId={job} " in comp and "JobState=COMPLETED" in comp.split(f"JobId={job} ")[1]
    # finished: a second run submits nothing
    again = engine.run(loader.load(study), run, echo=lambda s: None)
    assert again.skipped == ["structure"] and again.ran == []


def test_inside_a_job_the_inner_launcher_runs():
    spec = config.LauncherSpec(kind="slurm", inner="mpi", np=4)
    assert isinstance(launchers.from_spec(spec), launchers.Slurm)
    # inside the job: a parameter of the engine (runbook.sweep's job steps pass it)
    assert launchers.from_spec(spec, in_batch_job=True) == launchers.Mpi(np=4, threads=1)


def test_mpi_commands_on_gpus_go_through_srun():
    inner = launchers.Container("apptainer", "/opt/i.sif", ("/scratch",), np=4, gpus=4)
    launcher = launchers.Slurm(inner=inner, ntasks=4, gpus_per_node=4, cpus_per_task=8)
    cmd = launchers.Command(("lmp", "-in", "in.lammps"), "lmp.log", mpi=True)
    text = launcher.script(cmd, Path("/scratch/run/06_md"))
    line = next(ln for ln in text.splitlines() if ln.startswith("srun "))
    assert "mpirun" not in line  # srun starts the ranks, not the inner launcher's mpirun
    assert line.startswith("srun --ntasks=4 --cpus-per-task=8 --cpu-bind=cores bash -c")
    assert "--env OMP_NUM_THREADS=8" in line  # the container gets the job's threads
    assert line.endswith(
        "/opt/i.sif lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.lammps"
    )
    assert "#SBATCH --output=/scratch/run/06_md/lmp.log" in text
