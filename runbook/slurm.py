"""Slurm batch jobs: render (templates/slurm/job.sbatch.j2), submit, track.

Render is pure: a `BatchJob` (allocation, steps, dependencies, array) becomes the
text of one batch script. GPU jobs get one MPI rank per GPU (`--gres=gpu:N`,
`--ntasks=N`), each rank bound to its own GPU through CUDA_VISIBLE_DEVICES picked
by SLURM_LOCALID; LAMMPS gets the Kokkos flags, `pw.x` its k-point pools (`-nk`).
Checked against Slurm 22.05 (sbatch, squeue, scancel, jobcomp/filetxt).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jinja2

from bundle.core import paths
from bundle.core.errors import EngineError, MissingComponent

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


_EXPAND = re.compile(r"\$\{?POINT\b")


def sh(word: object) -> str:
    """Quote one shell word for bash; `$POINT` (the array task's sweep point) stays expandable."""
    s = str(word)
    if _EXPAND.search(s):
        if re.fullmatch(r"[\w@%+=:,./${}-]+", s):
            return s if '"' not in s else shlex.quote(s)
        return '"' + re.sub(r'(["\\`])', r"\\\1", s) + '"'
    return shlex.quote(s)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir() / "slurm")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["sh"] = sh
    return env


def render_batch(job: BatchJob) -> str:
    """The batch script's text (pure: no I/O beyond reading the template)."""
    return _env().get_template("job.sbatch.j2").render(job=job, a=job.alloc)


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


def stage_script(launcher, cmd, cwd: Path) -> str:
    """The batch script of one stage command for `runbook.launchers.Slurm` (`sbatch --wait`).

    An MPI command (`cmd.mpi`) or any command on GPUs runs through srun on every rank with
    the engine's flags (one rank per GPU, bound by SLURM_LOCALID); the inner launcher
    contributes only its container prefix (its own mpirun is replaced by srun). Others run
    once, as the inner launcher would run them. The job's output is the command's log."""
    from runbook import launchers

    alloc = Allocation(
        gpus=launcher.gpus_per_node,
        ranks=launcher.ntasks,
        threads=launcher.cpus_per_task,
        time=launcher.time,
        partition=launcher.partition,
        account=launcher.account,
        extra=tuple(launcher.extra),
    )
    inner = launcher.inner
    if isinstance(inner, launchers.Container):  # its threads are the job's threads
        inner = dataclasses.replace(inner, threads=alloc.threads)
    serial = launchers.Command(tuple(cmd.argv), cmd.log, mpi=False)
    line = inner.argv(serial, cwd)
    step: Launch | str
    if cmd.mpi or alloc.gpus:
        n = len(cmd.argv) - 1
        prefix, exe = line[: len(line) - n - 1], line[len(line) - n - 1]
        step = Launch(engine_of(cmd.argv[0]), (exe, *cmd.argv[1:]), prefix=tuple(prefix))
    else:
        step = shlex.join(line)
    job = BatchJob(
        name=f"{launcher.job_name}.{Path(cmd.log).stem}",
        workdir=cwd,
        output=str(cwd / cmd.log),
        alloc=alloc,
        steps=(step,),
    )
    return render_batch(job)


# ------------------------------------------------------------------ submit and track

# Slurm job states that are over (squeue no longer lists them after MinJobAge).
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}


def _slurm(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    from bundle.core import engines

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


# ------------------------------------------------- the study executor: `--executor slurm`

JOBS = "jobs.json"


def allocation_for(cfg, stage: str) -> Allocation:
    """A stage job's request from the profile's launcher spec of that stage. On a CUDA
    profile an MPI stage takes one GPU per rank (the spec's `gpus`, else its `np`, capped
    by the profile's GPU count)."""
    spec = cfg.active.launcher_for(stage)
    ranks = spec.np if spec.kind != "local" else 1
    gpus = spec.gpus
    if not gpus and cfg.active.accelerator == "cuda" and spec.kind != "local":
        gpus = min(ranks, cfg.active.gpus) if cfg.active.gpus else ranks
    return Allocation(
        gpus=gpus,
        ranks=ranks,
        threads=spec.threads or 1,
        time=spec.time,
        partition=spec.partition,
        account=spec.account,
        extra=tuple(spec.sbatch),
    )


def _record(control: Path) -> dict:
    path = control / "slurm" / JOBS
    return json.loads(path.read_text()) if path.exists() else {"submissions": []}


def _save_record(control: Path, rec: dict) -> None:
    path = control / "slurm" / JOBS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=2) + "\n")
    tmp.replace(path)


def _job_ids(rec: dict) -> set[str]:
    return {s["job"] for s in rec["submissions"]}


@dataclass
class Progress:
    """Where a sweep stands: per point, each stage's status on disk; the active jobs."""

    plan: object  # runbook.sweep.Plan
    stages: dict[str, list[str]]  # point name -> stage statuses
    active: list[TaskState]
    report: Path | None

    @property
    def done(self) -> bool:
        return all(all(s == "complete" for s in v) for v in self.stages.values())


def progress(pl) -> Progress:
    from runbook import sweep

    rec = _record(pl.control)
    active = [t for t in queue(_job_ids(rec)) if t.active]
    report = pl.control / "report" / "report.md"
    return Progress(
        pl,
        {p.name: sweep.point_progress(p) for p in pl.points},
        active,
        report if report.exists() else None,
    )


def describe(pr: Progress) -> list[str]:
    """A table: one line per point, one column per stage; then the active jobs."""
    pl = pr.plan
    width = max(len(p.name) for p in pl.points)
    cols = [max(len(n), 10) for n in pl.stages]
    lines = [
        f"{'point':<{width}}  "
        + "  ".join(f"{n:<{c}}" for n, c in zip(pl.stages, cols, strict=True))
    ]
    for name, sts in pr.stages.items():
        lines.append(
            f"{name:<{width}}  " + "  ".join(f"{s:<{c}}" for s, c in zip(sts, cols, strict=True))
        )
    if pr.active:
        jobs = [f"{t.job}" + (f"_{t.task}" if t.task is not None else "") + f" {t.state}"
                for t in pr.active]  # fmt: skip
        lines.append("active jobs: " + ", ".join(jobs))
    return [ln.rstrip() for ln in lines]


def stage_job(pl, cfg, k: int, tasks: tuple[int, ...], after: str | None, python: str) -> BatchJob:
    """The job array of stage k over the point indices `tasks` (pure: no submission)."""
    stage = pl.stages[k]
    point_dir = '"points/$POINT"' if pl.spec is not None else "."
    return BatchJob(
        name=f"{cfg.name}.{stage}",
        workdir=pl.run_dir,
        output=str(pl.control / "slurm" / "logs" / "%x-%A_%a.out"),
        alloc=allocation_for(cfg, stage),
        steps=(
            f'{sh(python)} -m runbook.sweep stage "sweep/studies/$POINT.yaml" {point_dir} '
            f"{sh(stage)}",
        ),
        after_corr=after,
        array=tuple(p.name for p in pl.points),
        array_tasks=tasks,
        array_parallel=pl.spec.max_parallel if pl.spec else None,
        env=(("MLMD_SLURM_JOB", "1"), ("PYTHONUNBUFFERED", "1")),
    )


def collect_job(pl, cfg, after: str | None, python: str) -> BatchJob:
    return BatchJob(
        name=f"{cfg.name}.collect",
        workdir=pl.run_dir,
        output=str(pl.control / "slurm" / "logs" / "%x-%j.out"),
        alloc=Allocation(time="01:00:00"),
        steps=(f"{sh(python)} -m runbook.sweep collect .",),
        after=(after,) if after else (),
        env=(("PYTHONUNBUFFERED", "1"),),
    )


def submit(pl, python: str) -> list[dict]:
    """Submit what is unfinished: per stage one job array over the points that still need
    it (task i = point i; `aftercorr` on the previous stage's array, so a point moves on
    as soon as its own previous stage ends OK), then a collect job (`afterok` on the last
    array) that writes the sweep report. Returns the submissions made."""
    from runbook import config, sweep

    firsts = {p.name: sweep.first_incomplete(p) for p in pl.points}
    cfg = config.load(pl.points[0].study_file)
    slurm_dir = pl.control / "slurm"
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    subs: list[dict] = []
    prev: str | None = None
    for k, stage in enumerate(pl.stages):
        tasks = tuple(
            i for i, p in enumerate(pl.points) if (f := firsts[p.name]) is not None and f <= k
        )
        if not tasks:
            continue
        script = slurm_dir / f"{k + 1:02d}_{stage}.sbatch"
        script.write_text(render_batch(stage_job(pl, cfg, k, tasks, prev, python)))
        prev = sbatch(script)
        names = [pl.points[i].name for i in tasks]
        subs.append(
            {"stage": stage, "job": prev, "tasks": list(tasks), "points": names,
             "script": str(script)}
        )  # fmt: skip
    script = slurm_dir / "collect.sbatch"
    script.write_text(render_batch(collect_job(pl, cfg, prev, python)))
    subs.append({"stage": "collect", "job": sbatch(script), "tasks": [], "points": [],
                 "script": str(script)})  # fmt: skip
    return subs


def run_study(
    study: str | Path,
    run_dir: Path,
    *,
    overrides: list[str] | None = None,
    profile: str | None = None,
    wait: bool = False,
    poll_s: float = 2.0,
    echo=print,
) -> Progress:
    """`bundle run STUDY --executor slurm`: submit, track, resume, collect.

    - jobs of this run still queued or running: report them, submit nothing (with
      `wait`, wait for them to end first);
    - otherwise submit exactly what is unfinished on disk (stage manifests are the
      truth: a cancelled or failed task leaves an incomplete stage, which is redone),
      plus the collect job if the report is missing;
    - with `wait`, block until the jobs end and say where the report is, or which
      point and stage failed and where its log is."""
    import sys

    from runbook import sweep

    pl = sweep.plan(study, run_dir, overrides, profile)
    rec = _record(pl.control)
    pr = progress(pl)
    if pr.active:
        echo(f"{len(pr.active)} job(s) of this run are still queued or running; nothing submitted")
        for line in describe(pr):
            echo(line)
        if not wait:
            return pr
        pr = _wait(pl, poll_s, echo)
    if pr.done and pr.report:
        echo(f"complete: every stage of every point is finished; report {pr.report}")
        return pr
    subs = submit(pl, sys.executable)
    rec["submissions"] += subs
    _save_record(pl.control, rec)
    for s in subs:
        what = f"points {','.join(s['points'])}" if s["points"] else "the sweep report"
        echo(f"submitted {s['stage']}: job {s['job']} ({what})")
    if wait:
        pr = _wait(pl, poll_s, echo)
        for line in describe(pr):
            echo(line)
        if pr.done and pr.report:
            echo(f"complete; report {pr.report}")
        else:
            raise EngineError(_failure(pl, pr))
    return pr


def _wait(pl, poll_s: float, echo) -> Progress:
    import time

    while True:
        pr = progress(pl)
        if not pr.active:
            return pr
        time.sleep(poll_s)


def _failure(pl, pr: Progress) -> str:
    rec = _record(pl.control)
    st = states(_job_ids(rec))
    bad = [
        f"{t.job}_{t.task} {t.state}" if t.task is not None else f"{t.job} {t.state}"
        for t in st.values()
        if t.state not in ("COMPLETED",) and not t.active
    ]
    unfinished = [
        f"{name}:{stage}"
        for name, sts in pr.stages.items()
        for stage, s in zip(pl.stages, sts, strict=True)
        if s != "complete"
    ]
    return (
        f"slurm run incomplete: {', '.join(unfinished[:6]) or 'report missing'}"
        f"{' ...' if len(unfinished) > 6 else ''}; jobs {', '.join(bad[:6]) or '?'}; logs in "
        f"{pl.control / 'slurm' / 'logs'}; run again to resubmit what is unfinished"
    )
