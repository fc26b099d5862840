"""The CLI boundary: domain errors keep their exit codes, anything unexpected is one line
and exit 4 (a failure of the program or its environment, never "a check failed"), and
`bundle --debug` shows the traceback instead."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_ENGINE, EXIT_INTERRUPTED

REF = """schema: gb-reference/1
quantities:
  n_frames: {value: 3, lower: 0, upper: 1, bounds: absolute, unit: "1"}
"""


@pytest.fixture
def files(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"schema": "gb-analysis/1", "n_frames": 3, "parameters": {}}))
    ref = tmp_path / "ref.yaml"
    ref.write_text(REF)
    return results, ref


def check(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def _raise(exc):
    def f(*args, **kwargs):
        raise exc

    return f


@pytest.mark.parametrize(
    "exc, shown",
    [
        (ZeroDivisionError("float division by zero"), "ZeroDivisionError: float division by zero"),
        (MemoryError(), "MemoryError"),
        (OSError(28, "No space left on device"), "OSError: [Errno 28] No space left on device"),
        (KeyError("multi\nline"), "KeyError: 'multi\\nline'"),
    ],
)
def test_an_unexpected_exception_is_one_line_and_exit_4(files, monkeypatch, exc, shown):
    results, ref = files
    assert check("check", results, "--reference", ref).exit_code == 0
    monkeypatch.setattr("checks.reference.compare", _raise(exc))
    r = check("check", results, "--reference", ref)
    assert r.exit_code == EXIT_ENGINE, (r.exit_code, r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert (
        lines[0]
        == f"error: unexpected {shown} (re-run with `bundle --debug ...` for the traceback)"
    )


def test_debug_shows_the_traceback_and_domain_errors_keep_their_codes(files, monkeypatch):
    results, ref = files
    r = check("check", results, "--reference", ref.with_name("nope.yaml"))
    assert r.exit_code == EXIT_BAD_INPUT and "nope.yaml: --reference: neither" in r.stderr
    monkeypatch.setattr("checks.reference.compare", _raise(ZeroDivisionError("boom")))
    r = check("--debug", "check", results, "--reference", ref)
    assert isinstance(r.exception, ZeroDivisionError)  # the traceback is the caller's to print
    monkeypatch.setattr("checks.reference.compare", _raise(KeyboardInterrupt()))
    r = check("check", results, "--reference", ref)
    assert r.exit_code == EXIT_INTERRUPTED and r.stderr.strip() == "interrupted"
    r = check("check", results)  # usage errors stay typer's (exit 2)
    assert r.exit_code == 2


def test_describe_keeps_domain_codes_and_makes_one_line():
    from bundle.core.errors import CheckFailed, InputError, describe

    assert describe(InputError("f.yaml", "x", "bad\nvalue", "fix it")) == (
        EXIT_BAD_INPUT,
        "error: f.yaml: x: bad value; fix it",
    )
    assert describe(CheckFailed("2 FAILED"))[0] == 1
    code, line = describe(ValueError("x" * 1000))
    assert code == EXIT_ENGINE and len(line) < 400 and "\n" not in line
