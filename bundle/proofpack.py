"""The proofpack: what `bundle verify` hands over, redacted, hashed and signed.

    proofpack.zip          report.json, report.md, logs/, versions/, nvidia-smi/, host.json
    proofpack.zip.sha256   `sha256sum` format
    proofpack.zip.sig      ed25519 signature of the zip's bytes (hex)
    proofpack.pub          the signer's public key (the site key made at install)

Redaction: every text that enters the zip passes through `Redactor`, which replaces
this machine's host names (short and FQDN), the user names (login, $USER,
$SUDO_USER, uid owner) and the home directory by `<host>`, `<user>`, `<home>`.
Words are replaced whole, so a host named `gpu1` does not mangle `gpu10`.
Binary files are never added. `--no-redact` keeps everything as is.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import pwd
import re
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bundle import manifest as mf

ZIP_DATE = (2000, 1, 1, 0, 0, 0)  # fixed member times: the zip's bytes depend on content only


@dataclass(frozen=True)
class Redactor:
    secrets: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_this_machine(cls, enabled: bool = True) -> Redactor:
        if not enabled:
            return cls()
        pairs: list[tuple[str, str]] = []
        home = os.path.expanduser("~")
        if home not in ("", "/"):
            pairs.append((home, "<home>"))
        hosts = {socket.gethostname(), socket.getfqdn(), os.uname().nodename}
        hosts |= {h.split(".")[0] for h in hosts}
        users = {os.environ.get("USER", ""), os.environ.get("SUDO_USER", ""), getpass.getuser()}
        try:
            users.add(pwd.getpwuid(os.getuid()).pw_name)
        except KeyError:
            pass
        pairs += [(h, "<host>") for h in hosts if len(h) >= 2 and h != "localhost"]
        pairs += [(u, "<user>") for u in users if len(u) >= 2]
        return cls(tuple(sorted(set(pairs))))

    def __call__(self, text: str) -> str:
        # longest first, so an FQDN goes before its short name and /home/x before x
        for secret, mark in sorted(self.secrets, key=lambda p: -len(p[0])):
            if secret.startswith("/"):
                text = text.replace(secret, mark)
            else:
                text = re.sub(rf"(?<![\w.-]){re.escape(secret)}(?![\w-])", mark, text)
        return text

    def leaks(self, text: str) -> list[str]:
        """Secrets still present in `text` (for tests and a last check before zipping)."""
        return [s for s, _ in self.secrets if s in self(text)]


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
) -> dict:
    """Zip `members` (arcname -> text, bytes or file), redacted; hash and sign the zip.

    Returns {"file", "sha256", "signature", "signer", "members", "skipped"}.
    """
    zpath = out_dir / "proofpack.zip"
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
            info = zipfile.ZipInfo(redact(arcname), ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, redact(data.decode()))
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
