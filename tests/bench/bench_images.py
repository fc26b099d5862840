"""Container images: the cpu image's size, and its cold and cached build times.

Peer: the cold build, in the same run. Definitions:
  cold    `--no-cache`: every step of the Dockerfile executes (apt, the offline pip
          install, the vfs copies of every layer); the debootstrap base and the
          wheelhouse download cache are kept: what a lock change costs at most
  cached  the same build again, unchanged lock and revision (every step from cache)
  base    debootstrap --variant=minbase + import into a throwaway tag
All builds use one committed revision, so that commits made meanwhile do not count.
(`--no-cache` rather than deleting the cached images: on a shared engine those
images may be parents of other sessions' images and would survive the deletion.)
"""

from __future__ import annotations

import time
from pathlib import Path

from bundle import images
from bundle.core import lock


def _drop(client, result: images.BuildResult) -> None:
    """Remove an untagged image and the intermediate images of its build (disk: on vfs
    every layer is a full copy); parents shared with other images stay."""
    import docker.errors

    for ref in [result.image_id, *reversed(result.step_images)]:
        try:
            client.images.remove(ref, force=False, noprune=False)
        except docker.errors.APIError:  # gone already, or a parent of another image
            pass


def run(work: Path) -> dict:
    proc = None
    if not images.engine_answers():
        proc = images.start_engine(work / "dockerd.log")
    try:
        client = images.docker_client()
        revision = images.source_revision().revision
        quiet = lambda _msg: None  # noqa: E731

        def build(nocache: bool = False) -> images.BuildResult:
            return images.build(
                "cpu", client=client, out_dir=work, ref=revision, nocache=nocache, log=quiet
            )

        warm = build()  # the revision's image as the cache holds it (built if need be)
        cold = build(nocache=True)
        cached = build()
        if not client.images.get(warm.image_id).tags:  # superseded by the cold build
            _drop(client, warm)
        image = client.images.get(cold.image_id)

        stack = lock.model()
        t0 = time.perf_counter()
        tmp_tag = images.debootstrap_base(client, stack, "mlmd-bundle-bench:base", log=quiet)
        base_s = time.perf_counter() - t0
        client.images.remove(tmp_tag, force=True)
    finally:
        if proc is not None:
            images.stop_engine(proc)

    layers = [h for h in image.history() if h.get("Size", 0) > 0]
    return {
        "peer": "cold build (--no-cache: every step executes)",
        "image": cold.tag,
        "revision": revision,
        "image_size_bytes": image.attrs["Size"],
        "image_size_gib": round(image.attrs["Size"] / 2**30, 3),
        "layers_with_content": len(layers),
        "cold_build_s": round(cold.seconds, 1),
        "cold_steps_from_cache": cold.cached,
        "cold_slowest_steps_s": {
            name: round(sec, 1) for name, sec in sorted(cold.step_seconds, key=lambda x: -x[1])[:6]
        },
        "cached_build_s": round(cached.seconds, 1),
        "cached_steps_from_cache": f"{cached.cached}/{cached.steps - cached.froms}",
        "cached_over_cold": round(cached.seconds / cold.seconds, 4),
        "context_assembly_s": round(cached.context_seconds, 1),
        "base_debootstrap_import_s": round(base_s, 1),
        "same_image_id_cold_and_cached": cached.image_id == cold.image_id,
    }
