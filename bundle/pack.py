"""`bundle pack`: everything a site needs, offline, in one signed directory.

Layout of a bundle (all payload paths are listed and hashed in MANIFEST.json):

    images/<flavor>.tar          docker archive(s) of the flavor's image(s)
    wheels/*.whl                 the Python lock as wheels + the mlmd-bundle wheel
    containers/ templates/       the lock, recipes and simulation input templates
    runbook/studies/ runbook/RUNBOOK.md
    runbook/pseudo/              the generated La/Zr/Al pseudopotentials, inputs, pseudo.yaml
    checks/references/           study references (bundle check)
    bundle/references/           engine references + the packaged model they use
    models/                      further packaged models (`<name>.nequip.zip`, never compiled)
                                 with their `<name>.model_manifest.json`
    pseudo/                      every pseudopotential a shipped study or reference names
    docs/                        README

Pack = collect into `<out>.partial/`, hash (+ split), sign, rename to `<out>`:
a half-written bundle never carries the final name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bundle import manifest as mf
from bundle.core import __version__, io, lock, paths
from bundle.core.errors import EngineError, InputError, MissingComponent

# Folders of the source tree that ship as data (relative to the root), and loose files.
DATA_DIRS = (
    "containers",
    "templates",
    "runbook/studies",
    "runbook/pseudo",  # the generated La/Zr/Al UPFs with their inputs and pseudo.yaml
    "checks/references",
    "bundle/references",
)
DATA_FILES = {"runbook/RUNBOOK.md": "runbook/RUNBOOK.md", "README.md": "docs/README.md"}
SKIP_NAMES = re.compile(r"(__pycache__|\.pyc$|\.partial$|^\.)")
# Where pseudopotentials named by studies/references are looked for, in order.
PSEUDO_SEARCH = ("pseudo", "runbook", "bundle/references")
SYSTEM_PSEUDO = Path("/usr/share/espresso/pseudo")
FLAVORS = ("cpu", "h200")


def config_dir() -> Path:
    return Path(os.environ.get("MLMD_BUNDLE_CONFIG", Path.home() / ".config" / "mlmd-bundle"))


def cache_dir() -> Path:
    return Path(os.environ.get("MLMD_BUNDLE_CACHE", Path.home() / ".cache" / "mlmd-bundle"))


def references_dir() -> Path:
    """Engine references (QE input + energy, model + forces): `bundle/references/` of the root."""
    return paths.root() / "bundle" / "references"


def pseudo_dirs() -> list[Path]:
    """Pseudopotential folders: the bundle's own first (installed), the generated ones
    (runbook/pseudo), then the system's."""
    own = (paths.root() / "pseudo", paths.root() / "runbook" / "pseudo")
    return [d for d in (*own, SYSTEM_PSEUDO) if d.is_dir()]


@dataclass(frozen=True)
class PackOptions:
    flavor: str
    out: Path
    key: Path | None = None
    split_size: int | None = None
    images: bool = True  # False: a bundle without images (unit tests, docs-only updates)
    image_refs: tuple[str, ...] = ()  # override the flavor's image(s)
    wheels: bool = True  # False: no wheelhouse (unit tests)
    models: tuple[Path, ...] = ()
    force: bool = False


@dataclass
class PackResult:
    out: Path
    manifest: mf.Manifest
    fingerprint: str
    key_path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.manifest.files)


# --------------------------------------------------------------------------- keys
def signing_key(path: Path | None, notes: list[str]) -> tuple[Path, mf.Ed25519PrivateKey]:
    """The vendor key: `--key`, else the default one (created on first use, and said so)."""
    if path is not None:
        return path, mf.load_private_key(path)
    default = config_dir() / "keys" / "vendor.key"
    if not default.exists():
        mf.generate_keys(default.parent)
        trusted = config_dir() / "trusted" / "vendor.pub"
        trusted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(default.with_suffix(".pub"), trusted)
        notes.append(
            f"created a signing key {default} (0600); this machine now trusts it. Give sites "
            "its public key or fingerprint, out of band."
        )
    return default, mf.load_private_key(default)


# --------------------------------------------------------------------------- sources
def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)  # same filesystem: no copy, content is hashed anyway
    except OSError:
        shutil.copyfile(src, dest)


def copy_sources(stage: Path) -> None:
    root = paths.root()
    for rel in DATA_DIRS:
        base = root / rel
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            parts = p.relative_to(root).parts
            if p.is_file() and not any(SKIP_NAMES.search(x) for x in parts):
                _copy(p, stage / p.relative_to(root))
    for src, dest in DATA_FILES.items():
        if (root / src).is_file():
            _copy(root / src, stage / dest)


def _upf_names(obj: object) -> set[str]:
    if isinstance(obj, str):
        return {obj} if obj.lower().endswith(".upf") else set()
    if isinstance(obj, dict):
        return set().union(*(_upf_names(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_upf_names(v) for v in obj)) if obj else set()
    return set()


def named_pseudos(stage: Path) -> dict[str, Path]:
    """Every `*.UPF` a shipped study or engine reference names -> the YAML that names it."""
    named: dict[str, Path] = {}
    for y in sorted(
        [*stage.glob("runbook/studies/*.yaml"), *stage.glob("bundle/references/*.yaml")]
    ):
        doc = io.read_yaml(y)
        for name in _upf_names(doc):
            named.setdefault(Path(name).name, y)
    return named


def copy_pseudos(stage: Path) -> list[str]:
    root = paths.root()
    where = [root / d for d in PSEUDO_SEARCH] + [SYSTEM_PSEUDO]
    shipped = []
    for name, named_by in sorted(named_pseudos(stage).items()):
        found = next((p for d in where if d.is_dir() for p in d.rglob(name) if p.is_file()), None)
        if found is None:
            raise MissingComponent(
                f"pseudopotential {name} (named in {named_by.relative_to(stage)}) not found in "
                f"{', '.join(map(str, where))}; generate or copy it there, then pack again"
            )
        _copy(found, stage / "pseudo" / name)
        shipped.append(name)
    return shipped


# --------------------------------------------------------------------------- wheels
def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_requirements(path: Path | None = None) -> dict[str, str]:
    """{normalised name: version} of a requirements file (default: the Python lock)."""
    reqs = {}
    path = path or paths.containers_dir() / "requirements.lock.txt"
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, ver = line.partition("==")
        if not sep:
            raise InputError(path, f"line {n}", f"{line!r} is not pinned", "`make lock`")
        reqs[_norm(name)] = ver.strip()
    return reqs


def flavor_requirements(flavor: str) -> dict[str, str]:
    """The Python lock minus what the flavor's image provides otherwise (lock: wheels.exclude)."""
    wheels = lock.load().get("flavors", {}).get(flavor, {}).get("wheels", {})
    exclude = {_norm(n) for n in wheels.get("exclude", [])}
    return {n: v for n, v in locked_requirements().items() if n not in exclude}


def build_own_wheel(dest: Path) -> Path:
    """The mlmd-bundle wheel, built from a clean copy of the source (no build/ in the tree)."""
    root = paths.root()
    with tempfile.TemporaryDirectory(prefix="mlmd-wheel-") as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for pkg in ("bundle", "checks", "runbook"):
            shutil.copytree(root / pkg, src / pkg, ignore=ignore)
        for f in ("pyproject.toml", "README.md"):
            shutil.copyfile(root / f, src / f)
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
            + ["-w", str(dest), str(src)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise EngineError(f"building the mlmd-bundle wheel failed: {r.stderr.strip()[-400:]}")
    wheels = sorted(dest.glob("mlmd_bundle-*.whl"))
    if not wheels:
        raise EngineError("pip wheel produced no mlmd_bundle-*.whl")
    return wheels[-1]


def copy_wheels(stage: Path, flavor: str, say=print) -> None:
    """The flavor's wheels (the containers' download cache) + requirements.txt + our wheel."""
    from bundle import images

    find_links = lock.load().get("flavors", {}).get(flavor, {}).get("wheels", {}).get("find_links")
    with tempfile.TemporaryDirectory(prefix="mlmd-reqs-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        lines = [f"{n}=={v}" for n, v in flavor_requirements(flavor).items()]
        reqs.write_text(f"# the Python lock for flavor {flavor}\n" + "\n".join(lines) + "\n")
        images.wheelhouse(reqs, stage / "wheels", find_links, cache_dir() / "wheelhouse", say)
    build_own_wheel(stage / "wheels")


# --------------------------------------------------------------------------- images
def image_info(ref: str, fix: str) -> dict:
    """{"id", "labels"} of an image in the docker engine; MissingComponent with `fix` if absent."""
    from bundle import images

    client = images.docker_client()
    try:
        img = client.images.get(ref)
    except Exception:  # docker.errors.ImageNotFound, or a malformed reference
        raise MissingComponent(f"image {ref} is not in the docker engine; {fix}") from None
    return {"id": img.id, "labels": dict(img.labels or {})}


def _build_hint(flavor: str) -> str:
    return f"build it first: `bundle images build --flavor {flavor}`"


def check_image(ref: str, flavor: str) -> dict:
    """The image exists and was built from THIS lock (its labels), else the fix."""
    from bundle import images

    info = image_info(ref, _build_hint(flavor))
    bad = [c for c in images.check_labels(info["labels"], flavor) if not c.ok]
    if bad:
        c = bad[0]
        raise InputError(
            ref,
            f"label {c.label}",
            f"is {c.found!r}, this checkout's lock says {c.expected!r} (built from another lock)",
            f"rebuild it: `bundle images build --flavor {flavor}`",
        )
    return info


def image_refs(flavor: str, refs: tuple[str, ...]) -> list[str]:
    from bundle import images

    return list(refs) or [images.image_tag(flavor)]


def save_images(stage: Path, flavor: str, refs: list[str]) -> list[dict]:
    """Docker archives of the image(s) (the containers' `images.save`) + what install needs."""
    from bundle import images

    out = []
    for i, ref in enumerate(refs):
        archive = f"images/{flavor}{'' if i == 0 else f'-{i}'}.tar"
        info = image_info(ref, _build_hint(flavor))
        images.save(ref, stage / archive)
        out.append({"ref": ref, "archive": archive, **info})
    return out


# --------------------------------------------------------------------------- pack
def copy_models(stage: Path, models: tuple[Path, ...]) -> None:
    """Each packaged model with its manifest, as `models/<name>.nequip.zip` and
    `models/<name>.model_manifest.json` (what a `{file: ...}` model reference reads)."""
    from runbook import modelcard, modelref  # the runbook's stages: only when models ship
    from runbook.files import sha256_file

    seen: set[str] = set()
    for m in models:
        if not m.name.endswith(".nequip.zip") or not m.is_file():
            raise InputError(m, "(file)", "not a packaged model", "pass a `.nequip.zip` file")
        card = modelref.manifest_beside(m)
        if card is None:
            own = modelref.own_manifest(m).name
            raise InputError(m, "(file)", f"no {own} or {modelcard.FILENAME} beside it",
                             "pass the deploy stage's model.nequip.zip")  # fmt: skip
        want = modelcard.load(card).artifacts.get("packaged", {}).get("sha256")
        if want != sha256_file(m):
            raise InputError(card, "artifacts.packaged.sha256", f"{want} is not the SHA-256 of "
                             f"{m}", "pass the manifest written with this model")  # fmt: skip
        name = m.name.split(".")[0]
        if name in seen:
            raise InputError(m, "(file)", f"a second model named {name!r}",
                             "rename one: <name>.nequip.zip")  # fmt: skip
        seen.add(name)
        _copy(m, stage / "models" / m.name)
        _copy(card, stage / "models" / modelref.own_manifest(m).name)


def source_revision() -> str:
    root = paths.root()
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def pack(opts: PackOptions) -> PackResult:
    if opts.flavor not in FLAVORS:
        raise InputError("--flavor", "value", f"{opts.flavor!r} is unknown", f"use {FLAVORS}")
    out = opts.out
    if out.exists() and not opts.force:
        raise InputError(out, "(path)", "already exists", "choose another --out or pass --force")
    notes: list[str] = []
    key_path, key = signing_key(opts.key, notes)  # before any work: a bad key fails fast
    refs = image_refs(opts.flavor, opts.image_refs) if opts.images else []
    for ref in refs:  # fail now, not after the wheelhouse
        check_image(ref, opts.flavor)
    stage = out.with_name(out.name + ".partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        copy_sources(stage)
        copy_models(stage, opts.models)
        shipped = copy_pseudos(stage)
        notes.append(f"pseudopotentials: {', '.join(shipped) or 'none named'}")
        if opts.wheels:
            copy_wheels(stage, opts.flavor)
        else:
            notes.append("no wheelhouse (--no-wheels): install will not create a Python env")
        imgs = save_images(stage, opts.flavor, refs)
        if not opts.images:
            notes.append("no images (--no-images): install will not load any")
        man = mf.build_manifest(
            stage,
            split_size=opts.split_size,
            bundle_version=__version__,
            flavor=opts.flavor,
            lock_sha256=lock.lock_hash(),
            versions=lock.load(),
            images=imgs,
            source_revision=source_revision(),
        )
        mf.sign_bundle(stage, man, key)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(stage, out)
    return PackResult(out, man, mf.fingerprint(key.public_key()), key_path, notes)
