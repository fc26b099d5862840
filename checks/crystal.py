"""Γ measured against a single crystal, and the boundary run beside its boundary-free control.

In a closed cell Γ = Σ (rho_i - rho_bulk) dz is fixed by the Li count once rho_bulk is
the cell's own interior: the in-cell Γ cannot tell a Li-rich boundary from a thin
grain. Measured Γ needs a bulk density from elsewhere: a single crystal of the same
composition at the same temperature (its whole-cell mean Li density, rho_sc). Then

    Γ_k(sc) = Σ_{bins near plane k} (rho_i - rho_sc) dz
            = Γ_k(cell) + n_k dz (rho_bulk - rho_sc)      (n_k bins nearer k, < d_bulk)

Standard errors come from replicates of each run: the seeds of an aggregate
(checks.aggregate `seeds.values`) when there are several, else the blocks of one run
(`profile_se.values`, checks.blocks). The crystal is an independent run, so its
variance adds. Two numbers "agree within k standard errors" when
|a - b| <= k sqrt(se_a^2 + se_b^2); k = K_SE = 2 (about a 95 % test) unless stated.

Functions:
- estimate(doc, key): value, SE and where the SE came from;
- gamma_vs_crystal(doc, crystal): Γ per GB and mean, in-cell and against rho_sc;
- interior_vs_crystal(doc, crystal): rho_bulk vs rho_sc (is the grain interior bulk?);
- control_table(control, boundary): every profile metric side by side with the difference;
- control_checks(control): band ratio in [0.9, 1.1] and |Γ| within 2 SE of zero;
- section(doc, crystal, control): the `reference_runs` block of results.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from checks.blocks import sem
from checks.profile import EPS_A, PER_A2_TO_PER_NM2, min_image

K_SE = 2.0
BAND_RATIO_CONTROL = (0.9, 1.1)
PROFILE_KEYS = (  # (results key, label, unit)
    ("rho_bulk_per_A3", "rho_bulk", "Li/Å³"),
    ("rho_peak_per_A3", "rho_peak", "Li/Å³"),
    ("peak_ratio", "peak ratio", "1"),
    ("rho_band_per_A3", "rho_band", "Li/Å³"),
    ("band_ratio", "band ratio", "1"),
    ("gamma_per_nm2.mean", "Γ (in cell)", "Li/nm²"),
)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    se: float | None
    source: str  # "seeds (n=5)", "blocks (n=5)" or "none"

    def as_dict(self) -> dict:
        return {"value": self.value, "se": self.se, "se_from": self.source}


CELL = "rho_cell_per_A3"  # the whole-cell mean Li density (profile_se)


def replicates(doc: dict, key: str) -> tuple[list[float] | None, str]:
    """Per-replicate values of a profile metric: seeds of an aggregate, else blocks."""
    seeds = (doc.get("seeds") or {}).get("values") or {}
    path = f"profile_se.{CELL}" if key == CELL else key
    if path in seeds and len(seeds[path]) > 1:
        return list(seeds[path]), f"seeds (n={len(seeds[path])})"
    blocks = doc.get("profile_se") or {}
    vals = (blocks.get("values") or {}).get(key)
    if key == CELL and blocks.get("rho_li_per_A3"):
        vals = [float(np.mean(r)) for r in blocks["rho_li_per_A3"]]
    if vals and len(vals) > 1:
        return list(vals), f"blocks (n={len(vals)})"
    return None, "none"


def _value(doc: dict, key: str) -> float | None:
    node = doc
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def estimate(doc: dict, key: str) -> Estimate:
    """Value of `key` (a results path, or CELL: the whole-cell mean density) and its SE."""
    value = _value(doc, key)
    if key == CELL:  # the mean over all bins is the whole-cell density
        value = float(np.mean(doc["profile"]["rho_li_per_A3"]))
    reps, source = replicates(doc, key)
    return Estimate(value, sem(reps) if reps else None, source)


def agree(a: Estimate, b: Estimate, k: float = K_SE) -> dict:
    """Difference a - b, its SE, z, and whether |a - b| <= k combined SE."""
    if a.value is None or b.value is None:
        return {"difference": None, "se": None, "z": None, "agree": None}
    diff = a.value - b.value
    se = math.hypot(a.se or 0.0, b.se or 0.0) if (a.se is not None or b.se is not None) else None
    z = diff / se if se else None
    return {"difference": diff, "se": se, "z": z, "agree": None if z is None else abs(z) <= k}


def near_bins(doc: dict) -> list[int]:
    """Number of profile bins nearer each GB plane than the other and < d_bulk from it."""
    z = np.asarray(doc["profile"]["z_A"])
    lz, planes, d_bulk = doc["box_A"][2], doc["gb_planes_A"], doc["parameters"]["d_bulk_A"]
    d = [min_image(z - zk, lz) for zk in planes]
    return [int(((d[k] < d[1 - k]) & (d[k] < d_bulk - EPS_A)).sum()) for k in (0, 1)]


def gamma_vs_crystal(doc: dict, crystal: dict) -> dict:
    """Γ per GB and mean: in-cell and against the single-crystal density, with SEs."""
    sc = estimate(crystal, CELL)
    dz = doc["profile"].get("dz_A") or doc["parameters"]["dz_A"]
    n_near = near_bins(doc)
    bulk_reps, source = replicates(doc, "rho_bulk_per_A3")
    out = {"rho_sc": sc.as_dict(), "per_gb": []}
    for k in (0, 1):
        cell = estimate(doc, f"gamma_per_nm2.per_gb.{k}")
        scale = n_near[k] * dz * PER_A2_TO_PER_NM2
        g_reps, _ = replicates(doc, f"gamma_per_nm2.per_gb.{k}")
        integral = (  # Σ rho dz near plane k, per replicate: its SE excludes rho_sc's
            [g + scale * b for g, b in zip(g_reps, bulk_reps, strict=True)]
            if g_reps and bulk_reps
            else None
        )
        value = None
        if cell.value is not None and sc.value is not None:
            rho_bulk = _value(doc, "rho_bulk_per_A3")
            value = cell.value + scale * (rho_bulk - sc.value)
        se_int = sem(integral) if integral else None
        se = math.hypot(se_int, scale * sc.se) if se_int is not None and sc.se is not None else None
        vs = Estimate(value, se, source)
        out["per_gb"].append({"in_cell": cell.as_dict(), "vs_crystal": vs.as_dict(),
                              "n_bins": n_near[k]})  # fmt: skip
    cell = estimate(doc, "gamma_per_nm2.mean")
    vals = [g["vs_crystal"]["value"] for g in out["per_gb"]]
    ses = [g["vs_crystal"]["se"] for g in out["per_gb"]]
    mean_vs = Estimate(
        float(np.mean(vals)) if None not in vals else None,
        0.5 * math.hypot(*ses) if None not in ses else None,  # the two planes' integrals
        source,  # are of disjoint bins; their errors are treated as independent
    )
    out["mean"] = {"in_cell": cell.as_dict(), "vs_crystal": mean_vs.as_dict(),
                   "vs_crystal_minus_in_cell": agree(mean_vs, cell)}  # fmt: skip
    return out


def interior_vs_crystal(doc: dict, crystal: dict, k: float = K_SE) -> dict:
    """Is the grain interior bulk? rho_bulk of the boundary run against rho_sc."""
    a, b = estimate(doc, "rho_bulk_per_A3"), estimate(crystal, CELL)
    return {"rho_bulk": a.as_dict(), "rho_sc": b.as_dict(), "k": k} | agree(a, b, k)


def control_table(control: dict, boundary: dict, k: float = K_SE) -> list[dict]:
    """Every profile metric of the control and the boundary run, with the difference."""
    rows = []
    for key, label, unit in PROFILE_KEYS:
        c, b = estimate(control, key), estimate(boundary, key)
        rows.append({"quantity": key, "label": label, "unit": unit, "control": c.as_dict(),
                     "boundary": b.as_dict()} | agree(b, c, k))  # fmt: skip
    return rows


def control_checks(control: dict, k: float = K_SE) -> dict:
    """The boundary-free control must look boundary-free: band ratio within
    BAND_RATIO_CONTROL and |Γ| within k SE of zero."""
    br = estimate(control, "band_ratio")
    g = estimate(control, "gamma_per_nm2.mean")
    lo, hi = BAND_RATIO_CONTROL
    band_ok = None if br.value is None else lo <= br.value <= hi
    gamma_ok = None if g.value is None or g.se is None else abs(g.value) <= k * g.se
    return {"band_ratio": br.as_dict() | {"range": [lo, hi], "ok": band_ok},
            "gamma": g.as_dict() | {"k": k, "ok": gamma_ok}}  # fmt: skip


def section(doc: dict, crystal: dict | None = None, control: dict | None = None) -> dict | None:
    """The `reference_runs` block of results.json (checks.extras.REFERENCE_RUNS)."""
    if crystal is None and control is None:
        return None
    out: dict = {"k_se": K_SE}
    if crystal is not None:
        out["gamma"] = gamma_vs_crystal(doc, crystal)
        out["interior_vs_crystal"] = interior_vs_crystal(doc, crystal)
    if control is not None:
        out["control_table"] = control_table(control, doc)
        out["control_checks"] = control_checks(control)
    return out
