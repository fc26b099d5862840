"""PNG figures of a results document (matplotlib, Agg; no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PROFILE = "profile.png"
EXCESS = "excess_ngb.png"
MSD = "msd.png"
FIGURES = (PROFILE, EXCESS, MSD)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def write_figures(out_dir: Path, r: dict) -> list[Path]:
    """profile.png always; excess_ngb.png and msd.png when those sections exist."""
    plt = _plt()
    out_dir = Path(out_dir)
    written = [_profile_figure(plt, out_dir / PROFILE, r)]
    if r.get("excess"):
        written.append(_excess_figure(plt, out_dir / EXCESS, r["excess"]))
    if r.get("diffusion"):
        written.append(_msd_figure(plt, out_dir / MSD, r["diffusion"]))
    return written


def _profile_figure(plt, path: Path, r: dict) -> Path:
    p = r["parameters"]
    z = np.array(r["profile"]["z_A"])
    rho = np.array(r["profile"]["rho_li_per_A3"])
    lz = r["box_A"][2]
    zlo = z[0] - r["profile"]["dz_A"] / 2

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.step(z, rho, where="mid", color="k", lw=1, label="Li density")
    ax.axhline(r["rho_bulk_per_A3"], color="tab:blue", ls="--", lw=1, label="rho_bulk")
    for k, zk in enumerate(r["gb_planes_A"]):
        ax.axvline(zk, color="tab:red", lw=1, label="GB planes" if k == 0 else None)
        for shift in (-lz, 0, lz):  # bands may wrap around the periodic box
            lo_, hi_ = zk + shift - p["w_A"], zk + shift + p["w_A"]
            ax.axvspan(
                lo_,
                hi_,
                color="tab:red",
                alpha=0.15,
                lw=0,
                label=f"bands ±{p['w_A']} Å" if (k, shift) == (0, 0) else None,
            )
    ax.set_xlim(zlo, zlo + lz)
    ax.set_xlabel("z (Å)")
    ax.set_ylabel("Li density (Li/Å³)")
    ax.set_title(
        f"peak ratio {_g(r['peak_ratio'])}, band ratio {_g(r['band_ratio'])}, "
        f"Γ = {_g(r['gamma_per_nm2']['mean'])} Li/nm²"
    )
    ax.legend(fontsize=7, loc="upper right")
    return _finish(plt, fig, path)


def _excess_figure(plt, path: Path, e: dict) -> Path:
    s = e["series"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(s["t_ps"], s["n_gb"], color="k", lw=0.8, label="n_gb(t)")
    ax.axhline(
        e["uniform_expected"],
        color="tab:blue",
        ls="--",
        label=f"uniform {e['uniform_expected']:.2f}",
    )
    ax.axvspan(*e["window_ps"], color="tab:orange", alpha=0.15, lw=0, label="averaging window")
    ax.hlines(
        e["gb_mean"],
        *e["window_ps"],
        color="tab:orange",
        label=f"mean {e['gb_mean']:.2f} (enrichment {e['enrichment']:.2f})",
    )
    ax.set_xlabel("t (ps)")
    ax.set_ylabel("excess Li in GB bands")
    ax.legend(fontsize=7)
    return _finish(plt, fig, path)


def _msd_figure(plt, path: Path, d: dict) -> Path:
    m = d["msd_A2"]
    lag = np.array(m["lag_ps"], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, color in (("all", "k"), ("gb_start", "tab:red"), ("bulk_start", "tab:blue")):
        y = np.array([np.nan if v is None else v for v in m[name]], dtype=float)
        dv = d["D_cm2_s"][name]
        ax.plot(lag, y, color=color, lw=1, label=f"{name}: D = {_g(dv, '.3e')} cm²/s")
    ax.axvspan(*d["fit_window_ps"], color="0.85", lw=0, label="fit window", zorder=0)
    ax.set_xlabel("lag (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.legend(fontsize=7)
    return _finish(plt, fig, path)


def _finish(plt, fig, path: Path) -> Path:
    _save(fig, path)
    plt.close(fig)
    return path


def _g(x, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)
