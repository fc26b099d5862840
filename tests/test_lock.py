"""The stack lock is the one source of versions; the Python lock and pyproject follow it."""

from __future__ import annotations

import re
import tomllib

from bundle.core import lock, paths


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python_lock() -> dict[str, str]:
    text = (paths.containers_dir() / "requirements.lock.txt").read_text()
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, ver = line.partition("==")
            assert ver, f"unpinned line in requirements.lock.txt: {line!r}"
            pins[_norm(name)] = ver
    return pins


def test_every_stack_pin_is_in_the_python_lock_with_the_same_version():
    resolved = _python_lock()
    for name, ver in lock.python_pins().items():
        assert resolved.get(_norm(name)) == ver, (
            f"{name}: stack lock {ver}, python lock {resolved.get(_norm(name))}"
        )


def test_pyproject_dependencies_carry_no_versions_and_are_pinned_in_the_stack_lock():
    deps = tomllib.loads((paths.root() / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {_norm(n) for n in lock.python_pins()}
    for dep in deps:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", dep), f"pyproject pins a version: {dep!r}"
        assert _norm(dep) in pinned, f"{dep} is a dependency but has no pin in stack.lock.yaml"
