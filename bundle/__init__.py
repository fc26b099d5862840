"""mlmd-bundle: the `bundle` command and the delivery machinery (images, pack, install, verify).

The leaf layer everything else imports (errors, paths, lock, engines, render) is
`bundle.core`; see its docstring for the layer order."""

from bundle.core import __version__

__all__ = ["__version__"]
