"""Property: `bundle check --json` with random corruptions of a valid reference file
(YAML nasties: .nan, .inf, aliases, tags, flow collections, re-indented lines, cut or
flipped bytes, a billion-laughs block) exits 0 or 1 with a strict-JSON gb-check/1 report
whose status agrees with the exit code, or 3 with one line and the earlier report left as
it was; never a traceback, never exit 4; memory bounded (tests.props: +256 MiB)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bounded_cli import BoundedCli
from tests.props import (
    LIMIT_MB,
    apply,
    assert_no_crash,
    assert_one_line_error,
    corruptions,
    props_settings,
    strict_json,
)

VALID = b"""schema: gb-reference/1
name: props
source: this test
parameters:
  w_A: 2.0
  window_ps: [0.0, 5.0]
quantities:
  n_frames:
    value: 6
    lower: 1
    upper: 1
    bounds: absolute
    unit: "1"
  peak_ratio: {value: 3.0, lower: 0.2, upper: 0.2, bounds: relative, unit: "1"}
  gb_planes_A.0: {value: 12.0, lower: 1.0, upper: 1.0, bounds: absolute, unit: "A"}
  band_ratio: {value: 2.0, unit: "1", source: reported only}
"""
TOKENS = [b".nan", b".inf", b"-.inf", b"-1", b"1e400", b"1.0e+400", b"null", b"[]", b"{}",
          b"'x'", b"*a", b"&a", b"!!python/object/apply:os.system", b"[1, [2, [3]]]", b"true",
          b"0x10", b"~", b"<<:", b"{value: .nan}", b"absolute", b"relative", b":", b"- x",
          b"\xff"]  # fmt: skip
LAUGHS = b"x0: &x0 [l, l, l, l, l, l, l, l, l]\n" + b"".join(
    b"x%d: &x%d [" % (i, i) + b", ".join([b"*x%d" % (i - 1)] * 9) + b"]\n" for i in range(1, 9)
)
RESULTS = {
    "schema": "gb-analysis/1",
    "parameters": {"w_A": 2.0, "window_ps": [0.0, 5.0]},
    "n_frames": 6,
    "peak_ratio": 3.1,
    "band_ratio": 2.2,
    "gb_planes_A": [12.2, 24.2],
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("props-ref")
    (tmp / "results.json").write_text(json.dumps(RESULTS))
    (tmp / "ref.yaml").write_bytes(VALID)
    with BoundedCli(limit_mb=LIMIT_MB, timeout_s=60) as cli:
        first = cli("check", tmp / "results.json", "--reference", tmp / "ref.yaml")
        assert first["exit"] == 0 and first["exception"] is None, first
        yield cli, tmp


@props_settings(60)
@given(ops=corruptions(TOKENS), bomb=st.sampled_from([None, "top", "parameters"]))
def test_corrupted_references_give_a_valid_report_or_one_line(work, ops, bomb):
    cli, tmp = work
    data = apply(VALID, ops)
    if bomb == "top":
        data = LAUGHS + data
    elif bomb == "parameters":
        data = data.replace(b"  w_A: 2.0\n", b"  w_A: 2.0\n  laughs: *x8\n", 1)
        data = LAUGHS + data
    ref = tmp / "bad.yaml"
    ref.write_bytes(data)
    out = tmp / "report.json"
    out.write_text("earlier report\n")
    r = cli("check", tmp / "results.json", "--reference", ref, "--json", out)
    assert_no_crash(r, (0, 1, 3))
    if r["exit"] == 3:
        assert_one_line_error(r)
        assert out.read_text() == "earlier report\n"
        return
    report = strict_json(out.read_text())
    assert report["schema"] == "gb-check/1"
    assert report["status"] == ("PASS" if r["exit"] == 0 else "FAIL")
    assert {c["status"] for c in report["checks"]} <= {"PASS", "FAIL", "NOT-JUDGED"}
