"""Step `select`: the frames pw.x will label, chosen in descriptor space.

    python -m runbook.potential.choose select.json

Reads the candidates (extxyz with `env_class`), computes the pooled symmetry functions
(runbook.potential.descriptors), PCA + farthest-point sampling with per-class quotas
(runbook.potential.selection), and writes:
- structures.extxyz: the selected frames in the order picked (info kept, plus
  `selected_rank`), the file the `dft` stage labels;
- selection.json: the rule and every parameter, the explained variance, per class the
  quota / candidates / selected / shortfall, the candidate index of each pick, timings;
- selection.png: PC1-PC2 of every candidate (global PCA) and of each class in its own
  PCA (the space the rule samples), coloured by class, the selected ringed.
An empty selection exits 3 with one line naming the quota.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import numpy as np
from ase.io import read, write

from runbook.potential import descriptors, selection
from runbook.potential.config import Descriptor
from runbook.steps import params

SCHEMA = "potential-selection/1"
RULE = (
    "pooled element-resolved Behler-Parrinello G2/G3 per structure (mean over atoms of "
    "each central species); per environment class: standardised -> PCA (fewest PCs "
    "explaining `variance`, at most `max_components`) -> farthest-point sampling of "
    "`quota` frames from the candidate nearest the class centroid"
)
COLOURS = {"bulk": "tab:blue", "gb": "tab:red", "related": "tab:green", "excess_li": "tab:orange"}


def symmetry_functions(species: list[str], d: Descriptor) -> descriptors.SymmetryFunctions:
    return descriptors.SymmetryFunctions(
        species=tuple(species), rc_radial=d.rc_radial_A, rc_angular=d.rc_angular_A,
        eta_radial=tuple(d.eta_radial), eta_angular=tuple(d.eta_angular),
        zeta=tuple(d.zeta), lambdas=tuple(d.lambdas),
    )  # fmt: skip


def _panel(ax, xy: np.ndarray, classes: np.ndarray, picked: np.ndarray, title: str) -> None:
    for c in sorted(set(classes.tolist())):
        m = classes == c
        ax.scatter(xy[m, 0], xy[m, 1], s=12, c=COLOURS.get(c, "grey"), alpha=0.5, label=c)
    ax.scatter(xy[picked, 0], xy[picked, 1], s=60, facecolors="none", edgecolors="k",
               linewidths=1.1, label="selected")  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC1", fontsize=8)
    ax.set_ylabel("PC2", fontsize=8)


def figure(glob: np.ndarray, sel: selection.Selection, classes: list[str], path: str) -> None:
    """Global PCA (left) and each class in its own PCA (the space the rule samples)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.array(classes)
    picked = np.zeros(len(classes), bool)
    picked[sel.chosen] = True
    names = sorted(sel.coords)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(3.6 * (1 + len(names)), 3.6))
    axes = np.atleast_1d(axes)
    _panel(axes[0], _xy(glob), labels, picked, "all candidates (global PCA)")
    axes[0].legend(fontsize=7)
    for ax, c in zip(axes[1:], names, strict=True):
        idx = sel.members[c]
        _panel(ax, _xy(sel.coords[c]), labels[idx], picked[idx], f"{c}: class PCA, FPS picks")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _xy(coords: np.ndarray) -> np.ndarray:
    xy = np.zeros((len(coords), 2))
    xy[:, : min(2, coords.shape[1])] = coords[:, :2]
    return xy


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    quota = {str(k): int(v) for k, v in p["quota"].items()}
    frames = read(p["candidates"], index=":")
    classes = [str(a.info["env_class"]) for a in frames]
    if not frames or sum(min(q, classes.count(c)) for c, q in quota.items()) == 0:
        print(f"{p['candidates']}: quota: empty selection (quota {quota}, candidates "
              f"{dict(Counter(classes))}); give a class with candidates a quota > 0",
              file=sys.stderr)  # fmt: skip
        return 3
    sf = symmetry_functions(p["species"], Descriptor.model_validate(p["descriptor"]))
    t0 = time.perf_counter()
    x = np.array([descriptors.pooled(a, sf) for a in frames])
    t1 = time.perf_counter()
    sel = selection.select(x, classes, quota, p["variance"], p["max_components"])
    chosen = sel.chosen
    t2 = time.perf_counter()
    pc = selection.pca(x, 0.999, 2)  # the figure's global view
    out = []
    for rank, i in enumerate(chosen):
        a = frames[i].copy()
        a.info = {**frames[i].info, "selected_rank": rank}
        out.append(a)
    write("structures.extxyz", out, format="extxyz")
    figure(pc.coords, sel, classes, "selection.png")
    picked = Counter(classes[i] for i in chosen)
    doc = {
        "schema": SCHEMA,
        "rule": RULE,
        "parameters": {
            "species": p["species"],
            "descriptor": p["descriptor"],
            "n_features_per_structure": int(x.shape[1]),
            "variance": p["variance"],
            "max_components": p["max_components"],
        },
        "explained_variance": {c: [round(v, 5) for v in ev] for c, ev in sel.explained.items()},
        "figure_pca_explained": [round(float(v), 5) for v in pc.explained],
        "classes": {
            c: {
                "quota": quota.get(c, 0),
                "candidates": classes.count(c),
                "selected": picked[c],
                "shortfall": max(0, quota.get(c, 0) - picked[c]),
            }
            for c in sorted(set(classes) | set(quota))
        },  # fmt: skip
        "selected_candidates": [int(frames[i].info.get("candidate", i)) for i in chosen],
        "pca_coords": [[round(float(v), 5) for v in row[:2]] for row in pc.coords],
        "seconds": {"descriptors": round(t1 - t0, 3), "pca_fps": round(t2 - t1, 4)},
    }
    with open("selection.json", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    print(json.dumps(doc["classes"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
