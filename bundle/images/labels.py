"""Image labels and the versions manifest: what an image of a flavor built from this lock
must carry (`expected_labels`), the comparison with what an image carries
(`check_labels`), and every Debian package and wheel inside it (`versions_manifest`)."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundle.core import __version__, lock
from bundle.images.recipe import _flavor

LOCK_LABEL = "lock-sha256"  # under images.label_namespace
FLAVOR_LABEL = "flavor"
VERSION_LABEL = "org.opencontainers.image.version"
REVISION_LABEL = "org.opencontainers.image.revision"
MANIFEST_SCHEMA = "image-versions/1"
MANIFEST_PATH = "/opt/mlmd-bundle/versions.json"  # inside the image
# `bundle images manifest --out` also prints the manifest between these lines, so that a
# build takes it from its log instead of starting a container (a full rootfs copy on vfs).
MANIFEST_BEGIN = "----- versions manifest -----"
MANIFEST_END = "----- end of versions manifest -----"


def expected_labels(flavor: str, lock_path: Path | None = None) -> dict[str, str]:
    """The labels an image of this flavor built from this lock must carry."""
    stack = lock.model(lock_path)
    ns = stack.images.label_namespace
    return {
        VERSION_LABEL: __version__,
        f"{ns}.{FLAVOR_LABEL}": _flavor(flavor),
        f"{ns}.{LOCK_LABEL}": lock.lock_hash(lock_path),
    }


@dataclass(frozen=True)
class LabelCheck:
    label: str
    expected: str
    found: str | None

    @property
    def ok(self) -> bool:
        return self.found == self.expected


def check_labels(
    labels: dict[str, str], flavor: str | None = None, lock_path: Path | None = None
) -> list[LabelCheck]:
    """Compare an image's labels with what the lock says; the flavor is read from the image."""
    ns = lock.model(lock_path).images.label_namespace
    flavor = flavor or labels.get(f"{ns}.{FLAVOR_LABEL}")
    if flavor not in lock.FLAVORS:
        return [LabelCheck(f"{ns}.{FLAVOR_LABEL}", "|".join(lock.FLAVORS), flavor)]
    expected = expected_labels(flavor, lock_path)
    return [LabelCheck(k, v, labels.get(k)) for k, v in expected.items()]


def _dpkg_versions() -> dict[str, str]:
    if not shutil.which("dpkg-query"):
        return {}
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = (ln.split("\t") for ln in out.splitlines())
    return {pkg: ver for status, pkg, ver in rows if status.startswith("ii")}


def versions_manifest(flavor: str, lock_path: Path | None = None) -> dict[str, Any]:
    """Every Debian package and Python distribution installed here, with its version,
    plus the components the lock builds from source (h200). Run inside the image."""
    stack = lock.model(lock_path)
    wheels = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    components: dict[str, str] = {}
    if flavor == "h200":
        h = stack.flavors.h200
        components = {
            "cuda": h.cuda.toolkit,
            "nvhpc": h.nvhpc.version,
            "ucx": h.ucx.version,
            "openmpi": h.openmpi.version,
            "lammps": h.lammps.ref,
            "pair_nequip_allegro": h.pair_nequip_allegro.ref,
            "quantum-espresso": h.qe.version,
        }
    return {
        "schema": MANIFEST_SCHEMA,
        "flavor": _flavor(flavor),
        "bundle_version": __version__,
        "lock_sha256": lock.lock_hash(lock_path),
        "python": ".".join(map(str, sys.version_info[:3])),
        "debian": dict(sorted(_dpkg_versions().items())),
        "wheels": dict(sorted(wheels.items(), key=lambda kv: kv[0].lower())),
        "built_from_source": components,
    }
