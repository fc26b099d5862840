"""`bundle install BUNDLE --prefix P`: check everything first, then install, offline.

Order (nothing is written under P until 1 and 2 pass):
1. the manifest's ed25519 signature, by a key the site trusts (`--trust`, given out of band);
2. every stored file's size and SHA-256 (parts included); unlisted files are refused;
3. data files (lock, templates, studies, references, models, pseudopotentials, wheels)
   reassembled into P, re-hashed while written, swapped in folder by folder;
4. images streamed into the container runtime (docker SDK), hashed again on the way,
   their image IDs compared with the manifest; or SIF files where apptainer is the runtime;
5. a venv at P/venv from P/wheels with `pip --no-index --no-deps` and no pip config
   (no index, no find-links but the bundle's), then `pip check`;
6. P/install.json (the install record: every file written, and the earlier installs),
   P/bin/bundle (sets MLMD_BUNDLE_ROOT=P), a site key for signing proofpacks.

Nothing the install did not write is ever overwritten or removed (bundle.prefix): a
prefix with other files is refused unless --force (they are kept), a bundle older than
the installed one unless --allow-downgrade, a bundle holding a link of any kind always.
Re-running is safe: checks run again, files are replaced, an image already present
with the same ID is not loaded again, a venv whose packages equal the lock is kept.
Nothing here opens a network connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from bundle import manifest as mf
from bundle import pack
from bundle import prefix as pfx
from bundle.core import lock
from bundle.core.errors import EngineError, InputError, MissingComponent

RECORD = pfx.RECORD
RECORD_SCHEMA = "bundle-install/1"


def archives(man: mf.Manifest) -> set[str]:
    """Image archives: streamed into the container runtime at install, never copied."""
    return {img["archive"] for img in man.images}


def default_trust() -> list[str]:
    """Trusted signer keys when `--trust` is not given: $MLMD_BUNDLE_TRUST, then the config."""
    env = [x for x in os.environ.get("MLMD_BUNDLE_TRUST", "").split(os.pathsep) if x]
    return env or [str(p) for p in sorted((pack.config_dir() / "trusted").glob("*.pub"))]


def trust_from(items: list[str]) -> mf.Trust:
    trust = mf.Trust.parse(items or default_trust())
    if not trust:
        raise InputError(
            "--trust",
            "(missing)",
            "no trusted signer key",
            "pass --trust vendor.pub or --trust sha256:<fingerprint from the delivery note>",
        )
    return trust


@dataclass
class InstallRecord:
    bundle_version: str
    flavor: str
    manifest_sha256: str
    signer_fingerprint: str
    source_revision: str
    lock_sha256: str
    installed_utc: str
    runtime: str
    images: list[dict] = field(default_factory=list)
    python: dict = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    manifest_created_utc: str = ""
    files: dict[str, str] = field(default_factory=dict)  # every file written: path -> sha256
    kept: list[str] = field(default_factory=list)  # foreign paths --force installed beside
    history: list[dict] = field(default_factory=list)  # earlier installs, oldest first
    schema: str = RECORD_SCHEMA

    def write(self, prefix: Path) -> None:
        tmp = prefix / (RECORD + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, prefix / RECORD)


def read_record(prefix: Path) -> dict | None:
    try:
        return json.loads((prefix / RECORD).read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise InputError(prefix / RECORD, "(syntax)", f"not JSON: {e}", "re-run install") from None


def existing_record(prefix: Path) -> dict | None:
    """The install record under `prefix`, or None (an install.json of another kind is a
    foreign file: bundle.prefix refuses to overwrite it)."""
    try:
        rec = read_record(prefix) if prefix.is_dir() else None
    except InputError:
        return None
    return rec if isinstance(rec, dict) and rec.get("schema") == RECORD_SCHEMA else None


# --------------------------------------------------------------------------- 3. files
def install_files(bundle: Path, man: mf.Manifest, prefix: Path) -> int:
    """Reassemble every non-image file into a staging folder, then move them in file by
    file (bundle.prefix.plan has made sure no path is foreign)."""
    staging = Path(tempfile.mkdtemp(prefix=pfx.STAGING_PREFIX + "-", dir=prefix))
    try:
        names = [e.path for e in man.files if e.path not in archives(man)]
        for entry in man.files:
            if entry.path not in archives(man):
                mf.reassemble(bundle, entry, staging / entry.path)
        for name in (mf.MANIFEST, mf.SIGNATURE, mf.SIGNER_PUB):
            shutil.copyfile(bundle / name, staging / name)
        for rel in [*names, mf.MANIFEST, mf.SIGNATURE, mf.SIGNER_PUB]:
            (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, prefix / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(names)


# --------------------------------------------------------------------------- 4. images
def _stream_parts(bundle: Path, entry: mf.FileEntry, sha):
    for p in entry.stored():
        with open(bundle / p.path, "rb") as f:
            while data := f.read(mf.CHUNK):
                sha.update(data)
                yield data


def pick_runtime(requested: str) -> str:
    """docker when its daemon answers, else apptainer when on PATH; 'none' skips images."""
    if requested == "none":
        return "none"
    if requested in ("auto", "docker"):
        try:
            import docker

            docker.from_env(timeout=10).ping()
            return "docker"
        except Exception as e:  # the SDK raises several types for 'no daemon'
            if requested == "docker":
                raise MissingComponent(
                    f"the docker daemon does not answer ({type(e).__name__}); start it "
                    "(systemctl start docker), then re-run bundle install"
                ) from None
    if requested in ("auto", "apptainer") and shutil.which("apptainer"):
        return "apptainer"
    raise MissingComponent(
        "no container runtime: neither a docker daemon nor apptainer; install one, or pass "
        "--runtime none to install without images (verify will then FAIL its images phase)"
    )


def load_docker(bundle: Path, man: mf.Manifest, img: dict) -> str:
    """Stream one archive into docker, unless the engine has the image (by its content
    ID) already; the manifest's tag names it either way. Returns 'present', 'tagged'
    (there under another name) or 'loaded'."""
    import docker
    from docker.utils import parse_repository_tag

    client = docker.from_env(timeout=600)

    def by_id():
        try:
            return client.images.get(img["id"])
        except docker.errors.ImageNotFound:
            return None

    have = by_id()
    if have is not None and img["ref"] in have.tags:
        return "present"
    action = "tagged" if have is not None else "loaded"
    if have is None:
        entry = man.entry(img["archive"])
        sha = hashlib.sha256()
        try:
            for _ in client.api.load_image(_stream_parts(bundle, entry, sha), quiet=True):
                pass
        except docker.errors.APIError as e:
            raise EngineError(f"docker load of {img['archive']} failed: {e}") from None
        if sha.hexdigest() != entry.sha256:
            raise mf.IntegrityError([mf.Problem(img["archive"], "changed while being loaded")])
        have = by_id()
        if have is None:
            raise EngineError(f"{img['archive']}: loaded, but no image {img['id']} appeared")
    if img["ref"] not in have.tags:  # the archive may name it otherwise: name it as packed
        have.tag(*parse_repository_tag(img["ref"]))
    return action


def load_apptainer(bundle: Path, man: mf.Manifest, img: dict, prefix: Path) -> str:
    """A SIF under P/images from the archive (the containers' `images.apptainer_sif`)."""
    from bundle import images

    sif = prefix / "images" / (PurePosixPath(img["archive"]).stem + ".sif")
    tar = sif.with_suffix(".tar")
    mf.reassemble(bundle, man.entry(img["archive"]), tar)  # joined and re-hashed
    try:
        images.apptainer_sif(tar, sif)
    finally:
        tar.unlink(missing_ok=True)
    img["sif"] = str(sif.relative_to(prefix))
    return "converted"


# --------------------------------------------------------------------------- 5. python
def interpreter(requested: str | None) -> str:
    """A Python of the lock's version (wheels are built for it)."""
    want = str(lock.load()["python"])
    cands = [requested] if requested else [sys.executable, shutil.which(f"python{want}")]
    for c in filter(None, cands):
        r = subprocess.run(
            [c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0 and r.stdout.strip() == want:
            return c
    raise MissingComponent(f"no Python {want} found; install python{want} or pass --python PATH")


def offline_pip_env() -> dict[str, str]:
    """No pip configuration at all: the only source is the bundle's wheelhouse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def venv_packages(venv: Path) -> dict[str, str] | None:
    py = venv / "bin" / "python"
    if not py.exists():
        return None
    r = subprocess.run(
        [str(py), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        env=offline_pip_env(),
    )
    if r.returncode != 0:
        return None
    return {pack._norm(d["name"]): d["version"] for d in json.loads(r.stdout)}


def _pip(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, env=offline_pip_env())
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise EngineError(f"`{' '.join(cmd[:5])} ...` failed: {tail}")


def install_python(prefix: Path, man: mf.Manifest, python: str | None) -> dict:
    """P/venv from P/wheels only. A venv whose third-party packages already equal the lock
    is kept; the mlmd-bundle wheel is always reinstalled (same version, maybe new code)."""
    venv, wheels = prefix / "venv", prefix / "wheels"
    reqs = wheels / "requirements.txt"  # the flavor's part of the Python lock (pack writes it)
    want = pack.locked_requirements(reqs)
    own = sorted(wheels.glob("mlmd_bundle-*.whl"))
    if not own:
        raise mf.IntegrityError([mf.Problem("wheels/mlmd_bundle-*.whl", "missing")])
    have = venv_packages(venv) or {}
    py_ = str(venv / "bin" / "python")
    # --no-compile: byte-compiling torch & co. took 3/4 of the install time; Python writes
    # the .pyc files on first import instead.
    pip = [py_, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-cache-dir"]
    pip.append("--no-compile")
    action = "kept"
    if any(have.get(n) != v for n, v in want.items()):
        action = "created"
        _pip([interpreter(python), "-m", "venv", "--clear", str(venv)])
        _pip([*pip, "--find-links", str(wheels), "-r", str(reqs)])
    _pip([*pip, "--force-reinstall", str(own[-1])])
    _pip([py_, "-m", "pip", "check"])
    have = venv_packages(venv) or {}
    want["mlmd-bundle"] = man.bundle_version
    wrong = {n: (have.get(n), v) for n, v in want.items() if have.get(n) != v}
    if wrong:
        raise EngineError(f"the venv differs from the lock (found, lock): {wrong}")
    return {"venv": "venv", "packages": len(want), "action": action}


# --------------------------------------------------------------------------- 6. record
WRAPPER = """#!/bin/sh
# mlmd-bundle installed at {prefix}: data from here, programs from its venv.
MLMD_BUNDLE_ROOT="{prefix}"
export MLMD_BUNDLE_ROOT
exec "{prefix}/venv/bin/bundle" "$@"
"""


def write_wrapper(prefix: Path) -> None:
    w = prefix / "bin" / "bundle"
    w.parent.mkdir(exist_ok=True)
    w.write_text(WRAPPER.format(prefix=prefix))
    w.chmod(0o755)


def ensure_site_key(prefix: Path) -> Path:
    """The key this installation signs its proofpacks with (never leaves the site)."""
    key = prefix / "keys" / "site.key"
    if not key.exists():
        mf.generate_keys(key.parent, "site")
    return key


@dataclass(frozen=True)
class InstallOptions:
    bundle: Path
    prefix: Path
    trust: tuple[str, ...] = ()
    runtime: str = "auto"  # auto | docker | apptainer | none
    python: str | None = None
    force: bool = False  # install beside foreign files (never over them)
    allow_downgrade: bool = False  # install a bundle older than the installed one


def check_bundle(bundle: Path, trust: mf.Trust) -> tuple[mf.Manifest, str]:
    """Signature, then every hash: raises IntegrityError naming the files."""
    if not (bundle / mf.MANIFEST).exists():
        raise InputError(bundle, "(bundle)", "no MANIFEST.json here", "pass the bundle directory")
    man, fp = mf.read_signed(bundle, trust)
    problems = mf.check_payload(bundle, man)
    if problems:
        raise mf.IntegrityError(problems)
    return man, fp


def _sif_paths(man: mf.Manifest, runtime: str) -> list[str]:
    if runtime != "apptainer":
        return []
    return [f"images/{PurePosixPath(img['archive']).stem}.sif" for img in man.images]


def _prepare(opts: InstallOptions, man: mf.Manifest, runtime: str) -> tuple[pfx.Plan, dict]:
    """Every refusal before the first write: downgrade, foreign files in the way."""
    prefix = opts.prefix.resolve()
    old = existing_record(prefix)
    pfx.check_downgrade(old, man, opts.allow_downgrade, prefix)
    files = [e.path for e in man.files if e.path not in archives(man)]
    plan = pfx.plan(prefix, files + _sif_paths(man, runtime), old, opts.force)
    return plan, old or {}


def install(opts: InstallOptions, say=print) -> InstallRecord:
    bundle, prefix = opts.bundle.resolve(), opts.prefix.resolve()
    if prefix.exists() and not prefix.is_dir():
        raise InputError(
            prefix, "--prefix", "is a file, not a folder", "give a folder (made if missing)"
        )
    man, fp = check_bundle(bundle, trust_from(list(opts.trust)))
    size = sum(f.size for f in man.files)
    say(f"checked: signature by {fp}; {len(man.files)} files, {size} bytes")
    runtime = pick_runtime(opts.runtime) if man.images else "none"
    plan, old = _prepare(opts, man, runtime)
    if plan.foreign:
        say(f"--force: {len(plan.foreign)} path(s) not written by bundle install are kept")
    prefix.mkdir(parents=True, exist_ok=True)
    pfx.write_pending(prefix, list(plan.write), pfx.owned(prefix, old or None))
    n = install_files(bundle, man, prefix)
    say(f"files: {n} installed under {prefix}")
    images = []
    for img in man.images:
        img = dict(img)
        if runtime == "docker":
            img["action"] = load_docker(bundle, man, img)
        elif runtime == "apptainer":
            img["action"] = load_apptainer(bundle, man, img, prefix)
        else:
            img["action"] = "skipped"
        say(f"image {img['ref']}: {img['action']}")
        images.append(img)
    py = {}
    if (prefix / "wheels").is_dir():
        py = install_python(prefix, man, opts.python)
        say(f"python: {py['action']} {prefix / 'venv'} ({py['packages']} packages)")
    write_wrapper(prefix)
    ensure_site_key(prefix)
    record = InstallRecord(
        bundle_version=man.bundle_version,
        flavor=man.flavor,
        manifest_sha256=hashlib.sha256((bundle / mf.MANIFEST).read_bytes()).hexdigest(),
        signer_fingerprint=fp,
        source_revision=man.source_revision,
        lock_sha256=man.lock_sha256,
        installed_utc=mf.now_utc(),
        runtime=runtime,
        images=images,
        python=py,
        steps=["signature", "hashes", "files", "images", "python", "record"],
        manifest_created_utc=man.created_utc,
        files={**dict.fromkeys(plan.write, ""), **{f.path: f.sha256 for f in man.files}},
        history=pfx.history(old or None),
        kept=list(plan.foreign),
    )
    record.files = {k: v for k, v in record.files.items() if k not in archives(man)}
    record.write(prefix)
    pfx.finish(prefix, plan)
    say(f"installed: {prefix / RECORD}; run {prefix / 'bin/bundle'} verify")
    return record
