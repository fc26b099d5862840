"""Images as files: `save` (a docker-archive tar, its labels beside it), `load`, labels
read from an archive without a docker engine, `inspect` against the lock, and the
Apptainer SIF built from an archive."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from bundle.core import lock
from bundle.core.errors import CheckFailed, EngineError, InputError, MissingComponent
from bundle.images.build import read_manifest
from bundle.images.daemon import _image_or_none, docker_client
from bundle.images.labels import FLAVOR_LABEL, LabelCheck, check_labels


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
