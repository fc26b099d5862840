"""`bundle install`: checks first (signature, every hash), then files; re-runnable.

Tampering: one flipped byte in ANY file of a bundle makes install FAIL naming that
file, with nothing installed. The Python env and images are covered by the
offline end-to-end test (tests/test_offline.py).
"""

from __future__ import annotations

import json
import shutil
import stat

import pytest
from typer.testing import CliRunner

from bundle import install
from bundle import manifest as mf
from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from tests.test_pack import pack_small

runner = CliRunner()


@pytest.fixture(autouse=True)
def _config(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MLMD_BUNDLE_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("MLMD_BUNDLE_TRUST", raising=False)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """(bundle dir, vendor pub, vendor key) of a small bundle split into 64 KiB parts."""
    d = tmp_path_factory.mktemp("signed")
    key, pub = mf.generate_keys(d / "keys")
    r = pack_small(d / "bundle", key, "--split-size", "64K")
    assert r.exit_code == 0, r.output
    return d / "bundle", pub, key


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_install_writes_files_record_wrapper_and_site_key(signed, tmp_path):
    bundle, pub, _ = signed
    prefix = tmp_path / "p"
    r = runner.invoke(app, ["install", str(bundle), "--prefix", str(prefix), "--trust", str(pub)])
    assert r.exit_code == 0, r.output
    man, fp = mf.read_signed(bundle, mf.Trust.parse([str(pub)]))
    for f in man.files:  # split files are reassembled byte for byte
        assert mf.sha256_file(prefix / f.path) == (f.sha256, f.size), f.path
    rec = json.loads((prefix / "install.json").read_text())
    assert rec["schema"] == "bundle-install/1" and rec["signer_fingerprint"] == fp
    assert rec["runtime"] == "none" and rec["images"] == []
    wrapper = (prefix / "bin" / "bundle").read_text()
    assert f'MLMD_BUNDLE_ROOT="{prefix}"' in wrapper
    assert stat.S_IMODE((prefix / "keys" / "site.key").stat().st_mode) == 0o600
    assert not (prefix / ".staging").exists()
    # re-run: same result, the record is rewritten, no leftovers
    before = sorted(p.relative_to(prefix) for p in prefix.rglob("*"))
    r = runner.invoke(app, ["install", str(bundle), "--prefix", str(prefix), "--trust", str(pub)])
    assert r.exit_code == 0, r.output
    assert sorted(p.relative_to(prefix) for p in prefix.rglob("*")) == before


def test_one_flipped_byte_in_any_bundled_file_fails_naming_it(signed, tmp_path):
    bundle, pub, _ = signed
    trust = mf.Trust.parse([str(pub)])
    work = tmp_path / "bundle"
    shutil.copytree(bundle, work)
    stored = mf.payload_files(work)
    assert len(stored) > 10
    for rel in stored:
        path = work / rel
        original = path.read_bytes()
        flip_byte(path)
        with pytest.raises(mf.IntegrityError) as e:
            install.check_bundle(work, trust)
        assert [p.path for p in e.value.problems] == [rel], rel
        path.write_bytes(original)
    install.check_bundle(work, trust)  # restored: passes again


def test_tampered_bundle_installs_nothing_and_the_cli_names_the_file(signed, tmp_path):
    bundle, pub, _ = signed
    work = tmp_path / "bundle"
    shutil.copytree(bundle, work)
    flip_byte(work / "containers" / "stack.lock.yaml")
    prefix = tmp_path / "p"
    r = runner.invoke(app, ["install", str(work), "--prefix", str(prefix), "--trust", str(pub)])
    assert r.exit_code == EXIT_CHECK_FAILED
    assert "containers/stack.lock.yaml: sha256" in r.output
    assert not prefix.exists()


def test_manifest_edit_or_signature_from_another_key_fails(signed, tmp_path):
    bundle, pub, _ = signed
    work = tmp_path / "bundle"
    shutil.copytree(bundle, work)
    # an attacker re-signs a modified manifest with their own key
    other = mf.Ed25519PrivateKey.generate()
    man = mf.Manifest.from_json((work / mf.MANIFEST).read_bytes(), work / mf.MANIFEST)
    mf.sign_bundle(work, man, other)
    prefix = tmp_path / "p"
    r = runner.invoke(app, ["install", str(work), "--prefix", str(prefix), "--trust", str(pub)])
    assert r.exit_code == EXIT_CHECK_FAILED
    assert f"signer {mf.fingerprint(other.public_key())} is not a trusted key" in r.output
    assert not prefix.exists()
    # a manifest changed after signing (signature and signer untouched)
    shutil.rmtree(work)
    shutil.copytree(bundle, work)
    text = (work / mf.MANIFEST).read_text().replace('"flavor": "cpu"', '"flavor": "h200"')
    (work / mf.MANIFEST).write_text(text)
    r = runner.invoke(app, ["install", str(work), "--prefix", str(prefix), "--trust", str(pub)])
    assert r.exit_code == EXIT_CHECK_FAILED and "MANIFEST.json: the ed25519 signature" in r.output


def test_trust_by_fingerprint_and_no_trust_at_all(signed, tmp_path):
    bundle, pub, _ = signed
    fp = mf.fingerprint(mf.load_public_key(pub))
    r = runner.invoke(app, ["install", str(bundle), "--prefix", str(tmp_path / "p"), "--trust", fp])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["install", str(bundle), "--prefix", str(tmp_path / "q")])
    assert r.exit_code == EXIT_BAD_INPUT and "--trust" in r.output
    assert not (tmp_path / "q").exists()


def test_missing_part_and_unlisted_file_are_named(signed, tmp_path):
    bundle, pub, _ = signed
    work = tmp_path / "bundle"
    shutil.copytree(bundle, work)
    part = next(p for p in mf.payload_files(work) if ".part" in p)
    (work / part).unlink()
    (work / "notes.txt").write_text("added after signing\n")
    with pytest.raises(mf.IntegrityError) as e:
        install.check_bundle(work, mf.Trust.parse([str(pub)]))
    assert {p.path: p.problem for p in e.value.problems} == {
        part: "missing",
        "notes.txt": "not listed in the manifest",
    }
