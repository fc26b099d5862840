"""Slurm batch jobs: render (templates/slurm/job.sbatch.j2), submit, track.

Render is pure: a `BatchJob` (allocation, steps, dependencies, array) becomes the
text of one batch script. GPU jobs get one MPI rank per GPU (`--gres=gpu:N`,
`--ntasks=N`), each rank bound to its own GPU through CUDA_VISIBLE_DEVICES picked
by SLURM_LOCALID; LAMMPS gets the Kokkos flags, `pw.x` its k-point pools (`-nk`).
Checked against Slurm 22.05 (sbatch, squeue, scancel, jobcomp/filetxt).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bundle.core import engines, render
from bundle.core.errors import EngineError, MissingComponent
from bundle.core.render import sh

Engine = Literal["lammps", "qe", "command"]


@dataclass(frozen=True)
class Allocation:
    """What one job asks of one node. With `gpus` > 0 there is one MPI rank per GPU."""

    gpus: int = 0
    ranks: int = 1
    threads: int = 1  # cores per rank = OMP_NUM_THREADS
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    mpi: str | None = None  # srun --mpi=… (PMI plugin, e.g. "pmix"); None: the site default
    extra: tuple[str, ...] = ()  # further `#SBATCH` options, verbatim (e.g. "--mem=0")

    def __post_init__(self) -> None:
        if self.gpus and self.ranks != self.gpus:
            object.__setattr__(self, "ranks", self.gpus)  # one rank per GPU, always


@dataclass(frozen=True)
class Launch:
    """An engine command run on every rank of the allocation through `srun`.

    `argv` is the plain engine command (`lmp -in in.lammps`, `pw.x -in pw.in`); the
    template adds the launcher, GPU binding and engine flags. `prefix` is a container
    exec (`apptainer exec --nv image.sif`). `kpoints` (QE only) bounds the pools.
    """

    engine: Engine
    argv: tuple[str, ...]
    prefix: tuple[str, ...] = ()
    stdout: str | None = None
    kpoints: int = 1

    def pools(self, a: Allocation) -> int:
        """QE k-point pools: the largest divisor of the rank count that is <= the k-points
        (pools must divide the ranks; more pools than k-points leave ranks idle)."""
        return max(p for p in range(1, a.ranks + 1) if a.ranks % p == 0 and p <= self.kpoints)


@dataclass(frozen=True)
class BatchJob:
    """One batch script. `steps` run in order: a `Launch` via srun, a str as a shell line.

    `array` names the sweep points of a job array (task i runs POINTS[i], `$POINT` in
    the steps); `after` are job ids that must end OK first (`afterok`); `after_corr` is
    an array job whose task i must end OK before task i here (`aftercorr`).
    """

    name: str
    workdir: Path
    output: str
    alloc: Allocation
    steps: tuple[Launch | str, ...]
    after: tuple[str, ...] = ()
    after_corr: str | None = None
    array: tuple[str, ...] = ()
    array_tasks: tuple[int, ...] | None = None  # a subset of the array's indices (resume)
    array_parallel: int | None = None
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def launches(self) -> bool:
        """Whether a step is started through srun (then GPU ranks get the binding wrapper)."""
        return any(isinstance(s, Launch) for s in self.steps)

    @property
    def array_spec(self) -> str:
        """`0-3`, or the listed task indices (`1,3`) when only some points need work."""
        if self.array_tasks is None:
            return f"0-{len(self.array) - 1}"
        return ",".join(str(i) for i in sorted(self.array_tasks))

    @property
    def dependency(self) -> str:
        parts = []
        if self.after:
            parts.append("afterok:" + ":".join(self.after))
        if self.after_corr:
            parts.append(f"aftercorr:{self.after_corr}")
        return ",".join(parts)


def render_batch(job: BatchJob) -> str:
    """The batch script's text (pure: no I/O beyond reading the template)."""
    return render.render_text("slurm/job.sbatch.j2", job=job, a=job.alloc)


def threads_per_rank(cores: int, ranks: int) -> int:
    """Cores per rank when `ranks` share `cores` evenly (at least 1)."""
    return max(1, cores // max(1, ranks))


def engine_of(program: str) -> Engine:
    """Which launch rules a program gets: LAMMPS (Kokkos flags on GPUs), pw.x (pools)."""
    name = Path(program).name
    if name == "lmp" or name.startswith("lmp_"):
        return "lammps"
    if name == "pw.x":
        return "qe"
    return "command"


# ------------------------------------------------------------------ submit and track

# Slurm job states that are over (squeue no longer lists them after MinJobAge).
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}


def _slurm(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(
            [engines.program(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise EngineError(f"`{' '.join(argv)}` did not answer in 120 s: is slurmctld up?") from None
    if check and r.returncode != 0:
        raise EngineError(f"`{' '.join(argv)}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return r


def sbatch(script: Path, *extra: str) -> str:
    """Submit a batch script; return its job id (`sbatch --parsable`, cluster suffix dropped)."""
    out = _slurm("sbatch", "--parsable", *extra, str(script)).stdout.strip()
    return out.split(";")[0]


def scancel(*job_ids: str) -> None:
    if job_ids:
        _slurm("scancel", *job_ids, check=False)


@dataclass(frozen=True)
class TaskState:
    """One job or array task: `job` is the (array) job id, `task` the index or None."""

    job: str
    task: int | None
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    exit_code: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def queue(job_ids: set[str]) -> list[TaskState]:
    """Active tasks of the given (array) jobs, from squeue (one line per array task)."""
    if not job_ids:
        return []
    r = _slurm("squeue", "-h", "-r", "-o", "%F|%K|%T", check=False)
    out = []
    for line in r.stdout.splitlines():
        job, task, state = (line.split("|") + ["", "", ""])[:3]
        if job in job_ids:
            out.append(TaskState(job, int(task) if task.isdigit() else None, state))
    return out


def _config() -> dict[str, str]:
    r = _slurm("scontrol", "show", "config", check=False)
    conf = {}
    for line in r.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    return conf


_JOBCOMP = re.compile(r"(\w+)=(\S*)")


def finished(job_ids: set[str]) -> list[TaskState]:
    """Ended tasks of the given jobs: from `sacct` when accounting is on, else from the
    job-completion file (jobcomp/filetxt; one `Key=Value ...` line per ended job)."""
    if not job_ids:
        return []
    conf = _config()
    if conf.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none":
        r = _slurm(
            "sacct", "-n", "-P", "-X", "-j", ",".join(sorted(job_ids)), "-o", "JobID,State,ExitCode"
        )
        out = []
        for line in r.stdout.splitlines():
            jid, state, code = (line.split("|") + ["", "", ""])[:3]
            job, _, task = jid.partition("_")
            out.append(
                TaskState(job, int(task) if task.isdigit() else None, state.split()[0], code)
            )
        return out
    if conf.get("JobCompType") != "jobcomp/filetxt" or not conf.get("JobCompLoc"):
        raise MissingComponent(
            "slurm keeps no record of ended jobs (accounting off and no jobcomp/filetxt); "
            "enable one of them to let `bundle run --executor slurm` track jobs"
        )
    path = Path(conf["JobCompLoc"])
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            kv = dict(_JOBCOMP.findall(line))
            job = kv.get("ArrayJobId") or kv.get("JobId", "")
            if job in job_ids:
                task = kv.get("ArrayTaskId", "")
                out.append(
                    TaskState(
                        job,
                        int(task) if task.isdigit() else None,
                        kv.get("JobState", "?"),
                        kv.get("ExitCode", ""),
                    )
                )
    return out


def states(job_ids: set[str]) -> dict[tuple[str, int | None], TaskState]:
    """The latest known state of every task of the given jobs (active ones win)."""
    out = {(t.job, t.task): t for t in finished(job_ids)}
    out.update({(t.job, t.task): t for t in queue(job_ids)})
    return out


__all__ = [
    "Allocation",
    "BatchJob",
    "Launch",
    "TaskState",
    "render_batch",
    "sbatch",
    "scancel",
    "sh",
    "states",
    "threads_per_rank",
]
