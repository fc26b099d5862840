"""Shared pieces of the property-based tests (tests/test_props_*.py): random corruptions
of a valid input file, and what every outcome must look like.

The contract checked for every corrupted input: exit 0, or 1 with a valid report, or 3
with exactly one `error: ...` line (after any `warning: ` lines printed while reading);
never an escaped exception (a traceback), never exit 4 (bad input must not look like a
crash), never a partial or changed output when the command fails. Memory: the commands
run in tests.bounded_cli, whose address space may grow at most LIMIT_MB over its size
after a clean first run (RLIMIT_AS): an input that needs more raises MemoryError, which
is exit 4 and fails the property.

MLMD_PROPS_EXAMPLES sets the number of examples (default in each test); MLMD_PROPS_RANDOM=1
draws new ones each run (by default they are derived from the test, so CI is repeatable).
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LIMIT_MB = 256


def props_settings(default_examples: int):
    return settings(
        max_examples=int(os.environ.get("MLMD_PROPS_EXAMPLES", default_examples)),
        deadline=None,
        derandomize=os.environ.get("MLMD_PROPS_RANDOM") != "1",
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _at(frac: float, n: int) -> int:
    return min(n - 1, max(0, int(frac * n))) if n else 0


def _line_op(data: bytes, op: tuple) -> bytes:
    lines = data.split(b"\n")
    i = _at(op[1], len(lines))
    if op[0] == "delete_line":
        del lines[i]
    elif op[0] == "dup_line":
        lines.insert(i, lines[i])
    elif op[0] == "token":
        cells = lines[i].split(b" ")
        cells[_at(op[2], len(cells))] = op[3]
        lines[i] = b" ".join(cells)
    elif op[0] == "indent":
        lines[i] = b" " * op[2] + lines[i].lstrip(b" ")
    return b"\n".join(lines)


def apply(data: bytes, ops: list[tuple]) -> bytes:
    """`data` with each corruption of `ops` applied in turn."""
    for op in ops:
        if not data:
            break
        if op[0] == "flip":
            i = _at(op[1], len(data))
            data = data[:i] + bytes([data[i] ^ op[2]]) + data[i + 1 :]
        elif op[0] == "truncate":
            data = data[: _at(op[1], len(data))]
        elif op[0] == "insert":
            i = _at(op[1], len(data))
            data = data[:i] + op[2] + data[i:]
        elif op[0] == "delete":
            i = _at(op[1], len(data))
            data = data[:i] + data[i + op[2] :]
        else:
            data = _line_op(data, op)
    return data


frac = st.floats(0, 1, allow_nan=False)


def corruptions(tokens: list[bytes]):
    """A list of 1-4 corruptions: bytes flipped, cut, inserted or deleted; lines deleted,
    repeated or re-indented; a token of a line replaced by one of `tokens`."""
    op = st.one_of(
        st.tuples(st.just("flip"), frac, st.integers(1, 255)),
        st.tuples(st.just("truncate"), frac),
        st.tuples(st.just("insert"), frac, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), frac, st.integers(1, 64)),
        st.tuples(st.just("delete_line"), frac),
        st.tuples(st.just("dup_line"), frac),
        st.tuples(st.just("indent"), frac, st.integers(0, 6)),
        st.tuples(st.just("token"), frac, frac, st.sampled_from(tokens)),
    )
    return st.lists(op, min_size=1, max_size=4)


def strict_json(text: str):
    """JSON as every parser reads it: a bare NaN/Infinity raises."""

    def refuse(name):
        raise ValueError(f"bare {name}")

    return json.loads(text, parse_constant=refuse)


def assert_one_line_error(reply: dict) -> None:
    """One `error: ` line, last; before it only `warning: ` lines (printed while reading)."""
    lines = reply["stderr"].strip().splitlines()
    assert lines and lines[-1].startswith("error: "), reply["stderr"][-2000:]
    assert all(ln.startswith("warning: ") for ln in lines[:-1]), reply["stderr"][-2000:]


def assert_no_crash(reply: dict, allowed: tuple[int, ...]) -> None:
    assert reply["exception"] is None, reply
    assert reply["exit"] in allowed, (reply["exit"], reply["stderr"][-2000:])


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))}
