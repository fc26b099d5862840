"""Several independent runs (seeds) of one analysis → one results document.

Every number of the `gb-analysis/1` document becomes the mean over the runs, under the
same key (so `bundle check` judges an aggregate like a single run); lists of numbers of
the same length are averaged element by element (profiles, MSD curves, series). A
section that is null in any run is null. The `seeds` block carries, per scalar path,
the values of every run and the standard error of their mean (std ddof=1 / sqrt(n)).
Per-GB lists are aligned on the first run's planes first. The runs must share their
analysis parameters (else InputError naming the difference).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from bundle.core.errors import InputError
from checks.results import load_results

_SKIP = ("schema", "parameters", "seeds")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _merge(nodes: list[Any], path: str, values: dict, sem: dict) -> Any:
    if any(n is None for n in nodes):
        return None
    first = nodes[0]
    if _is_number(first) and all(_is_number(n) for n in nodes):
        xs = [float(n) for n in nodes]
        values[path] = xs
        sem[path] = float(np.std(xs, ddof=1) / math.sqrt(len(xs))) if len(xs) > 1 else None
        return float(np.mean(xs))
    if isinstance(first, dict) and all(isinstance(n, dict) for n in nodes):
        keys = [k for k in first if all(k in n for n in nodes)]
        return {
            k: _merge([n[k] for n in nodes], f"{path}.{k}".lstrip("."), values, sem) for k in keys
        }
    if isinstance(first, list) and all(isinstance(n, list) and len(n) == len(first) for n in nodes):
        if len(first) <= 4:  # short vectors (per GB, planes, box, windows): keep their paths
            return [
                _merge([n[i] for n in nodes], f"{path}.{i}", values, sem) for i in range(len(first))
            ]
        try:
            arr = np.array(nodes, dtype=float)  # None (no data at a lag) becomes nan
        except (TypeError, ValueError):
            return None
        mean = np.nanmean(arr, axis=0) if np.isfinite(arr).any() else arr[0]
        return _finite_lists(mean)
    return None  # lists of different lengths (other trajectory lengths) do not average


def _finite_lists(a: np.ndarray) -> list:
    """Nested lists of floats (None for NaN) of an array of any rank (e.g. block profiles)."""
    if a.ndim > 1:
        return [_finite_lists(row) for row in a]
    return [None if not math.isfinite(x) else float(x) for x in a]


PER_GB = (
    "gb_planes_A",
    "gamma_per_nm2.per_gb",
    "excess.per_gb_mean",
    "excess.per_gb_std",
    "excess.series.n_per_gb",
)


def _aligned(doc: dict, planes: list[float]) -> dict:
    """`doc` with its per-GB lists swapped when its first plane is the reference's second
    (z0 is the higher Li peak, which may be either GB from one run to the next)."""
    lz = doc["box_A"][2]
    z0 = doc["gb_planes_A"][0]
    d = [abs((z0 - p + lz / 2) % lz - lz / 2) for p in planes]
    if d[0] <= d[1]:
        return doc
    doc = copy.deepcopy(doc)
    for key in PER_GB:
        *parents, last = key.split(".")
        node = doc
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), list):
            node[last] = node[last][::-1]
    return doc


def aggregate(docs: list[dict], sources: list[str]) -> dict:
    """One document: means under the original keys, plus a `seeds` block."""
    if len(docs) < 2:
        raise InputError(", ".join(sources) or "(none)", "results", "need at least two runs")
    ref = docs[0]["parameters"]
    for doc, src in zip(docs[1:], sources[1:], strict=True):
        for key in (
            "dz_A",
            "w_A",
            "d_bulk_A",
            "timestep_fs",
            "avg_window_ps",
            "w_start_A",
            "origin_every",
            "fit_window_ps",
            "include_excess",
            "n_blocks",
        ):
            if doc["parameters"].get(key) != ref.get(key):
                raise InputError(
                    src,
                    f"parameters.{key}",
                    f"{doc['parameters'].get(key)!r} differs from {ref.get(key)!r} in {sources[0]}",
                    "aggregate only runs analysed with the same parameters",
                )
    docs = [docs[0]] + [_aligned(d, docs[0]["gb_planes_A"]) for d in docs[1:]]
    values: dict[str, list[float]] = {}
    sem: dict[str, float | None] = {}
    out: dict[str, Any] = {"schema": docs[0]["schema"], "parameters": ref}
    for key in docs[0]:
        if key not in _SKIP:
            out[key] = _merge([d.get(key) for d in docs], key, values, sem)
    out["seeds"] = {"n": len(docs), "sources": list(sources), "sem": sem, "values": values}
    return out


def aggregate_files(paths: list[Path]) -> dict:
    return aggregate([load_results(p) for p in paths], [str(p) for p in paths])
