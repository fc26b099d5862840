"""A short MD stability test of a model on bulk LLZO: LAMMPS + `fix external` (CPU).

The 96-atom primitive LLZO cell (runbook.potential.cells, Li ordering `ordering_seed`),
every atom integrated, NVT (Nose-Hoover) at `temperature_K` from Maxwell-Boltzmann
velocities, `units metal`, forces/energy/virial from the model by the path of the
production CPU MD of its backend: an Allegro model through the `fix external` callback of
runbook.mdcoupling, a DeePMD model through `pair_style deepmd` (DeePMD-kit's LAMMPS plugin;
the process must start with bundle.core.engines.deepmd_env). Every `check_every`
steps the shortest interatomic distance and the temperature are recorded. The run is
stable when no pair ever comes closer than `min_pair_A` and the mean temperature of the
second half lies within +-`temperature_band` (a fraction) of the target; a model that
lets atoms collapse or heats up without bound fails one of the two.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism
from ase.io import write
from matscipy.neighbours import neighbour_list

from bundle.core import engines
from runbook import mdcoupling
from runbook.potential import cells
from runbook.potential.config import Stability


def min_distance(atoms: Atoms, cutoff: float = 4.0) -> float:
    d = neighbour_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else cutoff


def _pair(backend: str, model: str, type_names: list[str], r_max: float) -> list[str]:
    """The lines that make the model the force field."""
    if backend == "deepmd":
        return [f"pair_style deepmd {model}", f"pair_coeff * * {' '.join(type_names)}"]
    return [
        f"pair_style zero {r_max:.4f}", "pair_coeff * *",
        f"fix {mdcoupling.FIX_ID} all external pf/callback 1 1",
        f"fix_modify {mdcoupling.FIX_ID} energy yes virial yes",
    ]  # fmt: skip


def _setup(s: Stability, data: str, pair: list[str]) -> list[str]:
    t, damp = s.temperature_K, s.tdamp_fs / 1000.0
    return [
        "units metal", "atom_style atomic", "boundary p p p", "atom_modify map array",
        f"read_data {data}", *pair, "neighbor 1.0 bin",
        f"timestep {s.timestep_fs / 1000.0:.6f}",
        f"velocity all create {t:.2f} {s.seed} dist gaussian mom yes rot no",
        f"fix integrate all nvt temp {t:.2f} {t:.2f} {damp:.6f}",
        "thermo_style custom step temp pe etotal", "thermo 0",
    ]  # fmt: skip


def run(
    model: str, type_names: list[str], r_max: float, s: Stability, device: str = "cpu",
    backend: str = "allegro",
) -> dict:  # fmt: skip
    """Run the test; returns the record (see the module docstring) with `stable`."""
    atoms = cells.primitive_cell(s.ordering_seed)
    type_of = {sym: k + 1 for k, sym in enumerate(type_names)}
    prism = Prism(atoms.cell.array)
    temps, dmins, steps = [], [], []
    coupling = None
    with tempfile.TemporaryDirectory(prefix="mlmd-stability-") as tmp:
        data = Path(tmp) / "cell.data"
        write(data, atoms, format="lammps-data", atom_style="atomic", specorder=type_names,
              masses=True, units="metal")  # fmt: skip
        lmp = engines.load_lammps().lammps(cmdargs=["-log", "none", "-screen", "none"])
        try:
            if backend == "deepmd":
                engines.require_deepmd_plugin(lmp)
            lmp.commands_list(_setup(s, str(data), _pair(backend, model, type_names, r_max)))
            if backend != "deepmd":
                calc = mdcoupling.load_calculator(model, device=device)
                types = {t: sym for sym, t in type_of.items()}
                coupling = mdcoupling.ModelCoupling(lmp, calc, types).attach()
            t0 = time.perf_counter()
            lmp.command("run 0")
            for k in range(s.steps // s.check_every):
                lmp.command(f"run {s.check_every}")
                if coupling is not None and coupling.error is not None:
                    raise RuntimeError(f"the model failed inside the MD: {coupling.error}")
                x = np.array(lmp.gather_atoms("x", 1, 3)[:]).reshape(len(atoms), 3)
                cur = atoms.copy()
                cur.positions = prism.vector_to_ase(x, wrap=True)
                dmins.append(min_distance(cur))
                temps.append(float(lmp.get_thermo("temp")))
                steps.append((k + 1) * s.check_every)
            wall = time.perf_counter() - t0
        finally:
            lmp.close()
    # pair_style deepmd: the model's time is inside LAMMPS' run, not measured apart
    model_s = coupling.model_seconds if coupling is not None else wall
    return judge(s, steps, temps, dmins, wall, len(atoms), model_s)


def judge(s: Stability, steps, temps, dmins, wall: float, n_atoms: int, model_s: float) -> dict:
    t = np.array(temps)
    t_mean = float(t[len(t) // 2 :].mean()) if len(t) else float("nan")
    band = [s.temperature_K * (1 - s.temperature_band), s.temperature_K * (1 + s.temperature_band)]
    reasons = []
    if not len(t) or not np.isfinite(t).all():
        reasons.append("the temperature is not finite")
    if dmins and min(dmins) < s.min_pair_A:
        k = int(np.argmin(dmins))
        reasons.append(f"a pair came to {min(dmins):.3f} Å < {s.min_pair_A} Å (step {steps[k]})")
    if not band[0] <= t_mean <= band[1]:
        reasons.append(
            f"second-half mean T {t_mean:.1f} K outside [{band[0]:.0f}, {band[1]:.0f}] K"
        )
    return {
        "stable": not reasons,
        "reasons": reasons,
        "atoms": n_atoms,
        "steps": s.steps,
        "timestep_fs": s.timestep_fs,
        "temperature_K": s.temperature_K,
        "temperature_band_K": band,
        "temperature_second_half_mean_K": round(t_mean, 2),
        "min_pair_A": round(min(dmins), 4) if dmins else None,
        "min_pair_bound_A": s.min_pair_A,
        "series": {
            "step": steps,
            "T_K": [round(v, 2) for v in temps],
            "min_pair_A": [round(v, 4) for v in dmins],
        },  # fmt: skip
        "wall_s": round(wall, 2),
        "model_s": round(model_s, 2),
        "atom_steps_per_s": round(n_atoms * s.steps / wall, 1) if wall > 0 else None,
    }
