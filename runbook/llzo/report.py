"""Step `report` of the LLZO study: report.md + figures from finished stages only.

    python -m runbook.llzo.report report.json

Sections: a plain-language reading generated from the numbers (runbook.llzo.reading),
the potential (the model stage's record: file, SHA-256, dataset hash, the potential
run's validation verdict; or the classical baseline), structure (bicrystal), MD segments
(temperature, steps/s), the metrics of METRICS.md next to the published values
(reported, not judged) with the `bundle check` verdict per quantity, the profile metrics
with their standard errors beside the boundary-free control and the single crystal when
the study ran them (report.json `control`, `crystal`: stage folders holding
results.json), one figure of the control and boundary profiles side by side, D by region
with 95 % intervals and hop counts, site occupancies, and the figures `bundle analyze`
drew (the Li density profile with its GB planes first).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bundle.core import atomic
from checks.reference import load_reference
from checks.results import get_path
from runbook.llzo import reading
from runbook.llzo import report_parts as parts
from runbook.stages.analyze import NOT_JUDGED, REPORT

# (results.json path, label, unit) in the order of METRICS.md
ROWS = [
    ("rho_bulk_per_A3", "rho_bulk", "Li/Å³"),
    ("rho_peak_per_A3", "rho_peak", "Li/Å³"),
    ("peak_ratio", "peak ratio", "1"),
    ("rho_band_per_A3", "rho_band (±w)", "Li/Å³"),
    ("band_ratio", "band ratio", "1"),
    ("gamma_per_nm2.mean", "Γ", "Li/nm²"),
    ("diffusion.D_cm2_s.all", "D all", "cm²/s"),
    ("diffusion.D_cm2_s.gb_start", "D GB start", "cm²/s"),
    ("diffusion.D_cm2_s.bulk_start", "D bulk start", "cm²/s"),
    ("diffusion.ratio_gb_bulk", "D ratio GB/bulk", "1"),
    ("n_excess", "excess Li", "Li"),
    ("excess.gb_mean", "excess in GB bands (mean)", "Li"),
    ("excess.uniform_expected", "uniform expectation", "Li"),
    ("excess.enrichment", "enrichment", "1"),
    ("excess.slope_per_ps", "slope of n_gb", "Li/ps"),
]
FIGURES = [("profile", "profile.png", "li_profile.png"), ("profile", "msd.png", "msd.png"),
           ("excess", "excess_ngb.png", "excess_ngb.png")]  # fmt: skip


def _g(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _get(doc: dict, key: str):
    try:
        return get_path(doc, key)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _load(here: Path, rel: str | None, name: str = "results.json") -> dict | None:
    """A results document of an optional run (control, single crystal), or None."""
    if not rel or not (here / rel / name).exists():
        return None
    return json.loads((here / rel / name).read_text())


ELEMENT_ORDER = ("Li", "Al", "Ga", "Ta", "La", "Zr", "O")  # the garnet's usual formula order


def formula(counts: dict[str, int]) -> str:
    """Li25 Al1 La12 Zr8 O48: every element of the cell, dopants included."""
    rank = {e: i for i, e in enumerate(ELEMENT_ORDER)}
    els = sorted((e for e, n in counts.items() if n), key=lambda e: (rank.get(e, 99), e))
    return " ".join(f"{e}{counts[e]}" for e in els)


def structure(build: dict) -> list[str]:
    return [
        "## Structure",
        "",
        f"Σ{build['sigma']} ({''.join(map(str, build['plane_hkl']))})/[001] symmetric-tilt "
        f"bicrystal, seed {build['seed']}: {formula(build['counts'])} "
        f"(charge {build['charge_e']} e), box "
        + " x ".join(f"{x:.3f}" for x in build["box_A"])
        + f" Å, GB planes at z = {build['gb_planes_A'][0]:.3f} and "
        f"{build['gb_planes_A'][1]:.3f} Å.",
        "",
    ]


def md_segments(p: dict, here: Path) -> list[str]:
    lines = [
        "## MD segments",
        "",
        "| segment | engine | framework | T target / mean (K) | steps | timestep (fs) "
        "| steps/s | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rel in p["md"].items():
        m = json.loads((here / rel / "manifest.json").read_text())
        r, seg = m["result"], m["result"]["md"]
        moving = {"frozen": "frozen (only Li integrated)", "mobile": "mobile (every atom)"}
        lines.append(
            f"| {name} | {r['engine']} | {moving.get(r.get('framework', 'frozen'))} "
            f"| {r['temperature_K']:g} / {seg['temperature_mean_K']:.1f}"
            f" | {seg['steps']} | {r['timestep_fs']:g} | {seg['steps_per_s']:.1f} "
            f"| {m['wall_s']:.0f} |"
        )
    return [*lines, ""]


def metrics_table(
    res: dict, pub: dict, check: dict | None, unjudged: dict | None = None
) -> list[str]:
    verdict = {r["quantity"]: r for r in (check or {}).get("checks", [])}
    lines = [
        "## Metrics (METRICS.md) next to the published study",
        "",
        "Published values are context (another model, cell and run length), not a target.",
        "",
        "| quantity | this run | published | unit | check |",
        "|---|---|---|---|---|",
    ]
    for key, label, unit in ROWS:
        v = verdict.get(key)
        status = "" if v is None else v["status"] + (f" ({v['reason']})" if v["reason"] else "")
        lines.append(f"| {label} | {_g(_get(res, key))} | {_g(pub.get(key))} | {unit} | {status} |")
    if check is not None:
        s = check["summary"]
        lines += [
            "",
            f"**bundle check against {check['reference']['name']}: {check['status']}** "
            f"({s['pass']} pass, {s['fail']} fail, {s['not_judged']} reported).",
        ]
    elif unjudged is not None:
        lines += ["", f"**bundle check: NOT JUDGED** ({unjudged['reason']})."]
    return [*lines, ""]


def uncertainty(res: dict, control: dict | None, crystal: dict | None, here: Path) -> list[str]:
    fig = parts.fig_control(res, control, here)
    return [
        "## Profile metrics with their uncertainty",
        "",
        *parts.profile_uncertainty(res),
        "",
        "### Control (no boundary) and single crystal",
        "",
        *parts.reference_runs(res, control, crystal),
        "",
        f"![{fig}]({fig})",
        "",
    ]


def dynamics(res: dict) -> list[str]:
    return [
        "## Diffusion by region (GLS with the MSD covariance; 95 % intervals)",
        "",
        *parts.diffusion_table(res),
        "",
        *parts.hops_table(res),
        "",
        "## Li site occupancies",
        "",
        *parts.occupancy_table(res),
        "",
    ]


def figures(p: dict, here: Path) -> list[str]:
    lines = ["## Figures", ""]
    for sub, src, dst in FIGURES:
        f = here / p["analyze"] / sub / src
        if f.exists():
            shutil.copyfile(f, here / dst)
            lines.append(f"![{dst}]({dst})")
    return lines


def render_report(p: dict, here: Path) -> str:
    build = json.loads((here / p["build"] / "bicrystal.json").read_text())
    res = json.loads((here / p["analyze"] / "results.json").read_text())
    control, crystal = _load(here, p.get("control")), _load(here, p.get("crystal"))
    try:
        pub = {q.key: q.value for q in load_reference(p["published"]).quantities}
    except Exception:  # the published reference is context only
        pub = {}
    check = _load(here, p.get("check"), REPORT)
    unjudged = _load(here, p.get("check"), NOT_JUDGED)
    lines = [f"# {p['study']} — profile {p['profile']}", ""]
    lines += ["## What this run shows", "", reading.paragraph(res, control, crystal), ""]
    lines += parts.potential(here, p.get("model"))
    lines += structure(build) + md_segments(p, here) + metrics_table(res, pub, check, unjudged)
    lines += uncertainty(res, control, crystal, here) + dynamics(res) + figures(p, here)
    lines += ["", f"Sections of results.json by source: `{json.dumps(res.get('sources', {}))}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m runbook.llzo.report report.json")
    here = Path(args[0]).resolve().parent
    p = json.loads(Path(args[0]).read_text())
    atomic.write_file(here / "report.md", render_report(p, here))
    print(f"wrote {here / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
