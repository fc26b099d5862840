"""`bundle analyze` as a user meets it: outputs of a good run, and every bad input of the
issue as one error line, exit code 3 and no results.json (a previous one is untouched)."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT
from checks.lammpsio import dump_columns, write_frame

L = np.array([10.0, 10.0, 30.0])


def write_dump(path, n_frames=12, steps=None, style="unwrapped", opener=open, seed=0):
    """40 Li (ids 1..40, 36..40 the 'excess') and 20 O walking; TIMESTEP 100*k."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, 61)
    types = np.where(ids <= 40, 1, 2)
    pos = rng.uniform(0, 1, (60, 3)) * L
    with opener(path, "wb") as f:
        for ts in steps if steps is not None else range(0, 100 * n_frames, 100):
            write_frame(f, ts, [0, 0, 0], L, dump_columns(style, ids, types, pos, [0, 0, 0], L))
            pos = pos + rng.normal(scale=0.3, size=pos.shape)
    return path


def run(*args):
    return CliRunner().invoke(app, ["analyze", *map(str, args)])


BASE = ("--timestep-fs", 1, "--type-map", "1:Li,2:O", "--d-bulk", 4, "--avg-window-ps", 0.5)


def test_a_good_run_writes_results_figures_and_summary(tmp_path):
    dump = write_dump(tmp_path / "t.dump.gz", opener=gzip.open)
    r = run(dump, *BASE, "--excess-above-id", 35, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["schema"] == "gb-analysis/1"
    assert doc["n_li"] == 35 and doc["n_excess"] == 5 and doc["n_frames"] == 12
    assert doc["excess"]["window_ps"] == [0.6, 1.1] and doc["diffusion"] is not None
    for png in ("profile.png", "excess_ngb.png", "msd.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "enrichment" in (tmp_path / "out" / "summary.md").read_text()
    assert not list((tmp_path / "out").glob(".*"))  # no scratch or temp file left


def test_restart_files_and_a_data_file(tmp_path):
    write_dump(tmp_path / "all.dump", n_frames=12)
    text = (tmp_path / "all.dump").read_text()
    frames = text.split("ITEM: TIMESTEP")[1:]
    (tmp_path / "a.dump").write_text("ITEM: TIMESTEP" + "ITEM: TIMESTEP".join(frames[:7]))
    (tmp_path / "b.dump").write_text("ITEM: TIMESTEP" + "ITEM: TIMESTEP".join(frames[6:]))
    (tmp_path / "s.data").write_text(
        "LAMMPS data file\n\n60 atoms\n2 atom types\n\nMasses\n\n1 6.94\n2 15.999\n"
    )
    common = ("--timestep-fs", 1, "--d-bulk", 4, "--data", tmp_path / "s.data")
    r1 = run(tmp_path / "a.dump", tmp_path / "b.dump", *common, "--out", tmp_path / "o1")
    r2 = run(tmp_path / "all.dump", *common, "--out", tmp_path / "o2")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.stderr + r2.stderr
    assert "repeats the previous file's last frame" in r1.stderr
    one, two = (json.loads((tmp_path / o / "results.json").read_text()) for o in ("o1", "o2"))
    assert one == two


def _truncated(tmp_path):
    dump = write_dump(tmp_path / "t.dump")
    dump.write_bytes(dump.read_bytes()[:-500])
    return dump


def _no_image_flags(tmp_path):
    dump = write_dump(tmp_path / "t.dump")
    dump.write_text(dump.read_text().replace("xu yu zu", "x y z"))
    return dump


def _triclinic(tmp_path):
    dump = write_dump(tmp_path / "t.dump")
    text = dump.read_text().replace("BOX BOUNDS pp pp pp", "BOX BOUNDS xy xz yz pp pp pp")
    dump.write_text(
        text.replace("0.0 10.0\n", "0.0 10.0 0.0\n").replace("0.0 30.0\n", "0.0 30.0 0.0\n")
    )
    return dump


def _backwards(tmp_path):
    return write_dump(tmp_path / "t.dump", steps=[0, 100, 200, 300, 250, 500])


# (name, make the dump, extra options, what the one error line must say)
BAD = [
    (
        "truncated last frame",
        _truncated,
        (),
        r"t\.dump: frame 11: truncated.*--drop-incomplete-frame",
    ),
    ("missing columns", _no_image_flags, (), r"missing column\(s\) ix iy iz.*dump .* custom"),
    ("triclinic box", _triclinic, (), "triclinic"),
    ("Li type absent", write_dump, ("--li-type", "3"), "no atom of the Li type 3"),
    ("Li name absent", write_dump, ("--li-type", "Na"), "--li-type: type name 'Na' is absent"),
    (
        "excess ids not in the trajectory",
        write_dump,
        ("--excess-ids", "IDS"),
        r"ids\.txt: ids: 2 excess id\(s\) not in the trajectory",
    ),
    ("excess ids that are not Li", write_dump, ("--excess-ids", "OIDS"), r"are not Li"),
    ("excess above the last id", write_dump, ("--excess-above-id", 40), "no Li id above 40"),
    (
        "empty averaging window",
        write_dump,
        ("--avg-window-ps", 0),
        "--avg-window-ps: must be a positive",
    ),
    ("empty analysis window", write_dump, ("--window-ps", "5,6"), "no frame to analyse"),
    ("timesteps going backwards", _backwards, (), r"frame 4 \(TIMESTEP 250\).*backwards"),
    (
        "wrong --gb format",
        write_dump,
        ("--gb", "12.5"),
        r"--gb: expected two numbers.*--gb 20.0,60.0",
    ),
    ("wrong --gb numbers", write_dump, ("--gb", "a,b"), r"--gb: expected two numbers"),
    ("bulk margin too wide", write_dump, ("--d-bulk", 8), r"--d-bulk: no height is 8 Å from both"),
    (
        "dump interval changes",
        lambda p: write_dump(p / "t.dump", steps=[0, 100, 200, 400]),
        (),
        "interval changes",
    ),
]


@pytest.mark.parametrize("name, make, extra, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_3_and_no_results(tmp_path, name, make, extra, message):
    dump = make(tmp_path) if make is not write_dump else write_dump(tmp_path / "t.dump")
    (tmp_path / "ids.txt").write_text("3\n999\n1000\n")
    (tmp_path / "oids.txt").write_text("3\n45\n")
    extra = [{"IDS": tmp_path / "ids.txt", "OIDS": tmp_path / "oids.txt"}.get(x, x) for x in extra]
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": "run"}')  # must survive a failed run
    r = run(dump, *BASE, *extra, "--out", out)  # a repeated option: the last one wins
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(message, lines[0]), lines[0]
    assert (out / "results.json").read_text() == '{"earlier": "run"}'
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_drop_incomplete_frame_analyses_the_complete_frames_with_a_warning(tmp_path):
    dump = _truncated(tmp_path)
    r = run(dump, *BASE, "--drop-incomplete-frame", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert "warning:" in r.stderr and "frame 11 is truncated" in r.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["n_frames"] == 11


def test_options_that_contradict_each_other(tmp_path):
    dump = write_dump(tmp_path / "t.dump")
    r = run(dump, "--timestep-fs", 1, "--out", tmp_path / "o")
    assert r.exit_code == EXIT_BAD_INPUT and "--data/--type-map: give exactly one" in r.stderr
    r = run(dump, *BASE, "--excess-above-id", 3, "--excess-ids", dump, "--out", tmp_path / "o")
    assert r.exit_code == EXIT_BAD_INPUT and "give at most one" in r.stderr
    r = run(tmp_path / "nope.dump", *BASE, "--out", tmp_path / "o")
    assert r.exit_code == EXIT_BAD_INPUT and "nope.dump: (file): not found" in r.stderr


def test_a_committee_summary_travels_into_the_results_and_is_judged(tmp_path):
    """`--deviation`: the MD's committee summary is copied into results.json, summary.md
    states it, and `bundle check` judges the trust domain from it; a file that is not a
    summary is one error line before any analysis, and nothing is written."""
    import numpy.random as npr

    from checks import deviation

    rng = npr.default_rng(3)
    eps = rng.uniform(0.0, 0.3, (8, 60))  # (frames, atoms) force deviations, eV/Å
    eps[:, :6] = 0.9  # six atoms far outside: 10 % of every frame's atom-frames
    rec = deviation.DeviationRecord(
        step=np.arange(8) * 100, time_ps=np.arange(8) * 0.1, ids=np.arange(1, 61),
        types=np.zeros(60, int), type_names=["Li"], z=rng.uniform(0.0, L[2], (8, 60)), eps=eps,
        frame_max=eps.max(axis=1), frame_min=eps.min(axis=1), frame_mean=eps.mean(axis=1),
        box_z=np.tile([0.0, L[2]], (8, 1)), n_models=3, source="test",
    )  # fmt: skip
    summary = json.loads(json.dumps(deviation.trust_levels(rec, 0.15, 0.45)))
    (tmp_path / "dev.json").write_text(json.dumps(summary))
    dump = write_dump(tmp_path / "t.dump")
    r = run(dump, *BASE, "--out", tmp_path / "out", "--deviation", tmp_path / "dev.json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["deviation"] == summary
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| committee trust domain | the run left" in text
    ref = tmp_path / "ref.yaml"
    ref.write_text("schema: gb-reference/1\nname: domain-only\nsource: test\nquantities:\n"
                   "  n_frames: {value: 12, unit: '1', source: reported only}\n")  # fmt: skip
    r = CliRunner().invoke(app, ["check", str(tmp_path / "out"), "--reference", str(ref)])
    assert r.exit_code == 1 and "FAIL  deviation.trust_domain" in r.stdout, r.stdout
    (tmp_path / "bad.json").write_text('{"frames": {}}')
    r = run(dump, *BASE, "--out", tmp_path / "bad", "--deviation", tmp_path / "bad.json")
    assert r.exit_code == EXIT_BAD_INPUT and not (tmp_path / "bad").exists()
    assert "not a committee deviation summary" in r.stderr and len(r.stderr.splitlines()) == 1
