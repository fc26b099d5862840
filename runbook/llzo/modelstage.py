"""The model stage of the `llzo-gb` study (plug-in kind `runbook.llzo.modelstage:Model`):
the profile's ML potential (`profiles.<p>.model`, resolved by runbook.modelref), checked
and made ready for the stages after it, which load what it records (`ModelUse`).

- classical profile (no model): nothing to do; the result says so (`file: null`).
- cpu: the potential run's compiled ASE-target model (model.nequip.pt2), used in place
  (the `fix external` driver loads it); the result records its SHA-256.
- cuda: the packaged model compiled on this machine (AOTInductor artifacts are GPU/ISA
  specific): `nequip-compile <packaged> model.nequip.pt2 --mode aotinductor --device cuda
  --target pair_allegro`, the manifest copied beside the output.

Preflight (before any stage runs, `bundle run --dry-run` included) refuses a bad
reference, a model whose units are not LAMMPS `metal`, and a model that does not know
every species the study's build stages will write (Li, La, Zr, O and the dopant),
naming both lists; the MD and relax stages check the data file itself again at render.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bundle.core.errors import InputError
from runbook import files, modelcard, modelref
from runbook.config import Strict
from runbook.files import write_commands, write_params
from runbook.launchers import Command
from runbook.llzo.buildstage import Build
from runbook.llzo.stages import MODEL_KIND, LlzoStage
from runbook.stage import Context
from runbook.stages.deploy import COMPILED

GARNET = ["Li", "La", "Zr", "O"]


class ModelConfig(Strict):
    """No fields: the model is the profile's (`profiles.<p>.model`)."""


@dataclass(frozen=True)
class ModelResult:
    file: str | None  # absolute path of the model the later stages load; None: classical
    provenance: dict | None  # runbook.modelref.provenance of that file
    r_max_A: float = 0.0
    compiled_here: bool = False


def build_species(block: dict) -> list[str]:
    """The species a build stage's data file will hold (its block: the dopant)."""
    dopant = block.get("dopant")
    return GARNET + ([dopant] if dopant and block.get("dopant_level", 0.0) > 0 else [])


class Model(LlzoStage):
    kind = MODEL_KIND
    Config = ModelConfig
    tools = ("torch", "nequip", "nequip-allegro")

    def resolve(self, ctx: Context) -> modelref.Resolved | None:
        r = modelref.resolve(ctx.study)
        if r is None:
            return None
        cuda = ctx.study.active.accelerator == "cuda"
        if cuda and r.packaged is None:
            raise InputError(ctx.study.source, r.field, f"{r.where} gives no packaged model "
                             "(.nequip.zip) to compile on this machine")  # fmt: skip
        compiled = (r.manifest.artifacts.get("compiled") or {}).get("target", "ase")
        if not cuda and (r.compiled is None or compiled != "ase"):
            raise InputError(ctx.study.source, r.field, f"{r.where} gives no model compiled "
                             "for the ASE target (model.nequip.pt2, --target ase), which the "
                             "cpu `fix external` path loads")  # fmt: skip
        return r

    def preflight(self, ctx: Context) -> None:
        r = self.resolve(ctx)
        if r is None:
            return
        src = ctx.study.source
        modelcard.guard_units(r.manifest, r.manifest_path, src, r.field)
        for name, species in self.builds(ctx):
            modelcard.guard_species(r.manifest, r.manifest_path, species,
                                    f"of stage {name}", src, r.field)  # fmt: skip

    def builds(self, ctx: Context) -> list[tuple[str, list[str]]]:
        return [(n, build_species(ctx.study.blocks.get(n, {}))) for n in ctx.study.stages
                if ctx.kind_of(n) == Build.kind]  # fmt: skip

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        r = self.resolve(ctx)
        cmds: list[Command] = []
        doc: dict = {"model": None, "why": "classical profile: no model"}
        if r is not None and ctx.study.active.accelerator == "cuda":
            argv = ("nequip-compile", str(r.packaged), COMPILED, "--mode", "aotinductor",
                    "--device", "cuda", "--target", "pair_allegro")  # fmt: skip
            cmds.append(Command(argv, "compile.log"))
            modelcard.write(stage_dir / modelcard.FILENAME, r.manifest)
            assert r.packaged is not None  # resolve() refused otherwise
            doc = modelref.provenance(r, r.packaged) | {"compiles_to": COMPILED}
        elif r is not None:
            assert r.compiled is not None
            doc = modelref.provenance(r, r.compiled)
        return [write_params(stage_dir, "model.json", doc), write_commands(stage_dir, cmds)]

    def collect(self, ctx: Context, stage_dir: Path) -> ModelResult:
        r = self.resolve(ctx)
        if r is None:
            return ModelResult(None, None)
        if ctx.study.active.accelerator == "cuda":
            out = files.written(stage_dir / COMPILED, "compile.log")
            prov = modelref.provenance(r, out) | {
                "manifest": str(stage_dir / modelcard.FILENAME),
                "compiled_from": str(r.packaged),
            }
            return ModelResult(str(out), prov, r.manifest.r_max_angstrom, True)
        assert r.compiled is not None  # resolve() refused otherwise
        return ModelResult(str(r.compiled), modelref.provenance(r, r.compiled),
                           r.manifest.r_max_angstrom)  # fmt: skip
