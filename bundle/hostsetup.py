"""`python -m bundle.hostsetup`: install the lock's Debian host packages when root.

Called by `make setup`. Without root it only reports what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from bundle.core import lock


def missing(packages: list[str]) -> list[str]:
    if not shutil.which("dpkg-query"):
        return packages
    out = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            out.append(p)
    return out


def main() -> int:
    todo = missing(lock.load()["host"]["debian"])
    if not todo:
        print("host packages: all present")
        return 0
    if os.geteuid() != 0:
        print(f"host packages missing (run as root to install): {' '.join(todo)}")
        return 0
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *todo], check=True, env=env)
    print(f"host packages installed: {' '.join(todo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
