"""Reading the YAML and JSON documents users and earlier runs give us: one place, one error.

`read_yaml(path)` and `read_json(path)` return the parsed document, or raise InputError
naming the file, `(file)` or `(syntax)`, the problem in one line, and the fix;
`read_mapping(path)` also refuses a document whose top level is not a mapping.
`parse_yaml(text, where, field)` reads one YAML value given on a command line.
Every reader of a user's YAML or JSON file goes through here, so that limits on what a
file may hold (size, aliases: issue 14) are added in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

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
    """The YAML document in `path` (safe loader: plain data only)."""
    text = _text(path, missing, fix)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(path, "(syntax)", f"not valid YAML: {one_line(e)}", fix) from None


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


def parse_yaml(text: str, where: object, field: str) -> Any:
    """One YAML value written on a command line (`--set key=VALUE`)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(where, field, f"not a YAML value: {one_line(e)}") from None
