"""One results.json (schema gb-analysis/1) from the study's two analyses.

    python -m runbook.llzo.results PROFILE_DIR EXCESS_DIR OUT.json [--control DIR]
        [--crystal DIR]

The published study measured the Li profile, Γ and diffusion on the base system
(検証A) and the excess-Li band counts after inserting Li (検証B). `bundle analyze` is run
on each trajectory; this step takes the profile/Γ/diffusion sections from the first and
`excess`, `n_excess` and the excess averaging parameters from the second. The extra key
`sources` says which file each section came from; nothing is recomputed here. With the
results of a boundary-free control run and/or a single crystal of the same composition
(their `bundle analyze` folders), `reference_runs` gets Γ against the crystal density and
the control-vs-boundary table (checks.crystal).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bundle.core import atomic
from checks import crystal as cx
from checks.extras import REFERENCE_RUNS

EXCESS_PARAMETERS = ("avg_window_ps", "n_blocks")


def merge(profile: dict, excess: dict, profile_src: str, excess_src: str) -> dict:
    for name, doc in (("profile", profile), ("excess", excess)):
        if doc.get("schema") != "gb-analysis/1":
            raise ValueError(f"{name}: not a gb-analysis/1 results document")
    shared = ("dz_A", "w_A", "d_bulk_A", "w_start_A")
    for k in shared:
        if profile["parameters"].get(k) != excess["parameters"].get(k):
            raise ValueError(f"the two analyses differ in {k}")
    if excess.get("excess") is None:
        raise ValueError("excess: no excess section (were the excess ids given?)")
    out = dict(profile)
    out["parameters"] = dict(profile["parameters"])
    for k in EXCESS_PARAMETERS:
        out["parameters"][k] = excess["parameters"].get(k)
    out["n_excess"] = excess["n_excess"]
    out["excess"] = excess["excess"]
    out["sources"] = {
        "profile": profile_src,
        "gamma": profile_src,
        "diffusion": profile_src,
        "excess": excess_src,
        "excess_window_frames": excess["n_frames"],
    }
    return out


def with_reference_runs(doc: dict, control: dict | None, crystal: dict | None) -> dict:
    """`doc` plus the reference_runs block when a control or a single crystal was run."""
    section = cx.section(doc, crystal, control)
    return doc if section is None else doc | {REFERENCE_RUNS: section}


def _read(folder: Path | None) -> dict | None:
    return None if folder is None else json.loads((folder / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runbook.llzo.results")
    ap.add_argument("profile", type=Path)
    ap.add_argument("excess", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--control", type=Path, help="bundle analyze folder of the control run")
    ap.add_argument("--crystal", type=Path, help="bundle analyze folder of the single crystal")
    a = ap.parse_args(argv)
    p, e = a.profile / "results.json", a.excess / "results.json"
    doc = merge(json.loads(p.read_text()), json.loads(e.read_text()), str(p), str(e))
    doc = with_reference_runs(doc, _read(a.control), _read(a.crystal))
    atomic.write_file(a.out, atomic.strict_json(doc, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
