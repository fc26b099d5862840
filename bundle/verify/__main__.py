"""`python -m bundle.verify model-check ...`: the engines phase's worker (bundle.verify.worker)."""

from __future__ import annotations

import sys

from bundle.verify import worker

if __name__ == "__main__":
    if sys.argv[1:2] == ["model-check"]:
        raise SystemExit(worker.main(sys.argv[2:]))
    raise SystemExit("usage: python -m bundle.verify model-check ...")
