"""Run records (issue 14): a refused run changes no file of its run folder, a refused
sweep leaves no file behind, and a stage's child process that a `kill -9` of `bundle run`
left running is terminated by the re-run (runbook.children), which says so.

Cheap stages: `structure` (a Python step, ~1 s); the kill test runs real pw.x under the
lock's mpirun on one Li2O cell (toy cutoffs; ~15 s in all on 2 quiet cores).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bundle.cli import app
from runbook import files
from tests.conftest import require_program

runner = CliRunner()
STRUCTURE = {
    "a_angstrom": 4.61,
    "frames": [{"supercell": [1, 1, 1], "n": 1}],
    "seed": 7,
}
STUDY = {
    "schema": "study/1",
    "name": "records",
    "species": ["Li", "O"],
    "stages": ["structure", "second"],
    "structure": STRUCTURE,
    "second": {
        "kind": "structure",
        "a_angstrom": 4.0,
        "frames": [{"supercell": [1, 1, 1], "n": 1}],
    },
}
SWEEP = {
    **{k: v for k, v in STUDY.items() if k != "second"},
    "stages": ["structure"],
    "sweep": {"seeds": [1, 2], "set": {"seed": ["structure.seed"]}},
}


def _write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _tree(folder: Path) -> dict[str, tuple[str, int] | str]:
    """Every entry under `folder`: a file's SHA-256 and mtime, a folder as such."""
    out: dict[str, tuple[str, int] | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = (files.sha256_file(p), p.stat().st_mtime_ns) if p.is_file() else "dir"
    return out


def _bundle(*args: object):
    return runner.invoke(app, ["run", *map(str, args)])


def _refused(out) -> None:
    assert out.exit_code == 3, out.output
    assert out.output.strip().splitlines()[-1].startswith("error: "), out.output


def test_a_refused_rerun_changes_no_file_of_the_run(tmp_path):
    study = _write(tmp_path / "study.yaml", STUDY)
    run = tmp_path / "run"
    assert _bundle(study, "--run-dir", run).exit_code == 0
    before = _tree(run)
    assert "study.json" in before
    # a finished stage whose inputs changed (before: study.json was rewritten first)
    changed = _write(tmp_path / "changed.yaml", {**STUDY, "structure": {**STRUCTURE, "seed": 8}})
    out = _bundle(changed, "--run-dir", run)
    _refused(out)
    assert "--force structure" in out.output
    assert _tree(run) == before
    # a later stage refused after an earlier one was skipped
    later = {**STUDY, "second": {**STUDY["second"], "a_angstrom": 4.1}}
    _refused(_bundle(_write(tmp_path / "later.yaml", later), "--run-dir", run))
    assert _tree(run) == before
    # a preflight error, an unknown --force stage, the lock held
    bad = {**STUDY, "structure": {**STRUCTURE, "cation": "K"}}
    _refused(_bundle(_write(tmp_path / "bad.yaml", bad), "--run-dir", run))
    _refused(_bundle(study, "--run-dir", run, "--force", "nosuch"))
    with open(run / ".run.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        _refused(_bundle(study, "--run-dir", run))
    assert _tree(run) == before
    # the same study again: every stage skipped, nothing rewritten
    assert _bundle(study, "--run-dir", run).exit_code == 0
    assert _tree(run) == before


def test_a_refused_sweep_leaves_nothing(tmp_path):
    study = _write(tmp_path / "sweep.yaml", SWEEP)
    run = tmp_path / "run"
    # refused before anything ran: no folder at all (before: sweep/plan.json and the
    # frozen point studies were written first)
    _refused(_bundle(study, "--run-dir", run, "--point", "nosuch"))
    assert not run.exists()
    bad = {**SWEEP, "structure": {**STRUCTURE, "cation": "K"}}
    _refused(_bundle(_write(tmp_path / "bad.yaml", bad), "--run-dir", run))
    assert not run.exists()
    assert _bundle(study, "--run-dir", run, "--dry-run").exit_code == 0
    assert not run.exists()
    # one point run; then a changed study is refused at that point: no file changes
    # (before: every frozen point study and plan.json were rewritten with the new study)
    out = _bundle(study, "--run-dir", run, "--point", "seed1")
    assert out.exit_code == 0, out.output
    assert (run / "sweep" / "studies" / "seed2.yaml").exists()  # every point is planned
    before = _tree(run)
    changed = {**SWEEP, "structure": {**STRUCTURE, "a_angstrom": 4.7}}
    _refused(_bundle(_write(tmp_path / "changed.yaml", changed), "--run-dir", run))
    assert _tree(run) == before


# --- kill -9 of `bundle run` while a stage's engine runs -------------------------------

KILL = {
    "schema": "study/1",
    "name": "killed",
    "species": ["Li", "O"],
    "profiles": {
        "cpu": {
            "accelerator": "cpu",
            "launchers": {"default": {"kind": "local"}, "dft": {"kind": "mpi", "np": 1}},
        }
    },
    "stages": ["structure", "dft"],
    "structure": STRUCTURE,
    "dft": {
        "pseudo_dir": "/usr/share/espresso/pseudo",
        "pseudopotentials": {
            "Li": "Li.pbesol-s-rrkjus_psl.0.2.1.UPF",
            "O": "O.pbesol-n-rrkjus_psl.0.1.UPF",
        },
        "ecutwfc_ry": 15,  # toy cutoffs, Γ only: ~3 s of pw.x
        "ecutrho_ry": 120,
        "kpoint_spacing_inv_angstrom": 5.0,
        "kpoint_gamma": True,
    },
}
SLOW = ["--set", "dft.ecutwfc_ry=80", "--set", "dft.ecutrho_ry=640"]  # minutes of pw.x


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is dead


def _session(sid: int) -> dict[int, str]:
    """pid -> program name of every living process of session `sid`."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            out[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
    return out


def _wait_for_pw(run: Path, proc: subprocess.Popen, log: Path) -> int:
    record = run / "02_dft" / ".child.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        if record.exists():
            sid = int(yaml.safe_load(record.read_text())["sid"])
            if "pw.x" in _session(sid).values():
                return sid
        time.sleep(0.2)
    pytest.fail(f"pw.x did not start within 60 s: {log.read_text()}")


@pytest.mark.engine
def test_kill_9_of_bundle_run_then_the_rerun_ends_the_orphaned_engine(tmp_path):
    require_program("pw.x")
    study = _write(tmp_path / "kill.yaml", KILL)
    run = tmp_path / "run"
    bundle = Path(sys.executable).parent / "bundle"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "first.log"
    first = subprocess.Popen(
        [bundle, "run", study, "--run-dir", run, *SLOW],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    sid, orphans = 0, {}
    try:
        sid = _wait_for_pw(run, first, log)
        os.kill(first.pid, signal.SIGKILL)  # the bundle process only, not its children
        first.wait()
        orphans = _session(sid)
        assert "pw.x" in orphans.values() and all(_alive(p) for p in orphans), orphans
        again = subprocess.run(
            [bundle, "run", study, "--run-dir", run],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        line = next(ln for ln in again.stdout.splitlines() if "a killed run left" in ln)
        assert line.startswith("02_dft:") and f"session {sid}," in line and "terminated" in line
        assert not any(_alive(p) for p in orphans), _session(sid)
        assert files.read_manifest(run / "02_dft")["status"] == "complete"
        assert not (run / "02_dft" / ".child.json").exists()
    finally:
        for pid in [first.pid, *orphans, *(_session(sid) if sid else {})]:
            if _alive(pid):  # whatever is left of this test's processes
                os.kill(pid, signal.SIGKILL)
        first.wait()
