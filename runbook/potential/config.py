"""Typed configuration of the potential study's own stages (sample, select, validate).

The stage blocks of `runbook/studies/llzo-potential.yaml` validate against these models;
the Python steps re-validate the rendered parameters with the same models, so a step
never reads an untyped dict. Units: Å, K, fs, eV.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from runbook.config import Strict
from runbook.potential import ENV_CLASSES, phases


class Distort(Strict):
    """Random symmetric strain (entries uniform in ±strain_max) then Gaussian rattle."""

    strain_max: float = Field(0.02, ge=0, le=0.2)
    rattle_A: float = Field(0.05, ge=0, le=0.5)


class MdSampling(Strict):
    """Classical NVT runs; run k of a class uses temperatures_K[k % len]."""

    temperatures_K: list[float] = Field([300.0, 700.0, 1100.0], min_length=1)
    steps: int = Field(1000, ge=1)
    every: int = Field(250, ge=1)
    skip: int = Field(0, ge=0)
    timestep_fs: float = Field(1.0, gt=0, le=5)
    mobile: Literal["all", "li"] = "all"

    @model_validator(mode="after")
    def _frames(self) -> MdSampling:
        if (self.steps - self.skip) // self.every < 1:
            raise ValueError("steps - skip must hold at least one `every` interval")
        return self


class BulkSampling(Distort):
    orderings: int = Field(2, ge=1, description="Li orderings of the 96-atom primitive cell")
    distorted_per_ordering: int = Field(1, ge=0)
    al_doped: int = Field(1, ge=0, description="Li25AlLa12Zr8O48 cells (own orderings)")
    md: MdSampling | None = MdSampling()


class GbCell(Strict):
    levels: int = Field(2, ge=1, description="Zr-plane spacings per grain (1.45 Å each)")
    x_fraction: float = Field(1.0, gt=0, le=1)
    termination: int = Field(1, ge=0)


class GbSampling(Distort):
    cells: list[GbCell] = Field([GbCell()], min_length=1)
    seeds: int = Field(2, ge=1, description="Li orderings per cell")
    distorted_per_cell: int = Field(1, ge=0)
    md: MdSampling | None = MdSampling()


class ExcessLiSampling(Distort):
    cells: int = Field(2, ge=1, description="bulk orderings, each with one extra Li")
    distorted_per_cell: int = Field(1, ge=0)
    min_dist_A: float = Field(1.8, gt=0)
    md: MdSampling | None = MdSampling()


class RelatedSampling(Distort):
    phases: list[str] = Field(["li2o", "zro2-cubic", "la2o3-hex", "al2o3-corundum"])
    per_phase: int = Field(4, ge=1)

    @field_validator("phases")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [p for p in names if p not in phases.PHASES]
        if unknown:
            raise ValueError(f"unknown phase(s) {unknown}; allowed: {sorted(phases.PHASES)}")
        return names


class SampleConfig(Strict):
    seed: int = Field(1, ge=0)
    bulk: BulkSampling = BulkSampling()
    gb: GbSampling = GbSampling()
    excess_li: ExcessLiSampling = ExcessLiSampling()
    related: RelatedSampling = RelatedSampling()


class Descriptor(Strict):
    rc_radial_A: float = Field(6.0, gt=0)
    rc_angular_A: float = Field(4.5, gt=0)
    eta_radial: list[float] = Field([0.01, 0.05, 0.15, 0.4, 1.0], min_length=1)
    eta_angular: list[float] = Field([0.005, 0.05], min_length=1)
    zeta: list[float] = Field([1.0, 4.0], min_length=1)
    lambdas: list[float] = Field([1.0, -1.0], min_length=1)


class SelectConfig(Strict):
    quota: dict[str, int] = Field(description="frames to label per environment class")
    descriptor: Descriptor = Descriptor()
    variance: float = Field(0.95, gt=0, le=1, description="PCA: variance the kept PCs explain")
    max_components: int = Field(10, ge=1)

    @field_validator("quota")
    @classmethod
    def _classes(cls, quota: dict[str, int]) -> dict[str, int]:
        unknown = [c for c in quota if c not in ENV_CLASSES]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; allowed: {list(ENV_CLASSES)}")
        return quota


class Bounds(Strict):
    """PASS/FAIL bounds of `validate` (ratios: model error / trivial-baseline error)."""

    force_rmse_ratio_max: float = Field(gt=0, description="vs the zero-force baseline")
    energy_mae_ratio_max: float = Field(gt=0, description="vs per-species LS energies")
    force_rmse_max_ev_A: float = Field(gt=0)
    energy_mae_max_meV_atom: float = Field(gt=0)


class Stability(Strict):
    """A short NVT run of bulk LLZO through the model (`fix external`)."""

    ordering_seed: int = Field(101, ge=0, description="Li ordering of the 96-atom cell")
    temperature_K: float = Field(600.0, gt=0)
    timestep_fs: float = Field(1.0, gt=0, le=5)
    steps: int = Field(200, ge=10)
    check_every: int = Field(10, ge=1)
    tdamp_fs: float = Field(50.0, gt=0)
    min_pair_A: float = Field(1.2, gt=0, description="no pair may come closer")
    temperature_band: float = Field(0.5, gt=0, lt=1, description="second-half mean T within ±")
    seed: int = Field(4242, ge=1)


class ValidateConfig(Strict):
    model: str | None = Field(None, description="a compiled model outside this run")
    bounds: Bounds
    stability: Stability = Stability()


class ValidateDeepmdConfig(ValidateConfig):
    """`validate` of the frozen DeePMD model of a `train_deepmd` stage."""

    train: str | None = Field(None, description="train_deepmd stage (default: the last before)")


class CompareModel(Strict):
    validate_stage: str = Field(description="the model's validate stage (validation.json)")
    train_stage: str = Field(description="the stage that trained it (wall and CPU seconds)")


class Bootstrap(Strict):
    """Paired bootstrap over held-out frames (runbook.potential.compare)."""

    resamples: int = Field(2000, ge=100)
    level: float = Field(0.95, gt=0.5, lt=1)
    seed: int = Field(1, ge=0)
    min_frames: int = Field(3, ge=2, description="fewer frames in a class: no winner")


class CompareConfig(Strict):
    models: dict[str, CompareModel] = Field(min_length=2, max_length=2)
    bootstrap: Bootstrap = Bootstrap()
