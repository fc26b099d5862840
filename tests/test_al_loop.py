"""The labelling loop (runbook.al) end to end at toy scale: iteration 0 is the shared
DeePMD run (its dataset and committee of three, reused, not retrained); two iterations
of explore (committee MD) -> select (deviation window, farthest points, capped) -> label
(pw.x, the smoke study's dft settings) -> grow the dataset -> retrain three members ->
explore with the new committee. The candidate fraction of the boundary band (an
artificial band on one Li layer of the 12-atom cell) is reported per iteration.

Kill test: the run is SIGKILLed (its whole process group) during the first labelling,
after a first label finished; the re-run takes the finished labels from the run's label
store and runs pw.x only for the others (the store's `done` marks keep their mtimes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.engine, pytest.mark.deepmd_run, pytest.mark.slow]

LOOP = Path(__file__).parent / "data" / "deepmd" / "al-loop.yaml"


def compose(deepmd_run, run_dir: Path) -> Path:
    """The loop study on a copy of the DeePMD run's stage folders (skipped on run)."""
    import shutil

    study, src = deepmd_run
    run_dir.mkdir(parents=True)
    for d in sorted(src.iterdir()):
        if d.is_dir() and d.name[:2].isdigit():
            shutil.copytree(d, run_dir / d.name, symlinks=True)
    doc = yaml.safe_load(Path(study.source).read_text())
    doc["loop"] = yaml.safe_load(LOOP.read_text())  # the loader appends the loop's stages
    path = run_dir.parent / "al-loop-study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def start(study: Path, run_dir: Path, log: Path) -> subprocess.Popen:
    code = (
        "import sys; from pathlib import Path; from runbook import engine, loader; "
        "engine.run(loader.load(sys.argv[1]), Path(sys.argv[2]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(study), str(run_dir)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def wait_for_first_label(proc: subprocess.Popen, store: Path, timeout_s: float) -> list[Path]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        done = sorted(store.glob("*/done"))
        if done:
            return done
        assert proc.poll() is None, "the loop ended before its first label finished"
        time.sleep(0.5)
    raise AssertionError(f"no label finished within {timeout_s} s")


def test_two_iterations_and_a_kill_during_labelling(deepmd_run, tmp_path):
    from runbook import engine, loader
    from runbook.al import loop

    run_dir = tmp_path / "run"
    study_file = compose(deepmd_run, run_dir)
    store = run_dir / "labels"
    t0, cpu0 = time.perf_counter(), os.times()
    proc = start(study_file, run_dir, tmp_path / "first.log")
    done = wait_for_first_label(proc, store, timeout_s=900)
    os.killpg(proc.pid, signal.SIGKILL)  # the engine and its pw.x ranks, mid-labelling
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in store.glob("*/done")}
    assert finished and len(done) <= len(finished)
    print(f"killed during labelling with {len(finished)} finished label(s)")

    study = loader.load(study_file)
    engine.run(study, run_dir, echo=lambda s: print("al:", s))
    wall, cpu1 = time.perf_counter() - t0, os.times()
    ctx = engine.Context(study, run_dir)
    lab = ctx.result("label_1", dict)
    reused = {r["key"] for r in lab["reused"]}
    computed = {r["key"] for r in lab["computed"]}
    assert reused == set(finished)  # every finished label taken from the store ...
    assert not reused & computed  # ... and none computed again
    for key, mtime in finished.items():
        assert (store / key / "done").stat().st_mtime_ns == mtime
    n1 = ctx.result("select_1", dict)["n_selected"]
    assert len(reused) + len(computed) == n1 >= 1

    rows = loop.summary(ctx, 2)
    for k in (1, 2):
        added = json.loads((ctx.dir_of(f"dataset_{k}") / "added.json").read_text())
        n_sel = ctx.result(f"select_{k}", dict)["n_selected"]
        assert len(added["added"]) + len(added["excluded"]) == n_sel
        assert ctx.result(f"dataset_{k}", dict)["split"]["train"] == (
            ctx.result("dataset" if k == 1 else f"dataset_{k - 1}", dict)["split"]["train"]
            + len(added["added"])
        )
        doc = json.loads((ctx.dir_of(f"committee_{k}") / "committee.json").read_text())
        assert doc["dataset"]["output_hash"] == ctx.manifest(f"dataset_{k}")["output_hash"]
        assert [m["seed"] for m in doc["members"]] == [1, 2, 3]
    assert_lineage(ctx, "train_2_a")
    fractions = [loop.band_candidate_fraction(r) for r in rows]
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])
    print("candidate fraction of boundary-band atom-frames per iteration (0, 1, 2):", fractions)
    print("per iteration:", json.dumps(rows))
    print(f"loop: wall {wall:.0f} s, CPU {cpu:.0f} s (this process and its reaped "
          "children, the killed first run included; the pw.x killed in flight not)")  # fmt: skip
    assert all(0.0 <= f <= 1.0 for f in fractions)


def assert_lineage(ctx, member: str) -> None:
    """The member's model manifest says which iteration added which frames: the chain of
    added.json records (hashed), and each training frame carries its iteration."""
    from ase.io import read

    from runbook.files import sha256_file

    card = json.loads((ctx.dir_of(member) / "model_manifest.json").read_text())
    lin = card["data"]["lineage"]
    assert [e["iteration"] for e in lin] == [2, 1, 0]
    assert lin[-1]["frames"] == sum(ctx.result("dataset", dict)["split"].values())
    for e in lin[:2]:
        record = ctx.run_dir / e["record"]
        assert e["record_sha256"] == sha256_file(record)
        assert e["added"] == len(json.loads(record.read_text())["added"])
    train = read(ctx.dir_of("dataset_2") / "train.extxyz", index=":")
    tags = [a.info.get("al_iteration", 0) for a in train]
    assert [tags.count(k) for k in (1, 2)] == [lin[1]["added"], lin[0]["added"]]
