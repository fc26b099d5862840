"""`bundle verify` and `bundle doctor` on a small installed bundle (no wheels), for real:
pw.x runs, docker loads images, proofpacks are signed and re-checked.

The full pack -> install -> verify chain with the cpu image, the Python env and the
model is tests/test_offline.py.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import re
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundle import doctor, proofpack
from bundle import manifest as mf
from bundle import verify as v
from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from bundle.verify import common as vc
from tests.conftest import require_program
from tests.test_install import flip_byte
from tests.test_pack import pack_small

runner = CliRunner()
TINY = "mlmd-bundle-test:tiny"


@pytest.fixture(autouse=True)
def _config(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MLMD_BUNDLE_CONFIG", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("MLMD_BUNDLE_TRUST", raising=False)
    monkeypatch.delenv("MLMD_BUNDLE_ROOT", raising=False)


def install_small(tmp_path, *pack_args: str, runtime: str = "none"):
    key, pub = mf.generate_keys(tmp_path / "keys")
    r = pack_small(tmp_path / "bundle", key, *pack_args)
    assert r.exit_code == 0, r.output
    prefix = tmp_path / "prefix"
    r = runner.invoke(
        app,
        ["install", str(tmp_path / "bundle"), "--prefix", str(prefix), "--trust", str(pub)]
        + ["--runtime", runtime],
    )
    assert r.exit_code == 0, r.output
    return prefix


def run_verify(monkeypatch, prefix, *args: str):
    """`bundle verify` as the installed wrapper runs it (MLMD_BUNDLE_ROOT = prefix)."""
    monkeypatch.setenv("MLMD_BUNDLE_ROOT", str(prefix))
    r = runner.invoke(app, ["verify", *args])
    last = (prefix / "reports" / "LAST").read_text().strip()
    report = json.loads((prefix / "reports" / last / "report.json").read_text())
    return r, report


def by_name(report) -> dict:
    return {f"{c['phase']}/{c['name']}": c for c in report["checks"]}


@pytest.fixture(scope="module")
def installed_quick(tmp_path_factory):
    """A small installed bundle and its `verify --quick` (pw.x runs for real)."""
    require_program("pw.x")
    tmp = tmp_path_factory.mktemp("vq")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLMD_BUNDLE_CONFIG", str(tmp / "config"))
    try:
        prefix = install_small(tmp)
        r, report = run_verify(mp, prefix, "--quick")
    finally:
        mp.undo()
    return prefix, r, report


def test_quick_verify_of_an_installed_bundle(installed_quick):
    prefix, r, report = installed_quick
    checks = by_name(report)
    assert report["schema"] == v.SCHEMA and report["acceptance"] is False
    assert [p["phase"] for p in report["phases"]] == list(v.PHASES)
    for name in ("install-record", "signature", "hashes", "python-env"):
        assert checks[f"integrity/{name}"]["status"] == "PASS", checks[f"integrity/{name}"]
    assert checks["engines/qe-energy"]["status"] == "PASS"
    assert checks["engines/qe-ranks-1v2-energy"]["status"] == "PASS"
    assert checks["engines/qe-energy"]["value"] == pytest.approx(-251.82149261, abs=1e-6)
    assert checks["engines/deepmd-forces[cpu]"]["status"] == "PASS"  # the installed copy
    assert checks["images/images"]["status"] == "SKIP"  # the bundle ships none
    assert "--quick" in checks["reproducibility/llzo-gb"]["reason"]
    # one console line per check, in phase order
    lines = [ln for ln in r.output.splitlines() if ln[:4] in ("PASS", "FAIL", "SKIP")]
    assert len(lines) == len(report["checks"])
    fails = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert r.exit_code == (EXIT_CHECK_FAILED if fails else 0), (r.output, fails)


@pytest.mark.slow
@pytest.mark.engine
def test_quick_verify_from_the_source_checkout(tmp_path):
    """Verify runs from a source checkout too: no install record (integrity says so and
    SKIPs), the engines and the model from the checkout's references (the model is
    compiled here, LAMMPS drives it). The host and images phases are the next test's
    (the container runtime and the session's image build; this one runs beside them,
    off the docker unit)."""
    require_program("pw.x")
    out = tmp_path / "report"
    args = ["verify", "--profile", "cpu", "--quick", "--only", "integrity,engines"]
    r = runner.invoke(app, [*args, "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    checks = by_name(report)
    fails = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert r.exit_code == 0 and report["status"] == "PASS", (r.output, fails)
    assert report["session"]["install"] == "source checkout"
    for name in ("install-record", "signature", "hashes"):
        assert checks[f"integrity/{name}"]["status"] == "SKIP"
        assert checks[f"integrity/{name}"]["reason"].startswith("source checkout")
    assert checks["integrity/python-env"]["status"] == "PASS"
    assert checks["images/images"]["status"] == checks["host/host"]["status"] == "SKIP"
    for name in ("qe-energy", "model-forces[cpu]", "lammps-forces[cpu]", "lammps-virial[cpu]",
                 "deepmd-forces[cpu]", "deepmd-lammps-forces[cpu]"):  # fmt: skip
        assert checks[f"engines/{name}"]["status"] == "PASS", checks[f"engines/{name}"]


@pytest.mark.slow
def test_verify_from_the_source_checkout_finds_the_flavor_image(cpu_image, tmp_path):
    out = tmp_path / "report"
    args = ["verify", "--profile", "cpu", "--quick", "--only", "host,images"]
    r = runner.invoke(app, [*args, "--out", str(out)])
    assert r.exit_code in (0, 1), r.output  # a verdict, never a crash
    checks = by_name(report := json.loads((out / "report.json").read_text()))
    # the host's own numbers (free disk under a loaded test machine) are not this test's
    assert checks["host/container-runtime"]["status"] == "PASS", r.output
    assert checks[f"images/{cpu_image.tag}"]["status"] == "PASS", r.output
    assert {c["phase"] for c in report["checks"] if c["status"] != "SKIP"} >= {"host", "images"}


def test_doctor_on_a_passing_quick_report_says_to_run_the_study(installed_quick, monkeypatch):
    prefix, _, report = installed_quick
    assert report["status"] == "PASS"
    monkeypatch.setenv("MLMD_BUNDLE_ROOT", str(prefix))
    d = runner.invoke(app, ["doctor"])
    assert d.exit_code == 0, d.output
    assert "NOTE the study was skipped (--quick)" in d.output
    assert "nothing to do: every check passed" in d.output


def test_proofpack_is_signed_redacted_and_complete(installed_quick):
    prefix, _, report = installed_quick
    out = prefix / "reports" / (prefix / "reports" / "LAST").read_text().strip()
    site = mf.load_public_key(prefix / "keys" / "site.pub")
    assert proofpack.check_proofpack(out, site) == mf.fingerprint(site)
    assert report["proofpack"]["signer"] == mf.fingerprint(site)
    with zipfile.ZipFile(out / "proofpack.zip") as z:
        names = set(z.namelist())
    for must in ("report.json", "report.md", "logs/qe-np1-pw.out", "logs/qe-np2-pw.out",
                 "versions/stack.lock.yaml", "versions/install.json", "versions/MANIFEST.json",
                 "versions/shipped.json", "host.json"):  # fmt: skip
        assert must in names, must
    inner = json.loads(zipfile.ZipFile(out / "proofpack.zip").read("report.json"))
    assert inner["session"]["host"] == "<redacted>" and inner["session"]["user"] == "<redacted>"
    assert inner["session"]["root"] == "<prefix>"  # the key stays whatever the user is called
    # one changed byte in the zip: the hash and the signature both catch it
    flip_byte(out / "proofpack.zip", 40)
    with pytest.raises(mf.IntegrityError, match="proofpack.zip"):
        proofpack.check_proofpack(out, site)
    flip_byte(out / "proofpack.zip", 40)  # restored: other tests read this proofpack
    assert proofpack.check_proofpack(out, site) == mf.fingerprint(site)


IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")


def _site_secrets(prefix):
    """(names, paths) of this machine and this test session that must not leave the site."""
    import os
    import pwd
    import sys

    hosts = {socket.gethostname(), socket.getfqdn(), os.uname().nodename}
    hosts |= {h.split(".")[0] for h in hosts}
    users = {getpass.getuser(), pwd.getpwuid(os.getuid()).pw_name}
    names = {n for n in hosts | users if len(n) >= 2 and n != "localhost"}
    code = Path(__file__).resolve().parents[1]
    paths = {str(prefix), str(prefix.resolve()), str(code), sys.prefix, os.path.expanduser("~")}
    return names, {p for p in paths if p not in ("", "/")}


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield "key", k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield "value", obj


def test_quick_proofpack_keeps_shipped_hashes_and_no_site_name_path_or_ip(installed_quick):
    """Every shipped file in the proofpack still matches its manifest hash (never redacted);
    no host name, user name, checkout/prefix/home path or IP address is in any other file
    (JSON: names in values; keys are the schema's and stay, e.g. a user called root)."""
    prefix, _, _ = installed_quick
    out = prefix / "reports" / (prefix / "reports" / "LAST").read_text().strip()
    man = mf.Manifest.from_json((prefix / mf.MANIFEST).read_bytes(), prefix)
    record = json.loads((prefix / "install.json").read_text())
    with zipfile.ZipFile(out / "proofpack.zip") as z:
        members = {n: z.read(n) for n in z.namelist()}
    shipped = json.loads(members["versions/shipped.json"])
    assert {"versions/stack.lock.yaml", "versions/requirements.lock.txt",
            "versions/MANIFEST.json"} <= set(shipped)  # fmt: skip
    for arc, info in shipped.items():
        if info["path"] == mf.MANIFEST:
            want = record["manifest_sha256"]
        else:
            want = man.entry(info["path"]).sha256
        assert info["sha256"] == want and hashlib.sha256(members[arc]).hexdigest() == want, arc
    names, paths = _site_secrets(prefix)
    product = {part.lower() for p in prefix.rglob("*") for part in p.relative_to(prefix).parts}
    names = {n for n in names if n.lower() not in product | {"cpu", "h200"}}
    assert names and paths
    for arc, data in members.items():
        if arc in shipped:
            continue
        text = data.decode()
        try:
            items = list(_strings(json.loads(text)))
        except ValueError:
            items = [("value", text)]
        for kind, s in items:
            for p in paths:
                assert p not in s, (arc, p, s[:200])
            ips = [ip for ip in IPV4.findall(s) if all(int(x) < 256 for x in ip.split("."))]
            assert ips == [], (arc, ips)
            if kind == "value":
                for n in names:
                    hit = re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", s)
                    assert hit is None, (arc, n, s[max(0, hit.start() - 60) : hit.end() + 60])


def test_redaction_is_by_value_with_word_and_path_boundaries(tmp_path):
    r = proofpack.Redactor(
        paths=(("/home/alice", "<home>"), ("/srv/ckout", "<checkout>")),
        names=(("h200", "<host>"), ("bundle", "<user>"), ("root", "<user>"), ("gpu1", "<host>")),
        vocabulary=frozenset({"h200", "bundle", "references", "cpu"}),
    )
    doc = {
        "root": "/srv/ckout/runs/x",  # a key named like the user stays; the path goes
        "profile": "h200",  # a product word named like the host stays ...
        "host": "h200",  # ... except where it stands as the host
        "user": "bundle",
        "file": "bundle/references/llzo.yaml",  # a product path named like the user stays
        "log": "root@gpu1: /home/alice2 and /home/alice/x on gpu10, 10.2.3.4, pytest-of-root",
        "/srv/ckout/k": "v2025.7.22.2.0",
    }
    assert r.json(doc) == {
        "root": "<checkout>/runs/x",
        "profile": "h200",
        "host": "<host>",
        "user": "<user>",
        "file": "bundle/references/llzo.yaml",
        "log": "<user>@<host>: /home/alice2 and <home>/x on gpu10, <ip>, pytest-of-<user>",
        "<checkout>/k": "v2025.7.22.2.0",
    }
    assert r.document("ssh bundle@h200; profile h200 in bundle/references\n") == (
        "ssh <user>@<host>; profile h200 in bundle/references\n"
    )
    here = proofpack.Redactor.for_this_machine()
    assert socket.gethostname() not in here(f"ran on {socket.gethostname()}.").split()
    assert proofpack.Redactor.for_this_machine(False)(socket.gethostname()) == socket.gethostname()
    key = mf.Ed25519PrivateKey.generate()
    lock = tmp_path / "stack.lock.yaml"
    lock.write_text(f"# built by {getpass.getuser()} on {socket.gethostname()}\n")
    shipped = {"versions/stack.lock.yaml": {"path": "containers/stack.lock.yaml", "sha256": "x"}}
    members = {"logs/a.log": f"host {socket.gethostname()}\n", "bin": b"\0\1",
               "versions/stack.lock.yaml": lock}  # fmt: skip
    pp = proofpack.write_proofpack(tmp_path, members, key, here, shipped)
    assert pp["skipped"] == ["bin"]
    z = zipfile.ZipFile(tmp_path / "proofpack.zip")
    assert socket.gethostname() not in z.read("logs/a.log").decode().split()
    assert z.read("versions/stack.lock.yaml") == lock.read_bytes()  # shipped: byte for byte
    assert json.loads(z.read("versions/shipped.json")) == shipped


def test_tampered_installed_file_fails_integrity_naming_it_and_doctor_advises(
    tmp_path, monkeypatch
):
    prefix = install_small(tmp_path)
    flip_byte(prefix / "templates" / "qe" / "pw-scf.in.j2")
    r, report = run_verify(monkeypatch, prefix, "--quick")
    assert r.exit_code == EXIT_CHECK_FAILED
    c = by_name(report)["integrity/hashes"]
    assert c["status"] == "FAIL" and c["code"] == vc.E_HASH
    assert "templates/qe/pw-scf.in.j2: sha256" in c["reason"]
    assert "FAIL integrity/hashes" in r.output and "templates/qe/pw-scf.in.j2" in r.output
    # the expensive phases do not run on a tampered install
    assert by_name(report)["engines/engines"]["reason"] == "not run: integrity FAILED"
    d = runner.invoke(app, ["doctor"])
    assert d.exit_code == EXIT_CHECK_FAILED
    assert "FAIL integrity/hashes [INT-HASH]" in d.output
    assert f"bundle install BUNDLE --prefix {prefix}" in d.output


def test_installed_manifest_signed_by_another_key_fails(tmp_path, monkeypatch):
    prefix = install_small(tmp_path)
    other = mf.Ed25519PrivateKey.generate()
    man = mf.Manifest.from_json((prefix / mf.MANIFEST).read_bytes(), prefix / mf.MANIFEST)
    mf.sign_bundle(prefix, man, other)  # same bytes, new signer: the record's sha still matches
    r, report = run_verify(monkeypatch, prefix, "--only", "integrity")
    c = by_name(report)["integrity/signature"]
    assert r.exit_code == EXIT_CHECK_FAILED and c["code"] == vc.E_SIGNATURE
    assert f"signer {mf.fingerprint(other.public_key())} is not a trusted key" in c["reason"]


def test_bad_options_are_one_line_errors(monkeypatch, tmp_path):
    r = runner.invoke(app, ["verify", "--profile", "a100", "--out", str(tmp_path / "o")])
    assert r.exit_code == EXIT_BAD_INPUT and "--profile" in r.output
    r = runner.invoke(app, ["verify", "--only", "engins", "--out", str(tmp_path / "o")])
    assert r.exit_code == EXIT_BAD_INPUT and "engins" in r.output
    r = runner.invoke(app, ["verify", "--prefix", str(tmp_path / "nothing")])
    assert r.exit_code == EXIT_BAD_INPUT and "no installed bundle here" in r.output
    monkeypatch.setenv("MLMD_BUNDLE_ROOT", str(tmp_path))
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == EXIT_BAD_INPUT and "run `bundle verify` first" in r.output


def test_every_error_code_has_advice():
    assert set(vc.CODES) == set(doctor.ADVICE)
    assert len(set(vc.CODES)) == len(vc.CODES)


# ------------------------------------------------------------------ images (tiny, real)
@pytest.fixture(scope="module")
def docker_client(docker_engine):
    return docker_engine


def build_tiny(client, ref: str, **override: str) -> str:
    """A small image of ours: the debootstrap base (cached by the containers' fixture) plus
    a versions manifest, with the lock's labels (or overridden ones)."""
    from bundle import images
    from bundle.core import lock

    base = images.ensure_base(client, lock.model(), log=lambda _m: None)
    labels = {**images.expected_labels("cpu"), **override}
    df = f"FROM {base}\nCOPY versions.json {images.MANIFEST_PATH}\n"
    df += "".join(f'LABEL "{k}"="{val}"\n' for k, val in labels.items())
    manifest = json.dumps({"schema": images.MANIFEST_SCHEMA, "flavor": "cpu", "test": ref})
    ctx = io.BytesIO()
    with tarfile.open(fileobj=ctx, mode="w") as tar:
        for name, data in (("Dockerfile", df.encode()), ("versions.json", manifest.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ctx.seek(0)
    img, _ = client.images.build(fileobj=ctx, custom_context=True, tag=ref, rm=True)
    return img.id


@pytest.fixture(scope="module")
def tiny_install(tmp_path_factory, docker_client):
    """A small image of ours, packed and installed with the docker runtime (once)."""
    tmp = tmp_path_factory.mktemp("tiny")
    image_id = build_tiny(docker_client, TINY)
    mp = pytest.MonkeyPatch()
    mp.setenv("MLMD_BUNDLE_CONFIG", str(tmp / "config"))
    try:
        prefix = install_small(tmp, "--image", TINY, runtime="docker")
        yield tmp, prefix, image_id
    finally:
        mp.undo()
        try:
            docker_client.images.remove(TINY, force=True)
        except Exception:  # already gone
            pass


def test_missing_image_fails_with_a_hint_and_reinstall_loads_it(
    tiny_install, monkeypatch, docker_client
):
    tmp, prefix, image_id = tiny_install
    rec = json.loads((prefix / "install.json").read_text())
    assert rec["images"][0]["id"] == image_id and rec["images"][0]["action"] == "present"
    assert (prefix / "images" / "cpu.tar.versions.json").is_file()  # installed beside
    docker_client.images.remove(TINY, force=True)
    r, report = run_verify(monkeypatch, prefix, "--only", "images")
    c = by_name(report)[f"images/{TINY}"]
    assert r.exit_code == EXIT_CHECK_FAILED and c["code"] == vc.E_IMG_MISSING
    assert "not in the docker engine" in c["reason"]
    # report.json is evidence: the install prefix is redacted to `<prefix>` there
    assert "hint: re-run `bundle install BUNDLE --prefix <prefix>`" in c["reason"]
    assert str(prefix) not in json.dumps(report)
    # install again: the archive is streamed into docker, hashed on the way
    pub = str(tmp / "keys" / "vendor.pub")
    ri = runner.invoke(
        app, ["install", str(tmp / "bundle"), "--prefix", str(prefix), "--trust", pub]
    )
    assert ri.exit_code == 0, ri.output
    assert f"image {TINY}: loaded" in ri.output
    assert docker_client.images.get(TINY).id == image_id
    r, report = run_verify(monkeypatch, prefix, "--only", "images")
    assert by_name(report)[f"images/{TINY}"]["status"] == "PASS", r.output


def test_image_labels_that_disagree_with_the_installed_lock_fail_naming_the_label(
    tiny_install, monkeypatch
):
    _, prefix, _ = tiny_install
    lock = prefix / "containers" / "stack.lock.yaml"
    original = lock.read_bytes()
    lock.write_bytes(original + b"\n# edited after install\n")
    try:
        r, report = run_verify(monkeypatch, prefix, "--only", "integrity,images")
    finally:
        lock.write_bytes(original)
    checks = by_name(report)
    c = checks[f"images/{TINY}"]
    assert r.exit_code == EXIT_CHECK_FAILED
    assert c["code"] == vc.E_IMG_LABELS and "org.mlmd-bundle.lock-sha256" in c["reason"]
    assert "containers/stack.lock.yaml" in checks["integrity/hashes"]["reason"]


# ------------------------------------------------------------------ reproducibility phase
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A real results.json (`bundle analyze` of a small trajectory) and a reference built
    from it with 5 % bounds: the same results PASS; a changed metric must FAIL by name."""
    import yaml

    from tests.test_analyze_cli import BASE, write_dump

    d = tmp_path_factory.mktemp("study")
    dump = write_dump(d / "t.dump")
    r = runner.invoke(
        app,
        ["analyze", str(dump), *map(str, BASE), "--excess-above-id", "35", "--out", str(d / "a")],
    )
    assert r.exit_code == 0, r.output
    results = json.loads((d / "a" / "results.json").read_text())
    quantity = {"lower": 0.05, "upper": 0.05, "bounds": "relative", "unit": "1", "source": "test"}
    ref = {
        "schema": "gb-reference/1",
        "name": "verify-test",
        "source": "this test's own analysis",
        "parameters": {k: results["parameters"][k] for k in ("w_A", "dz_A", "d_bulk_A")},
        "quantities": {
            "peak_ratio": {"value": results["peak_ratio"], **quantity},
            "excess.enrichment": {"value": results["excess"]["enrichment"], **quantity},
        },
    }
    (d / "ref.yaml").write_text(yaml.safe_dump(ref, allow_unicode=True))
    return d / "a" / "results.json", d / "ref.yaml", results


def verify_repro(tmp_path, results, reference):
    out = tmp_path / "report"
    r = runner.invoke(
        app,
        ["verify", "--only", "reproducibility", "--results", str(results)]
        + ["--reference", str(reference), "--out", str(out)],
    )
    return r, json.loads((out / "report.json").read_text())


def test_reproducibility_passes_on_matching_results(study, tmp_path):
    results, ref, _ = study
    r, report = verify_repro(tmp_path, results, ref)
    rows = {c["name"]: c for c in report["checks"] if c["phase"] == "reproducibility"}
    assert set(rows) == {"peak_ratio", "excess.enrichment"}
    assert all(c["status"] == "PASS" for c in rows.values()), rows
    assert r.exit_code == 0, r.output
    assert report["acceptance"] is False  # --only/--reference: a re-check


def test_reproducibility_mismatch_fails_naming_the_metric(study, tmp_path):
    results, ref, doc = study
    changed = json.loads(json.dumps(doc))
    changed["peak_ratio"] = doc["peak_ratio"] * 1.5
    (tmp_path / "results.json").write_text(json.dumps(changed))
    r, report = verify_repro(tmp_path, tmp_path / "results.json", ref)
    assert r.exit_code == EXIT_CHECK_FAILED
    bad = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert [c["name"] for c in bad] == ["peak_ratio"]
    assert bad[0]["code"] == vc.E_METRIC
    assert bad[0]["reason"].startswith("metric peak_ratio: above the upper limit")
    assert "FAIL reproducibility/peak_ratio" in r.output


def test_results_made_with_other_parameters_fail_the_study_check(study, tmp_path):
    import yaml

    results, ref, doc = study
    other = yaml.safe_load(ref.read_text())
    other["parameters"]["w_A"] = doc["parameters"]["w_A"] + 1.0
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(other, allow_unicode=True))
    r, report = verify_repro(tmp_path, results, tmp_path / "ref.yaml")
    c = next(c for c in report["checks"] if c["phase"] == "reproducibility")
    assert r.exit_code == EXIT_CHECK_FAILED and c["code"] == vc.E_STUDY
    assert "w_A" in c["reason"]


def test_a_study_seed_the_reference_was_made_from_is_refused(study, tmp_path):
    import yaml

    _, ref, _ = study
    seed = v.profile_requirements("cpu")["study"]["seed"]
    doc = yaml.safe_load(ref.read_text())
    doc["made_by"] = {"replicas": [f"seed{seed}", f"seed{seed + 1}"]}
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    out = tmp_path / "report"
    r = runner.invoke(
        app,
        ["verify", "--only", "reproducibility", "--reference", str(tmp_path / "ref.yaml")]
        + ["--out", str(out)],
    )
    report = json.loads((out / "report.json").read_text())
    c = next(c for c in report["checks"] if c["phase"] == "reproducibility")
    assert r.exit_code == EXIT_CHECK_FAILED and c["code"] == vc.E_STUDY
    assert f"seed {seed} is one of the replicas" in c["reason"]
    assert not (out / "work" / "study").exists()  # refused before running anything


def test_the_shipped_study_seed_is_not_a_replica_of_the_shipped_reference():
    for profile in v.PROFILES:
        spec = v.profile_requirements(profile)["study"]
        assert f"seed{spec['seed']}" not in v.reference_replicas(spec["reference"]), profile
