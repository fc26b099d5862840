"""The plain-language reading of an LLZO boundary run: what is and is not supported.

In the spirit of the published study's "見えた / 見えなかった" (seen / not seen), but every
statement is generated from the numbers and their uncertainties, never written in
advance: a difference is "seen" when it exceeds K_SE combined standard errors (or when
two 95 % intervals do not overlap), "not seen" when it is within them, and "not
decided" when the run lacks what would decide it (no control, no single crystal, no
uncertainty). Each finding is (verdict, sentence); `paragraph` joins them.
"""

from __future__ import annotations

import math

from checks import crystal as cx

K_SE = cx.K_SE
SEEN, NOT_SEEN, UNDECIDED = "seen", "not seen", "not decided"


def _pm(value: float | None, se: float | None, fmt: str = ".3g") -> str:
    if value is None:
        return "n/a"
    return f"{value:{fmt}}" + (f" ± {se:.2g}" if se is not None else "")


def li_rich(res: dict, control: dict | None) -> tuple[str, str]:
    """Is the boundary band Li-rich or Li-poor compared with the same bands without it?"""
    br = cx.estimate(res, "band_ratio")
    if control is None:
        return UNDECIDED, (
            f"the ±w bands hold {_pm(br.value, br.se)} times the interior Li density, but "
            "without a boundary-free control run that number cannot be separated from what "
            "the cell's layering alone does"
        )
    row = {r["quantity"]: r for r in cx.control_table(control, res)}["band_ratio"]
    c = row["control"]
    what = "Li-rich" if (row["difference"] or 0) > 0 else "Li-poor"
    if row["agree"] is None:
        return UNDECIDED, f"band ratio {_pm(br.value, br.se)} vs control {_pm(c['value'], c['se'])}"
    verdict = NOT_SEEN if row["agree"] else SEEN
    return verdict, (
        f"a {what} boundary: the bands hold {_pm(br.value, br.se)} times the interior density "
        f"against {_pm(c['value'], c['se'])} in the same cell without a boundary "
        f"({abs(row['z']):.1f} standard errors apart)"
    )


def gamma(res: dict, crystal: dict | None) -> tuple[str, str]:
    """Γ: measured only against a single crystal; in-cell it follows from the Li count."""
    g = cx.estimate(res, "gamma_per_nm2.mean")
    if crystal is None:
        return UNDECIDED, (
            f"Γ = {_pm(g.value, g.se)} Li/nm² is measured inside the cell only: in a closed "
            "cell it follows from the Li count and the interior density, so it is not "
            "evidence of excess Li at the boundary"
        )
    vs = cx.gamma_vs_crystal(res, crystal)["mean"]["vs_crystal"]
    if vs["value"] is None or vs["se"] is None:
        return UNDECIDED, f"Γ against the single crystal = {_pm(vs['value'], vs['se'])} Li/nm²"
    z = vs["value"] / vs["se"] if vs["se"] else math.inf
    sign = "an excess" if vs["value"] > 0 else "a deficit"
    verdict = SEEN if abs(z) > K_SE else NOT_SEEN
    return verdict, (
        f"{sign} of Li at the boundary against a single crystal of the same composition: "
        f"Γ = {_pm(vs['value'], vs['se'])} Li/nm² ({abs(z):.1f} standard errors from zero)"
    )


def _fit(res: dict, name: str) -> dict | None:
    return (((res.get("diffusion_gls") or {}).get("classes") or {}).get(name) or {}).get("xyz")


def _rate(res: dict, region: str) -> dict | None:
    return ((res.get("hops") or {}).get("regions") or {}).get(region)


def diffusion(res: dict) -> tuple[str, str]:
    """Do Li that start at the boundary move faster or slower than in the grain?"""
    gb, bulk = _fit(res, "gb_start"), _fit(res, "bulk_start")
    if not gb or not bulk or gb.get("D_cm2_s") is None or bulk.get("D_cm2_s") is None:
        return UNDECIDED, "no diffusion analysis by region in this run"
    if gb["usable"] and bulk["usable"]:
        lo_g, hi_g = gb["ci95_cm2_s"]
        lo_b, hi_b = bulk["ci95_cm2_s"]
        ratio = gb["D_cm2_s"] / bulk["D_cm2_s"]
        apart = hi_g < lo_b or hi_b < lo_g
        word = "faster" if ratio > 1 else "slower"
        return (SEEN if apart else NOT_SEEN), (
            f"Li starting at the boundary diffuse {ratio:.2g} times as fast as in the grain "
            f"(95 % intervals {lo_g:.2g}-{hi_g:.2g} and {lo_b:.2g}-{hi_b:.2g} cm²/s"
            + (f": {word}" if apart else ": overlapping")
            + ")"
        )
    return _hops_reading(res, gb)


def _hops_reading(res: dict, gb: dict) -> tuple[str, str]:
    g, b = _rate(res, "gb"), _rate(res, "bulk")
    text = (
        f"Li starting in the bands barely move (MSD {gb['msd_end_A2']:.2g} Å² at the end of "
        "the fit window): no diffusion coefficient is fitted for them"
    )
    if not g or not b or not g.get("rate_ci95_per_li_ps") or not b.get("rate_ci95_per_li_ps"):
        return UNDECIDED, text
    (lo_g, hi_g), (lo_b, hi_b) = g["rate_ci95_per_li_ps"], b["rate_ci95_per_li_ps"]
    apart = hi_g < lo_b or hi_b < lo_g
    word = "less" if hi_g < lo_b else "more"
    return (SEEN if apart else NOT_SEEN), (
        text + f"; they hop {g['hops']} times in {g['li_ps']:.0f} Li-ps (95 % interval "
        f"{lo_g:.2g}-{hi_g:.2g} per Li per ps) against {lo_b:.2g}-{hi_b:.2g} in the grain "
        + (f"interior: {word} often" if apart else "interior: not distinguishable")
    )


def excess(res: dict) -> tuple[str, str]:
    """Is excess Li drawn into the boundary bands?"""
    e = res.get("excess")
    if not e:
        return UNDECIDED, "no excess-Li run"
    mean, sem, uni = e["gb_mean"], e.get("gb_sem"), e["uniform_expected"]
    if mean == 0:
        return NOT_SEEN, (
            f"excess Li drawn into the bands: none of the {res.get('n_excess')} inserted Li "
            f"entered them in the averaging window (uniform expectation {uni:.3g})"
        )
    if not sem:
        return UNDECIDED, f"enrichment {mean / uni:.3g} without a standard error"
    z = (mean - uni) / sem
    word = "drawn in" if z > 0 else "kept out"
    return (SEEN if abs(z) > K_SE else NOT_SEEN), (
        f"excess Li {word}: enrichment {mean / uni:.3g} ± {sem / uni:.2g} "
        f"({abs(z):.1f} standard errors from a uniform spread)"
    )


def occupancy(res: dict) -> tuple[str, str] | None:
    s = res.get("li_sites")
    if not s:
        return None
    parts = []
    for region in ("interior", "boundary"):
        occ = s["regions"][region]["occupancy"]
        parts.append(
            f"{region} " + ", ".join(f"{k} {v:.2f}" for k, v in occ.items() if v is not None)
        )
    return UNDECIDED, (
        "site occupancies " + "; ".join(parts) + f"; {100 * s['unassigned_fraction']:.1f} % "
        "of Li-frames on no candidate site (numbers only: no uncertainty is estimated)"
    )


def findings(res: dict, control: dict | None = None, crystal: dict | None = None):
    out = [li_rich(res, control), gamma(res, crystal), diffusion(res), excess(res)]
    occ = occupancy(res)
    return out + ([occ] if occ else [])


def paragraph(res: dict, control: dict | None = None, crystal: dict | None = None) -> str:
    """One paragraph: Seen / Not seen / Not decided, each with its numbers."""
    groups: dict[str, list[str]] = {SEEN: [], NOT_SEEN: [], UNDECIDED: []}
    for verdict, text in findings(res, control, crystal):
        groups[verdict].append(text)
    labels = {SEEN: "Seen (見えた)", NOT_SEEN: "Not seen (見えなかった)", UNDECIDED: "Not decided"}
    parts = [f"**{labels[v]}:** " + "; ".join(t) + "." for v, t in groups.items() if t]
    rule = (
        f"(Seen: beyond {K_SE:g} standard errors, or 95 % intervals apart; generated from "
        "this run's numbers."
    )
    if cx.estimate(res, "band_ratio").source.startswith("blocks"):
        rule += (
            " The profile standard errors come from blocks of one trajectory: they miss the "
            "scatter between starting structures, which the seeds of a sweep measure."
        )
    return " ".join(parts) + " " + rule + ")"
