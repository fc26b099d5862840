"""The one study loader: `bundle run` (local and Slurm), sweep planning and the Slurm jobs
read a study through here, and nothing runs or is submitted before all of it is valid.

    load_all(study, overrides, profile) -> Loaded     # the study, its sweep, every point
    load(study, overrides, profile)     -> Study      # the study alone (a point's file)

Checked, every error naming the user's file and the dotted field (InputError, exit 3):
- the study fields and every launcher of every profile (runbook.config);
- every stage name (a kind, built in or a plug-in) and every stage block against its
  stage's model, under every profile: each `by_profile: {<profile>: {...}}` entry merged
  over the block (`merged`: a mapping merges key by key, any other value replaces; an
  unknown profile name is an error, not ignored);
- the `sweep` block, every `sweep.set` field (it must name a field of a stage), and every
  point's study (the block with the point's seed and temperature set);
- a `loop` block (runbook.al.loop.LoopConfig: the labelling loop on a study that trains
  a committee): its fields and the stages it names; its stages are appended to the
  study's before anything else is checked (`expand_loop`).

The `Study` it returns holds each stage's effective block (the active profile's
`by_profile` entry applied) and each stage's kind; the engine records it in the run
folder (`study.json`), so what ran is what is written there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bundle.core import io
from bundle.core.errors import InputError
from runbook import stages
from runbook.config import (
    Study,
    SweepPoint,
    SweepSpec,
    apply_overrides,
    parse_sweep,
    resolve_path,
    shipped_dir,
    sweep_points,
    validate_block,
    validation_error,
)

TOP = ("schema", "name", "description", "species", "profile", "profiles", "stages")
BY_PROFILE = "by_profile"
LOOP = "loop"


@dataclass(frozen=True)
class Point:
    """A sweep point with its validated study and the document it was validated from."""

    point: SweepPoint
    study: Study
    doc: dict[str, Any]


@dataclass(frozen=True)
class Loaded:
    """A study file read and validated whole: `study` is the study itself (sweep block
    aside); with a sweep, `points` are its points (else empty)."""

    file: Path
    doc: dict[str, Any]  # the document as validated (overrides and profile applied)
    study: Study
    sweep: SweepSpec | None
    points: tuple[Point, ...]


def read(study: str | Path) -> tuple[Path, dict[str, Any]]:
    """The study's file and its document (a mapping)."""
    path = resolve_path(study)
    if not path.exists():
        shipped = sorted(p.stem for p in shipped_dir().glob("*.yaml"))
        raise InputError(path, "(file)", "no such study", f"shipped studies: {', '.join(shipped)}")
    return path, io.read_mapping(path)


def load(study: str | Path, overrides: list[str] | None = None, profile: str | None = None):
    """The validated study (a sweep block, if any, is validated too but not expanded)."""
    return load_all(study, overrides, profile).study


def load_all(
    study: str | Path, overrides: list[str] | None = None, profile: str | None = None
) -> Loaded:
    """Read and validate a study file whole: study, stage blocks, profiles, sweep, points."""
    path, doc = read(study)
    overrides = list(overrides or [])
    block = doc.pop("sweep", None)
    sweep_sets = [o for o in overrides if o.startswith("sweep.")]
    if sweep_sets:  # `--set sweep.temperatures_K=[600,700]` edits the sweep block itself
        block = apply_overrides({"sweep": dict(block or {})}, sweep_sets, path)["sweep"]
    spec = parse_sweep(block, path) if block is not None else None
    if profile:
        doc["profile"] = profile
    active = str(doc.get("profile") or "cpu")
    doc = apply_overrides(doc, [o for o in overrides if not o.startswith("sweep.")], path, active)
    doc = expand_loop(doc, path)
    if profile:
        doc["profile"] = profile  # a `--set profile=...` does not override --profile
    base = validate(doc, path)
    points: tuple[Point, ...] = ()
    if spec is not None:
        check_sweep_fields(spec, base, path)
        points = tuple(_point(p, doc, path) for p in sweep_points(spec))
    return Loaded(path, doc, base, spec, points)


def expand_loop(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A study with a `loop:` block (runbook.al.loop.LoopConfig): the labelling loop's
    stages appended to its own (select, label, dataset, train, committee, explore per
    iteration), so the loop is a study like any other (overrides reach `loop.*` first)."""
    if LOOP not in doc:
        return doc
    from runbook.al import loop

    doc = dict(doc)
    block = doc.pop(LOOP)
    if not isinstance(block, dict):
        raise InputError(path, LOOP, "expected a mapping (iterations, base_members, ...)")
    try:
        cfg = loop.LoopConfig.model_validate(block)
    except ValidationError as e:
        raise validation_error(e, path, f"{LOOP}.") from None
    for name in (cfg.base_dataset, cfg.dft, *cfg.base_members):
        if name not in doc.get("stages", []):
            raise InputError(path, LOOP, f"names stage {name!r}, not in `stages`")
    return loop.compose(doc, cfg)


def _point(p: SweepPoint, doc: dict[str, Any], path: Path) -> Point:
    d = apply_overrides(copy.deepcopy(doc), list(p.overrides), path, doc.get("profile"))
    try:
        return Point(p, validate(d, path), d)
    except InputError as e:
        raise InputError(e.file, e.field, f"{e.problem} (sweep point {p.name})", e.fix) from None


def validate(doc: dict[str, Any], path: Path) -> Study:
    """A study document (no sweep block) as a `Study`; every stage block checked."""
    doc = dict(doc)
    names = doc.get("stages") if isinstance(doc.get("stages"), list) else []
    for i, name in enumerate(names):  # names are keys of the document: strings first
        if not isinstance(name, str):
            raise InputError(
                path, f"stages.{i}", f"a stage name must be a string (got {_short(name)})",
                "list the stage names, e.g. [structure, dft]",
            )  # fmt: skip
    classes = {}
    for name in names:  # unknown stage names first: the likeliest typo
        block = doc.get(name) if isinstance(doc.get(name), dict) else {}
        classes[str(name)] = stages.stage_class(str(name), block, path)
    raw = {}
    for key in [k for k in doc if k not in TOP]:
        if key not in names:
            raise InputError(
                path,
                str(key),
                "neither a study field nor a stage listed in `stages`",
                f"study fields: {', '.join(sorted(TOP))}; stages: {', '.join(map(str, names))}",
            )
        block = doc.pop(key)
        if block is not None and not isinstance(block, dict):
            raise InputError(path, str(key), f"a stage block must be a mapping (got {block!r})")
        raw[key] = block or {}
    try:
        study = Study.model_validate({**doc, "source": str(path)})
    except ValidationError as e:
        raise validation_error(e, path) from None
    if study.profile not in study.profiles:
        raise InputError(
            path,
            "profile",
            f"unknown profile {study.profile!r}",
            f"allowed: {sorted(study.profiles)}",
        )
    if len(set(study.stages)) != len(study.stages):
        raise InputError(path, "stages", "a stage name appears twice", "give each stage a name")
    blocks = {
        n: effective_block(n, raw.get(n, {}), classes[n].Config, study, path) for n in study.stages
    }
    kinds = {n: classes[n].kind for n in study.stages}
    return study.model_copy(update={"blocks": blocks, "kinds": kinds})


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def effective_block(
    name: str, raw: dict[str, Any], model: type[BaseModel], study: Study, path: Path
) -> dict[str, Any]:
    """The stage's block under the study's profile; the block is validated under every
    profile (each `by_profile` entry merged over it), so a typo under a profile that is
    not the active one is found too."""
    block = dict(raw)
    over = block.pop(BY_PROFILE, None) or {}
    if not isinstance(over, dict):
        raise InputError(path, f"{name}.{BY_PROFILE}", "expected a mapping: profile -> fields")
    for prof, fields in over.items():
        where = f"{name}.{BY_PROFILE}.{prof}"
        if prof not in study.profiles:
            raise InputError(
                path, where, f"unknown profile {prof!r}", f"profiles: {', '.join(study.profiles)}"
            )
        if not isinstance(fields, dict) or "kind" in fields:
            raise InputError(path, where, "expected a mapping of the stage's fields (not kind)")
    if any(p not in over for p in study.profiles):
        validate_block(block, model, path, name)
    for prof, fields in over.items():
        _validate_merged(name, prof, block, fields, model, path)
    return merged(block, over.get(study.profile) or {})


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base` (neither is modified): where both hold a mapping the
    two merge key by key, so a profile names only the nested fields it changes; any other
    value (a number, a list) replaces the base's."""
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = merged(out[k], v) if both else v
    return out


def _validate_merged(name, prof, block, fields, model, path) -> None:
    try:
        model.model_validate({k: v for k, v in merged(block, fields).items() if k != "kind"})
    except ValidationError as e:
        first = e.errors()[0]["loc"]
        prefix = f"{name}.{BY_PROFILE}.{prof}." if first and first[0] in fields else f"{name}."
        err = validation_error(e, path, prefix=prefix)
        raise InputError(err.file, err.field, f"{err.problem} (profile {prof})", err.fix) from None


def check_sweep_fields(spec: SweepSpec, study: Study, path: Path) -> None:
    """Every `sweep.set` entry names a field of one of the study's stages."""
    for axis, fields in spec.fields().items():
        for dotted in fields:
            _check_field(dotted, f"sweep.set.{axis}", study, path)


def _check_field(dotted: str, where: str, study: Study, path: Path) -> None:
    stage, *parts = dotted.split(".")
    if stage not in study.stages or not parts:
        raise InputError(
            path,
            where,
            f"{dotted!r} does not name a field of a stage",
            f"write <stage>.<field>; stages: {', '.join(study.stages)}",
        )
    model: Any = stages.stage_class(stage, study.blocks[stage], path).Config
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            known = f"fields: {', '.join(fields)}" if fields else "it has no fields"
            what = ".".join([stage, *parts[:i]])
            raise InputError(path, where, f"{dotted!r}: {what} has no field {part!r}", known)
        model = fields[part].annotation


def from_record(doc: dict[str, Any]) -> Study:
    """The study recorded in a run folder (`study.json`)."""
    study = Study.model_validate(doc)
    if not study.kinds:  # recorded before kinds were recorded
        kinds = {
            n: stages.stage_class(n, study.blocks.get(n, {}), "study.json").kind
            for n in study.stages
        }
        study = study.model_copy(update={"kinds": kinds})
    return study
