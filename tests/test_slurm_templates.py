"""Slurm batch scripts: golden renderings for 1, 4 and 8 GPUs, and what real Slurm makes of them.

Golden files live in tests/golden/slurm/; `UPDATE_GOLDEN=1 pytest tests/test_slurm_templates.py`
rewrites them (review the diff: it is the change a site admin will see).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from runbook.slurm import Allocation, BatchJob, Launch, render_batch, sh
from tests.conftest import assert_golden, require

GOLDEN = Path(__file__).parent / "golden" / "slurm"
SIF = "/opt/mlmd/images/mlmd-h200.sif"
APPTAINER = ("apptainer", "exec", "--cleanenv", "--nv", "--bind", "/scratch/llzo", SIF)
CORES_PER_GPU = 14  # a 2 x 56-core, 8 x H200 node


def md_job(gpus: int) -> BatchJob:
    """The h200 production MD stage: pair_style allegro under Kokkos, one rank per GPU."""
    return BatchJob(
        name=f"llzo-gb.md.{gpus}gpu",
        workdir=Path("/scratch/llzo/run/06_md"),
        output="md-%j.out",
        alloc=Allocation(
            gpus=gpus, threads=CORES_PER_GPU, time="24:00:00", partition="gpu", mpi="pmix"
        ),
        steps=(
            Launch("lammps", ("lmp", "-in", "in.lammps", "-log", "log.lammps"), prefix=APPTAINER),
        ),
        after=("4242",),
    )


def dft_job() -> BatchJob:
    """QE on 4 GPUs with 2 k-points: 2 pools of 2 ranks (pools must divide the ranks)."""
    return BatchJob(
        name="llzo-gb.dft",
        workdir=Path("/scratch/llzo/run/02_dft"),
        output="dft-%j.out",
        alloc=Allocation(gpus=4, threads=CORES_PER_GPU, time="08:00:00", partition="gpu"),
        steps=(
            Launch("qe", ("pw.x", "-in", "pw.in"), prefix=APPTAINER, stdout="pw.out", kpoints=2),
        ),
    )


def sweep_job() -> BatchJob:
    """A CPU sweep stage as a job array: task i runs point i once its previous stage ended OK."""
    return BatchJob(
        name="llzo-gb.sweep.md",
        workdir=Path("/scratch/llzo/sweep"),
        output="slurm/%x-%A_%a.out",
        alloc=Allocation(threads=2, time="02:00:00", extra=("--mem-per-cpu=2G",)),
        steps=('bundle run llzo-gb --profile cpu --run-dir "points/$POINT" --from md --until md',),
        after_corr="5151",
        array=("seed1_T600K", "seed1_T700K", "seed2_T600K", "seed2_T700K"),
        array_parallel=2,
        env=(("MLMD_BUNDLE_ROOT", "/opt/mlmd"),),
    )


CASES = {
    "md_1gpu.sbatch": lambda: md_job(1),
    "md_4gpu.sbatch": lambda: md_job(4),
    "md_8gpu.sbatch": lambda: md_job(8),
    "dft_4gpu.sbatch": dft_job,
    "sweep_array_cpu.sbatch": sweep_job,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    assert_golden(GOLDEN / name, render_batch(CASES[name]()))


@pytest.mark.parametrize("gpus", [1, 4, 8])
def test_gpu_script_binds_one_rank_per_gpu(gpus):
    text = render_batch(md_job(gpus))
    assert f"#SBATCH --gres=gpu:{gpus}\n" in text
    assert f"#SBATCH --ntasks={gpus}\n" in text
    srun = [ln for ln in text.splitlines() if ln.startswith("srun ")]
    assert len(srun) == 1
    line = srun[0]
    assert f"srun --ntasks={gpus} --cpus-per-task={CORES_PER_GPU} " in line
    # each rank sees one GPU, so Kokkos is told one GPU per rank
    assert 'bash -c "$BIND_GPU" bind-gpu' in line
    assert "lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.lammps" in line
    assert f"export OMP_NUM_THREADS={CORES_PER_GPU}" in text
    assert "#SBATCH --dependency=afterok:4242\n" in text


def test_qe_pools_divide_ranks():
    a4 = Allocation(gpus=4)
    assert Launch("qe", ("pw.x",), kpoints=1).pools(a4) == 1
    assert Launch("qe", ("pw.x",), kpoints=2).pools(a4) == 2
    assert Launch("qe", ("pw.x",), kpoints=3).pools(a4) == 2
    assert Launch("qe", ("pw.x",), kpoints=40).pools(Allocation(gpus=8)) == 8
    assert Launch("qe", ("pw.x",), kpoints=6).pools(Allocation(gpus=8)) == 4
    assert "pw.x -nk 2 -in pw.in > pw.out" in render_batch(dft_job())


def test_cpu_job_has_no_gpu_lines():
    text = render_batch(sweep_job())
    assert "--gres" not in text and "BIND_GPU" not in text
    assert "#SBATCH --array=0-3%2\n" in text
    assert "#SBATCH --dependency=aftercorr:5151\n" in text
    assert "#SBATCH --mem-per-cpu=2G\n" in text


def test_shell_quoting():
    assert sh("plain/path-1.txt") == "plain/path-1.txt"
    assert sh("two words") == "'two words'"
    assert sh("points/$POINT") == "points/$POINT"
    assert sh("my dir/$POINT") == '"my dir/$POINT"'
    assert sh("$HOME") == "'$HOME'"  # only $POINT is meant to expand
    assert sh('a"b $POINT') == '"a\\"b $POINT"'


# ------------------------------------------------------------------ against the real test Slurm


def test_sbatch_accepts_golden_scripts(slurm_cluster, tmp_path):
    """Slurm parses every directive. The node (2 cores) can hold the 1-GPU MD job once the
    site's cores and partition are overridden; the 4- and 8-GPU jobs are refused only for
    size, never for syntax."""
    over = ["--partition", slurm_cluster.partition, "--cpus-per-task=1", "--dependency="]
    for name in sorted(CASES):
        script = tmp_path / name
        script.write_text(render_batch(CASES[name]()))
        r = slurm_cluster.run(
            "sbatch", "--test-only", *over, f"--chdir={tmp_path}", str(script), check=False
        )
        fits = name in ("md_1gpu.sbatch", "sweep_array_cpu.sbatch") and slurm_cluster.gpus
        if fits:
            assert r.returncode == 0, (name, r.stderr)
            assert "to start at" in r.stderr
        else:
            assert "Requested node configuration is not available" in r.stderr, (name, r.stderr)


def _wait_done(cluster, outs, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(o.exists() and "done" in o.read_text() for o in outs):
            return
        time.sleep(0.3)
    raise AssertionError(f"jobs did not finish\n{cluster.logs()}")


def test_gpu_binding_under_real_srun(slurm_cluster, tmp_path):
    """Slurm hands each job its GPUs in CUDA_VISIBLE_DEVICES (here device nodes aliasing
    /dev/null); the rendered wrapper gives local rank i the i-th of them. Two 1-GPU jobs at
    once get different GPUs, so binding by SLURM_LOCALID alone would be wrong for the second."""
    require(
        bool(slurm_cluster.gpus),
        "GPU GRES in the test cluster",
        "mknod of the device nodes refused",
    )
    probe = ("sh", "-c", 'echo "rank=$SLURM_LOCALID gpu=$CUDA_VISIBLE_DEVICES"; sleep 2')

    def job(name, gpus):
        return BatchJob(
            name=name,
            workdir=tmp_path,
            output=f"{name}.out",
            alloc=Allocation(gpus=gpus, threads=1, time="00:05:00"),
            steps=(Launch("command", probe), "echo done"),
        )

    scripts = {}
    for name, gpus in (("a", 1), ("b", 1)):
        scripts[name] = tmp_path / f"{name}.sbatch"
        scripts[name].write_text(render_batch(job(name, gpus)))
        slurm_cluster.run("sbatch", str(scripts[name]))
    _wait_done(slurm_cluster, [tmp_path / "a.out", tmp_path / "b.out"])
    (tmp_path / "c.sbatch").write_text(render_batch(job("c", 2)))
    slurm_cluster.run("sbatch", str(tmp_path / "c.sbatch"))
    _wait_done(slurm_cluster, [tmp_path / "c.out"])

    def ranks(name):
        text = (tmp_path / f"{name}.out").read_text()
        return dict(re.findall(r"rank=(\d+) gpu=(\S*)", text))

    a, b, c = ranks("a"), ranks("b"), ranks("c")
    assert set(a) == {"0"} and set(b) == {"0"}
    assert {a["0"], b["0"]} == {"0", "1"}, (a, b)  # concurrent jobs: different GPUs
    assert c == {"0": "0", "1": "1"}  # one GPU per rank, each its own


def test_golden_llzo_h200_sweep_stage(tmp_path):
    """The job array the executor submits for the shipped llzo-gb's production stage on
    the h200 profile: 8 GPUs, one rank each, 3 seeds; and the collect job after it."""
    from runbook import loader
    from runbook.sweep import slurm
    from runbook.sweep.plan import plan

    pl = plan("llzo-gb", tmp_path / "run", profile="h200")
    cfg = loader.load(pl.points[0].study_file)
    k = pl.stages.index("production")
    py = "/opt/mlmd/venv/bin/python"
    texts = {
        "llzo_h200_production_array.sbatch": slurm.stage_job(pl, cfg, k, (0, 1, 2), "4711", py),
        "llzo_h200_collect.sbatch": slurm.collect_job(pl, cfg, "4712", py),
    }
    for name, job in texts.items():
        text = render_batch(job).replace(str(pl.run_dir), "/scratch/runs/llzo-gb")
        assert_golden(GOLDEN / name, text)
    prod = (GOLDEN / "llzo_h200_production_array.sbatch").read_text()
    assert "#SBATCH --gres=gpu:8\n" in prod and "#SBATCH --ntasks=8\n" in prod
    assert "#SBATCH --time=12:00:00\n" in prod  # the stage's own limit, not the 1 h default
    assert "#SBATCH --array=0,1,2\n" in prod and "aftercorr:4711" in prod
    build = render_batch(slurm.stage_job(pl, cfg, 0, (0, 1, 2), None, py))
    assert "--gres" not in build and "#SBATCH --ntasks=1\n" in build  # a Python step: no GPU
