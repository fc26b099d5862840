"""Step `structure`: seeded strained + rattled supercells of a prototype → structures.extxyz."""

from __future__ import annotations

import numpy as np
from ase.io import write

from runbook import crystal
from runbook.steps import params


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    rng = np.random.default_rng(p["seed"])
    base = crystal.antifluorite(p["cation"], p["anion"], p["a_angstrom"])
    frames = []
    for fs in p["frames"]:
        cell = crystal.supercell(base, fs["supercell"])
        for _ in range(fs["n"]):
            atoms, eps = crystal.strained_rattled(cell, rng, p["strain_max"], p["rattle_angstrom"])
            atoms.info["frame"] = len(frames)
            atoms.info["supercell"] = "x".join(str(r) for r in fs["supercell"])
            atoms.info["volumetric_strain"] = float(np.trace(eps))
            frames.append(atoms)
    write("structures.extxyz", frames, format="extxyz")
    print(f"wrote structures.extxyz: {len(frames)} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
