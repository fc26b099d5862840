"""The loop's stages for N iterations, appended to a study that already trains a
committee (iteration 0: its `dataset` stage and the `train_deepmd` stages named in
`base_members`), and the per-iteration summary.

Stage names: `explore_0` (MD with iteration 0's committee), then per iteration k:
`select_k`, `label_k`, `dataset_k`, `train_k_<m>` (one per member, the member's seed),
`committee_k`, `explore_k`. Each iteration's manifest of added frames is
`NN_dataset_k/added.json`; its committee's is `NN_committee_k/committee.json`.
"""

from __future__ import annotations

import copy

from pydantic import Field

from bundle.core.errors import InputError
from runbook.al.dataset import GrownDataset
from runbook.al.select import Explored, SelectResult
from runbook.config import Strict

SELECT = "runbook.al.select:Select"
LABEL = "runbook.al.label:Label"
GROW = "runbook.al.dataset:Grow"
COMMITTEE = "runbook.deepmd.committee:Committee"


class LoopConfig(Strict):
    iterations: int = Field(ge=1)
    base_dataset: str = "dataset"
    base_members: list[str] = Field(min_length=3, description="iteration 0's train_deepmd stages")
    dft: str = Field("dft", description="the dft stage whose block the labels use")
    explore: dict = Field(description="md block of every exploration (committee filled in)")
    select: dict = Field(description="select block (md filled in): max_frames, ...")
    train_overrides: dict = Field({}, description="fields changed in the members' blocks")


def blocks(doc: dict, cfg: LoopConfig) -> dict[str, dict]:
    """{stage name: block} of the loop's stages, in order, for the study `doc`."""
    out = {"explore_0": _explore(cfg, cfg.base_members)}
    dataset, explore = cfg.base_dataset, "explore_0"
    for k in range(1, cfg.iterations + 1):
        members = [f"train_{k}_{chr(ord('a') + m)}" for m in range(len(cfg.base_members))]
        out[f"select_{k}"] = {"kind": SELECT, **cfg.select, "md": explore}
        out[f"label_{k}"] = {"kind": LABEL, **copy.deepcopy(doc[cfg.dft])}
        out[f"dataset_{k}"] = {
            "kind": GROW,
            "base": dataset,
            "labels": f"label_{k}",
            "iteration": k,
        }
        for name, base in zip(members, cfg.base_members, strict=True):
            block = {k2: v for k2, v in copy.deepcopy(doc[base]).items() if k2 != "kind"}
            out[name] = {**block, **cfg.train_overrides, "kind": "train_deepmd",
                         "dataset": f"dataset_{k}", "seed": doc[base]["seed"]}  # fmt: skip
        out[f"committee_{k}"] = {"kind": COMMITTEE, "members": members}
        out[f"explore_{k}"] = _explore(cfg, members)
        dataset, explore = f"dataset_{k}", f"explore_{k}"
    return out


def _explore(cfg: LoopConfig, members: list[str]) -> dict:
    block = copy.deepcopy(cfg.explore)
    dp = {**block.get("deepmd", {}), "stage": members[0], "committee": members[1:]}
    return {**block, "kind": "md", "potential": "deepmd", "deepmd": dp}


def launchers(doc: dict, names: list[str], cfg: LoopConfig) -> dict[str, dict]:
    """Launchers of the loop's stages under each profile: labels as the dft stage,
    members as the first base member, the rest the profile's default."""
    out = {}
    for prof, spec in doc.get("profiles", {}).items():
        la = spec.get("launchers", {})
        add = {}
        for n in names:
            like = cfg.dft if n.startswith("label_") else cfg.base_members[0]
            if (n.startswith(("label_", "train_"))) and like in la:
                add[n] = la[like]
        out[prof] = add
    return out


def compose(doc: dict, cfg: LoopConfig) -> dict:
    """The study `doc` with the loop's stages appended (a new dict)."""
    doc = copy.deepcopy(doc)
    new = blocks(doc, cfg)
    doc["stages"] = [*doc["stages"], *new]
    doc.update(new)
    for prof, add in launchers(doc, list(new), cfg).items():
        doc["profiles"][prof].setdefault("launchers", {}).update(add)
    return doc


def summary(ctx, iterations: int) -> list[dict]:
    """Per exploration (iteration 0..N): trust levels overall and per region, and what
    the next selection took; a loop that converged (select_k's stop_reason) ends its rows
    with that reason. `ctx`: the run's runbook.stage.Context."""
    rows = []
    for k in range(iterations + 1):
        if k >= 1:
            why = ctx.result(f"select_{k}", SelectResult).stop_reason
            if why:
                rows[-1]["stop_reason"] = why
                break
        dev = ctx.result(f"explore_{k}", Explored).deviation
        if dev is None:
            raise InputError(ctx.study.source, f"explore_{k}", "that MD has no committee record")
        row = {"iteration": k, "explore": f"explore_{k}", "frames": dev["frames"]}
        row["regions"] = {n: r["atom_frames"] for n, r in dev["regions"].items()}
        if k >= 1:
            row["added"] = ctx.result(f"dataset_{k}", GrownDataset).n_added
        rows.append(row)
    return rows


def band_candidate_fraction(row: dict) -> float:
    """The boundary band's candidate fraction of atom-frames (else of all atom-frames)."""
    regions = row["regions"]
    return float((regions.get("boundary") or regions.get("all"))["candidate"])


__all__ = ["LoopConfig", "blocks", "compose", "summary", "band_candidate_fraction"]
