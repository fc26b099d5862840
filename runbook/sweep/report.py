"""The sweep report as markdown and figures (pure: a sweep-report/1 document in)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from runbook.sweep.stats import KB_EV_PER_K


def _pm(s: dict, fmt: str = ".4g") -> str:
    if s["mean"] is None:
        return "—"
    text = format(s["mean"], fmt)
    return f"{text} ± {format(s['se'], '.2g')}" if s["se"] is not None else f"{text} (n=1)"


def figures(doc: dict, out: Path) -> list[Path]:
    """arrhenius.png (ln D vs 1000/T with the fits) and bands_vs_w.png (Γ_w and enrichment
    vs w per temperature), error bars = standard errors across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fits = {k: v for k, v in doc["arrhenius"].items() if v}
    if fits:
        fig, ax = plt.subplots(figsize=(5, 4))
        for key, fit in fits.items():
            t = np.array([p["T_K"] for p in fit["points"]])
            d = np.array([p["D"] for p in fit["points"]])
            err = np.array([p["D_se"] or 0.0 for p in fit["points"]])
            line = ax.errorbar(1000 / t, d, yerr=err, fmt="o", label=key.removesuffix("_cm2_s"))
            tt = np.linspace(t.min(), t.max(), 50)
            ax.plot(1000 / tt, np.exp(fit["ln_D0"] - fit["Ea_eV"] / (KB_EV_PER_K * tt)),
                    color=line[0].get_color())  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("D (cm²/s)")
        ax.legend()
        path = out / "arrhenius.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    if len(doc["band_widths_A"]) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for t in sorted({g["T_K"] for g in doc["groups"]}, key=lambda x: (x is None, x)):
            gs = [g for g in doc["groups"] if g["T_K"] == t]
            w = [g["w_A"] for g in gs]
            for ax, key in zip(axes, ("gamma_within_w_per_nm2", "enrichment"), strict=True):
                m = [g["stats"][key]["mean"] for g in gs]
                e = [g["stats"][key]["se"] or 0.0 for g in gs]
                if all(v is not None for v in m):
                    ax.errorbar(w, m, yerr=e, fmt="o-", label=f"{_t(t)} K")
        axes[0].set_ylabel("Γ_w (Li/nm²)")
        axes[1].set_ylabel("enrichment")
        for ax in axes:
            ax.set_xlabel("w (Å)")
            ax.legend()
        path = out / "bands_vs_w.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _t(t: float | None) -> str:
    return "—" if t is None else f"{t:g}"


def report_md(doc: dict) -> str:
    """The sweep report as markdown: tables per T and w, then the Arrhenius fits."""
    lines = [
        "# Sweep report",
        "",
        f"Seeds {doc['seeds']}, temperatures {doc['temperatures_K'] or ['(study)']} K, "
        f"band widths {doc['band_widths_A']} Å. Values are mean ± standard error across seeds.",
        "",
        "## Grain-boundary Li: Γ and enrichment as functions of w",
        "",
        "| T (K) | w (Å) | seeds | Γ (Li/nm²) | Γ_w (Li/nm²) | band ratio | enrichment | "
        "n_gb (excess) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in doc["groups"]:
        s = g["stats"]
        lines.append(
            f"| {_t(g['T_K'])} | {g['w_A']:g} | {g['n_seeds']} | "
            f"{_pm(s['gamma_per_nm2'])} | {_pm(s['gamma_within_w_per_nm2'])} | "
            f"{_pm(s['band_ratio'])} | {_pm(s['enrichment'])} | {_pm(s['excess_gb_mean'])} |"
        )
    lines += ["", "## Diffusion", "", "| T (K) | D_all (cm²/s) | D_gb_start | D_bulk_start |"]
    lines.append("|---|---|---|---|")
    w0 = doc["band_widths_A"][0] if doc["band_widths_A"] else None
    for g in doc["groups"]:
        if g["w_A"] != w0:
            continue
        s = g["stats"]
        lines.append(
            f"| {_t(g['T_K'])} | {_pm(s['D_all_cm2_s'], '.3e')} | "
            f"{_pm(s['D_gb_start_cm2_s'], '.3e')} | {_pm(s['D_bulk_start_cm2_s'], '.3e')} |"
        )
    lines += ["", "## Arrhenius fits ln D = ln D0 − Ea/(kB T)", ""]
    for key, fit in doc["arrhenius"].items():
        if not fit:
            lines.append(f"- {key}: no fit (needs ≥ 2 temperatures with D > 0)")
            continue
        ea = f"{fit['Ea_eV']:.3f}" + (
            f" ± {fit['Ea_se_eV']:.3f}" if fit["Ea_se_eV"] is not None else " (no uncertainty)"
        )
        d0 = math.exp(fit["ln_D0"])
        how = "weighted by seed SEs" if fit["weighted"] else "unweighted"
        chi = f", χ²/dof {fit['chi2_per_dof']:.2f}" if fit["chi2_per_dof"] is not None else ""
        lines.append(
            f"- {key}: Ea = {ea} eV, D0 = {d0:.3e} cm²/s, {len(fit['points'])} temperatures, "
            f"dof {fit['dof']} ({how}{chi})"
        )
    lines += verdict_lines(doc.get("verdicts") or {})
    return "\n".join(lines) + "\n"


def verdict_lines(verdicts: dict[str, dict[str, str]]) -> list[str]:
    """The check verdict of every point (one row per point and check stage)."""
    if not any(verdicts.values()):
        return []
    lines = ["", "## Checks of each point", "", "| point | check | verdict |", "|---|---|---|"]
    for point, by_stage in verdicts.items():
        lines += [f"| {point} | {stage} | {v} |" for stage, v in by_stage.items()]
    failed = sum(v == "FAIL" for by_stage in verdicts.values() for v in by_stage.values())
    lines += ["", f"{failed} check(s) FAILED." if failed else "Every check PASSED."]
    return lines
