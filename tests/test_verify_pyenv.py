"""verify's python-env check reads the distributions an import resolves, not shadowed copies.

Found by CI: once setuptools is imported (torch and TensorFlow import it), its vendored
`setuptools/_vendor/*.dist-info` (older platformdirs and wheel) are on sys.path, and a
last-one-wins scan reported the environment as off-lock."""

from __future__ import annotations

import json
import re
import subprocess
import sys

PROBE = """
import json, sys
import setuptools  # appends setuptools/_vendor (with its own dist-info) to sys.path
from importlib import metadata
from bundle.verify import integrity
have = integrity._installed_versions()
vendored = [p for p in sys.path if p.endswith("_vendor")]
shadowed = {}
for d in metadata.distributions(path=vendored):
    shadowed[d.metadata["Name"].lower()] = d.version
print(json.dumps({"have": have, "shadowed": shadowed,
                  "first": {n: metadata.version(n) for n in shadowed}}))
"""


def test_a_vendored_copy_does_not_stand_for_the_installed_distribution():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    out = json.loads(r.stdout)
    assert out["shadowed"], "setuptools vendors nothing: the probe tests nothing"
    for name, version in out["first"].items():
        assert out["have"][re.sub(r"[-_.]+", "-", name)] == version, name
