"""Sections of the LLZO report built from results.json (and the control and single-crystal
runs when the study has them): uncertainties, diffusion by region with intervals, hops,
occupancies, the control-vs-boundary table and the side-by-side profile figure. Each
function returns markdown lines (or a figure file name); none reads beyond its inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from checks import crystal as cx

CLASSES = (("all", "all Li"), ("gb_start", "start in a GB band"),
           ("bulk_start", "start in the grain interior"))  # fmt: skip
COMPONENTS = (("xyz", "3D"), ("xy", "in-plane"), ("z", "normal"))


def _g(x, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def _pm(e: dict, fmt: str = ".4g") -> str:
    return _g(e["value"], fmt) + (f" ± {e['se']:.2g}" if e.get("se") is not None else "")


def profile_uncertainty(res: dict) -> list[str]:
    lines = ["| quantity | value ± SE | SE from | unit |", "|---|---|---|---|"]
    for key, label, unit in cx.PROFILE_KEYS:
        e = cx.estimate(res, key)
        lines.append(f"| {label} | {_pm(e.as_dict())} | {e.source} | {unit} |")
    return lines


def diffusion_table(res: dict) -> list[str]:
    gls = (res.get("diffusion_gls") or {}).get("classes")
    if not gls:
        return ["No MSD fit in this run (too few frames)."]
    ols = ((res.get("diffusion") or {}).get("D_cm2_s")) or {}
    lines = [
        "| Li | component | D (cm²/s) | 95 % interval | log-log slope | MSD at window end (Å²)"
        " | OLS D (METRICS) | flags |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in CLASSES:
        for comp, clabel in COMPONENTS:
            f = (gls.get(name) or {}).get(comp)
            if not f or f.get("D_cm2_s") is None:
                continue
            lo, hi = f["ci95_cm2_s"]
            o = _g(ols.get(name), ".3e") if comp == "xyz" else ""
            lines.append(
                f"| {label} | {clabel} | {f['D_cm2_s']:.3e} | {lo:.2e} – {hi:.2e} | "
                f"{_g(f['loglog_slope'], '.2f')} | {f['msd_end_A2']:.3g} | {o} | "
                f"{'; '.join(f['flags']) or 'ok'} |"
            )
    return lines


def hops_table(res: dict) -> list[str]:
    h = res.get("hops")
    if not h:
        return []
    lines = [
        f"Hops (block-mean position moves > {h['r_hop_A']:g} Å from its anchor; blocks of "
        f"{h['block_ps']:g} ps), by region of the anchor:",
        "",
        "| region | hops | Li-ps | rate (1/ps) | 95 % interval | mean hop (Å) |",
        "|---|---|---|---|---|---|",
    ]
    for region, r in h["regions"].items():
        ci = r["rate_ci95_per_li_ps"]
        ci_text = f"{ci[0]:.2g} – {ci[1]:.2g}" if ci else "n/a"
        rate, length = _g(r["rate_per_li_ps"], ".3g"), _g(r["mean_hop_length_A"], ".2f")
        lines.append(
            f"| {region} | {r['hops']} | {r['li_ps']:.0f} | {rate} | {ci_text} | {length} |"
        )
    return lines


def occupancy_table(res: dict) -> list[str]:
    s = res.get("li_sites")
    if not s:
        return ["No candidate-site file (li_sites.npz) for this run: occupancies not measured."]
    labels = sorted({k for r in s["regions"].values() for k in r["occupancy"]})
    lines = ["| region | " + " | ".join(f"{k} (sites)" for k in labels) + " |",
             "|---|" + "---|" * len(labels)]  # fmt: skip
    for region, r in s["regions"].items():
        cells = [f"{_g(r['occupancy'][k], '.3f')} ({r['n_sites'][k]})" for k in labels]
        lines.append(f"| {region} | " + " | ".join(cells) + " |")
    lines += ["", f"Li-frames on no site within {s['r_assign_A']:g} Å: "
              f"{100 * s['unassigned_fraction']:.1f} %; site hops (cage changes) by region: "
              f"{s['site_hops']}."]  # fmt: skip
    return lines


def reference_runs(res: dict, control: dict | None, crystal: dict | None) -> list[str]:
    lines: list[str] = []
    if control is None:
        lines.append("No boundary-free control run: the profile metrics stand alone.")
    else:
        lines += ["| quantity | control | boundary | boundary − control | z |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in cx.control_table(control, res):
            diff = f"{_g(r['difference'])} ± {_g(r['se'], '.2g')}"
            lines.append(f"| {r['label']} | {_pm(r['control'])} | {_pm(r['boundary'])} | "
                         f"{diff} | {_g(r['z'], '.1f')} |")  # fmt: skip
        c = cx.control_checks(control)
        lines += ["", f"Control checks: band ratio {_pm(c['band_ratio'])} in "
                  f"{c['band_ratio']['range']}: {c['band_ratio']['ok']}; |Γ| within "
                  f"{c['gamma']['k']:g} SE of zero: {c['gamma']['ok']}."]  # fmt: skip
    if crystal is None:
        lines += ["", "No single-crystal run: Γ is in-cell only (set by the Li count)."]
    else:
        g = cx.gamma_vs_crystal(res, crystal)["mean"]
        inside = cx.interior_vs_crystal(res, crystal)
        lines += ["", f"Γ in cell {_pm(g['in_cell'])}, against the single crystal "
                  f"{_pm(g['vs_crystal'])} Li/nm² (difference within {cx.K_SE:g} SE: "
                  f"{g['vs_crystal_minus_in_cell']['agree']}); interior density "
                  f"{_pm(inside['rho_bulk'], '.5g')} vs crystal {_pm(inside['rho_sc'], '.5g')}"
                  f" Li/Å³ (equal within {cx.K_SE:g} SE: {inside['agree']})."]  # fmt: skip
    return lines


def fig_control(res: dict, control: dict | None, out: Path) -> str | None:
    """One figure: the control's Li profile beside the boundary run's, same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [("boundary", res)] if control is None else [("control", control), ("boundary", res)]
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.2), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, (title, doc) in zip(axes[0], runs, strict=True):
        z = np.array(doc["profile"]["z_A"])
        ax.step(z, doc["profile"]["rho_li_per_A3"], where="mid", color="k", lw=1)
        ax.axhline(doc["rho_bulk_per_A3"], color="tab:blue", ls="--", lw=1, label="rho_bulk")
        w = doc["parameters"]["w_A"]
        for zk in doc["gb_planes_A"]:
            ax.axvspan(zk - w, zk + w, color="tab:red", alpha=0.15, lw=0)
            ax.axvline(zk, color="tab:red", lw=1)
        ax.set_title(f"{title}: band ratio {_g(doc.get('band_ratio'), '.3g')}", fontsize=9)
        ax.set_xlabel("z (Å)")
    axes[0][0].set_ylabel("Li density (Li/Å³)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    name = "profiles_control_boundary.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def potential(here: Path, model_stage: str | None) -> list[str]:
    """The potential the run used: the model stage's record (file, SHA-256, dataset hash,
    the potential run's validation verdict), or the classical baseline."""
    lines = ["## Potential", ""]
    m = here / model_stage / "manifest.json" if model_stage else None
    res = json.loads(m.read_text())["result"] if m and m.exists() else {}
    prov = res.get("provenance")
    if not prov:
        return [*lines, "Classical baseline (rigid-ion Buckingham + PPPM, "
                "runbook/llzo/buckingham.yaml); no ML model.", ""]  # fmt: skip
    verdict = prov.get("validation_verdict")
    where = f" ({prov['validation']})" if prov.get("validation") else ""
    return [
        *lines,
        f"- model: `{prov['file']}`",
        f"- SHA-256: `{prov['sha256']}`",
        f"- from: `{prov['reference']}` (manifest `{prov['manifest']}`)",
        f"- species: {', '.join(prov.get('type_names', []))}; units: {prov.get('units')}",
        f"- training data (dataset hash): `{prov.get('dataset_hash')}`",
        f"- validation of the potential run: **{verdict}**{where}"
        if verdict
        else "- validation of the potential run: none recorded",
        "",
    ]
