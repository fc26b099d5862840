"""Slurm batch jobs: render (templates/slurm/job.sbatch.j2), submit, track.

Render is pure: a `BatchJob` (allocation, steps, dependencies, array) becomes the
text of one batch script. GPU jobs get one MPI rank per GPU (`--gres=gpu:N`,
`--ntasks=N`), each rank bound to its own GPU through CUDA_VISIBLE_DEVICES picked
by SLURM_LOCALID; LAMMPS gets the Kokkos flags, `pw.x` its k-point pools (`-nk`).
Checked against Slurm 22.05 (sbatch, squeue, scancel, jobcomp/filetxt).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jinja2

from bundle import paths

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
    array_parallel: int | None = None
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)

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


__all__ = ["Allocation", "BatchJob", "Launch", "render_batch", "sh", "threads_per_rank"]
