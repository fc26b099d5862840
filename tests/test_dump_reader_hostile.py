"""The streaming dump reader: memory follows the number of atoms, never the largest id
(id 1e12 works); a cut or corrupt gzip stream (what a killed MD run leaves) keeps its
complete frames with --drop-incomplete-frame and is one clear line without it."""

from __future__ import annotations

import gzip
import json

import numpy as np
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT
from checks.lammpsio import dump_columns, write_frame
from tests.test_analyze_cli import BASE, L

OPTS = (*BASE, "--n-blocks", 2)


def run(*args):
    return CliRunner().invoke(app, ["analyze", *map(str, args)])


def walk_dump(path, n_frames=12, id_offset=0, opener=open, seed=0):
    """As tests.test_analyze_cli.write_dump (40 Li, 20 O), ids shifted by `id_offset` and
    the atom order shuffled in every frame."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, 61)
    types = np.where(ids <= 40, 1, 2)
    pos = rng.uniform(0, 1, (60, 3)) * L
    with opener(path, "wb") as f:
        for k in range(n_frames):
            order = rng.permutation(60)
            cols = dump_columns("unwrapped", ids[order] + id_offset, types[order], pos[order],
                                [0, 0, 0], L)  # fmt: skip
            write_frame(f, 100 * k, [0, 0, 0], L, cols)
            pos = pos + rng.normal(scale=0.3, size=pos.shape)
    return path


def results(out):
    return json.loads((out / "results.json").read_text())


def test_id_1e12_is_analysed_like_small_ids(tmp_path):
    small = walk_dump(tmp_path / "small.dump")
    huge = walk_dump(tmp_path / "huge.dump", id_offset=10**12)
    r1 = run(small, *OPTS, "--excess-above-id", 35, "--out", tmp_path / "o1")
    r2 = run(huge, *OPTS, "--excess-above-id", 10**12 + 35, "--out", tmp_path / "o2")
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.stderr, r2.stderr, r2.exception)
    a, b = results(tmp_path / "o1"), results(tmp_path / "o2")
    assert a["n_excess"] == b["n_excess"] == 5
    assert a == b


def test_the_id_index_holds_the_atoms_not_the_largest_id():
    from checks.lammpsio import IdIndex

    ids = np.array([7, 10**12, 3, 2**53 - 1])
    index = IdIndex(ids)
    assert index._sorted.nbytes == ids.nbytes  # memory ∝ number of atoms
    got = index.slots(np.array([3, 4, 10**12, 7, 2**53 - 1, -5]))
    assert got.tolist() == [2, -1, 1, 0, 3, -1]


def _cut_and_expected(tmp_path, frac):
    """A gzip dump cut at `frac` of its bytes, and a plain dump of its complete frames."""
    full = walk_dump(tmp_path / "full.dump")
    data = gzip.compress(full.read_bytes())
    cut = tmp_path / "cut.dump.gz"
    cut.write_bytes(data[: int(len(data) * frac)])
    return full, cut


def test_a_cut_gzip_dump_keeps_its_complete_frames_with_drop_incomplete_frame(tmp_path):
    full, cut = _cut_and_expected(tmp_path, 0.7)
    r = run(cut, *OPTS, "--out", tmp_path / "o")
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cut.dump.gz: frame" in lines[0], lines
    assert "the gzip stream is cut short" in lines[0] and "--drop-incomplete-frame" in lines[0]
    assert not (tmp_path / "o").exists()
    r = run(cut, *OPTS, "--drop-incomplete-frame", "--out", tmp_path / "o")
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert "warning:" in r.stderr and "cut short" in r.stderr
    got = results(tmp_path / "o")
    n = got["n_frames"]
    assert 5 <= n < 12
    # the same frames, read from a plain file, give the same document
    frames = full.read_text().split("ITEM: TIMESTEP")[1 : n + 1]
    head = tmp_path / "head.dump"
    head.write_text("".join("ITEM: TIMESTEP" + f for f in frames))
    assert run(head, *OPTS, "--out", tmp_path / "h").exit_code == 0
    assert got == results(tmp_path / "h")


def test_a_corrupt_gzip_dump_is_one_line_and_recovers_what_precedes_the_damage(tmp_path):
    full = walk_dump(tmp_path / "full.dump")
    data = bytearray(gzip.compress(full.read_bytes()))
    start = len(data) * 3 // 4
    data[start : start + 64] = (
        np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    )
    bad = tmp_path / "bad.dump.gz"
    bad.write_bytes(bytes(data))
    r = run(bad, *OPTS, "--out", tmp_path / "o")
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.stderr, r.exception)
    assert len(r.stderr.strip().splitlines()) == 1 and "gzip stream is corrupt" in r.stderr
    r = run(bad, *OPTS, "--drop-incomplete-frame", "--out", tmp_path / "o")
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert 5 <= results(tmp_path / "o")["n_frames"] < 12
