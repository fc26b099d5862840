"""The test cluster itself: a real sbatch runs on the node and lands in the job-completion file."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.engine


def _wait_for(cluster, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out\n{cluster.logs()}")


def test_batch_job_runs_and_is_recorded(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    job = slurm_cluster.run(
        "sbatch",
        "--parsable",
        "-o",
        str(out),
        "--wrap",
        "echo ran $SLURM_JOB_ID on $SLURMD_NODENAME",
    ).stdout.strip()
    quiet = ("--chdir", str(tmp_path), "-o", str(tmp_path / "slurm-%j.out"))
    bad = slurm_cluster.run("sbatch", "--parsable", *quiet, "--wrap", "exit 3").stdout.strip()
    after = slurm_cluster.run(
        "sbatch", "--parsable", *quiet, f"--dependency=afterok:{bad}", "--wrap", "true"
    ).stdout.strip()

    _wait_for(slurm_cluster, lambda: out.exists() and "ran" in out.read_text())
    assert out.read_text().split() == ["ran", job, "on", slurm_cluster.node]

    def comp(jobid):
        text = slurm_cluster.jobcomp.read_text() if slurm_cluster.jobcomp.exists() else ""
        m = [ln for ln in text.splitlines() if ln.startswith(f"JobId={jobid} ")]
        return m[0] if m else ""

    _wait_for(slurm_cluster, lambda: comp(job) and comp(bad))
    assert "JobState=COMPLETED" in comp(job)
    assert "JobState=FAILED" in comp(bad) and "ExitCode=3:0" in comp(bad)
    # afterok on a failed job can never start: Slurm says so, and it never ran
    _wait_for(
        slurm_cluster,
        lambda: (
            "DependencyNeverSatisfied"
            in slurm_cluster.run("squeue", "-h", "-j", after, "-o", "%r", check=False).stdout
        ),
    )
    slurm_cluster.run("scancel", after)
    _wait_for(slurm_cluster, lambda: "JobState=CANCELLED" in comp(after))
