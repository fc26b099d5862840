"""`bundle analyze` and `bundle check` (being implemented: issue 2)."""

from __future__ import annotations

from bundle.errors import MissingComponent


def analyze() -> None:
    """Grain-boundary analysis of LAMMPS dumps (not implemented yet)."""
    raise MissingComponent("bundle analyze is not implemented yet (issue 2)")


def check() -> None:
    """Compare results.json with a reference (not implemented yet)."""
    raise MissingComponent("bundle check is not implemented yet (issue 2)")
