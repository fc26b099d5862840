"""Writing outputs so that a failure leaves nothing partial and loses nothing previous.

- `write_file(path, data)`: one file, through a temporary sibling and a rename.
- `strict_json(obj)`: JSON that every parser reads: non-finite floats become explicit
  nulls (callers say why in the document), then `allow_nan=False` guards the rest.
- `output_dir(target, option)`: a context manager yielding a fresh staging folder beside
  `target`. On success its files move into `target` (created if absent, by one rename);
  files of `target` the command did not write are kept, same-named ones replaced, and
  `owned` names (the command's own outputs, e.g. a figure a new run no longer draws)
  that this run did not write are removed so they cannot contradict the new results. On
  any exception the staging folder is removed and `target` is exactly as it was.
- `check_output(path, option, inputs)`: refuse an output that is a file where a folder is
  wanted (or the reverse), or that is one of the command's inputs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bundle.core.errors import InputError

CLI = "command line"


def write_file(path: Path, data: bytes | str) -> None:
    """Write `path` through a temporary sibling and a rename: never a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite_or_null(obj: Any) -> Any:
    """`obj` with every NaN/inf float (also numpy floats) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_null(v) for v in obj]
    return obj


def strict_json(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that never writes NaN/Infinity (they become null), newline-terminated."""
    return json.dumps(finite_or_null(obj), allow_nan=False, **kwargs) + "\n"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_output(
    path: Path, option: str, inputs: Iterable[Path] = (), *, folder: bool = True
) -> None:
    """One line (exit 3) when `path` cannot be this command's output."""
    path = Path(path)
    for p in inputs:
        if _same(path, Path(p)):
            raise InputError(
                CLI, option, f"{path} is an input of this command", "write the output elsewhere"
            )
    if folder and path.exists() and not path.is_dir():
        raise InputError(CLI, option, f"{path} is a file, not a folder", "give a folder path")
    if not folder and path.is_dir():
        raise InputError(CLI, option, f"{path} is a folder", "give a file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(CLI, option, f"{parent} is a file, not a folder", "give another path")


def _in_the_way(staging: Path, target: Path) -> list[Path]:
    """Paths of `target` that a staged item cannot replace (a folder where a file goes, or
    a file where a folder goes)."""
    bad = []
    for item in staging.iterdir():
        dest = target / item.name
        if item.is_dir() and dest.is_dir() and not dest.is_symlink():
            bad += _in_the_way(item, dest)
        elif (dest.is_dir() and not dest.is_symlink()) or (item.is_dir() and dest.exists()):
            bad.append(dest)
    return bad


def _move_into(staging: Path, target: Path) -> None:
    for item in sorted(staging.iterdir()):
        dest = target / item.name
        if item.is_dir() and dest.is_dir() and not dest.is_symlink():
            _move_into(item, dest)
        else:
            os.replace(item, dest)


@contextmanager
def output_dir(
    target: Path, option: str = "--out", inputs: Iterable[Path] = (), owned: Iterable[str] = ()
) -> Iterator[Path]:
    """A staging folder beside `target`; its content lands in `target` only on success."""
    target = Path(target)
    check_output(target, option, inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield staging
        if not target.exists():
            staging.chmod(0o755)
            os.rename(staging, target)  # one atomic step
            return
        if bad := _in_the_way(staging, target):
            raise InputError(
                CLI, option, f"{bad[0]} is in the way of an output", "move it away, then re-run"
            )
        stale = [target / n for n in owned if not (staging / n).exists()]
        _move_into(staging, target)
        for p in stale:
            if p.is_file() or p.is_symlink():
                p.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
