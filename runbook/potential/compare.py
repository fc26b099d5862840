"""Step `compare`: two (or more) models validated on the same held-out frames, side by
side per environment class, with the trivial baselines and the training cost.

    python -m runbook.potential.compare compare.json

Input: each model's validation.json (runbook.potential.validate; its `frames`, the
per-frame errors) and the wall/CPU seconds of its training stage. Per class and model:
energy MAE (meV/atom) and force RMSE (eV/Å) over the frames the model can evaluate, the
per-species-mean-energy and zero-force baselines on the same frames, frames and atoms;
per model, the speed of its stability MD (the same bulk cell and steps for every model).

Which model wins a class, and when none is named (`winner` null, `why` says which):
a *paired bootstrap over held-out frames*: `resamples` draws of the class's frames with
replacement (seeded), the same draw for both models; the statistic of each model is
recomputed on the draw (MAE of the per-atom energy errors; RMSE of all force components
of the drawn frames) and the difference A - B taken. A model wins when the central
`level` interval of the difference excludes 0; otherwise the difference is within the
spread. Frames are resampled, not atoms or components: the errors inside one frame are
correlated. A class with fewer than `min_frames` frames evaluable by both models gets no
winner (no spread can be estimated from one or two frames). The bootstrap standard
deviation of each model's statistic is reported beside it.

Verdicts stay per model: each validate stage is its own check (a FAIL of one fails the
run: `bundle run` exits 1 naming that stage); `verdicts` here repeats them, and `verdict`
is PASS only when every model PASSes. A winner is a ranking, never a PASS.

Writes comparison.json (schema `potential-comparison/1`) and comparison.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runbook.steps import params

SCHEMA = "potential-comparison/1"
STATS = (("energy_mae_meV_atom", "energy MAE (meV/atom)"), ("force_rmse_ev_A", "force RMSE (eV/Å)"))


def _stat(e_err: np.ndarray, f_sq: np.ndarray, comps: np.ndarray, idx) -> tuple[float, float]:
    """(energy MAE, force RMSE) over the frames `idx` (may repeat)."""
    return float(np.mean(np.abs(e_err[idx]))), float(np.sqrt(f_sq[idx].sum() / comps[idx].sum()))


def _arrays(frames: list[dict], key_e: str, key_f: str):
    e = np.array([f[key_e] for f in frames], float)
    fs = np.array([f[key_f] for f in frames], float)
    return e, fs, np.array([f["components"] for f in frames], float)


def class_errors(frames: list[dict], model: bool = True) -> dict:
    """Energy MAE and force RMSE of the model (or, model=False, of the baselines) over
    per-frame records (validate.frame_errors)."""
    if not frames:
        return {"energy_mae_meV_atom": None, "force_rmse_ev_A": None}
    keys = ("e_err_meV_atom", "f_sq") if model else ("e_err_base_meV_atom", "f_sq_base")
    e, fs, comps = _arrays(frames, *keys)
    mae, rmse = _stat(e, fs, comps, np.arange(len(frames)))
    return {"energy_mae_meV_atom": mae, "force_rmse_ev_A": rmse}


def paired_bootstrap(a: list[dict], b: list[dict], resamples: int, seed: int) -> dict:
    """Bootstrap draws over frames (the same draw for a and b, frame k of a is frame k of
    b): per statistic, the draws of a, of b and of a - b."""
    ea, fa, ca = _arrays(a, "e_err_meV_atom", "f_sq")
    eb, fb, cb = _arrays(b, "e_err_meV_atom", "f_sq")
    rng = np.random.default_rng(seed)
    draws = {k: ([], []) for k, _ in STATS}
    for _ in range(resamples):
        idx = rng.integers(0, len(a), len(a))
        for (k, _), va, vb in zip(
            STATS, _stat(ea, fa, ca, idx), _stat(eb, fb, cb, idx), strict=True
        ):
            draws[k][0].append(va)
            draws[k][1].append(vb)
    return {k: (np.array(x), np.array(y)) for k, (x, y) in draws.items()}


def decide(names: tuple[str, str], point: dict, draws: dict, n: int, p: dict) -> dict:
    """Per statistic: the winner (or None and why), the difference and its interval."""
    out = {}
    lo_q, hi_q = (1 - p["level"]) / 2, 1 - (1 - p["level"]) / 2
    for k, _ in STATS:
        diff = point[names[0]][k] - point[names[1]][k]
        rec: dict = {"difference": diff, "interval": None, "winner": None}
        if n < p["min_frames"]:
            rec["why"] = f"{n} frame(s) < {p['min_frames']}: no spread"
        else:
            d = draws[k][0] - draws[k][1]
            lo, hi = float(np.quantile(d, lo_q)), float(np.quantile(d, hi_q))
            rec["interval"] = [lo, hi]
            if lo > 0 or hi < 0:
                rec["winner"] = names[1] if lo > 0 else names[0]
                rec["why"] = f"the {p['level']:.0%} interval of the difference excludes 0"
            else:
                rec["why"] = f"within the spread ({p['level']:.0%} interval contains 0)"
        out[k] = rec
    return out


def compare_class(cls: str, models: dict[str, list[dict]], p: dict) -> dict:
    """One class: every model's errors and baselines on the frames all of them evaluate,
    and, for two models, the winner per statistic."""
    names = tuple(models)
    sets = [{f["index"] for f in fr if f["env_class"] == cls and f["f_sq"] is not None}
            for fr in models.values()]  # fmt: skip
    common = sorted(set.intersection(*sets)) if sets else []
    first = [f for f in models[names[0]] if f["env_class"] == cls]
    per = {m: [f for f in fr if f["index"] in common] for m, fr in models.items()}
    row: dict = {
        "frames": len(first), "evaluated_by_all": len(common),
        "atoms": int(sum(f["n"] for f in first if f["index"] in common)),
        "models": {m: class_errors(per[m]) for m in names},
        "baselines": class_errors(per[names[0]], model=False),
    }  # fmt: skip
    if len(names) == 2 and common:
        # below min_frames no spread is reported: the SD of one or two frames means nothing
        few = len(common) < p["min_frames"]
        draws = {} if few else paired_bootstrap(per[names[0]], per[names[1]], p["resamples"],
                                                p["seed"])  # fmt: skip
        for m, k in ((0, 0), (1, 1)):
            for s, _ in STATS:
                sd = None if few else float(np.std(draws[s][k]))
                row["models"][names[m]][f"{s}_bootstrap_sd"] = sd
        row["winner"] = decide(names, row["models"], draws, len(common), p)
    return row


def same_frames(docs: dict[str, dict]) -> None:
    """Refuse models validated on different held-out frames (index, size, DFT energy)."""
    keys = {m: [(f["index"], f["n"], round(f["e_dft_ev"], 6)) for f in d["frames"]]
            for m, d in docs.items()}  # fmt: skip
    first = next(iter(keys.values()))
    for m, k in keys.items():
        if k != first:
            raise ValueError(f"model {m} was validated on other held-out frames than the first")


def markdown(doc: dict) -> str:
    names = list(doc["models"])
    head = ["class", "frames", "atoms"] + [f"{m} E" for m in names] + ["per-species E"]
    head += [f"{m} F" for m in names] + ["zero-force F", "winner E", "winner F"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def fmt(v, sd=None, nd=3):
        return "n/a" if v is None else f"{v:.{nd}g}" + (f" ± {sd:.2g}" if sd else "")

    for cls, r in doc["classes"].items():
        cells = [cls, str(r["evaluated_by_all"]), str(r["atoms"])]
        for s, _ in STATS:
            for m in names:
                e = r["models"][m]
                cells.append(fmt(e[s], e.get(f"{s}_bootstrap_sd")))
            cells.append(fmt(r["baselines"][s]))
        for s, _ in STATS:
            w = r.get("winner", {}).get(s)
            cells.append("—" if w is None else (w["winner"] or f"none: {w['why']}"))
        lines.append("| " + " | ".join(cells) + " |")
    out = [
        f"# Model comparison ({', '.join(names)}) on held-out frames",
        "",
        "E: energy MAE (meV/atom); F: force RMSE (eV/Å); ± bootstrap SD over frames.",
        "",
        *lines,
        "",
        "| model | verdict | train stage wall s | train stage CPU s |",
        "|---|---|---|---|",
    ]
    for m in names:
        t = doc["training"][m]
        out.append(f"| {m} | {doc['verdicts'][m]} | {t['wall_s']} | {t['cpu_s']} |")
    for m in names:
        step = (doc["training"][m].get("steps") or {}).get("train")
        if step:
            out.append(
                f"\n{m}: the training step alone (`dp train`) took {step['wall_s']} s "
                f"wall, {step['cpu_s']} s CPU (the stage also converts, freezes, tests)."
            )
    out += md_speed_lines(doc)
    out += ["", f"Run verdict: {doc['verdict']} (PASS only when every model PASSes)."]
    return "\n".join(out) + "\n"


def md_speed(validation: dict) -> dict | None:
    """The model's stability MD (validate: the same bulk cell, steps and temperature for
    every model) as the speed row: atom-steps/s of wall, the seconds in the model, stable."""
    s = validation.get("stability") or {}
    if not s.get("steps"):
        return None
    keys = ("atoms", "steps", "temperature_K", "atom_steps_per_s", "wall_s", "model_s", "stable")
    return {k: s.get(k) for k in keys}


def md_speed_lines(doc: dict) -> list[str]:
    rows = [(m, r) for m, r in (doc.get("md") or {}).items() if r]
    if not rows:
        return []
    out = ["", "MD on the same bulk cell (the validation's stability run, one process):", "",
           "| model | atoms | steps | T (K) | atom-steps/s | wall s | model s | stable |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m, r in rows:
        cells = [r["atoms"], r["steps"], r["temperature_K"], r["atom_steps_per_s"],
                 r["wall_s"], r["model_s"], "yes" if r["stable"] else "no"]  # fmt: skip
        out.append(f"| {m} | " + " | ".join(str(c) for c in cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    docs = {m: json.loads(Path(v["validation"]).read_text()) for m, v in p["models"].items()}
    same_frames(docs)
    frames = {m: d["frames"] for m, d in docs.items()}
    verdicts = {m: d["verdict"] for m, d in docs.items()}
    doc = {
        "schema": SCHEMA,
        "verdict": "PASS" if all(v == "PASS" for v in verdicts.values()) else "FAIL",
        "verdicts": verdicts,
        "reasons": {m: d["reasons"] for m, d in docs.items()},
        "models": {
            m: {
                "validation": v["validation"],
                "model": docs[m]["model"],
                "backend": docs[m].get("backend", "allegro"),
            }
            for m, v in p["models"].items()
        },  # fmt: skip
        "held_out": next(iter(docs.values())).get("held_out"),
        "training": {m: v["training"] for m, v in p["models"].items()},
        "md": {m: md_speed(d) for m, d in docs.items()},
        "bootstrap": p["bootstrap"],
        "classes": {c: compare_class(c, frames, p["bootstrap"]) for c in p["classes"]},
    }
    Path("comparison.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    Path("comparison.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
