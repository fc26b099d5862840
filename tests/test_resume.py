"""Resume after SIGKILL: a `bundle run` killed (whole process group) while `md` runs;
the next `bundle run` skips every finished stage by its manifest, redoes `md`, and no
file of a finished stage changes (bytes, mtime, set of files).

Starts from a copy of the session's smoke run (stages 01-05, already real), so only the
MD (and what follows it) runs here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook import files

pytestmark = [pytest.mark.engine, pytest.mark.slow]

FINISHED = ["01_structure", "02_dft", "03_dataset", "04_train", "05_deploy"]
MD_STEPS = "md.n_steps=600"  # the same value in both runs: the study is not changed


def _snapshot(run: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for stage in FINISHED:
        for p in sorted((run / stage).rglob("*")):
            if p.is_file():
                out[p.relative_to(run).as_posix()] = (files.sha256_file(p), p.stat().st_mtime_ns)
    return out


def _bundle_run(run: Path, log: Path) -> subprocess.Popen:
    bundle = Path(sys.executable).parent / "bundle"
    cmd = [str(bundle), "run", "smoke-li2o", "--run-dir", str(run), "--set", MD_STEPS]
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def test_sigkill_during_md_then_resume(smoke_run, tmp_path):
    _, source = smoke_run
    run = tmp_path / "run"
    run.mkdir()
    for stage in FINISHED:
        shutil.copytree(source / stage, run / stage)  # copy2: bytes and mtimes kept
    before = _snapshot(run)

    proc = _bundle_run(run, tmp_path / "first.log")
    log = run / "06_md" / "log.lammps"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until LAMMPS is really integrating
        if log.exists() and log.read_text().count("\n") > 60 and "Step" in log.read_text():
            break
        assert proc.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.5)
    else:
        pytest.fail("md did not start within 240 s")
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its md process, as a crash would
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "06_md" / "manifest.json").exists()  # killed: not complete
    assert "Loop time" not in log.read_text()
    status = subprocess.run(
        [str(Path(sys.executable).parent / "bundle"), "status", str(run), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    states = {s["name"]: s["status"] for s in json.loads(status.stdout)}
    assert states["md"] == "incomplete" and states["deploy"] == "complete"
    assert _snapshot(run) == before

    again = _bundle_run(run, tmp_path / "second.log")
    assert again.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    out = (tmp_path / "second.log").read_text()
    for i, stage in enumerate(["structure", "dft", "dataset", "train", "deploy"], start=1):
        assert f"[{i}/8] {stage}: complete, skipped (manifest matches)" in out
    assert "[6/8] md: removing previous folder (incomplete)" in out
    assert "[6/8] md: complete" in out and "[8/8] report: complete" in out
    assert _snapshot(run) == before  # no byte, mtime or file of a finished stage changed
    m = json.loads((run / "06_md" / "manifest.json").read_text())
    assert m["status"] == "complete" and m["result"]["n_steps"] == 600
    assert "Loop time" in (run / "06_md" / "log.lammps").read_text()
