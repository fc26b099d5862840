"""The li-diffusion report: report.md with the MSD and Arrhenius figures.

python -m runbook.lidiff.report report.json   (in the report stage folder)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from runbook.sweep.stats import KB_EV_PER_K


def _g(x, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def figures(r: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps = r["temperatures"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for v in sorted(temps.values(), key=lambda v: v["T_K"]):
        m = v["msd"]
        style = "-" if v["diffusive"] else ":"
        ax.plot(m["t_ps"], m["msd_A2"], style, label=f"{v['T_K']:g} K")
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("Li MSD (Å²)")
    ax.legend(fontsize=7, title="dotted: not yet diffusive", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "msd.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    xs = [1000.0 / v["T_K"] for v in temps.values()]
    ys = [v["D_cm2_s"] for v in temps.values()]
    es = [v["D_se_cm2_s"] or 0.0 for v in temps.values()]
    ax.errorbar(xs, ys, yerr=es, fmt="o", capsize=3, label="D(T), mean ± SE")
    a = r.get("arrhenius") or {}
    if "Ea_eV" in a:
        lo, hi = min(a["used_K"]), max(a["used_K"])
        grid = [lo + (hi - lo) * k / 20 for k in range(21)]
        fit = [math.exp(a["ln_D0"] - a["Ea_eV"] / (KB_EV_PER_K * t)) for t in grid]
        ax.plot([1000.0 / t for t in grid], fit, "-", label=f"Ea = {_g(a['Ea_eV'])} eV")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("D (cm²/s)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "arrhenius.png", dpi=120)
    plt.close(fig)
    return ["msd.png", "arrhenius.png"]


def render_report(p: dict, r: dict, check: dict | None) -> str:
    lines = _table(p, r) + _arrhenius(r) + _conductivity(r) + _check(check)
    cost = r.get("md_cost") or {}
    lines += ["", f"MD cost: {cost.get('steps')} steps in {cost.get('loop_s')} s of LAMMPS "
              f"loop time ({cost.get('atom_steps_per_s')} atom-steps/s)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _table(p: dict, r: dict) -> list[str]:
    par = r["parameters"]
    lines = [
        f"# {p['study']}: Li diffusion ({p['profile']} profile)",
        "",
        f"Potential: {par['potential']} "
        f"(framework {'frozen' if par['frozen_framework'] else 'mobile'}); "
        f"{par['n_li']} Li; NVE production {par['production_ps']:g} ps per run at "
        f"{par['timestep_fs']:g} fs after NVT equilibration; D from MSD = 6 D t + c over lags "
        f"{par['fit_window'][0]:g}-{par['fit_window'][1]:g} of the run.",
        "",
        "| T (K) | D (cm²/s) | ± SE | seeds | log-log slope | MSD end (Å²) | σ (S/cm) "
        "| diffusive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in sorted(r["temperatures"].values(), key=lambda v: v["T_K"]):
        lines.append(
            f"| {v['T_K']:g} | {_g(v['D_cm2_s'])} | {_g(v['D_se_cm2_s'])} | {v['n_seeds']} | "
            f"{_g(v['loglog_slope'], '.2f')} | {_g(v['msd_end_A2'])} | {_g(v['sigma_S_cm'])} | "
            f"{'yes' if v['diffusive'] else '**no: run longer**'} |"
        )
    return lines + ["", "![MSD](msd.png) ![Arrhenius](arrhenius.png)", ""]


def _arrhenius(r: dict) -> list[str]:
    a = r.get("arrhenius") or {}
    if "Ea_eV" in a:
        lines = [
            f"**Arrhenius** over {', '.join(f'{t:g}' for t in a['used_K'])} K: "
            f"Ea = {_g(a['Ea_eV'])} ± {_g(a['Ea_se_eV'])} eV, D0 = {_g(a['D0_cm2_s'])} cm²/s "
            f"(ln D0 = {_g(a['ln_D0'])} ± {_g(a['ln_D0_se'])}; "
            f"{'weighted by the errors of ln D' if a['weighted'] else 'unweighted'})."
        ]
    else:
        lines = [f"**Arrhenius**: not fitted ({a.get('error', 'no data')})."]
    n_seeds = min(v["n_seeds"] for v in r["temperatures"].values())
    if n_seeds < 3:
        lines.append(
            f"With {n_seeds} seed(s) per temperature the errors of D rest on {n_seeds - 1} "
            "degree(s) of freedom (or on atom groups of one run): take Ea ± as indicative; "
            "more seeds or longer runs (the `local` profile) make them trustworthy."
        )
    if a.get("excluded_K"):
        lines.append(
            f"Left out as not yet diffusive: {', '.join(f'{t:g}' for t in a['excluded_K'])} K "
            "(low-temperature MSDs need longer runs; the seed study needed >= 50 ps)."
        )
    return lines


def _conductivity(r: dict) -> list[str]:
    c = r.get("conductivity") or {}
    if not c:
        return []
    span = "extrapolated along the Arrhenius line" if c["extrapolated"] else "interpolated"
    return [
        "",
        f"**Conductivity** at {c['T_K']:g} K ({span}): σ = {_g(c['sigma_S_cm'])} S/cm "
        f"(ln σ ± {_g(c['ln_sigma_se'])}), Nernst-Einstein σ = n e² D / (k_B T H_R) with "
        "the Haven ratio H_R = 1 assumed: tracer D taken as the charge D; correlated Li "
        "hops (H_R < 1 in garnets) would raise σ.",
    ]


def _check(check: dict | None) -> list[str]:
    if not check:
        return []
    if check.get("verdict") == "NOT JUDGED":  # the check stage's not_judged.json
        return ["", f"**Reference check**: NOT JUDGED ({check['reason']})"]
    lines = ["", f"**Reference check** ({check['reference']['name']}): {check['status']}"]
    for row in check["checks"]:
        lines.append(
            f"- {row['quantity']}: {_g(row['value'])} vs {_g(row['reference'])} "
            f"{row['unit']} -> {row['status']} {row['reason']}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m runbook.lidiff.report report.json")
    p = json.loads(Path(args[0]).read_text())
    r = json.loads(Path(p["results"]).read_text())
    check = json.loads(Path(p["check"]).read_text()) if p.get("check") else None
    figures(r, Path("."))
    Path("report.md").write_text(render_report(p, r, check))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
