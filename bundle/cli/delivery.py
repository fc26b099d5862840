"""`bundle pack | install | verify | doctor`, `bundle keys generate`: parse, call, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bundle.core.errors import CheckFailed, InputError

keys_app = typer.Typer(no_args_is_help=True, help="Vendor signing keys (ed25519).")


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for NAME.key (0600) and NAME.pub.")],
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "vendor",
) -> None:
    """Make an ed25519 key pair for signing bundles; prints the public key's fingerprint."""
    from bundle import manifest as mf

    key, pub = mf.generate_keys(out, name)
    typer.echo(f"private key {key} (mode 0600: keep it offline)")
    typer.echo(f"public key  {pub}")
    typer.echo(
        f"fingerprint {mf.fingerprint(mf.load_public_key(pub))}  (print it on delivery notes)"
    )


def pack(
    flavor: Annotated[str, typer.Option("--flavor", help="cpu or h200.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to create.")],
    split_size: Annotated[
        str | None,
        typer.Option("--split-size", help="Cut files larger than this into parts (2G, 700M)."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Signing key (default ~/.config/mlmd-bundle/keys/vendor.key)."),
    ] = None,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="Image ref to ship instead of the flavor's.")
    ] = None,
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", help="Extra packaged model (<name>.nequip.zip), manifest beside."),
    ] = None,
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Ship no image (docs/data-only bundles, tests).")
    ] = False,
    no_wheels: Annotated[
        bool, typer.Option("--no-wheels", help="Ship no wheelhouse (no Python env at install).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Pack an offline bundle: images, wheels, templates, studies, references, models,
    pseudopotentials, lock and docs, with a signed MANIFEST.json."""
    from bundle import manifest as mf
    from bundle.pack import PackOptions
    from bundle.pack import pack as do_pack

    opts = PackOptions(
        flavor=flavor,
        out=out,
        key=key,
        split_size=mf.parse_size(split_size) if split_size else None,
        images=not no_images,
        image_refs=tuple(image or ()),
        wheels=not no_wheels,
        models=tuple(model or ()),
        force=force,
    )
    res = do_pack(opts)
    for note in res.notes:
        typer.echo(f"note: {note}")
    split = sum(len(f.parts) for f in res.manifest.files)
    typer.echo(
        f"packed {res.out}: {len(res.manifest.files)} files, {res.total_bytes / 2**20:.1f} MiB"
        f"{f', {split} parts' if split else ''}; signed by {res.fingerprint}"
    )


def install(
    bundle_dir: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The bundle directory.")],
    prefix: Annotated[Path, typer.Option("--prefix", help="Where to install.")],
    trust: Annotated[
        list[str] | None,
        typer.Option("--trust", help="Trusted signer: a .pub file or sha256:<fingerprint>."),
    ] = None,
    runtime: Annotated[
        str, typer.Option("--runtime", help="auto, docker, apptainer or none.")
    ] = "auto",
    python: Annotated[
        str | None, typer.Option("--python", help="Interpreter for the venv (lock's version).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Install beside files install did not write (kept)."),
    ] = False,
    allow_downgrade: Annotated[
        bool,
        typer.Option("--allow-downgrade", help="Install a bundle older than the installed one."),
    ] = False,
) -> None:
    """Check the signature and every hash, then install files, images and the Python env.
    Offline; safe to re-run. Never overwrites or removes what it did not install."""
    from bundle.install import InstallOptions
    from bundle.install import install as do_install

    if runtime not in ("auto", "docker", "apptainer", "none"):
        raise InputError("--runtime", "value", f"{runtime!r}", "use auto|docker|apptainer|none")
    opts = InstallOptions(
        bundle_dir, prefix, tuple(trust or ()), runtime, python, force, allow_downgrade
    )
    do_install(opts, say=typer.echo)


def _reexec_installed(prefix: Path) -> None:
    """`--prefix P` from another environment: run P's own `bundle` (its venv, its data)."""
    wrapper = prefix.resolve() / "bin" / "bundle"
    here = Path(os.environ.get("MLMD_BUNDLE_ROOT", "/nonexistent")).resolve()
    if here == prefix.resolve():
        return
    if not wrapper.exists():
        raise InputError(prefix, "--prefix", "no installed bundle here", "run `bundle install`")
    args = sys.argv[1:]
    i = args.index("--prefix") if "--prefix" in args else None
    if i is not None:
        del args[i : i + 2]
    else:
        args = [a for a in args if not a.startswith("--prefix=")]
    os.execv(str(wrapper), [str(wrapper), *args])


VProfile = Annotated[str, typer.Option("--profile", help="cpu or h200.")]
Quick = Annotated[bool, typer.Option("--quick", help="Skip the study run (the report says so).")]
Prefix = Annotated[Path | None, typer.Option("--prefix", help="Verify the installation at P.")]
Results = Annotated[
    Path | None,
    typer.Option("--results", help="Judge this study results.json instead of running it."),
]
Reference = Annotated[
    str | None,
    typer.Option("--reference", help="Judge the study against this reference (NAME|FILE)."),
]
ReportOut = Annotated[Path | None, typer.Option("--out", help="Report folder.")]
NoRedact = Annotated[
    bool, typer.Option("--no-redact", help="Keep host and user names in the proofpack.")
]
SiteKey = Annotated[
    Path | None, typer.Option("--key", help="Proofpack signing key (default: site key).")
]
AlsoTrust = Annotated[
    list[str] | None, typer.Option("--trust", help="Also require this signer (.pub/sha256:).")
]
EnginesIn = Annotated[
    str, typer.Option("--engines-in", help="host, image or auto (cpu: host, h200: image).")
]
Only = Annotated[
    str | None,
    typer.Option("--only", help="Comma-separated phases to run (a re-check, not an acceptance)."),
]
Bench = Annotated[
    bool, typer.Option("--bench", help="Also time model-driven MD for `bundle size`.")
]


def verify(
    profile: VProfile = "cpu",
    quick: Quick = False,
    prefix: Prefix = None,
    results: Results = None,
    reference: Reference = None,
    out: ReportOut = None,
    no_redact: NoRedact = False,
    key: SiteKey = None,
    trust: AlsoTrust = None,
    engines_in: EnginesIn = "auto",
    only: Only = None,
    bench: Bench = False,
) -> None:
    """Acceptance test: integrity, host, images, engines, reproducibility, report
    (JSON, markdown, signed proofpack). Exit 0 only if every check passes."""
    from bundle.verify import VerifyOptions
    from bundle.verify import verify as do_verify

    if prefix is not None:
        _reexec_installed(prefix)
    if engines_in not in ("auto", "host", "image"):
        raise InputError("--engines-in", "value", f"{engines_in!r}", "use auto|host|image")
    opts = VerifyOptions(
        profile=profile,
        quick=quick,
        out=out,
        results=results,
        reference=reference,
        redact=not no_redact,
        key=key,
        trust=tuple(trust or ()),
        engines_in=engines_in,
        only=tuple(p.strip() for p in only.split(",")) if only else (),
        bench=bench,
    )
    do_verify(opts, say=typer.echo)


def doctor(
    report: Annotated[
        Path | None, typer.Argument(help="report.json (default: the last verify's).")
    ] = None,
) -> None:
    """Read the last verify report and print, per failure, what to do next."""
    from bundle.doctor import advise, load_report

    path, doc = load_report(report)
    typer.echo(f"report {path}: {doc['status']} ({doc['session']['started_utc']})")
    lines = advise(doc)
    for line in lines:
        typer.echo(line)
    if doc["status"] != "PASS":
        raise CheckFailed(f"{sum(ln.startswith('FAIL') for ln in lines)} failures to fix")
    typer.echo("nothing to do: every check passed")
