"""Python steps that stages run as processes through a launcher
(`python -m runbook.steps.<step> <params.json>`), so they run the same way locally, in a
container or under Slurm. Each reads its rendered JSON parameters from the stage folder
(the working directory) and writes its outputs there."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def params(argv: list[str] | None = None) -> dict:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m runbook.steps.<step> PARAMS.json")
    return json.loads(Path(args[0]).read_text())
