"""The `train_deepmd` stage's steps in ONE Python process
(`python -m runbook.steps.deepmd_steps deepmd_steps.json`): data conversion, `dp train`,
`dp freeze` and `dp test` run one after the other through the same entry point the `dp`
console script calls (`deepmd.main.main(argv)`), so TensorFlow and deepmd-kit are
imported once per training instead of once per command (about 70 % of a toy training's
CPU was that start-up).

The parameter file lists the steps in order: {"steps": [{"name", "log", "argv"}, ...]}
where argv[0] is `dp` (deepmd-kit's command line, argv[1:] as `dp` takes them) or
`deepmd_data` (runbook.steps.deepmd_data, argv[1:] its parameter file). Each step's
stdout and stderr (file descriptors 1 and 2, so TensorFlow's C++ lines too) go to its
own log, the same logs the separate commands wrote (runbook.deepmd.logs parses them);
this process's own output (the launcher's log) gets one line per step, and
`timings.json` the wall and CPU seconds of each step (CPU of this process, all threads).

The process needs TensorFlow's and deepmd-kit's libraries on the loader path before it
starts: the stage's command declares `needs=("deepmd",)` (bundle.core.engines.deepmd_env).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from runbook.steps import deepmd_data, params

TIMINGS = "timings.json"


def _dp(argv: list[str]) -> None:
    from deepmd.main import main

    main(argv)


def _data(argv: list[str]) -> None:
    code = deepmd_data.main(argv)
    if code:
        raise SystemExit(code)


PROGRAMS: dict[str, Callable[[list[str]], None]] = {"dp": _dp, "deepmd_data": _data}


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """This process's stdout and stderr, at the file-descriptor level, into `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "w") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_step(step: dict) -> str | None:
    """Run one step with its output in its log; None on success, else why it failed
    (the traceback or the exit message is in the log)."""
    argv = list(step["argv"])
    program = PROGRAMS.get(argv[0])
    if program is None:
        return f"unknown program {argv[0]!r} (known: {', '.join(PROGRAMS)})"
    with output_to(Path(step["log"])):
        here = "in-process: python -m runbook.steps.deepmd_steps"
        print(f"# {shlex.join(argv)}  ({here})", flush=True)
        try:
            program(argv[1:])
        except SystemExit as e:
            if e.code in (None, 0):
                return None
            print(e.code, file=sys.stderr, flush=True)
            return f"exited with {e.code!r}"
        except Exception as e:  # noqa: BLE001 - reported with its traceback in the log
            traceback.print_exc()
            return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def main(argv: list[str] | None = None) -> int:
    steps = params(argv)["steps"]
    timings: dict[str, dict[str, float]] = {}
    status = 0
    for step in steps:
        w0, c0 = time.perf_counter(), _cpu()
        why = run_step(step)
        wall, cpu = time.perf_counter() - w0, _cpu() - c0
        timings[step["name"]] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
        if why is not None:
            print(f"{step['name']}: failed after {wall:.1f} s: {why}; see {step['log']}")
            status = 1
            break
        print(f"{step['name']}: done in {wall:.1f} s wall, {cpu:.1f} s CPU ({step['log']})")
    timings["process"] = {"cpu_s": round(_cpu(), 3)}
    Path(TIMINGS).write_text(json.dumps(timings, indent=2) + "\n")
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
