"""LAMMPS data files for the LLZO study, and the JSON that travels beside them.

Contract (checked against LAMMPS 2025-07-22 `read_data` / `write_data`):
- `atom_style charge`, orthorhombic box from 0, `units metal` (Å, g/mol, e).
- types 1 Li, 2 La, 3 Zr, 4 O, then the dopants (5 Al, 6 Ga, 7 Ta; `runbook.llzo.TYPE_IDS`),
  declared up to the highest type present (never fewer than 4), with a `Masses` section;
- per-atom charges are what they are: a charge that differs from its type's usual one
  (a reduced cation, a neutral inserted Li) is kept by the MD input (`charge_overrides`);
- `Atoms # charge` lines `id type q x y z [ix iy iz]`; an optional `Velocities` section
  (Å/ps).
`read_data` reads back what LAMMPS' own `write_data` writes (the files an MD stage hands
to the next one), keeping ids, image flags and velocities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from runbook.llzo import FORMAL_CHARGE, TYPE_IDS

SYMBOL_OF_TYPE = {t: s for s, t in TYPE_IDS.items()}


@dataclass
class DataFile:
    """The content of a data file. Arrays are per atom, in file order."""

    box: np.ndarray  # (3,) Lx, Ly, Lz (Å); the box starts at 0
    ids: np.ndarray  # (N,) int
    types: np.ndarray  # (N,) int, 1..4
    charges: np.ndarray  # (N,) e
    positions: np.ndarray  # (N, 3) Å
    images: np.ndarray | None = None  # (N, 3) int
    velocities: np.ndarray | None = None  # (N, 3) Å/ps

    def symbols(self) -> list[str]:
        return [SYMBOL_OF_TYPE[int(t)] for t in self.types]

    def counts(self) -> dict[str, int]:
        """Li, La, Zr, O always; a dopant when present."""
        out = {s: int(np.sum(self.types == t)) for s, t in TYPE_IDS.items()}
        return {s: n for s, n in out.items() if n or s in ("Li", "La", "Zr", "O")}

    def charge(self) -> float:
        return float(self.charges.sum())

    @property
    def n_types(self) -> int:
        return max(4, int(self.types.max()) if len(self.types) else 4)


def n_types_of(symbols) -> int:
    """Atom types a data file holding `symbols` declares (see the module docstring)."""
    return max([4] + [TYPE_IDS[s] for s in set(symbols)])


def charge_overrides(data: DataFile) -> dict[int, float]:
    """{atom id: charge - usual charge of its type} for the atoms whose charge differs
    from the most common charge of their type (by more than 1e-6 e)."""
    out: dict[int, float] = {}
    for t in np.unique(data.types):
        sel = data.types == t
        vals, counts = np.unique(np.round(data.charges[sel], 6), return_counts=True)
        usual = vals[np.argmax(counts)]
        odd = sel & (np.abs(data.charges - usual) > 1e-6)
        out.update(
            {
                int(i): float(q - usual)
                for i, q in zip(data.ids[odd], data.charges[odd], strict=True)
            }
        )
    return out


def from_symbols(box, symbols: list[str], positions: np.ndarray) -> DataFile:
    """Ids 1..N in the given order, types and formal charges from the symbols."""
    types = np.array([TYPE_IDS[s] for s in symbols], int)
    q = np.array([FORMAL_CHARGE[s] for s in symbols], float)
    return DataFile(
        np.asarray(box, float), np.arange(1, len(symbols) + 1), types, q, np.asarray(positions)
    )


def write_data(path: Path, data: DataFile, title: str) -> Path:
    lx, ly, lz = data.box
    lines = [
        f"# {title}",
        "",
        f"{len(data.ids)} atoms",
        f"{data.n_types} atom types",
        "",
        f"0.0 {lx:.10f} xlo xhi",
        f"0.0 {ly:.10f} ylo yhi",
        f"0.0 {lz:.10f} zlo zhi",
        "",
        "Masses",
        "",
    ]
    for s, t in sorted(TYPE_IDS.items(), key=lambda kv: kv[1])[: data.n_types]:
        lines.append(f"{t} {atomic_masses[atomic_numbers[s]]:.4f}  # {s}")
    lines += ["", "Atoms # charge", ""]
    img = data.images if data.images is not None else np.zeros((len(data.ids), 3), int)
    for i, t, q, p, m in zip(data.ids, data.types, data.charges, data.positions, img, strict=True):
        lines.append(f"{i} {t} {q:.6f} {p[0]:.8f} {p[1]:.8f} {p[2]:.8f} {m[0]} {m[1]} {m[2]}")
    if data.velocities is not None:
        lines += ["", "Velocities", ""]
        for i, v in zip(data.ids, data.velocities, strict=True):
            lines.append(f"{i} {v[0]:.10f} {v[1]:.10f} {v[2]:.10f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_data(path: Path) -> DataFile:
    """Parse an orthorhombic `atom_style charge` data file (ours or LAMMPS `write_data`)."""
    text = Path(path).read_text().splitlines()
    box = np.zeros(3)
    lo = np.zeros(3)
    sections: dict[str, list[str]] = {}
    current = None
    for raw in text[1:]:
        line = raw.split("#")[0].strip()
        head = raw.strip().split("#")[0].strip()
        if head in ("Atoms", "Velocities", "Masses") or raw.strip().startswith("Atoms"):
            current = "Atoms" if raw.strip().startswith("Atoms") else head
            sections[current] = []
            continue
        if not line:
            continue
        if current is None:
            w = line.split()
            for k, ax in enumerate("xyz"):
                if w[-2:] == [f"{ax}lo", f"{ax}hi"]:
                    lo[k], box[k] = float(w[0]), float(w[1]) - float(w[0])
            if w[-1] == "xy" or w[-1] == "xz" or w[-1] == "yz":
                raise ValueError(f"{path}: a triclinic box is not supported")
        else:
            sections[current].append(line)
    rows = [r.split() for r in sections.get("Atoms", [])]
    if not rows:
        raise ValueError(f"{path}: no Atoms section")
    rows.sort(key=lambda w: int(w[0]))
    ids = np.array([int(w[0]) for w in rows])
    types = np.array([int(w[1]) for w in rows])
    q = np.array([float(w[2]) for w in rows])
    pos = np.array([[float(x) for x in w[3:6]] for w in rows]) - lo
    images = np.array([[int(x) for x in w[6:9]] for w in rows]) if len(rows[0]) >= 9 else None
    vel = None
    if "Velocities" in sections:
        vrows = sorted((r.split() for r in sections["Velocities"]), key=lambda w: int(w[0]))
        vel = np.array([[float(x) for x in w[1:4]] for w in vrows])
    return DataFile(box, ids, types, q, pos, images, vel)


def write_json(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
