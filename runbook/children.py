"""A stage's child processes: started in a session of their own, recorded in the stage
folder while they run, and ended when the `bundle run` that started them is gone.

    NN_<stage>/.child.json   {pid, sid, start_ticks, boot_id, argv} while a command runs

`spawn` starts each command (LAMMPS, pw.x, mpirun, nequip, a Python step) with
`start_new_session=True`: the child leads a new session, and everything it starts stays
in that session unless it calls setsid itself. The session, not the process group, is
the unit: Open MPI's mpirun puts each rank in a process group of its own, but the ranks
keep mpirun's session. The record is written right after the start and removed when the
command ends; if `bundle run` is killed (`kill -9`, the OOM killer, a lost node shell)
the record stays and the session keeps running, writing into an incomplete folder.

The next `bundle run` on that folder holds the run lock, so no living `bundle run` owns
such a session: it *terminates* it (`reap`: SIGTERM to every process of the session,
SIGKILL after `GRACE_S`), says so in its log, and then redoes the stage as any
incomplete stage. Terminating rather than refusing: the stage's outputs can never be
collected (the process that would collect them is dead), and a refusal would leave the
user to find and kill MPI ranks by hand. A recorded session is ours only if its leader
is gone or is the same process (pid and start time in clock ticks since boot, same
boot): a reused pid is never signalled. Members that started before the leader are
not ours either. Zombies are dead.

Not covered: a Slurm job outlives a killed `sbatch --wait` (it is the scheduler's,
`scancel` it); a docker container outlives its killed client unless the SIGTERM sent to
the client (forwarded by `docker run`'s signal proxy) stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RECORD = ".child.json"
GRACE_S = 5.0


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, session id, start ticks) of a process; None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after `pid (comm) `: field 3 on
    return fields[0], int(fields[3]), int(fields[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Record:
    pid: int
    sid: int
    start_ticks: int
    boot_id: str
    argv: tuple[str, ...]

    def members(self) -> list[int]:
        """The living processes of the recorded session that are ours (see the module)."""
        if self.boot_id != _boot_id():
            return []
        leader = _stat(self.sid)
        if leader and leader[0] != "Z" and leader[2] != self.start_ticks:
            return []  # the pid was reused: another session, not ours
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            st = _stat(int(entry.name))
            if st and st[0] != "Z" and st[1] == self.sid and st[2] >= self.start_ticks:
                out.append(int(entry.name))
        return sorted(out)


def _write(stage_dir: Path, rec: Record) -> None:
    tmp = stage_dir / f"{RECORD}.tmp"
    tmp.write_text(json.dumps({**rec.__dict__, "argv": list(rec.argv)}) + "\n")
    os.replace(tmp, stage_dir / RECORD)


def read(stage_dir: Path) -> Record | None:
    try:
        d = json.loads((stage_dir / RECORD).read_text())
        return Record(
            int(d["pid"]), int(d["sid"]), int(d["start_ticks"]), str(d["boot_id"]),
            tuple(map(str, d["argv"])),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def spawn(argv: list[str], cwd: Path, env: dict[str, str], out, err) -> int:
    """Run `argv` in a new session, recorded in `cwd/.child.json` while it runs; its exit
    status. An exception while waiting (Ctrl-C: the terminal's SIGINT no longer reaches
    a child in its own session) terminates the child's session first."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
    st = _stat(proc.pid)  # the child exists until waited for (a zombie at worst)
    rec = Record(proc.pid, proc.pid, st[2] if st else 0, _boot_id(), tuple(argv))
    try:
        _write(cwd, rec)
        code = proc.wait()
    except BaseException:
        terminate(rec)
        proc.wait()
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            (cwd / RECORD).unlink()
    return code


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def terminate(rec: Record, grace_s: float = GRACE_S) -> tuple[int, str]:
    """SIGTERM to every process of the session, SIGKILL to those left after `grace_s`.
    Returns (processes found, how they ended: "" when none)."""
    found = rec.members()
    if not found:
        return 0, ""
    _signal_all(found, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not rec.members():
            return len(found), "SIGTERM"
        time.sleep(0.1)
    _signal_all(rec.members(), signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while rec.members() and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(found), "SIGKILL"


def reap(stage_dir: Path) -> str | None:
    """End the session a killed run left running in `stage_dir` (see the module); a line
    for the run's log, or None when nothing was running. The record is left in place (the
    stage is incomplete and will be redone; a refused run changes no file)."""
    rec = read(stage_dir)
    if rec is None:
        return None
    n, how = terminate(rec)
    if not n:
        return None
    return (
        f"{stage_dir.name}: a killed run left `{' '.join(rec.argv)[:120]}` running (session "
        f"{rec.sid}, {n} process(es)); terminated it ({how})"
    )
