"""The docker engine: a client for a running one, starting and stopping one (tests, CI),
removing superseded images, and the cpu flavor's base image from debootstrap."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bundle.core import lock
from bundle.core.errors import EngineError, MissingComponent
from bundle.images.recipe import base_image_tag

BUILD_TIMEOUT_S = 3600


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
