"""Step `report`: report.md + figures + results + the manifest of every earlier stage.

Reads only finished stages' files (their manifests say where things are). Figures:
training curve, model-vs-DFT force parity, MD temperature and conserved energy, and the
analysis figures `bundle analyze` drew.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bundle.core import atomic  # noqa: E402
from runbook import lammpslog  # noqa: E402
from runbook.steps import params  # noqa: E402


def _g(x, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def fig_training(stage: Path, out: Path) -> str | None:
    path = stage / "logs" / "version_0" / "metrics.csv"
    if not path.exists():
        return None
    rows = list(csv.DictReader(path.open()))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        for key in ("train_loss_epoch", "val0_epoch/forces_rmse", "val0_epoch/per_atom_energy_mae"):
            if r.get(key) and r.get("epoch"):
                series.setdefault(key, []).append((float(r["epoch"]), float(r[key])))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, pts in series.items():
        e, v = np.array(pts).T
        ax.semilogy(e, v, marker=".", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / metric (eV, eV/Å)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    plt.close(fig)
    return "training.png"


def fig_parity(evaluation: dict, out: Path) -> str | None:
    pairs = np.array(evaluation.get("force_pairs_dft_model") or [])
    if pairs.size == 0:
        return None
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(pairs[:, 0], pairs[:, 1], ".", ms=2)
    lim = float(np.abs(pairs).max()) * 1.05
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
    ax.set_xlabel("DFT force component (eV/Å)")
    ax.set_ylabel("compiled model (eV/Å)")
    ax.set_title(f"held-out frames: RMSE {evaluation['force_rmse_ev_a']:.3f} eV/Å", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "force_parity.png", dpi=110)
    plt.close(fig)
    return "force_parity.png"


def fig_md(log: Path, natoms: int, out: Path) -> str | None:
    if not log.exists():
        return None
    th = lammpslog.read_log(log)[-1]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
    a1.plot(th["Time"], th["Temp"])
    a1.set_ylabel("T (K)")
    a2.plot(th["Time"], (th["Econserve"] - th["Econserve"][0]) / natoms * 1000)
    a2.set_ylabel("ΔE_conserved (meV/atom)")
    a2.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(out / "md.png", dpi=110)
    plt.close(fig)
    return "md.png"


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    out = Path(".")
    figs, res, mans = out / "figures", out / "results", out / "manifests"
    for d in (figs, res, mans):
        d.mkdir(exist_ok=True)
    stages = [(s["name"], s["kind"], Path(s["dir"])) for s in p["stages"]]
    manifests = {}
    for name, _kind, d in stages:
        m = json.loads((d / "manifest.json").read_text())
        manifests[name] = m
        shutil.copyfile(d / "manifest.json", mans / f"{d.name}.json")
    lines = [
        f"# {p['study']}: report",
        "",
        p.get("description", "").strip(),
        "",
        f"Profile `{p['profile']}`; every number below was computed by the stages of this run "
        "(manifests in `manifests/`).",
        "",
        "## Stages",
        "",
        "| stage | wall time (s) | CPU (s) | launcher | input hash | tools (locked) |",
        "|---|---:|---:|---|---|---|",
    ]
    total = 0.0
    for name, _kind, d in stages:
        m = manifests[name]
        total += m["wall_s"]
        tools = ", ".join(f"{k} {v}" for k, v in m.get("tools", {}).get("locked", {}).items())
        cpu = f"{m['cpu_s']:.1f}" if m.get("cpu_s") is not None else "n/a"
        row = [f"`{d.name}`", f"{m['wall_s']:.1f}", cpu, m["launcher"], f"`{m['input_hash'][:12]}`"]
        lines.append("| " + " | ".join([*row, tools]) + " |")
    lines += [
        "",
        f"Total stage wall time before this report: {total:.1f} s (CPU: child processes' "
        "user + system seconds; more than wall when several cores worked, less when the "
        "machine was shared).",
        "",
    ]
    by_kind = {kind: (name, d) for name, kind, d in stages}
    if "dft" in by_kind:
        name, d = by_kind["dft"]
        r = manifests[name]["result"]
        lines += [
            "## DFT reference data",
            "",
            f"{r['n_frames']} SCF calculations with pw.x {r['pw_version']} "
            f"(mean {r['mean_scf_iterations']:.1f} SCF iterations); energy per atom "
            f"{r['energy_per_atom_ev'][0]:.4f} … {r['energy_per_atom_ev'][1]:.4f} eV, "
            f"largest force {r['max_force_ev_a']:.3f} eV/Å. Units: eV, Å, eV/Å³.",
            "",
        ]
    if "dataset" in by_kind:
        name, d = by_kind["dataset"]
        shutil.copyfile(d / "stats.json", res / "dataset_stats.json")
        r = manifests[name]["result"]
        lines += [
            "## Dataset",
            "",
            f"Split {r['split']}; force RMS per species "
            f"{ {k: round(v, 3) for k, v in r['force_rms_ev_a'].items()} } eV/Å; "
            f"shortest distance {r['min_distance_a']:.3f} Å.",
            "",
        ]
    if "train" in by_kind:
        name, d = by_kind["train"]
        r = manifests[name]["result"]
        fig = fig_training(d, figs)
        keys = ("per_atom_energy_mae", "forces_mae", "forces_rmse", "stress_mae")
        val = ", ".join(f"{k} {r['val'][k]:.4g}" for k in keys if k in r["val"])
        test = ", ".join(f"{k} {r['test'][k]:.4g}" for k in keys if k in r["test"])
        shutil.copyfile(d / "model_manifest.json", res / "model_manifest.json")
        lines += [
            "## Training (Allegro)",
            "",
            f"{r['epochs']} epochs (stopped by {r['stopped_by']}). Validation: {val}. "
            f"Test: {test or 'n/a'} (eV/atom, eV/Å, eV/Å³).",
            "",
        ]
        if fig:
            lines += [f"![training](figures/{fig})", ""]
    if "deploy" in by_kind:
        name, d = by_kind["deploy"]
        r = manifests[name]["result"]
        lines += [
            "## Deployed model",
            "",
            f"`{r['compiled']}` (AOTInductor, target `{r['target']}`, device `{r['device']}`).",
        ]
        ev_path = d / "evaluation.json"
        if ev_path.exists():
            ev = json.loads(ev_path.read_text())
            shutil.copyfile(ev_path, res / "model_evaluation.json")
            fig = fig_parity(ev, figs)
            lines += [
                f"On {ev['n_frames']} held-out DFT frames: energy MAE "
                f"{ev['energy_per_atom_mae_ev'] * 1000:.2f} meV/atom, force MAE "
                f"{ev['force_mae_ev_a']:.4f} eV/Å (RMSE {ev['force_rmse_ev_a']:.4f}), stress MAE "
                f"{ev['stress_mae_ev_a3'] * 1000:.3f} meV/Å³.",
                "",
            ]
            if fig:
                lines += [f"![parity](figures/{fig})", ""]
    if "md" in by_kind:
        name, d = by_kind["md"]
        r = manifests[name]["result"]
        fig = fig_md(d / "log.lammps", r["n_atoms"], figs)
        frac = r.get("model_fraction_of_step")
        lines += [
            "## Molecular dynamics (LAMMPS)",
            "",
            f"{r['n_atoms']} atoms, box {[round(x, 3) for x in r['box_angstrom']]} Å, "
            f"{r['n_steps']} steps of {r['timestep_fs']} fs; T = {r['temperature_mean_k']:.1f} ± "
            f"{r['temperature_std_k']:.1f} K; conserved-energy drift "
            f"{r['conserved_drift_ev_per_atom_ps'] * 1000:.3f} meV/atom/ps; "
            f"{r['steps_per_second']:.2f} steps/s"
            + (f" ({frac * 100:.0f} % of it inside the model)." if frac else "."),
            "",
        ]
        if fig:
            lines += [f"![md](figures/{fig})", ""]
    if "analyze" in by_kind:
        name, d = by_kind["analyze"]
        r = json.loads((d / "analysis" / "results.json").read_text())
        shutil.copyfile(d / "analysis" / "results.json", res / "results.json")
        for png in sorted((d / "analysis").glob("*.png")):
            shutil.copyfile(png, figs / png.name)
        diff = (r.get("diffusion") or {}).get("D_cm2_s") or {}
        gamma = (r.get("gamma_per_nm2") or {}).get("mean")
        lines += [
            "## Analysis (`bundle analyze`, METRICS.md definitions)",
            "",
            f"Planes {r.get('gb_planes_A')} Å, {r.get('n_frames')} frames. ",
            "",
            "| quantity | value |",
            "|---|---:|",
            f"| rho_bulk (Li/Å³) | {_g(r.get('rho_bulk_per_A3'))} |",
            f"| rho_peak (Li/Å³) | {_g(r.get('rho_peak_per_A3'))} |",
            f"| peak_ratio | {_g(r.get('peak_ratio'))} |",
            f"| band_ratio | {_g(r.get('band_ratio'))} |",
            f"| Gamma (Li/nm²) | {_g(gamma)} |",
            f"| D_all (cm²/s) | {_g(diff.get('all'))} |",
            "",
        ]
        lines += [
            f"![{png.stem}](figures/{png.name})" for png in sorted((d / "analysis").glob("*.png"))
        ]
        lines.append("")
    if "check" in by_kind:
        name, d = by_kind["check"]
        r = manifests[name]["result"]
        lines += ["## Reference check", "", f"`{r['reference']}`: **{r['verdict']}**", ""]
    atomic.write_file(Path("report.md"), "\n".join(lines).rstrip() + "\n")
    print(f"wrote {Path('report.md').resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
