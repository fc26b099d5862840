"""The ML potential a study runs on, named once by its profile (`profiles.<p>.model`,
runbook.config.ModelRef) and resolved here:

    resolve(study) -> Resolved | None      # None: the profile runs the classical baseline

- `run: <folder>`: a potential study's run folder. Its last `deploy` stage (found by kind,
  from the stage manifests; a stage never run counts by its name or block kind) must be
  complete and hold model_manifest.json; it gives the packaged model (model.nequip.zip),
  the compiled one (model.nequip.pt2, the ASE target on cpu) and the validation verdict
  of a complete later stage that wrote validation.json (the potential's validate stage).
- `file: <model>`: a packaged `.nequip.zip` (one installed in the bundle's `models/`) or a
  compiled `.nequip.pt2`, with its manifest beside it: `<name>.model_manifest.json` (several
  models share `models/`) or else model_manifest.json.

A bad reference is one InputError naming the study file and the field
(`profiles.<p>.model.run` / `.file`): no such run, no complete deploy stage, no manifest.
`provenance` is what a model-driven stage records of the file it loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bundle.core.errors import InputError
from runbook import modelcard
from runbook.config import Study
from runbook.files import read_manifest, sha256_file
from runbook.stages.deploy import COMPILED, PACKAGED

VALIDATION = "validation.json"


@dataclass(frozen=True)
class Resolved:
    """A resolved model reference; `field` is where the study names it."""

    field: str
    where: Path  # the run folder or the model file
    packaged: Path | None
    compiled: Path | None  # a compiled model for the ASE target (the cpu `fix external`)
    manifest_path: Path
    manifest: modelcard.ModelManifest
    verdict: str | None = None  # the potential run's validation verdict, if any
    validation: Path | None = None


def resolve(study: Study) -> Resolved | None:
    """The active profile's model (module docstring); None without one."""
    ref = study.active.model
    if ref is None:
        return None
    field = f"profiles.{study.profile}.model"
    if ref.run is not None:
        return _from_run(Path(ref.run), study.source, f"{field}.run")
    return _from_file(Path(str(ref.file)), study.source, f"{field}.file")


def _stage_dirs(run: Path, source: str, field: str) -> list[tuple[str, str, Path, dict | None]]:
    """(name, kind, folder, manifest) of each stage the run's study.json lists."""
    try:
        doc = json.loads((run / "study.json").read_text())
    except (OSError, ValueError):
        raise InputError(source, field, f"no such run: {run} (no readable study.json)",
                         "give the --run-dir of a potential study's run") from None  # fmt: skip
    out = []
    blocks = doc.get("blocks") or {}
    for i, name in enumerate(doc.get("stages") or [], 1):
        d = run / f"{i:02d}_{name}"
        m = read_manifest(d)
        kind = (m or {}).get("kind") or (blocks.get(name) or {}).get("kind") or name
        out.append((name, kind, d, m))
    return out


def _from_run(run: Path, source: str, field: str) -> Resolved:
    stages = _stage_dirs(run, source, field)
    deploys = [s for s in stages if s[1] == "deploy"]
    if not deploys:
        raise InputError(source, field, f"the run {run} has no deploy stage",
                         "name the run of a potential study (it ends in deploy)")  # fmt: skip
    name, _, d, m = deploys[-1]
    if not m or m.get("status") != "complete":
        raise InputError(source, field, f"the run {run} has no complete deploy stage "
                         f"({d.name} is {(m or {}).get('status', 'not run')})",
                         "finish the potential run first (bundle run --run-dir it)")  # fmt: skip
    card = d / modelcard.FILENAME
    if not card.is_file():
        raise InputError(source, field, f"the deploy stage {d} has no {modelcard.FILENAME}",
                         "redo the deploy stage (--force deploy)")  # fmt: skip
    verdict, vpath = None, None
    after = stages[[s[0] for s in stages].index(name) + 1 :]
    for _, _, sd, sm in after:
        if sm and sm.get("status") == "complete" and (sd / VALIDATION).is_file():
            doc = json.loads((sd / VALIDATION).read_text())
            if _validates(sd, d, doc):  # not another model's (the DeePMD one of the run)
                vpath, verdict = sd / VALIDATION, doc.get("verdict")
    return Resolved(
        field, run, d / PACKAGED if (d / PACKAGED).is_file() else None,
        d / COMPILED if (d / COMPILED).is_file() else None, card,
        _load(card, source, field), verdict, vpath,
    )  # fmt: skip


def _validates(stage_dir: Path, deploy: Path, doc: dict) -> bool:
    """Whether a validation record is of the deploy stage's model (its `model` path, relative
    to the validate stage, lies in the deploy folder; a record naming none is taken)."""
    model = doc.get("model")
    return model is None or (stage_dir / model).resolve().parent == deploy.resolve()


def own_manifest(model: Path) -> Path:
    """`<name>.model_manifest.json` for `<name>.nequip.zip` (several models share a folder)."""
    return model.parent / f"{model.name.split('.')[0]}.{modelcard.FILENAME}"


def manifest_beside(model: Path) -> Path | None:
    """The model's own manifest, else the folder's `model_manifest.json`, else None."""
    for card in (own_manifest(model), model.parent / modelcard.FILENAME):
        if card.is_file():
            return card
    return None


def _from_file(model: Path, source: str, field: str) -> Resolved:
    if not model.is_file():
        raise InputError(source, field, f"no such model file: {model}",
                         "give a packaged .nequip.zip or compiled .nequip.pt2 model")  # fmt: skip
    card = manifest_beside(model)
    if card is None:
        raise InputError(source, field, f"the model {model} has no {own_manifest(model).name} "
                         f"or {modelcard.FILENAME} beside it",
                         "ship the deploy stage's manifest beside it")  # fmt: skip
    packaged = model if model.name.endswith(".zip") else None
    compiled = model if packaged is None else None
    return Resolved(field, model, packaged, compiled, card, _load(card, source, field))


def _load(card: Path, source: str, field: str) -> modelcard.ModelManifest:
    try:
        return modelcard.load(card)
    except InputError as e:
        raise InputError(source, field, f"{card}: {e.field}: {e.problem}") from None


def provenance(r: Resolved, loaded: Path) -> dict:
    """What a model-driven stage records: the file it loads and that file's SHA-256, the
    model manifest's dataset hash, where the reference points and the validation verdict."""
    return {
        "file": str(loaded),
        "sha256": sha256_file(loaded),
        "dataset_hash": r.manifest.data.get("dataset_output_hash"),
        "manifest": str(r.manifest_path),
        "reference": str(r.where),
        "type_names": list(r.manifest.type_names),
        "units": r.manifest.units.lammps_units,
        "validation_verdict": r.verdict,
        "validation": str(r.validation) if r.validation else None,
    }
