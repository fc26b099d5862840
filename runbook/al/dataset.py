"""Stage `al_dataset` (plug-in `runbook.al.dataset:Grow`, kind `dataset`): the previous
dataset plus the frames an iteration labelled, as the next committee's training data.

New labels go into the training split; the validation and test splits are the previous
ones unchanged (errors stay comparable across iterations). `added.json` is the
iteration's manifest: which frames it added (the MD stage and step they came from, their
committee deviation, the label stage and pw.x output, a SHA-256 of each frame's labels),
which it excluded (SCF not converged) and the dataset it grew from (stage, output hash).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.io import read, write
from pydantic import Field

from bundle.core.errors import InputError
from runbook.al.label import LabelResult
from runbook.config import Strict
from runbook.files import write_commands, write_json_atomic, write_params
from runbook.stage import Context, Stage
from runbook.stages.dataset import GROWN, DatasetSplit

SPLITS = ("train", "val", "test")


class GrowConfig(Strict):
    base: str = Field(description="the dataset stage to grow (the previous iteration's)")
    labels: str = Field(description="the al_label stage whose frames are added")
    iteration: int = Field(ge=1)


@dataclass(frozen=True)
class GrownDataset:
    """The grown dataset: its split counts (what a training reads, DatasetSplit), the
    loop iteration, the frames added and excluded, and the file that lists them."""

    split: dict[str, int]
    iteration: int
    n_added: int
    n_excluded: int
    manifest: str


class Grow(Stage):
    kind = "dataset"
    Config = GrowConfig
    tools = ("ase", "numpy")

    @property
    def c(self) -> GrowConfig:
        return self.cfg  # type: ignore[return-value]

    def preflight(self, ctx: Context) -> None:
        stages = ctx.study.stages
        for f, want in (("base", "dataset"), ("labels", "dft")):
            name = getattr(self.c, f)
            if name not in stages or stages.index(name) > stages.index(self.name):
                raise InputError(
                    ctx.study.source, f"{self.name}.{f}", f"{name!r} is no stage before"
                )
            if ctx.kind_of(name) != want:
                raise InputError(ctx.study.source, f"{self.name}.{f}", f"{name!r} is not {want}")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        p = {**self.c.model_dump(mode="json"),
             "base_files": [ctx.rel(self.c.base, f"{s}.extxyz") for s in SPLITS],
             "labels_file": ctx.rel(self.c.labels, "dft.extxyz")}  # fmt: skip
        return [write_params(stage_dir, "grow.json", p), write_commands(stage_dir, [])]

    def collect(self, ctx: Context, stage_dir: Path) -> GrownDataset:
        base, lab = ctx.dir_of(self.c.base), ctx.result(self.c.labels, LabelResult)
        split = ctx.result(self.c.base, DatasetSplit).split
        frames = {s: read(base / f"{s}.extxyz", index=":") if split.get(s) else [] for s in SPLITS}
        new = read(ctx.dir_of(self.c.labels) / lab.file, index=":") if lab.n_frames else []
        for a in new:
            a.info["al_iteration"] = self.c.iteration  # base frames carry none: iteration 0
        added = [self._entry(a) for a in new]
        frames["train"] = [*frames["train"], *new]
        for s in SPLITS:
            if frames[s]:
                write(stage_dir / f"{s}.extxyz", frames[s], format="extxyz")
        doc = {
            "iteration": self.c.iteration,
            "grown_from": {"stage": self.c.base,
                           "output_hash": ctx.manifest(self.c.base)["output_hash"]},
            "label_stage": self.c.labels, "added": added, "excluded": lab.excluded,
            "computed": len(lab.computed), "reused": len(lab.reused),
        }  # fmt: skip
        write_json_atomic(stage_dir / GROWN, doc)
        return GrownDataset(split={s: len(frames[s]) for s in SPLITS},
                            iteration=self.c.iteration, n_added=len(added),
                            n_excluded=len(lab.excluded), manifest=GROWN)  # fmt: skip

    def _entry(self, a) -> dict:
        h = hashlib.sha256()
        for arr in (a.get_positions(), a.get_forces(), np.array([a.get_potential_energy()])):
            h.update(np.ascontiguousarray(arr, float).tobytes())
        info = {k: v.item() if isinstance(v, np.generic) else v for k, v in a.info.items()}
        return {
            "source_stage": info.get("source_stage"), "step": info.get("step"),
            "max_devi_f_ev_a": info.get("max_devi_f_ev_a"), "label_stage": self.c.labels,
            "pw_output": info.get("source"), "n_atoms": len(a),
            "energy_ev": float(a.get_potential_energy()), "labels_sha256": h.hexdigest(),
        }  # fmt: skip
