"""`bundle images ...`: render, build, save, load, inspect container images.

Exit codes as everywhere (bundle/core/errors.py): 1 labels differ from the lock,
3 bad input, 4 docker/debootstrap failed, 5 docker engine or apptainer absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bundle import images

app = typer.Typer(
    no_args_is_help=True,
    help="Container images of the stack lock: render recipes, build, save, load, inspect.",
)

Flavor = Annotated[str, typer.Option("--flavor", "-f", help="Image flavor: cpu or h200.")]
OutFile = Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")]


def _write_or_print(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    typer.echo(f"wrote {out}")


@app.command("render")
def render(
    flavor: Flavor = "cpu",
    fmt: Annotated[
        str, typer.Option("--format", help="docker (Dockerfile) or apptainer (definition file).")
    ] = "docker",
    out: OutFile = None,
) -> None:
    """Render the flavor's recipe from the stack lock."""
    _write_or_print(images.render_flavor(flavor, fmt), out)


@app.command("build")
def build(
    flavor: Flavor = "cpu",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the full build plan.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every step.")] = False,
    keep_superseded: Annotated[
        bool,
        typer.Option(
            "--keep-superseded",
            help="Keep the image the tag pointed at before and old builder stages (GBs on vfs).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Directory for the build log and versions manifest."),
    ] = None,
) -> None:
    """Build the flavor's image with the docker SDK (cpu), or print its plan (--dry-run)."""
    if dry_run:
        typer.echo(images.plan(flavor), nl=False)
        return
    result = images.build(
        flavor, out_dir=out, nocache=no_cache, log=typer.echo, keep_superseded=keep_superseded
    )
    typer.echo(
        f"built {result.tag} ({result.image_id[:19]}): {result.steps} steps, "
        f"{result.cached} from cache, {result.seconds:.0f} s; manifest {result.manifest_path}"
    )


@app.command("save")
def save(
    out: Annotated[Path, typer.Option("--out", "-o", help="The docker-archive tar to write.")],
    image: Annotated[
        str | None, typer.Argument(help="Image tag or id (default: the flavor's tag).")
    ] = None,
    flavor: Flavor = "cpu",
) -> None:
    """Save an image as a docker-archive tar, its versions manifest beside it."""
    ref = image or images.image_tag(flavor)
    images.save(ref, out)
    typer.echo(f"saved {ref} -> {out}")


@app.command("load")
def load(archive: Annotated[Path, typer.Argument(help="A docker-archive tar.")]) -> None:
    """Load a docker-archive tar into the docker engine."""
    tags = images.load(archive)
    typer.echo("loaded " + (", ".join(tags) or "(untagged image)"))


@app.command("inspect")
def inspect(
    image: Annotated[
        str, typer.Argument(help="Image tag/id, or a docker-archive tar (read without docker).")
    ],
    lock_file: Annotated[
        Path | None, typer.Option("--lock", help="Stack lock to check against.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check an image's labels against the stack lock (exit 1 when they differ)."""
    checks = images.inspect(image, lock_path=lock_file)
    if as_json:
        rows = [
            {"label": c.label, "expected": c.expected, "found": c.found, "ok": c.ok} for c in checks
        ]
        typer.echo(json.dumps(rows, indent=2))
    else:
        for c in checks:
            verdict = "PASS" if c.ok else "FAIL"
            detail = "" if c.ok else f" (the lock says {c.expected!r})"
            typer.echo(f"{verdict}  {c.label} = {c.found!r}{detail}")
    images.require_ok(checks, image)


@app.command("apptainer")
def apptainer(
    archive: Annotated[Path, typer.Argument(help="A docker-archive tar (bundle images save).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The SIF file to write.")],
) -> None:
    """Convert a docker-archive tar into an Apptainer SIF (needs apptainer; exit 5 without)."""
    images.apptainer_sif(archive, out)
    typer.echo(f"wrote {out}")


@app.command("manifest")
def manifest(flavor: Flavor = "cpu", out: OutFile = None) -> None:
    """Versions of every Debian package and wheel installed here (run inside an image).
    With --out, the manifest is also printed between marker lines (for the build log)."""
    text = json.dumps(images.versions_manifest(flavor), indent=2)
    _write_or_print(text + "\n", out)
    if out is not None:
        typer.echo(f"{images.MANIFEST_BEGIN}\n{text}\n{images.MANIFEST_END}")
