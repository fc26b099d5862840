"""Step `deepmd_data`: the dataset stage's extxyz splits -> deepmd/npy systems.

Writes data/<split>/<system>/ (runbook.deepmd.npy) for every split that has frames, and
data.json: {split: {system: frames}}. The type map is the study's species, in order.
"""

from __future__ import annotations

import json
from pathlib import Path

from ase.io import read

from runbook.deepmd import npy
from runbook.steps import params


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    summary = {}
    for split, source in p["splits"].items():
        if not source:
            continue
        frames = read(source, index=":")
        try:
            summary[split] = npy.write_systems(frames, p["type_map"], Path("data") / split)
        except ValueError as e:
            raise SystemExit(f"{source}: {e}") from None
    Path("data.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
