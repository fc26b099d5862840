"""The proofpack: what `bundle verify` hands over, redacted, hashed and signed.

    proofpack.zip          report.json, report.md, logs/, versions/, nvidia-smi/, host.json
    proofpack.zip.sha256   `sha256sum` format
    proofpack.zip.sig      ed25519 signature of the zip's bytes (hex)
    proofpack.pub          the signer's public key (the site key made at install)

Two kinds of member:
- shipped artifacts (the lock, the Python lock, MANIFEST.json, image version lists: files
  the vendor signed): added byte for byte, never redacted, so each still matches its
  hash; `versions/shipped.json` lists them with the manifest path and SHA-256 they match;
- everything the site produced (reports, logs, the install record, host facts): passed
  through `bundle.redact.Redactor` (host and user names, home and install/checkout
  paths, IP addresses; JSON by structure, keys kept).
Binary files are never added. `--no-redact` keeps everything as is.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from bundle import manifest as mf
from bundle.redact import Redactor

__all__ = ["Redactor", "shipped_members", "write_proofpack", "check_proofpack"]

ZIP_DATE = (2000, 1, 1, 0, 0, 0)  # fixed member times: the zip's bytes depend on content only
SHIPPED = "versions/shipped.json"


def shipped_members(
    root: Path, members: dict[str, str | bytes | Path], record: dict | None
) -> dict[str, dict]:
    """{arcname: {"path", "sha256"}} for the members that are files the vendor shipped: a
    file of the installed manifest (its SHA-256 from the manifest; MANIFEST.json itself:
    the one the install record names). From a source checkout (no record) the lock files
    are the repository's own and are listed with their current SHA-256."""
    man = None
    if record is not None and (root / mf.MANIFEST).is_file():
        man = mf.Manifest.from_json((root / mf.MANIFEST).read_bytes(), root / mf.MANIFEST)
    out = {}
    for arc, src in members.items():
        if not isinstance(src, Path) or not src.is_file():
            continue
        try:
            rel = src.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
        if man is not None:
            entry = man.entry(rel)
            if rel == mf.MANIFEST:
                out[arc] = {"path": rel, "sha256": record.get("manifest_sha256")}
            elif entry is not None:
                out[arc] = {"path": rel, "sha256": entry.sha256}
        elif rel.startswith("containers/") and rel.endswith((".lock.yaml", ".lock.txt")):
            out[arc] = {"path": rel, "sha256": mf.sha256_file(src)[0]}
    return out


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def write_proofpack(
    out_dir: Path,
    members: dict[str, str | bytes | Path],
    key: mf.Ed25519PrivateKey,
    redact: Redactor,
    shipped: dict[str, dict] | None = None,
) -> dict:
    """Zip `members` (arcname -> text, bytes or file): the `shipped` ones byte for byte
    (listed in versions/shipped.json), the others redacted; hash and sign the zip.

    Returns {"file", "sha256", "signature", "signer", "members", "skipped"}.
    """
    zpath = out_dir / "proofpack.zip"
    shipped = shipped or {}
    members = {**members, SHIPPED: json.dumps(shipped, indent=1, sort_keys=True) + "\n"}
    skipped = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for arcname in sorted(members):
            src = members[arcname]
            data = src.read_bytes() if isinstance(src, Path) else src
            data = data.encode() if isinstance(data, str) else data
            if not _is_text(data):
                skipped.append(arcname)
                continue
            if arcname not in shipped:
                data = redact.document(data.decode()).encode()
            info = zipfile.ZipInfo(arcname if arcname in shipped else redact.key(arcname), ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    data = buf.getvalue()
    zpath.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    (out_dir / "proofpack.zip.sha256").write_text(f"{sha}  proofpack.zip\n")
    sig = mf.sign(data, key)
    (out_dir / "proofpack.zip.sig").write_text(sig)
    (out_dir / "proofpack.pub").write_bytes(mf.public_pem(key.public_key()))
    return {
        "file": zpath.name,
        "sha256": sha,
        "signature": sig.strip(),
        "signer": mf.fingerprint(key.public_key()),
        "members": len(members) - len(skipped),
        "skipped": skipped,
    }


def check_proofpack(out_dir: Path, pub: mf.Ed25519PublicKey | None = None) -> str:
    """Re-check a proofpack: SHA-256 file and signature (by `pub`, else the pub beside it).

    Returns the signer fingerprint; raises IntegrityError naming what is wrong.
    """
    zpath = out_dir / "proofpack.zip"
    data = zpath.read_bytes()
    want = (out_dir / "proofpack.zip.sha256").read_text().split()[0]
    if hashlib.sha256(data).hexdigest() != want:
        raise mf.IntegrityError([mf.Problem("proofpack.zip", "SHA-256 differs")], "proofpack")
    pub = pub or mf.load_public_key(out_dir / "proofpack.pub")
    if not mf.signature_ok(data, (out_dir / "proofpack.zip.sig").read_text(), pub):
        raise mf.IntegrityError(
            [mf.Problem("proofpack.zip.sig", "signature does not match")], "proofpack"
        )
    return mf.fingerprint(pub)
