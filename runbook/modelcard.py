"""The model manifest (`model_manifest.json`) and the units / type-map guard.

NequIP/Allegro models carry no units: a model trained on eV/Å data and run under
LAMMPS `units real` (kcal/mol) is silently wrong by a factor of 23. `train` therefore
writes a manifest with the units of its data, the model's type names, r_max and the
data provenance; `deploy` copies it beside the compiled model; `md` refuses to run when
the LAMMPS `units` or the LAMMPS type → species mapping disagree with it, naming both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bundle.core import io
from bundle.core.errors import InputError

SCHEMA = "model-manifest/1"
FILENAME = "model_manifest.json"

# What the data pipeline produces (runbook.qe converts at the parser): LAMMPS `metal`.
DATA_UNITS = {
    "energy": "eV",
    "length": "Angstrom",
    "force": "eV/Angstrom",
    "stress": "eV/Angstrom^3",
    "lammps_units": "metal",
}


class Units(BaseModel):
    model_config = ConfigDict(extra="forbid")
    energy: str
    length: str
    force: str
    stress: str
    lammps_units: str


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_: str = "model-manifest/1"
    backend: str = "allegro"  # allegro (nequip) | deepmd (DeePMD-kit): which MD path runs it
    units: Units
    type_names: list[str]
    r_max_angstrom: float
    model_dtype: str = "float64"
    data: dict[str, Any] = {}
    training: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}


def write(path: Path, manifest: ModelManifest) -> Path:
    doc = manifest.model_dump(mode="json")
    doc["schema"] = doc.pop("schema_")
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def load(path: Path) -> ModelManifest:
    doc = io.read_mapping(
        path,
        missing="the model has no manifest beside it",
        fix="deploy models with `bundle run` (its train stage writes model_manifest.json)",
    )
    if doc.get("schema") != SCHEMA:
        raise InputError(path, "schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r}")
    doc["schema_"] = doc.pop("schema")
    try:
        return ModelManifest.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(path, ".".join(map(str, err["loc"])), err["msg"]) from None


def guard(
    manifest: ModelManifest,
    manifest_path: Path | str,
    lammps_units: str,
    type_map: dict[int, str],
    source: Path | str,
    field: str,
    backend: str | None = None,
) -> None:
    """Refuse a LAMMPS `units` or type mapping that disagrees with the model manifest, or
    (when `backend` is given) a model of another backend than the MD path expects.
    `source`/`field` name where the LAMMPS side was configured (study file, md block)."""
    if backend is not None and manifest.backend != backend:
        raise InputError(
            source,
            f"{field}.model",
            f"the model {manifest_path} is a {manifest.backend} model, not {backend}",
            f"give a {backend} model, or run this one with potential: "
            + ("deepmd" if manifest.backend == "deepmd" else "model"),
        )
    want = manifest.units.lammps_units
    if lammps_units != want:
        raise InputError(
            source,
            f"{field}.units",
            f"LAMMPS units {lammps_units!r} but the model {manifest_path} was trained in "
            f"{manifest.units.energy} and {manifest.units.length} (LAMMPS {want!r})",
            f"set {field}.units: {want}",
        )
    unknown = {t: s for t, s in type_map.items() if s not in manifest.type_names}
    if unknown:
        shown = ", ".join(f"{t}:{s}" for t, s in sorted(unknown.items()))
        raise InputError(
            source,
            f"{field}.type_map",
            f"LAMMPS types {shown} name species the model {manifest_path} does not know "
            f"(model type names: {', '.join(manifest.type_names)})",
            "map each LAMMPS type to one of the model's type names",
        )
    types = sorted(type_map)
    if types != list(range(1, len(types) + 1)):
        raise InputError(
            source, f"{field}.type_map", f"LAMMPS types must be 1..N without gaps (got {types})"
        )


def guard_species(
    manifest: ModelManifest,
    manifest_path: Path | str,
    species: list[str],
    data: str,
    source: Path | str,
    field: str,
) -> None:
    """Refuse a model that does not know every species of a data file, naming both lists
    (`data` says which data file, or which stage will write it)."""
    unknown = [s for s in species if s not in manifest.type_names]
    if unknown:
        raise InputError(
            source,
            field,
            f"the model {manifest_path} knows {', '.join(manifest.type_names)} but the data "
            f"file {data} holds {', '.join(species)} ({', '.join(unknown)} unknown to the model)",
            "run a model trained with these species, or build without them",
        )


def guard_units(
    manifest: ModelManifest, manifest_path: Path | str, source: Path | str, field: str
) -> None:
    """Refuse a model whose units are not LAMMPS `metal`, which every LAMMPS input of the
    study uses (eV, Å), naming both."""
    if manifest.units.lammps_units != DATA_UNITS["lammps_units"]:
        u = manifest.units
        raise InputError(
            source,
            field,
            f"the model {manifest_path} was trained in {u.energy} and {u.length} (LAMMPS "
            f"{u.lammps_units!r}) but the study runs LAMMPS units 'metal' (eV, Angstrom)",
            "give a model trained on eV/Angstrom data (what the DFT pipeline writes)",
        )
