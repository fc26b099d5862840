"""Size and import-cycle measurements of the product packages (issue 13).

`python -m tests.structure` prints the modules over MAX_MODULE_LINES lines, the
functions over MAX_FUNCTION_LINES lines and the number of modules that sit on an
import cycle (imports inside functions counted too) in bundle/, runbook/, checks/.
tests/test_layers.py asserts the same numbers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("bundle", "runbook", "checks")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the product packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[tuple[str, int]]:
    sizes = [
        (str(p.relative_to(root)), len(p.read_text().splitlines())) for p in modules(root).values()
    ]
    return sorted((s for s in sizes if s[1] > limit), key=lambda s: -s[1])


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(file:qualified name, lines from `def` to its last line) over the limit."""
    found = []
    for path in modules(root).values():
        rel = path.relative_to(root)
        tree = ast.parse(path.read_text())
        found += [(f"{rel}:{q}", n) for q, n in _functions(tree) if n > limit]
    return sorted(found, key=lambda s: -s[1])


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node.end_lineno - node.lineno + 1
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")


def import_edges(root: Path) -> dict[str, set[str]]:
    """Module -> the product modules it imports anywhere in its body (functions too)."""
    mods = modules(root)

    def resolve(target: str) -> str:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        return target

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                found = resolve(target)
                if found and found != mod:
                    edges[mod].add(found)
    return edges


def modules_on_cycles(root: Path) -> list[str]:
    """The modules from which an import path leads back to themselves."""
    edges = import_edges(root)
    on_cycle = []
    for start in edges:
        stack, reached = [start], set()
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt not in reached:
                    reached.add(nxt)
                    stack.append(nxt)
        if start in reached:
            on_cycle.append(start)
    return sorted(on_cycle)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    mods = long_modules(root)
    funcs = long_functions(root)
    cyc = modules_on_cycles(root)
    print(f"modules over {MAX_MODULE_LINES} lines: {len(mods)}")
    for name, n in mods:
        print(f"  {n:5d}  {name}")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {len(funcs)}")
    for name, n in funcs:
        print(f"  {n:5d}  {name}")
    print(f"modules on an import cycle: {len(cyc)}")
    for name in cyc:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
