"""The leaf core of mlmd-bundle: errors and exit codes, where the shipped folders are,
the typed stack lock, tool discovery, and template rendering.

Layers (enforced by the import contract in tests/test_layers.py):
    bundle.core  <-  checks  <-  runbook  <-  delivery (bundle: images, pack, install,
    verify, ...)  <-  the CLI (bundle.cli*).
Nothing in this package imports anything above it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlmd-bundle")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
