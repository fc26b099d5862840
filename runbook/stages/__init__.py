"""The stage kinds and how a study's stage names map to them (the registry).

A study lists stage *names*; a name's block may set `kind:` (default: the name itself).
Built-in kinds are below; a plug-in kind is `package.module:ClassName` (a subclass of
runbook.stage.Stage), e.g. the LLZO study's stages in `runbook.llzo.stages`. The loader
(runbook.loader) resolves every name when it reads the study; the engine builds them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from bundle.core.errors import InputError
from runbook.config import Study, stage_config
from runbook.stage import Stage
from runbook.stages.analyze import Analyze, Check
from runbook.stages.dataset import Dataset
from runbook.stages.deploy import Deploy
from runbook.stages.dft import Dft
from runbook.stages.md import Md
from runbook.stages.report import Report
from runbook.stages.structure import Structure
from runbook.stages.train import Train
from runbook.stages.train_deepmd import TrainDeepmd

KINDS: dict[str, type[Stage]] = {
    cls.kind: cls
    for cls in (Structure, Dft, Dataset, Train, TrainDeepmd, Deploy, Md, Analyze, Check, Report)
}


def _kind(name: str, block: dict) -> str:
    return str(block.get("kind", name)) if isinstance(block, dict) else name


def stage_class(name: str, block: dict, source: Path | str) -> type[Stage]:
    """The class of stage `name` whose study block is `block`; errors name `source`."""
    kind = _kind(name, block)
    if kind in KINDS:
        return KINDS[kind]
    if ":" in kind:
        mod, _, cls = kind.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise InputError(source, f"{name}.kind", f"cannot load {kind!r} ({e})") from None
        if isinstance(obj, type) and issubclass(obj, Stage):
            return obj
        raise InputError(source, f"{name}.kind", f"{kind!r} is not a runbook Stage")
    field = f"{name}.kind" if isinstance(block, dict) and "kind" in block else "stages"
    raise InputError(
        source,
        field,
        f"unknown stage {kind!r}",
        f"allowed: {', '.join(KINDS)} (or a plug-in `package.module:Class`)",
    )


def build(study: Study, name: str) -> Stage:
    """Stage `name` of a loaded study, with its validated configuration."""
    cls = stage_class(name, study.blocks.get(name, {}), study.source)
    return cls(name, stage_config(study, name, cls.Config))
