"""Property: `bundle analyze` on random corruptions of a valid dump (plain or gzip, the
gzip stream itself corrupted too) exits 0 with a strict-JSON results.json, or 3 with
one line and the output folder exactly as it was; never a traceback, never exit 4, never
a staging folder left behind; memory bounded (tests.props: +256 MiB, RLIMIT_AS)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.lammpsio import dump_columns, write_frame
from tests.bounded_cli import BoundedCli
from tests.props import (
    LIMIT_MB,
    apply,
    assert_no_crash,
    assert_one_line_error,
    corruptions,
    props_settings,
    snapshot,
    strict_json,
)

L = np.array([10.0, 10.0, 24.0])
TOKENS = [b"nan", b"inf", b"-inf", b"-1", b"0", b"1e400", b"1e12", b"1e300", b"abc", b"",
          b"99999999999999999999", b"1.5", b"ITEM:", b"xy", b"\xff"]  # fmt: skip
OPTS = ("--timestep-fs", 1, "--type-map", "1:Li,2:O", "--d-bulk", 4, "--avg-window-ps", 0.2,
        "--excess-above-id", 20, "--n-blocks", 2)  # fmt: skip


def valid_dump() -> bytes:
    """6 frames of 24 Li (ids 1-24, 21-24 excess) and 8 O, a random walk."""
    import io

    rng = np.random.default_rng(3)
    ids = np.arange(1, 33)
    types = np.where(ids <= 24, 1, 2)
    pos = rng.uniform(0, 1, (32, 3)) * L
    f = io.BytesIO()
    for k in range(6):
        write_frame(
            f, 100 * k, [0, 0, 0], L, dump_columns("unwrapped", ids, types, pos, [0] * 3, L)
        )
        pos = pos + rng.normal(scale=0.3, size=pos.shape)
    return f.getvalue()


VALID = valid_dump()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """(bounded CLI, folder, output folder holding a good earlier analysis)."""
    tmp = tmp_path_factory.mktemp("props-dump")
    (tmp / "good.dump").write_bytes(VALID)
    out = tmp / "out"
    with BoundedCli(limit_mb=LIMIT_MB, timeout_s=120) as cli:
        first = cli("analyze", tmp / "good.dump", *OPTS, "--out", out)
        assert first["exit"] == 0 and first["exception"] is None, first
        yield cli, tmp, out


@props_settings(25)
@given(
    ops=corruptions(TOKENS),
    gz=st.sampled_from(["plain", "gzip", "gzip-damaged"]),
    gz_ops=corruptions([b""]),
    drop=st.booleans(),
)
def test_corrupted_dumps_exit_0_or_3_and_leave_no_partial_output(work, ops, gz, gz_ops, drop):
    cli, tmp, out = work
    data = apply(VALID, ops)
    if gz != "plain":
        data = gzip.compress(data, mtime=0)
        if gz == "gzip-damaged":
            data = apply(data, [op for op in gz_ops if op[0] in ("flip", "truncate", "delete")])
    dump = tmp / ("bad.dump.gz" if gz != "plain" else "bad.dump")
    dump.write_bytes(data)
    before = snapshot(out)
    extra = ("--drop-incomplete-frame",) if drop else ()
    r = cli("analyze", dump, *OPTS, *extra, "--out", out)
    assert_no_crash(r, (0, 3))
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # no staging
    if r["exit"] == 3:
        assert_one_line_error(r)
        assert snapshot(out) == before
    else:
        doc = strict_json((out / "results.json").read_text())
        assert doc["schema"] == "gb-analysis/1" and doc["n_frames"] >= 1
