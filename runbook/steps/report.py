"""Step `report`: report.md + figures + results + the manifest of every earlier stage.

Reads only finished stages' files (their manifests say where things are). Figures:
training curve, model-vs-DFT force parity, MD temperature and conserved energy, and the
analysis figures `bundle analyze` drew.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bundle.core import atomic  # noqa: E402
from checks.results import load_results  # noqa: E402
from checks.schema import Results  # noqa: E402
from runbook import lammpslog  # noqa: E402
from runbook.stage import typed  # noqa: E402
from runbook.stages.analyze import AnalyzeResult, CheckResult  # noqa: E402
from runbook.stages.dataset import DatasetResult  # noqa: E402
from runbook.stages.deploy import DeployResult  # noqa: E402
from runbook.stages.dft import DftResult  # noqa: E402
from runbook.stages.md import MdResult  # noqa: E402
from runbook.stages.train import TrainResult  # noqa: E402
from runbook.steps import params  # noqa: E402

R = TypeVar("R")


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


@dataclass(frozen=True)
class Section:
    """One earlier stage as a section of the report: its folder, its manifest, and the
    report's folders for figures and copied results."""

    name: str
    dir: Path
    manifest: dict
    figs: Path
    res: Path

    def result(self, kind: type[R]) -> R:
        return typed(kind, self.manifest.get("result"), self.dir / "manifest.json")


def header(p: dict, stages: list[Section]) -> list[str]:
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
    for s in stages:
        m = s.manifest
        total += m["wall_s"]
        tools = ", ".join(f"{k} {v}" for k, v in m.get("tools", {}).get("locked", {}).items())
        cpu = f"{m['cpu_s']:.1f}" if m.get("cpu_s") is not None else "n/a"
        row = [
            f"`{s.dir.name}`",
            f"{m['wall_s']:.1f}",
            cpu,
            m["launcher"],
            f"`{m['input_hash'][:12]}`",
        ]
        lines.append("| " + " | ".join([*row, tools]) + " |")
    return lines + [
        "",
        f"Total stage wall time before this report: {total:.1f} s (CPU: child processes' "
        "user + system seconds; more than wall when several cores worked, less when the "
        "machine was shared).",
        "",
    ]


def dft_section(s: Section) -> list[str]:
    r = s.result(DftResult)
    return [
        "## DFT reference data",
        "",
        f"{r.n_frames} SCF calculations with pw.x {r.pw_version} "
        f"(mean {r.mean_scf_iterations:.1f} SCF iterations); energy per atom "
        f"{r.energy_per_atom_ev[0]:.4f} … {r.energy_per_atom_ev[1]:.4f} eV, "
        f"largest force {r.max_force_ev_a:.3f} eV/Å. Units: eV, Å, eV/Å³.",
        "",
    ]


def dataset_section(s: Section) -> list[str]:
    shutil.copyfile(s.dir / "stats.json", s.res / "dataset_stats.json")
    r = s.result(DatasetResult)
    return [
        "## Dataset",
        "",
        f"Split {r.split}; force RMS per species "
        f"{ {k: round(v, 3) for k, v in r.force_rms_ev_a.items()} } eV/Å; "
        f"shortest distance {r.min_distance_a:.3f} Å.",
        "",
    ]


def train_section(s: Section) -> list[str]:
    r = s.result(TrainResult)
    fig = fig_training(s.dir, s.figs)
    keys = ("per_atom_energy_mae", "forces_mae", "forces_rmse", "stress_mae")
    val = ", ".join(f"{k} {r.val[k]:.4g}" for k in keys if k in r.val)
    test = ", ".join(f"{k} {r.test[k]:.4g}" for k in keys if k in r.test)
    shutil.copyfile(s.dir / "model_manifest.json", s.res / "model_manifest.json")
    lines = [
        "## Training (Allegro)",
        "",
        f"{r.epochs} epochs (stopped by {r.stopped_by}). Validation: {val}. "
        f"Test: {test or 'n/a'} (eV/atom, eV/Å, eV/Å³).",
        "",
    ]
    return lines + ([f"![training](figures/{fig})", ""] if fig else [])


def deploy_section(s: Section) -> list[str]:
    r = s.result(DeployResult)
    lines = [
        "## Deployed model",
        "",
        f"`{r.compiled}` (AOTInductor, target `{r.target}`, device `{r.device}`).",
    ]
    ev_path = s.dir / "evaluation.json"
    if not ev_path.exists():
        return lines
    ev = json.loads(ev_path.read_text())
    shutil.copyfile(ev_path, s.res / "model_evaluation.json")
    fig = fig_parity(ev, s.figs)
    lines += [
        f"On {ev['n_frames']} held-out DFT frames: energy MAE "
        f"{ev['energy_per_atom_mae_ev'] * 1000:.2f} meV/atom, force MAE "
        f"{ev['force_mae_ev_a']:.4f} eV/Å (RMSE {ev['force_rmse_ev_a']:.4f}), stress MAE "
        f"{ev['stress_mae_ev_a3'] * 1000:.3f} meV/Å³.",
        "",
    ]
    return lines + ([f"![parity](figures/{fig})", ""] if fig else [])


def md_section(s: Section) -> list[str]:
    r = s.result(MdResult)
    fig = fig_md(s.dir / "log.lammps", r.n_atoms, s.figs)
    frac = r.model_fraction_of_step
    lines = [
        "## Molecular dynamics (LAMMPS)",
        "",
        f"{r.n_atoms} atoms, box {[round(x, 3) for x in r.box_angstrom]} Å, "
        f"{r.n_steps} steps of {r.timestep_fs} fs; T = {r.temperature_mean_k:.1f} ± "
        f"{r.temperature_std_k:.1f} K; conserved-energy drift "
        f"{r.conserved_drift_ev_per_atom_ps * 1000:.3f} meV/atom/ps; "
        f"{r.steps_per_second:.2f} steps/s"
        + (f" ({frac * 100:.0f} % of it inside the model)." if frac else "."),
        "",
    ]
    return lines + ([f"![md](figures/{fig})", ""] if fig else [])


def analysis_section(s: Section) -> list[str]:
    path = s.dir / s.result(AnalyzeResult).results
    r = Results.of(load_results(path), path)
    shutil.copyfile(path, s.res / "results.json")
    pngs = sorted(path.parent.glob("*.png"))
    for png in pngs:
        shutil.copyfile(png, s.figs / png.name)
    return [
        "## Analysis (`bundle analyze`, METRICS.md definitions)",
        "",
        f"Planes {r.gb_planes_A} Å, {int(r.n_frames)} frames. ",
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| rho_bulk (Li/Å³) | {_g(r.rho_bulk_per_A3)} |",
        f"| rho_peak (Li/Å³) | {_g(r.rho_peak_per_A3)} |",
        f"| peak_ratio | {_g(r.peak_ratio)} |",
        f"| band_ratio | {_g(r.band_ratio)} |",
        f"| Gamma (Li/nm²) | {_g(r.gamma_per_nm2.mean)} |",
        f"| D_all (cm²/s) | {_g(r.D['all'])} |",
        "",
        *[f"![{png.stem}](figures/{png.name})" for png in pngs],
        "",
    ]


def check_section(s: Section) -> list[str]:
    r = s.result(CheckResult)
    return ["## Reference check", "", f"`{r.reference}`: **{r.verdict}**", ""]


SECTIONS = {
    "dft": dft_section,
    "dataset": dataset_section,
    "train": train_section,
    "deploy": deploy_section,
    "md": md_section,
    "analyze": analysis_section,
    "check": check_section,
}


def main(argv: list[str] | None = None) -> int:
    p = params(argv)
    out = Path(".")
    figs, res, mans = out / "figures", out / "results", out / "manifests"
    for d in (figs, res, mans):
        d.mkdir(exist_ok=True)
    stages, by_kind = [], {}
    for s in p["stages"]:
        d = Path(s["dir"])
        shutil.copyfile(d / "manifest.json", mans / f"{d.name}.json")
        section = Section(s["name"], d, json.loads((d / "manifest.json").read_text()), figs, res)
        stages.append(section)
        by_kind[s["kind"]] = section  # the last stage of each kind
    lines = header(p, stages)
    for kind, write in SECTIONS.items():
        if kind in by_kind:
            lines += write(by_kind[kind])
    atomic.write_file(Path("report.md"), "\n".join(lines).rstrip() + "\n")
    print(f"wrote {Path('report.md').resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
