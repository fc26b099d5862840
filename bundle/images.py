"""Container images: one description per flavor, two renderings, real builds.

render   stack lock -> containers/recipes/<flavor>.yaml.j2 (the description: stages
         of Debian/CUDA bases, COPY and RUN steps) -> `Recipe` -> Dockerfile.j2 or
         apptainer.def.j2. Pure: no I/O beyond reading the templates and the lock.
execute  the cpu base image from `debootstrap --variant=minbase` imported through the
         docker SDK (cached by a lock-derived tag); a build context with a wheelhouse
         and the bundle's source; `docker build` with host networking for apt.
collect  the build log -> `BuildResult` (steps, cache hits, wall time); labels;
         the versions manifest (every Debian package and wheel) inside and beside.

Images carry the labels of `expected_labels()`; `check_labels()` compares an
image (or a docker-archive tar, read without a docker engine) with the lock.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from bundle.core import __version__, lock, paths, safeyaml
from bundle.core.errors import CheckFailed, EngineError, InputError, MissingComponent

FORMATS = ("docker", "apptainer")
LOCK_LABEL = "lock-sha256"  # under images.label_namespace
FLAVOR_LABEL = "flavor"
VERSION_LABEL = "org.opencontainers.image.version"
REVISION_LABEL = "org.opencontainers.image.revision"
MANIFEST_SCHEMA = "image-versions/1"
MANIFEST_PATH = "/opt/mlmd-bundle/versions.json"  # inside the image
# `bundle images manifest --out` also prints the manifest between these lines, so that a
# build takes it from its log instead of starting a container (a full rootfs copy on vfs).
MANIFEST_BEGIN = "----- versions manifest -----"
MANIFEST_END = "----- end of versions manifest -----"
BUILD_TIMEOUT_S = 3600


def recipes_dir(root: Path | None = None) -> Path:
    """Recipe templates of a source tree (default: this checkout or MLMD_BUNDLE_ROOT)."""
    return (root / "containers" if root else paths.containers_dir()) / "recipes"


def _lock_path(root: Path | None, lock_path: Path | None) -> Path | None:
    return root / "containers" / "stack.lock.yaml" if root else lock_path


def cache_dir() -> Path:
    """Downloads kept between builds (the wheelhouse); MLMD_BUNDLE_CACHE overrides."""
    env = os.environ.get("MLMD_BUNDLE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mlmd-bundle"


# ---------------------------------------------------------------------------
# The description


@dataclass(frozen=True)
class Copy:
    src: str
    dst: str
    from_stage: str | None = None  # None: from the build context
    title: str = ""


@dataclass(frozen=True)
class Run:
    script: str  # one shell command per line; a line ending in `\` continues
    title: str = ""


@dataclass(frozen=True)
class Base:
    image: str
    debootstrap: dict[str, str] | None = None  # Apptainer bootstraps this instead


@dataclass(frozen=True)
class Stage:
    name: str
    base: Base
    env: dict[str, str]
    steps: tuple[Copy | Run, ...]
    workdir: str | None = None
    cmd: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Recipe:
    flavor: str
    title: str
    context: dict[str, str]  # build-context path -> what it holds
    args: dict[str, str]  # build arguments and their defaults
    labels: dict[str, str]  # static labels of the final image
    arg_labels: dict[str, str]  # label -> the build argument giving its value
    stages: tuple[Stage, ...]

    def context_sources(self) -> list[str]:
        return [
            s.src
            for st in self.stages
            for s in st.steps
            if isinstance(s, Copy) and not s.from_stage
        ]


def _flavor(name: str) -> str:
    if name not in lock.FLAVORS:
        raise InputError(
            "--flavor",
            "flavor",
            f"unknown flavor {name!r}",
            f"use one of {', '.join(lock.FLAVORS)}",
        )
    return name


def base_image_tag(stack: lock.StackLock) -> str:
    """The cpu base image: its tag derives from the lock's os section (cache key)."""
    os_ = stack.flavors.cpu.os
    digest = hashlib.sha256(json.dumps(os_.model_dump(), sort_keys=True).encode()).hexdigest()
    return (
        f"{stack.images.repository}-base:{os_.distribution}-{os_.suite}-{os_.variant}-{digest[:12]}"
    )


def image_tag(flavor: str, stack: lock.StackLock | None = None) -> str:
    stack = stack or lock.model()
    return f"{stack.images.repository}:{_flavor(flavor)}-{__version__}"


def _jinja(root: Path | None = None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(recipes_dir(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _parse_step(raw: dict[str, Any], where: str) -> Copy | Run:
    if "run" in raw:
        return Run(script=str(raw["run"]), title=str(raw.get("title", "")))
    if "copy" in raw:
        c = raw["copy"]
        return Copy(
            src=str(c["src"]),
            dst=str(c["dst"]),
            from_stage=c.get("from"),
            title=str(raw.get("title", "")),
        )
    raise InputError(where, "steps", f"a step needs `run` or `copy`: {raw!r}")


def describe(flavor: str, lock_path: Path | None = None, root: Path | None = None) -> Recipe:
    """The flavor's description, rendered from the lock and parsed into a Recipe.
    `root`: render from that source tree's lock and recipes (a build's archive)."""
    stack = lock.model(_lock_path(root, lock_path))
    name = f"{_flavor(flavor)}.yaml.j2"
    f = getattr(stack.flavors, flavor)
    ctx: dict[str, Any] = {"lock": stack, "f": f, "version": __version__}
    if flavor == "cpu":
        ctx["base_image"] = base_image_tag(stack)
        ctx["qe_version"] = f.debian.pinned["quantum-espresso"].split("-")[0]
    text = _jinja(root).get_template(name).render(**ctx)
    where = str(recipes_dir(root) / name)
    try:
        doc = safeyaml.loads(text, where)
        stages = tuple(
            Stage(
                name=str(s["name"]),
                base=Base(image=str(s["from"]["image"]), debootstrap=s["from"].get("debootstrap")),
                env={str(k): str(v) for k, v in (s.get("env") or {}).items()},
                steps=tuple(_parse_step(step, where) for step in s["steps"]),
                workdir=s.get("workdir"),
                cmd=tuple(s["cmd"]) if s.get("cmd") else None,
            )
            for s in doc["stages"]
        )
        recipe = Recipe(
            flavor=str(doc["flavor"]),
            title=str(doc["title"]),
            context={str(k): str(v) for k, v in doc["context"].items()},
            args={str(k): str(v) for k, v in doc["args"].items()},
            labels={str(k): str(v) for k, v in doc["labels"].items()},
            arg_labels={str(k): str(v) for k, v in doc["arg_labels"].items()},
            stages=stages,
        )
    except (KeyError, TypeError) as e:
        raise InputError(where, "(description)", f"not a valid recipe description: {e!r}") from None
    _validate(recipe, where)
    return recipe


def _validate(recipe: Recipe, where: str) -> None:
    names = [s.name for s in recipe.stages]
    for i, stage in enumerate(recipe.stages):
        for step in stage.steps:
            if isinstance(step, Copy) and step.from_stage and step.from_stage not in names[:i]:
                raise InputError(
                    where, f"stages.{stage.name}", f"copies from unknown stage {step.from_stage!r}"
                )
    declared = set(recipe.context)
    for src in recipe.context_sources():
        if src.split("/")[0] not in declared:
            raise InputError(where, "context", f"{src!r} is copied but not declared in `context`")
    for label, arg in recipe.arg_labels.items():
        if arg not in recipe.args:
            raise InputError(where, f"arg_labels.{label}", f"unknown build argument {arg!r}")


def _commands(script: str) -> list[list[str]]:
    """Shell script -> commands, each a list of lines (continuations kept together)."""
    lines = [ln.rstrip() for ln in script.strip("\n").splitlines() if ln.strip()]
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines), default=0)
    commands: list[list[str]] = []
    current: list[str] = []
    for ln in lines:
        current.append(ln[indent:])
        if not ln.endswith("\\"):
            commands.append(current)
            current = []
    if current:
        commands.append(current)
    return commands


def _docker_run(script: str) -> str:
    cmds = _commands(script)
    out = ["RUN set -eu; \\"]
    for i, cmd in enumerate(cmds):
        last = i == len(cmds) - 1
        for j, ln in enumerate(cmd):
            end = "" if j < len(cmd) - 1 else ("" if last else "; \\")
            out.append(f"    {ln}{end}")
    return "\n".join(out)


def _post_lines(script: str) -> list[str]:
    return [ln for cmd in _commands(script) for ln in cmd]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(
    recipe: Recipe,
    fmt: str,
    root: Path | None = None,
    build_values: dict[str, str] | None = None,
) -> str:
    """The recipe as a Dockerfile or an Apptainer definition file. `build_values` (the
    values of `recipe.args`) turn the per-build labels into a last LABEL step (docker)."""
    if fmt not in FORMATS:
        raise InputError(
            "--format", "format", f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}"
        )
    env = _jinja(root)
    env.filters.update(docker_run=_docker_run, post_lines=_post_lines, q=_quote)
    env.tests["is_copy_step"] = lambda s: isinstance(s, Copy)
    template = {"docker": "Dockerfile.j2", "apptainer": "apptainer.def.j2"}[fmt]
    return env.get_template(template).render(
        recipe=recipe,
        final=recipe.stages[-1],
        is_copy=lambda s: isinstance(s, Copy),
        flavor_file=f"containers/recipes/{recipe.flavor}.yaml.j2",
        labels_of_build={k: build_values[a] for k, a in recipe.arg_labels.items()}
        if build_values
        else None,
    )


def render_flavor(flavor: str, fmt: str = "docker", lock_path: Path | None = None) -> str:
    return render(describe(flavor, lock_path), fmt)


# ---------------------------------------------------------------------------
# Labels and the versions manifest


def expected_labels(flavor: str, lock_path: Path | None = None) -> dict[str, str]:
    """The labels an image of this flavor built from this lock must carry."""
    stack = lock.model(lock_path)
    ns = stack.images.label_namespace
    return {
        VERSION_LABEL: __version__,
        f"{ns}.{FLAVOR_LABEL}": _flavor(flavor),
        f"{ns}.{LOCK_LABEL}": lock.lock_hash(lock_path),
    }


@dataclass(frozen=True)
class LabelCheck:
    label: str
    expected: str
    found: str | None

    @property
    def ok(self) -> bool:
        return self.found == self.expected


def check_labels(
    labels: dict[str, str], flavor: str | None = None, lock_path: Path | None = None
) -> list[LabelCheck]:
    """Compare an image's labels with what the lock says; the flavor is read from the image."""
    ns = lock.model(lock_path).images.label_namespace
    flavor = flavor or labels.get(f"{ns}.{FLAVOR_LABEL}")
    if flavor not in lock.FLAVORS:
        return [LabelCheck(f"{ns}.{FLAVOR_LABEL}", "|".join(lock.FLAVORS), flavor)]
    expected = expected_labels(flavor, lock_path)
    return [LabelCheck(k, v, labels.get(k)) for k, v in expected.items()]


def _dpkg_versions() -> dict[str, str]:
    if not shutil.which("dpkg-query"):
        return {}
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = (ln.split("\t") for ln in out.splitlines())
    return {pkg: ver for status, pkg, ver in rows if status.startswith("ii")}


def versions_manifest(flavor: str, lock_path: Path | None = None) -> dict[str, Any]:
    """Every Debian package and Python distribution installed here, with its version,
    plus the components the lock builds from source (h200). Run inside the image."""
    stack = lock.model(lock_path)
    wheels = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    components: dict[str, str] = {}
    if flavor == "h200":
        h = stack.flavors.h200
        components = {
            "cuda": h.cuda.toolkit,
            "nvhpc": h.nvhpc.version,
            "ucx": h.ucx.version,
            "openmpi": h.openmpi.version,
            "lammps": h.lammps.ref,
            "pair_nequip_allegro": h.pair_nequip_allegro.ref,
            "quantum-espresso": h.qe.version,
        }
    return {
        "schema": MANIFEST_SCHEMA,
        "flavor": _flavor(flavor),
        "bundle_version": __version__,
        "lock_sha256": lock.lock_hash(lock_path),
        "python": ".".join(map(str, sys.version_info[:3])),
        "debian": dict(sorted(_dpkg_versions().items())),
        "wheels": dict(sorted(wheels.items(), key=lambda kv: kv[0].lower())),
        "built_from_source": components,
    }


# ---------------------------------------------------------------------------
# Docker engine


def docker_client(timeout: int = BUILD_TIMEOUT_S):
    """A docker SDK client for a running engine, else MissingComponent (exit 5)."""
    try:
        import docker
    except ImportError as e:
        raise MissingComponent(f"the docker SDK is not installed ({e}); run `make setup`") from e
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # the SDK raises several unrelated types here
        raise MissingComponent(
            "no Docker engine answers (start one: "
            "`dockerd --storage-driver=vfs --iptables=false --bridge=none &`): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    return client


def engine_answers() -> bool:
    try:
        docker_client(timeout=30)
    except MissingComponent:
        return False
    return True


DOCKERD_ARGS = ("--storage-driver=vfs", "--iptables=false", "--bridge=none")


def start_engine(
    log_path: Path, data_root: Path = Path("/var/lib/docker"), wait_s: float = 90.0
) -> subprocess.Popen:
    """Start a Docker engine that works inside a container or VM without privileges
    beyond root (vfs storage, no iptables, no bridge; builds use host networking).
    The data root persists, so image caches survive between sessions. The caller
    stops it (terminate) when done."""
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise MissingComponent("dockerd is not installed; run `make setup` as root")
    if os.geteuid() != 0:
        raise MissingComponent("starting dockerd needs root")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [dockerd, *DOCKERD_ARGS, f"--data-root={data_root}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    while not engine_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise MissingComponent(f"dockerd did not come up within {wait_s:.0f} s; see {log_path}")
        time.sleep(1.0)
    return proc


def stop_engine(proc: subprocess.Popen, wait_s: float = 60.0) -> None:
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _image_or_none(client, ref: str):
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def remove_superseded(client, old_ids: Iterable[str], keep: Iterable[str] = (), log=print) -> int:
    """Remove the images a rebuild left behind (the one its tag moved away from, earlier
    builder stages) when no tag names them and no container uses them: on the vfs
    storage driver each is a full copy of the filesystem (GBs). `keep`: IDs (or their
    12-digit prefixes) this build still uses as its cache. Returns how many went."""
    import docker.errors

    keep = {k.removeprefix("sha256:")[:12] for k in keep}
    gone = 0
    for old_id in dict.fromkeys(old_ids):
        old = _image_or_none(client, old_id)
        if old is None or old.tags or old.id.removeprefix("sha256:")[:12] in keep:
            continue
        try:
            client.images.remove(old.id)
        except docker.errors.APIError as e:  # a container uses it, or a concurrent build
            log(f"kept superseded image {old.id[:19]}: {e.explanation or e}")
            continue
        log(f"removed superseded image {old.id[:19]}")
        gone += 1
    return gone


def _stale_stages(client, ns: str, before: str) -> list[str]:
    """Untagged images from our base (its debootstrap label is inherited) created before
    `before` (UTC, ISO): the final images of earlier builds' builder stages."""
    found = client.images.list(filters={"dangling": True, "label": f"{ns}.debootstrap"})
    return [i.id for i in found if str(i.attrs.get("Created", ""))[:19] < before[:19]]


def ensure_base(client, stack: lock.StackLock, log: Callable[[str], None] = print) -> str:
    """The cpu base image: reused when its lock-derived tag exists, else debootstrapped.
    Returns the tag."""
    tag = base_image_tag(stack)
    if _image_or_none(client, tag) is not None:
        log(f"base image {tag}: cached")
        return tag
    return debootstrap_base(client, stack, tag, log)


def debootstrap_base(
    client, stack: lock.StackLock, tag: str, log: Callable[[str], None] = print
) -> str:
    """`debootstrap --variant=minbase` of the lock's suite, imported through the SDK as
    `tag` (apt caches dropped). Needs root and the Debian mirror."""
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise MissingComponent("debootstrap is not installed; run `make setup` as root")
    if os.geteuid() != 0:
        raise MissingComponent("debootstrap needs root to build the base image")
    os_ = stack.flavors.cpu.os
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlmd-base-") as tmp:
        root = Path(tmp) / "rootfs"
        cmd = [debootstrap, f"--variant={os_.variant}", os_.suite, str(root), os_.mirror]
        log(f"base image {tag}: {' '.join(cmd)}")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            out = (r.stdout + r.stderr)[-3000:]
            raise EngineError(f"debootstrap failed ({r.returncode}): {out}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tar_path = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(root, arcname=".")
        repo, _, tag_part = tag.rpartition(":")
        with tar_path.open("rb") as fh:
            client.api.import_image(
                src=fh,
                repository=repo,
                tag=tag_part,
                changes=[
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    'CMD ["/bin/bash"]',
                    f"LABEL {stack.images.label_namespace}.debootstrap="
                    f'"{os_.suite} {os_.variant} {os_.mirror}"',
                ],
            )
    if _image_or_none(client, tag) is None:
        raise EngineError(f"importing the base image {tag} did not produce it")
    log(f"base image {tag}: built in {time.perf_counter() - t0:.0f} s")
    return tag


# ---------------------------------------------------------------------------
# Build context


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


# ---------------------------------------------------------------------------
# Build


@dataclass
class BuildResult:
    tag: str
    image_id: str
    steps: int  # Dockerfile instructions executed or taken from cache
    cached: int  # of which served from the build cache
    froms: int  # FROM instructions (never "cached")
    seconds: float  # docker build wall time
    context_seconds: float  # assembling the build context (wheelhouse, source)
    base_seconds: float  # the debootstrap base image (about 0 when cached)
    revision: str
    labels: dict[str, str]
    log: list[str] = field(repr=False, default_factory=list)
    step_images: list[str] = field(repr=False, default_factory=list)
    step_seconds: list[tuple[str, float]] = field(repr=False, default_factory=list)
    manifest_path: Path | None = None

    @property
    def fully_cached(self) -> bool:
        return self.cached == self.steps - self.froms


_STEP = re.compile(r"^Step \d+/\d+ : (\w+)")
_LAYER = re.compile(r"^ ---> ([0-9a-f]{12,})$")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,})$")


@dataclass
class BuildLog:
    """What docker's classic builder reported, step by step."""

    lines: list[str] = field(default_factory=list)
    steps: int = 0  # Dockerfile instructions run or taken from the cache
    cached: int = 0  # "---> Using cache"
    froms: int = 0  # FROM instructions (never cached)
    step_images: list[str] = field(default_factory=list)  # image id after each step
    manifest: dict[str, Any] | None = None  # printed by the step that wrote it
    image_id: str | None = None  # "Successfully built": a concurrent build may move the tag
    step_seconds: list[tuple[str, float]] = field(default_factory=list)  # as the log arrived
    error: str | None = None


def parse_build_stream(chunks: Iterable[dict[str, Any]]) -> BuildLog:
    """Docker's classic-builder JSON stream (checked against docker 20.10) -> BuildLog."""
    out = BuildLog()
    kind = ""
    manifest: list[str] | None = None
    started: tuple[str, float] | None = None  # the running step and when it began

    def close_step() -> None:
        if started is not None:
            out.step_seconds.append((started[0], time.perf_counter() - started[1]))

    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            out.error = chunk.get("error") or chunk["errorDetail"].get("message", "build failed")
            out.lines.append(f"ERROR: {out.error}")
            continue
        text = chunk.get("stream") or chunk.get("status") or ""
        for ln in text.splitlines():
            out.lines.append(ln)
            if ln == MANIFEST_BEGIN:
                manifest = []
            elif ln == MANIFEST_END and manifest is not None:
                out.manifest = json.loads("\n".join(manifest))
                manifest = None
            elif manifest is not None:
                manifest.append(ln)
            elif m := _STEP.match(ln):
                close_step()
                started = (ln[:120], time.perf_counter())
                kind = m.group(1).upper()
                out.steps += 1
                out.froms += kind == "FROM"
            elif ln.strip() == "---> Using cache":
                out.cached += 1
            elif m := _BUILT.match(ln):
                out.image_id = m.group(1)
            elif (m := _LAYER.match(ln)) and kind != "FROM":  # a base is not this build's
                out.step_images.append(m.group(1))
    close_step()
    return out


def build(
    flavor: str = "cpu",
    *,
    out_dir: Path | None = None,
    nocache: bool = False,
    client=None,
    log: Callable[[str], None] = print,
    ref: str = "HEAD",
    keep_superseded: bool = False,
) -> BuildResult:
    """Build the flavor's image with the docker SDK from the committed revision `ref`.
    Only `cpu` builds here; the h200 recipe needs NVIDIA's registries (see `plan`).
    The image the tag pointed at before, and earlier builds' builder-stage images, are
    removed when nothing names or uses them (`remove_superseded`), unless
    `keep_superseded`."""
    if _flavor(flavor) != "cpu":
        raise MissingComponent(
            f"the {flavor} image needs nvcr.io and GPU toolchains to build; "
            f"`bundle images build --flavor {flavor} --dry-run` prints its plan"
        )
    client = client or docker_client()
    out_dir = out_dir or paths.root() / "dist" / "images"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"mlmd-ctx-{flavor}-") as tmp:
        ctx = assemble_context(flavor, Path(tmp), log, ref=ref)
        stack = lock.model(_lock_path(ctx.path / "mlmd-bundle", None))
        t0 = time.perf_counter()
        ensure_base(client, stack, log)
        base_seconds = time.perf_counter() - t0
        tag = image_tag(flavor, stack)
        before = _image_or_none(client, tag)
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        log(
            f"docker build {tag} (context {ctx.seconds:.0f} s, revision {ctx.source.revision[:12]})"
        )
        t0 = time.perf_counter()
        stream = client.api.build(
            path=str(ctx.path),
            tag=tag,
            network_mode="host",  # apt needs Debian; nothing else reaches the network
            rm=True,
            forcerm=True,
            pull=False,
            nocache=nocache,
            decode=True,
        )
        blog = parse_build_stream(_echo(stream, log))
        seconds = time.perf_counter() - t0
    log_path = out_dir / f"build-{flavor}.log"
    log_path.write_text("\n".join(blog.lines) + "\n")
    if blog.error:
        tail = "\n".join(blog.lines[-25:])
        raise EngineError(
            f"docker build of {tag} failed: {blog.error}\n{tail}\n(full log: {log_path})"
        )
    image = client.images.get(blog.image_id or tag)
    result = BuildResult(
        tag=tag,
        image_id=image.id,
        steps=blog.steps,
        cached=blog.cached,
        froms=blog.froms,
        seconds=seconds,
        context_seconds=ctx.seconds,
        base_seconds=base_seconds,
        revision=ctx.source.revision,
        labels=dict(image.labels or {}),
        log=blog.lines,
        step_images=blog.step_images,
        step_seconds=blog.step_seconds,
    )
    if result.labels.get(f"{stack.images.label_namespace}.{LOCK_LABEL}") != ctx.lock_sha256:
        raise EngineError(f"{tag} does not carry the lock hash {ctx.lock_sha256}")
    if blog.manifest is not None:  # the step ran: its log holds the manifest
        cache = _manifest_cache(image.id)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(blog.manifest, indent=2) + "\n")
    result.manifest_path = out_dir / f"{flavor}.versions.json"
    result.manifest_path.write_text(json.dumps(read_manifest(client, image.id), indent=2) + "\n")
    log(f"{tag}: {image.id[:19]}, {blog.steps} steps, {blog.cached} cached, {seconds:.0f} s")
    if not keep_superseded:
        ns = stack.images.label_namespace
        stale = [before.id] if before is not None else []
        stale += _stale_stages(client, ns, started)
        remove_superseded(client, stale, [image.id, *blog.step_images], log)
    return result


def _echo(stream: Iterator[dict[str, Any]], log: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    for chunk in stream:
        text = chunk.get("stream", "")
        if text.startswith("Step "):
            log(text.rstrip())
        yield chunk


def _manifest_cache(image_id: str) -> Path:
    return cache_dir() / "manifests" / f"{image_id.replace(':', '_')}.json"


def read_manifest(client, ref: str) -> dict[str, Any]:
    """The versions manifest inside an image: from the cache its build filled, else read
    in a container without network."""
    image = client.images.get(ref)
    cached = _manifest_cache(image.id)
    if cached.is_file():
        return json.loads(cached.read_text())
    container = client.containers.create(ref, ["cat", MANIFEST_PATH], network_mode="none")
    try:
        container.start()
        status = container.wait().get("StatusCode")
        out = container.logs(stdout=True, stderr=False)
    finally:  # a container left behind keeps a full rootfs copy on vfs
        container.remove(force=True)
    if status != 0:
        raise InputError(ref, "image", f"has no versions manifest at {MANIFEST_PATH}")
    manifest = json.loads(out)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------------------
# Plan (what `build` does, printed; the only way to "build" h200 here)


def plan(flavor: str) -> str:
    """The full build plan of a flavor as text: inputs, steps, the rendered Dockerfile."""
    stack = lock.model()
    recipe = describe(flavor)
    tag = image_tag(flavor, stack)
    try:
        revision = source_revision().revision
    except EngineError:
        revision = "unknown (not a git checkout)"
    lines = [
        f"# build plan: {recipe.title}",
        f"image         {tag}",
        f"lock          {paths.lock_file()} sha256 {lock.lock_hash()}",
        f"revision      {revision}",
        "",
        "1. base images",
    ]
    for st in recipe.stages:
        if st.base.debootstrap:
            d = st.base.debootstrap
            lines.append(
                f"   {st.name:10s} {st.base.image}  <- debootstrap --variant={d['variant']} "
                f"{d['suite']} {d['mirror']}, imported with the docker SDK (cached by tag)"
            )
        else:
            lines.append(f"   {st.name:10s} {st.base.image}  (pulled from its registry)")
    lines += ["", "2. build context"]
    lines += [f"   {k + '/':14s} {v}" for k, v in recipe.context.items()]
    lines += ["", "3. docker build (network: host, for apt/pip/git in RUN steps)"]
    args = " ".join(f"--label {k}=<{a}>" for k, a in recipe.arg_labels.items())
    lines.append(f"   docker build --network host {args} -t {tag} <context>")
    for st in recipe.stages:
        lines.append(f"   stage {st.name} (FROM {st.base.image})")
        for step in st.steps:
            if isinstance(step, Copy):
                origin = f"stage {step.from_stage}" if step.from_stage else "context"
                lines.append(f"     COPY {step.src} -> {step.dst} (from {origin})")
            else:
                lines.append(f"     RUN  {step.title or _commands(step.script)[0][0]}")
    ns = stack.images.label_namespace
    lines += [
        "",
        "4. labels: " + ", ".join([*recipe.labels, *recipe.arg_labels]),
        f"5. versions manifest: /opt/mlmd-bundle/versions.json in the image, "
        f"dist/images/{flavor}.versions.json beside it",
        f"6. check: bundle images inspect {tag}  ({ns}.{LOCK_LABEL} must equal the lock's sha256)",
        "",
        "# ---- Dockerfile ----",
        render(recipe, "docker").rstrip(),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# save / load / inspect / apptainer


def save(ref: str, tar_path: Path, client=None) -> Path:
    """The image as a docker-archive tar (what `docker save` writes), manifest beside it."""
    client = client or docker_client()
    image = _image_or_none(client, ref)
    if image is None:
        raise InputError(
            ref, "image", "no such image", "build it: `bundle images build --flavor cpu`"
        )
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    partial = tar_path.with_suffix(tar_path.suffix + ".part")
    with partial.open("wb") as fh:
        # the tag asked for (named=True would take the image's first tag, which a
        # loader then finds under another name); an ID keeps the first tag
        for chunk in image.save(named=ref if ref in image.tags else True):
            fh.write(chunk)
    partial.replace(tar_path)
    ns = lock.model().images.label_namespace
    manifest = None
    if f"{ns}.{FLAVOR_LABEL}" in (image.labels or {}):  # one of ours: it should have one
        try:
            manifest = read_manifest(client, ref)
        except InputError:
            manifest = None
    if manifest is not None:
        Path(f"{tar_path}.versions.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return tar_path


def load(tar_path: Path, client=None) -> list[str]:
    """Load a docker-archive tar; returns the tags it brought."""
    if not tar_path.is_file():
        raise InputError(tar_path, "(file)", "no such archive")
    client = client or docker_client()
    with tar_path.open("rb") as fh:
        images = client.images.load(fh)
    return [t for im in images for t in im.tags]


def archive_labels(tar_path: Path) -> dict[str, str]:
    """Labels of the (first) image in a docker-archive tar, read without an engine."""
    try:
        with tarfile.open(tar_path) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    except (tarfile.TarError, KeyError, IndexError, TypeError, json.JSONDecodeError) as e:
        raise InputError(tar_path, "(archive)", f"not a docker-archive tar: {e!r}") from None
    return dict(config.get("config", {}).get("Labels") or {})


def labels_of(ref: str, client=None) -> dict[str, str]:
    """Labels of an image: a docker-archive tar path, or a tag/id in the engine."""
    p = Path(ref)
    if p.suffix == ".tar" or p.is_file():
        if not p.is_file():
            raise InputError(p, "(file)", "no such archive", "give a `bundle images save` tar")
        return archive_labels(p)
    client = client or docker_client()
    image = _image_or_none(client, ref)
    if image is None:
        raise InputError(ref, "image", "no such image or archive")
    return dict(image.labels or {})


def inspect(ref: str, client=None, lock_path: Path | None = None) -> list[LabelCheck]:
    """Check an image's labels (tag/id or docker-archive tar) against the lock."""
    checks = check_labels(labels_of(ref, client), lock_path=lock_path)
    return checks


def apptainer_sif(tar_path: Path, sif: Path) -> Path:
    """A SIF from a docker-archive tar, with apptainer (or singularity) where installed."""
    exe = shutil.which("apptainer") or shutil.which("singularity")
    if not exe:
        raise MissingComponent(
            "apptainer is not installed here: copy the docker archive to a machine with "
            f"apptainer and run `apptainer build {sif.name} docker-archive://{tar_path.name}`"
        )
    if not tar_path.is_file():
        raise InputError(tar_path, "(file)", "no such archive")
    r = subprocess.run(
        [exe, "build", "--force", str(sif), f"docker-archive://{tar_path}"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise EngineError(f"{exe} build failed: {(r.stdout + r.stderr)[-2000:]}")
    return sif


def require_ok(checks: list[LabelCheck], ref: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        raise CheckFailed(
            f"{ref}: "
            + "; ".join(f"{c.label} is {c.found!r}, the lock says {c.expected!r}" for c in bad)
        )
