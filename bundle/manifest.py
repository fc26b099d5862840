"""The bundle manifest: streaming SHA-256, `MANIFEST.json`, splitting into parts, ed25519 keys.

A bundle is a directory:

    MANIFEST.json        every payload file: path, sha256, size (and its parts when split);
                         the lock's versions and hash, bundle version, format version
    MANIFEST.json.sig    ed25519 signature of the exact bytes of MANIFEST.json (hex)
    signer.pub           the signer's public key (PEM); trusted only through a key or
                         fingerprint the installer was given out of band (`--trust`)
    <payload files>      images/, wheels/, containers/, templates/, runbook/, ...

Contract of the hashing: files are read in fixed chunks into one reused buffer,
so memory stays at `CHUNK` bytes whatever the file size; digests are lowercase
hex SHA-256 of the file's bytes. Paths in the manifest are POSIX, relative,
and never leave the bundle (`..`, absolute paths and links are refused).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bundle.core.errors import CheckFailed, InputError

FORMAT = "mlmd-bundle-manifest/1"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.json.sig"
SIGNER_PUB = "signer.pub"
RESERVED = frozenset({MANIFEST, SIGNATURE, SIGNER_PUB})
CHUNK = 1 << 20  # bytes read per step; the only buffer a hash or a copy holds
PART_SUFFIX = ".part{:03d}"


# --------------------------------------------------------------------------- hashing
def sha256_file(path: Path, chunk: int = CHUNK) -> tuple[str, int]:
    """(hex SHA-256, size in bytes) of a file, streamed through one reused buffer."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


class HashingReader:
    """A file-like reader that hashes what passes through it (e.g. into `docker load`)."""

    def __init__(self, path: Path, chunk: int = CHUNK):
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        self._chunk = chunk
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(self._chunk if n is None or n < 0 else n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def __iter__(self):
        while data := self.read(self._chunk):
            yield data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> HashingReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_size(text: str) -> int:
    """'2G', '700M', '64K', '1048576' -> bytes (binary units: K = 1024)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m or int(m.group(1)) == 0:
        raise InputError(
            "--split-size", "value", f"{text!r} is not a size", "use e.g. 2G, 700M, 64K or bytes"
        )
    return int(m.group(1)) * 1024 ** "_KMGT".index(m.group(2).upper() or "_")


# --------------------------------------------------------------------------- manifest
@dataclass(frozen=True)
class Part:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class FileEntry:
    path: str  # the logical file, relative POSIX path
    sha256: str  # of the whole (reassembled) file
    size: int
    parts: tuple[Part, ...] = ()  # when split: the stored pieces, in order

    def stored(self) -> list[Part]:
        """What actually lies in the bundle directory for this file."""
        return list(self.parts) or [Part(self.path, self.sha256, self.size)]


@dataclass
class Manifest:
    bundle_version: str
    flavor: str
    lock_sha256: str
    versions: dict[str, Any]
    files: list[FileEntry]
    images: list[dict[str, Any]] = field(default_factory=list)
    source_revision: str = "unknown"
    split_size: int | None = None
    created_utc: str = ""
    format: str = FORMAT

    def to_json(self) -> bytes:
        doc = asdict(self)
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> Manifest:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(where, "(syntax)", f"not JSON: {e}", "re-copy the bundle") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise InputError(
                where, "format", f"{found!r} is not {FORMAT!r}", "use a matching `bundle` version"
            )
        try:
            files = [
                FileEntry(
                    path=_safe_rel(f["path"], where),
                    sha256=str(f["sha256"]),
                    size=int(f["size"]),
                    parts=tuple(
                        Part(_safe_rel(p["path"], where), str(p["sha256"]), int(p["size"]))
                        for p in f.get("parts", ())
                    ),
                )
                for f in doc["files"]
            ]
            kept = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc and k != "files"}
            return cls(files=files, **kept)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(
                where, "files", f"malformed entry ({e})", "re-copy the bundle"
            ) from None

    def entry(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)


def _safe_rel(path: str, where: Path) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or str(p) in RESERVED:
        raise InputError(where, "files.path", f"{path!r} escapes the bundle", "re-pack the bundle")
    return str(p)


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload_files(root: Path, links: list[str] | None = None) -> list[str]:
    """Every regular file under `root` except the manifest trio, sorted, as POSIX paths.

    A link (to a file or a folder, broken or not) or a special file raises InputError, or,
    when `links` is given, is appended to it (relative path) and skipped; folders behind a
    link are never entered."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for d in [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            dirnames.remove(d)
            _special(root, Path(dirpath, d), links)
        for name in filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink() or not p.is_file():
                _special(root, p, links)
            elif rel not in RESERVED:
                out.append(rel)
    return sorted(out)


def _special(root: Path, p: Path, links: list[str] | None) -> None:
    if links is None:
        raise InputError(p, "(file type)", "links and special files cannot be bundled")
    links.append(p.relative_to(root).as_posix())


def through_link(root: Path, rel: str) -> str | None:
    """The first component of `rel` under `root` that is a symbolic link, if any."""
    p = root
    for part in PurePosixPath(rel).parts:
        p = p / part
        if p.is_symlink():
            return p.relative_to(root).as_posix()
    return None


def split_file(path: Path, part_size: int) -> list[Part]:
    """Cut `path` into `path.part000`, ... of at most `part_size` bytes; remove the original."""
    parts: list[Part] = []
    with open(path, "rb") as src:
        i = 0
        while True:
            part_path = path.with_name(path.name + PART_SUFFIX.format(i))
            h, size = hashlib.sha256(), 0
            with open(part_path, "wb") as dst:
                while size < part_size:
                    data = src.read(min(CHUNK, part_size - size))
                    if not data:
                        break
                    h.update(data)
                    dst.write(data)
                    size += len(data)
            if size == 0:
                part_path.unlink()
                break
            parts.append(Part(part_path.name, h.hexdigest(), size))
            i += 1
    path.unlink()
    return parts


def build_manifest(root: Path, split_size: int | None = None, **meta: Any) -> Manifest:
    """Hash every payload file under `root` (splitting files over `split_size`) into a Manifest."""
    entries = []
    for rel in payload_files(root):
        digest, size = sha256_file(root / rel)
        parts: tuple[Part, ...] = ()
        if split_size and size > split_size:
            parent = PurePosixPath(rel).parent
            parts = tuple(
                Part(str(parent / p.path), p.sha256, p.size)
                for p in split_file(root / rel, split_size)
            )
        entries.append(FileEntry(rel, digest, size, parts))
    return Manifest(files=entries, split_size=split_size, created_utc=now_utc(), **meta)


# --------------------------------------------------------------------------- checking
@dataclass(frozen=True)
class Problem:
    """One integrity failure, naming the file (as stored in the bundle or installed)."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class IntegrityError(CheckFailed):
    def __init__(self, problems: list[Problem], what: str = "bundle"):
        self.problems = problems
        shown = "; ".join(map(str, problems[:5]))
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{what} integrity FAILED: {shown}{more}")


def check_file(path: Path, rel: str, sha256: str, size: int) -> Problem | None:
    if not path.is_file():
        return Problem(rel, "missing")
    st = path.stat()
    if st.st_size != size:
        return Problem(rel, f"size {st.st_size} != {size} in the manifest")
    digest, _ = sha256_file(path)
    if digest != sha256:
        return Problem(rel, f"sha256 {digest[:16]}... != {sha256[:16]}... in the manifest")
    return None


def check_payload(root: Path, manifest: Manifest, stored: bool = True) -> list[Problem]:
    """Hash every file of the manifest under `root`.

    stored=True checks the bundle directory as packed (parts where split) and
    flags files the manifest does not list; stored=False checks an installed
    tree (reassembled files), where other files (venv, reports) are expected.
    """
    problems = []
    listed = set()
    for entry in manifest.files:
        pieces = entry.stored() if stored else [Part(entry.path, entry.sha256, entry.size)]
        for p in pieces:
            listed.add(p.path)
            if link := through_link(root, p.path):
                problems.append(Problem(p.path, f"reached through the link {link}: refused"))
            elif bad := check_file(root / p.path, p.path, p.sha256, p.size):
                problems.append(bad)
    if stored:
        links: list[str] = []
        unlisted = [r for r in payload_files(root, links) if r not in listed]
        problems += [
            Problem(r, "a link or special file: refused") for r in links if r not in listed
        ]
        problems += [Problem(r, "not listed in the manifest") for r in unlisted]
        problems += [
            Problem(n, "a link: refused") for n in sorted(RESERVED) if (root / n).is_symlink()
        ]
    return problems


def reassemble(root: Path, entry: FileEntry, dest: Path) -> None:
    """Copy one file (joining its parts) from the bundle to `dest`, re-hashing the bytes written."""
    h, size = hashlib.sha256(), 0
    tmp = dest.with_name(dest.name + ".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as out:
        for p in entry.stored():
            with open(root / p.path, "rb") as src:
                while data := src.read(CHUNK):
                    h.update(data)
                    out.write(data)
                    size += len(data)
    if h.hexdigest() != entry.sha256 or size != entry.size:
        tmp.unlink()
        raise IntegrityError([Problem(entry.path, "changed while being installed")])
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- ed25519 keys
def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(pub: Ed25519PublicKey) -> str:
    """`sha256:<hex>` of the raw 32-byte public key: what a vendor prints on the delivery note."""
    return "sha256:" + hashlib.sha256(_raw_public(pub)).hexdigest()


def public_pem(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private_key(path: Path, key: Ed25519PrivateKey, overwrite: bool = False) -> None:
    """PEM (PKCS#8, unencrypted) created with mode 0600 from the start: never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise InputError(
            path, "(file)", "a key already exists", "pick another --out or remove it first"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(path, 0o600)


def generate_keys(out_dir: Path, name: str = "vendor") -> tuple[Path, Path]:
    """`<name>.key` (0600) and `<name>.pub` in out_dir; returns both paths."""
    key = Ed25519PrivateKey.generate()
    key_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if pub_path.exists():
        raise InputError(pub_path, "(file)", "a key already exists", "pick another --out")
    write_private_key(key_path, key)
    pub_path.write_bytes(public_pem(key.public_key()))
    return key_path, pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise InputError(
            path, "(file)", "no such key", "`bundle keys generate --out DIR`"
        ) from None
    except (ValueError, TypeError) as e:
        raise InputError(path, "(key)", f"not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(path, "(key)", "not an ed25519 key", "`bundle keys generate --out DIR`")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        pub = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise InputError(path, "(file)", "no such public key") from None
    except ValueError as e:
        raise InputError(path, "(key)", f"not a PEM public key ({e})") from None
    if not isinstance(pub, Ed25519PublicKey):
        raise InputError(path, "(key)", "not an ed25519 public key")
    return pub


def sign(data: bytes, key: Ed25519PrivateKey) -> str:
    return key.sign(data).hex() + "\n"


def signature_ok(data: bytes, signature_hex: str, pub: Ed25519PublicKey) -> bool:
    try:
        pub.verify(bytes.fromhex(signature_hex.strip()), data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Trust:
    """Who may sign: public keys and/or fingerprints the installer was given out of band."""

    keys: tuple[Ed25519PublicKey, ...] = ()
    fingerprints: tuple[str, ...] = ()

    @classmethod
    def parse(cls, items: list[str]) -> Trust:
        keys, fps = [], []
        for item in items:
            if re.fullmatch(r"sha256:[0-9a-f]{64}", item.strip().lower()):
                fps.append(item.strip().lower())
            else:
                keys.append(load_public_key(Path(item)))
        return cls(tuple(keys), tuple(fps))

    def __bool__(self) -> bool:
        return bool(self.keys or self.fingerprints)

    def accepts(self, pub: Ed25519PublicKey) -> bool:
        fp = fingerprint(pub)
        return fp in self.fingerprints or any(fingerprint(k) == fp for k in self.keys)


def sign_bundle(root: Path, manifest: Manifest, key: Ed25519PrivateKey) -> None:
    data = manifest.to_json()
    (root / MANIFEST).write_bytes(data)
    (root / SIGNATURE).write_text(sign(data, key))
    (root / SIGNER_PUB).write_bytes(public_pem(key.public_key()))


def read_signed(root: Path, trust: Trust) -> tuple[Manifest, str]:
    """The manifest of a bundle (or install) directory, after its signature is checked.

    Returns (manifest, signer fingerprint). Raises IntegrityError naming the file.
    """
    for name in (MANIFEST, SIGNATURE, SIGNER_PUB):
        if not (root / name).is_file():
            raise IntegrityError([Problem(name, "missing")])
    data = (root / MANIFEST).read_bytes()
    try:
        pub = load_public_key(root / SIGNER_PUB)
    except InputError as e:
        raise IntegrityError([Problem(SIGNER_PUB, e.problem)]) from None
    if not trust.accepts(pub):
        raise IntegrityError(
            [Problem(SIGNER_PUB, f"signer {fingerprint(pub)} is not a trusted key")]
        )
    if not signature_ok(data, (root / SIGNATURE).read_text(errors="replace"), pub):
        raise IntegrityError([Problem(MANIFEST, "the ed25519 signature does not match")])
    return Manifest.from_json(data, root / MANIFEST), fingerprint(pub)
