"""Image recipes, rendered: the stack lock -> `containers/recipes/<flavor>.yaml.j2` (the
description: stages of Debian/CUDA bases, COPY and RUN steps) -> `Recipe` ->
`containers/recipes/Dockerfile.j2` or `apptainer.def.j2`, through the project's one Jinja
environment (bundle.core.render). Pure: no I/O beyond reading the templates and the lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundle.core import __version__, io, lock, paths
from bundle.core.errors import InputError
from bundle.core.render import render_text

FORMATS = ("docker", "apptainer")


def recipes_dir(root: Path | None = None) -> Path:
    """Recipe templates of a source tree (default: this checkout or MLMD_BUNDLE_ROOT)."""
    return (root / "containers" if root else paths.containers_dir()) / "recipes"


def _lock_path(root: Path | None, lock_path: Path | None) -> Path | None:
    return root / "containers" / "stack.lock.yaml" if root else lock_path


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

    @property
    def copies(self) -> list[Copy]:
        return [s for s in self.steps if isinstance(s, Copy)]


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
    text = render_text(f"recipes/{name}", root=root, **ctx)
    where = str(recipes_dir(root) / name)
    try:
        doc = io.parse_yaml(text, where, fix="fix the recipe template")
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
    template = {"docker": "Dockerfile.j2", "apptainer": "apptainer.def.j2"}[fmt]
    return render_text(
        f"recipes/{template}",
        root=root,
        recipe=recipe,
        final=recipe.stages[-1],
        is_copy=lambda s: isinstance(s, Copy),
        docker_run=_docker_run,
        post_lines=_post_lines,
        flavor_file=f"containers/recipes/{recipe.flavor}.yaml.j2",
        labels_of_build={k: build_values[a] for k, a in recipe.arg_labels.items()}
        if build_values
        else None,
    )


def render_flavor(flavor: str, fmt: str = "docker", lock_path: Path | None = None) -> str:
    return render(describe(flavor, lock_path), fmt)
