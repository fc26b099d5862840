"""Python steps of the LLZO stages, run as processes through a launcher:

    python -m runbook.llzo.steps build  build.json    -> bicrystal.data, bicrystal.json
    python -m runbook.llzo.steps insert insert.json   -> inserted.data, excess_ids.txt, insert.json

Each reads its rendered JSON parameters and writes its outputs in the working directory
(the stage folder). Paths inside the parameters are relative to it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from runbook.llzo import TYPE_IDS, bicrystal, contacts, insert, lmpdata

BICRYSTAL_SCHEMA = "llzo-bicrystal/1"
INSERT_SCHEMA = "llzo-insert/1"


def spec_of(p: dict) -> bicrystal.BicrystalSpec:
    return bicrystal.BicrystalSpec(
        plane=tuple(p["plane"]),
        repeat=tuple(p["repeat"]),
        a=float(p["a_A"]),
        gap=float(p.get("gap_A", 0.0)),
        termination=int(p["termination"]),
        shift=tuple(p.get("shift_A", (0.0, 0.0))),
        control=bool(p.get("control", False)),
        dopant=p.get("dopant"),
        dopant_level=float(p.get("dopant_level", 0.0)),
        removal=p.get("removal", "neutral"),
    )


def _scan(p: dict, spec: bicrystal.BicrystalSpec) -> tuple[bicrystal.BicrystalSpec, dict]:
    """The translation scan (runbook.llzo.scan) on `scan_repeat`, written to scan.json;
    the spec at its lowest-energy point."""
    from runbook.llzo import potential, scan

    grid = scan.ScanGrid(**{k: tuple(v) for k, v in p["scan"].items()})
    cell = replace(spec, repeat=tuple(p.get("scan_repeat") or spec.repeat))
    pset = potential.load(
        Path(p["potential_file"]) if p.get("potential_file") else potential.DEFAULT_FILE
    )
    scanned = scan.run(cell, grid, int(p.get("scan_seed", 1)), pset, echo=print)
    lmpdata.write_json(Path("scan.json"), scanned)
    return scan.spec_at(spec, scanned["best_point"]), scanned


def build(p: dict) -> dict:
    """The structure of the study (bicrystal or control) at the translation given, or at
    the lowest-energy point of a translation scan (`scan`: a grid, run on `scan_repeat`)."""
    spec = spec_of(p)
    scanned = None
    if p.get("scan") and not spec.control:
        spec, scanned = _scan(p, spec)
    b = bicrystal.build(spec, int(p["seed"]))
    syms = b.atoms.get_chemical_symbols()
    data = lmpdata.from_symbols(b.box, syms, b.atoms.positions)
    what = "control (no boundary)" if spec.control else "bicrystal"
    lmpdata.write_data(Path("bicrystal.data"), data,
                       f"LLZO Sigma{spec.sigma} ({spec.plane[0]}{spec.plane[1]}0)/[001] {what}, "
                       f"{spec.composition.formula()}, seed {b.seed}")  # fmt: skip
    np.savez(Path("li_sites.npz"), **b.sites)
    np.savez(Path("grains.npz"), id=data.ids, grain=b.atoms.get_array("grain").astype(np.int8))
    doc = {
        "schema": BICRYSTAL_SCHEMA,
        "data_file": "bicrystal.data",
        "box_A": list(b.box),
        "gb_planes_A": [float(z) for z in b.gb_planes],
        "gb_normal": "z",
        "control": spec.control,
        "sigma": spec.sigma,
        "plane_hkl": [spec.plane[0], spec.plane[1], 0],
        "tilt_axis": [0, 0, 1],
        "repeat": list(spec.repeat),
        "termination": spec.termination,
        "shift_A": list(spec.shift),
        "a_A": spec.a,
        "gap_A": spec.gap,
        "seed": b.seed,
        "composition": spec.composition.formula(),
        "dopant": spec.dopant,
        "dopant_level": spec.dopant_level,
        "counts": b.counts(),
        "charge_e": b.charge(),
        "half_charges_e": list(b.half_charges()),
        "cuts_A": list(b.cuts),
        "removal_rule": spec.removal,
        "removed_at_boundaries": b.removed,
        "li_candidate_sites": b.n_li_sites,
        "li_sites": "li_sites.npz",
        "grains": "grains.npz",
        "scan": "scan.json" if scanned else None,
        "type_ids": {s: t for s, t in TYPE_IDS.items() if t <= data.n_types},
        "min_dist_A": {
            "-".join(sorted(k)) if len(k) == 2 else f"{next(iter(k))}-{next(iter(k))}": v
            for k, v in contacts.MIN_DIST.items()
        },  # fmt: skip
    }
    lmpdata.write_json(Path("bicrystal.json"), doc)
    return doc


def do_insert(p: dict) -> dict:
    data = lmpdata.read_data(Path(p["data_in"]))
    planes = tuple(p["gb_planes_A"])
    spec = insert.InsertSpec(
        n=int(p["n"]),
        gb_clearance_A=float(p["gb_clearance_A"]),
        min_dist_A=float(p["min_dist_A"]),
        temperature_K=float(p["temperature_K"]),
        seed=int(p["seed"]),
        placement=p.get("placement", "away"),
        near_band_A=float(p.get("near_band_A", 2.0)),
        compensation=p.get("compensation", "none"),
    )
    out, ids = insert.insert(data, planes, spec)  # type: ignore[arg-type]
    reduced = out.ids[: len(data.ids)][out.charges[: len(data.ids)] < data.charges - 1e-6]
    lmpdata.write_data(Path("inserted.data"), out, f"+{spec.n} excess Li, seed {spec.seed}")
    Path("excess_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    doc = {
        "schema": INSERT_SCHEMA,
        "data_file": "inserted.data",
        "ids_file": "excess_ids.txt",
        "n_excess": spec.n,
        "ids": [int(i) for i in ids],
        "gb_planes_A": list(planes),
        "gb_clearance_A": spec.gb_clearance_A,
        "placement": spec.placement,
        "near_band_A": spec.near_band_A,
        "compensation": spec.compensation,
        "reduced_ids": [int(i) for i in reduced],
        "min_dist_A": spec.min_dist_A,
        "temperature_K": spec.temperature_K,
        "seed": spec.seed,
        "charge_e": round(out.charge(), 6),
        "positions_A": np.round(out.positions[-spec.n :], 4).tolist(),
    }
    lmpdata.write_json(Path("insert.json"), doc)
    return doc


STEPS = {"build": build, "insert": do_insert}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in STEPS:
        raise SystemExit(f"usage: python -m runbook.llzo.steps {{{'|'.join(STEPS)}}} PARAMS.json")
    doc = STEPS[args[0]](json.loads(Path(args[1]).read_text()))
    print(json.dumps({k: v for k, v in doc.items() if k != "positions_A"}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
