"""Where the shipped data folders (containers/, templates/, studies, references) are found.

From a source checkout they sit beside the packages; an installed bundle sets
MLMD_BUNDLE_ROOT to its prefix. Nothing here touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    env = os.environ.get("MLMD_BUNDLE_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2]


def containers_dir() -> Path:
    return root() / "containers"


def templates_dir() -> Path:
    return root() / "templates"


def lock_file() -> Path:
    return containers_dir() / "stack.lock.yaml"
