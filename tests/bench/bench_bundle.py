"""Hashing throughput of `bundle.manifest.sha256_file` against `sha256sum` on the same file.

Every bundle file is hashed at pack, at install and at each verify, so the hash rate
bounds how fast a multi-GB image archive can be checked. The file is written once,
read once to warm the page cache (both contenders then read from memory: the figure
is the hash rate, not the disk's), then each contender runs `REPEATS` times and the
best time counts. Peers: `sha256sum` (GNU coreutils, the tool a site would use by
hand) and `hashlib.file_digest` (the standard library's own streaming helper).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

from bundle import manifest as mf

SIZE_MIB = 512
REPEATS = 3


def _best(fn) -> tuple[float, str]:
    best, digest = float("inf"), ""
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        digest = fn()
        best = min(best, time.perf_counter() - t0)
    return best, digest


def run(work: Path) -> dict:
    path = work / "blob.bin"
    with open(path, "wb") as f:
        for _ in range(SIZE_MIB):
            f.write(os.urandom(1 << 20))
    mf.sha256_file(path)  # warm the page cache

    ours_s, ours = _best(lambda: mf.sha256_file(path)[0])
    coreutils_s, theirs = _best(
        lambda: subprocess.run(
            ["sha256sum", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )

    def stdlib() -> str:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    stdlib_s, std = _best(stdlib)
    if not (ours == theirs == std):
        raise RuntimeError(f"digests differ: ours {ours}, sha256sum {theirs}, hashlib {std}")
    mib = SIZE_MIB
    return {
        "file_mib": mib,
        "repeats_best_of": REPEATS,
        "chunk_bytes": mf.CHUNK,
        "bundle_sha256_file": {"seconds": round(ours_s, 3), "mib_per_s": round(mib / ours_s, 1)},
        "sha256sum": {"seconds": round(coreutils_s, 3), "mib_per_s": round(mib / coreutils_s, 1)},
        "hashlib_file_digest": {
            "seconds": round(stdlib_s, 3),
            "mib_per_s": round(mib / stdlib_s, 1),
        },
        "ratio_vs_sha256sum": round(coreutils_s / ours_s, 3),  # > 1: ours is faster
        "ratio_vs_hashlib_file_digest": round(stdlib_s / ours_s, 3),
        "digests_equal": True,
    }
