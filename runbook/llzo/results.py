"""One results.json (schema gb-analysis/1) from the study's two analyses.

    python -m runbook.llzo.results PROFILE_DIR EXCESS_DIR OUT.json

The published study measured the Li profile, Γ and diffusion on the base system
(検証A) and the excess-Li band counts after inserting Li (検証B). `bundle analyze` is run
on each trajectory; this step takes the profile/Γ/diffusion sections from the first and
`excess`, `n_excess` and the excess averaging parameters from the second. The extra key
`sources` says which file each section came from; nothing is recomputed here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bundle.core import atomic

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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        raise SystemExit("usage: python -m runbook.llzo.results PROFILE_DIR EXCESS_DIR OUT.json")
    p, e = Path(args[0]) / "results.json", Path(args[1]) / "results.json"
    doc = merge(json.loads(p.read_text()), json.loads(e.read_text()), str(p), str(e))
    atomic.write_file(Path(args[2]), atomic.strict_json(doc, indent=2))
    print(f"wrote {args[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
