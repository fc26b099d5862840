"""Type names from LAMMPS data files and type maps (which type is Li).

Data-file contract (`write_data`): `N atom types`, and a `Masses` section (`type mass
[# name]`) or an `Atom Type Labels` section (`type name`); type names come from the
labels, else the comment, else the element whose standard mass matches.
"""

from __future__ import annotations

import re
from pathlib import Path

from bundle.core.errors import InputError

_SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]+?)\s*(#.*)?$")
_DATA_SECTIONS = {
    "Masses",
    "Atom Type Labels",
    "Atoms",
    "Velocities",
    "Bonds",
    "Angles",
    "Dihedrals",
    "Impropers",
    "Pair Coeffs",
    "PairIJ Coeffs",
    "Bond Coeffs",
    "Angle Coeffs",
    "Dihedral Coeffs",
    "Improper Coeffs",
    "Ellipsoids",
    "Lines",
    "Triangles",
    "Bodies",
    "Bond Type Labels",
    "Angle Type Labels",
    "Dihedral Type Labels",
    "Improper Type Labels",
}


def element_of_mass(mass: float) -> str | None:
    """The element whose standard atomic mass is within 0.1 u of `mass`, if exactly one."""
    from ase.data import atomic_masses, chemical_symbols

    hits = [
        s
        for s, m in zip(chemical_symbols[1:], atomic_masses[1:], strict=True)
        if abs(m - mass) < 0.1
    ]
    return hits[0] if len(hits) == 1 else None


def read_data_types(path: Path) -> dict[int, str]:
    """Type number → name from a LAMMPS data file (labels, then mass comments, then masses)."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        raise InputError(path, "(file)", f"cannot read: {e.strerror}", "check --data") from None
    ntypes = None
    for line in lines[1:]:
        m = re.match(r"^\s*(\d+)\s+atom types\b", line)
        if m:
            ntypes = int(m.group(1))
            break
    if ntypes is None:
        raise InputError(path, "header", "no 'N atom types' line", "give a LAMMPS data file")
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines[1:]:
        m = _SECTION.match(line)
        if m and m.group(1) in _DATA_SECTIONS:
            current = m.group(1)
            sections[current] = []
        elif current is not None and line.strip():
            sections[current].append(line)
    names: dict[int, str] = {}
    for line in sections.get("Atom Type Labels", [])[:ntypes]:
        t, name = line.split()[:2]
        names[int(t)] = name
    for line in sections.get("Masses", [])[:ntypes]:
        body, _, comment = line.partition("#")
        t, mass = body.split()[:2]
        if int(t) in names:
            continue
        label = comment.split()[0] if comment.split() else element_of_mass(float(mass))
        if label:
            names[int(t)] = label
    if not names:
        raise InputError(
            path,
            "Masses",
            "no type names: no 'Atom Type Labels' section and no Masses",
            "use --type-map 1:Li,2:La,... instead of --data",
        )
    return names


def parse_type_map(text: str) -> dict[int, str]:
    """`1:Li,2:La,3:Zr,4:O` → {1: 'Li', ...}."""
    out: dict[int, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        t, sep, name = item.partition(":")
        if not sep or not t.strip().isdigit() or not name.strip():
            raise InputError(
                "command line",
                "--type-map",
                f"cannot read {item!r}",
                "write TYPE:NAME pairs, e.g. --type-map 1:Li,2:La,3:Zr,4:O",
            )
        out[int(t)] = name.strip()
    if not out:
        raise InputError("command line", "--type-map", "empty", "e.g. --type-map 1:Li,2:O")
    return out
