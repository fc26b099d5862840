"""Step `sample`: every candidate frame of the potential study -> candidates.extxyz.

    python -m runbook.potential.sample sample.json

Each frame carries in its extxyz info: `env_class` (runbook.potential.ENV_CLASSES),
`family` (the structure family), `generator` (`ideal+distort`, or `md-<T>K-<mobile>`:
a snapshot of the classical baseline) and `cell` (the cell it came from). Writes
sample.json: counts per class, family and generator, and the GB cells' construction.

Provenance (also in sample.json): positions come from crystallographic site data
(runbook.llzo.garnet, runbook.potential.phases), seeded Li orderings, random strain and
rattle, and CHEAP classical MD (runbook.potential.classical: the rigid-ion Buckingham
baseline, no Al parameters). Nothing here is a label: pw.x labels what `select` keeps.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
from ase import Atoms
from ase.io import write

from runbook import crystal
from runbook.potential import cells, classical, gbcell, phases
from runbook.potential.config import Distort, MdSampling, SampleConfig
from runbook.steps import params

SCHEMA = "potential-sample/1"


def clean(atoms: Atoms, **info) -> Atoms:
    """Symbols, positions and cell only (no tags or arrays), with `info`."""
    out = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell,
                pbc=True)  # fmt: skip
    out.info = {k: v for k, v in info.items()}
    return out


def distorted(base: Atoms, n: int, d: Distort, rng: np.random.Generator, **info) -> list[Atoms]:
    out = []
    for _ in range(n):
        atoms, _eps = crystal.strained_rattled(base, rng, d.strain_max, d.rattle_A)
        out.append(clean(atoms, generator="ideal+distort", **info))
    return out


def md_frames(base: Atoms, md: MdSampling | None, k: int, seed: int, **info) -> list[Atoms]:
    """Snapshots of run k of a class (temperature temperatures_K[k % n])."""
    if md is None:
        return []
    t = md.temperatures_K[k % len(md.temperatures_K)]
    spec = classical.MdSpec(
        temperature_K=t, steps=md.steps, every=md.every, skip=md.skip,
        timestep_fs=md.timestep_fs, mobile=md.mobile, seed=seed,
    )  # fmt: skip
    gen = f"md-{t:g}K-{md.mobile}"
    return [clean(s, generator=gen, **info) for s in classical.snapshots(base, spec)]


def bulk(c: SampleConfig) -> list[Atoms]:
    b, out = c.bulk, []
    for k in range(b.orderings):
        base = cells.primitive_cell(c.seed * 1000 + k)
        tag = dict(env_class="bulk", family="llzo", cell=f"llzo-o{k}")
        rng = np.random.default_rng([c.seed, 1, k])
        out += [clean(base, generator="ideal", **tag)] if b.distorted_per_ordering == 0 else []
        out += distorted(base, b.distorted_per_ordering, b, rng, **tag)
        out += md_frames(base, b.md, k, c.seed * 100 + k + 1, **tag)
    for k in range(b.al_doped):
        rng = np.random.default_rng([c.seed, 2, k])
        base = cells.al_doped(cells.primitive_cell(c.seed * 1000 + 500 + k), rng)
        tag = dict(env_class="bulk", family="llzo-al", cell=f"llzo-al-o{k}")
        out += distorted(base, max(1, b.distorted_per_ordering), b, rng, **tag)
    return out


def gb(c: SampleConfig) -> tuple[list[Atoms], list[dict]]:
    g, out, built = c.gb, [], []
    for m, cell in enumerate(g.cells):
        spec = gbcell.GbCellSpec(levels=cell.levels, x_fraction=cell.x_fraction,
                                 termination=cell.termination)  # fmt: skip
        for s in range(g.seeds):
            base, info = gbcell.build_any(spec, c.seed * 1000 + s)
            name = f"gb-c{m}-s{s}"
            built.append({"cell": name, "atoms": len(base), **info})
            family = "sigma5-210" + ("" if info["exact_periodic"] else "-window")
            tag = dict(env_class="gb", family=family, cell=name)
            rng = np.random.default_rng([c.seed, 3, m, s])
            out += distorted(base, g.distorted_per_cell, g, rng, **tag)
            out += md_frames(base, g.md, m * g.seeds + s, c.seed * 100 + 50 + s, **tag)
    return out, built


def excess_li(c: SampleConfig) -> list[Atoms]:
    e, out = c.excess_li, []
    for k in range(e.cells):
        rng = np.random.default_rng([c.seed, 4, k])
        base = cells.add_li(cells.primitive_cell(c.seed * 1000 + 700 + k), rng, e.min_dist_A)
        tag = dict(env_class="excess_li", family="llzo+li", cell=f"llzo+li-o{k}")
        out += distorted(base, e.distorted_per_cell, e, rng, **tag)
        out += md_frames(base, e.md, k, c.seed * 100 + 70 + k, **tag)
    return out


def related(c: SampleConfig) -> list[Atoms]:
    r, out = c.related, []
    for k, name in enumerate(r.phases):
        rng = np.random.default_rng([c.seed, 5, k])
        tag = dict(env_class="related", family=name, cell=name)
        out += distorted(phases.PHASES[name].build(), r.per_phase, r, rng, **tag)
    return out


def main(argv: list[str] | None = None) -> int:
    c = SampleConfig.model_validate(params(argv))
    t0 = time.perf_counter()
    gb_frames, gb_cells = gb(c)
    frames = bulk(c) + gb_frames + excess_li(c) + related(c)
    for i, a in enumerate(frames):
        a.info["candidate"] = i
    write("candidates.extxyz", frames, format="extxyz")
    doc = {
        "schema": SCHEMA,
        "n_candidates": len(frames),
        "per_class": dict(Counter(a.info["env_class"] for a in frames)),
        "per_family": dict(Counter(a.info["family"] for a in frames)),
        "per_generator": dict(Counter(a.info["generator"] for a in frames)),
        "gb_cells": gb_cells,
        "sampling": "site data + seeded Li orderings + strain/rattle + classical MD "
        "(rigid-ion Buckingham baseline: cheap sampling, never a label)",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    with open("sample.json", "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
    print(json.dumps(doc["per_class"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
