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


# ------------------------------------------------------------------ what install never touches
def install_cli(bundle, prefix, pub, *extra):
    return runner.invoke(
        app, ["install", str(bundle), "--prefix", str(prefix), "--trust", str(pub), *extra]
    )


def tree(folder):
    """Every path under `folder` -> its bytes (files), its target (links) or None (folders)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = (
            ("link", str(p.readlink()))
            if p.is_symlink()
            else p.read_bytes()
            if p.is_file()
            else None
        )
    return out


def resigned(bundle, key, dest, drop=(), **fields):
    """A copy of `bundle` with manifest `fields` changed and files `drop`ped, signed again by
    the vendor key: a valid bundle (e.g. an older one)."""
    import dataclasses

    shutil.copytree(bundle, dest)
    man = mf.Manifest.from_json((dest / mf.MANIFEST).read_bytes(), dest / mf.MANIFEST)
    for rel in drop:
        for part in man.entry(rel).stored():
            (dest / part.path).unlink()
    files = [f for f in man.files if f.path not in drop]
    man = dataclasses.replace(man, files=files, **fields)
    mf.sign_bundle(dest, man, mf.load_private_key(key))
    return dest


FOREIGN = {"templates/mine.j2": b"{{ mine }}\n", "docs/notes.md": b"# mine\n", "notes.txt": b"x\n"}


def test_foreign_files_stay_untouched_through_install_reinstall_and_force(signed, tmp_path):
    bundle, pub, _ = signed
    prefix = tmp_path / "p"
    for rel, data in FOREIGN.items():
        (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (prefix / rel).write_bytes(data)
    (prefix / "reports").mkdir()  # site data of bundle commands: neither foreign nor touched
    (prefix / "reports" / "r.json").write_text("{}")
    before = tree(prefix)
    r = install_cli(bundle, prefix, pub)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "holds 3 path(s) bundle install did not write (docs/notes.md, notes.txt, " in r.output
    assert "--force" in r.output and tree(prefix) == before  # nothing written
    for extra in (["--force"], [], ["--force"]):  # forced once, the same files need no --force
        r = install_cli(bundle, prefix, pub, *extra)
        assert r.exit_code == 0, (extra, r.output)
        assert {rel: (prefix / rel).read_bytes() for rel in FOREIGN} == FOREIGN
        assert (prefix / "reports" / "r.json").read_text() == "{}"
        assert not list(prefix.glob(".staging*")) and not (prefix / "install.json.pending").exists()
    rec = json.loads((prefix / "install.json").read_text())
    assert rec["kept"] == sorted(FOREIGN)
    assert "containers/stack.lock.yaml" in rec["files"] and "bin/bundle" in rec["files"]
    assert not set(FOREIGN) & set(rec["files"])
    (prefix / "templates" / "new.j2").write_text("later\n")  # a new foreign file: --force again
    r = install_cli(bundle, prefix, pub)
    assert r.exit_code == EXIT_BAD_INPUT and "holds 1 path(s)" in r.output, r.output


def test_a_foreign_file_or_link_where_the_bundle_installs_is_never_overwritten(signed, tmp_path):
    bundle, pub, _ = signed
    prefix, outside = tmp_path / "p", tmp_path / "outside"
    (prefix / "containers").mkdir(parents=True)
    (prefix / "containers" / "stack.lock.yaml").write_text("mine\n")
    r = install_cli(bundle, prefix, pub, "--force")
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert "containers/stack.lock.yaml was not written by bundle install" in r.output
    assert (prefix / "containers" / "stack.lock.yaml").read_text() == "mine\n"
    shutil.rmtree(prefix / "containers")
    outside.mkdir()
    (outside / "keep.j2").write_text("outside\n")
    (prefix / "templates").symlink_to(outside, target_is_directory=True)
    r = install_cli(bundle, prefix, pub, "--force")
    assert r.exit_code == EXIT_BAD_INPUT and "templates is a link" in r.output, r.output
    assert [p.name for p in outside.iterdir()] == ["keep.j2"]
    assert sorted(p.name for p in prefix.iterdir()) == ["templates"]


def test_an_older_bundle_is_refused_unless_allow_downgrade_and_history_is_kept(signed, tmp_path):
    bundle, pub, key = signed
    prefix = tmp_path / "p"
    assert install_cli(bundle, prefix, pub).exit_code == 0
    first = json.loads((prefix / "install.json").read_text())
    man = mf.Manifest.from_json((bundle / mf.MANIFEST).read_bytes(), bundle)
    assert first["manifest_created_utc"] == man.created_utc and first["history"] == []
    older = resigned(bundle, key, tmp_path / "older", created_utc="2000-01-01T00:00:00Z")
    lower = resigned(bundle, key, tmp_path / "lower", bundle_version="0.0.1")
    for old in (older, lower):
        r = install_cli(old, prefix, pub)
        assert r.exit_code == EXIT_BAD_INPUT and "is older than the installed one" in r.output
        assert "--allow-downgrade" in r.output
        assert json.loads((prefix / "install.json").read_text()) == first
    assert install_cli(bundle, prefix, pub).exit_code == 0  # the same bundle again: fine
    r = install_cli(older, prefix, pub, "--allow-downgrade")
    assert r.exit_code == 0, r.output
    rec = json.loads((prefix / "install.json").read_text())
    assert rec["manifest_created_utc"] == "2000-01-01T00:00:00Z"
    assert [h["manifest_sha256"] for h in rec["history"]] == [first["manifest_sha256"]] * 2


def test_files_a_newer_bundle_no_longer_ships_are_removed_and_nothing_else(signed, tmp_path):
    bundle, pub, key = signed
    prefix = tmp_path / "p"
    assert install_cli(bundle, prefix, pub).exit_code == 0
    (prefix / "docs" / "mine.md").write_text("mine\n")
    newer = resigned(
        bundle, key, tmp_path / "newer", drop=["docs/README.md"], created_utc="2999-01-01T00:00:00Z"
    )
    r = install_cli(newer, prefix, pub, "--force")
    assert r.exit_code == 0, r.output
    assert not (prefix / "docs" / "README.md").exists()
    assert (prefix / "docs" / "mine.md").read_text() == "mine\n"


def test_links_of_any_kind_in_a_bundle_are_refused_and_nothing_is_installed(signed, tmp_path):
    bundle, pub, _ = signed
    outside = tmp_path / "outside"
    shutil.copytree(bundle / "templates", outside)
    cases = {
        "an unlisted folder link": lambda b: (b / "extra").symlink_to(outside, True),
        "a listed folder as a link": lambda b: (
            shutil.rmtree(b / "templates"),
            (b / "templates").symlink_to(outside, True),
        ),
        "a listed file as a link": lambda b: (
            (b / "docs" / "README.md").rename(tmp_path / "README.md"),
            (b / "docs" / "README.md").symlink_to(tmp_path / "README.md"),
        ),
    }
    expect = {
        "an unlisted folder link": "extra: a link or special file: refused",
        "a listed folder as a link": "reached through the link templates: refused",
        "a listed file as a link": "docs/README.md: reached through the link docs/README.md",
    }
    for name, make in cases.items():
        work = tmp_path / "b"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(bundle, work, symlinks=True)
        make(work)
        prefix = tmp_path / "p"
        r = install_cli(work, prefix, pub)
        assert r.exit_code == EXIT_CHECK_FAILED, (name, r.output)
        assert expect[name] in r.output, (name, r.output)
        assert not prefix.exists(), name


def test_a_prefix_that_is_a_file_is_one_line_exit_3(signed, tmp_path):
    bundle, pub, _ = signed
    (tmp_path / "p").write_text("a file\n")
    r = install_cli(bundle, tmp_path / "p", pub)
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert r.stderr.strip().endswith(
        "p: --prefix: is a file, not a folder; give a folder (made if missing)"
    )
    assert (tmp_path / "p").read_text() == "a file\n"
