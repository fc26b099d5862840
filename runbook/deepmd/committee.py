"""Stage `committee` (plug-in `runbook.deepmd.committee:Committee`): the frozen DeePMD
models of N >= `min_members` `train_deepmd` stages packaged together with one manifest.

The stage folder holds `model-<k>.pb` (copies of the members' frozen models, so the
committee travels as one folder) and `committee.json` (schema `deepmd-committee/1`):
per member its stage, model file, sha256, seed, dp-test errors; the dataset stage and
its output hash they share; the architecture they share. A committee whose members were
trained on different datasets, with different hyperparameters other than the seed, with
a repeated seed or the same model bytes is refused: it would not measure what it claims
(the spread of one architecture over initialisations and data orders; the seed sets
both).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from bundle.core.errors import InputError
from runbook import modelcard
from runbook.config import Strict
from runbook.deepmd.md import TrainedModel
from runbook.files import sha256_file, write_commands, write_json_atomic, write_params
from runbook.stage import Context, Stage

SCHEMA = "deepmd-committee/1"
FILENAME = "committee.json"


class CommitteeConfig(Strict):
    members: list[str] = Field(min_length=2, description="train_deepmd stages, in order")
    min_members: int = Field(3, ge=2, description="refuse a smaller committee")


@dataclass(frozen=True)
class CommitteeResult:
    manifest: str  # committee.json
    n_members: int
    models: list[str]  # model-K.pb in this stage's folder, member order
    dataset_output_hash: str


class Committee(Stage):
    kind = "committee"
    Config = CommitteeConfig
    tools = ("deepmd-kit",)

    @property
    def c(self) -> CommitteeConfig:
        return self.cfg  # type: ignore[return-value]

    def preflight(self, ctx: Context) -> None:
        src, stages = ctx.study.source, ctx.study.stages
        if len(self.c.members) < self.c.min_members:
            raise InputError(
                src, f"{self.name}.members", f"{len(self.c.members)} members, "
                f"fewer than min_members = {self.c.min_members}", "add train_deepmd stages",
            )  # fmt: skip
        if len(set(self.c.members)) != len(self.c.members):
            raise InputError(src, f"{self.name}.members", "a member is listed twice")
        for k, m in enumerate(self.c.members):
            if m not in stages or stages.index(m) > stages.index(self.name):
                raise InputError(src, f"{self.name}.members.{k}", f"{m!r} is no stage before")
            if ctx.kind_of(m) != "train_deepmd":
                raise InputError(src, f"{self.name}.members.{k}", f"{m!r} is not train_deepmd")

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        models = [ctx.rel(m, ctx.result(m, TrainedModel).model) for m in self.c.members]
        params = {"members": models}
        return [write_params(stage_dir, "committee-params.json", params),
                write_commands(stage_dir, [])]  # fmt: skip

    def collect(self, ctx: Context, stage_dir: Path) -> CommitteeResult:
        cards = [modelcard.load(ctx.dir_of(m) / modelcard.FILENAME) for m in self.c.members]
        self._check_same(ctx, cards)
        members = []
        for k, (m, card) in enumerate(zip(self.c.members, cards, strict=True)):
            src = ctx.dir_of(m) / card.artifacts["model"]
            dst = stage_dir / f"model-{k}{src.suffix}"
            shutil.copyfile(src, dst)
            digest = sha256_file(dst)
            if digest != card.artifacts["model_sha256"]:
                raise InputError(src, "model_sha256", "the model differs from its manifest")
            members.append({
                "stage": m, "model": dst.name, "model_sha256": digest,
                "seed": card.training["hyperparameters"]["seed"],
                "test_metrics": card.training.get("test_metrics"),
            })  # fmt: skip
        doc = committee_doc(cards[0], members)
        write_json_atomic(stage_dir / FILENAME, doc)
        return CommitteeResult(manifest=FILENAME, n_members=len(members),
                               models=[m["model"] for m in members],
                               dataset_output_hash=doc["dataset"]["output_hash"])  # fmt: skip

    def _check_same(self, ctx: Context, cards: list) -> None:
        src = ctx.study.source
        first = _hyper(cards[0])
        for k, card in enumerate(cards):
            if card.data["dataset_output_hash"] != cards[0].data["dataset_output_hash"]:
                raise InputError(
                    src, f"{self.name}.members.{k}", "trained on another dataset than member 0"
                )
            if _hyper(card) != first:
                raise InputError(
                    src, f"{self.name}.members.{k}", "hyperparameters other than the seed "
                    "differ from member 0's", "a committee is one architecture, N seeds",
                )  # fmt: skip
        seeds = [c.training["hyperparameters"]["seed"] for c in cards]
        digests = [c.artifacts["model_sha256"] for c in cards]
        if len(set(seeds)) != len(seeds) or len(set(digests)) != len(digests):
            raise InputError(src, f"{self.name}.members", f"repeated seed or model ({seeds})")


def _hyper(card) -> dict:
    return {k: v for k, v in card.training["hyperparameters"].items() if k != "seed"}


def committee_doc(card, members: list[dict]) -> dict:
    """The committee manifest: what the members share, then each member."""
    return {
        "schema": SCHEMA,
        "backend": card.backend,
        "units": card.units.model_dump(mode="json"),
        "type_names": card.type_names,
        "r_max_angstrom": card.r_max_angstrom,
        "architecture": card.training["architecture"],
        "hyperparameters_except_seed": _hyper(card),
        "dataset": {
            "stage": card.data["dataset_stage"],
            "output_hash": card.data["dataset_output_hash"],
            "split": card.data["split"],
            "dft_output_hash": card.data["dft_output_hash"],
            "pseudopotentials_sha256": card.data["pseudopotentials_sha256"],
        },
        "members": members,
    }


def load(path: Path) -> dict:
    """A committee manifest (its folder or the file), checked against its model files."""
    path = Path(path)
    path = path / FILENAME if path.is_dir() else path
    doc = _read_json(path)
    if doc.get("schema") != SCHEMA:
        raise InputError(path, "schema", f"not a {SCHEMA} file")
    for k, m in enumerate(doc["members"]):
        model = path.parent / m["model"]
        if not model.is_file() or sha256_file(model) != m["model_sha256"]:
            raise InputError(path, f"members.{k}.model", f"{model} missing or modified")
    return doc


def model_files(doc_path: Path) -> list[Path]:
    path = Path(doc_path)
    folder = path if path.is_dir() else path.parent
    return [folder / m["model"] for m in load(path)["members"]]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(path, "(file)", f"unreadable committee manifest ({e})") from None
