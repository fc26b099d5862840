"""Step `dataset`: seeded train/val/test split of the DFT frames + statistics (stats.json).

Statistics are in eV, Å, eV/Å³: per-atom energy mean/std, force-component RMS per
species, largest force, stress range, shortest interatomic distance.

`stratify_by` (an info key, e.g. `env_class`) splits each group of frames separately:
a group of n >= 2 frames gives at least one to test (held out) and keeps at least one
for training; val takes a share of each group that can spare it, and at least one frame
overall (from the largest group). A group of one frame cannot be split: an error names
it (the selection must give every class two frames or more).
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


def stratified_split(groups: list[str], val: float, test: float, seed: int) -> dict[str, list[int]]:
    """`split` within each group (keys sorted); see the module docstring."""
    out: dict[str, list[int]] = {"val": [], "test": [], "train": []}
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    sizes = {g: groups.count(g) for g in names}
    small = [g for g in names if sizes[g] < 2]
    if small:
        raise ValueError(
            f"group(s) {', '.join(small)} hold a single frame: no train/held-out split "
            "possible; select at least 2 frames of every class"
        )
    for g in names:
        idx = rng.permutation([i for i, x in enumerate(groups) if x == g]).tolist()
        n = len(idx)
        n_test = max(1, round(test * n)) if test > 0 else 0
        n_val = min(round(val * n), n - n_test - 1)
        out["test"] += idx[:n_test]
        out["val"] += idx[n_test : n_test + max(0, n_val)]
        out["train"] += idx[n_test + max(0, n_val) :]
    if not out["val"]:  # the largest group spares one training frame for validation
        g = max(names, key=lambda k: (sizes[k], k))
        cand = [i for i in out["train"] if groups[i] == g]
        if len(cand) > 1:
            out["train"].remove(cand[0])
            out["val"].append(cand[0])
    return {k: sorted(v) for k, v in out.items()}


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
    key = p.get("stratify_by")
    if key:
        missing = [i for i, a in enumerate(frames) if key not in a.info]
        if missing:
            raise SystemExit(f"{p['source']}: frames {missing[:5]} carry no info `{key}`")
        groups = [str(a.info[key]) for a in frames]
        try:
            parts = stratified_split(groups, p["val_fraction"], p["test_fraction"], p["seed"])
        except ValueError as e:
            raise SystemExit(f"{p['source']}: {e}") from None
    else:
        parts = split(len(frames), p["val_fraction"], p["test_fraction"], p["seed"])
    stats = {"split": {k: len(v) for k, v in parts.items()}, "all": statistics(frames)}
    if key:
        stats["stratified_by"] = key
        stats["groups"] = {
            name: {g: sum(1 for i in idx if groups[i] == g) for g in sorted(set(groups))}
            for name, idx in parts.items()
        }
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
