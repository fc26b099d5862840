"""Stage `al_select` (plug-in `runbook.al.select:Select`, kind `structure`): the frames of
an exploration MD that the committee is unsure about, to be labelled.

1. Window: frames whose committee max force deviation lies in [lo, hi) (DP-GEN's
   candidates; lo, hi from the MD's trust levels unless given). Frames below lo are
   known; frames at or above hi are too far out to label usefully (DP-GEN drops them).
2. Diversity: farthest-point sampling in a simple descriptor space (per species pair,
   the histogram of interatomic distances within `r_cut_a`, per atom), starting from
   the candidate with the largest deviation, capped at `max_frames`.

Writes structures.extxyz (what the label stage computes; each frame's info names its MD
stage, step and deviation) and selection.json (the window, every candidate, the chosen).
The frames come from the MD's deviation dump (`id type xu yu zu` at the deviation steps;
orthogonal boxes).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write
from ase.neighborlist import neighbor_list
from pydantic import Field

from bundle.core.errors import InputError
from checks import deviation, lammpsio
from runbook.config import Strict
from runbook.deepmd import md as deepmd_md
from runbook.files import write_commands, write_json_atomic, write_params
from runbook.stage import Context, Stage


class SelectConfig(Strict):
    md: str = Field(description="the exploration md stage (potential: deepmd with a committee)")
    max_frames: int = Field(ge=1, description="cap per iteration")
    lo_ev_a: float | None = Field(None, gt=0, description="default: the MD's trust_lo")
    hi_ev_a: float | None = Field(None, gt=0, description="default: the MD's trust_hi")
    r_cut_a: float = Field(4.0, gt=0, description="descriptor: distances up to here")
    n_bins: int = Field(16, ge=2, description="descriptor: bins per species pair")
    stop_below: float | None = Field(
        None, gt=0, le=1, description="end the loop when the exploration's boundary-band "
        "atom-frames outside the trusted level (candidate + failed) are fewer than this",
    )  # fmt: skip


@dataclass(frozen=True)
class Explored:
    """What a selection (and the loop's summary) reads of an exploration md stage's result
    (runbook.stages.md.MdResult): its committee deviation summary and its type map."""

    type_map: dict[str, str]
    deviation: dict | None = None


@dataclass(frozen=True)
class SelectResult:
    n_selected: int
    n_candidates: int
    n_frames: int
    window_ev_a: list[float]
    chosen_steps: list[int]
    stop_reason: str | None = None  # the loop converged: the engine runs no later stage


class Select(Stage):
    kind = "structure"
    Config = SelectConfig
    tools = ("ase", "numpy")

    @property
    def c(self) -> SelectConfig:
        return self.cfg  # type: ignore[return-value]

    def preflight(self, ctx: Context) -> None:
        stages = ctx.study.stages
        if self.c.md not in stages or stages.index(self.c.md) > stages.index(self.name):
            raise InputError(
                ctx.study.source, f"{self.name}.md", f"{self.c.md!r} is no stage before"
            )
        if ctx.kind_of(self.c.md) != "md":
            raise InputError(
                ctx.study.source, f"{self.name}.md", f"{self.c.md!r} is not an md stage"
            )

    def render(self, ctx: Context, stage_dir: Path) -> list[Path]:
        p = {**self.c.model_dump(mode="json"), "record": ctx.rel(self.c.md, deepmd_md.RECORD)}
        return [write_params(stage_dir, "select.json", p), write_commands(stage_dir, [])]

    def window(self, ctx: Context) -> tuple[float, float]:
        summary = ctx.result(self.c.md, Explored).deviation
        if not summary:
            raise InputError(ctx.study.source, f"{self.name}.md", "that MD has no committee record")
        return (self.c.lo_ev_a or summary["lo_ev_a"], self.c.hi_ev_a or summary["hi_ev_a"])

    def converged(self, ctx: Context) -> str | None:
        """Why the loop ends here (the exploration is trusted enough), else None."""
        if self.c.stop_below is None:
            return None
        region, levels = deviation.band_levels(ctx.result(self.c.md, Explored).deviation or {})
        untrusted = float(levels["candidate"]) + float(levels["failed"])
        if not math.isfinite(untrusted) or untrusted >= self.c.stop_below:
            return None  # no atom-frame in the band proves nothing
        return (f"converged: {region} atom-frames of {self.c.md} outside the trusted level "
                f"{untrusted:.4f} < stop_below {self.c.stop_below:g}")  # fmt: skip

    def collect(self, ctx: Context, stage_dir: Path) -> SelectResult:
        lo, hi = self.window(ctx)
        why = self.converged(ctx)
        if why:
            write(stage_dir / "structures.extxyz", [], format="extxyz")
            doc = {"md": self.c.md, "window_ev_a": [lo, hi], "stop_reason": why,
                   "chosen_steps": []}  # fmt: skip
            write_json_atomic(stage_dir / "selection.json", doc)
            n = int(ctx.result(self.c.md, Explored).deviation["frames"].get("n") or 0)
            return SelectResult(0, 0, n, [lo, hi], [], stop_reason=why)
        md_dir = ctx.dir_of(self.c.md)
        rec = deviation.load(md_dir / deepmd_md.RECORD)
        type_map = {int(k): v for k, v in ctx.result(self.c.md, Explored).type_map.items()}
        inside = np.flatnonzero((rec.frame_max >= lo) & (rec.frame_max < hi))
        frames = frames_at(md_dir / deepmd_md.DEVI_DUMP, rec.step[inside], type_map)
        desc = np.array([descriptor(a, self.c.r_cut_a, self.c.n_bins) for a in frames])
        start = int(np.argmax(rec.frame_max[inside])) if len(inside) else 0
        chosen = farthest_points(desc, self.c.max_frames, start) if len(inside) else []
        out = []
        for k in chosen:
            a = frames[k]
            i = int(inside[k])
            a.info = {"source_stage": self.c.md, "step": int(rec.step[i]),
                      "max_devi_f_ev_a": float(rec.frame_max[i])}  # fmt: skip
            out.append(a)
        write(stage_dir / "structures.extxyz", out, format="extxyz")
        doc = {
            "md": self.c.md, "window_ev_a": [lo, hi], "n_frames": rec.n_frames,
            "n_candidates": len(inside), "candidate_steps": rec.step[inside].tolist(),
            "chosen_steps": [a.info["step"] for a in out],
            "rule": "window [lo, hi) on the frame max, then farthest-point sampling of "
            "per-pair distance histograms from the largest deviation",
        }  # fmt: skip
        write_json_atomic(stage_dir / "selection.json", doc)
        return SelectResult(n_selected=len(out), n_candidates=len(inside),
                            n_frames=rec.n_frames, window_ev_a=[lo, hi],
                            chosen_steps=doc["chosen_steps"])  # fmt: skip


def frames_at(dump: Path, steps, type_map: dict[int, str]) -> list[Atoms]:
    """The dump's frames at `steps` as periodic ase Atoms (orthogonal box, wrapped)."""
    want = {int(s) for s in steps}
    out = {}
    for fr in lammpsio.read_frames([dump]):
        if fr.timestep in want:
            order = np.argsort(fr.ids)
            a = Atoms(
                symbols=[type_map[int(t)] for t in fr.types[order]],
                positions=fr.unwrapped[order] - fr.lo, cell=np.diag(fr.lengths), pbc=True,
            )  # fmt: skip
            a.wrap()
            out[fr.timestep] = a
    missing = sorted(want - set(out))
    if missing:
        raise InputError(dump, "TIMESTEP", f"no frame for steps {missing[:5]}")
    return [out[int(s)] for s in steps]


def descriptor(atoms: Atoms, r_cut: float, n_bins: int) -> np.ndarray:
    """Per species pair (sorted), the histogram of distances in (0, r_cut] per atom."""
    i, j, d = neighbor_list("ijd", atoms, r_cut)
    sym = np.array(atoms.get_chemical_symbols())
    species = sorted(set(sym))
    edges = np.linspace(0.0, r_cut, n_bins + 1)
    parts = []
    for a, b in itertools.combinations_with_replacement(species, 2):
        m = ((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a))
        parts.append(np.histogram(d[m], edges)[0] / len(atoms))
    return np.concatenate(parts)


def farthest_points(x: np.ndarray, k: int, start: int = 0) -> list[int]:
    """Greedy farthest-point sampling of up to k rows of x, from row `start`."""
    chosen = [start]
    dist = np.linalg.norm(x - x[start], axis=1)
    while len(chosen) < min(k, len(x)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break  # the rest repeat frames already chosen
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return chosen
