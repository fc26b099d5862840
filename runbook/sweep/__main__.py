"""Entry of the Slurm jobs of a sweep (runbook.sweep.slurm renders these lines):

    python -m runbook.sweep stage STUDY RUN_DIR STAGE   a point's stages up to STAGE
    python -m runbook.sweep collect RUN_DIR             the sweep report

A `stage` job runs inside its own batch job: the stage engine is told so (a parameter),
so a profile's `slurm` launcher runs its inner launcher here instead of submitting again.
Finished stages are skipped by their manifests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bundle.core.errors import BundleError
from runbook.sweep.collect import collect
from runbook.sweep.local import Selection, run_point


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 4 and args[0] == "stage":
            run_point(Path(args[1]), Path(args[2]), Selection(until=args[3]), in_batch_job=True)
        elif len(args) == 2 and args[0] == "collect":
            collect(Path(args[1]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
