"""Reading containers/stack.lock.yaml, the single source of pinned versions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from bundle import paths
from bundle.errors import InputError


def load(path: Path | None = None) -> dict[str, Any]:
    path = path or paths.lock_file()
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(
            path, "(file)", "the stack lock is missing", "restore it from git"
        ) from None
    except yaml.YAMLError as e:
        raise InputError(path, "(syntax)", f"not valid YAML: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise InputError(path, "(top level)", "expected a mapping")
    return data


def lock_hash(path: Path | None = None) -> str:
    """SHA-256 of the lock file's bytes: stamped into image labels and manifests."""
    return hashlib.sha256((path or paths.lock_file()).read_bytes()).hexdigest()


def python_pins(path: Path | None = None) -> dict[str, str]:
    return {str(k): str(v) for k, v in load(path)["python_packages"].items()}
