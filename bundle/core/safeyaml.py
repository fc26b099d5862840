"""The one YAML parser for user and bundle files: safe tags only, and bounded. Modules
read YAML through bundle.core.io (read_yaml, read_mapping, parse_yaml), which calls here.

`yaml.safe_load` refuses Python objects but not a small file that expands to a huge one:
nested aliases ("billion laughs", `a: &a [x, x]`, `b: &b [*a, *a]`, ...) or merge keys
(`<<: [*a, *a]`) share nodes while loading and multiply them in everything that walks
the result afterwards (comparisons, JSON reports). Here a document is refused, with one
InputError line naming the file, when

- the file is larger than `MAX_BYTES`,
- its nesting is deeper than `MAX_DEPTH` (checked on the event stream, before any
  recursive composition),
- its node graph, with every alias and merge expanded, has more than `MAX_NODES` nodes,
  or an alias refers to the collection that contains it (a cycle).

Counting is done on the composed node graph with one memoised pass (linear in the file),
so refusing a bomb costs what reading it costs. A missing file raises FileNotFoundError
unchanged, so callers keep their own "missing" message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bundle.core.errors import InputError

MAX_BYTES = 4 << 20  # the largest shipped YAML is ~8 KB; site tables stay far below this
MAX_DEPTH = 64  # nested collections
MAX_NODES = 200_000  # scalars + collections with aliases and merges expanded
FIX = "fix the YAML"


def load(path: Path | str, *, max_bytes: int = MAX_BYTES, fix: str = FIX) -> Any:
    """The document in the YAML file `path` (bounded, safe tags). FileNotFoundError passes;
    `fix` is the advice on a syntax error (bundle.core.io passes its caller's)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(path, "(size)", f"{size} bytes; a YAML input is at most {max_bytes}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise InputError(
            path, "(file)", f"cannot read: {e.strerror or e}", "check the path"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, "(encoding)", f"not UTF-8 text (byte {e.start})", fix) from None
    return loads(text, path, fix=fix)


def loads(text: str, source: object, *, field: str = "(syntax)", fix: str = FIX) -> Any:
    """The document in `text`; errors name `source` (a file, or an option like --set)."""
    if len(text) > MAX_BYTES:
        raise InputError(source, "(size)", f"{len(text)} characters; at most {MAX_BYTES}")
    try:
        _check_depth(text, source)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_expansion(node, source)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise InputError(source, field, _one_line(e), fix) from None
    except RecursionError:  # cannot happen within MAX_DEPTH; kept as a last guard
        raise InputError(source, field, "nested too deeply", fix) from None


def _one_line(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    text = f"{where}{problem}" + (f" ({context})" if context else "")
    return " ".join(text.split())


def _check_depth(text: str, source: object) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise InputError(
                    source,
                    "(structure)",
                    f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels",
                    FIX,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def _check_expansion(root: yaml.Node, source: object) -> None:
    """Refuse an expanded node count over MAX_NODES, or a cycle (iterative, memoised)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > MAX_NODES:
                raise InputError(
                    source,
                    "(aliases)",
                    f"the document expands to more than {MAX_NODES} nodes (nested aliases "
                    "or merge keys)",
                    "write the values out, or use fewer nested aliases",
                )
            continue
        if key in size:
            continue
        if key in on_path:
            mark = node.start_mark
            raise InputError(
                source,
                "(aliases)",
                f"line {mark.line + 1}: an alias refers to a collection that contains it",
                "remove the recursive alias",
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
