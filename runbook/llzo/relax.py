"""The relax stage of the LLZO study: minimise -> anneal -> minimise, then what it left.

    render(params, stage_dir, data_in)          -> in.lammps (templates/lammps/llzo_relax.in.j2)
    python -m runbook.llzo.md in.lammps         (cpu: the LAMMPS module; h200: `lmp`, Kokkos)
    python -m runbook.llzo.relax relax_post.json -> relax.json, li_sites.npz

Every atom moves (the La-O, Zr-O and O-O terms act); the box is free along the normal
only, in the minimisations (`fix box/relax z`) and in the anneal (NPT, p_z = 0). The
annealed, quenched structure (final.data) is what the MD stages start from; with
`framework: frozen` they freeze it as it is (the published protocol), with `mobile` they
let it move.

relax.json records, per phase (min1, anneal, min2): energy, largest residual force and
force norm, Lz; the residual-force bound and whether the final structure meets it (the
stage fails when it does not); the boundary planes after relaxation (midway between the
centres of the two grains' frameworks: the boundary moves with its grains, and an
expansion is shared by both sides); the boundary energy against the control's relax
stage (`refs.boundary_energy`); the cation-O coordination in the grain interiors (Zr-O
within 2.6 Å should stay 6, La-O within 3.5 Å 8, Al-O within 2.5 Å 4: a garnet, not an
amorphous layer) after the anneal and after the quench; the Li count of each half before
and after.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from bundle.core import render as jrender
from bundle.core.errors import EngineError
from runbook.llzo import TYPE_IDS, bicrystal, lmpdata, md, minimize, potential, refs

TEMPLATE = "lammps/llzo_relax.in.j2"
SCHEMA = "llzo-relax/1"
# Cation-O coordination shells of the relaxed garnet (this potential): Zr 6 O within 2.15 Å
# (next O at 3.8), La 8 within 3.35 (next 3.8), Al on 24d 4 within 1.8 (next 3.5).
CN_CUTOFF_A = {"Zr": 2.6, "La": 3.5, "Al": 2.5}
CN_BULK = {"Zr": 6, "La": 8, "Al": 4}


@dataclass(frozen=True)
class RelaxParams:
    """Lengths Å, times fs/ps as named, temperatures K, forces eV/Å."""

    anneal_K: float = 1000.0
    anneal_steps: int = 5000
    cool_to_K: float = 300.0
    cool_steps: int = 0
    timestep_fs: float = 1.0
    tdamp_fs: float = 100.0
    pdamp_fs: float = 1000.0
    seed: int = 1
    etol: float = 0.0
    ftol: float = 0.02  # eV/Å, max-norm (min_modify norm max)
    maxiter: int = 5000
    thermo_every: int = 500
    engine: str = "classical"  # classical | allegro (Kokkos) | external (fix external, cpu)
    potential_file: str = str(potential.DEFAULT_FILE)
    cutoff: float = 8.0
    kspace_min: float = 1e-4
    kspace_md: float = 1e-4
    model: str = ""
    model_manifest: str = ""
    r_max: float = 0.0


def pair_lines(p: RelaxParams, n_types: int) -> tuple[str, list[str]]:
    """(name, LAMMPS pair lines) of the engine, for the first `n_types` types."""
    if p.engine in ("allegro", "external"):
        return f"{p.engine} {p.model}", md.model_lines(p, n_types)
    pset = potential.load(Path(p.potential_file))
    return pset.name, potential.lammps_lines(pset, p.cutoff, p.kspace_md, n_types)


def charge_lines(data: lmpdata.DataFile, p: RelaxParams) -> list[str]:
    """Per-atom charges that differ from their type's usual one (classical engine only)."""
    if p.engine != "classical":
        return []
    return md.charge_lines(data, potential.load(Path(p.potential_file)))


def render(p: RelaxParams, stage_dir: Path, data_in: str) -> Path:
    data = lmpdata.read_data(stage_dir / data_in)
    name, lines = pair_lines(p, data.n_types)
    text = jrender.render_text(
        TEMPLATE, data_in=data_in, potential_name=name, pair_lines=lines,
        charge_lines=charge_lines(data, p), newton=p.engine == "allegro",
        kspace_min=p.kspace_min if p.engine == "classical" else None,
        kspace_md=p.kspace_md if p.engine == "classical" else None,
        **{k: v for k, v in asdict(p).items() if k not in ENGINE_FIELDS},
    )  # fmt: skip
    if p.engine == "external":
        md.write_model_json(p, stage_dir, data.n_types)
    path = stage_dir / "in.lammps"
    path.write_text(text)
    (stage_dir / "relax_params.json").write_text(
        json.dumps(asdict(p), indent=2, sort_keys=True) + "\n"
    )
    return path


ENGINE_FIELDS = ("engine", "model", "model_manifest", "r_max", "potential_file", "cutoff",
                 "kspace_min", "kspace_md")  # fmt: skip
_PHASE = re.compile(r"^LLZO-RELAX phase=(\w+) pe=(\S+) fmax=(\S+) fnorm=(\S+) lz=(\S+) step=(\S+)")


def phases(log_text: str) -> dict[str, dict]:
    """The `print` lines of the template: {phase: {pe, fmax, fnorm, lz, step}}."""
    out = {}
    for line in log_text.splitlines():
        m = _PHASE.match(line.strip())
        if m:
            pe, fm, fn, lz, st = (float(x) for x in m.groups()[1:])
            out[m.group(1)] = {"energy_eV": pe, "fmax_eV_A": fm, "fnorm_eV_A": fn,
                               "lz_A": lz, "step": int(st)}  # fmt: skip
    return out


# ------------------------------------------------------------------------- post step


def grain_planes(data: lmpdata.DataFile, grain_of: dict[int, int]) -> list[float]:
    """The two boundary planes: midway between the framework centres of the two grains,
    the one around Lz/4 first (see the module docstring)."""
    lz = data.box[2]
    frame = data.types != TYPE_IDS["Li"]
    g = np.array([grain_of.get(int(i), -1) for i in data.ids])
    centres = []
    for k, nominal in ((0, lz / 2.0), (1, 0.0)):  # A is built around Lz/2, B around 0
        z = data.positions[frame & (g == k), 2]
        centres.append(nominal + float(np.mean((z - nominal + lz / 2.0) % lz - lz / 2.0)))
    za, zb = centres
    up = (zb - za) % lz  # from A up to B
    return [float((zb + ((za - zb) % lz) / 2.0) % lz), float((za + up / 2.0) % lz)]


def coordination(data: lmpdata.DataFile, planes: list[float], interior: float) -> dict:
    """Cation-O coordination (CN_CUTOFF_A) of the cations farther than `interior` Å from
    both planes: mean CN and the fraction with the bulk value."""
    box = np.asarray(data.box)
    pos = np.mod(data.positions, box)
    oxy = pos[data.types == TYPE_IDS["O"]]
    tree = cKDTree(oxy, boxsize=box)
    out = {}
    for cat, cut in CN_CUTOFF_A.items():
        sel = data.types == TYPE_IDS[cat]
        if not sel.any():
            continue
        dz = np.min(
            [np.abs((pos[sel, 2] - z + box[2] / 2) % box[2] - box[2] / 2) for z in planes], axis=0
        )
        far = pos[sel][dz >= interior]
        cn = (
            np.array([len(n) for n in tree.query_ball_point(far, cut)]) if len(far) else np.zeros(0)
        )
        has = len(cn) > 0
        out[f"{cat}-O"] = {
            "cutoff_A": cut,
            "n": int(len(cn)),
            "mean": round(float(cn.mean()), 4) if has else None,
            "fraction_bulk": round(float(np.mean(cn == CN_BULK[cat])), 4) if has else None,
        }
    return out


def moved_sites(sites: dict, before: lmpdata.DataFile, after: lmpdata.DataFile) -> np.ndarray:
    """Site positions carried along with the framework: the box change applied affinely
    along z, plus the mean minimum-image displacement of each site's anchor O."""
    scale = after.box[2] / before.box[2]
    idx0 = {int(i): k for k, i in enumerate(before.ids)}
    idx1 = {int(i): k for k, i in enumerate(after.ids)}
    anchors = sites["anchor_ids"]
    p0 = before.positions[[idx0[int(i)] for i in anchors.ravel()]].reshape(*anchors.shape, 3)
    p1 = after.positions[[idx1[int(i)] for i in anchors.ravel()]].reshape(*anchors.shape, 3)
    p0[..., 2] *= scale
    box = np.asarray(after.box)
    d = p1 - p0
    d -= box * np.round(d / box)
    xyz = sites["xyz"].copy()
    xyz[:, 2] *= scale
    return np.mod(xyz + d.mean(axis=1), box)


def li_per_half(data: lmpdata.DataFile, cuts: list[float], lz0: float) -> list[int]:
    lz = data.box[2]
    c = [x * lz / lz0 for x in cuts]
    h = bicrystal.half_of(data.positions[data.types == TYPE_IDS["Li"], 2], tuple(c), lz)
    return [int(np.sum(h == 0)), int(np.sum(h == 1))]


def post(p: dict) -> dict:
    """relax.json + li_sites.npz from the stage's outputs (module docstring)."""
    here = Path(".")
    log = (here / "log.lammps").read_text(errors="replace")
    ph = phases(log)
    if "min1" not in ph or not (here / "final.data").exists():
        raise EngineError("the relax input did not finish (no final.data); see log.lammps")
    last = ph.get("min2", ph["min1"])
    build = json.loads(Path(p["build_json"]).read_text())
    start = lmpdata.read_data(Path(p["data_in"]))
    final = lmpdata.read_data(here / "final.data")
    grains = np.load(p["grains"])
    grain_of = dict(zip(grains["id"].tolist(), grains["grain"].tolist(), strict=True))
    planes = grain_planes(final, grain_of)
    doc = {
        "schema": SCHEMA,
        "data_file": "final.data",
        "phases": ph,
        "energy_eV": last["energy_eV"],
        "fmax_eV_A": last["fmax_eV_A"],
        "fmax_bound_eV_A": p["fmax_bound_eV_A"],
        "meets_force_bound": last["fmax_eV_A"] <= p["fmax_bound_eV_A"],
        "box_A": [float(x) for x in final.box],
        "gb_planes_A": planes,
        "gb_planes_built_A": build["gb_planes_A"],
        "control": build.get("control", False),
        "counts": final.counts(),
        "li_per_half": {
            "built": li_per_half(start, build["cuts_A"], start.box[2]),
            "final": li_per_half(final, build["cuts_A"], start.box[2]),
        },  # fmt: skip
        "coordination": {"final": coordination(final, planes, p["interior_A"])},
    }
    if (here / "anneal.data").exists():
        ann = lmpdata.read_data(here / "anneal.data")
        doc["coordination"]["anneal"] = coordination(
            ann, grain_planes(ann, grain_of), p["interior_A"]
        )
    if p.get("reference"):
        doc["gamma"] = _gamma(p, final, doc)
    sites = dict(np.load(p["sites"]))
    sites["xyz"] = moved_sites(sites, start, final)
    np.savez(here / "li_sites.npz", **sites)
    doc["li_sites"] = "li_sites.npz"
    lmpdata.write_json(here / "relax.json", doc)
    if not doc["meets_force_bound"]:
        raise EngineError(
            f"largest residual force {last['fmax_eV_A']:.4g} eV/Å is above the bound "
            f"{p['fmax_bound_eV_A']} eV/Å; raise maxiter or check log.lammps"
        )
    return doc


def _gamma(p: dict, final: lmpdata.DataFile, doc: dict) -> dict:
    ref = json.loads(Path(p["reference"]).read_text())
    if not ref.get("control"):
        raise EngineError(f"{p['reference']}: the reference is not a control relax stage")
    if p["engine"] != "classical":  # Li2O, La2O3, ZrO2 minimised with the model: not yet
        return {"gamma_J_m2": None, "why": "oxide references need the classical engine"}
    pset = potential.load(Path(p["potential_file"]))
    cats = sorted(s for s, n in final.counts().items() if n and s != "O")
    mu = refs.oxide_energies(
        pset, cats, minimize.MinSettings(box="aniso", kspace_accuracy=p["kspace_min"])
    )
    g = refs.boundary_energy(doc["energy_eV"], doc["counts"], ref["energy_eV"], ref["counts"],
                             final.box[0] * final.box[1], mu)  # fmt: skip
    return asdict(g)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m runbook.llzo.relax relax_post.json")
    doc = post(json.loads(Path(args[0]).read_text()))
    print(json.dumps({k: doc[k] for k in ("energy_eV", "fmax_eV_A", "gb_planes_A")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
