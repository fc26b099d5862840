"""`bundle pack` and `bundle keys generate`: what a bundle holds, signing, splitting, bad input."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from bundle import manifest as mf
from bundle.cli import app
from bundle.core import lock
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_MISSING

runner = CliRunner()


@pytest.fixture(autouse=True)
def _config(tmp_path_factory, monkeypatch):
    """Keys and trusted keys of these tests live in a temp folder, never in ~/.config."""
    monkeypatch.setenv("MLMD_BUNDLE_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("MLMD_BUNDLE_TRUST", raising=False)


@pytest.fixture(scope="module")
def vendor_keys(tmp_path_factory):
    key, pub = mf.generate_keys(tmp_path_factory.mktemp("vendor"))
    return key, pub


def pack_small(out, key, *extra: str):
    """A bundle without wheels, and without images unless `--image` is given (seconds)."""
    args = ["pack", "--flavor", "cpu", "--out", str(out), "--key", str(key), "--no-wheels"]
    return runner.invoke(app, [*args, *([] if "--image" in extra else ["--no-images"]), *extra])


def test_keys_generate_prints_fingerprint_and_keeps_the_key_private(tmp_path):
    r = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path / "k")])
    assert r.exit_code == 0, r.output
    key = tmp_path / "k" / "vendor.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    fp = mf.fingerprint(mf.load_public_key(tmp_path / "k" / "vendor.pub"))
    assert fp in r.output
    again = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path / "k")])
    assert again.exit_code == EXIT_BAD_INPUT and "already exists" in again.output


def test_small_bundle_lists_every_file_signed_with_lock_versions(tmp_path, vendor_keys):
    key, pub = vendor_keys
    out = tmp_path / "b"
    r = pack_small(out, key)
    assert r.exit_code == 0, r.output
    man, fp = mf.read_signed(out, mf.Trust.parse([str(pub)]))
    assert fp in r.output
    assert mf.check_payload(out, man) == []
    paths = {f.path for f in man.files}
    assert set(mf.payload_files(out)) == paths
    for must in (
        "containers/stack.lock.yaml",
        "containers/requirements.lock.txt",
        "bundle/references/engines.yaml",
        "bundle/references/li2o-12.pw.in",
        "docs/README.md",
        "pseudo/Li.pbesol-s-rrkjus_psl.0.2.1.UPF",  # named by the engine reference
        "pseudo/O.pbesol-n-rrkjus_psl.0.1.UPF",
    ):
        assert must in paths, must
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in paths)
    assert man.lock_sha256 == lock.lock_hash()
    assert man.versions["python_packages"] == lock.load()["python_packages"]
    assert man.format == mf.FORMAT and man.flavor == "cpu" and man.images == []
    doc = json.loads((out / mf.MANIFEST).read_text())
    assert doc["bundle_version"] and doc["source_revision"]
    assert not (tmp_path / "b.partial").exists()


def test_split_size_cuts_large_files_into_parts(tmp_path, vendor_keys):
    key, pub = vendor_keys
    out = tmp_path / "b"
    r = pack_small(out, key, "--split-size", "64K")
    assert r.exit_code == 0, r.output
    man, _ = mf.read_signed(out, mf.Trust.parse([str(pub)]))
    split = [f for f in man.files if f.parts]
    assert split, "the pseudopotentials (> 64 KiB) must be split"
    for f in split:
        assert all(p.size <= 64 * 1024 for p in f.parts)
        assert sum(p.size for p in f.parts) == f.size
        assert not (out / f.path).exists()
    assert mf.check_payload(out, man) == []


def test_pack_refuses_existing_output_unknown_flavor_and_bad_split(tmp_path, vendor_keys):
    key, _ = vendor_keys
    (tmp_path / "exists").mkdir()
    r = pack_small(tmp_path / "exists", key)
    assert r.exit_code == EXIT_BAD_INPUT and "already exists" in r.output
    r = runner.invoke(app, ["pack", "--flavor", "gpu", "--out", str(tmp_path / "x"), "--no-images"])
    assert r.exit_code == EXIT_BAD_INPUT and "--flavor" in r.output
    r = pack_small(tmp_path / "y", key, "--split-size", "2X")
    assert r.exit_code == EXIT_BAD_INPUT and "--split-size" in r.output


def test_pack_without_key_creates_a_default_key_and_trusts_it(tmp_path):
    r = runner.invoke(
        app, ["pack", "--flavor", "cpu", "--out", str(tmp_path / "b"), "--no-images", "--no-wheels"]
    )
    assert r.exit_code == 0, r.output
    assert "created a signing key" in r.output
    from bundle import install

    man, _ = install.check_bundle(tmp_path / "b", install.trust_from([]))
    assert man.files


def test_missing_image_fails_before_any_work_with_the_build_hint(
    tmp_path, vendor_keys, docker_engine
):
    key, _ = vendor_keys
    out = tmp_path / "b"
    r = runner.invoke(
        app,
        ["pack", "--flavor", "cpu", "--out", str(out), "--key", str(key)]
        + ["--image", "mlmd-bundle-test:does-not-exist", "--no-wheels"],
    )
    assert r.exit_code == EXIT_MISSING, r.output
    assert "mlmd-bundle-test:does-not-exist" in r.output
    assert "bundle images build --flavor cpu" in r.output
    assert not out.exists() and not (tmp_path / "b.partial").exists()


def test_pack_refuses_an_image_built_from_another_lock(tmp_path, vendor_keys, docker_engine):
    from tests.test_verify import TINY, build_tiny

    ref = TINY + "-stale"
    build_tiny(docker_engine, ref, **{"org.mlmd-bundle.lock-sha256": "0" * 64})
    try:
        key, _ = vendor_keys
        r = pack_small(tmp_path / "b", key, "--image", ref)
        assert r.exit_code == EXIT_BAD_INPUT, r.output
        assert (
            "label org.mlmd-bundle.lock-sha256" in r.output
            and "built from another lock" in r.output
        )
        assert "bundle images build --flavor cpu" in r.output
        assert not (tmp_path / "b").exists()
    finally:
        docker_engine.images.remove(ref, force=True)


def test_models_ship_with_their_manifest_and_a_foreign_manifest_is_refused(tmp_path, vendor_keys):
    from bundle import pack

    key, pub = vendor_keys
    src = tmp_path / "deploy"
    src.mkdir()
    model = src / "llzo.nequip.zip"
    model.write_bytes((pack.references_dir() / "llzo-cpu-allegro.nequip.zip").read_bytes())
    card = pack.references_dir() / "llzo-cpu-allegro.model_manifest.json"
    r = pack_small(tmp_path / "b0", key, "--model", str(model))
    assert r.exit_code == EXIT_BAD_INPUT and "llzo.model_manifest.json" in r.output
    (src / "model_manifest.json").write_text(card.read_text())  # the deploy folder's name
    r = pack_small(tmp_path / "b", key, "--model", str(model))
    assert r.exit_code == 0, r.output
    man, _ = mf.read_signed(tmp_path / "b", mf.Trust.parse([str(pub)]))
    paths = {f.path for f in man.files}
    assert {"models/llzo.nequip.zip", "models/llzo.model_manifest.json"} <= paths
    other = json.loads(card.read_text())
    other["artifacts"]["packaged"]["sha256"] = "0" * 64  # the manifest of another model
    (src / "llzo.model_manifest.json").write_text(json.dumps(other))
    r = pack_small(tmp_path / "b2", key, "--model", str(model))
    assert r.exit_code == EXIT_BAD_INPUT and "artifacts.packaged.sha256" in r.output
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b2.partial").exists()
