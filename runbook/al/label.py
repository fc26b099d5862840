"""Stage `al_label` (plug-in `runbook.al.label:Label`, kind `dft`): the selected frames
labelled with pw.x, exactly as the `dft` stage does (same block: pseudopotentials,
cutoffs, k-point spacing; SCF convergence parsed; a frame that does not converge is
recorded in the result's `excluded` and left out, never kept as a label).

Resumable per frame. The engine wipes a stage folder that a kill left incomplete; a
finished label must survive that. Each finished pw.x run is therefore also kept in the
run's label store (runbook.labelstore: `<run>/labels/<key>/`, keyed by the rendered input
and the pseudopotentials' bytes). On a re-run the stage takes a finished label from the
store instead of running pw.x again; `label-record.json` and the result list which frames
ran pw.x (`computed`) and which were taken from the store (`reused`). An SCF that did not
converge is a finished label too (it is not retried; it stays excluded).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runbook import labelstore, launchers
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
        store = labelstore.store_of(stage_dir)
        ran, computed, reused = [], [], []
        for cmd in read_commands(stage_dir):
            key = labelstore.key(stage_dir, cmd.argv[-1])
            if labelstore.fetch(store, key, stage_dir / cmd.log) is not None:
                reused.append({"input": cmd.argv[-1], "key": key})
                continue
            ran.append(launcher.argv(cmd, stage_dir))
            code = launchers.run(launcher, cmd, stage_dir)
            if not self.accepts(code, cmd, stage_dir):
                raise StageFailed(code, cmd, ran)
            labelstore.keep(store, key, stage_dir / cmd.log, code)
            computed.append({"input": cmd.argv[-1], "key": key})
        record = {"computed": computed, "reused": reused}
        (stage_dir / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        return ran

    def collect(self, ctx: Context, stage_dir: Path) -> LabelResult:
        rec = json.loads((stage_dir / RECORD).read_text())
        if self.n_frames(ctx) == 0:
            return LabelResult(file=None, n_frames=0, pw_version="", **rec)
        return LabelResult(**asdict(super().collect(ctx, stage_dir)), **rec)
