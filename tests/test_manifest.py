"""Streaming hashes, the signed manifest, splitting into parts, ed25519 keys."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tracemalloc

import pytest

from bundle import manifest as mf
from bundle.core.errors import CheckFailed, InputError


def _tree(root):
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.txt").write_text("hello\n")
    (root / "b.bin").write_bytes(os.urandom(300_000))
    (root / "empty").write_bytes(b"")
    return root


def _meta():
    return dict(bundle_version="0.1.0", flavor="cpu", lock_sha256="0" * 64, versions={})


def test_sha256_file_matches_sha256sum_and_hashlib(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(os.urandom(3 * mf.CHUNK + 17))
    digest, size = mf.sha256_file(p)
    assert size == p.stat().st_size
    assert digest == hashlib.sha256(p.read_bytes()).hexdigest()
    assert digest == subprocess.run(["sha256sum", p], capture_output=True, text=True).stdout[:64]


def test_hashing_memory_does_not_grow_with_the_file(tmp_path):
    p = tmp_path / "big"
    with open(p, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    mf.sha256_file(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * mf.CHUNK, f"peak {peak} bytes for a 64 MiB file"


@pytest.mark.parametrize(
    "text,expect", [("2G", 2 << 30), ("700M", 700 << 20), ("64k", 65536), ("123", 123)]
)
def test_parse_size(text, expect):
    assert mf.parse_size(text) == expect


@pytest.mark.parametrize("bad", ["", "0", "2X", "-5", "1.5G"])
def test_parse_size_refuses(bad):
    with pytest.raises(InputError, match="--split-size"):
        mf.parse_size(bad)


def test_manifest_roundtrip_split_and_reassemble(tmp_path):
    root = _tree(tmp_path / "bundle")
    original = (root / "b.bin").read_bytes()
    m = mf.build_manifest(root, split_size=100_000, **_meta())
    entry = m.entry("b.bin")
    assert [p.size for p in entry.parts] == [100_000, 100_000, 100_000]
    assert not (root / "b.bin").exists() and (root / "b.bin.part002").exists()
    assert m.entry("a/x.txt").parts == ()
    assert m.entry("empty").size == 0
    key = mf.Ed25519PrivateKey.generate()
    mf.sign_bundle(root, m, key)
    back, fp = mf.read_signed(root, mf.Trust((key.public_key(),)))
    assert back == m and fp == mf.fingerprint(key.public_key())
    assert mf.check_payload(root, back) == []
    mf.reassemble(root, entry, tmp_path / "out" / "b.bin")
    assert (tmp_path / "out" / "b.bin").read_bytes() == original


def test_flipped_byte_in_a_part_names_the_part(tmp_path):
    root = _tree(tmp_path / "bundle")
    m = mf.build_manifest(root, split_size=100_000, **_meta())
    with open(root / "b.bin.part001", "r+b") as f:
        f.seek(5)
        byte = f.read(1)
        f.seek(5)
        f.write(bytes([byte[0] ^ 0x01]))
    problems = mf.check_payload(root, m)
    assert [p.path for p in problems] == ["b.bin.part001"]
    assert "sha256" in problems[0].problem
    with pytest.raises(mf.IntegrityError, match="b.bin"):
        mf.reassemble(root, m.entry("b.bin"), tmp_path / "out")


def test_unlisted_missing_and_resized_files_are_named(tmp_path):
    root = _tree(tmp_path / "bundle")
    m = mf.build_manifest(root, **_meta())
    (root / "extra").write_text("x")
    (root / "a" / "x.txt").unlink()
    (root / "empty").write_text("now not empty")
    problems = {p.path: p.problem for p in mf.check_payload(root, m)}
    assert problems == {
        "extra": "not listed in the manifest",
        "a/x.txt": "missing",
        "empty": "size 13 != 0 in the manifest",
    }


def test_signature_from_another_key_or_edited_manifest_fails(tmp_path):
    root = _tree(tmp_path / "bundle")
    vendor, other = mf.Ed25519PrivateKey.generate(), mf.Ed25519PrivateKey.generate()
    trust = mf.Trust.parse([])
    assert not trust
    trust = mf.Trust((vendor.public_key(),))
    m = mf.build_manifest(root, **_meta())
    mf.sign_bundle(root, m, other)
    with pytest.raises(mf.IntegrityError, match="signer.pub: signer sha256:.* is not a trusted"):
        mf.read_signed(root, trust)
    mf.sign_bundle(root, m, vendor)
    data = (root / mf.MANIFEST).read_bytes().replace(b'"flavor": "cpu"', b'"flavor": "h200"')
    (root / mf.MANIFEST).write_bytes(data)
    with pytest.raises(CheckFailed, match="MANIFEST.json: the ed25519 signature does not match"):
        mf.read_signed(root, trust)


def test_trust_by_fingerprint(tmp_path):
    key = mf.Ed25519PrivateKey.generate()
    fp = mf.fingerprint(key.public_key())
    assert mf.Trust.parse([fp.upper().replace("SHA256", "sha256")]).accepts(key.public_key())
    assert not mf.Trust.parse(["sha256:" + "0" * 64]).accepts(key.public_key())


def test_manifest_paths_cannot_escape(tmp_path):
    bad = b'{"format": "%s", "files": [{"path": "../etc/passwd", "sha256": "", "size": 0}]}'
    with pytest.raises(InputError, match="escapes the bundle"):
        mf.Manifest.from_json(bad % mf.FORMAT.encode(), tmp_path / "MANIFEST.json")


def test_generated_private_key_is_0600_and_never_overwritten(tmp_path):
    key_path, pub_path = mf.generate_keys(tmp_path / "keys")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = mf.load_private_key(key_path)
    assert mf.fingerprint(key.public_key()) == mf.fingerprint(mf.load_public_key(pub_path))
    with pytest.raises(InputError, match="already exists"):
        mf.generate_keys(tmp_path / "keys")
    with pytest.raises(InputError, match="not a PEM private key"):
        mf.load_private_key(pub_path)
