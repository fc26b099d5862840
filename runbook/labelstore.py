"""The run's label store: finished pw.x outputs kept by what produced them, so that a
re-run (after a kill, or after a change that re-renders a dft stage) never runs pw.x again
on a frame it already labelled with the same settings.

`<run>/labels/<key>/` holds `pw.out` and a `done` mark (its exit status), written into a
temporary folder and renamed: a kill leaves either a finished label or none. `key` is the
SHA-256 of the frame's rendered pw.x input and of the pseudopotential files it names (the
stage's `pseudo/`): the same frame with the same settings. An SCF that did not converge is
a finished label too (it is not retried; the stage excludes it again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

STORE = "labels"
DONE = "done"


def store_of(stage_dir: Path) -> Path:
    return stage_dir.parent / STORE


def key(stage_dir: Path, input_name: str) -> str:
    """SHA-256 of a pw.x input and of the pseudopotential files it names (pseudo/)."""
    h = hashlib.sha256((stage_dir / input_name).read_bytes())
    for p in sorted((stage_dir / "pseudo").iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def fetch(store: Path, key: str, dest: Path) -> int | None:
    """Copy a finished label's pw.out to `dest`; its exit status, or None if not stored."""
    done = store / key
    if not (done / DONE).is_file():
        return None
    shutil.copyfile(done / "pw.out", dest)
    return int(json.loads((done / DONE).read_text())["exit_status"])


def keep(store: Path, key: str, out: Path, code: int) -> Path:
    """Put a finished pw.x output into the store: tmp folder, `done`, rename."""
    final = store / key
    if (final / DONE).is_file():
        return final
    tmp = store / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(out, tmp / "pw.out")
    mark = {"exit_status": code, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (tmp / DONE).write_text(json.dumps(mark) + "\n")
    shutil.rmtree(final, ignore_errors=True)  # a folder without `done`: never finished
    os.replace(tmp, final)
    return final
