"""A `gb-reference/1` document made from replicas of a study (what `bundle check` reads,
checks.reference): the part both reference makers share (runbook.llzo.mkref,
runbook.lidiff.mkref), namely the document's frame and provenance, their command line,
reading the replicas' results and writing the file. What is judged and how its bounds
are set stays each maker's own.

    python -m runbook.<study>.mkref --name NAME --out FILE --command "..." RESULTS.json ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from bundle.core import __version__

SCHEMA = "gb-reference/1"


def r6(x: float) -> float:
    """A number as recorded in a reference: 6 significant digits."""
    return float(f"{float(x):.6g}")


def document(
    name: str,
    source: str,
    command: str,
    replicas: list[str],
    parameters: dict[str, Any],
    quantities: dict[str, dict],
    **made_by: Any,
) -> dict[str, Any]:
    """The reference document; `made_by` adds the maker's own record of its bounds after
    the provenance every reference carries (command, version, date, replicas)."""
    return {
        "schema": SCHEMA,
        "name": name,
        "source": source,
        "made_by": {
            "command": command,
            "bundle_version": __version__,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "replicas": replicas,
            **made_by,
        },
        "parameters": parameters,
        "quantities": quantities,
    }


def parser(prog: str) -> argparse.ArgumentParser:
    """The options every maker takes; a maker adds its own."""
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--command", required=True, help="the command that made the replicas")
    ap.add_argument("results", type=Path, nargs="+", help="results.json of each replica")
    return ap


def read_results(paths: list[Path]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def write(out: Path, header: str, doc: dict[str, Any]) -> None:
    """The reference file: `header` (comment lines) then the document."""
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
