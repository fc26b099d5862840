"""One atomic output writer (bundle.core.atomic): a command writes into a staging folder
beside its output and moves the files in only when it succeeded. A failing `analyze`
leaves a good output folder exactly as it was; outputs that are files where a folder is
needed are one line, exit 3."""

from __future__ import annotations

import errno
import json

import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_ENGINE
from tests.test_analyze_cli import BASE, write_dump


def run(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def good(tmp_path):
    """A dump and an output folder holding a good analysis plus a file of the user's."""
    dump = write_dump(tmp_path / "t.dump")
    out = tmp_path / "out"
    r = run("analyze", dump, *BASE, "--excess-above-id", 35, "--out", out)
    assert r.exit_code == 0, r.stderr
    (out / "notes.txt").write_text("mine\n")
    return dump, out


def test_a_crash_after_the_figures_leaves_the_output_folder_as_it_was(good, monkeypatch):
    dump, out = good
    before = snapshot(out)
    assert {"results.json", "summary.md", "profile.png", "excess_ngb.png", "msd.png"} <= set(before)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("checks.results.write_results", disk_full)
    r = run("analyze", dump, *BASE, "--excess-above-id", 30, "--out", out)
    assert r.exit_code == EXIT_ENGINE, (r.exit_code, r.stderr, r.exception)
    assert "No space left on device" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "t.dump"]  # no staging left


def test_a_new_run_replaces_its_own_outputs_and_keeps_the_users(good):
    dump, out = good
    r = run("analyze", dump, *BASE, "--out", out)  # no excess ids: no excess_ngb.png now
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "msd.png",
        "notes.txt",
        "profile.png",
        "results.json",
        "summary.md",
    ]
    assert json.loads((out / "results.json").read_text())["excess"] is None
    assert (out / "notes.txt").read_text() == "mine\n"


def test_outputs_that_are_files_or_inputs_are_one_line_exit_3(tmp_path):
    dump = write_dump(tmp_path / "t.dump")
    (tmp_path / "afile").write_text("not a folder\n")
    cases = [
        (("analyze", dump, *BASE, "--out", tmp_path / "afile"), "--out: ", "is a file"),
        (("analyze", dump, *BASE, "--out", tmp_path / "afile" / "x"), "--out: ", "is a file"),
        (("analyze", dump, *BASE, "--out", dump), "--out: ", "is an input of this command"),
        (("run", "smoke-li2o", "--run-dir", tmp_path / "afile"), "--run-dir: ", "is a file"),
    ]
    for args, option, problem in cases:
        r = run(*args)
        assert r.exit_code == EXIT_BAD_INPUT, (args, r.exit_code, r.stderr, r.exception)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and option in lines[0] and problem in lines[0], (args, lines)
    assert (tmp_path / "afile").read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "t.dump"]
