"""A DeePMD committee evaluated in Python on given frames (DeePMD-kit's `DeepPot`, CPU),
returned as the same deviation record LAMMPS' `pair_style deepmd ... out_file` gives
(checks.deviation.from_forces): the out-of-domain verdict on a structure before (or
without) running MD on it.

TensorFlow runs in its own process (`python -m runbook.deepmd.evaluate SPEC`): the
caller may hold torch or LAMMPS, and a TF import there costs seconds and memory. The
worker writes the committee's forces (M, F, N, 3) to `forces.npy` beside the spec.

`deeppot_predictor` is one model as a function of a frame (energy eV, forces eV/Å), for a
process that already runs TensorFlow (the potential study's validate step, backend
`deepmd`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bundle.core.errors import EngineError
from checks import deviation


def committee_record(
    models: list[Path], frames: list, work: Path, timeout_s: float = 600
) -> deviation.DeviationRecord:
    """The deviation record of `models` (frozen .pb, >= 2) on `frames` (ase Atoms, the
    same atoms in each: a trajectory or one structure). `work`: a scratch folder."""
    if len(models) < 2:
        raise ValueError("a committee needs >= 2 models")
    n = {len(a) for a in frames}
    if len(n) != 1:
        raise ValueError(f"frames must hold the same atoms, got sizes {sorted(n)}")
    work.mkdir(parents=True, exist_ok=True)
    spec = {
        "models": [str(Path(m).resolve()) for m in models],
        "frames": [
            {"x": a.positions.reshape(-1).tolist(), "box": a.cell.array.reshape(-1).tolist(),
             "symbols": a.get_chemical_symbols()}
            for a in frames
        ],
    }  # fmt: skip
    path = work / "committee-eval.json"
    path.write_text(json.dumps(spec))
    argv = [sys.executable, "-m", "runbook.deepmd.evaluate", str(path)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise EngineError(f"committee evaluation failed ({r.returncode}): {' | '.join(tail)}")
    forces = np.load(work / "forces.npy")
    return record_of(forces, frames)


def record_of(forces: np.ndarray, frames: list) -> deviation.DeviationRecord:
    """The record of committee forces (M, F, N, 3) on `frames` (z wrapped into the cell
    along its third axis; box_z from the cell's z length)."""
    first = frames[0]
    names = sorted(set(first.get_chemical_symbols()), key=first.get_chemical_symbols().index)
    types = [names.index(s) for s in first.get_chemical_symbols()]
    z = np.array([(a.get_scaled_positions(wrap=True)[:, 2]) * a.cell[2, 2] for a in frames])
    box_z = np.array([[0.0, a.cell[2, 2]] for a in frames])
    return deviation.from_forces(
        forces, step=np.arange(len(frames)), time_ps=np.zeros(len(frames)),
        ids=np.arange(1, len(first) + 1), types=np.array(types), type_names=names,
        z=z, box_z=box_z, source=f"deepmd DeepPot committee of {forces.shape[0]} (python)",
    )  # fmt: skip


def deeppot_evaluator(model: str):
    """`evaluate(atoms) -> (energy eV, forces (N, 3) eV/Å, virial (3, 3) eV)` of the frozen
    model `model` (DeePMD's own type map: a symbol it does not know raises ValueError
    naming it and the map)."""
    from deepmd.infer import DeepPot

    dp = DeepPot(model)
    tmap = dp.get_type_map()

    def evaluate(atoms) -> tuple[float, np.ndarray, np.ndarray]:
        syms = atoms.get_chemical_symbols()
        unknown = sorted(set(syms) - set(tmap))
        if unknown:
            raise ValueError(f"{model} does not know {', '.join(unknown)} (type map {tmap})")
        types = np.array([tmap.index(s) for s in syms])
        cell = atoms.cell.array.reshape(1, -1) if atoms.pbc.any() else None
        e, f, v = dp.eval(atoms.positions.reshape(1, -1), cell, types)
        return (float(np.ravel(e)[0]), np.asarray(f, float).reshape(-1, 3),
                np.asarray(v, float).reshape(3, 3))  # fmt: skip

    return evaluate


def deeppot_predictor(model: str):
    """`predict(atoms) -> (energy, forces (N, 3))`: deeppot_evaluator without the virial."""
    evaluate = deeppot_evaluator(model)

    def predict(atoms) -> tuple[float, np.ndarray]:
        e, f, _ = evaluate(atoms)
        return e, f

    return predict


def _worker(spec_path: str) -> None:
    from deepmd.infer import DeepPot

    spec = json.loads(Path(spec_path).read_text())
    out = []
    for model in spec["models"]:
        dp = DeepPot(model)
        tmap = dp.get_type_map()
        per = []
        for fr in spec["frames"]:
            types = np.array([tmap.index(s) for s in fr["symbols"]])
            _, f, _ = dp.eval(np.array(fr["x"])[None], np.array(fr["box"])[None], types)
            per.append(f.reshape(-1, 3))
        out.append(per)
    np.save(Path(spec_path).with_name("forces.npy"), np.array(out, float))


if __name__ == "__main__":
    _worker(sys.argv[1])
