"""Launchers: WHERE a stage's commands run. They know nothing about inputs.

A stage renders `commands.json`: a list of `Command`s whose argv[0] is a program
*name* (`pw.x`, `nequip-train`, `python`, `bundle`), never a host path, so the same
rendered inputs run on a laptop, in a container or under Slurm. The launcher turns a
Command into a full command line (`argv()`, pure and testable as text) and runs it
(`run()`), stdout+stderr into the command's log file in the stage folder.

- `Local()`: `prog args` (`python` = this interpreter, console scripts from this venv)
- `Mpi(np)`: `/usr/bin/mpirun -np N prog args` for commands marked `mpi`; others as Local
- `Container("docker", image, binds, np)`:
  `docker run --rm --network none -v B:B -w CWD IMAGE [mpirun -np N] prog args`
- `Container("apptainer", image, binds, np)`:
  `[mpirun -np N] apptainer exec --cleanenv [--nv] --bind B --pwd CWD IMAGE prog args`
- `Slurm(inner, ...)`: renders `templates/slurm/job.sbatch.j2` (runbook.slurm) around
  the inner launcher's line, then `sbatch --wait`

Where to run is an argument (`from_spec(spec, in_batch_job=...)`), never read from the
environment.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from bundle.core import engines
from runbook import children, slurm
from runbook.config import LauncherSpec

# Programs that come from this Python environment (console scripts), not from the host.
VENV_SCRIPTS = ("bundle", "nequip-train", "nequip-package", "nequip-compile", "dp")


@dataclass(frozen=True)
class Command:
    """One program run of a stage. `log` is relative to the stage folder; `mpi` marks a
    program that an MPI launcher should start on `np` ranks (pw.x); `ok_codes` lists exit
    statuses that are not failures (e.g. `bundle check` exits 1 on a FAIL verdict);
    `needs` names runtime environments the program must have before it starts
    (`deepmd`: DeePMD-kit's LAMMPS plugin in-process; bundle.core.engines.runtime_env),
    which a host launcher adds (a container image carries its own)."""

    argv: tuple[str, ...]
    log: str
    mpi: bool = False
    ok_codes: tuple[int, ...] = (0,)
    needs: tuple[str, ...] = ()

    def to_json(self) -> dict:
        d = {
            "argv": list(self.argv),
            "log": self.log,
            "mpi": self.mpi,
            "ok": list(self.ok_codes),
        }
        if self.needs:
            d["needs"] = list(self.needs)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Command:
        return cls(
            tuple(d["argv"]),
            d["log"],
            bool(d.get("mpi")),
            tuple(d.get("ok", [0])),
            tuple(d.get("needs", ())),
        )


class Launcher(Protocol):
    def argv(self, cmd: Command, cwd: Path) -> list[str]: ...
    def env(self) -> dict[str, str]: ...
    def describe(self) -> str: ...


STAGE_DIR = "{stage_dir}"


def _subst(args: tuple[str, ...] | list[str], cwd: Path) -> list[str]:
    """`{stage_dir}` in an argument becomes the absolute stage folder (for programs that
    insist on absolute paths, like Hydra's --config-path); rendered inputs stay relative."""
    return [a.replace(STAGE_DIR, str(cwd)) for a in args]


def resolve_local(name: str) -> str:
    """A program name → the path on this host (MissingComponent if absent)."""
    if name == "python":
        return sys.executable
    if name in VENV_SCRIPTS:
        return engines.venv_bin(name)
    return engines.program(name)


@dataclass(frozen=True)
class Local:
    threads: int | None = None

    def argv(self, cmd: Command, cwd: Path) -> list[str]:
        return [resolve_local(cmd.argv[0]), *_subst(cmd.argv[1:], cwd)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def describe(self) -> str:
        return f"Local(threads={self.threads})"


@dataclass(frozen=True)
class Mpi:
    """`mpirun -np N` for MPI programs, using the lock's OpenMPI (never the venv's mpich)."""

    np: int = 2
    threads: int | None = 1

    def argv(self, cmd: Command, cwd: Path) -> list[str]:
        prog = [resolve_local(cmd.argv[0]), *_subst(cmd.argv[1:], cwd)]
        if not cmd.mpi:
            return prog
        return [engines.mpirun(), "-np", str(self.np), *prog]

    def env(self) -> dict[str, str]:
        env = dict(engines.mpirun_env(), PYTHONUNBUFFERED="1")
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def describe(self) -> str:
        return f"Mpi(np={self.np}, threads={self.threads})"


@dataclass(frozen=True)
class Container:
    """Commands inside a container image; `binds` must include the run folder (same path
    inside and out, so relative paths between stages hold). Program names resolve on the
    image's PATH. Apptainer uses the host MPI (hybrid model); docker runs mpirun inside."""

    runtime: Literal["docker", "apptainer"]
    image: str
    binds: tuple[str, ...] = ()
    np: int = 1
    gpus: int = 0
    threads: int | None = 1

    def argv(self, cmd: Command, cwd: Path) -> list[str]:
        prog = _subst(cmd.argv, cwd)
        binds = [*self.binds, str(cwd.parent)]
        threads = ["OMP_NUM_THREADS=" + str(self.threads)] if self.threads else []
        if self.runtime == "docker":
            line = ["docker", "run", "--rm", "--network", "none"]
            if self.gpus:
                line += ["--gpus", str(self.gpus)]
            for b in dict.fromkeys(binds):
                line += ["-v", f"{b}:{b}"]
            for t in threads:
                line += ["-e", t]
            line += ["-w", str(cwd), self.image]
            if cmd.mpi and self.np > 1:
                line += ["mpirun", "--allow-run-as-root", "-np", str(self.np)]
            return line + prog
        line = ["mpirun", "-np", str(self.np)] if cmd.mpi and self.np > 1 else []
        line += ["apptainer", "exec", "--cleanenv"]
        if self.gpus:
            line.append("--nv")
        for b in dict.fromkeys(binds):
            line += ["--bind", b]
        for t in threads:
            line += ["--env", t]
        return line + ["--pwd", str(cwd), self.image, *prog]

    def env(self) -> dict[str, str]:
        return dict(engines.mpirun_env())

    def describe(self) -> str:
        return f"Container({self.runtime}, {self.image}, np={self.np}, gpus={self.gpus})"


@dataclass(frozen=True)
class Slurm:
    """A batch job per command: the sbatch script (rendered from
    `templates/slurm/job.sbatch.j2`) runs the `inner` launcher's command line in the
    stage folder; `sbatch --wait` blocks until the job ends and returns its exit status.

    Interface for the scale-out work (issue 7): `script(cmd, cwd) -> str` renders the
    batch script; `argv(cmd, cwd)` is the submit line; `env()` the submit environment.
    Fields map 1:1 to `#SBATCH` options; `extra` lines are added verbatim."""

    inner: Local | Mpi | Container
    job_name: str = "mlmd"
    partition: str | None = None
    time: str = "01:00:00"
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    account: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)

    def script(self, cmd: Command, cwd: Path) -> str:
        """The batch script of one stage command (`sbatch --wait`).

        An MPI command (`cmd.mpi`) or any command on GPUs runs through srun on every rank
        with the engine's flags (one rank per GPU, bound by SLURM_LOCALID); the inner
        launcher contributes only its container prefix (its own mpirun is replaced by
        srun). Others run once, as the inner launcher would run them. The job's output
        is the command's log."""
        alloc = slurm.Allocation(
            gpus=self.gpus_per_node,
            ranks=self.ntasks,
            threads=self.cpus_per_task,
            time=self.time,
            partition=self.partition,
            account=self.account,
            extra=tuple(self.extra),
        )
        inner = self.inner
        if isinstance(inner, Container):  # its threads are the job's threads
            inner = dataclasses.replace(inner, threads=alloc.threads)
        line = inner.argv(Command(tuple(cmd.argv), cmd.log, mpi=False), cwd)
        step: slurm.Launch | str
        if cmd.mpi or alloc.gpus:
            n = len(cmd.argv) - 1
            prefix, exe = line[: len(line) - n - 1], line[len(line) - n - 1]
            engine = slurm.engine_of(cmd.argv[0])
            step = slurm.Launch(engine, (exe, *cmd.argv[1:]), prefix=tuple(prefix))
        else:
            step = shlex.join(line)
        job = slurm.BatchJob(
            name=f"{self.job_name}.{Path(cmd.log).stem}",
            workdir=cwd,
            output=str(cwd / cmd.log),
            alloc=alloc,
            steps=(step,),
        )
        return slurm.render_batch(job)

    def script_path(self, cmd: Command, cwd: Path) -> Path:
        return cwd / f"{Path(cmd.log).stem}.sbatch"

    def argv(self, cmd: Command, cwd: Path) -> list[str]:
        return ["sbatch", "--parsable", "--wait", str(self.script_path(cmd, cwd))]

    def env(self) -> dict[str, str]:
        return self.inner.env()

    def describe(self) -> str:
        inner = self.inner.describe()
        return f"Slurm(partition={self.partition}, ntasks={self.ntasks}, inner={inner})"


def command_env(launcher: Launcher, cmd: Command) -> dict[str, str]:
    """The launcher's environment plus the runtime environments the command `needs`, for
    programs started on this host (a container image sets its own; Slurm jobs inherit
    the submitting environment)."""
    inner = launcher.inner if isinstance(launcher, Slurm) else launcher
    if not cmd.needs or isinstance(inner, Container):
        return launcher.env()
    return engines.runtime_env(cmd.needs, launcher.env())


def run(launcher: Launcher, cmd: Command, cwd: Path) -> int:
    """Run one command through a launcher; output goes to `cwd/cmd.log`. Returns the exit
    status (the caller decides what is a failure). The command runs in a session of its
    own, recorded in `cwd` while it runs (runbook.children)."""
    env = command_env(launcher, cmd)
    if isinstance(launcher, Slurm):
        launcher.script_path(cmd, cwd).write_text(launcher.script(cmd, cwd))
        argv = [engines.program("sbatch"), *launcher.argv(cmd, cwd)[1:]]
        # sbatch --wait: the job writes the log itself; sbatch's own output is the job id.
        with open(cwd / f"{Path(cmd.log).stem}.sbatch.out", "w") as out:
            return children.spawn(argv, cwd, env, out, out)
    argv = launcher.argv(cmd, cwd)
    with open(cwd / cmd.log, "w") as out:
        out.write(f"# {shlex.join(argv)}\n")
        out.flush()
        return children.spawn(argv, cwd, env, out, subprocess.STDOUT)


def from_spec(spec: LauncherSpec, *, in_batch_job: bool = False) -> Launcher:
    """Build a launcher from a study's `LauncherSpec`. `in_batch_job`: the caller already
    runs inside this stage's Slurm job (a sweep's job array), so a `slurm` spec means its
    inner launcher, not another job."""
    if spec.kind == "local":
        return Local(threads=spec.threads)
    if spec.kind == "mpi":
        return Mpi(np=spec.np, threads=spec.threads or 1)
    if spec.kind in ("docker", "apptainer"):
        return Container(spec.kind, spec.image or "", tuple(spec.binds), spec.np, spec.gpus)
    inner = from_spec(spec.model_copy(update={"kind": spec.inner}))
    if in_batch_job:
        return inner
    return Slurm(
        inner=inner,  # type: ignore[arg-type]
        partition=spec.partition,
        time=spec.time,
        ntasks=spec.np,
        gpus_per_node=spec.gpus,
        account=spec.account,
        extra=tuple(spec.sbatch),
    )
