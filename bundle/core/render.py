"""Rendering text from templates: the one Jinja environment of the project.

Templates are found under a source tree's (or an installed bundle's) `templates/`
(LAMMPS, QE, nequip, Slurm: `lammps/run-md.lmp.j2`, `slurm/job.sbatch.j2`) and
`containers/` (image recipes: `recipes/Dockerfile.j2`). StrictUndefined: a missing value
is an error, never an empty string; blocks trim their own line (trim_blocks,
lstrip_blocks). Filters: `f` (a float written reproducibly), `sh` (a shell word), `q` (a
double-quoted string). Pure: text in, text out.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import jinja2

from bundle.core import paths


def _f(value: float, digits: int = 10) -> str:
    """A float written reproducibly: fixed decimals, no `-0.0000000000`."""
    s = f"{float(value):.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0.0 else s


_EXPAND = re.compile(r"\$\{?POINT\b")


def sh(word: object) -> str:
    """Quote one shell word for bash; `$POINT` (a job array task's sweep point) stays
    expandable."""
    s = str(word)
    if _EXPAND.search(s):
        if re.fullmatch(r"[\w@%+=:,./${}-]+", s):
            return s if '"' not in s else shlex.quote(s)
        return '"' + re.sub(r'(["\\`])', r"\\\1", s) + '"'
    return shlex.quote(s)


def q(value: str) -> str:
    """A double-quoted string (Dockerfile ENV/LABEL values, Apptainer exports)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def environment(root: Path | None = None) -> jinja2.Environment:
    """The environment over `root`'s templates/ and containers/ (default: paths.root())."""
    return _environment((root or paths.root()).resolve())


@cache
def _environment(root: Path) -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(root / "templates"), str(root / "containers")]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    e.filters.update(f=_f, sh=sh, q=q)
    return e


def render_text(template: str, root: Path | None = None, **context) -> str:
    return environment(root).get_template(template).render(**context)


def render_to(path: Path, template: str, **context) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_text(template, **context))
    return path
