"""The `gb-analysis/1` results document: writing it (atomically), reading it back, and
the short `summary.md` beside it. Computing it is `checks.metrics.analyze`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bundle.core import atomic, io
from bundle.core.errors import InputError
from checks import deviation
from checks.metrics import SCHEMA

LEVELS = ("accurate", "candidate", "failed")  # DP-GEN trust levels (checks.deviation)

RESULTS = "results.json"
SUMMARY = "summary.md"
_MISSING = object()
# Results documents `bundle check` judges: the GB analysis, and the li-diffusion study's
# (runbook.lidiff.analysis writes it; the same reference format applies to both).
LIDIFF_SCHEMA = "li-diffusion-results/1"
CHECKABLE = (SCHEMA, LIDIFF_SCHEMA)


def write_results(out_dir: Path, results: dict) -> Path:
    """DIR/results.json (atomically) and DIR/summary.md; returns the results path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_file(out_dir / SUMMARY, summary_md(results))
    path = out_dir / RESULTS
    atomic.write_file(path, atomic.strict_json(results, indent=1))
    return path


def load_results(path: Path) -> dict:
    """A results document, checked for its schema."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    doc = io.read_json(path, fix="give the results.json of `bundle analyze`")
    if not isinstance(doc, dict) or doc.get("schema") not in CHECKABLE:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(
            path,
            "schema",
            f"expected {' or '.join(map(repr, CHECKABLE))}, got {got!r}",
            "give a `bundle analyze` results",
        )
    if not isinstance(doc.get("parameters", {}), dict | None):
        raise InputError(
            path, "parameters", "expected a mapping", "give the results.json of `bundle analyze`"
        )
    return doc


def get_path(doc: Any, key: str, default: Any = _MISSING) -> Any:
    """doc['a']['b'][0] for key 'a.b.0'; `default` (or KeyError) when absent or null."""
    node = doc
    for part in key.split("."):
        if (
            isinstance(node, list)
            and part.lstrip("-").isdigit()
            and -len(node) <= int(part) < len(node)
        ):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = None
        if node is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
    return node


def _fmt(x: Any, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_md(r: dict) -> str:
    """A short human summary of a results document."""
    p = r["parameters"]
    z0, z1 = r["gb_planes_A"]
    lines = [
        "# Grain-boundary analysis",
        "",
        f"{r['n_frames']} frames, {p['window_ps'][0]:g}-{p['window_ps'][1]:g} ps; box "
        + " x ".join(f"{x:.3f}" for x in r["box_A"])
        + f" Å; {r['n_li']} Li (+{r['n_excess']} excess).",
        f"Parameters: dz = {p['dz_A']} Å, w = {p['w_A']} Å, d_bulk = {p['d_bulk_A']} Å.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| GB planes | {z0:.2f} Å, {z1:.2f} Å{' (given)' if p['gb_planes_given'] else ''} |",
        f"| rho_bulk / rho_peak / rho_band | {_fmt(r['rho_bulk_per_A3'])} / "
        f"{_fmt(r['rho_peak_per_A3'])} / {_fmt(r['rho_band_per_A3'])} Li/Å³ |",
        f"| peak_ratio / band_ratio | {_fmt(r['peak_ratio'], '.3g')} / "
        f"{_fmt(r['band_ratio'], '.3g')} |",
        f"| Gamma (per GB) | {_fmt(r['gamma_per_nm2']['mean'], '.3g')} "
        f"({', '.join(_fmt(g, '.3g') for g in r['gamma_per_nm2']['per_gb'])}) Li/nm² |",
    ]
    e = r.get("excess")
    if e:
        lines += [
            f"| excess in GB bands, last {p['avg_window_ps']:g} ps | {e['gb_mean']:.2f} ± "
            f"{e['gb_std']:.2f} (sem {_fmt(e['gb_sem'], '.2f')}); per GB "
            + ", ".join(
                f"{m:.2f} ± {s:.2f}" for m, s in zip(e["per_gb_mean"], e["per_gb_std"], strict=True)
            )
            + " |",
            f"| uniform expectation / enrichment | {e['uniform_expected']:.2f} / "
            f"{e['enrichment']:.3f} |",
            f"| n_gb slope | {_fmt(e['slope_per_ps'], '.3g')} ± "
            f"{_fmt(e['slope_se_per_ps'], '.2g')} atoms/ps |",
        ]
    d = r.get("diffusion")
    if d:
        dd, se = d["D_cm2_s"], d["D_se_cm2_s"]
        lines += [
            f"| D all / GB start / bulk start (fit {d['fit_window_ps'][0]:g}-"
            f"{d['fit_window_ps'][1]:g} ps) | "
            + " / ".join(f"{_fmt(dd[k], '.3e')} ± {_fmt(se[k], '.1e')}" for k in dd)
            + " cm²/s |",
            f"| D ratio GB/bulk | {_fmt(d['ratio_gb_bulk'], '.3g')} |",
        ]
    if r.get("deviation"):
        lines += committee_rows(r["deviation"])
    lines += ["", "Figures: profile.png, excess_ngb.png, msd.png (when their data exist).", ""]
    return "\n".join(lines)


def committee_rows(dev: dict) -> list[str]:
    """Table rows for an MD's committee summary: the levels of its frames and of each
    region's atom-frames, and whether the run stayed inside the trust domain."""

    def levels(lv: dict) -> str:
        return " / ".join(f"{lv.get(k, float('nan')):.1%}" for k in LEVELS)

    window = f"lo {dev['lo_ev_a']:g}, hi {dev['hi_ev_a']:g} eV/Å"
    rows = [f"| committee frames {' / '.join(LEVELS)} ({window}) | {levels(dev['frames'])} |"]
    for name, reg in (dev.get("regions") or {}).items():
        rows.append(f"| committee {name} atom-frames | {levels(reg['atom_frames'])} |")
    row = deviation.domain_row({"deviation": dev})
    verdict = "inside" if row["status"] == "PASS" else row["reason"]
    return [*rows, f"| committee trust domain | {verdict} |"]
