"""Parsers of DeePMD-kit's text outputs: `dp test` logs, `dp train` neighbour statistics
and the learning curve `lcurve.out`.

Contract: checked against DeePMD-kit 3.2.0 (TensorFlow backend) on stored outputs
(tests/data/deepmd/). Lines look like

    [2026-11-30 06:50:49,718] DEEPMD INFO    # testing system : data/test/Li8O4
    [2026-11-30 06:50:50,403] DEEPMD INFO    # number of test data : 2
    [2026-11-30 06:50:50,403] DEEPMD INFO    Energy RMSE/Natoms : 9.445845e-02 eV
    [2026-11-30 06:50:50,403] DEEPMD INFO    Force  RMSE        : 3.305008e-01 eV/Å
    ... then, with two or more systems, "# ----------weighted average of errors---" and the
    same quantities averaged over systems (weighted by their number of test data).

Units are DeePMD's: eV, eV/Å (no conversion).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

SYSTEM = re.compile(r"# testing system : (\S+)")
NUMBER = re.compile(r"# number of test data : (\d+)")
WEIGHTED = "weighted average of errors"
QUANTITY = re.compile(
    r"DEEPMD INFO\s+(Energy|Force|Virial|Stress)\s+(MAE|RMSE)(/Natoms)?\s*:\s*(\S+)"
)
NEIGHBOURS = re.compile(r"maximum neighbor size: \[([\d\s]+)\] \(cutoff radius: (\S+)\)")
MIN_DISTANCE = re.compile(r"minimal neighbor distance: (\S+)")

# (quantity, statistic, per atom) -> our key (unit in the name)
KEYS = {
    ("Energy", "RMSE", True): "energy_rmse_ev_per_atom",
    ("Energy", "MAE", True): "energy_mae_ev_per_atom",
    ("Force", "RMSE", False): "force_rmse_ev_a",
    ("Force", "MAE", False): "force_mae_ev_a",
    ("Virial", "RMSE", True): "virial_rmse_ev_per_atom",
}


def parse_dp_test(text: str) -> dict:
    """{"systems": {name: {n_frames, <KEYS values>}}, "all": {...}} from a `dp test` log.
    "all" is DeePMD's weighted average with two or more systems, else the one system."""
    systems: dict[str, dict] = {}
    current: dict | None = None
    weighted: dict | None = None
    for line in text.splitlines():
        if m := SYSTEM.search(line):
            current = systems.setdefault(m.group(1), {})
        elif m := NUMBER.search(line):
            if current is not None:
                current["n_frames"] = int(m.group(1))
        elif WEIGHTED in line:
            weighted = current = {}
        elif (m := QUANTITY.search(line)) and current is not None:
            key = KEYS.get((m.group(1), m.group(2), bool(m.group(3))))
            if key:
                current[key] = float(m.group(4))
    if not systems:
        raise ValueError("no `# testing system` block: not a dp test log, or it failed")
    if weighted is None:
        if len(systems) != 1:
            raise ValueError(f"{len(systems)} systems but no weighted average block")
        weighted = dict(next(iter(systems.values())))
    weighted["n_frames"] = sum(s.get("n_frames", 0) for s in systems.values())
    missing = [k for k in ("energy_rmse_ev_per_atom", "force_rmse_ev_a") if k not in weighted]
    if missing:
        raise ValueError(f"dp test log lacks {missing}")
    return {"systems": systems, "all": weighted}


def parse_neighbour_stat(text: str) -> dict | None:
    """`dp train`'s neighbour statistics: max neighbours per type within rcut, and the
    smallest distance in the training data (None when it did not run)."""
    m = NEIGHBOURS.search(text)
    if not m:
        return None
    d = MIN_DISTANCE.search(text)
    return {
        "max_neighbours": [int(x) for x in m.group(1).split()],
        "rcut_angstrom": float(m.group(2)),
        "min_distance_angstrom": float(d.group(1)) if d else None,
    }


def read_lcurve(path: Path) -> dict[str, np.ndarray]:
    """`lcurve.out` as columns by name (header `# step rmse_val rmse_trn ... lr`)."""
    lines = Path(path).read_text().splitlines()
    header = next((ln for ln in lines if ln.startswith("#") and "step" in ln), None)
    if header is None:
        raise ValueError(f"{path}: no header line")
    names = header.lstrip("#").split()
    rows = [ln.split() for ln in lines if ln.strip() and not ln.startswith("#")]
    data = np.array(rows, float).reshape(-1, len(names))
    return {n: data[:, i] for i, n in enumerate(names)}
