"""Step `dataset`: seeded train/val/test split of the DFT frames + statistics (stats.json).

Statistics are in eV, Å, eV/Å³: per-atom energy mean/std, force-component RMS per
species, largest force, stress range, shortest interatomic distance.
"""

from __future__ import annotations

import json

import numpy as np
from ase.io import read, write
from ase.neighborlist import neighbor_list

from runbook.steps import params


def split(n: int, val: float, test: float, seed: int) -> dict[str, list[int]]:
    """Shuffled indices; val and test get at least one frame each when n >= 3."""
    idx = np.random.default_rng(seed).permutation(n).tolist()
    n_val = max(1, round(val * n)) if n >= 3 else 0
    n_test = max(1, round(test * n)) if n >= 3 and test > 0 else 0
    return {
        "val": sorted(idx[:n_val]),
        "test": sorted(idx[n_val : n_val + n_test]),
        "train": sorted(idx[n_val + n_test :]),
    }


def statistics(frames) -> dict:
    epa = np.array([a.get_potential_energy() / len(a) for a in frames])
    forces = np.concatenate([a.get_forces() for a in frames])
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    stress = np.array([a.get_stress(voigt=False) for a in frames])
    dmin = min(float(neighbor_list("d", a, 4.0).min()) for a in frames)
    return {
        "n_frames": len(frames),
        "n_atoms": int(len(symbols)),
        "species_counts": {s: int((symbols == s).sum()) for s in sorted(set(symbols))},
        "energy_per_atom_ev": {"mean": float(epa.mean()), "std": float(epa.std())},
        "force_rms_ev_a": {
            s: float(np.sqrt((forces[symbols == s] ** 2).mean())) for s in sorted(set(symbols))
        },
        "force_max_ev_a": float(np.abs(forces).max()),
        "stress_ev_a3": {"min": float(stress.min()), "max": float(stress.max())},
        "min_distance_a": dmin,
    }


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    frames = read(p["source"], index=":")
    parts = split(len(frames), p["val_fraction"], p["test_fraction"], p["seed"])
    stats = {"split": {k: len(v) for k, v in parts.items()}, "all": statistics(frames)}
    for name, idx in parts.items():
        if idx:
            write(f"{name}.extxyz", [frames[i] for i in idx], format="extxyz")
            stats[name] = statistics([frames[i] for i in idx])
    stats["indices"] = parts
    with open("stats.json", "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    print(json.dumps(stats["split"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
