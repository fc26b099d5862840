"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd, started here.

Everything lives in one temporary folder: a freshly generated munge key and
socket, `slurm.conf` (free ports, jobcomp/filetxt instead of accounting, state
and spool folders), the daemons' logs. Clients reach this cluster only through
`SLURM_CONF` (see `SlurmCluster.env`), so a site Slurm on the same host is never
touched. Teardown cancels this cluster's jobs and stops exactly the three
processes started here. Needs root (slurmd runs jobs as their user) and the
Debian packages slurm-wlm and munge; under CI=true their absence FAILS.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NODE = "mlmdnode"
PARTITION = "debug"
# GPU GRES for scheduling tests only: Slurm's gpu plugin wants device files, so the node
# declares 8 character devices that alias /dev/null (1,3). Slurm then allocates them and
# sets CUDA_VISIBLE_DEVICES like on a GPU node; nothing here ever computes on a GPU.
GRES_GPUS = 8
_PROGRAMS = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")


@dataclass
class SlurmCluster:
    """A running one-node cluster; `env` is what a client process needs to reach it."""

    root: Path
    conf: Path
    jobcomp: Path
    node: str
    partition: str
    cpus: int
    gpus: int  # GRES gpu count (device nodes aliasing /dev/null), 0 if unavailable
    procs: list[subprocess.Popen] = field(default_factory=list, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def logs(self) -> str:
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:]))
        return "\n".join(parts)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until the queue is empty and the node is idle again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queue = self.run("squeue", "-h", "-o", "%i", check=False).stdout.strip()
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if not queue and state == "idle":
                return
            time.sleep(0.5)
        raise TimeoutError(f"slurm did not become idle in {timeout} s\n{self.logs()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> str:
    """This machine's node line as slurmd itself measures it (`slurmd -C`), minus the name.

    RealMemory is lowered to 90 % so that the node is never drained for "low memory".
    """
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = out.splitlines()[0]
    fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    fields.pop("NodeName", None)
    fields["RealMemory"] = str(int(int(fields["RealMemory"]) * 0.9))
    return " ".join(f"{k}={v}" for k, v in fields.items())


def write_conf(root: Path, munge_socket: Path, hardware: str, gpus: int) -> Path:
    d = root
    conf = d / "slurm.conf"
    conf.write_text(
        f"""# one-node test cluster written by tests/slurm_fixture.py
ClusterName=mlmdtest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=600
KillWait=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.txt
GresTypes=gpu
NodeName={NODE} NodeAddr=127.0.0.1 {hardware}{f" Gres=gpu:{gpus}" if gpus else ""} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf


def write_gres(root: Path) -> int:
    """gres.conf with GRES_GPUS device nodes aliasing /dev/null; 0 where mknod is refused."""
    dev = root / "dev"
    dev.mkdir(exist_ok=True)
    try:
        for i in range(GRES_GPUS):
            os.mknod(dev / f"gpu{i}", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        return 0
    (root / "gres.conf").write_text(f"Name=gpu File={dev}/gpu[0-{GRES_GPUS - 1}]\n")
    return GRES_GPUS


def _start_munged(root: Path) -> tuple[subprocess.Popen, Path]:
    """munged as user munge with a fresh key; the socket folder must be 0755, the key's 0700."""
    munge = pwd.getpwnam("munge")
    sock_dir, private = root / "munge", root / "munge" / "private"
    private.mkdir(parents=True)
    key = private / "munge.key"
    key.write_bytes(os.urandom(1024))
    for p, mode in ((sock_dir, 0o755), (private, 0o700), (key, 0o600)):
        os.chown(p, munge.pw_uid, munge.pw_gid)
        os.chmod(p, mode)
    sock = sock_dir / "munge.socket"
    proc = subprocess.Popen(
        [
            "munged",
            "--foreground",
            f"--socket={sock}",
            f"--key-file={key}",
            f"--pid-file={sock_dir}/munged.pid",
            f"--log-file={private}/munged.log",
            f"--seed-file={private}/munged.seed",
        ],
        user=munge.pw_uid,
        group=munge.pw_gid,
        extra_groups=[],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "log" / "munged.log", "w"),  # noqa: SIM115 - closed with the process
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ok = subprocess.run(["munge", "-n", "-S", str(sock)], capture_output=True).returncode == 0
        if ok:
            return proc, sock
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"munged did not start: {(root / 'log' / 'munged.log').read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under `root`; wait for the node to be idle."""
    for sub in ("log", "state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # munged (user munge) must traverse to its socket
    procs: list[subprocess.Popen] = []
    try:
        munged, sock = _start_munged(root)
        procs.append(munged)
        gpus = write_gres(root)
        conf = write_conf(root, sock, node_hardware(), gpus)
        env = dict(os.environ, SLURM_CONF=str(conf))
        for argv, log in (
            (["slurmctld", "-D", "-i"], "slurmctld.out"),
            (["slurmd", "-D", "-N", NODE], "slurmd.out"),
        ):
            procs.append(
                subprocess.Popen(
                    argv,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(root / "log" / log, "w"),  # noqa: SIM115
                    start_new_session=True,
                )
            )
        cpus = int(re.search(r"CPUs=(\d+)", conf.read_text()).group(1))
        cluster = SlurmCluster(root, conf, root / "jobcomp.txt", NODE, PARTITION, cpus, gpus, procs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                return cluster
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
        raise RuntimeError(f"slurm node never became idle (last state {state!r})\n{cluster.logs()}")
    except BaseException:
        for p in reversed(procs):
            _stop(p)
        raise


def stop_cluster(cluster: SlurmCluster) -> None:
    """Cancel this cluster's jobs, then stop slurmd, slurmctld and munged (only those)."""
    cluster.run("scancel", "--full", "--partition", cluster.partition, check=False)
    try:
        cluster.wait_idle(timeout=20)
    except TimeoutError:
        pass
    for p in reversed(cluster.procs):
        _stop(p)


def _available() -> tuple[bool, str]:
    missing = [p for p in _PROGRAMS if shutil.which(p) is None]
    if missing:
        return False, "missing " + ", ".join(missing)
    if os.geteuid() != 0:
        return False, "slurmd must run as root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return False, "no user 'munge'"
    return True, ""


@pytest.fixture(scope="session")
def slurm_cluster():
    from tests.conftest import require  # here, not at the top: conftest imports this module

    ok, why = _available()
    require(ok, f"a one-node Slurm (slurm-wlm + munge, root): {why}")
    root = Path(tempfile.mkdtemp(prefix="mlmd-slurm-"))
    cluster = start_cluster(root)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
        shutil.rmtree(root, ignore_errors=True)
