"""The byte layer of the dump reader: lines of a plain or gzip file, one frame at a time.

`Lines.block(n)` returns the next n lines as one bytes object (one slice of a large
buffer: no per-line Python objects); it holds at most one frame plus one read chunk.
`Gunzip` decompresses a gzip stream (one or more members) up to its last intact byte:
a cut or corrupt stream (what a killed MD run leaves) ends there, with `damage` saying
what happened, instead of raising and losing what was already decompressed.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from bundle.core.errors import InputError


class Lines:
    """Lines of a binary stream; `block(n)` returns the next n lines as one bytes object
    (one slice of a large buffer: no per-line Python objects). Holds at most one frame
    plus one read chunk."""

    CHUNK = 1 << 22

    def __init__(self, stream):
        self._f, self._buf, self._pos, self._last = stream, b"", 0, 0

    @property
    def gzip(self) -> bool:
        return isinstance(self._f, Gunzip)

    @property
    def damage(self) -> str | None:
        """Why the stream ended early (a cut or corrupt gzip stream), else None."""
        return getattr(self._f, "damage", None)

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
        """Whether another frame header follows in the rest of the stream. Reads the stream
        to its end (so a gzip stream's damage is known), one chunk at a time."""
        marker = b"ITEM: TIMESTEP"
        tail = self._buf[self._pos :]
        found = marker in tail
        while more := self._f.read(self.CHUNK):
            found = found or marker in tail[-len(marker) :] + more
            tail = more
        self._buf, self._pos = b"", 0
        return found


class Gunzip:
    """A gzip stream (one or more members) decompressed up to its last intact byte.

    `gzip.GzipFile` raises on a cut or corrupt stream and drops what it had decompressed
    in that call (up to a whole read); here the data before the damage is returned, then
    EOF, with `damage` saying what happened."""

    RAW = 1 << 16  # compressed bytes per step
    SALVAGE = 64  # after an error: re-feed the failing step in pieces this small

    def __init__(self, raw):
        self._raw, self._d, self._fed, self._pending = raw, zlib.decompressobj(31), False, b""
        self.damage: str | None = None
        self._done = False

    def read(self, n: int) -> bytes:
        out, size = [], 0
        while size < n and not self._done:
            data = self._step()
            out.append(data)
            size += len(data)
        return b"".join(out)

    def _step(self) -> bytes:
        chunk, self._pending = self._pending or self._raw.read(self.RAW), b""
        if not chunk:
            self._done = True
            if not self._fed:
                return b""
            self.damage = "the gzip stream is cut short"
            try:
                return self._d.flush()  # what the cut stream still holds
            except zlib.error:
                return b""
        saved, self._fed = self._d.copy(), True
        try:
            data = self._d.decompress(chunk)
        except zlib.error as e:
            self._d, self._done = saved, True
            self.damage = f"the gzip stream is corrupt ({e})"
            return self._salvage(chunk)
        if self._d.eof:  # end of a member: another may follow (concatenated gzip files)
            rest = self._d.unused_data
            self._d, self._fed = zlib.decompressobj(31), False
            if rest.strip(b"\0"):
                self._pending = rest
            elif rest:
                self._done = True  # zero padding after the last member
        return data

    def _salvage(self, chunk: bytes) -> bytes:
        out = []
        for i in range(0, len(chunk), self.SALVAGE):
            try:
                out.append(self._d.decompress(chunk[i : i + self.SALVAGE]))
            except zlib.error:
                break
        return b"".join(out)


def open_dump(path: Path):
    """(raw file, line reader) for a plain or gzip file."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by read_frames
    except OSError as e:
        raise InputError(path, "(file)", f"cannot read: {e.strerror}", "check the path") from None
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    return raw, Lines(Gunzip(raw) if gz else raw)
