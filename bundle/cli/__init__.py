"""The `bundle` command: one module per area (bundle/cli/*.py), composed here explicitly.

The CLI is the top layer: it imports delivery (bundle.*), runbook and checks; nothing
imports it (tests/test_layers.py).

Domain errors (bundle.core.errors) become one line on stderr and their exit code; any
other exception becomes one line and exit 4 (bundle.core.errors.describe);
`bundle --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from bundle.cli import analysis, delivery, images, run, size
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


# Each area is one module (bundle/cli/<area>.py); composed here so `bundle --help` lists
# them all.
app.command("analyze")(analysis.analyze)
app.command("check")(analysis.check)
app.command("run")(run.run)
app.command("status")(run.status)
app.add_typer(images.app, name="images")
app.command("size")(size.size)
app.command("pack")(delivery.pack)
app.command("install")(delivery.install)
app.command("verify")(delivery.verify)
app.command("doctor")(delivery.doctor)
app.add_typer(delivery.keys_app, name="keys")


def main() -> None:
    sys.exit(app())
