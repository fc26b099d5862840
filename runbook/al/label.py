"""Stage `al_label` (plug-in `runbook.al.label:Label`, kind `dft`): the selected frames
labelled with pw.x, exactly as the `dft` stage does (same block: pseudopotentials,
cutoffs, k-point spacing; SCF convergence parsed; a frame that does not converge is
recorded in the result's `excluded` and left out, never kept as a label).

Resumable per frame. The engine wipes a stage folder that a kill left incomplete; a
finished label must survive that. Each finished pw.x run is therefore also kept in the
run's label store, `<run>/labels/<key>/` (pw.out and a `done` mark, written into a
temporary folder and renamed: a kill leaves either a finished label or none), where
`key` is the SHA-256 of the frame's rendered pw.x input and the pseudopotentials' bytes:
the same frame with the same settings. On a re-run the stage takes a finished label
from the store instead of running pw.x again; `label-record.json` and the result list
which frames ran pw.x (`computed`) and which were taken from the store (`reused`).
An SCF that did not converge is a finished label too (it is not retried; it stays
excluded).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runbook import launchers
from runbook.al.select import SelectResult
from runbook.files import read_commands, write_commands
from runbook.stage import Context, StageFailed
from runbook.stages.dft import Dft, DftConfig

STORE = "labels"
DONE = "done"
RECORD = "label-record.json"


@dataclass(frozen=True)
class LabelResult:
    """A dft result (runbook.stages.dft.DftResult; no file and no energies when nothing
    was selected) and where each label came from: `computed` by pw.x here, or `reused`
    from the label store."""

    file: str | None
    n_frames: int
    pw_version: str
    computed: list[dict]
    reused: list[dict]
    excluded: list[dict] = field(default_factory=list)
    energy_per_atom_ev: list[float] | None = None
    max_force_ev_a: float | None = None
    mean_scf_iterations: float | None = None


class Label(Dft):
    Config = DftConfig

    def n_frames(self, ctx: Context) -> int:
        up = ctx.upstream_of_kind("structure", self.name)
        return ctx.result(up, SelectResult).n_selected

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        if self.n_frames(ctx) == 0:  # nothing selected: nothing to label
            return [write_commands(stage_dir, [])]
        return super().render(ctx, stage_dir)

    def execute(self, launcher: launchers.Launcher, stage_dir: Path) -> list[list[str]]:
        store = stage_dir.parent / STORE
        ran, computed, reused = [], [], []
        for cmd in read_commands(stage_dir):
            key = label_key(stage_dir, cmd.argv[-1])
            done = store / key
            if (done / DONE).is_file():
                shutil.copyfile(done / "pw.out", stage_dir / cmd.log)
                reused.append({"input": cmd.argv[-1], "key": key})
                continue
            ran.append(launcher.argv(cmd, stage_dir))
            code = launchers.run(launcher, cmd, stage_dir)
            if not self.accepts(code, cmd, stage_dir):
                raise StageFailed(code, cmd, ran)
            keep(store, key, stage_dir / cmd.log, code)
            computed.append({"input": cmd.argv[-1], "key": key})
        record = {"computed": computed, "reused": reused}
        (stage_dir / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        return ran

    def collect(self, ctx: Context, stage_dir: Path) -> LabelResult:
        rec = json.loads((stage_dir / RECORD).read_text())
        if self.n_frames(ctx) == 0:
            return LabelResult(file=None, n_frames=0, pw_version="", **rec)
        return LabelResult(**asdict(super().collect(ctx, stage_dir)), **rec)


def label_key(stage_dir: Path, input_name: str) -> str:
    """SHA-256 of a pw.x input and of the pseudopotential files it names (pseudo/)."""
    h = hashlib.sha256((stage_dir / input_name).read_bytes())
    for p in sorted((stage_dir / "pseudo").iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def keep(store: Path, key: str, out: Path, code: int) -> Path:
    """Put a finished pw.x output into the store: tmp folder, `done`, rename."""
    final = store / key
    if (final / DONE).is_file():
        return final
    tmp = store / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(out, tmp / "pw.out")
    mark = {"exit_status": code, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (tmp / DONE).write_text(json.dumps(mark) + "\n")
    shutil.rmtree(final, ignore_errors=True)  # a folder without `done`: never finished
    os.replace(tmp, final)
    return final
