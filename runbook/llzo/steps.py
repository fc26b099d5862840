"""Python steps of the LLZO stages, run as processes through a launcher:

    python -m runbook.llzo.steps build  build.json    -> bicrystal.data, bicrystal.json
    python -m runbook.llzo.steps insert insert.json   -> inserted.data, excess_ids.txt, insert.json

Each reads its rendered JSON parameters and writes its outputs in the working directory
(the stage folder). Paths inside the parameters are relative to it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from runbook.llzo import TYPE_IDS, bicrystal, insert, lmpdata

BICRYSTAL_SCHEMA = "llzo-bicrystal/1"
INSERT_SCHEMA = "llzo-insert/1"


def build(p: dict) -> dict:
    spec = bicrystal.BicrystalSpec(
        plane=tuple(p["plane"]),
        repeat=tuple(p["repeat"]),
        a=float(p["a_A"]),
        gap=float(p["gap_A"]),
        termination=int(p["termination"]),
    )
    b = bicrystal.build(spec, int(p["seed"]))
    data = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    lmpdata.write_data(
        Path("bicrystal.data"),
        data,
        f"LLZO Sigma{spec.sigma} ({spec.plane[0]}{spec.plane[1]}0)/[001] bicrystal, seed {b.seed}",
    )
    doc = {
        "schema": BICRYSTAL_SCHEMA,
        "data_file": "bicrystal.data",
        "box_A": list(b.box),
        "gb_planes_A": [float(z) for z in b.gb_planes],
        "gb_normal": "z",
        "sigma": spec.sigma,
        "plane_hkl": [spec.plane[0], spec.plane[1], 0],
        "tilt_axis": [0, 0, 1],
        "repeat": list(spec.repeat),
        "termination": spec.termination,
        "a_A": spec.a,
        "gap_A": spec.gap,
        "seed": b.seed,
        "counts": b.counts(),
        "charge_e": b.charge(),
        "removed_at_boundaries": b.removed,
        "li_candidate_sites": b.n_li_sites,
        "type_ids": TYPE_IDS,
        "min_dist_A": {
            "-".join(sorted(k)) if len(k) == 2 else f"{next(iter(k))}-{next(iter(k))}": v
            for k, v in bicrystal.MIN_DIST.items()
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
    )
    out, ids = insert.insert(data, planes, spec)  # type: ignore[arg-type]
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
