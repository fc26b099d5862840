"""Cost of one pw.x SCF of the LLZO cells and related phases at candidate DFT settings,
and the egg-box force error of each cutoff: the measurements behind the cpu toy settings.

    python -m runbook.dftcost llzo   --out DIR [--ranks 2]   # 96-atom LLZO, candidates
    python -m runbook.dftcost phases --out DIR [--ranks 2]   # Al-doped LLZO + small phases

Each SCF runs through `runbook.pwscf.run_scf` (the production template). The egg-box
check: a rattled cell (Gaussian, sigma `RATTLE` Å, seeded) and the same cell translated
rigidly by half a dense-FFT grid step along each axis (plus a few whole steps) must give
the same forces; the largest force difference is the grid error of that cutoff. Results
are appended, one YAML document per SCF, to DIR/results.yaml, with the load average.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import yaml

from bundle.core.errors import BundleError, InputError
from runbook import pwscf, refcells

RATTLE = 0.05  # Å
SEED = 0
SPECIES = {
    "Li": "Li.pbesol-s-rrkjus_psl.0.2.1.UPF",
    "O": "O.pbesol-n-rrkjus_psl.0.1.UPF",
    "La": "La.pbesol-spfn-rrkjus_psl.1.0.0.UPF",
    "Zr": "Zr.pbesol-spn-rrkjus_psl.1.0.0.UPF",
    "Al": "Al.pbesol-n-rrkjus_psl.1.0.0.UPF",
}
# k spacing 0.7 1/Å: a 1x1x1 grid on the 96-atom cell (|b| = 0.685 1/Å).
BASE = pwscf.Settings(30, 240, kpoint_spacing_inv_angstrom=0.7, kpoint_gamma=True, ranks=2)
LLZO_CANDIDATES: dict[str, pwscf.Settings] = {
    "30/240 gamma": BASE,
    "30/240 auto-1x1x1": replace(BASE, kpoint_gamma=False),
    "25/200 gamma": replace(BASE, ecutwfc_ry=25, ecutrho_ry=200),
    "35/280 gamma": replace(BASE, ecutwfc_ry=35, ecutrho_ry=280),
    "40/320 gamma": replace(BASE, ecutwfc_ry=40, ecutrho_ry=320),
    "30/240 gamma conv_thr 1e-8/atom": replace(BASE, conv_thr_per_atom_ry=1e-8),
    "30/240 gamma beta 0.3": replace(BASE, mixing_beta=0.3),
}
EGGBOX = ("25/200 gamma", "30/240 gamma", "35/280 gamma", "40/320 gamma")


def rattled(atoms, seed: int = SEED):
    out = atoms.copy()
    out.positions += np.random.default_rng([seed, 3]).normal(0, RATTLE, out.positions.shape)
    return out


def translated(atoms, fft: tuple[int, int, int], steps: float = 2.5):
    """`atoms` moved rigidly by `steps` dense-grid steps along each cell vector."""
    out = atoms.copy()
    cell = np.asarray(atoms.cell)
    out.positions += sum(cell[i] * steps / fft[i] for i in range(3))
    return out


def record(out: Path, label: str, cell_name: str, run: pwscf.ScfRun, **extra) -> dict:
    r = run.result
    doc = {
        "cell": cell_name,
        "settings": label,
        "nat": len(r.forces_ev_a),
        "energy_ev": round(r.energy_ev, 6),
        "scf_iterations": r.scf_iterations,
        "wall_s": round(run.wall_s, 1),
        "pw_clock": run.pw_clock,
        "fft_dense": list(run.fft_dense),
        "load_1min_before": round(run.load_before, 2),
        **extra,
    }
    with (out / "results.yaml").open("a") as fh:
        fh.write("---\n" + yaml.safe_dump(doc, sort_keys=False))
    print(
        f"{cell_name:28s} {label:34s} {r.scf_iterations:3d} it {run.wall_s:7.1f} s "
        f"({run.pw_clock}; load {run.load_before:.1f}) {extra or ''}",
        flush=True,
    )
    return doc


def llzo(out: Path, ranks: int, only: list[str] | None = None) -> None:
    atoms = rattled(refcells.llzo_primitive(SEED))
    forces = {}
    for label in only or list(LLZO_CANDIDATES):  # in the order asked
        if label not in LLZO_CANDIDATES:
            raise InputError(
                "--only", "value", f"{label!r} is unknown", f"use {list(LLZO_CANDIDATES)}"
            )
        s = replace(LLZO_CANDIDATES[label], ranks=ranks)
        folder = out / label.replace("/", "-").replace(" ", "_")
        run = pwscf.run_scf(atoms, SPECIES, s, folder, "llzo96", reuse=True)
        forces[label] = run.result.forces_ev_a
        extra = {}
        if label in EGGBOX:
            shifted = translated(atoms, run.fft_dense)
            moved = pwscf.run_scf(shifted, SPECIES, s, folder, "moved", reuse=True)
            d = np.abs(moved.result.forces_ev_a - run.result.forces_ev_a)
            de = (moved.result.energy_ev - run.result.energy_ev) / len(atoms)
            extra = {
                "eggbox_max_dforce_ev_a": round(float(d.max()), 4),
                "eggbox_rms_dforce_ev_a": round(float(np.sqrt((d**2).mean())), 4),
                "eggbox_denergy_ev_atom": round(float(de), 5),
            }
        record(out, label, "LLZO Li28La12Zr8O48 rattled", run, **extra)
    np.savez(out / "llzo_forces.npz", **{k: v for k, v in forces.items()})


def phases(out: Path, ranks: int, settings: pwscf.Settings = BASE) -> None:
    """Al-doped LLZO (Γ) and the small related phases (automatic k grid at 0.3 1/Å)."""
    s = replace(settings, ranks=ranks)
    small = replace(s, kpoint_gamma=False, kpoint_spacing_inv_angstrom=0.3, kpoint_shift=False)
    cells = {
        "LLZO:Al Li25Al1La12Zr8O48": (rattled(refcells.llzo_al_primitive(SEED)), s),
        "Li2O (3 atoms)": (refcells.antifluorite("Li", "O", 4.61), small),
        "c-ZrO2 (3 atoms)": (refcells.fluorite("Zr", "O", 5.07), small),
        "h-La2O3 (5 atoms)": (refcells.la2o3(3.937), small),
        "a-Al2O3 (10 atoms)": (refcells.corundum(4.759), small),
    }
    for name, (atoms, st) in cells.items():
        folder = out / name.split()[0].replace(":", "-")
        run = pwscf.run_scf(atoms, SPECIES, st, folder, "scf")
        k = "gamma" if st.kpoint_gamma else "auto"
        record(out, f"{st.ecutwfc_ry:g}/{st.ecutrho_ry:g} {k}", name, run)
    (out / "phases_settings.yaml").write_text(yaml.safe_dump(asdict(s)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runbook.dftcost", description=__doc__)
    p.add_argument("what", choices=["llzo", "phases"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--only", action="append", help="a candidate label (repeatable)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        llzo(a.out, a.ranks, a.only) if a.what == "llzo" else phases(a.out, a.ranks)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
