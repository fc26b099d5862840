"""What every phase of `bundle verify` shares: the check record, error codes, options and
context, the judge (the same one `bundle check` uses: value, lower, upper, unit), and
the stored references (bundle/references/engines.yaml, validated; profiles.yaml)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bundle import pack
from bundle.core import io
from bundle.core.errors import InputError
from checks.reference import Quantity, judge_value

SCHEMA = "bundle-verify/1"
PHASES = ("integrity", "host", "images", "engines", "reproducibility", "report")
PROFILES = ("cpu", "h200")
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

# Error codes, one per way a check fails (bundle.doctor.ADVICE says what to do for each).
E_RECORD, E_SIGNATURE, E_HASH, E_PYENV = "INT-RECORD", "INT-SIGNATURE", "INT-HASH", "INT-PYENV"
E_CPU, E_MEMORY, E_DISK, E_OS = "HOST-CPU", "HOST-MEMORY", "HOST-DISK", "HOST-OS"
E_NVML, E_GPU_COUNT, E_GPU_MODEL = "HOST-NVML", "HOST-GPU-COUNT", "HOST-GPU-MODEL"
E_GPU_MEMORY, E_DRIVER, E_NVLINK = "HOST-GPU-MEMORY", "HOST-DRIVER", "HOST-NVLINK"
E_RUNTIME, E_MPI = "HOST-RUNTIME", "HOST-MPI"
E_IMG_MISSING, E_IMG_LABELS = "IMG-MISSING", "IMG-LABELS"
E_QE, E_QE_RANKS, E_COMPILE = "ENG-QE", "ENG-QE-RANKS", "ENG-COMPILE"
E_MODEL, E_LAMMPS = "ENG-MODEL-FORCES", "ENG-LAMMPS"
E_DEEPMD = "ENG-DEEPMD-FORCES"
E_STUDY, E_METRIC = "REPRO-RUN", "REPRO-METRIC"
E_PHASE = "PHASE-ERROR"
CODES = tuple(v for k, v in dict(globals()).items() if k.startswith("E_"))

GIB = 1024**3


@dataclass
class Check:
    """One judged (or skipped) item; `lower`/`upper` are absolute bounds on `value`."""

    phase: str
    name: str
    status: str
    reason: str = ""
    code: str = ""
    value: Any = None
    reference: Any = None
    lower: float | None = None
    upper: float | None = None
    unit: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        """The one console line of this check."""
        parts = [f"{self.status:<4} {self.phase}/{self.name}"]
        if self.value is not None and not isinstance(self.value, dict | list):
            v = f"{self.value:.10g}" if isinstance(self.value, float) else str(self.value)
            parts.append(f"= {v}{' ' + self.unit if self.unit else ''}")
        if self.reference is not None and not isinstance(self.reference, dict | list):
            parts.append(f"(ref {self.reference}")
            if self.lower is not None and self.upper is not None:
                parts[-1] += f", [{self.lower:.10g}, {self.upper:.10g}]"
            parts[-1] += ")"
        if self.reason:
            parts.append(f"- {self.reason}")
        if self.code and self.status == FAIL:
            parts.append(f"[{self.code}]")
        return " ".join(parts)


def judge(
    phase: str,
    name: str,
    value: float,
    reference: float,
    tol: float,
    unit: str,
    code: str,
    what: str = "",
) -> Check:
    """PASS when |value - reference| <= tol (absolute); the reason states the deviation.
    Judged by checks.reference.judge_value, as `bundle check` judges."""
    q = Quantity(name, reference, tol, tol, "absolute", unit, "")
    ok = judge_value(value, q)[0] == PASS
    dev = abs(value - reference)
    reason = f"{what}{'; ' if what else ''}|dev| {dev:.3g} {'<=' if ok else '>'} {tol:.3g} {unit}"
    lo, hi = q.limits()  # type: ignore[misc]
    return Check(
        phase,
        name,
        PASS if ok else FAIL,
        reason,
        "" if ok else code,
        value,
        reference,
        lo,
        hi,
        unit,
    )


def within(phase: str, name: str, dev: float, tol: float, unit: str, code: str, what: str) -> Check:
    """PASS when a non-negative deviation `dev` (e.g. max |F - F_ref|) is <= tol."""
    ok = judge_value(dev, Quantity(name, 0.0, 0.0, tol, "absolute", unit, ""))[0] == PASS
    reason = f"{what} = {dev:.3g} {'<=' if ok else '>'} {tol:.3g} {unit}"
    return Check(
        phase, name, PASS if ok else FAIL, reason, "" if ok else code, dev, None, None, tol, unit
    )


def at_least(name: str, value: float, minimum: float, unit: str, code: str, what="") -> Check:
    """A host quantity with a floor (CPUs, memory, disk, GPUs)."""
    ok = value >= minimum
    why = f"{what}{'; ' if what else ''}{'>=' if ok else '<'} {minimum} {unit} required"
    return Check(
        "host",
        name,
        PASS if ok else FAIL,
        why,
        "" if ok else code,
        round(value, 2),
        f">= {minimum}",
        minimum,
        None,
        unit,
    )


@dataclass(frozen=True)
class VerifyOptions:
    profile: str = "cpu"
    quick: bool = False
    out: Path | None = None
    results: Path | None = None  # judge this study results.json instead of running the study
    reference: str | None = None  # judge against this reference instead of the profile's
    redact: bool = True
    key: Path | None = None  # proofpack signing key (default: the site key)
    trust: tuple[str, ...] = ()
    engines_in: str = "auto"  # host | image | auto (cpu: host, h200: image)
    only: tuple[str, ...] = ()  # run only these phases (re-checks after a fix); report says so
    bench: bool = False  # also measure MD throughput for `bundle size`


@dataclass
class Context:
    opts: VerifyOptions
    root: Path
    out: Path
    work: Path
    logs: Path
    say: Callable[[str], None]
    record: dict | None = None
    profile: dict = field(default_factory=dict)
    gpus: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # session facts for the report

    @property
    def installed(self) -> bool:
        return self.record is not None


# ------------------------------------------------------------ engines.yaml, validated
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerProfile(_Strict):
    """A tolerance for every verify profile: a missing one is an error, not a pass."""

    cpu: float = Field(gt=0)
    h200: float = Field(gt=0)

    def of(self, profile: str) -> float:
        return getattr(self, profile)


class Energy(_Strict):
    value: float
    unit: str
    tolerance: PerProfile


class Forces(_Strict):
    unit: str
    tolerance: PerProfile
    value: list[list[float]] = Field(min_length=1)


class RankTolerance(_Strict):
    energy_ry: float = Field(gt=0)
    forces_ry_bohr: float = Field(gt=0)


class QeScf(_Strict):
    input: str
    nat: int = Field(ge=1)
    pseudopotentials: list[str] = Field(min_length=1)
    ranks: list[int] = Field(min_length=1)
    energy_ry: Energy
    forces_ry_bohr: Forces
    rank_tolerance: RankTolerance

    @model_validator(mode="after")
    def _forces_per_atom(self) -> QeScf:
        if len(self.forces_ry_bohr.value) != self.nat:
            raise ValueError(f"forces_ry_bohr.value has {len(self.forces_ry_bohr.value)} rows")
        return self


class LammpsTolerance(_Strict):
    forces_ev_a: float = Field(gt=0)
    energy_ev: float = Field(gt=0)
    pressure_rel: float = Field(gt=0)


class ModelForces(_Strict):
    model: str
    model_manifest: str
    label: str
    r_max_A: float = Field(gt=0)
    structure: str
    tolerance_ev_a: PerProfile
    lammps_tolerance: LammpsTolerance
    bench_atoms: int = Field(3000, ge=1)


class DeepmdForces(_Strict):
    """A frozen DeePMD-kit model (TensorFlow backend: the cpu image's), evaluated by
    DeePMD-kit's Python and by LAMMPS `pair_style deepmd` (no compile step)."""

    model: str
    model_manifest: str
    structure: str
    tolerance_ev_a: PerProfile
    lammps_tolerance: LammpsTolerance


class EngineReferences(_Strict):
    """bundle/references/engines.yaml (schema engine-references/1)."""

    schema_: Literal["engine-references/1"] = Field(alias="schema")
    qe_scf: QeScf
    model_forces: ModelForces | None = None
    deepmd_forces: DeepmdForces | None = None


def references() -> EngineReferences:
    """The engine references, validated: a bad entry names the file and the field."""
    path = pack.references_dir() / "engines.yaml"
    doc = io.read_mapping(path, missing="engine references missing", fix="re-install")
    try:
        return EngineReferences.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]).replace("schema_", "schema")
        raise InputError(path, loc, err["msg"], "restore the shipped engines.yaml") from None


def profile_requirements(profile: str) -> dict:
    path = pack.references_dir() / "profiles.yaml"
    doc = io.read_mapping(path)
    if profile not in doc:
        raise InputError(path, profile, "no such profile", f"use one of {sorted(doc)}")
    return doc[profile]


def run_logged(argv: list[str], log: Path, cwd: Path | None = None, env=None, timeout=None):
    """Run a program with stdout+stderr into `log`; returns the CompletedProcess."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write(f"$ {' '.join(map(str, argv))}\n")
        f.flush()
        return subprocess.run(
            argv, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env, timeout=timeout
        )


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
