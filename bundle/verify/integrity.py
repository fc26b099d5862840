"""Phase 1, integrity: the install record, the manifest's signature, every installed file's
SHA-256, and the running Python environment against the lock."""

from __future__ import annotations

import dataclasses
import hashlib
from importlib import metadata

from bundle import manifest as mf
from bundle import pack
from bundle.install import archives
from bundle.verify.common import (
    E_HASH,
    E_PYENV,
    E_RECORD,
    E_SIGNATURE,
    FAIL,
    PASS,
    SKIP,
    Check,
    Context,
)


def phase_integrity(ctx: Context) -> list[Check]:
    ph = "integrity"
    out = []
    if not ctx.installed:
        why = "source checkout: no install record (integrity applies to an installed bundle)"
        out += [Check(ph, n, SKIP, why) for n in ("install-record", "signature", "hashes")]
    else:
        out += _installed_integrity(ctx)
    out.append(_python_env(ctx))
    return out


def _installed_integrity(ctx: Context) -> list[Check]:
    ph, root, rec = "integrity", ctx.root, ctx.record
    man_path = root / mf.MANIFEST
    if rec.get("schema") != "bundle-install/1" or not man_path.is_file():
        return [
            Check(ph, "install-record", FAIL, "install.json or MANIFEST.json unusable", E_RECORD)
        ]
    sha = hashlib.sha256(man_path.read_bytes()).hexdigest()
    if sha != rec.get("manifest_sha256"):
        why = "MANIFEST.json is not the one the install recorded"
        return [Check(ph, "install-record", FAIL, why, E_RECORD, sha, rec.get("manifest_sha256"))]
    out = [Check(ph, "install-record", PASS, f"bundle {rec['bundle_version']} ({rec['flavor']})")]
    trust = mf.Trust.parse([rec["signer_fingerprint"], *ctx.opts.trust])
    try:
        man, fp = mf.read_signed(root, trust)
    except mf.IntegrityError as e:
        out.append(Check(ph, "signature", FAIL, str(e.problems[0]), E_SIGNATURE))
        return out + [Check(ph, "hashes", SKIP, "signature FAILED")]
    out.append(Check(ph, "signature", PASS, "ed25519, by the signer trusted at install", value=fp))
    # image archives are streamed into the runtime at install: the images phase checks them
    files = [f for f in man.files if f.path not in archives(man)]
    installed = dataclasses.replace(man, files=files)
    problems = mf.check_payload(root, installed, stored=False)
    n = len(installed.files)
    if problems:
        out.append(
            Check(ph, "hashes", FAIL, "; ".join(map(str, problems[:5])), E_HASH, len(problems))
        )
    else:
        out.append(Check(ph, "hashes", PASS, f"{n} files match the manifest", value=n))
    return out


def _installed_versions() -> dict[str, str]:
    """Name -> version of the distribution an import would find: the first on sys.path.

    Later entries are shadowed copies, e.g. the dist-info setuptools vendors in
    `setuptools/_vendor` (appended to sys.path once setuptools is imported: its older
    platformdirs and wheel must not stand for the environment's own)."""
    have: dict[str, str] = {}
    for d in metadata.distributions():  # in sys.path order
        have.setdefault(pack._norm(d.metadata["Name"]), d.version)
    return have


def _python_env(ctx: Context) -> Check:
    """The running environment's distributions equal the Python lock (and this bundle)."""
    have = _installed_versions()
    flavor_reqs = ctx.root / "wheels" / "requirements.txt"  # an install: its flavor's part
    want = pack.locked_requirements(
        flavor_reqs if ctx.installed and flavor_reqs.is_file() else None
    )
    wrong = sorted(
        f"{n} {have.get(n, 'absent')} (lock {v})" for n, v in want.items() if have.get(n) != v
    )
    ctx.facts["python_packages"] = {n: have.get(n) for n in sorted(want)}
    if wrong:
        return Check("integrity", "python-env", FAIL, "; ".join(wrong[:5]), E_PYENV, len(wrong))
    return Check("integrity", "python-env", PASS, f"{len(want)} packages = lock", value=len(want))
