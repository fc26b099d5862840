"""Study configuration: `runbook/studies/<name>.yaml` validated up front.

A study names its stages in order and gives each a config block under the same
name. A block may set `kind:` to reuse a stage type under another name (e.g. two
`md` stages); built-in kinds are in `runbook.stages.KINDS`, and a plug-in kind is
given as `package.module:ClassName`. Profiles (`cpu`, `h200`, ...) decide where each
stage runs (launchers) and which engine variant it uses (CPU `fix external` vs GPU
`pair_style allegro` + Kokkos). Every error names the file, the dotted field, the bad
value and what is allowed (bundle.core.errors.InputError, exit 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bundle.core import safeyaml
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


class Profile(Strict):
    """An executor profile: accelerator + per-stage launchers (`default` for the rest)."""

    accelerator: Literal["cpu", "cuda"] = "cpu"
    gpus: int = Field(0, ge=0)
    launchers: dict[str, LauncherSpec] = {}

    def launcher_for(self, stage: str) -> LauncherSpec:
        return self.launchers.get(stage) or self.launchers.get("default") or LauncherSpec()


class Study(Strict):
    """The validated study. `blocks` holds each stage's raw block; the stage's own
    pydantic model validates it (runbook.stages), so errors name `<stage>.<field>`."""

    schema_: Literal["study/1"] = Field(alias="schema")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    species: list[str] = Field(min_length=1)
    profile: str = "cpu"
    profiles: dict[str, Profile] = {"cpu": Profile()}
    stages: list[str] = Field(min_length=1)
    blocks: dict[str, dict[str, Any]] = {}
    source: str = Field("", exclude=True)

    @property
    def active(self) -> Profile:
        return self.profiles[self.profile]


def resolve_path(study: str | Path) -> Path:
    """A study name (`smoke-li2o`) resolves to the shipped `runbook/studies/<name>.yaml`."""
    p = Path(study)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return Path(__file__).resolve().parent / "studies" / f"{study}.yaml"


def apply_overrides(doc: dict[str, Any], overrides: list[str], file: Path) -> dict[str, Any]:
    """`--set md.temperature_k=700`: the value is parsed as YAML, the path is dotted."""
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
        node[parts[-1]] = safeyaml.loads(raw, "--set", field=key)
    return doc


def _error_from(e: ValidationError, file: Path, prefix: str = "") -> InputError:
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


def load(study: str | Path, overrides: list[str] | None = None, profile: str | None = None):
    """Read and validate a study file; return `Study` (stage blocks validated separately)."""
    from runbook import stages

    path = resolve_path(study)
    if not path.exists():
        shipped = sorted(p.stem for p in (Path(__file__).parent / "studies").glob("*.yaml"))
        raise InputError(path, "(file)", "no such study", f"shipped studies: {', '.join(shipped)}")
    doc = safeyaml.load(path)
    if not isinstance(doc, dict):
        raise InputError(path, "(top level)", "expected a mapping of study fields")
    doc.pop("sweep", None)  # a sweep's points are separate runs (runbook.sweep)
    overrides = [o for o in overrides or [] if not o.startswith("sweep.")]
    doc = apply_overrides(doc, overrides, path)
    if profile:
        doc["profile"] = profile
    top = {"schema", "name", "description", "species", "profile", "profiles", "stages"}
    names = doc.get("stages") if isinstance(doc.get("stages"), list) else []
    for name in names:  # unknown stage names first: the likeliest typo
        block = doc.get(name) if isinstance(doc.get(name), dict) else {}
        stages.stage_class(str(name), block, path)
    blocks = {}
    for key in list(doc):
        if key in top:
            continue
        if key not in names:
            raise InputError(
                path,
                str(key),
                "neither a study field nor a stage listed in `stages`",
                f"study fields: {', '.join(sorted(top))}; stages: {', '.join(map(str, names))}",
            )
        block = doc.pop(key)
        if block is not None and not isinstance(block, dict):
            raise InputError(path, str(key), f"a stage block must be a mapping (got {block!r})")
        blocks[key] = block or {}
    try:
        cfg = Study.model_validate({**doc, "blocks": blocks, "source": str(path)})
    except ValidationError as e:
        raise _error_from(e, path) from None
    if cfg.profile not in cfg.profiles:
        raise InputError(
            path, "profile", f"unknown profile {cfg.profile!r}", f"allowed: {sorted(cfg.profiles)}"
        )
    if len(set(cfg.stages)) != len(cfg.stages):
        raise InputError(path, "stages", "a stage name appears twice", "give each stage a name")
    for name in cfg.stages:
        stages.stage_class(name, blocks.get(name, {}), path)  # unknown kinds fail here
    return cfg


def stage_config(cfg: Study, name: str, model: type[BaseModel]) -> BaseModel:
    """Validate one stage block against its model; errors name `<stage>.<field>`."""
    block = {k: v for k, v in cfg.blocks.get(name, {}).items() if k != "kind"}
    try:
        return model.model_validate(block)
    except ValidationError as e:
        raise _error_from(e, Path(cfg.source), prefix=f"{name}.") from None
