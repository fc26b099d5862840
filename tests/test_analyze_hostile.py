"""`bundle analyze` refuses impossible numbers at the boundary, one line naming the option
and the fix: bands wider than a quarter of the box, GB planes at one height or outside
the box, bins too coarse for a bulk region (blamed on --dz, not --d-bulk), a box of zero
length or one that changes, NaN/inf coordinates, ids that are not integers."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT
from tests.test_analyze_cli import BASE, write_dump


def run(*args):
    return CliRunner().invoke(app, ["analyze", *map(str, args)])


def frames_of(path):
    text = path.read_text()
    return ["ITEM: TIMESTEP" + f for f in text.split("ITEM: TIMESTEP")[1:]]


def edited(tmp_path, edit):
    """The 12-frame test dump with `edit(k, frame_text) -> frame_text` applied per frame."""
    dump = write_dump(tmp_path / "t.dump")
    dump.write_text("".join(edit(k, f) for k, f in enumerate(frames_of(dump))))
    return dump


def _atom_token(frame: str, line: int, col: int, value: str) -> str:
    head, atoms = frame.split("ITEM: ATOMS", 1)
    rows = atoms.split("\n")
    cells = rows[line].split()
    cells[col] = value
    rows[line] = " ".join(cells)
    return head + "ITEM: ATOMS" + "\n".join(rows)


def nan_coordinate(tmp_path):
    return edited(tmp_path, lambda k, f: _atom_token(f, 3, 4, "nan") if k == 5 else f)


def inf_coordinate(tmp_path):
    return edited(tmp_path, lambda k, f: _atom_token(f, 1, 2, "-inf") if k == 2 else f)


def fractional_id(tmp_path):
    return edited(tmp_path, lambda k, f: _atom_token(f, 2, 0, "1.5") if k == 0 else f)


def zero_length_box(tmp_path):
    return edited(tmp_path, lambda k, f: f.replace("0.0 30.0\n", "30.0 30.0\n"))


def changing_box(tmp_path):
    return edited(tmp_path, lambda k, f: f.replace("0.0 30.0\n", "0.0 60.0\n") if k > 5 else f)


def no_atoms(tmp_path):
    def edit(k, f):
        return f.replace("NUMBER OF ATOMS\n60\n", "NUMBER OF ATOMS\n0\n") if k == 4 else f

    return edited(tmp_path, edit)


# (name, make the dump, options, what the one error line must say)
BAD = [
    ("bands overlap", write_dump, ("--w", 8), r"--w: bands of ±8 Å around planes 15\.000 Å"),
    ("planes equal", write_dump, ("--gb", "10,10"), r"--gb: the two planes are at the same"),
    ("plane outside", write_dump, ("--gb", "5,45"), r"--gb: plane 45 Å is outside the box"),
    ("planes too close", write_dump, ("--gb", "5,8"), r"--w: .* or move the --gb planes apart"),
    ("one bin too few", write_dump, ("--dz", 9), r"--dz: 9 Å makes 3 bins of Lz = 30\.000"),
    (
        "bins too coarse",
        write_dump,
        ("--gb", "5,20", "--dz", 7.5, "--d-bulk", 7.4),
        r"--dz: bins of 7\.500 Å are too coarse.*--d-bulk <= 6\.250",
    ),
    ("bulk margin", write_dump, ("--d-bulk", 7.6), r"--d-bulk: no height is 7\.6 Å .* <= 7\.50"),
    ("window not finite", write_dump, ("--window-ps", "nan,5"), r"--window-ps: must be finite"),
    ("gb not finite", write_dump, ("--gb", "inf,5"), r"--gb: must be finite numbers"),
    ("NaN coordinate", nan_coordinate, (), r"frame 5 \(TIMESTEP 500\): atom line 3: zu is nan"),
    ("inf coordinate", inf_coordinate, (), r"frame 2 \(TIMESTEP 200\): atom line 1: xu is -inf"),
    ("fractional id", fractional_id, (), r"atom line 2: id 1\.5 is not a valid id"),
    ("zero-length box", zero_length_box, (), r"BOX BOUNDS: z from 30\.0 to 30\.0: not a box"),
    ("changing box", changing_box, (), r"frame 6: BOX BOUNDS: the box length along z changes"),
    ("no atoms", no_atoms, (), r"frame 4: NUMBER OF ATOMS is 0"),
]


@pytest.mark.parametrize("name, make, extra, message", BAD, ids=[b[0] for b in BAD])
def test_impossible_numbers_are_one_line_exit_3_naming_the_option(
    tmp_path, name, make, extra, message
):
    dump = make(tmp_path) if make is not write_dump else write_dump(tmp_path / "t.dump")
    out = tmp_path / "out"
    r = run(dump, *BASE, "--excess-above-id", 35, *extra, "--out", out)
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.stdout[-300:], r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()


def test_the_largest_valid_band_and_margin_still_run(tmp_path):
    dump = write_dump(tmp_path / "t.dump")
    r = run(
        dump, *BASE, "--excess-above-id", 35, "--w", 7.4, "--d-bulk", 7, "--out", tmp_path / "o"
    )
    assert r.exit_code == 0, r.stderr
