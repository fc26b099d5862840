"""The `bundle` command: one module per area, composed here explicitly.

Domain errors (bundle.core.errors) become one line on stderr and their exit code; any
other exception becomes one line and exit 4 (bundle.core.errors.describe);
`bundle --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from bundle.core import __version__
from bundle.core.errors import EXIT_INTERRUPTED, describe


class _Group(TyperGroup):
    """Maps domain errors to exit codes in one place (also under CliRunner)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (Exit, Abort, TyperException):
            raise  # typer's own: --help, usage errors (exit 2), typer.Exit
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            code, line = describe(e)
            typer.echo(line, err=True)
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mlmd-bundle: QE -> NequIP/Allegro -> LAMMPS -> analysis, reproducibly.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlmd-bundle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks instead of one-line errors."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Exit codes: 0 ok, 1 check failed, 2 usage, 3 bad input, 4 engine failed,
    5 component missing, 130 interrupted (see bundle/core/errors.py)."""


def _compose() -> None:
    # Each area is one module; imported here so `bundle --help` lists them all.
    from bundle import cli_analysis

    app.command("analyze")(cli_analysis.analyze)
    app.command("check")(cli_analysis.check)

    from bundle import cli_run

    app.command("run")(cli_run.run)
    app.command("status")(cli_run.status)

    from bundle import cli_images

    app.add_typer(cli_images.app, name="images")

    from bundle import cli_size

    app.command("size")(cli_size.size)

    from bundle import cli_bundle

    app.command("pack")(cli_bundle.pack)
    app.command("install")(cli_bundle.install)
    app.command("verify")(cli_bundle.verify)
    app.command("doctor")(cli_bundle.doctor)
    app.add_typer(cli_bundle.keys_app, name="keys")


_compose()


def main() -> None:
    sys.exit(app())
