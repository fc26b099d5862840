"""Phase 4, engines: stored real outputs recomputed here and compared
(bundle/references/engines.yaml, validated by bundle.verify.common.EngineReferences).

- QE: the SCF energy and forces vs the stored ones; 1 vs N MPI ranks.
- The packaged model compiled HERE (AOTInductor artifacts are machine specific), then per
  device (each GPU in turn, else the CPU): its forces vs the stored ones, and LAMMPS
  driven by it through the inputs production renders (bundle.verify.worker: the md
  stage's data file and `templates/lammps/setup-fix-external.lmp.j2`) vs its Python
  forces, energy and pressure.
- The shipped DeePMD-kit model (cpu profile): DeePMD-kit's Python forces vs the stored
  ones, and LAMMPS `pair_style deepmd` through the production setup
  (`templates/lammps/setup-deepmd.lmp.j2`; bundle.verify.deepmd_worker) vs them.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from ase.io import read

from bundle import manifest as mf
from bundle import pack
from bundle.core.errors import BundleError, InputError
from bundle.verify.common import (
    E_COMPILE,
    E_DEEPMD,
    E_LAMMPS,
    E_MODEL,
    E_QE,
    E_QE_RANKS,
    FAIL,
    PASS,
    SKIP,
    Check,
    Context,
    DeepmdForces,
    LammpsTolerance,
    ModelForces,
    QeScf,
    fresh,
    judge,
    references,
    within,
)
from bundle.verify.images import expected_images
from runbook import launchers, sizing
from runbook.qe import RY_PER_BOHR_TO_EV_PER_A, parse_pw_output

PH = "engines"


def _launcher(ctx: Context, np_: int, gpus: int = 0):
    mode = ctx.opts.engines_in
    if mode == "auto":
        mode = "host" if ctx.opts.profile == "cpu" else "image"
    if mode == "host":
        return launchers.Mpi(np=np_, threads=1)
    ref = (ctx.images or expected_images(ctx) or [{"ref": ""}])[0]["ref"]
    runtime = (
        "apptainer" if ctx.installed and ctx.record.get("runtime") == "apptainer" else "docker"
    )
    return launchers.Container(runtime, ref, binds=(str(ctx.work),), np=np_, gpus=gpus)


def _run(
    ctx: Context, argv: tuple[str, ...], cwd: Path, log: str, np_: int = 1, mpi=False, needs=()
):
    """One engine command through the launcher; its log is kept for the proofpack."""
    cmd = launchers.Command(argv, log, mpi=mpi, needs=needs)
    rc = launchers.run(_launcher(ctx, np_, gpus=len(ctx.gpus) if ctx.gpus else 0), cmd, cwd)
    shutil.copyfile(cwd / log, ctx.logs / f"{cwd.name}-{log}")
    return rc


def _find_pseudo(name: str) -> Path:
    for d in pack.pseudo_dirs():
        if (d / name).is_file():
            return d / name
    raise InputError(name, "(pseudopotential)", "not found", f"look in {pack.pseudo_dirs()}")


def _pw(ctx: Context, ref: QeScf, np_: int):
    """pw.x on the stored input with `np_` ranks: (parsed output, seconds)."""
    src = pack.references_dir() / ref.input
    d = fresh(ctx.work / f"qe-np{np_}")
    shutil.copyfile(src, d / src.name)
    (d / "pseudo").mkdir()
    for name in ref.pseudopotentials:
        shutil.copyfile(_find_pseudo(name), d / "pseudo" / name)
    t0 = time.perf_counter()
    rc = _run(ctx, ("pw.x", "-in", src.name), d, "pw.out", np_=np_, mpi=True)
    if rc != 0:
        raise BundleError(f"pw.x exited {rc}; log {d / 'pw.out'}")
    try:
        out = parse_pw_output((d / "pw.out").read_text(errors="replace"), ref.nat, "pw.out")
    except BundleError as e:
        raise BundleError(f"{e}; log {d / 'pw.out'}") from None
    return out, time.perf_counter() - t0


def engine_qe(ctx: Context, ref: QeScf) -> list[Check]:
    res = {}
    for np_ in ref.ranks:
        try:
            res[np_] = _pw(ctx, ref, np_)
        except BundleError as e:
            return [Check(PH, f"qe-np{np_}", FAIL, str(e), E_QE)]
    n0 = ref.ranks[0]
    base, secs = res[n0]
    ctx.facts["qe_version"] = base.version
    profile = ctx.opts.profile
    what = f"pw.x {base.version}, {ref.nat} atoms, {secs:.1f} s"
    e = ref.energy_ry
    out = [
        judge(PH, "qe-energy", base.energy_ry, e.value, e.tolerance.of(profile), "Ry", E_QE, what)
    ]
    f = base.forces_ev_a / RY_PER_BOHR_TO_EV_PER_A
    dev = float(np.abs(f - np.asarray(ref.forces_ry_bohr.value)).max())
    ftol = ref.forces_ry_bohr.tolerance.of(profile)
    out.append(within(PH, "qe-forces", dev, ftol, "Ry/Bohr", E_QE, "max |F - F_ref|"))
    rt = ref.rank_tolerance
    for np_ in ref.ranks[1:]:
        other = res[np_][0]
        de = abs(other.energy_ry - base.energy_ry)
        df = float(np.abs(other.forces_ev_a - base.forces_ev_a).max() / RY_PER_BOHR_TO_EV_PER_A)
        what = f"{n0} vs {np_} ranks"
        name = f"qe-ranks-{n0}v{np_}"
        out += [
            within(PH, f"{name}-energy", de, rt.energy_ry, "Ry", E_QE_RANKS, f"{what}: |dE|"),
            within(PH, f"{name}-forces", df, rt.forces_ry_bohr, "Ry/Bohr", E_QE_RANKS,
                   f"{what}: max |dF|"),
        ]  # fmt: skip
    return out


def _compile(ctx: Context, ref: ModelForces, d: Path) -> Check:
    model = pack.references_dir() / ref.model
    shutil.copyfile(model, d / model.name)
    dev = "cuda" if ctx.gpus else "cpu"
    argv = ("nequip-compile", model.name, "model.nequip.pt2", "--mode", "aotinductor",
            "--device", dev, "--target", "ase")  # fmt: skip
    t0 = time.perf_counter()
    rc = _run(ctx, argv, d, "compile.log")
    secs = time.perf_counter() - t0
    if rc != 0 or not (d / "model.nequip.pt2").is_file():
        why = f"nequip-compile exited {rc}; log {d / 'compile.log'}"
        return Check(PH, "model-compile", FAIL, why, E_COMPILE)
    why = f"aotinductor, {dev}, {secs:.0f} s"
    return Check(PH, "model-compile", PASS, why, value=round(secs, 1), unit="s")


def engine_model(ctx: Context, ref: ModelForces) -> list[Check]:
    """Compile the packaged model here, then per device its forces and LAMMPS through the
    production inputs (`python -m bundle.verify model-check`, bundle.verify.worker)."""
    d = fresh(ctx.work / "model")
    structure = pack.references_dir() / ref.structure
    shutil.copyfile(structure, d / structure.name)
    out = [_compile(ctx, ref, d)]
    if out[0].status == FAIL:
        return out
    fref = np.asarray(read(structure).get_forces())
    for device in [f"cuda:{g['index']}" for g in ctx.gpus] or ["cpu"]:
        tag = device.replace(":", "")
        res = d / f"forces-{tag}.json"
        argv = ("python", "-m", "bundle.verify", "model-check", "--compiled", "model.nequip.pt2",
                "--structure", structure.name, "--r-max", f"{ref.r_max_A!r}", "--device",
                device, "--out", res.name)  # fmt: skip
        if ctx.opts.bench:
            argv += ("--bench", str(ref.bench_atoms))
        rc = _run(ctx, argv, d, f"model-check-{tag}.log")
        if rc != 0 or not res.is_file():
            why = f"model evaluation exited {rc}; log {d / f'model-check-{tag}.log'}"
            out.append(Check(PH, f"model-forces[{device}]", FAIL, why, E_MODEL))
            continue
        r = json.loads(res.read_text())
        f = np.asarray(r["forces_ev_a"])
        dev = float(np.abs(f - fref).max())
        tol = ref.tolerance_ev_a.of(ctx.opts.profile)
        what = f"max |F - F_ref| over {len(f)} atoms"
        out.append(within(PH, f"model-forces[{device}]", dev, tol, "eV/A", E_MODEL, what))
        out += lammps_checks(r, ref.lammps_tolerance, device)
        if "bench" in r:
            out.append(_record_bench(ctx, ref, device, r["bench"]))
    return out


def lammps_checks(r: dict, lt: LammpsTolerance, device: str, prefix: str = "") -> list[Check]:
    """LAMMPS (driven through the production inputs) vs the model called from Python, from
    a model-check result (bundle.verify.worker.model_check, deepmd_worker.deepmd_check)."""
    f, fl = np.asarray(r["forces_ev_a"]), np.asarray(r["lammps_forces_ev_a"])
    dp = abs(r["lammps_press_bar"] - r["press_bar"]) / max(abs(r["press_bar"]), 1.0)
    de = abs(r["lammps_energy_ev"] - r["energy_ev"])
    name = f"{prefix}lammps"
    return [
        within(PH, f"{name}-forces[{device}]", float(np.abs(fl - f).max()), lt.forces_ev_a,
               "eV/A", E_LAMMPS, "max |F_lammps - F_python|"),
        within(PH, f"{name}-energy[{device}]", de, lt.energy_ev, "eV", E_LAMMPS,
               "|E_lammps - E_python|"),
        within(PH, f"{name}-virial[{device}]", dp, lt.pressure_rel, "", E_LAMMPS,
               f"|P_lammps - P_python|/|P| (P = {r['press_bar']:.1f} bar)"),
    ]  # fmt: skip


def engine_deepmd(ctx: Context, ref: DeepmdForces) -> list[Check]:
    """The shipped DeePMD model here (CPU): its Python forces vs the stored ones, and
    LAMMPS `pair_style deepmd` through the production setup vs its Python values."""
    if ctx.opts.profile != "cpu":  # the reference is a TensorFlow model of the cpu image
        why = "the shipped DeePMD reference is the cpu image's TensorFlow model"
        return [Check(PH, "deepmd-forces", SKIP, why)]
    d = fresh(ctx.work / "deepmd")
    for name in (ref.model, ref.structure):
        shutil.copyfile(pack.references_dir() / name, d / name)
    argv = ("python", "-m", "bundle.verify", "deepmd-check", "--model", ref.model,
            "--structure", ref.structure, "--out", "forces-deepmd.json")  # fmt: skip
    rc = _run(ctx, argv, d, "deepmd-check.log", needs=("deepmd",))
    res = d / "forces-deepmd.json"
    if rc != 0 or not res.is_file():
        why = f"DeePMD evaluation exited {rc}; log {d / 'deepmd-check.log'}"
        return [Check(PH, "deepmd-forces[cpu]", FAIL, why, E_DEEPMD)]
    r = json.loads(res.read_text())
    fref = np.asarray(read(d / ref.structure).get_forces())
    dev = float(np.abs(np.asarray(r["forces_ev_a"]) - fref).max())
    tol = ref.tolerance_ev_a.of(ctx.opts.profile)
    what = f"max |F - F_ref| over {len(fref)} atoms"
    out = [within(PH, "deepmd-forces[cpu]", dev, tol, "eV/A", E_DEEPMD, what)]
    return out + lammps_checks(r, ref.lammps_tolerance, "cpu", prefix="deepmd-")


def _record_bench(ctx: Context, ref: ModelForces, device: str, b: dict) -> Check:
    """One throughput point into the site table `bundle size` reads (runbook.sizing)."""
    name = "cpu" if device == "cpu" else ctx.gpus[int(device.split(":")[1])]["model"]
    point = sizing.Point(
        gpus=1, atoms=int(b["atoms"]), atom_steps_per_s=float(b["atom_steps_per_s"])
    )
    source = f"bundle verify --bench on {device}, {mf.now_utc()[:10]}"
    path = sizing.record_point(name, ref.label, ref.r_max_A, point, source)
    why = f"{b['atoms']} atoms x {b['steps']} NVE steps in {b['seconds']:.1f} s -> {path.name}"
    value = round(point.atom_steps_per_s, 1)
    return Check(PH, f"bench[{device}]", PASS, why, value=value, unit="atom-steps/s")


def phase_engines(ctx: Context) -> list[Check]:
    refs = references()
    out = engine_qe(ctx, refs.qe_scf)
    if refs.model_forces is not None:
        out += engine_model(ctx, refs.model_forces)
    else:
        out.append(Check(PH, "model-forces", SKIP, "no stored model reference"))
    if refs.deepmd_forces is not None:
        out += engine_deepmd(ctx, refs.deepmd_forces)
    else:
        out.append(Check(PH, "deepmd-forces", SKIP, "no stored DeePMD reference"))
    return out
