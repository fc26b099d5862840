"""The LAMMPS dump / data-file reader: every column set, gzip, unsorted atoms, restarts,
and each malformed input as one InputError naming the file and the frame."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bundle.core.errors import InputError
from checks.lammpsio import (
    POSITION_SETS,
    dump_columns,
    parse_type_map,
    read_data_types,
    read_frames,
    write_frame,
)

LO, HI = np.array([0.0, -5.0, 2.0]), np.array([10.0, 5.0, 32.0])


def _trajectory(n_frames=4, n=30, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    types = 1 + ids % 3
    pos = LO + rng.random((n, 3)) * (HI - LO)
    out = []
    for k in range(n_frames):
        pos = pos + rng.normal(scale=4.0, size=pos.shape)  # crosses the boundaries
        out.append((100 * k, pos.copy()))
    return ids, types, out


def _write(path, ids, types, frames, style="unwrapped", shuffle=False, opener=open, decimals=8):
    rng = np.random.default_rng(1)
    with opener(path, "wb") as f:
        for ts, pos in frames:
            order = rng.permutation(len(ids)) if shuffle else np.arange(len(ids))
            cols = dump_columns(style, ids[order], types[order], pos[order], LO, HI)
            write_frame(f, ts, LO, HI, cols, decimals=decimals)


@pytest.mark.parametrize("style", [kind for _, kind in POSITION_SETS])
@pytest.mark.parametrize("gz", [False, True])
def test_every_column_set_reads_back_the_unwrapped_positions(tmp_path, style, gz):
    ids, types, frames = _trajectory()
    path = tmp_path / ("t.dump.gz" if gz else "t.dump")
    _write(path, ids, types, frames, style, shuffle=True, opener=gzip.open if gz else open)
    got = list(read_frames([path]))
    assert [f.timestep for f in got] == [ts for ts, _ in frames]
    for fr, (_, pos) in zip(got, frames, strict=True):
        order = np.argsort(fr.ids)
        np.testing.assert_array_equal(fr.ids[order], ids)
        np.testing.assert_array_equal(fr.types[order], types)
        np.testing.assert_allclose(fr.unwrapped[order], pos, atol=1e-6)
        np.testing.assert_array_equal(fr.lo, LO)
        frac = fr.frac_z()
        assert ((frac >= 0) & (frac < 1)).all()


def test_restart_files_are_one_trajectory_and_the_repeated_frame_is_dropped(tmp_path):
    ids, types, frames = _trajectory(n_frames=6)
    _write(tmp_path / "a.dump", ids, types, frames[:4])
    _write(tmp_path / "b.dump", ids, types, frames[3:])  # a restart repeats its first frame
    warnings = []
    got = list(read_frames([tmp_path / "a.dump", tmp_path / "b.dump"], warn=warnings.append))
    assert [f.timestep for f in got] == [0, 100, 200, 300, 400, 500]
    assert [f.index for f in got] == list(range(6))
    assert len(warnings) == 1 and "repeats" in warnings[0]


def test_timesteps_going_backwards_name_the_file_and_frame(tmp_path):
    ids, types, frames = _trajectory(n_frames=4)
    frames[2] = (50, frames[2][1])
    _write(tmp_path / "t.dump", ids, types, frames)
    with pytest.raises(InputError, match=r"t\.dump: frame 2 \(TIMESTEP 50\).*backwards"):
        list(read_frames([tmp_path / "t.dump"]))


@pytest.mark.parametrize("where", ["header", "atom lines", "last number"])
def test_a_truncated_last_frame_is_refused_unless_dropped(tmp_path, where):
    ids, types, frames = _trajectory(n_frames=3)
    path = tmp_path / "t.dump"
    _write(path, ids, types, frames)
    data = path.read_bytes()
    last = data.rindex(b"ITEM: TIMESTEP")
    cut = {
        "header": last + 40,
        "atom lines": data.rindex(b"ITEM: ATOMS") + 200,
        "last number": len(data) - 3,
    }[where]
    path.write_bytes(data[:cut])
    with pytest.raises(InputError, match=r"frame 2: truncated.*--drop-incomplete-frame"):
        list(read_frames([path]))
    warnings = []
    got = list(read_frames([path], drop_incomplete=True, warn=warnings.append))
    assert len(got) == 2 and "truncated" in warnings[0]


def test_triclinic_and_missing_columns_are_refused(tmp_path):
    text = (
        "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\n"
        "ITEM: BOX BOUNDS xy xz yz pp pp pp\n0 10 0.5\n0 10 0\n0 10 0\n"
        "ITEM: ATOMS id type xu yu zu\n1 1 1 1 1\n"
    )
    (tmp_path / "tri.dump").write_text(text)
    with pytest.raises(InputError, match="tri.dump: frame 0: ITEM: BOX BOUNDS: triclinic"):
        list(read_frames([tmp_path / "tri.dump"]))
    no_image = text.replace("xy xz yz pp pp pp\n0 10 0.5", "pp pp pp\n0 10").replace(
        "0 10 0\n0 10 0", "0 10\n0 10"
    )
    (tmp_path / "cols.dump").write_text(no_image.replace("xu yu zu", "x y z"))
    with pytest.raises(InputError, match=r"missing column\(s\) ix iy iz"):
        list(read_frames([tmp_path / "cols.dump"]))
    (tmp_path / "id.dump").write_text(no_image.replace("id type xu", "type q xu"))
    with pytest.raises(InputError, match=r"missing column\(s\) id"):
        list(read_frames([tmp_path / "id.dump"]))
    (tmp_path / "junk.dump").write_text(no_image.replace("1 1 1 1 1", "1 1 1 nan? 1"))
    with pytest.raises(InputError, match="junk.dump: frame 0 .*unreadable"):
        list(read_frames([tmp_path / "junk.dump"]))


def test_data_file_type_names_from_labels_comments_or_masses(tmp_path):
    body = """LAMMPS data file via write_data

 8 atoms
 3 atom types

 0 10 xlo xhi
 0 10 ylo yhi
 0 10 zlo zhi

Masses

1 6.94 # Li
2 {m2}
3 15.999

Atoms # atomic

1 1 0 0 0
"""
    (tmp_path / "a.data").write_text(body.format(m2="138.90547"))
    assert read_data_types(tmp_path / "a.data") == {1: "Li", 2: "La", 3: "O"}
    labelled = body.format(m2="91.224") + "\nAtom Type Labels\n\n1 Lix\n2 Zr\n3 O\n"
    (tmp_path / "b.data").write_text(labelled)
    assert read_data_types(tmp_path / "b.data") == {1: "Lix", 2: "Zr", 3: "O"}
    (tmp_path / "c.data").write_text("title\n\n1 atoms\n")
    with pytest.raises(InputError, match="c.data: header: no 'N atom types'"):
        read_data_types(tmp_path / "c.data")


def test_type_map():
    assert parse_type_map("1:Li, 2:La,3:Zr,4:O") == {1: "Li", 2: "La", 3: "Zr", 4: "O"}
    for bad in ("1=Li", "Li:1", "1:", ""):
        with pytest.raises(InputError, match="--type-map"):
            parse_type_map(bad)
