"""Stage `dft`: one real `pw.x` SCF (energy, forces, stress) per structure → dft.extxyz.

The pseudopotentials are copied into `pseudo/` of the stage folder, so the rendered
inputs are self-contained (offline, container-ready) and their bytes are part of the
input hash. Units leave this stage as eV, Å, eV/Å³ (runbook.qe fixes them at the parser).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from pydantic import Field

from bundle.core import render
from bundle.core.errors import InputError
from runbook import qe
from runbook.config import Strict
from runbook.files import write_commands
from runbook.launchers import Command
from runbook.stage import Context, Stage


class DftConfig(Strict):
    pseudo_dir: str = "/usr/share/espresso/pseudo"
    pseudopotentials: dict[str, str] = Field(min_length=1)
    ecutwfc_ry: float = Field(gt=0)
    ecutrho_ry: float = Field(gt=0)
    kpoint_spacing_inv_angstrom: float = Field(0.5, gt=0)
    kpoint_shift: bool = Field(True, description="Monkhorst-Pack grid offset by half a step")
    conv_thr_per_atom_ry: float = Field(1e-9, gt=0)
    mixing_beta: float = Field(0.7, gt=0, le=1)


@dataclass(frozen=True)
class DftResult:
    file: str
    n_frames: int
    pw_version: str
    energy_per_atom_ev: list[float]  # min, max
    max_force_ev_a: float
    mean_scf_iterations: float


def pw_name(i: int) -> str:
    return f"pw-{i:03d}"


class Dft(Stage):
    kind = "dft"
    Config = DftConfig
    tools = ("qe", "ase")

    def preflight(self, ctx: Context) -> None:
        c: DftConfig = self.cfg  # type: ignore[assignment]
        src = ctx.study.source
        for sym in ctx.study.species:
            if sym not in c.pseudopotentials:
                raise InputError(
                    src,
                    f"{self.name}.pseudopotentials.{sym}",
                    f"no pseudopotential for species {sym}",
                    f"add `{sym}: FILE.UPF` (a file in {c.pseudo_dir})",
                )
        for sym, fname in c.pseudopotentials.items():
            if not (Path(c.pseudo_dir) / fname).is_file():
                raise InputError(
                    src,
                    f"{self.name}.pseudopotentials.{sym}",
                    f"{fname} not found in {c.pseudo_dir}",
                    "install it there or set dft.pseudo_dir",
                )
        if c.ecutrho_ry < 4 * c.ecutwfc_ry:
            raise InputError(
                src,
                f"{self.name}.ecutrho_ry",
                f"{c.ecutrho_ry} is below 4 x ecutwfc_ry ({4 * c.ecutwfc_ry})",
                "ultrasoft/PAW pseudopotentials need ecutrho >= 4 x ecutwfc (8-12 x typical)",
            )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: DftConfig = self.cfg  # type: ignore[assignment]
        up = ctx.dir_of(ctx.upstream_of_kind("structure", self.name))
        frames = read(up / "structures.extxyz", index=":")
        pseudo = stage_dir / "pseudo"
        pseudo.mkdir()
        species = {s: c.pseudopotentials[s] for s in ctx.study.species}
        files = [
            Path(shutil.copyfile(Path(c.pseudo_dir) / f, pseudo / f)) for f in species.values()
        ]
        commands = []
        for i, atoms in enumerate(frames):
            name = pw_name(i)
            ctxt = qe.input_context(atoms, species, c, prefix=name)
            files.append(render.render_to(stage_dir / f"{name}.in", "qe/pw-scf.in.j2", **ctxt))
            commands.append(Command(("pw.x", "-in", f"{name}.in"), f"{name}.out", mpi=True))
        files.append(write_commands(stage_dir, commands))
        return files

    def collect(self, ctx: Context, stage_dir: Path) -> DftResult:
        up = ctx.dir_of(ctx.upstream_of_kind("structure", self.name))
        frames = read(up / "structures.extxyz", index=":")
        out, versions, iters = [], set(), []
        for i, atoms in enumerate(frames):
            r = qe.read_pw_output(stage_dir / f"{pw_name(i)}.out", len(atoms))
            a = atoms.copy()
            a.calc = SinglePointCalculator(
                a, energy=r.energy_ev, forces=r.forces_ev_a, stress=r.stress_ev_a3
            )
            a.info = {"frame": i, "source": f"{pw_name(i)}.out"}
            out.append(a)
            versions.add(r.version)
            iters.append(r.scf_iterations)
        shutil.rmtree(stage_dir / "scratch", ignore_errors=True)  # wavefunctions, not results
        write(stage_dir / "dft.extxyz", out, format="extxyz")
        epa = [a.get_potential_energy() / len(a) for a in out]
        fmax = max(float(np.abs(a.get_forces()).max()) for a in out)
        return DftResult(
            "dft.extxyz",
            len(out),
            ",".join(sorted(versions)),
            [min(epa), max(epa)],
            fmax,
            float(np.mean(iters)),
        )

    def probe(self, stage_dir: Path) -> dict[str, str]:
        first = stage_dir / f"{pw_name(0)}.out"
        return {"pw.x": qe.pw_version(first.read_text(errors="replace"))} if first.exists() else {}
