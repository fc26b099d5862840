"""Reading the YAML and JSON documents users and earlier runs give us: one place, one error.

`read_yaml(path)` and `read_json(path)` return the parsed document, or raise InputError
naming the file, `(file)` or `(syntax)`, the problem in one line, and the fix;
`read_mapping(path)` also refuses a document whose top level is not a mapping.
`parse_yaml(text, where, field)` reads YAML given as text (a `--set` value, a rendered
template).
Every reader of a user's YAML or JSON file goes through here. YAML is parsed by
bundle.core.safeyaml: safe tags only, and bounded (file size, nesting depth, aliases and
merge keys expanded: issue 14), so a small file cannot expand into a huge document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bundle.core import safeyaml
from bundle.core.errors import InputError

YAML_SUFFIXES = (".yaml", ".yml")


def one_line(error: BaseException) -> str:
    """An exception's message on one line (YAML errors span several)."""
    return " ".join(str(error).split())


def _text(path: Path, missing: str, fix: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise InputError(path, "(file)", missing, fix) from None
    except UnicodeDecodeError as e:
        raise InputError(path, "(syntax)", f"not text ({e.reason})", fix) from None
    except OSError as e:
        raise InputError(path, "(file)", f"cannot read: {e.strerror}", fix) from None


def read_yaml(path: Path, *, missing: str = "not found", fix: str = "") -> Any:
    """The YAML document in `path` (bundle.core.safeyaml: safe tags, bounded)."""
    try:
        return safeyaml.load(path, fix=fix or safeyaml.FIX)
    except FileNotFoundError:
        raise InputError(path, "(file)", missing, fix) from None


def read_json(path: Path, *, missing: str = "not found", fix: str = "") -> Any:
    """The JSON document in `path`."""
    text = _text(path, missing, fix)
    try:
        return json.loads(text)
    except ValueError as e:
        raise InputError(path, "(syntax)", f"not JSON ({one_line(e)})", fix) from None


def read_mapping(path: Path, *, missing: str = "not found", fix: str = "") -> dict[str, Any]:
    """A YAML (.yaml/.yml) or JSON document whose top level is a mapping."""
    read = read_yaml if Path(path).suffix in YAML_SUFFIXES else read_json
    doc = read(path, missing=missing, fix=fix)
    if not isinstance(doc, dict):
        got = "empty" if doc is None else f"a {type(doc).__name__}"
        raise InputError(path, "(top level)", f"expected a mapping (the file is {got})", fix)
    return doc


def parse_yaml(text: str, where: object, field: str = "(syntax)", fix: str = "") -> Any:
    """YAML given as text, not as a file: a value on a command line (`--set key=VALUE`)
    or a rendered template; bounded the same way, errors name `where` and `field`."""
    return safeyaml.loads(text, where, field=field, fix=fix or "give a YAML value")
