"""`python -m bundle.verify model-check|deepmd-check ...`: the engines phase's workers
(bundle.verify.worker: the Allegro model; bundle.verify.deepmd_worker: the DeePMD model)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["model-check"]:
        from bundle.verify import worker

        raise SystemExit(worker.main(sys.argv[2:]))
    if sys.argv[1:2] == ["deepmd-check"]:
        from bundle.verify import deepmd_worker

        raise SystemExit(deepmd_worker.main(sys.argv[2:]))
    raise SystemExit("usage: python -m bundle.verify model-check|deepmd-check ...")
