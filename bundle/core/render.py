"""Rendering input files from `templates/` (Jinja2, StrictUndefined: a missing value is an
error, never an empty string). Pure: text in, text out."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from bundle.core import paths


def _f(value: float, digits: int = 10) -> str:
    """A float written reproducibly: fixed decimals, no `-0.0000000000`."""
    s = f"{float(value):.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0.0 else s


@cache
def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    e.filters["f"] = _f
    return e


def render_text(template: str, **context) -> str:
    return env().get_template(template).render(**context)


def render_to(path: Path, template: str, **context) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_text(template, **context))
    return path
