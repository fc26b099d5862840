"""The committee deviation record: per frame and per atom, how much a committee of
models disagrees on the forces, where the atoms are, and the DP-GEN trust levels.

Definition (DP-GEN, Zhang et al., Phys. Rev. Mater. 3 (2019) 023804, eq. 4; the same
as DeePMD-kit's `model_devi`): for atom i and models m = 1..M,

    eps_i = sqrt( < |F_i^m - <F_i>|^2 > ),   <.> the mean over the M models,

and per frame max_i eps_i, min_i eps_i, mean_i eps_i. Trust levels of a frame (DP-GEN's
model_devi_f_trust_lo / _hi): max < lo accurate, lo <= max < hi candidate, max >= hi
failed. Per region (boundary band vs grain interior): the same classification of the
region's own maximum, and the fractions of the region's atom-frames per level.

Two writers produce the same record: `from_lammps` (DeePMD-kit's LAMMPS plugin:
`pair_style deepmd m1 m2 ... out_freq N out_file F atomic` + a dump of the atoms at the
same steps) and `from_forces` (a committee evaluated in Python, e.g. Allegro).

On disk (`save`/`load`): one compressed npz, schema `deviation-record/1`: step (int64),
time_ps (float64), ids (int32), types (uint8, indices into type_names), z and eps
(float32, frames x atoms), frame max/min/mean (float64), n_models, source. Size: 8 bytes
per atom-frame before compression (float32 z + eps): 14.8 MB for 1,000 frames of 1,856
atoms; measured after compression in tests/test_deviation.py.

Units: eV/Å (deviations), Å (z), ps (time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core.errors import InputError
from checks import lammpsio

SCHEMA = "deviation-record/1"
LEVELS = ("accurate", "candidate", "failed")
# DeePMD-kit 3.2 model_devi.out header; with `atomic` the header ends in the literal
# `atm_devi_f(N)` and each row has one more column per atom (in atom-id order).
DEVI_COLUMNS = (
    "step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f",
)  # fmt: skip


@dataclass
class DeviationRecord:
    step: np.ndarray  # (F,) int64
    time_ps: np.ndarray  # (F,)
    ids: np.ndarray  # (N,) atom ids, the same atoms in every frame
    types: np.ndarray  # (N,) indices into type_names
    type_names: list[str]
    z: np.ndarray | None  # (F, N) Å, wrapped into the box (None: not recorded)
    eps: np.ndarray | None  # (F, N) eV/Å (None: only the frame statistics are known)
    frame_max: np.ndarray  # (F,) eV/Å
    frame_min: np.ndarray
    frame_mean: np.ndarray
    box_z: np.ndarray | None  # (F, 2) lo, hi of z, Å
    n_models: int
    source: str

    @property
    def n_frames(self) -> int:
        return len(self.step)

    @property
    def n_atoms(self) -> int:
        return len(self.ids)

    def species(self) -> np.ndarray:
        return np.asarray(self.type_names, dtype=object)[self.types]


def force_deviation(forces: np.ndarray) -> np.ndarray:
    """eps (F, N) from committee forces (M, F, N, 3): sqrt(mean_m |F_m - mean F|^2)."""
    f = np.asarray(forces, float)
    if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] < 2:
        raise ValueError(f"forces must be (models >= 2, frames, atoms, 3), got {f.shape}")
    d = f - f.mean(axis=0)
    return np.sqrt((d**2).sum(axis=-1).mean(axis=0))


def from_forces(
    forces: np.ndarray,
    *,
    step: np.ndarray,
    time_ps: np.ndarray,
    ids: np.ndarray,
    types: np.ndarray,
    type_names: list[str],
    z: np.ndarray | None,
    box_z: np.ndarray | None = None,
    source: str = "python committee",
) -> DeviationRecord:
    """The record of a committee evaluated in Python (forces (M, F, N, 3), eV/Å)."""
    eps = force_deviation(forces)
    return DeviationRecord(
        np.asarray(step, np.int64), np.asarray(time_ps, float), np.asarray(ids, np.int32),
        np.asarray(types, np.uint8), list(type_names),
        None if z is None else np.asarray(z, np.float32), eps.astype(np.float32),
        eps.max(axis=1), eps.min(axis=1), eps.mean(axis=1),
        None if box_z is None else np.asarray(box_z, float), int(np.shape(forces)[0]), source,
    )  # fmt: skip


# ------------------------------------------------------------------- DeePMD model_devi


def read_model_devi(path: Path) -> dict[str, np.ndarray]:
    """DeePMD-kit's model_devi.out: {column: (F,)} plus "atomic": (F, N) when written with
    `atomic`. A step written twice (a second `run` repeats its first step) keeps the
    later row."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise InputError(path, "(file)", "no deviation file", "run with a committee") from None
    header = next((ln for ln in lines if ln.startswith("#")), "")
    names = header.lstrip("#").split()
    if tuple(names[:7]) != DEVI_COLUMNS:
        raise InputError(path, "header", f"expected {' '.join(DEVI_COLUMNS)}, got {header!r}")
    if len(names) > 8 or (len(names) == 8 and not re.fullmatch(r"atm_devi_f\((N|\d+)\)", names[7])):
        raise InputError(path, "header", f"unknown columns after avg_devi_f: {names[7:]}")
    rows = [ln.split() for ln in lines if ln.strip() and not ln.startswith("#")]
    if not rows:
        raise InputError(path, "(rows)", "no deviation rows", "run at least devi_every steps")
    width = len(rows[0])
    n_atomic = width - 7
    if (len(names) == 8) != (n_atomic > 0) or n_atomic < 0:
        raise InputError(path, "row 1", f"{width} columns do not match the header {names}")
    for k, r in enumerate(rows):
        if len(r) != width:
            raise InputError(path, f"row {k + 1}", f"{len(r)} columns, expected {width}")
    data = np.array(rows, float).reshape(-1, width)
    last = {int(s): i for i, s in enumerate(data[:, 0])}
    data = data[np.array(sorted(last.values()), int)]
    out = {n: data[:, i] for i, n in enumerate(DEVI_COLUMNS)}
    out["step"] = data[:, 0].astype(np.int64)
    if n_atomic:
        out["atomic"] = data[:, 7:]
    return out


def from_lammps(
    devi_path: Path,
    dump_path: Path,
    type_map: dict[int, str],
    timestep_ps: float,
    n_models: int = 0,
) -> DeviationRecord:
    """The record from DeePMD's model_devi.out and a dump (`id type xu yu zu`, sorted by
    id) written at the same steps. Per-atom columns are in atom-id order (the plugin
    gathers them by tag), matched here against the dump's sorted ids."""
    devi = read_model_devi(devi_path)
    frames = {fr.timestep: fr for fr in lammpsio.read_frames([Path(dump_path)])}
    missing = [int(s) for s in devi["step"] if int(s) not in frames]
    if missing:
        raise InputError(dump_path, "TIMESTEP", f"no frame for deviation steps {missing[:5]}")
    sel = [frames[int(s)] for s in devi["step"]]
    ids = sel[0].ids
    order = np.argsort(ids)
    names = sorted(set(type_map.values()), key=list(type_map.values()).index)
    index = {t: names.index(s) for t, s in type_map.items()}
    z = np.empty((len(sel), len(ids)), np.float32)
    for k, fr in enumerate(sel):
        if not np.array_equal(fr.ids, ids):
            raise InputError(dump_path, f"TIMESTEP {fr.timestep}", "atom ids differ between frames")
        z[k] = fr.lo[2] + fr.frac_z() * fr.lengths[2]
    eps = devi.get("atomic")
    if eps is not None and eps.shape[1] != len(ids):
        raise InputError(devi_path, "atm_devi_f", f"{eps.shape[1]} atoms, the dump has {len(ids)}")
    return DeviationRecord(
        step=devi["step"], time_ps=devi["step"] * timestep_ps, ids=ids[order].astype(np.int32),
        types=np.array([index[int(t)] for t in sel[0].types[order]], np.uint8),
        type_names=names, z=z[:, order],
        eps=None if eps is None else eps.astype(np.float32),  # already in id order
        frame_max=devi["max_devi_f"], frame_min=devi["min_devi_f"],
        frame_mean=devi["avg_devi_f"],
        box_z=np.array([[fr.lo[2], fr.hi[2]] for fr in sel]), n_models=n_models,
        source=f"lammps pair_style deepmd ({Path(devi_path).name})",
    )  # fmt: skip


# ------------------------------------------------------------------------ on disk


def save(path: Path, rec: DeviationRecord) -> Path:
    arrays = {
        "schema": np.array(SCHEMA),
        "step": rec.step,
        "time_ps": rec.time_ps,
        "ids": rec.ids.astype(np.int32),
        "types": rec.types.astype(np.uint8),
        "type_names": np.array(rec.type_names),
        "frame_max": rec.frame_max,
        "frame_min": rec.frame_min,
        "frame_mean": rec.frame_mean,
        "n_models": np.array(rec.n_models),
        "source": np.array(rec.source),
    }
    for name in ("z", "eps"):
        if getattr(rec, name) is not None:
            arrays[name] = getattr(rec, name).astype(np.float32)
    if rec.box_z is not None:
        arrays["box_z"] = rec.box_z
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return Path(path)


def load(path: Path) -> DeviationRecord:
    with np.load(path, allow_pickle=False) as d:
        if "schema" not in d or str(d["schema"]) != SCHEMA:
            raise InputError(path, "schema", f"not a {SCHEMA} file")
        get = {k: d[k] for k in d.files}
    return DeviationRecord(
        get["step"], get["time_ps"], get["ids"], get["types"],
        [str(s) for s in get["type_names"]], get.get("z"), get.get("eps"),
        get["frame_max"], get["frame_min"], get["frame_mean"], get.get("box_z"),
        int(get["n_models"]), str(get["source"]),
    )  # fmt: skip


# ----------------------------------------------------------- regions and trust levels


def band_mask(
    z: np.ndarray, planes_z: list[float], half_width: float, lz: np.ndarray | float
) -> np.ndarray:
    """True where a position `z` (Å; (F, N) or (N,)) lies within `half_width` of any plane
    in `planes_z`, with minimum-image distances along a periodic z of length `lz` (a
    scalar or one length per frame, (F,))."""
    if half_width < 0:
        raise ValueError(f"band half-width must be >= 0, got {half_width}")
    z = np.asarray(z, float)
    lz = np.asarray(lz, float)
    if np.any(lz <= 0):
        raise ValueError("the periodic length along z must be > 0")
    if lz.ndim == 1 and z.ndim == 2:
        lz = lz[:, None]
    near = np.zeros(z.shape, bool)
    for p in planes_z:
        dz = z - p
        dz -= lz * np.round(dz / lz)
        near |= np.abs(dz) <= half_width
    return near


def in_band(
    rec: DeviationRecord, planes_z: list[float], half_width: float, lz: float | None = None
) -> np.ndarray:
    """(F, N) True where an atom is within `half_width` (Å) of a GB plane along z
    (minimum image in the frame's box, or along `lz` when given)."""
    if rec.z is None or (rec.box_z is None and lz is None):
        raise ValueError("the record has no z / box: regions need the atoms' positions")
    if lz is None:
        lz = rec.box_z[:, 1] - rec.box_z[:, 0]  # type: ignore[index]
    return band_mask(rec.z, planes_z, half_width, lz)


def classify(values: np.ndarray, lo: float, hi: float) -> dict[str, float]:
    """Fractions of `values` (NaN: not counted) below lo / in [lo, hi) / at or above hi."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {k: float("nan") for k in LEVELS} | {"n": 0}
    return {
        "accurate": float(np.mean(v < lo)),
        "candidate": float(np.mean((v >= lo) & (v < hi))),
        "failed": float(np.mean(v >= hi)),
        "n": int(v.size),
    }


def trust_levels(
    rec: DeviationRecord,
    lo: float,
    hi: float,
    planes_z: list[float] | None = None,
    half_width: float | None = None,
    lz: float | None = None,
) -> dict:
    """DP-GEN trust levels of the frames, and per region (boundary band / interior, when
    planes are given; else one region `all`) of the region's frame maxima and of its
    atom-frames. Atoms outside every band are interior."""
    if not hi > lo > 0:
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    out: dict = {"lo_ev_a": lo, "hi_ev_a": hi, "frames": classify(rec.frame_max, lo, hi)}
    if rec.eps is None:
        return out
    if planes_z:
        band = in_band(rec, planes_z, float(half_width or 0.0), lz)
        masks = {"boundary": band, "interior": ~band}
        out["band"] = {"planes_z_a": [float(p) for p in planes_z],
                       "half_width_a": float(half_width or 0.0)}  # fmt: skip
    else:
        masks = {"all": np.ones(rec.eps.shape, bool)}
    out["regions"] = {name: region_levels(rec.eps, m, lo, hi) for name, m in masks.items()}
    return out


def band_levels(summary: dict) -> tuple[str, dict]:
    """(region, its atom-frame trust levels) that a loop judges convergence on: the
    boundary band when the record has one, else all atoms (`all`), else the frames."""
    regions = summary.get("regions") or {}
    for name in ("boundary", "all"):
        if name in regions:
            return name, regions[name]["atom_frames"]
    return "frames", summary["frames"]


def region_levels(eps: np.ndarray, mask: np.ndarray, lo: float, hi: float) -> dict:
    """Trust levels of one region (mask (F, N)): of its per-frame maxima (a frame where
    the region holds no atom is not counted) and of its atom-frames."""
    region_max = np.where(mask, eps, -np.inf).max(axis=1)
    region_max[~mask.any(axis=1)] = np.nan
    return {"frames": classify(region_max, lo, hi), "atom_frames": classify(eps[mask], lo, hi)}


def left_domain(summary: dict, tolerance: float) -> str | None:
    """One line saying why a run left its committee's trust domain (the fraction of
    `failed` atom-frames of a region, or of frames when no per-atom record exists, above
    `tolerance`), or None when it stayed inside. `summary`: trust_levels' output."""
    hi = summary.get("hi_ev_a")
    parts = [
        (f"{name} atom-frames", r["atom_frames"]) for name, r in summary.get("regions", {}).items()
    ]
    if not parts:
        parts = [("frames", summary["frames"])]
    worst = []
    for what, levels in parts:
        f = levels.get("failed")
        if f is not None and np.isfinite(f) and f > tolerance:
            worst.append(f"{what}: {f:.1%} failed")
    if not worst:
        return None
    return (
        f"the run left the committee's trust domain ({'; '.join(worst)}, i.e. max force "
        f"deviation >= hi = {hi} eV/Å; tolerance {tolerance:.1%})"
    )


# `bundle check`: a run whose results carry a committee summary (results.json
# `deviation`: trust_levels' output) FAILs when more than this fraction of a region's
# atom-frames (of the frames, without a per-atom record) are `failed` (max force
# deviation >= hi): the model was used outside the data it was trained on. A results
# document may state a stricter or looser `deviation.domain_tolerance` itself.
DOMAIN_TOLERANCE = 0.05


def domain_row(results: dict) -> dict | None:
    """The `bundle check` row of a results document's committee summary (None when the
    results carry none): FAIL with the one-line reason when the run left the domain."""
    summary = results.get("deviation")
    if summary is None:
        return None
    tol = float(summary.get("domain_tolerance", DOMAIN_TOLERANCE))
    regions = summary.get("regions") or {"frames": {"atom_frames": summary.get("frames", {})}}
    worst = max((r["atom_frames"].get("failed") or 0.0 for r in regions.values()), default=0.0)
    why = left_domain(summary, tol) if "frames" in summary else "no trust levels in `deviation`"
    return {
        "quantity": "deviation.trust_domain", "value": worst, "reference": tol,
        "lower": None, "upper": None, "bounds": None, "limits": [0.0, tol], "unit": "1",
        "source": f"committee trust levels (lo {summary.get('lo_ev_a')}, hi "
        f"{summary.get('hi_ev_a')} eV/Å): largest failed atom-frame fraction of a region",
        "status": "FAIL" if why else "PASS", "reason": why or "",
    }  # fmt: skip


def worst_frames(rec: DeviationRecord, k: int = 5) -> list[dict]:
    """The k frames with the largest max deviation: step, time, value, atom id."""
    order = np.argsort(rec.frame_max)[::-1][:k]
    out = []
    for i in order:
        row = {"step": int(rec.step[i]), "time_ps": float(rec.time_ps[i]),
               "max_devi_f_ev_a": float(rec.frame_max[i])}  # fmt: skip
        if rec.eps is not None:
            row["atom_id"] = int(rec.ids[int(np.argmax(rec.eps[i]))])
        out.append(row)
    return out
