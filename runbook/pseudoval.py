"""Validation of the pseudopotential set by equilibrium volumes of small reference crystals:
pw.x E(V) at >= 7 volumes, a third-order Birch-Murnaghan fit, a0 against experiment.

    python -m runbook.pseudoval lattice  [--work DIR]   # the table, into pseudo.yaml
    python -m runbook.pseudoval cutoffs  [--work DIR]   # pressure vs cutoff (convergence)
    python -m runbook.pseudoval kpoints  [--work DIR]   # pressure vs k spacing

The experimental values, their sources and the tolerance live in `runbook/pseudo/pseudo.yaml`
(`lattice:`); this module writes each crystal's `result` there. Cubic crystals (c-ZrO2,
Li2O) have one parameter; for the hexagonal ones (h-La2O3, alpha-Al2O3) c/a and the
internal coordinates are held at the experimental values and V0 is fitted, reported as
a0 = (V0 / V0_exp)^(1/3) a_exp (the same relative error as V0^(1/3)).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from bundle.core.errors import BundleError, CheckFailed, InputError
from runbook import pseudogen, pwscf, qe, refcells
from runbook.dftcost import SPECIES

EV_A3_TO_GPA = 160.21766208
BUILDERS = {
    "c-ZrO2": lambda a, c_a: refcells.fluorite("Zr", "O", a),
    "Li2O": lambda a, c_a: refcells.antifluorite("Li", "O", a),
    "h-La2O3": lambda a, c_a: refcells.la2o3(a, c_a),
    "a-Al2O3": lambda a, c_a: refcells.corundum(a, c_a),
}


@dataclass(frozen=True)
class Fit:
    v0: float  # Å^3 per cell
    e0: float  # eV
    b0_gpa: float
    b0_prime: float
    rms_mev: float  # fit residual per cell


def birch_murnaghan(v, e0, v0, b0, bp):
    """Third-order Birch-Murnaghan E(V) (b0 in eV/Å^3)."""
    x = (v0 / v) ** (2.0 / 3.0) - 1.0
    return e0 + 9.0 * v0 * b0 / 16.0 * (x**3 * bp + x**2 * (6.0 - 4.0 * (x + 1.0)))


def fit_eos(volumes: np.ndarray, energies: np.ndarray) -> Fit:
    """BM3 fit started from a parabola; refuses a minimum outside the sampled volumes."""
    if len(volumes) < 5:
        raise CheckFailed(f"{len(volumes)} volumes are too few for a 4-parameter fit (>= 5)")
    c2, c1, _ = np.polyfit(volumes, energies, 2)
    if c2 <= 0:
        raise CheckFailed("E(V) is not convex over the sampled volumes")
    v_guess = -c1 / (2 * c2)
    p0 = (energies.min(), v_guess, 2 * c2 * v_guess, 4.0)
    p, _ = curve_fit(birch_murnaghan, volumes, energies, p0=p0, maxfev=20000)
    if not volumes.min() < p[1] < volumes.max():
        raise CheckFailed(f"fitted V0 {p[1]:.3f} Å^3 lies outside the sampled volumes")
    res = energies - birch_murnaghan(volumes, *p)
    rms = 1e3 * float(np.sqrt((res**2).mean()))
    return Fit(float(p[1]), float(p[0]), float(p[2] * EV_A3_TO_GPA), float(p[3]), rms)


def settings_of(block: dict) -> pwscf.Settings:
    return pwscf.Settings(
        ecutwfc_ry=float(block["ecutwfc_ry"]),
        ecutrho_ry=float(block["ecutrho_ry"]),
        kpoint_spacing_inv_angstrom=float(block["kpoint_spacing_inv_angstrom"]),
        conv_thr_per_atom_ry=float(block.get("conv_thr_per_atom_ry", 1e-10)),
        ranks=int(block.get("ranks", 1)),
    )


def lattice_constant(
    name: str, experiment: dict, settings: pwscf.Settings, work: Path, n: int, span: float
) -> dict:
    """E(V) of crystal `name` at `n` volumes V_exp * (1 - span .. 1 + span); fit; compare."""
    if name not in BUILDERS:
        raise InputError(
            pseudogen.TABLE_FILE, f"lattice.{name}", "unknown crystal", str(list(BUILDERS))
        )
    a_exp = float(experiment["a_angstrom"])
    c_a = float(experiment.get("c_over_a", 0.0)) or None
    scales = (1.0 + np.linspace(-span, span, n)) ** (1.0 / 3.0)
    vols, ens = [], []
    for i, s in enumerate(scales):
        atoms = BUILDERS[name](a_exp * s, c_a)
        run = pwscf.run_scf(atoms, SPECIES, settings, work / name, f"v{i:02d}", reuse=True)
        vols.append(float(atoms.get_volume()))
        ens.append(run.result.energy_ev)
    fit = fit_eos(np.array(vols), np.array(ens))
    v_exp = BUILDERS[name](a_exp, c_a).get_volume()
    a0 = float(a_exp * (fit.v0 / v_exp) ** (1.0 / 3.0))
    return {
        "a0_angstrom": round(a0, 4),
        "error_percent": round(100 * (a0 - a_exp) / a_exp, 2),
        "v0_angstrom3": round(fit.v0, 3),
        "b0_gpa": round(fit.b0_gpa, 1),
        "b0_prime": round(fit.b0_prime, 2),
        "fit_rms_mev": round(fit.rms_mev, 3),
        "volumes": n,
        "volume_span": span,
        "energies_ev": [round(e, 6) for e in ens],
        "volumes_angstrom3": [round(v, 4) for v in vols],
    }


def crystal_settings(base: pwscf.Settings, crystal: dict) -> pwscf.Settings:
    """The lattice settings with a crystal's own cutoffs / k spacing where it names them."""
    keys = ("ecutwfc_ry", "ecutrho_ry", "kpoint_spacing_inv_angstrom")
    over = {k: float(crystal[k]) for k in keys if k in crystal}
    return replace(base, **over)


def run_lattice(work: Path, only: list[str] | None = None) -> bool:
    table = pseudogen.load_table()
    block = table.get("lattice")
    if not isinstance(block, dict) or "crystals" not in block:
        raise InputError(pseudogen.TABLE_FILE, "lattice", "missing", "restore it from git")
    settings = settings_of(block["settings"])
    tol = float(block["tolerance_percent"])
    n, span = int(block["volumes"]), float(block["volume_span"])
    ok = True
    for name, cr in block["crystals"].items():
        if only and name not in only:
            continue
        s = crystal_settings(settings, cr)
        res = lattice_constant(name, cr["experiment"], s, work, n, span)
        res.update(ecutwfc_ry=s.ecutwfc_ry, ecutrho_ry=s.ecutrho_ry)
        res["pass"] = abs(res["error_percent"]) <= tol
        pseudogen.update_table(("lattice", "crystals", name, "result"), res)
        ok &= res["pass"]
        verdict = "PASS" if res["pass"] else "FAIL"
        print(
            f"{name:8s} a0 {res['a0_angstrom']:.4f} A  exp {cr['experiment']['a_angstrom']} "
            f"({res['error_percent']:+.2f} %)  B0 {res['b0_gpa']} GPa  {verdict}",
            flush=True,
        )
    return ok


def scan_variants(block: dict, key: str) -> list[tuple[str, pwscf.Settings]]:
    """(label, settings) of the `cutoff_scan` (ecutwfc x dual, one k spacing) or of the
    `kpoint_check` (k spacings at one cutoff) block of pseudo.yaml's `lattice`."""
    scan = block[key]
    base = settings_of(block["settings"])
    if key == "cutoff_scan":
        base = replace(base, kpoint_spacing_inv_angstrom=float(scan["kpoint_spacing_inv_angstrom"]))
        return [
            (f"e{int(e)}", replace(base, ecutwfc_ry=float(e), ecutrho_ry=float(e) * scan["dual"]))
            for e in scan["ecutwfc_ry"]
        ]
    base = replace(base, ecutwfc_ry=float(scan["ecutwfc_ry"]), ecutrho_ry=float(scan["ecutrho_ry"]))
    return [
        (f"k{k:g}", replace(base, kpoint_spacing_inv_angstrom=float(k)))
        for k in scan["kpoint_spacing_inv_angstrom"]
    ]


def run_scan(work: Path, key: str) -> None:
    """Energy per atom and pressure of each crystal at its experimental geometry for each
    variant of the scan `key`; results recorded under lattice.<key>.results."""
    block = pseudogen.load_table()["lattice"]
    out = {}
    for name in block[key]["crystals"]:
        exp = block["crystals"][name]["experiment"]
        atoms = BUILDERS[name](float(exp["a_angstrom"]), float(exp.get("c_over_a", 0.0)) or None)
        rows = []
        for label, s in scan_variants(block, key):
            run = pwscf.run_scf(atoms, SPECIES, s, work / f"{key}-{name}", label, reuse=True)
            p_gpa = -np.trace(run.result.stress_ev_a3) / 3 * EV_A3_TO_GPA
            rows.append(
                {
                    "ecutwfc_ry": s.ecutwfc_ry,
                    "ecutrho_ry": s.ecutrho_ry,
                    "kpoints": qe.kpoint_grid(atoms.cell, s.kpoint_spacing_inv_angstrom),
                    "energy_ev_atom": round(run.result.energy_ev / len(atoms), 5),
                    "pressure_gpa": round(float(p_gpa), 3),
                    "pw_clock": run.pw_clock,
                }
            )
            print(name, rows[-1], flush=True)
        out[name] = rows
        pseudogen.update_table(("lattice", key, "results"), out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runbook.pseudoval", description=__doc__)
    p.add_argument("command", choices=["lattice", "cutoffs", "kpoints"])
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--only", action="append", help="lattice: this crystal only (repeatable)")
    a = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = a.work or Path(tmp)
            if a.command != "lattice":
                run_scan(work, {"cutoffs": "cutoff_scan", "kpoints": "kpoint_check"}[a.command])
                return 0
            return 0 if run_lattice(work, a.only) else 1
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
