"""Reading LAMMPS text output: `dump custom` trajectories and data files.

Dump contract (checked against LAMMPS 2025.7.22 `dump custom`, plain or `.gz`):
  ITEM: TIMESTEP / <int>
  ITEM: NUMBER OF ATOMS / <int>
  ITEM: BOX BOUNDS <pp pp pp> / 3 lines `lo hi`      (orthorhombic only)
  ITEM: ATOMS <columns> / one line per atom
Columns: `id type` and one position set, in Å (units metal/real):
  `xu yu zu` | `x y z` + `ix iy iz` | `xs ys zs` + `ix iy iz` | `xsu ysu zsu`.
A tilted box (`BOX BOUNDS xy xz yz ...`) is refused, and so are a box length <= 0, a
non-finite number anywhere in a frame, and ids or types that are not integers. One frame
is held in memory at a time; its atom lines are parsed as one block by numpy (no per-line
Python work). Ids are looked up through a sorted index (`IdIndex`): memory follows the
number of atoms, never the largest id. Several files given in order are one trajectory: a
frame repeated at a file boundary (same TIMESTEP, as a restart writes it) is dropped, a
TIMESTEP that goes backwards is refused.

A gzip stream that is cut short or corrupt (what a killed MD run leaves) ends the file
there: the frames before the damage are complete and are analysed with
`drop_incomplete=True` (a warning says what was lost); without it the damage is one
InputError naming the file. The byte layer (lines, gzip) is checks.dumpstream; type
names from data files and type maps are checks.lammpsdata (re-exported here).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core.errors import InputError
from checks.dumpstream import Lines, open_dump
from checks.lammpsdata import element_of_mass, parse_type_map, read_data_types

__all__ = [
    "Frame",
    "IdIndex",
    "read_frames",
    "element_of_mass",
    "parse_type_map",
    "read_data_types",
    "format_atoms",
    "write_frame",
    "dump_columns",
]

# Position column sets, in order of preference: (columns, kind).
POSITION_SETS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("xu", "yu", "zu"), "unwrapped"),
    (("x", "y", "z", "ix", "iy", "iz"), "wrapped+image"),
    (("xsu", "ysu", "zsu"), "scaled-unwrapped"),
    (("xs", "ys", "zs", "ix", "iy", "iz"), "scaled+image"),
)
NEWLINE = b"\n"
MAX_EXACT_ID = 2**53  # ids are parsed as float64: integers up to here are exact
FIX_COLUMNS = "write the dump with `dump ID all custom N FILE id type xu yu zu`"


@dataclass(frozen=True)
class Frame:
    """One dump frame. Positions are unwrapped Cartesian coordinates in Å."""

    file: Path
    index: int  # 0-based position in the whole trajectory (all files, duplicates dropped)
    timestep: int
    lo: np.ndarray  # (3,) box lower bounds, Å
    hi: np.ndarray  # (3,) box upper bounds, Å
    ids: np.ndarray  # (n,) int64
    types: np.ndarray  # (n,) int64
    unwrapped: np.ndarray  # (n, 3) float64, Å

    @property
    def lengths(self) -> np.ndarray:
        return self.hi - self.lo

    def frac_z(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Fractional z in [0, 1) of the wrapped positions of `rows`."""
        z = (self.unwrapped[rows, 2] - self.lo[2]) / (self.hi[2] - self.lo[2])
        return z - np.floor(z)


class _Truncated(Exception):
    def __init__(self, what: str):
        self.what = what


def _item(f, name: str, path: Path, k: int) -> bytes:
    """Read the line `ITEM: <name>...`; return what follows the name."""
    line = f.readline()
    if not line.endswith(b"\n"):
        raise _Truncated(f"file ends before ITEM: {name}")
    if not line.startswith(b"ITEM: " + name.encode()):
        raise InputError(
            path,
            f"frame {k}",
            f"expected 'ITEM: {name}', found {line[:60].decode(errors='replace').strip()!r}",
            "this is not a LAMMPS text dump (`dump custom`) or it is corrupted",
        )
    return line[len(name) + 6 :].strip()


def _number(f, path: Path, k: int, what: str) -> int:
    line = f.readline()
    if not line.endswith(b"\n"):
        raise _Truncated(f"file ends inside {what}")
    try:
        return int(line)
    except ValueError:
        raise InputError(path, f"frame {k}: {what}", f"not an integer: {line[:40]!r}") from None


class IdIndex:
    """The slot of each atom id among `ids` (unique, in slot order), by a sorted index:
    memory proportional to len(ids) whatever the largest id (1e12 is fine)."""

    def __init__(self, ids: np.ndarray):
        ids = np.asarray(ids, dtype=np.int64)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]

    def slots(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each of `ids`, -1 where an id is not indexed."""
        if len(self._sorted) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, ids), len(self._sorted) - 1)
        return np.where(self._sorted[pos] == ids, self._order[pos], -1)


@dataclass(frozen=True)
class _Columns:
    names: tuple[str, ...]
    kind: str
    id: int
    type: int
    pos: tuple[int, ...]


def _columns(header: bytes, path: Path, k: int) -> _Columns:
    names = tuple(header.decode(errors="replace").split())
    missing = [c for c in ("id", "type") if c not in names]
    for cols, kind in POSITION_SETS:
        if all(c in names for c in cols):
            if missing:
                break
            pos = tuple(names.index(c) for c in cols)
            return _Columns(names, kind, names.index("id"), names.index("type"), pos)
    else:
        have_xyz = all(c in names for c in ("x", "y", "z"))
        missing += ["ix iy iz"] if have_xyz else ["xu yu zu (or x y z ix iy iz)"]
    raise InputError(
        path,
        f"frame {k}: ITEM: ATOMS",
        f"missing column(s) {', '.join(missing)} (have: {' '.join(names)})",
        FIX_COLUMNS,
    )


def _box(f, path: Path, index: int) -> np.ndarray:
    """The (3, 2) `lo hi` bounds of an orthorhombic BOX BOUNDS item."""
    flags = _item(f, "BOX BOUNDS", path, index).split()
    if len(flags) > 3 or any(fl in (b"xy", b"xz", b"yz") for fl in flags):
        raise InputError(
            path,
            f"frame {index}: ITEM: BOX BOUNDS",
            "triclinic (tilted) box; the GB analysis needs an orthorhombic box with the GB "
            "normal along z",
            "run the bicrystal in an orthorhombic box (no `tilt` in create_box/region prism)",
        )
    bounds = np.empty((3, 2))
    for d in range(3):
        line = f.readline()
        if not line.endswith(b"\n"):
            raise _Truncated("file ends inside BOX BOUNDS")
        parts = line.split()
        try:
            bounds[d] = [float(p) for p in parts] if len(parts) == 2 else (np.nan, np.nan)
        except ValueError:
            parts = []
        if len(parts) != 2:
            raise InputError(
                path,
                f"frame {index}: ITEM: BOX BOUNDS",
                f"expected 'lo hi', found {line.strip()[:60]!r}",
                "a tilted box writes 3 numbers per line; use an orthorhombic box",
            )
    return bounds


def _read_frame(f, path: Path, index: int, cols: _Columns | None, header_cache: dict):
    """One frame from `f`, or None at a clean end of file."""
    first = f.readline()
    while first and not first.strip():  # blank lines between frames or at the end
        first = f.readline()
    if not first:
        return None
    if not first.startswith(b"ITEM: TIMESTEP"):
        _bad(path, index, f"expected 'ITEM: TIMESTEP', found {first[:60]!r}")
    timestep = _number(f, path, index, "TIMESTEP")
    _item(f, "NUMBER OF ATOMS", path, index)
    n = _number(f, path, index, "NUMBER OF ATOMS")
    if n <= 0:
        _bad(path, index, f"NUMBER OF ATOMS is {n}")
    bounds = _box(f, path, index)
    header = _item(f, "ATOMS", path, index)
    if cols is None or header != header_cache.get("raw"):
        cols = _columns(header, path, index)
        header_cache["raw"] = header
    block, complete = f.block(n)
    if not complete:
        raise _Truncated(f"{block.count(NEWLINE)} of {n} atom lines")
    try:
        table = np.loadtxt(io.BytesIO(block), dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(
            path,
            f"frame {index} (TIMESTEP {timestep}): atom lines",
            f"unreadable ({str(e).splitlines()[0]})",
            "the dump is corrupted; regenerate it",
        ) from None
    if table.shape != (n, len(cols.names)):
        raise InputError(
            path,
            f"frame {index} (TIMESTEP {timestep}): atom lines",
            f"expected {n} lines of {len(cols.names)} columns, got shape {table.shape}",
            "the dump is corrupted; regenerate it",
        )
    lo, hi = bounds[:, 0].copy(), bounds[:, 1].copy()
    where = f"frame {index} (TIMESTEP {timestep})"
    _check_numbers(path, where, bounds, table, cols)
    return Frame(
        file=path,
        index=index,
        timestep=timestep,
        lo=lo,
        hi=hi,
        ids=table[:, cols.id].astype(np.int64),
        types=table[:, cols.type].astype(np.int64),
        unwrapped=_unwrap(table, cols, lo, hi - lo),
    ), cols


def _check_numbers(path: Path, where: str, bounds, table, cols: _Columns) -> None:
    """Finite box with positive lengths, finite columns, integer ids and types."""
    fix = "the dump is corrupted; regenerate it"
    if not np.isfinite(bounds).all() or (bounds[:, 1] <= bounds[:, 0]).any():
        d = int(np.argmax(~np.isfinite(bounds).all(axis=1) | (bounds[:, 1] <= bounds[:, 0])))
        lo, hi = bounds[d]
        raise InputError(
            path, f"{where}: BOX BOUNDS", f"{'xyz'[d]} from {lo} to {hi}: not a box length > 0", fix
        )
    bad = ~np.isfinite(table)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise InputError(
            path, f"{where}: atom line {row + 1}", f"{cols.names[col]} is {table[row, col]}", fix
        )
    for name, c in (("id", cols.id), ("type", cols.type)):
        v = table[:, c]
        wrong = (v != np.floor(v)) | (np.abs(v) >= MAX_EXACT_ID) | (v < (1 if name == "id" else 0))
        if wrong.any():
            row = int(np.argmax(wrong))
            raise InputError(
                path,
                f"{where}: atom line {row + 1}",
                f"{name} {float(v[row])!r} is not a valid {name}",
                fix,
            )


def _bad(path: Path, index: int, problem: str):
    raise InputError(path, f"frame {index}", problem, "the dump is corrupted; regenerate it")


def _unwrap(table: np.ndarray, cols: _Columns, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    p = table[:, list(cols.pos)]
    if cols.kind == "unwrapped":
        return np.ascontiguousarray(p)
    if cols.kind == "wrapped+image":
        return p[:, :3] + p[:, 3:] * length
    if cols.kind == "scaled-unwrapped":
        return lo + p * length
    return lo + (p[:, :3] + p[:, 3:]) * length  # scaled + image flags


def read_frames(
    paths: Sequence[Path],
    *,
    drop_incomplete: bool = False,
    warn: Callable[[str], None] = lambda msg: None,
    progress: Callable[[int], None] = lambda nbytes: None,
) -> Iterator[Frame]:
    """Frames of the dumps `paths`, read in order as one trajectory.

    A truncated frame at the end of a file (or a cut or corrupt gzip stream) raises
    InputError unless `drop_incomplete`, in which case the complete frames before it are
    kept with a warning. `progress` gets the number of (compressed) bytes consumed so far
    over all files.
    """
    count, last_ts, done_bytes = [0], None, 0
    for path in map(Path, paths):
        in_file = 0
        base = done_bytes
        for frame in _file_frames(path, count, drop_incomplete, warn, progress, base):
            in_file += 1
            if last_ts is not None and frame.timestep <= last_ts:
                if frame.timestep == last_ts and in_file == 1:
                    warn(
                        f"{path}: TIMESTEP {last_ts} repeats the previous file's last "
                        "frame (restart); the repeat is dropped"
                    )
                    continue
                raise InputError(
                    path,
                    f"frame {frame.index} (TIMESTEP {frame.timestep})",
                    f"timestep goes backwards or repeats (previous frame: {last_ts})",
                    "give the dumps in time order, each frame once",
                )
            last_ts = frame.timestep
            count[0] += 1
            yield frame
        done_bytes += path.stat().st_size


def _file_frames(
    path: Path, count: list[int], drop: bool, warn, progress, base: int
) -> Iterator[Frame]:
    """The frames of one file; `count[0]` is the index the next frame gets (the caller
    advances it for each frame it keeps). Every way a file can end early is decided here."""
    cols: _Columns | None = None
    header_cache: dict = {}
    raw, f = open_dump(path)
    with raw:
        while True:
            index = count[0]
            try:
                got = _read_frame(f, path, index, cols, header_cache)
            except InputError:
                if not f.gzip:
                    raise
                f.more_frames()  # read to the end: does a damaged stream explain it?
                if not f.damage:
                    raise
                _damaged(path, index, f"{f.damage}: frame {index} is unreadable", drop, warn)
                return
            except _Truncated as t:
                _truncated(f, path, index, t.what, drop, warn)
                return
            if got is None:
                if f.damage:
                    _damaged(path, index, f.damage, drop, warn)
                return
            frame, cols = got
            progress(base + raw.tell())
            yield frame


def _truncated(f: Lines, path: Path, index: int, what: str, drop: bool, warn) -> None:
    """A frame cut short: an error, or (drop) a warning when it is the file's last."""
    if f.damage:
        return _damaged(path, index, f.damage, drop, warn)
    if not drop:
        raise InputError(
            path,
            f"frame {index}",
            f"truncated last frame ({what})",
            f"pass --drop-incomplete-frame to analyse the {index} complete "
            "frames, or let the run finish writing",
        )
    if f.more_frames():
        raise InputError(
            path,
            f"frame {index}",
            f"frame is cut short ({what}) mid-file",
            "the dump is corrupted; regenerate it",
        )
    warn(f"{path}: frame {index} is truncated ({what}); dropped")


def _damaged(path: Path, index: int, damage: str, drop: bool, warn) -> None:
    """A damaged gzip stream: an error, or (drop) a warning and the frames before it."""
    if not drop:
        raise InputError(
            path,
            f"frame {index}",
            f"{damage}; {index} frames before it are complete",
            "pass --drop-incomplete-frame to analyse them, or regenerate the dump",
        )
    warn(f"{path}: {damage}; the {index} complete frames before it are kept")


# --- writing dumps (tests, benchmarks, synthetic trajectories) -----------------------


def _ascii_numbers(x: np.ndarray, decimals: int) -> np.ndarray:
    """(n, width) uint8: `x` as fixed-point text with `decimals` decimals (0: integers),
    right-aligned, vectorised (no per-number Python formatting)."""
    k = np.rint(np.abs(x) * 10.0**decimals).astype(np.int64)
    n_int = max(1, len(str(int(k.max() // 10**decimals))) if len(k) else 1)
    n_dig = n_int + decimals
    digits = np.empty((len(k), n_dig), dtype=np.uint8)
    for j in range(n_dig - 1, -1, -1):
        digits[:, j] = k % 10
        k //= 10
    lead = np.logical_and.accumulate(digits[:, : n_int - 1] == 0, axis=1)  # leading zeros
    chars = digits + ord("0")
    chars[:, : n_int - 1][lead] = ord(" ")
    first = 2 + lead.sum(axis=1)  # column of the first digit after separator + sign columns
    body = (
        chars
        if not decimals
        else np.hstack(
            [chars[:, :n_int], np.full((len(k), 1), ord("."), np.uint8), chars[:, n_int:]]
        )
    )
    out = np.hstack([np.full((len(k), 2), ord(" "), np.uint8), body])
    neg = np.nonzero((x < 0) & (np.rint(np.abs(x) * 10.0**decimals) > 0))[0]
    out[neg, first[neg] - 1] = ord("-")
    return out


def format_atoms(columns: dict[str, np.ndarray], decimals: int = 5) -> bytes:
    """The atom lines of a dump frame; integer arrays are written as integers."""
    parts = []
    for values in columns.values():
        values = np.asarray(values)
        parts.append(_ascii_numbers(values, 0 if values.dtype.kind in "iu" else decimals))
    n = len(next(iter(columns.values())))
    parts.append(np.full((n, 1), ord("\n"), np.uint8))
    return np.hstack(parts).tobytes()


def write_frame(
    f,
    timestep: int,
    lo: Sequence[float],
    hi: Sequence[float],
    columns: dict[str, np.ndarray],
    decimals: int = 5,
) -> None:
    """Append one `dump custom` frame (orthorhombic, periodic) to the binary file `f`."""
    n = len(next(iter(columns.values())))
    head = [f"ITEM: TIMESTEP\n{timestep}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n"]
    head += [f"{float(a)!r} {float(b)!r}\n" for a, b in zip(lo, hi, strict=True)]
    head.append("ITEM: ATOMS " + " ".join(columns) + "\n")
    f.write("".join(head).encode())
    f.write(format_atoms(columns, decimals))


def dump_columns(
    style: str,
    ids: np.ndarray,
    types: np.ndarray,
    unwrapped: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> dict[str, np.ndarray]:
    """The columns of `style` (one of the position kinds of POSITION_SETS) for a frame."""
    lo, length = np.asarray(lo, float), np.asarray(hi, float) - np.asarray(lo, float)
    image = np.floor((unwrapped - lo) / length).astype(np.int64)
    wrapped = unwrapped - image * length
    cols: dict[str, np.ndarray] = {"id": ids, "type": types}
    data = {
        "unwrapped": (("xu", "yu", "zu"), unwrapped),
        "wrapped+image": (("x", "y", "z"), wrapped),
        "scaled-unwrapped": (("xsu", "ysu", "zsu"), (unwrapped - lo) / length),
        "scaled+image": (("xs", "ys", "zs"), (wrapped - lo) / length),
    }
    names, values = data[style]
    cols.update({n: values[:, d] for d, n in enumerate(names)})
    if style.endswith("+image"):
        cols.update({n: image[:, d] for d, n in enumerate(("ix", "iy", "iz"))})
    return cols
