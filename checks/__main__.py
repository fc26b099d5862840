"""`python -m checks analyze REQUEST.json` and `python -m checks check REQUEST.json`: an
analysis or a check from its typed request (checks.request), run in the current folder.
How the runbook's analyze and check stages call the library (not the `bundle` CLI).

Exit status: 0 done (check: PASS), 1 check FAILed (the report is written: the verdict is
its `status`), 3 bad input, 4 or more another failure; one line on stderr, no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bundle.core import io
from bundle.core.errors import EXIT_CHECK_FAILED, EXIT_USAGE, BundleError
from checks import reference, request, results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("analyze", "check"):
        print(__doc__, file=sys.stderr)
        return EXIT_USAGE
    what, path = args[0], Path(args[1])
    try:
        doc = io.read_mapping(path)
        if what == "analyze":
            req = request.AnalysisRequest.from_json(doc)
            out, res = request.analyze(req, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
            print(results.summary_md(res))
            print(f"wrote {out}")
            return 0
        report = request.check(request.CheckRequest(**doc))
        print("\n".join(reference.console_lines(report)))
        return 0 if report["status"] == "PASS" else EXIT_CHECK_FAILED
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except (TypeError, KeyError) as e:  # a request file that does not fit its type
        print(f"error: {path}: {json.dumps(str(e))}: not a {what} request", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
