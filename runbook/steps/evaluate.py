"""Step `evaluate`: the compiled model (ASE target) against held-out DFT frames.

Writes evaluation.json: per-atom energy MAE (eV/atom), force MAE and RMSE (eV/Å),
stress MAE (eV/Å³), plus the force pairs for the report's parity plot.
"""

from __future__ import annotations

import json
import time

import numpy as np
from ase.io import read

from runbook.steps import params


def load_calculator(path: str, device: str = "cpu"):
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator.from_compiled_model(path, device=device)


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    frames = read(p["frames"], index=":")
    calc = load_calculator(p["model"])
    de, df, ds, pairs = [], [], [], []
    t0 = time.perf_counter()
    for ref in frames:
        a = ref.copy()
        a.calc = calc
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=False)
        de.append((e - ref.get_potential_energy()) / len(a))
        df.append((f - ref.get_forces()).ravel())
        ds.append((s - ref.get_stress(voigt=False)).ravel())
        pairs += list(zip(ref.get_forces().ravel().tolist(), f.ravel().tolist(), strict=True))
    df_all, ds_all = np.concatenate(df), np.concatenate(ds)
    out = {
        "frames": p["frames"],
        "n_frames": len(frames),
        "energy_per_atom_mae_ev": float(np.mean(np.abs(de))),
        "force_mae_ev_a": float(np.mean(np.abs(df_all))),
        "force_rmse_ev_a": float(np.sqrt(np.mean(df_all**2))),
        "stress_mae_ev_a3": float(np.mean(np.abs(ds_all))),
        "seconds_per_frame": (time.perf_counter() - t0) / max(1, len(frames)),
        "force_pairs_dft_model": pairs,
    }
    with open("evaluation.json", "w") as f:
        json.dump(out, f, indent=1)
    print({k: v for k, v in out.items() if k != "force_pairs_dft_model"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
