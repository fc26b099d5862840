"""Domain errors and the exit codes they map to: the one place exit codes are defined.

| code | meaning                                                              |
|------|----------------------------------------------------------------------|
| 0    | success; for `bundle check` / `verify`: every judged quantity passed |
| 1    | a check or verification ran and FAILED                               |
| 2    | usage error (unknown option, missing argument; raised by typer)      |
| 3    | bad input: a file, field or value is wrong (message says the fix)    |
| 4    | an engine (pw.x, nequip, LAMMPS, docker, slurm) ran and failed       |
| 5    | a required component is not installed or not reachable               |
| 130  | interrupted (Ctrl-C)                                                 |
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_ENGINE = 4
EXIT_MISSING = 5
EXIT_INTERRUPTED = 130


class BundleError(Exception):
    """Base of every error the CLI turns into one line and an exit code."""

    exit_code = EXIT_ENGINE


class InputError(BundleError):
    """Bad user input. The message names the file, the field and the fix."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, file: object, field: str, problem: str, fix: str = ""):
        self.file, self.field, self.problem, self.fix = str(file), field, problem, fix
        msg = f"{self.file}: {field}: {problem}"
        super().__init__(f"{msg}; {fix}" if fix else msg)


class CheckFailed(BundleError):
    """A check ran to completion and at least one judged quantity failed."""

    exit_code = EXIT_CHECK_FAILED


class EngineError(BundleError):
    """An external program ran and failed; the message points at its log."""

    exit_code = EXIT_ENGINE


class MissingComponent(BundleError):
    """A program, library or service the command needs is not available."""

    exit_code = EXIT_MISSING


def describe(e: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception that reached the command line.

    Domain errors keep their code and message. Anything else is a failure of the program
    or its environment, not of the user's input: exit 4 (EXIT_ENGINE), one line naming the
    exception; `bundle --debug ...` shows the traceback instead.
    """
    if isinstance(e, BundleError):
        return e.exit_code, " ".join(f"error: {e}".split("\n"))
    detail = " ".join(str(e).split())
    if len(detail) > 300:
        detail = detail[:300] + "..."
    kind = type(e).__name__
    what = f"{kind}: {detail}" if detail else kind
    return (
        EXIT_ENGINE,
        f"error: unexpected {what} (re-run with `bundle --debug ...` for the traceback)",
    )
