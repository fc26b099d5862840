"""`python -m bundle.pylock` (`make lock`): re-resolve containers/requirements.lock.txt.

Installs the stack lock's top-level pins into the running environment, then
writes the environment's full resolved set as the Python lock.
"""

from __future__ import annotations

import subprocess
import sys

from bundle.core import lock, paths

HEADER = (
    "# The Python lock fed by containers/stack.lock.yaml (python_packages):"
    " the full resolved set.\n"
    "# Regenerate with `make lock` after changing a pin there;"
    " tests/test_lock.py keeps the two in step.\n"
)


def main() -> int:
    pins = [f"{k}=={v}" for k, v in lock.python_pins().items()]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pins], check=True)
    frozen = subprocess.run(
        # --all: setuptools is a runtime dependency of torch; the offline image install
        # (containers/) fails without it. pip itself is the installer, not a dependency.
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"]
        + ["--exclude", "mlmd-bundle", "--exclude", "pip"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    # A local wheel freezes as `torch @ file://...`; the lock names the version instead.
    lines = [
        f"torch=={lock.python_pins()['torch']}" if ln.startswith("torch @") else ln for ln in frozen
    ]
    out = paths.containers_dir() / "requirements.lock.txt"
    out.write_text(HEADER + "\n".join(sorted(lines, key=str.lower)) + "\n")
    print(f"wrote {out} ({len(lines)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
