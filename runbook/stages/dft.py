"""Stage `dft`: one real `pw.x` SCF (energy, forces, stress) per structure → dft.extxyz.

The pseudopotentials are found on a search path (`pseudo_path`: the first folder holding
the file wins; relative folders are under the bundle root, e.g. `runbook/pseudo`, then
`/usr/share/espresso/pseudo`; default: `[pseudo_dir]`) and copied into `pseudo/` of the
stage folder, so the rendered inputs are self-contained (offline, container-ready) and
their bytes are part of the input hash. Units leave this stage as eV, Å, eV/Å³
(runbook.qe fixes them at the parser).

A frame whose SCF does not converge (pw.x exit status 2, `convergence NOT achieved`) is
RECORDED in the result (`excluded`) and left out of dft.extxyz: never kept as a label,
never a failure of the whole stage, unless no frame is left. Any other pw.x failure
stops the stage. Frames keep the info of the structure file (e.g. `env_class`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from pydantic import Field

from bundle.core import paths, render
from bundle.core.errors import EngineError, InputError
from runbook import qe
from runbook.config import Strict
from runbook.files import write_commands
from runbook.launchers import Command
from runbook.stage import Context, Stage


class DftConfig(Strict):
    pseudo_dir: str = "/usr/share/espresso/pseudo"
    pseudo_path: list[str] = Field(
        [], description="folders searched in order (relative: under the bundle root)"
    )
    pseudopotentials: dict[str, str] = Field(min_length=1)
    ecutwfc_ry: float = Field(gt=0)
    ecutrho_ry: float = Field(gt=0)
    kpoint_spacing_inv_angstrom: float = Field(0.5, gt=0)
    kpoint_shift: bool = Field(True, description="Monkhorst-Pack grid offset by half a step")
    conv_thr_per_atom_ry: float = Field(1e-9, gt=0)
    mixing_beta: float = Field(0.7, gt=0, le=1)
    electron_maxstep: int = Field(200, ge=1)
    kpoint_gamma: bool = Field(
        False, description="K_POINTS gamma (real wavefunctions) for frames whose grid is 1x1x1"
    )
    smearing_classes: list[str] = Field(
        [], description="frames whose info `env_class` is listed get smeared occupations"
    )
    smearing: Literal["mv", "gaussian", "fd"] = "mv"
    degauss_ry: float = Field(0.01, gt=0)
    local_tf_classes: list[str] = Field(
        [],
        description="frames whose info `env_class` is listed mix the density with "
        "mixing_mode 'local-TF' (inhomogeneous cells: interfaces, surfaces, vacuum gaps)",
    )

    def search_path(self) -> list[Path]:
        dirs = self.pseudo_path or [self.pseudo_dir]
        return [Path(d) if Path(d).is_absolute() else paths.root() / d for d in dirs]

    def find_pseudo(self, fname: str) -> Path | None:
        return next((d / fname for d in self.search_path() if (d / fname).is_file()), None)


@dataclass(frozen=True)
class DftResult:
    file: str
    n_frames: int
    pw_version: str
    energy_per_atom_ev: list[float]  # min, max
    max_force_ev_a: float
    mean_scf_iterations: float
    excluded: list[dict] = field(default_factory=list)  # {frame, source, reason}


def pw_name(i: int) -> str:
    return f"pw-{i:03d}"


class Dft(Stage):
    kind = "dft"
    Config = DftConfig
    tools = ("qe", "ase")

    def preflight(self, ctx: Context) -> None:
        c: DftConfig = self.cfg  # type: ignore[assignment]
        src = ctx.study.source
        where = ", ".join(str(d) for d in c.search_path())
        if c.pseudo_path and "pseudo_dir" in c.model_fields_set:
            raise InputError(
                src, f"{self.name}.pseudo_dir", "both pseudo_dir and pseudo_path are set",
                "keep one: pseudo_path is searched in order",
            )  # fmt: skip
        for sym in ctx.study.species:
            if sym not in c.pseudopotentials:
                raise InputError(
                    src,
                    f"{self.name}.pseudopotentials.{sym}",
                    f"no pseudopotential for species {sym}",
                    f"add `{sym}: FILE.UPF` (a file in {where})",
                )
        for sym, fname in c.pseudopotentials.items():
            if c.find_pseudo(fname) is None:
                raise InputError(
                    src,
                    f"{self.name}.pseudopotentials.{sym}",
                    f"{fname} not found in {where}",
                    "install it there or set dft.pseudo_path",
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
        self._check_species(ctx, frames)
        pseudo = stage_dir / "pseudo"
        pseudo.mkdir()
        species = {s: c.pseudopotentials[s] for s in ctx.study.species}
        files = [
            Path(shutil.copyfile(c.find_pseudo(f), pseudo / f))  # type: ignore[arg-type]
            for f in species.values()
        ]
        commands = []
        ok = (0, qe.EXIT_NOT_CONVERGED)  # a non-converged frame is excluded in collect
        for i, atoms in enumerate(frames):
            name = pw_name(i)
            cls = atoms.info.get("env_class")
            ctxt = qe.input_context(atoms, species, c, prefix=name,
                                    smeared=cls in c.smearing_classes,
                                    local_tf=cls in c.local_tf_classes)  # fmt: skip
            files.append(render.render_to(stage_dir / f"{name}.in", "qe/pw-scf.in.j2", **ctxt))
            commands.append(
                Command(("pw.x", "-in", f"{name}.in"), f"{name}.out", mpi=True, ok_codes=ok)
            )
        files.append(write_commands(stage_dir, commands))
        return files

    def accepts(self, code: int, cmd: Command, stage_dir: Path) -> bool:
        """pw.x's exit status 2 passes only for an SCF that did not converge (collect
        records and excludes the frame): pw.x also exits 2 on its own errors (a broken
        pseudopotential), and those fail the stage naming the output."""
        if code == qe.EXIT_NOT_CONVERGED:
            return qe.MARK_NOT_CONVERGED in (stage_dir / cmd.log).read_text(errors="replace")
        return code in cmd.ok_codes

    def _check_species(self, ctx: Context, frames) -> None:
        present = sorted({s for a in frames for s in a.get_chemical_symbols()})
        missing = [s for s in present if s not in ctx.study.species]
        if missing:
            raise InputError(
                ctx.study.source, "species",
                f"the structures hold {', '.join(missing)}, not among the study's species "
                "(no pseudopotential is chosen for them)",
                f"add {', '.join(missing)} to `species` and to {self.name}.pseudopotentials",
            )  # fmt: skip

    def collect(self, ctx: Context, stage_dir: Path) -> DftResult:
        up = ctx.dir_of(ctx.upstream_of_kind("structure", self.name))
        frames = read(up / "structures.extxyz", index=":")
        out, versions, iters, excluded = [], set(), [], []
        for i, atoms in enumerate(frames):
            try:
                r = qe.read_pw_output(stage_dir / f"{pw_name(i)}.out", len(atoms))
            except qe.ScfNotConverged as e:
                reason = f"SCF not converged in {e.iterations} iterations"
                excluded.append({"frame": i, "source": f"{pw_name(i)}.out", "reason": reason})
                continue
            a = atoms.copy()
            a.calc = SinglePointCalculator(
                a, energy=r.energy_ev, forces=r.forces_ev_a, stress=r.stress_ev_a3
            )
            a.info = {**atoms.info, "frame": i, "source": f"{pw_name(i)}.out"}
            out.append(a)
            versions.add(r.version)
            iters.append(r.scf_iterations)
        shutil.rmtree(stage_dir / "scratch", ignore_errors=True)  # wavefunctions, not results
        if not out:
            raise EngineError(f"{stage_dir}: no frame converged; see the pw-*.out files")
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
            excluded,
        )

    def probe(self, stage_dir: Path) -> dict[str, str]:
        first = stage_dir / f"{pw_name(0)}.out"
        return {"pw.x": qe.pw_version(first.read_text(errors="replace"))} if first.exists() else {}
