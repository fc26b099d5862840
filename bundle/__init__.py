"""mlmd-bundle: the `bundle` command and the delivery machinery (images, pack, install, verify)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlmd-bundle")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
