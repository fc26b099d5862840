"""DeePMD-kit's `deepmd/npy` data format: our own writer and reader (cross-checked
against dpdata 1.1.0 both ways in tests/test_deepmd_data.py).

A *system* is a folder of frames that share their atoms (count, order and types):

    <system>/type_map.raw       species names, one a line (the model's type_map)
    <system>/type.raw           one type index per atom (into type_map), one a line
    <system>/set.000/box.npy    (n_frames, 9)       cell vectors a, b, c as rows, Å
    <system>/set.000/coord.npy  (n_frames, 3 N)     Cartesian positions, Å
    <system>/set.000/energy.npy (n_frames,)         total energy, eV
    <system>/set.000/force.npy  (n_frames, 3 N)     eV/Å
    <system>/set.000/virial.npy (n_frames, 9)       eV; virial = -stress * volume
                                                    (ASE's stress sign, as dpdata)

Units are DeePMD's (eV, Å), the same as the dataset stage's extxyz (runbook.qe converts
at its parser), so nothing is converted here. Frames are grouped by the exact sequence
of their atoms' types; atom order is kept (a system's name is its formula in type_map
order, e.g. `Li8O4`, with `-2`, `-3` ... when two atom orders share one formula).
Only fully periodic frames are written (the DFT data are).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SET = "set.000"


@dataclass
class System:
    """One deepmd/npy system in memory. Arrays as stored (see the module docstring)."""

    type_map: list[str]
    types: np.ndarray  # (N,) int
    box: np.ndarray  # (F, 9)
    coord: np.ndarray  # (F, 3N)
    energy: np.ndarray | None = None  # (F,)
    force: np.ndarray | None = None  # (F, 3N)
    virial: np.ndarray | None = None  # (F, 9)

    @property
    def n_frames(self) -> int:
        return int(self.coord.shape[0])

    def formula(self) -> str:
        counts = np.bincount(self.types, minlength=len(self.type_map))
        return "".join(f"{s}{n}" for s, n in zip(self.type_map, counts, strict=True) if n)


def _labels(atoms) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
    """(energy eV, forces eV/Å, virial eV) of an ASE frame with a calculator's results."""
    calc = atoms.calc
    if calc is None:
        return None, None, None
    res = calc.results
    energy = float(res["energy"]) if "energy" in res else None
    forces = np.asarray(res["forces"], float) if "forces" in res else None
    virial = None
    if "stress" in res:
        stress = atoms.get_stress(voigt=False)
        virial = -atoms.get_volume() * stress
    return energy, forces, virial


def to_systems(frames, type_map: list[str]) -> list[System]:
    """Group labelled ASE frames into systems (order of first appearance)."""
    index = {s: i for i, s in enumerate(type_map)}
    groups: dict[tuple[int, ...], list] = {}
    for k, atoms in enumerate(frames):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(index))
        if unknown:
            raise ValueError(f"frame {k}: species {unknown} are not in the type map {type_map}")
        if not all(atoms.pbc):
            raise ValueError(f"frame {k}: not periodic in all three directions")
        key = tuple(index[s] for s in atoms.get_chemical_symbols())
        groups.setdefault(key, []).append(atoms)
    out = []
    for key, members in groups.items():
        labels = [_labels(a) for a in members]
        e, f, v = zip(*labels, strict=True)
        out.append(
            System(
                type_map=list(type_map),
                types=np.array(key, int),
                box=np.array([a.cell.array.reshape(9) for a in members]),
                coord=np.array([a.positions.reshape(-1) for a in members]),
                energy=None if None in e else np.array(e, float),
                force=None if any(x is None for x in f) else np.array([x.reshape(-1) for x in f]),
                virial=None if any(x is None for x in v) else np.array([x.reshape(9) for x in v]),
            )
        )
    return out


def names(systems: list[System]) -> list[str]:
    """Folder names: the formula, suffixed `-2`, `-3` ... when formulas repeat."""
    seen: dict[str, int] = {}
    out = []
    for s in systems:
        f = s.formula()
        seen[f] = seen.get(f, 0) + 1
        out.append(f if seen[f] == 1 else f"{f}-{seen[f]}")
    return out


def write_system(folder: Path, s: System) -> Path:
    sets = folder / SET
    sets.mkdir(parents=True, exist_ok=True)
    (folder / "type_map.raw").write_text("".join(f"{t}\n" for t in s.type_map))
    (folder / "type.raw").write_text("".join(f"{int(t)}\n" for t in s.types))
    np.save(sets / "box.npy", s.box)
    np.save(sets / "coord.npy", s.coord)
    for name in ("energy", "force", "virial"):
        arr = getattr(s, name)
        if arr is not None:
            np.save(sets / f"{name}.npy", arr)
    return folder


def write_systems(frames, type_map: list[str], out: Path) -> dict[str, int]:
    """Write `frames` as systems under `out`; returns {system folder name: frames}."""
    systems = to_systems(frames, type_map)
    written = {}
    for name, s in zip(names(systems), systems, strict=True):
        write_system(out / name, s)
        written[name] = s.n_frames
    return written


def read_system(folder: Path) -> System:
    """A system folder (every `set.*` in order) back into memory."""
    folder = Path(folder)
    type_map = (folder / "type_map.raw").read_text().split()
    types = np.loadtxt(folder / "type.raw", dtype=int, ndmin=1)
    sets = sorted(folder.glob("set.*"))
    if not sets:
        raise ValueError(f"{folder}: no set.* folder")

    def cat(name: str) -> np.ndarray | None:
        parts = [np.load(d / f"{name}.npy") for d in sets if (d / f"{name}.npy").exists()]
        if not parts:
            return None
        if len(parts) != len(sets):
            raise ValueError(f"{folder}: {name}.npy is missing from some set.* folders")
        return np.concatenate(parts)

    n = len(types)
    coord, box = cat("coord"), cat("box")
    if coord is None or box is None or coord.shape[1] != 3 * n:
        raise ValueError(f"{folder}: coord.npy/box.npy missing or not {3 * n} columns")
    energy = cat("energy")  # (F,) as we write it; dpdata writes (F, 1)
    energy = None if energy is None else energy.reshape(-1)
    return System(type_map, types, box, coord, energy, cat("force"), cat("virial"))


def find_systems(root: Path) -> list[Path]:
    """Every system folder under `root` (a folder holding type.raw), sorted."""
    return sorted(p.parent for p in Path(root).rglob("type.raw"))
