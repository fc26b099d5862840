"""Stage `train_deepmd`: a DeePMD-kit model (se_e2_a descriptor, energy fitting) trained
on the same dataset split as the Allegro `train` stage, frozen, and tested on the
held-out frames.

One command, `python -m runbook.steps.deepmd_steps deepmd_steps.json` (log `deepmd.log`,
per-step wall/CPU seconds in `timings.json`), runs these steps in one Python process so
TensorFlow and deepmd-kit are imported once (runbook.steps.deepmd_steps), each step with its
own log:
1. `deepmd_data` (runbook.steps.deepmd_data, data.log): the dataset stage's extxyz ->
   deepmd/npy systems under data/{train,val,test}/ (runbook.deepmd.npy; type_map = study
   species);
2. `dp --tf train input.json` (train.log; input.json rendered from
   templates/deepmd/input.json.j2, every number from the study block) for `numb_steps`
   steps;
3. `dp --tf freeze -o model.pb` (freeze.log);
4. `dp --tf test -m model.pb -s data/test` (test.log; the validation split when there is
   no test split), parsed by runbook.deepmd.logs.
The `dp` steps call deepmd-kit's own command-line entry point (`deepmd.main.main`).

Backend: TensorFlow on CPU (deepmd-kit's PyPI wheel; its PyTorch backend is built for
another torch than the lock's). On a CUDA profile the same input trains with `dp --pt`
and freezes to `model.pth` (the h200 image builds DeePMD-kit's PyTorch backend against
its own torch; containers/stack.lock.yaml, flavors.h200.deepmd).

Writes `model_manifest.json` (runbook.modelcard, backend `deepmd`): units, type names,
r_max = rcut, the data provenance and the test errors; `md` with `potential: deepmd`
checks it before running.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import Field

from bundle.core import lock, render
from bundle.core.errors import EngineError, InputError
from runbook import modelcard
from runbook.config import Strict
from runbook.deepmd import logs
from runbook.files import sha256_file, write_commands, write_params
from runbook.launchers import Command
from runbook.stage import Context, Stage
from runbook.stages.dataset import DatasetSplit, data_provenance

BACKENDS = {"cpu": ("tf", "model.pb"), "cuda": ("pt", "model.pth")}
STEPS = "deepmd_steps.json"  # runbook.steps.deepmd_steps


class Descriptor(Strict):
    type: Literal["se_e2_a"] = "se_e2_a"
    rcut_angstrom: float = Field(gt=0)
    rcut_smth_angstrom: float = Field(ge=0, description="where the smooth switch-off starts")
    sel: dict[str, int] = Field(description="max neighbours of each species within rcut")
    neuron: list[int] = Field(min_length=1, description="embedding net widths")
    axis_neuron: int = Field(ge=1)
    resnet_dt: bool = False
    type_one_side: bool = False


class Fitting(Strict):
    neuron: list[int] = Field(min_length=1)
    resnet_dt: bool = True


class Loss(Strict):
    """DeePMD's prefactors: each goes from `start_` to `limit_` as the learning rate decays."""

    start_pref_e: float = Field(ge=0)
    limit_pref_e: float = Field(ge=0)
    start_pref_f: float = Field(ge=0)
    limit_pref_f: float = Field(ge=0)
    start_pref_v: float = Field(ge=0)
    limit_pref_v: float = Field(ge=0)


class LearningRate(Strict):
    """Exponential decay from `start` to `stop` every `decay_steps` steps."""

    start: float = Field(gt=0)
    stop: float = Field(gt=0)
    decay_steps: int = Field(ge=1)


class TrainDeepmdConfig(Strict):
    descriptor: Descriptor
    fitting_net: Fitting
    loss: Loss
    learning_rate: LearningRate
    numb_steps: int = Field(ge=1)
    batch_size: int | Literal["auto"] = "auto"
    disp_freq: int = Field(ge=1)
    save_freq: int = Field(ge=1)
    precision: Literal["float64", "float32"] = "float64"
    seed: int = Field(ge=0, description="descriptor, fitting-net and training seed")
    dataset: str | None = Field(None, description="dataset stage (default: the last before)")


@dataclass(frozen=True)
class TrainDeepmdResult:
    model: str
    backend: str
    steps: int
    held_out: str  # which split `dp test` ran on
    test: dict[str, float]
    lcurve_last: dict[str, float]
    neighbours: dict | None
    model_manifest: str


class TrainDeepmd(Stage):
    kind = "train_deepmd"
    Config = TrainDeepmdConfig
    tools = ("deepmd-kit", "tensorflow-cpu", "ase", "numpy")

    @property
    def c(self) -> TrainDeepmdConfig:
        return self.cfg  # type: ignore[return-value]

    def dataset(self, ctx: Context) -> str:
        if self.c.dataset:
            return self.c.dataset
        return ctx.upstream_of_kind("dataset", self.name)

    def preflight(self, ctx: Context) -> None:
        src, d = ctx.study.source, self.c.descriptor
        if set(d.sel) != set(ctx.study.species):
            raise InputError(
                src,
                f"{self.name}.descriptor.sel",
                f"species {sorted(d.sel)} differ from the study's {ctx.study.species}",
                "give one neighbour count per study species",
            )
        if d.rcut_smth_angstrom >= d.rcut_angstrom:
            raise InputError(
                src, f"{self.name}.descriptor.rcut_smth_angstrom", "must be below rcut_angstrom"
            )
        if self.c.learning_rate.stop > self.c.learning_rate.start:
            raise InputError(src, f"{self.name}.learning_rate.stop", "above learning_rate.start")
        stages = ctx.study.stages
        if self.c.dataset and (
            self.c.dataset not in stages or stages.index(self.c.dataset) > stages.index(self.name)
        ):
            raise InputError(src, f"{self.name}.dataset", f"{self.c.dataset!r} is no stage before")

    def backend(self, ctx: Context) -> tuple[str, str]:
        return BACKENDS[ctx.study.active.accelerator]

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c, ds = self.c, self.dataset(ctx)
        split = ctx.result(ds, DatasetSplit).split
        held_out = "test" if split.get("test") else "val"
        splits = {k: ctx.rel(ds, f"{k}.extxyz") if split.get(k) else None for k in split}
        data = write_params(
            stage_dir, "deepmd_data.json", {"type_map": ctx.study.species, "splits": splits}
        )
        text = render.render_to(
            stage_dir / "input.json",
            "deepmd/input.json.j2",
            version=lock.python_pins()["deepmd-kit"],
            type_map=ctx.study.species,
            d=c.descriptor,
            sel=[c.descriptor.sel[s] for s in ctx.study.species],
            fit=c.fitting_net,
            lr=c.learning_rate,
            loss=c.loss,
            precision=c.precision,
            seed=c.seed,
            batch_size=c.batch_size,
            numb_steps=c.numb_steps,
            disp_freq=c.disp_freq,
            save_freq=c.save_freq,
            data={"train": "data/train", "val": "data/val"},
        )
        b, model = self.backend(ctx)
        test = ("dp", f"--{b}", "test", "-m", model, "-s", f"data/{held_out}", "-n", "0")
        steps = [
            ("data", ("deepmd_data", data.name)),
            ("train", ("dp", f"--{b}", "train", "input.json")),
            ("freeze", ("dp", f"--{b}", "freeze", "-o", model)),
            ("test", test),
        ]
        spec = write_params(
            stage_dir,
            STEPS,
            {"steps": [{"name": n, "log": f"{n}.log", "argv": list(a)} for n, a in steps]},
        )
        one = Command(
            ("python", "-m", "runbook.steps.deepmd_steps", STEPS), "deepmd.log", needs=("deepmd",)
        )
        return [data, text, spec, write_commands(stage_dir, [one])]

    def collect(self, ctx: Context, stage_dir: Path) -> TrainDeepmdResult:
        b, model = self.backend(ctx)
        if not (stage_dir / model).exists():
            raise EngineError(
                f"{stage_dir / model} not written; see deepmd.log, train.log and freeze.log"
            )
        try:
            test = logs.parse_dp_test((stage_dir / "test.log").read_text(errors="replace"))
        except ValueError as e:
            raise EngineError(f"{stage_dir / 'test.log'}: {e}") from None
        train_log = (stage_dir / "train.log").read_text(errors="replace")
        neighbours = logs.parse_neighbour_stat(train_log)
        self._check_sel(ctx, neighbours)
        curve = logs.read_lcurve(stage_dir / "lcurve.out")
        last = {k: float(v[-1]) for k, v in curve.items()}
        ds = self.dataset(ctx)
        held_out = "test" if ctx.result(ds, DatasetSplit).split.get("test") else "val"
        card = modelcard.ModelManifest(
            backend="deepmd",
            units=modelcard.Units(**modelcard.DATA_UNITS),
            type_names=list(ctx.study.species),
            r_max_angstrom=self.c.descriptor.rcut_angstrom,
            model_dtype=self.c.precision,
            data=data_provenance(ctx, ds),
            training={
                "architecture": f"deepmd-kit {self.c.descriptor.type} + ener fitting ({b})",
                "hyperparameters": self.c.model_dump(mode="json"),
                "steps": int(last["step"]),
                "lcurve_last": last,
                "test_metrics": test["all"],
                "held_out": held_out,
                "versions": {p: metadata.version(p) for p in ("deepmd-kit", "tensorflow-cpu")},
            },
            artifacts={"model": model, "model_sha256": sha256_file(stage_dir / model)},
        )
        modelcard.write(stage_dir / modelcard.FILENAME, card)
        return TrainDeepmdResult(
            model, b, int(last["step"]), held_out, test["all"], last, neighbours,
            modelcard.FILENAME,
        )  # fmt: skip

    def _check_sel(self, ctx: Context, neighbours: dict | None) -> None:
        """`sel` below the training data's neighbour counts silently drops neighbours."""
        if neighbours is None:
            return
        for sp, n in zip(ctx.study.species, neighbours["max_neighbours"], strict=False):
            if n > self.c.descriptor.sel[sp]:
                raise InputError(
                    ctx.study.source,
                    f"{self.name}.descriptor.sel.{sp}",
                    f"the training data have up to {n} {sp} neighbours within rcut, "
                    f"sel is {self.c.descriptor.sel[sp]}",
                    f"set sel.{sp} >= {n} (with margin for denser MD configurations)",
                )
