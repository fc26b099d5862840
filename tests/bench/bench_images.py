"""Container images: the cpu image's size, and its cold and cached build times.

Peer: the cold build, in the same run. Definitions:
  cold    the build after pruning this image's build cache (the image and every
          intermediate image of its last build are removed); the debootstrap base
          and the wheelhouse download cache are kept: what a lock change costs at most
  cached  the same build again, unchanged lock and revision (every step from cache)
  base    debootstrap --variant=minbase + import into a throwaway tag (cold)
All builds use one committed revision, so that commits made meanwhile do not count.
"""

from __future__ import annotations

import time
from pathlib import Path

from bundle import images, lock


def _prune_build_cache(client, result: images.BuildResult) -> int:
    """Remove the image and the intermediate images of its build (newest first)."""
    import docker.errors

    removed = 0
    for ref in [result.tag, *reversed(result.step_images)]:
        try:
            client.images.remove(ref, force=False, noprune=False)
            removed += 1
        except docker.errors.APIError:  # a base image, or shared with another tag
            pass
    return removed


def run(work: Path) -> dict:
    proc = None
    if not images.engine_answers():
        proc = images.start_engine(work / "dockerd.log")
    try:
        client = images.docker_client()
        revision = images.source_revision().revision
        quiet = lambda _msg: None  # noqa: E731

        def build() -> images.BuildResult:
            return images.build("cpu", client=client, out_dir=work, ref=revision, log=quiet)

        warm = build()  # whatever state the cache is in: gives the step images to prune
        pruned = _prune_build_cache(client, warm)
        cold = build()
        cached = build()
        image = client.images.get(cold.tag)

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
        "peer": "cold build (build cache of the image pruned)",
        "image": cold.tag,
        "revision": revision,
        "image_size_bytes": image.attrs["Size"],
        "image_size_gib": round(image.attrs["Size"] / 2**30, 3),
        "layers_with_content": len(layers),
        "cold_build_s": round(cold.seconds, 1),
        "cold_steps_from_cache": cold.cached,
        "cold_images_pruned_before": pruned,
        "cached_build_s": round(cached.seconds, 1),
        "cached_steps_from_cache": f"{cached.cached}/{cached.steps - cached.froms}",
        "cached_over_cold": round(cached.seconds / cold.seconds, 4),
        "context_assembly_s": round(cached.context_seconds, 1),
        "base_debootstrap_import_s": round(base_s, 1),
        "same_image_id": cached.image_id == cold.image_id,
    }
