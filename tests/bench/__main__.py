"""`python -m tests.bench [--only AREA ...] --out DIR`: run the benchmarks, one JSON per area."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import tempfile
import time
from pathlib import Path

import tests.bench as pkg


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench")
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--only", nargs="*", help="areas to run (default: all)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    areas = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(pkg.__path__)
        if m.name.startswith("bench_")
    )
    for area in args.only or areas:
        mod = importlib.import_module(f"tests.bench.bench_{area}")
        with tempfile.TemporaryDirectory(prefix=f"bench-{area}-") as tmp:
            t0 = time.perf_counter()
            figures = mod.run(Path(tmp))
        doc = {
            "schema": "bench/1",
            "area": area,
            "host": {"machine": platform.machine(), "cpus": __import__("os").cpu_count()},
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_s": round(time.perf_counter() - t0, 2),
            "figures": figures,
        }
        path = args.out / f"{area}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"{area}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
