"""The build context: a wheelhouse of the Python lock (cached between builds), the
bundle's source exported from git, and the context folder a recipe declares."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bundle.core import lock, paths
from bundle.core.errors import EngineError, InputError, MissingComponent
from bundle.images.recipe import Recipe, _flavor, _lock_path, describe, recipes_dir, render


def cache_dir() -> Path:
    """Downloads kept between builds (the wheelhouse); MLMD_BUNDLE_CACHE overrides."""
    env = os.environ.get("MLMD_BUNDLE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mlmd-bundle"


def _read_requirements(path: Path) -> list[tuple[str, str]]:
    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, ver = line.partition("==")
        if not sep:
            raise InputError(path, line, "not an exact pin", "regenerate it with `make lock`")
        pins.append((name.strip(), ver.strip()))
    return pins


def _wheel_key(filename: str) -> tuple[str, str] | None:
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    try:
        name, ver, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return canonicalize_name(name), str(ver)


def wheelhouse(
    requirements: Path,
    dest: Path,
    find_links: str | None,
    cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Wheels for every pin of `requirements` in `dest`, from the download cache;
    the missing ones are fetched once with `pip wheel` (sdists are built)."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    cache = cache or cache_dir() / "wheelhouse"
    cache.mkdir(parents=True, exist_ok=True)
    pins = _read_requirements(requirements)

    def index() -> dict[tuple[str, str], Path]:
        out = {}
        for p in cache.glob("*.whl"):
            key = _wheel_key(p.name)
            if key:
                out[(key[0], str(Version(key[1])))] = p
        return out

    def key(name: str, ver: str) -> tuple[str, str]:
        return canonicalize_name(name), str(Version(ver))

    have = index()
    missing = [f"{n}=={v}" for n, v in pins if key(n, v) not in have]
    if missing:
        log(f"wheelhouse: fetching {len(missing)} wheels into {cache}")
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(cache)]
        if find_links:
            cmd += ["--find-links", find_links]
        r = subprocess.run(cmd + missing, capture_output=True, text=True)
        if r.returncode != 0:
            raise EngineError(f"pip wheel failed: {(r.stdout + r.stderr)[-3000:]}")
        have = index()
    still = [f"{n}=={v}" for n, v in pins if key(n, v) not in have]
    if still:
        raise EngineError(f"no wheel for {', '.join(still)} after pip wheel")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n, v in pins:
        src = have[key(n, v)]
        target = dest / src.name
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)
        out.append(target)
    shutil.copy2(requirements, dest / requirements.name)
    return out


@dataclass(frozen=True)
class Source:
    revision: str  # the git commit the image's source tree is exactly
    epoch: int  # its commit time: the timestamp of every file of the tree
    uncommitted: bool  # the checkout has changes that the image does not


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    if r.returncode != 0:
        raise EngineError(
            f"building an image needs a git checkout: git {' '.join(args)}: "
            f"{r.stderr.decode(errors='replace').strip()}"
        )
    return r


def source_revision(root: Path | None = None, ref: str = "HEAD") -> Source:
    root = root or paths.root()
    sha = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").stdout.decode().strip()
    epoch = int(_git(root, "log", "-1", "--format=%ct", sha).stdout.decode())
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    return Source(revision=sha, epoch=epoch, uncommitted=dirty)


def export_source(dest: Path, root: Path | None = None, ref: str = "HEAD") -> Source:
    """The committed source tree (`git archive HEAD`) in dest, plus the bundle's wheel in
    dest/dist built reproducibly (SOURCE_DATE_EPOCH): an image holds exactly one revision,
    and an unchanged revision gives an unchanged build context (cache hits)."""
    root = root or paths.root()
    src = source_revision(root, ref)
    archive = _git(root, "archive", "--format=tar", src.revision).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(dest, filter="tar")
    with tempfile.TemporaryDirectory(prefix="mlmd-wheel-") as tmp:
        build_tree = Path(tmp) / "src"
        shutil.copytree(dest, build_tree)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(src.epoch))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        r = subprocess.run(
            [*cmd, "--wheel-dir", str(dest / "dist"), str(build_tree)],
            capture_output=True,
            text=True,
            env=env,
        )
        if r.returncode != 0:
            raise EngineError(
                f"building the bundle's wheel failed: {(r.stdout + r.stderr)[-2000:]}"
            )
    for p in sorted(dest.rglob("*"), reverse=True):
        os.utime(p, (src.epoch, src.epoch), follow_symlinks=False)
    return src


@dataclass
class Context:
    path: Path
    recipe: Recipe
    dockerfile: str
    source: Source
    lock_sha256: str  # of the lock inside the image (the revision's)
    seconds: float


def assemble_context(
    flavor: str, dest: Path, log: Callable[[str], None] = print, ref: str = "HEAD"
) -> Context:
    """Everything the flavor's Dockerfile copies, in `dest`, from the committed revision:
    its source tree, its lock and recipes (the Dockerfile is rendered from those)."""
    t0 = time.perf_counter()
    tree = dest / "mlmd-bundle"
    source = export_source(tree, ref=ref)
    if source.uncommitted:
        log(f"note: uncommitted changes are not in the image (built from {source.revision[:12]})")
    stack = lock.model(_lock_path(tree, None))
    f = getattr(stack.flavors, _flavor(flavor))
    recipe = describe(flavor, root=tree)
    lock_sha = lock.lock_hash(_lock_path(tree, None))
    values = {"LOCK_SHA256": lock_sha, "SOURCE_REVISION": source.revision}
    dockerfile = render(recipe, "docker", root=tree, build_values=values)
    requirements = tree / "containers" / f.wheels.requirements
    for item in recipe.context:
        if item == "wheelhouse":
            have = ".".join(map(str, sys.version_info[:2]))
            if have != f.python:
                raise MissingComponent(
                    f"the cpu wheelhouse is assembled by Python {f.python} "
                    f"(cp{f.python.replace('.', '')} wheels); this is Python {have}: "
                    "run it from the project's venv"
                )
            wheelhouse(requirements, dest / "wheelhouse", f.wheels.find_links, log=log)
        elif item == "python":
            (dest / "python").mkdir(parents=True, exist_ok=True)
            shutil.copy2(requirements, dest / "python" / requirements.name)
        elif item == "files":
            shutil.copytree(recipes_dir(tree) / "files", dest / "files")
        elif item != "mlmd-bundle":
            raise InputError(
                recipes_dir(tree) / f"{flavor}.yaml.j2", "context", f"unknown item {item!r}"
            )
    (dest / "Dockerfile").write_text(dockerfile)
    return Context(dest, recipe, dockerfile, source, lock_sha, time.perf_counter() - t0)
