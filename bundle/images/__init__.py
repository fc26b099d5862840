"""Container images: one description per flavor, two renderings, real builds.

One module per job: `recipe` (rendering), `labels` (labels, versions manifest),
`daemon` (the docker engine, base image), `context` (wheelhouse, source, build
context), `build` (docker build, build plan), `archives` (save, load, inspect, SIF).
This package re-exports their public names (`bundle.images.build(...)`).

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

from bundle.images.archives import (
    apptainer_sif,
    archive_labels,
    inspect,
    labels_of,
    load,
    require_ok,
    save,
)
from bundle.images.build import (
    BuildLog,
    BuildResult,
    build,
    parse_build_stream,
    plan,
    read_manifest,
)
from bundle.images.context import (
    Source,
    assemble_context,
    cache_dir,
    export_source,
    source_revision,
    wheelhouse,
)
from bundle.images.daemon import (
    BUILD_TIMEOUT_S,
    DOCKERD_ARGS,
    debootstrap_base,
    docker_client,
    engine_answers,
    ensure_base,
    remove_superseded,
    start_engine,
    stop_engine,
)
from bundle.images.labels import (
    FLAVOR_LABEL,
    LOCK_LABEL,
    MANIFEST_BEGIN,
    MANIFEST_END,
    MANIFEST_PATH,
    MANIFEST_SCHEMA,
    REVISION_LABEL,
    VERSION_LABEL,
    LabelCheck,
    check_labels,
    expected_labels,
    versions_manifest,
)
from bundle.images.recipe import (
    FORMATS,
    Base,
    Copy,
    Recipe,
    Run,
    Stage,
    base_image_tag,
    describe,
    image_tag,
    recipes_dir,
    render,
    render_flavor,
)

__all__ = [
    "BUILD_TIMEOUT_S", "DOCKERD_ARGS", "FLAVOR_LABEL", "FORMATS", "LOCK_LABEL", "MANIFEST_BEGIN",
    "MANIFEST_END", "MANIFEST_PATH", "MANIFEST_SCHEMA", "REVISION_LABEL", "VERSION_LABEL",
    "Base", "BuildLog", "BuildResult", "Copy", "LabelCheck", "Recipe", "Run", "Source", "Stage",
    "apptainer_sif", "archive_labels", "assemble_context", "base_image_tag", "build",
    "cache_dir", "check_labels", "debootstrap_base", "describe", "docker_client",
    "engine_answers", "ensure_base", "expected_labels", "export_source", "image_tag",
    "inspect", "labels_of", "load", "parse_build_stream", "plan", "read_manifest",
    "recipes_dir", "remove_superseded", "render", "render_flavor", "require_ok", "save",
    "source_revision", "start_engine", "stop_engine", "versions_manifest", "wheelhouse",
]  # fmt: skip
