"""The models of a study file (`runbook/studies/<name>.yaml`): what `runbook.loader` checks.

A study names its stages in order and gives each a config block under the same
name. A block may set `kind:` to reuse a stage type under another name (e.g. two
`md` stages); built-in kinds are in `runbook.stages.KINDS`, and a plug-in kind is
given as `package.module:ClassName`. Profiles (`cpu`, `h200`, ...) decide where each
stage runs (launchers) and which engine variant it uses (CPU `fix external` vs GPU
`pair_style allegro` + Kokkos); a block's `by_profile: {<profile>: {field: value}}`
changes fields under one profile. The `sweep` block makes the study a set of points
(seeds x temperatures). Every error names the file, the dotted field, the bad value and
what is allowed (bundle.core.errors.InputError, exit 3).

Pure models and helpers: nothing here reads files or knows the stage kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bundle.core import io
from bundle.core.errors import InputError

SCHEMA = "study/1"


class Strict(BaseModel):
    """Every config model: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LauncherSpec(Strict):
    """Where a stage's commands run. `local`: a process here; `mpi`: `mpirun -np N` for the
    commands marked MPI; `docker`/`apptainer`: inside a container image (`np` ranks);
    `slurm`: a batch job (see runbook.launchers.Slurm)."""

    kind: Literal["local", "mpi", "docker", "apptainer", "slurm"] = "local"
    np: int = Field(1, ge=1)
    threads: int | None = Field(None, ge=1, description="OMP_NUM_THREADS for the commands")
    image: str | None = None
    binds: list[str] = []
    gpus: int = Field(0, ge=0)
    # slurm only
    partition: str | None = None
    time: str = "01:00:00"
    account: str | None = None
    inner: Literal["local", "mpi", "docker", "apptainer"] = "local"
    sbatch: list[str] = []

    @model_validator(mode="after")
    def _image_for_containers(self) -> LauncherSpec:
        uses = self.kind if self.kind != "slurm" else self.inner
        if uses in ("docker", "apptainer") and not self.image:
            raise ValueError(f"a {uses} launcher needs `image` (a tag or a .sif path)")
        return self


class ModelRef(Strict):
    """The ML potential a profile runs on, named once (runbook.modelref resolves it):
    `run`, the folder of a potential study's run (its complete `deploy` stage, found by
    kind, holds the packaged and compiled model and model_manifest.json), or `file`, a
    model file (`.nequip.zip` packaged, e.g. one installed in the bundle's `models/`, or a
    compiled `.nequip.pt2`) with model_manifest.json beside it. A relative path is taken
    against the directory `bundle run` starts in (a run folder's usual `runs/...` path),
    made absolute when the study is loaded: study.json records the path that ran."""

    run: str | None = None
    file: str | None = None

    @field_validator("run", "file")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        return None if v is None else str(Path.cwd() / Path(v).expanduser())

    @model_validator(mode="after")
    def _one(self) -> ModelRef:
        if (self.run is None) == (self.file is None):
            raise ValueError("give exactly one of `run` (a potential run) or `file`")
        return self


class Profile(Strict):
    """An executor profile: accelerator + per-stage launchers (`default` for the rest);
    `model`: the ML potential the profile's MD runs on (none: the classical baseline)."""

    accelerator: Literal["cpu", "cuda"] = "cpu"
    gpus: int = Field(0, ge=0)
    launchers: dict[str, LauncherSpec] = {}
    model: ModelRef | None = None

    def launcher_for(self, stage: str) -> LauncherSpec:
        return self.launchers.get(stage) or self.launchers.get("default") or LauncherSpec()


class SweepSet(Strict):
    """Which study fields (dotted, `<stage>.<field>`) each sweep axis sets."""

    seed: list[str] = []
    temperature: list[str] = []


class SweepSpec(Strict):
    """The validated `sweep` block."""

    seeds: list[int] = Field(default=[1], min_length=1)
    temperatures_K: list[float] = Field(default=[], description="empty: the study's own")
    band_widths_A: list[float] = []
    set: SweepSet = SweepSet()
    max_parallel: int | None = Field(None, ge=1, description="array tasks at once (%N)")

    def check(self, file: Path) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise InputError(file, "sweep.seeds", "a seed appears twice")
        if self.temperatures_K and not self.set.temperature:
            raise InputError(
                file,
                "sweep.set.temperature",
                "temperatures are swept but no study field is set from them",
                "list the dotted fields, e.g. [md.temperature_k]",
            )
        if len(self.seeds) > 1 and not self.set.seed:
            raise InputError(
                file, "sweep.set.seed", "seeds are swept but no study field is set from them"
            )
        for t in self.temperatures_K:
            if not t > 0:
                raise InputError(file, "sweep.temperatures_K", f"{t} is not a temperature in K")
        for w in self.band_widths_A:
            if not w > 0:
                raise InputError(file, "sweep.band_widths_A", f"{w} is not a width in Å")

    def fields(self) -> dict[str, list[str]]:
        """Axis -> the dotted study fields it sets."""
        return {"seed": list(self.set.seed), "temperature": list(self.set.temperature)}


def parse_sweep(block: Any, file: Path) -> SweepSpec:
    """The `sweep` block validated; errors name `sweep.<field>` in `file`."""
    try:
        spec = SweepSpec.model_validate(block or {})
    except ValidationError as e:
        raise validation_error(e, file, prefix="sweep.") from None
    spec.check(file)
    return spec


@dataclass(frozen=True)
class SweepPoint:
    """One (seed, temperature) run of a sweep; `overrides` are `--set` strings."""

    name: str
    seed: int
    temperature_K: float | None
    overrides: tuple[str, ...]


def sweep_points(spec: SweepSpec) -> list[SweepPoint]:
    """Every point of the sweep: temperatures outer, seeds inner."""
    temps: list[float | None] = list(spec.temperatures_K) or [None]
    out = []
    for t in temps:
        for s in spec.seeds:
            sets = [f"{f}={s}" for f in spec.set.seed]
            name = f"seed{s}"
            if t is not None:
                sets += [f"{f}={t:g}" for f in spec.set.temperature]
                name += f"_T{t:g}K"
            out.append(SweepPoint(name, s, t, tuple(sets)))
    return out


class Study(Strict):
    """The validated study. `blocks` holds each stage's effective block (the profile's
    `by_profile` entry applied; checked against the stage's model by runbook.loader, so
    errors name `<stage>.<field>`); `kinds` each stage's role (`md`, `check`, ...)."""

    schema_: Literal["study/1"] = Field(alias="schema")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    species: list[str] = Field(min_length=1)
    profile: str = "cpu"
    profiles: dict[str, Profile] = {"cpu": Profile()}
    stages: list[str] = Field(min_length=1)
    blocks: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    source: str = Field("", exclude=True)

    @property
    def active(self) -> Profile:
        return self.profiles[self.profile]


def resolve_path(study: str | Path) -> Path:
    """A study name (`smoke-li2o`) resolves to the shipped `runbook/studies/<name>.yaml`."""
    p = Path(study)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return shipped_dir() / f"{study}.yaml"


def shipped_dir() -> Path:
    return Path(__file__).resolve().parent / "studies"


def apply_overrides(
    doc: dict[str, Any], overrides: list[str], file: Path, profile: str | None = None
) -> dict[str, Any]:
    """`--set md.temperature_k=700`: the value is parsed as YAML, the path is dotted. The
    value holds under the active `profile`: the same field in the block's `by_profile`
    entry for it is dropped (the profile's value would otherwise replace it without a
    word); other profiles' entries stay as written (each must stay valid on its own)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError("--set", item, "expected dotted.key=value", "e.g. --set md.seed=2")
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise InputError(file, key, f"`{part}` is not a block of the study")
            node = node[part]
        node[parts[-1]] = io.parse_yaml(raw, "--set", key)
        _drop_profile_value(doc.get(parts[0]), profile, parts[1:])
    return doc


def _drop_profile_value(block: Any, profile: str | None, path: list[str]) -> None:
    """Remove `path` (dotted below the block) from the block's `by_profile` entry of
    `profile`."""
    over = block.get("by_profile") if isinstance(block, dict) and path else None
    node = over.get(profile) if isinstance(over, dict) else None
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def validation_error(e: ValidationError, file: Path | str, prefix: str = "") -> InputError:
    """The first pydantic error as one InputError: file, `prefix + dotted field`, the bad
    value and what is allowed."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "schema_") or "(top level)"
    if err["loc"] and err["loc"][0] == "schema_":
        loc = "schema"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict) else "a mapping"
    allowed = err.get("ctx", {}).get("expected") or ""
    fix = f"allowed: {allowed}" if allowed else ""
    msg = err["msg"].replace("Input should be", "should be").removeprefix("Value error, ")
    return InputError(file, prefix + loc, f"{msg} (got {shown})", fix)


def stage_config(cfg: Study, name: str, model: type[BaseModel]) -> BaseModel:
    """Validate one stage block against its model; errors name `<stage>.<field>`."""
    return validate_block(cfg.blocks.get(name, {}), model, cfg.source, name)


def validate_block(block: dict, model: type[BaseModel], file: Path | str, prefix: str):
    """A stage block (`kind` aside) as the stage's model; errors name `<prefix>.<field>`."""
    try:
        return model.model_validate({k: v for k, v in block.items() if k != "kind"})
    except ValidationError as e:
        raise validation_error(e, file, prefix=f"{prefix}.") from None
