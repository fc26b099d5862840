"""`bundle` commands run in a child process whose memory is capped (for hostile inputs).

The child imports the CLI once and runs one command per request (typer's CliRunner, so
no process start per command). The first request runs without a cap (imports, font
caches, first figures); right after it the child caps its own address space with
`resource.setrlimit(RLIMIT_AS)` at its size then plus `limit_mb`. A command that needs
more gets MemoryError, which the CLI reports as exit 4 (or, in code without that mapping,
as an exception): either way the test sees it. Each request also has a wall-clock limit.

Each reply: exit code, stdout, stderr, and the exception that escaped the CLI (None when
the CLI ended it with an exit code: with the real `bundle` command an escaped exception
is a traceback).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _child(reply_fd: int, limit_mb: int) -> None:
    import resource

    from typer.testing import CliRunner

    from bundle.cli import app

    out = os.fdopen(reply_fd, "w")
    runner = CliRunner()
    capped = False
    for line in sys.stdin:
        r = runner.invoke(app, json.loads(line))
        exc = r.exception if not isinstance(r.exception, SystemExit | None) else None
        reply = {
            "exit": r.exit_code,
            "stdout": r.stdout,
            "stderr": r.stderr,
            "exception": f"{type(exc).__name__}: {exc}"[:400] if exc is not None else None,
        }
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if not capped:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            soft = _vm_bytes() + limit_mb * 2**20
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            capped = True


class BoundedCli:
    """Parent side: `cli(*args)` -> reply dict. Close it (or use `with`)."""

    def __init__(self, limit_mb: int = 256, timeout_s: float = 120.0):
        self.limit_mb, self.timeout_s = limit_mb, timeout_s
        r, w = os.pipe()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bounded_cli", str(w), str(limit_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(w,),
            cwd=ROOT,
            env=env,
            text=True,
        )
        os.close(w)
        self._replies = os.fdopen(r)

    def __call__(self, *args: object) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([str(a) for a in args]) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self._replies], [], [], self.timeout_s)
        if not ready:
            self.close()
            raise AssertionError(f"`bundle {' '.join(map(str, args))}` ran over {self.timeout_s} s")
        line = self._replies.readline()
        if not line:
            code = self.proc.wait()
            raise AssertionError(f"the bounded CLI process died (exit {code}) on {args}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._replies.close()

    def __enter__(self) -> BoundedCli:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
