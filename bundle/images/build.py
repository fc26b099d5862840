"""Building an image: `docker build` of the rendered recipe in an assembled context, its
log parsed into a `BuildResult` (steps, cache hits, wall time), labels of the build, and
the versions manifest read back; `plan` prints what a build does (the way to "build"
the h200 flavor on a machine without it)."""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle.core import lock, paths
from bundle.core.errors import EngineError, InputError, MissingComponent
from bundle.images.context import assemble_context, cache_dir, source_revision
from bundle.images.daemon import (
    _image_or_none,
    _stale_stages,
    docker_client,
    ensure_base,
    remove_superseded,
)
from bundle.images.labels import (
    LOCK_LABEL,
    MANIFEST_BEGIN,
    MANIFEST_END,
    MANIFEST_PATH,
)
from bundle.images.recipe import Copy, _commands, _flavor, _lock_path, describe, image_tag, render


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


def stream_lines(chunks: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """("line", text) for each whole line of the stream's text, ("error", message) for an
    error chunk. The engine cuts its `stream` text where it likes, a line in two chunks
    under load included (measured: the versions manifest cut inside a string), so the
    text is split on newlines across chunks; a `status` chunk is one line."""
    pending = ""
    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            yield "error", chunk.get("error") or chunk["errorDetail"].get("message", "build failed")
            continue
        if "stream" in chunk:
            pending += chunk["stream"] or ""
        elif chunk.get("status"):
            pending += chunk["status"].rstrip("\n") + "\n"
        *whole, pending = pending.split("\n")
        for ln in whole:
            yield "line", ln.rstrip("\r")
    if pending:
        yield "line", pending.rstrip("\r")


def parse_build_stream(chunks: Iterable[dict[str, Any]]) -> BuildLog:
    """Docker's classic-builder JSON stream (checked against docker 20.10) -> BuildLog."""
    out = BuildLog()
    kind = ""
    manifest: list[str] | None = None
    started: tuple[str, float] | None = None  # the running step and when it began

    def close_step() -> None:
        if started is not None:
            out.step_seconds.append((started[0], time.perf_counter() - started[1]))

    for what, ln in stream_lines(chunks):
        if what == "error":
            out.error = ln
            out.lines.append(f"ERROR: {out.error}")
            continue
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
    _buildable_here(flavor)
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
        blog, seconds = _docker_build(client, ctx, tag, nocache, log)
    _write_log(blog, tag, out_dir / f"build-{flavor}.log")
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
    result.manifest_path = _write_manifest(
        client, image.id, blog, out_dir / f"{flavor}.versions.json"
    )
    log(f"{tag}: {image.id[:19]}, {blog.steps} steps, {blog.cached} cached, {seconds:.0f} s")
    if not keep_superseded:
        ns = stack.images.label_namespace
        stale = [before.id] if before is not None else []
        stale += _stale_stages(client, ns, started)
        remove_superseded(client, stale, [image.id, *blog.step_images], log)
    return result


def _buildable_here(flavor: str) -> None:
    if _flavor(flavor) != "cpu":
        raise MissingComponent(
            f"the {flavor} image needs nvcr.io and GPU toolchains to build; "
            f"`bundle images build --flavor {flavor} --dry-run` prints its plan"
        )


def _docker_build(client, ctx, tag: str, nocache: bool, log) -> tuple[BuildLog, float]:
    """`docker build` of the assembled context (the engine's API, streamed to `log`)."""
    log(f"docker build {tag} (context {ctx.seconds:.0f} s, revision {ctx.source.revision[:12]})")
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
    return blog, time.perf_counter() - t0


def _write_log(blog: BuildLog, tag: str, log_path: Path) -> None:
    """The build log beside the image; a failed build raises with its tail."""
    log_path.write_text("\n".join(blog.lines) + "\n")
    if blog.error:
        tail = "\n".join(blog.lines[-25:])
        raise EngineError(
            f"docker build of {tag} failed: {blog.error}\n{tail}\n(full log: {log_path})"
        )


def _write_manifest(client, image_id: str, blog: BuildLog, path: Path) -> Path:
    """The image's versions manifest beside it (cached from the build log when it ran)."""
    if blog.manifest is not None:  # the step ran: its log holds the manifest
        cache = _manifest_cache(image_id)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(blog.manifest, indent=2) + "\n")
    path.write_text(json.dumps(read_manifest(client, image_id), indent=2) + "\n")
    return path


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
