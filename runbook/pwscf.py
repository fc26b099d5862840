"""One pw.x SCF of one structure, rendered with the production template, run and timed:
the shared step of the pseudopotential validation (E(V) fits) and the DFT cost table.

`run_scf` renders `templates/qe/pw-scf.in.j2` through `runbook.qe.input_context` (the same
input the `dft` stage writes), copies the named UPF files into `./pseudo`, runs `pw.x`
(under `mpirun -np N` when N > 1) and returns the parsed result with the costs: the wall
time we measured, pw.x's own `PWSCF : ... CPU ... WALL` line, the SCF iteration count, the
dense FFT grid and the load average before the run (the machine may be shared).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bundle.core import engines, paths, render
from bundle.core.errors import EngineError, InputError
from runbook import qe

GENERATED_DIR = paths.root() / "runbook" / "pseudo"
SYSTEM_DIR = Path("/usr/share/espresso/pseudo")
MARK_CLOCK = re.compile(r"PWSCF\s+:\s+(.+?)CPU\s+(.+?)WALL")
MARK_FFT = re.compile(r"FFT dimensions: \(\s*(\d+),\s*(\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class Settings:
    """What `qe.input_context` reads from a `dft` stage config, plus the run's ranks."""

    ecutwfc_ry: float
    ecutrho_ry: float
    kpoint_spacing_inv_angstrom: float = 0.5
    kpoint_shift: bool = False
    kpoint_gamma: bool = False
    conv_thr_per_atom_ry: float = 1e-9
    mixing_beta: float = 0.7
    electron_maxstep: int = 200
    smearing: str = "mv"  # read only for smeared frames (none here: insulators)
    degauss_ry: float = 0.01
    ranks: int = 1


@dataclass(frozen=True)
class ScfRun:
    result: qe.PwResult
    wall_s: float  # measured around the process
    pw_clock: str  # pw.x's own "PWSCF : <cpu> CPU <wall> WALL"
    pw_wall_s: float
    fft_dense: tuple[int, int, int]
    load_before: float  # 1-minute load average when the run started
    output: Path


def find_upf(name: str, dirs: tuple[Path, ...] = (GENERATED_DIR, SYSTEM_DIR)) -> Path:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    where = ", ".join(map(str, dirs))
    raise InputError(name, "(pseudopotential)", f"not found in {where}", "generate or install it")


def _seconds(text: str) -> float:
    """pw.x clock text like `1h 2m`, `2m34.56s` or `12.34s` -> seconds."""
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)\s*([hms])", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def run_scf(
    atoms, species: dict[str, str], settings: Settings, folder: Path, name: str, reuse=False
) -> ScfRun:
    """Render, run and parse one SCF of `atoms` in `folder` (files `<name>.in/.out`).
    `reuse`: a finished output of the identical input is read instead of run again (its
    wall time is then pw.x's own; the load is read from `<name>.load`, else NaN)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pseudo").mkdir(exist_ok=True)
    for upf in {species[s] for s in set(atoms.get_chemical_symbols())}:
        shutil.copyfile(find_upf(upf), folder / "pseudo" / upf)
    ctx = qe.input_context(atoms, species, settings, name)
    text_in = render.render_text("qe/pw-scf.in.j2", **ctx)
    out = folder / f"{name}.out"
    inp = folder / f"{name}.in"
    if reuse and out.is_file() and inp.is_file() and inp.read_text() == text_in:
        if qe.MARK_DONE in out.read_text(errors="replace"):
            loadf = folder / f"{name}.load"
            load = float(loadf.read_text()) if loadf.is_file() else float("nan")
            return _parse(out, len(atoms), None, load)
    inp.write_text(text_in)
    argv = [engines.program("pw.x"), "-in", f"{name}.in"]
    if settings.ranks > 1:
        argv = [engines.mpirun(), "-np", str(settings.ranks), *argv]
    env = engines.mpirun_env()
    env["OMP_NUM_THREADS"] = "1"
    load = os.getloadavg()[0]
    (folder / f"{name}.load").write_text(f"{load:.2f}\n")
    t0 = time.perf_counter()
    with out.open("w") as fh:
        rc = subprocess.run(argv, cwd=folder, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    shutil.rmtree(folder / "scratch", ignore_errors=True)
    if rc.returncode != 0:
        raise EngineError(f"pw.x exited {rc.returncode} on {inp}; see {out}")
    return _parse(out, len(atoms), wall, load)


def _parse(out: Path, nat: int, wall: float | None, load: float) -> ScfRun:
    text = out.read_text(errors="replace")
    result = qe.parse_pw_output(text, nat, str(out))
    clocks = MARK_CLOCK.findall(text)
    ffts = MARK_FFT.findall(text)
    if not clocks or not ffts:
        raise EngineError(f"{out}: no `PWSCF : ... WALL` or `FFT dimensions` line")
    cpu, pw_wall = clocks[-1]
    return ScfRun(
        result=result,
        wall_s=_seconds(pw_wall) if wall is None else wall,
        pw_clock=f"PWSCF : {cpu.strip()} CPU {pw_wall.strip()} WALL",
        pw_wall_s=_seconds(pw_wall),
        fft_dense=tuple(int(x) for x in ffts[0]),  # type: ignore[arg-type]
        load_before=load,
        output=out,
    )
