"""Step `validate`: a model on held-out frames, per environment class, against trivial
baselines, plus a short MD stability test; PASS/FAIL against the study's bounds.

    python -m runbook.potential.validate validate.json

One code path for both backends (`backend` in the parameters): `allegro` (the deployed
NequIP/Allegro model through its ASE calculator; MD through `fix external`) and `deepmd`
(a frozen DeePMD-kit model through `DeepPot`; MD through `pair_style deepmd`, so the
process needs bundle.core.engines.deepmd_env). Only `predict` (frame -> energy, forces)
and the stability test's pair lines differ; the records, metrics, bounds and figures are
the same, so two models validated on the same held-out file are compared frame by frame
(runbook.potential.compare reads the per-frame errors, `frames` in validation.json).

Per class (the frames' `env_class`) and, reported but not judged, per family:
- energy: MAE of the per-atom energy (meV/atom) of the model and of the *per-species
  mean-energy baseline*: mu_s fitted by least squares on the TRAINING frames'
  compositions (runbook.energyref), predicting sum_s n_s mu_s;
- forces: RMSE and MAE of the force components (eV/Å) of the model and of the
  *zero-force baseline* (its RMSE is the RMS of the DFT forces);
- ratios model/baseline, judged against `bounds` (and absolute bounds).
A class FAILs when any of its held-out frames holds a species the model does not know
(reason names the species: the model cannot be evaluated there), when it has no
held-out frame, or when a bound is exceeded on the frames the model can evaluate. The
stability test (runbook.potential.stability) runs when the model knows every species of
bulk LLZO; otherwise it FAILs with that reason. The verdict is PASS only when every
class and the stability test pass.

Writes validation.json (verdict, reasons, the table, the baselines' fit, the stability
record, the per-frame errors) and figures/parity_energy.png, figures/parity_forces.png.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from runbook import energyref, mdcoupling, modelcard
from runbook.potential import stability
from runbook.potential.config import Bounds, Stability
from runbook.steps import params

SCHEMA = "potential-validation/1"
BULK_SPECIES = {"Li", "La", "Zr", "O"}


Predict = Callable[[Atoms], tuple[float, np.ndarray]]  # frame -> (energy eV, forces eV/Å)


def predictor(backend: str, model: str, device: str) -> Predict:
    """The model as a function of a frame: Allegro through its ASE calculator, DeePMD
    through DeepPot (runbook.deepmd.evaluate)."""
    if backend == "deepmd":
        from runbook.deepmd.evaluate import deeppot_predictor

        return deeppot_predictor(model)
    calc = mdcoupling.load_calculator(model, device=device)

    def predict(atoms: Atoms) -> tuple[float, np.ndarray]:
        a = atoms.copy()
        a.calc = calc
        return a.get_potential_energy(), a.get_forces()

    return predict


def evaluate(
    frames, predict: Predict, mu: energyref.SpeciesEnergies, known: set[str]
) -> list[dict]:
    """One record per frame: DFT, model and baseline energies/forces (model None when a
    species is unknown to the model)."""
    out = []
    for k, ref in enumerate(frames):
        syms = ref.get_chemical_symbols()
        rec = {
            "index": k,
            "env_class": str(ref.info.get("env_class", "unclassified")),
            "family": str(ref.info.get("family", "")),
            "n": len(ref),
            "missing": sorted(set(syms) - known),
            "e_dft": ref.get_potential_energy(),
            "e_base": mu.predict(syms),
            "f_dft": ref.get_forces(),
            "e_model": None,
            "f_model": None,
        }
        if not rec["missing"]:
            e, f = predict(ref)
            rec["e_model"], rec["f_model"] = float(e), np.asarray(f, float).reshape(-1, 3)
        out.append(rec)
    return out


def frame_errors(recs: list[dict]) -> list[dict]:
    """Per frame, what the per-class errors are sums of: the signed per-atom energy error
    (meV/atom) and the sum of squared force-component errors (eV²/Å²) of the model and
    of the baselines (zero force: the DFT forces themselves), with the component count.
    A model that cannot evaluate the frame has None."""
    out = []
    for r in recs:
        d = {
            "index": r["index"], "env_class": r["env_class"], "family": r["family"],
            "n": r["n"], "e_dft_ev": r["e_dft"], "components": int(r["f_dft"].size),
            "e_err_base_meV_atom": (r["e_base"] - r["e_dft"]) / r["n"] * 1000.0,
            "f_sq_base": float(np.sum(r["f_dft"] ** 2)),
            "e_err_meV_atom": None, "f_sq": None,
        }  # fmt: skip
        if r["e_model"] is not None:
            d["e_err_meV_atom"] = (r["e_model"] - r["e_dft"]) / r["n"] * 1000.0
            d["f_sq"] = float(np.sum((r["f_model"] - r["f_dft"]) ** 2))
        out.append(d)
    return out


def metrics(recs: list[dict]) -> dict:
    """Errors of one group of frame records (model only over the evaluable frames)."""
    ok = [r for r in recs if r["e_model"] is not None]
    e_base = np.array([(r["e_base"] - r["e_dft"]) / r["n"] for r in recs]) * 1000.0
    f_dft = np.concatenate([r["f_dft"].ravel() for r in recs])
    m: dict = {
        "frames": len(recs),
        "evaluated": len(ok),
        "atoms": int(sum(r["n"] for r in recs)),
        "missing_species": sorted({s for r in recs for s in r["missing"]}),
        "baseline_energy_mae_meV_atom": float(np.mean(np.abs(e_base))),
        "baseline_force_rmse_ev_A": float(np.sqrt(np.mean(f_dft**2))),
    }
    if ok:
        de = np.array([(r["e_model"] - r["e_dft"]) / r["n"] for r in ok]) * 1000.0
        df = np.concatenate([(r["f_model"] - r["f_dft"]).ravel() for r in ok])
        f_ok = np.concatenate([r["f_dft"].ravel() for r in ok])
        e_base_ok = np.array([(r["e_base"] - r["e_dft"]) / r["n"] for r in ok]) * 1000.0
        m.update(
            energy_mae_meV_atom=float(np.mean(np.abs(de))),
            force_rmse_ev_A=float(np.sqrt(np.mean(df**2))),
            force_mae_ev_A=float(np.mean(np.abs(df))),
            energy_mae_ratio=float(np.mean(np.abs(de)) / max(np.mean(np.abs(e_base_ok)), 1e-9)),
            force_rmse_ratio=float(np.sqrt(np.mean(df**2)) / max(np.sqrt(np.mean(f_ok**2)), 1e-9)),
        )
    return m


def judge(name: str, m: dict, b: Bounds) -> list[str]:
    """Reasons class `name` FAILs (empty: PASS). Frames with species unknown to the model
    are one reason; the bounds are judged on the frames it could evaluate."""
    if m["frames"] == 0:
        return [f"{name}: no held-out frame"]
    out = []
    if m["missing_species"]:
        out.append(
            f"{name}: {m['frames'] - m['evaluated']} of {m['frames']} held-out frames hold "
            f"species the model does not know ({', '.join(m['missing_species'])})"
        )
    if not m["evaluated"]:
        return out
    on = f" (on the {m['evaluated']} frames it can evaluate)" if m["missing_species"] else ""
    checks = [
        ("force_rmse_ratio", b.force_rmse_ratio_max, "force RMSE / zero-force RMSE"),
        ("energy_mae_ratio", b.energy_mae_ratio_max, "energy MAE / per-species-mean MAE"),
        ("force_rmse_ev_A", b.force_rmse_max_ev_A, "force RMSE (eV/Å)"),
        ("energy_mae_meV_atom", b.energy_mae_max_meV_atom, "energy MAE (meV/atom)"),
    ]
    out += [
        f"{name}: {label} {m[k]:.3g} > {bound:g}{on}" for k, bound, label in checks if m[k] > bound
    ]
    return out


def parity(recs: list[dict], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    ok = [r for r in recs if r["e_model"] is not None]
    by = defaultdict(list)
    for r in ok:
        by[r["env_class"]].append(r)
    figs = []
    for what in ("energy", "forces"):
        fig, ax = plt.subplots(figsize=(4.6, 4.4))
        for c, rs in sorted(by.items()):
            if what == "energy":
                x = [r["e_dft"] / r["n"] for r in rs]
                y = [r["e_model"] / r["n"] for r in rs]
            else:
                x = np.concatenate([r["f_dft"].ravel() for r in rs])
                y = np.concatenate([r["f_model"].ravel() for r in rs])
            ax.scatter(x, y, s=8 if what == "forces" else 30, alpha=0.6, label=c)
        lim = ax.get_xlim()
        ax.plot(lim, lim, "k--", lw=0.8)
        unit = "eV/atom" if what == "energy" else "eV/Å"
        ax.set_xlabel(f"DFT {what} ({unit})")
        ax.set_ylabel(f"model {what} ({unit})")
        ax.set_title(f"held-out {what} parity", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"parity_{what}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figs.append(str(path))
    return figs


def run_stability(p: dict, known: set[str], r_max: float, type_names: list[str]) -> dict:
    missing = sorted(BULK_SPECIES - known)
    if missing:
        return {"stable": False, "reasons": [
            f"stability: not run, the model does not know {', '.join(missing)} (bulk LLZO)"
        ]}  # fmt: skip
    s = Stability.model_validate(p["stability"])
    backend = p.get("backend", "allegro")
    rec = stability.run(p["model"], type_names, r_max, s, device=p["device"], backend=backend)
    rec["reasons"] = [f"stability: {r}" for r in rec["reasons"]]
    return rec


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    t0 = time.perf_counter()
    card = modelcard.load(Path(p["model_manifest"]))
    known = set(card.type_names)
    bounds = Bounds.model_validate(p["bounds"])
    train, held = read(p["train"], index=":"), read(p["held_out"], index=":")
    mu = energyref.fit(train, p["species"])
    backend = p.get("backend", "allegro")  # absent in parameters written before DeePMD
    recs = evaluate(held, predictor(backend, p["model"], p["device"]), mu, known)
    classes = {c: metrics([r for r in recs if r["env_class"] == c]) for c in p["classes"]}
    families = {
        f: metrics([r for r in recs if r["family"] == f])
        for f in sorted({r["family"] for r in recs})
    }
    reasons = [x for c, m in classes.items() for x in judge(c, m, bounds)]
    stab = run_stability(p, known, card.r_max_angstrom, list(card.type_names))
    reasons += stab["reasons"]
    doc = {
        "schema": SCHEMA,
        "verdict": "FAIL" if reasons else "PASS",
        "reasons": reasons,
        "model": p["model"],
        "backend": backend,
        "held_out": p["held_out"],
        "model_type_names": list(card.type_names),
        "bounds": bounds.model_dump(),
        "classes": classes,
        "families": families,
        "baseline": {
            "species_energies_ev": mu.mu_ev,
            "rank": mu.rank,
            "train_rmse_meV_atom": mu.rmse_ev_per_atom * 1000.0,
            "fitted_on": p["train"],
        },  # fmt: skip
        "stability": stab,
        "frames": frame_errors(recs),
        "figures": parity(recs, Path("figures")),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    Path("validation.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"validation: {doc['verdict']}" + "".join(f"\n  {r}" for r in reasons))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
