"""Reading containers/stack.lock.yaml, the single source of pinned versions.

The lock is validated by a schema (`StackLock`, pydantic, unknown keys forbidden)
before anything reads it: an unknown key, a missing key or a version written as
a YAML number is refused with one line naming the file and the key.
`load()` returns the validated document as plain data; `model()` the typed one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bundle.core import io, paths
from bundle.core.errors import InputError

# A version or other pinned token: a non-empty string. YAML numbers (3.10 -> 3.1)
# are refused rather than coerced, so a pin always means what it says.
Version = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Sha256Pattern, CommitPattern = r"^[0-9a-f]{64}$", r"^[0-9a-f]{40}$"
Sha256 = Annotated[str, StringConstraints(pattern=Sha256Pattern)]
GitCommit = Annotated[str, StringConstraints(pattern=CommitPattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Host(_Strict):
    debian: list[str]
    qe: Version
    mpirun: str


class Images(_Strict):
    repository: Version
    label_namespace: Version


class Debootstrap(_Strict):
    distribution: Literal["debian"]
    suite: Version
    variant: Version
    mirror: Version


class DebianPackages(_Strict):
    pinned: dict[str, Version]
    unpinned: list[str]


class Wheels(_Strict):
    requirements: Version
    find_links: str | None = None
    exclude: list[str] = Field(default_factory=list)


class CpuFlavor(_Strict):
    os: Debootstrap
    python: Version
    debian: DebianPackages
    wheels: Wheels


class Gpu(_Strict):
    model: Version
    compute_capability: Version
    kokkos_arch: Version


class Cuda(_Strict):
    toolkit: Version
    min_driver: Version
    build_image: Version
    runtime_image: Version


class Nvhpc(_Strict):
    version: Version
    image: Version
    cuda: Version


class GitRelease(_Strict):
    version: Version
    git: Version
    ref: Version


class Tarball(_Strict):
    version: Version
    url: Version
    sha256: Sha256


class PyTorch(_Strict):
    version: Version
    cuda_variant: Version
    index_url: Version
    cxx_standard: Version


class Lammps(_Strict):
    git: Version
    ref: Version
    packages: list[str]
    cmake: dict[str, Version]


class PairNequipAllegro(_Strict):
    git: Version
    ref: GitCommit


class DeepmdKit(GitRelease):
    backend: Literal["pytorch"]
    cmake: dict[str, Version]


class QuantumEspresso(GitRelease):
    cmake: dict[str, Version]


class Compiler(_Strict):
    cflags: Version
    fortran: Version
    c: Version


class H200Flavor(_Strict):
    gpu: Gpu
    cuda: Cuda
    python: Version
    nvhpc: Nvhpc
    ucx: GitRelease
    openmpi: Tarball
    pytorch: PyTorch
    wheels: Wheels
    lammps: Lammps
    pair_nequip_allegro: PairNequipAllegro
    deepmd: DeepmdKit
    qe: QuantumEspresso
    compiler: Compiler


class Flavors(_Strict):
    cpu: CpuFlavor
    h200: H200Flavor


class Pseudopotentials(_Strict):
    pslibrary: Version  # the library whose generation inputs runbook/pseudo/ transcribes


class StackLock(_Strict):
    schema_: Literal["stack-lock/1"] = Field(alias="schema")
    python: Version
    host: Host
    pseudopotentials: Pseudopotentials
    python_packages: dict[str, Version]
    images: Images
    flavors: Flavors


FLAVORS = ("cpu", "h200")


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _refusal(path: Path, err: dict[str, Any]) -> InputError:
    """One InputError from pydantic's first error: names the key and the fix."""
    loc, kind = tuple(err["loc"]), err["type"]
    # A union/annotated type appends its own tag to loc; keep the user's key path.
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    if kind == "extra_forbidden":
        return InputError(
            path, _field(loc), "unknown key", "remove it or correct its spelling (see the schema)"
        )
    if kind == "missing":
        return InputError(path, _field(loc), "missing", "add it: every pinned version is required")
    if kind in ("string_type", "string_too_short") and err.get("input") in (None, ""):
        return InputError(path, _field(loc), "no version given", "write the pinned version")
    if kind == "string_type":
        return InputError(
            path,
            _field(loc),
            f"{err.get('input')!r} is not a string",
            "quote versions in YAML (3.10 would read as 3.1)",
        )
    if kind == "string_pattern_mismatch":
        what = {Sha256Pattern: "a SHA-256 (64 hex digits)", CommitPattern: "a full git commit SHA"}
        pattern = err.get("ctx", {}).get("pattern", "")
        return InputError(
            path, _field(loc), f"{err.get('input')!r} is not {what.get(pattern, pattern)}"
        )
    return InputError(path, _field(loc), err["msg"])


def model(path: Path | None = None) -> StackLock:
    """The validated lock; InputError naming the key when it does not fit the schema."""
    path = path or paths.lock_file()
    data = io.read_mapping(path, missing="the stack lock is missing", fix="restore it from git")
    try:
        lock = StackLock.model_validate(data)
    except ValidationError as e:
        # An unknown key first: a misspelt key also shows up as a missing one.
        errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        first = _refusal(path, errors[0])
        if len(errors) > 1:
            first = InputError(
                path, first.field, f"{first.problem} (and {len(errors) - 1} more)", first.fix
            )
        raise first from None
    if lock.flavors.cpu.python != lock.python:
        raise InputError(
            path,
            "flavors.cpu.python",
            f"{lock.flavors.cpu.python} differs from python {lock.python}",
            "the cpu image installs the Python lock, which is resolved for `python`",
        )
    return lock


def load(path: Path | None = None) -> dict[str, Any]:
    """The validated lock as plain data (keys as written in the file)."""
    return model(path).model_dump(by_alias=True)


def lock_hash(path: Path | None = None) -> str:
    """SHA-256 of the lock file's bytes: stamped into image labels and manifests."""
    return hashlib.sha256((path or paths.lock_file()).read_bytes()).hexdigest()


def python_pins(path: Path | None = None) -> dict[str, str]:
    return dict(model(path).python_packages)
