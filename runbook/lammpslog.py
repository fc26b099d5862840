"""LAMMPS log parser: the thermo table of each `run` (checked against LAMMPS 22Jul2025).

Contract: a thermo block starts at a line whose first word is `Step` (thermo_style custom
with `step` first) and ends at the line starting `Loop time of`; rows are whitespace
separated numbers, one per column. Lines that are not all numbers inside a block
(warnings) are skipped. Values keep LAMMPS units (metal: eV, ps, K, bar).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bundle.core.errors import EngineError

LOOP = re.compile(r"^Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms")


def thermo_blocks(text: str) -> list[dict[str, np.ndarray]]:
    blocks, cols, rows = [], None, []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "Step":
            cols, rows = words, []
            continue
        if cols is None:
            continue
        if line.startswith("Loop time of"):
            data = np.array(rows, dtype=float).reshape(-1, len(cols))
            blocks.append({c: data[:, i] for i, c in enumerate(cols)})
            cols = None
            continue
        if len(words) == len(cols):
            try:
                rows.append([float(w) for w in words])
            except ValueError:
                pass
    return blocks


def loop_times(text: str) -> list[tuple[float, int, int, int]]:
    """(seconds, procs, steps, atoms) per run."""
    return [
        (float(m[1]), int(m[2]), int(m[3]), int(m[4]))
        for m in (LOOP.match(ln) for ln in text.splitlines())
        if m
    ]


def read_log(path: Path) -> list[dict[str, np.ndarray]]:
    try:
        blocks = thermo_blocks(path.read_text(errors="replace"))
    except FileNotFoundError:
        raise EngineError(f"{path}: no LAMMPS log") from None
    if not blocks:
        raise EngineError(f"{path}: no complete thermo block (did the run finish?)")
    return blocks
