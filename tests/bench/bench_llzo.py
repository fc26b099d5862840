"""LLZO classical baseline bench, measured in one process: what the Li-only MD design buys,
and what each step of the boundary protocol costs (issue 12).

MD design. System: the Σ5 (210) bicrystal of the first construction (single-atom contact
removal, undoped: 1856 atoms, 540 Li; kept so that these figures stay comparable),
rigid-ion Buckingham + Coulomb, 700 K, one core. Figures (ratios against a named peer of
the same session, absolute numbers beside them):
- `exclude_speedup`: steps/s with `neigh_modify exclude group frame frame` over the peer
  without it (the frozen framework's pair work skipped; forces on Li unchanged);
- `pppm_force_rel_rms` / `dsf_force_rel_rms`: RMS error of the Li forces of the production
  solver (PPPM 1e-4, 8 Å) and of a damped-shifted-force sum (coul/dsf alpha 0.2 / Å, 12 Å)
  against a tight Ewald peer (PPPM 1e-7, 12 Å), relative to the RMS Li force;
- `dsf_time_ratio`: time per step of that DSF sum over PPPM;
- `nve_drift_2fs_over_1fs`: total-energy spread in NVE (Li only) at 2 fs over 1 fs.

Protocol (`protocol`). System: the cpu profile's cell, Li6.25Al0.25La3Zr2O12. CPU seconds
of this process (it runs LAMMPS in process), wall and the load average beside them:
- `scan`: per point (build + minimisation), on a fine grid;
- `gamma_grid`: lowest boundary energy on the study's coarse grid (4 points) and on the
  finer one (32 points: termination 1, shift_x 0..4.35 Å by 1.45, shift_y 0 and 6.48, gap
  0.5 to 2 Å by 0.5) that contains it; the other terminations at shift 0;
- `relax`: the relax stage's input (minimise, 1 ps anneal at 1000 K, quench) on the best
  coarse point and on the control, LAMMPS' loop time of each phase, and the boundary
  energy of the relaxed pair;
- `md_steps_per_s`: 700 K MD on the relaxed boundary with the framework frozen (Li only)
  and mobile (every atom): what `framework: mobile` costs.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from runbook.llzo import bicrystal, lmpdata, md, potential, refs, relax, scan

STEPS = 300


def _system(work: Path) -> Path:
    spec = bicrystal.BicrystalSpec(plane=(2, 1), termination=1, removal="single")
    b = bicrystal.build(spec, 1)
    d = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    return lmpdata.write_data(work / "bicrystal.data", d, "bench")


def _lmp(data: Path, pair: list[str], exclude: bool = True):
    from bundle.core import engines

    lmp = engines.load_lammps().lammps(cmdargs=["-log", "none", "-screen", "none"])
    lmp.commands_string(
        f"units metal\natom_style charge\nread_data {data}\n" + "\n".join(pair) + "\n"
        "group li type 1\ngroup frame type 2 3 4\nneighbor 2.0 bin\n"
        + ("neigh_modify every 1 delay 0 check yes exclude group frame frame\n" if exclude else "")
    )
    return lmp


def _li_forces(lmp) -> np.ndarray:
    lmp.command("run 0")
    n = lmp.get_natoms()
    f = np.array(lmp.numpy.extract_atom("f")[:n])
    ids = np.array(lmp.numpy.extract_atom("id")[:n])
    t = np.array(lmp.numpy.extract_atom("type")[:n])
    o = np.argsort(ids)
    return f[o][t[o] == 1]


def _rate(lmp, dt_fs: float = 2.0) -> float:
    lmp.commands_string(
        f"timestep {dt_fs / 1000}\nvelocity li create 700 4 dist gaussian\n"
        "fix nvt li nvt temp 700 700 0.1\nrun 20"
    )
    t0 = time.perf_counter()
    lmp.command(f"run {STEPS} pre no post no")
    return STEPS / (time.perf_counter() - t0)


def _nve_spread(data: Path, pair: list[str], dt_fs: float, log: Path) -> float:
    """Max - min of the total energy over 1 ps of Li-only NVE after 1 ps of NVT."""
    from bundle.core import engines
    from runbook import lammpslog

    lmp = engines.load_lammps().lammps(cmdargs=["-log", str(log), "-screen", "none"])
    lmp.commands_string(
        f"units metal\natom_style charge\nread_data {data}\n" + "\n".join(pair) + "\n"
        "group li type 1\ngroup frame type 2 3 4\nneighbor 2.0 bin\n"
        "neigh_modify every 1 delay 0 check yes exclude group frame frame\n"
        f"timestep {dt_fs / 1000}\nvelocity li create 700 4 dist gaussian\n"
        f"fix nvt li nvt temp 700 700 0.1\nrun {int(1000 / dt_fs)}\nunfix nvt\nfix nve li nve\n"
        f"thermo_style custom step etotal\nthermo {int(20 / dt_fs)}\nrun {int(1000 / dt_fs)}"
    )
    lmp.close()
    e = lammpslog.thermo_blocks(log.read_text())[-1]["TotEng"]
    return float(e.max() - e.min())


def run(work: Path) -> dict:
    data = _system(work)
    pset = potential.load()
    prod = potential.lammps_lines(pset)
    tight = potential.lammps_lines(pset, cutoff=12.0, accuracy=1e-7)
    dsf = [ln for ln in prod if not ln.startswith(("pair_style", "kspace", "pair_coeff"))]
    dsf += ["pair_style born/coul/dsf 0.2 12.0", "pair_coeff * * 0.0 1.0 0.0 0.0 0.0"]
    for ln in prod:
        if ln.startswith("pair_coeff") and not ln.startswith("pair_coeff * *"):
            w = ln.split("#")[0].split()
            dsf.append(f"pair_coeff {w[1]} {w[2]} {w[3]} {w[4]} 0.0 {w[5]} 0.0")

    ref = _li_forces(_lmp(data, tight))
    rms = float(np.sqrt((ref**2).sum(axis=1).mean()))
    err = {}
    for name, pair in (("pppm", prod), ("dsf", dsf)):
        f = _li_forces(_lmp(data, pair))
        err[name] = float(np.sqrt(((f - ref) ** 2).sum(axis=1).mean())) / rms

    rate_ex = _rate(_lmp(data, prod, exclude=True))
    rate_all = _rate(_lmp(data, prod, exclude=False))
    rate_dsf = _rate(_lmp(data, dsf, exclude=True))
    spread = {dt: _nve_spread(data, prod, dt, work / f"nve{dt:g}.log") for dt in (1.0, 2.0)}
    return {
        "system": "LLZO Σ5 (210) bicrystal, 1856 atoms (540 Li), 700 K, 1 core",
        "steps_per_s_exclude": round(rate_ex, 1),
        "steps_per_s_no_exclude_peer": round(rate_all, 1),
        "exclude_speedup": round(rate_ex / rate_all, 3),
        "li_force_rms_eV_A": round(rms, 3),
        "pppm_force_rel_rms": float(f"{err['pppm']:.3g}"),
        "dsf_force_rel_rms": float(f"{err['dsf']:.3g}"),
        "steps_per_s_dsf": round(rate_dsf, 1),
        "dsf_time_ratio": round(rate_ex / rate_dsf, 3),
        "nve_etotal_spread_eV": {"1fs": round(spread[1.0], 4), "2fs": round(spread[2.0], 4)},
        "nve_drift_2fs_over_1fs": round(spread[2.0] / spread[1.0], 3),
        "protocol": protocol(work / "protocol"),
    }


# ------------------------------------------------------------------- protocol (issue 12)

BASE = bicrystal.BicrystalSpec(plane=(2, 1), termination=1, dopant="Al", dopant_level=0.25)
COARSE = scan.ScanGrid(termination=(1,), shift_x_A=(0.0, 2.9), shift_y_A=(0.0, 6.48), gap_A=(1.0,))
FINE = scan.ScanGrid(termination=(1,), shift_x_A=(0.0, 1.45, 2.9, 4.35),
                     shift_y_A=(0.0, 6.48), gap_A=(0.5, 1.0, 1.5, 2.0))  # fmt: skip
TERMINATIONS = scan.ScanGrid(termination=(0, 2, 3), gap_A=(1.0, 2.0))


def _in(folder: Path, fn):
    here = Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    try:
        return fn()
    finally:
        os.chdir(here)


def _relax(folder: Path, spec: bicrystal.BicrystalSpec) -> dict:
    b = bicrystal.build(spec, 1)
    d = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    folder.mkdir(parents=True)
    lmpdata.write_data(folder / "in.data", d, "bench")
    relax.render(relax.RelaxParams(anneal_steps=1000), folder, "in.data")
    c0, t0 = time.process_time(), time.perf_counter()
    _in(folder, lambda: md.run_input(folder / "in.lammps"))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    log = (folder / "log.lammps").read_text()
    loops = [float(x) for x in re.findall(r"Loop time of (\S+)", log)]
    ph = relax.phases(log)
    return {"cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "loop_s": [round(x, 1) for x in loops], "fmax_eV_A": ph["min2"]["fmax_eV_A"],
            "energy_eV": ph["min2"]["energy_eV"]}  # fmt: skip


def _md_rate(folder: Path, data_in: Path, framework: str) -> float:
    folder.mkdir(parents=True)
    p = md.MDParams(temperature_K=700, steps=200, timestep_fs=1.0, velocity_seed=3,
                    thermo_every=100, framework=framework)  # fmt: skip
    md.render(p, folder, str(data_in))
    _in(folder, lambda: md.run_input(folder / "in.lammps"))
    return md.collect(folder).steps_per_s


def protocol(work: Path) -> dict:
    pset = potential.load()
    t0 = time.perf_counter()
    fine = scan.run(BASE, FINE, 1, pset)
    terms = scan.run(BASE, TERMINATIONS, 1, pset)
    coarse_keys = {(p["termination"], tuple(p["shift_A"]), p["gap_A"]) for p in COARSE.points()}
    pts = [p for p in fine["points"] if "gamma_J_m2" in p]
    coarse = [p for p in pts if (p["termination"], tuple(p["shift_A"]), p["gap_A"]) in coarse_keys]
    best_f, best_c = (
        min(pts, key=lambda p: p["gamma_J_m2"]),
        min(coarse, key=lambda p: p["gamma_J_m2"]),
    )
    (work / "scan_fine.json").write_text(json.dumps(fine, indent=1))
    gb = _relax(work / "relax_gb", scan.spec_at(BASE, best_c))
    ctrl = _relax(work / "relax_control", replace(BASE, control=True))
    final = work / "relax_gb" / "final.data"
    counts = {
        k: lmpdata.read_data(work / k / "final.data").counts()
        for k in ("relax_gb", "relax_control")
    }
    unit_of = {v: k for k, v in refs.UNIT_OF.items()}
    mu = {unit_of[u]: e for u, e in fine["oxide_mu_eV"].items()}
    box = lmpdata.read_data(final).box
    gamma = refs.boundary_energy(gb["energy_eV"], counts["relax_gb"], ctrl["energy_eV"],
                                 counts["relax_control"], box[0] * box[1], mu)  # fmt: skip
    return {
        "system": "LLZO Σ5 (210) Li6.25Al0.25, cpu profile cell, classical set, 1 core",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "scan": {
            "cpu_s_per_point": round(sum(p["cpu_s"] for p in pts) / len(pts), 1),
            "points": len(pts),
            "cpu_s_fine_grid_total": fine["cpu_s"],
            "wall_s_fine_grid_total": fine["wall_s"],
        },
        "gamma_grid": {
            "coarse_min_J_m2": best_c["gamma_J_m2"],
            "coarse_best": {k: best_c[k] for k in ("termination", "shift_A", "gap_A")},
            "fine_min_J_m2": best_f["gamma_J_m2"],
            "fine_best": {k: best_f[k] for k in ("termination", "shift_A", "gap_A")},
            "fine_minus_coarse_J_m2": round(best_f["gamma_J_m2"] - best_c["gamma_J_m2"], 4),
            "fine_all": [[p["shift_A"], p["gap_A"], p["gamma_J_m2"]] for p in pts],
            "terminations": [
                [p["termination"], p["gap_A"], p.get("gamma_J_m2")] for p in terms["points"]
            ],  # fmt: skip
        },
        "relax": {
            "boundary": gb,
            "control": ctrl,
            "gamma_J_m2": gamma.gamma_J_m2,
            "removed_units": gamma.removed_units,
        },  # fmt: skip
        "md_steps_per_s": {
            "frozen": _md_rate(work / "md_frozen", final, "frozen"),
            "mobile": _md_rate(work / "md_mobile", final, "mobile"),
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }
