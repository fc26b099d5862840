"""The grain-boundary metrics of METRICS.md, computed from LAMMPS dumps in one streaming pass.

`analyze(...)` returns the `gb-analysis/1` results document; `checks.results` writes it.

How it stays bounded in memory: the dump is parsed one frame at a time; each frame adds
its Li heights to a histogram, appends the non-excess Li unwrapped positions (float64)
and the excess Li fractional heights to scratch files, and its box and time to small
per-frame arrays. After the pass, with the GB planes known, the excess counts are read
back in frame chunks and the MSD in atom chunks (checks.msd: exact, every origin and
lag, FFT). Peak memory is one parsed frame plus one chunk (`memory_mb`, default 64 MiB)
plus O(frames) scalars (time, box, n_gb series): about 100 bytes per frame. The scratch
files take 24 bytes per Li per frame on disk and are deleted at the end. (Beyond
~170,000 frames a single Li's series outgrows the 64 MiB chunk and the MSD needs about
400 bytes per frame.)

Conventions the definitions leave open, fixed here and recorded in the results:
- Bins tile the periodic box exactly: n_bins = round(Lz / dz) from the first analysed
  frame, heights binned as fractions of Lz (so NPT boxes bin consistently); the width
  used, Lz / n_bins, is `profile.dz_A` (equal to `dz` when Lz is a multiple of it).
- "within w" is distance <= w; "at least d_bulk" is >= d_bulk; "< d_bulk" is strict.
  Distances are compared with a 1e-9 Å tolerance, so bin centres exactly on a boundary
  fall on the documented side whatever the floating-point rounding.
- Standard deviations over frames use ddof=0; the block standard error uses the
  ddof=1 standard deviation of block means / sqrt(n_blocks).
- D's standard error: the non-excess Li are split into 5 groups (slot mod 5), D is
  fitted per group, SE = std(ddof=1) / sqrt(5).
- `n_li` counts the non-excess Li (those of the profile and the MSD); `n_li_total` all.
"""

from __future__ import annotations

import math
import tempfile
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core.errors import InputError
from checks.extras import Extras
from checks.lammpsio import Frame, IdIndex, read_frames
from checks.msd import BYTES_PER_ATOM_FRAME, MSDAccumulator, fit_classes, fit_slope
from checks.params import CLI, EPS_A, Params, check_box, check_geometry, check_planes
from checks.params import n_bins as bins_of
from checks.profile import PER_A2_TO_PER_NM2, min_image, profile_numbers

SCHEMA = "gb-analysis/1"
N_GROUPS = 5
__all__ = ["CLI", "EPS_A", "PER_A2_TO_PER_NM2", "SCHEMA", "Params", "Selection", "analyze",
           "min_image", "profile_numbers"]  # fmt: skip


@dataclass(frozen=True)
class Selection:
    """Which atoms are Li, and which Li are 'excess'."""

    type_names: dict[int, str]
    li_type: str = "Li"  # a type name, or a type number
    excess_ids: np.ndarray | None = None  # explicit ids (from --excess-ids FILE)
    excess_ids_source: str = "--excess-ids"
    excess_above_id: int | None = None

    def li_type_number(self, where: str) -> int:
        if self.li_type.isdigit():
            return int(self.li_type)
        hits = [t for t, name in self.type_names.items() if name == self.li_type]
        if len(hits) != 1:
            raise InputError(
                where,
                "--li-type",
                f"type name {self.li_type!r} is {'absent' if not hits else 'ambiguous'} in the "
                f"type map {self.type_names}",
                "give --li-type as a name of the map or as a type number",
            )
        return hits[0]


@dataclass
class _Stream:
    """What the pass over the dumps leaves: small per-frame arrays and scratch files."""

    times_ps: np.ndarray  # (F,)
    timesteps: np.ndarray  # (F,)
    lo: np.ndarray  # (F, 3)
    lengths: np.ndarray  # (F, 3)
    hist: np.ndarray  # (n_bins,) Li counts summed over frames
    n_core: int
    n_exc: int
    n_li_total: int
    core_file: Path  # (F, n_core, 3) float64 unwrapped positions, Å
    exc_file: Path  # (F, n_exc) float64 fractional heights in [0, 1)


def analyze(
    dumps: Sequence[Path],
    params: Params,
    selection: Selection,
    *,
    scratch: Path | None = None,
    memory_mb: float = 64.0,
    warn: Callable[[str], None] = lambda msg: None,
    progress: Callable[[int], None] = lambda nbytes: None,
) -> dict:
    """The `gb-analysis/1` results document of the trajectory `dumps` (in time order)."""
    params.validate()
    frames = read_frames(
        dumps, drop_incomplete=params.drop_incomplete_frame, warn=warn, progress=progress
    )
    with tempfile.TemporaryDirectory(prefix=".gb-analysis-", dir=scratch) as tmp:
        st = _stream(frames, params, selection, Path(tmp), [Path(d) for d in dumps])
        prof = _profile(st, params)
        frac_planes = [(z - st.lo[:, 2].mean()) / st.lengths[:, 2].mean() for z in prof["planes"]]
        excess = _excess(st, frac_planes, params, warn) if st.n_exc else None
        extras = Extras(params.extra(), st.times_ps, st.lo, st.lengths, prof["planes"],
                        frac_planes, len(st.hist))  # fmt: skip
        diffusion = _diffusion(st, frac_planes, params, memory_mb, warn, extras)
    return _document(st, params, prof, excess, diffusion) | extras.sections()


# --- the streaming pass -----------------------------------------------------------


def _stream(
    frames: Iterable[Frame], params: Params, sel: Selection, tmp: Path, dumps: list[Path]
) -> _Stream:
    times, steps, los, lens = array("d"), array("q"), array("d"), array("d")
    hist = None
    interval = None
    core_f = open(tmp / "core.f64", "wb")  # noqa: SIM115 - closed below
    exc_f = open(tmp / "exc.f64", "wb")  # noqa: SIM115
    with core_f, exc_f:
        for fr in frames:
            t = fr.timestep * params.timestep_fs / 1000.0
            where = _window(t, params)
            if where == "before":
                continue
            if where == "after":
                break
            if hist is None:
                li_type = sel.li_type_number(str(fr.file))
                core_ids, exc_ids, n_li_total = _select(fr, sel, li_type)
                index = IdIndex(np.concatenate([core_ids, exc_ids]))  # slot of each id
                n_sel = len(core_ids) + len(exc_ids)
                first_box = fr.lengths
                ref_ids, rows = None, None
                n_bins = bins_of(params, float(fr.lengths[2]))
                hist = np.zeros(n_bins, dtype=np.int64)
            else:
                interval = _interval(fr, steps[-1], interval)
            check_box(fr.lengths, first_box, str(fr.file), f"frame {fr.index}: BOX BOUNDS")
            if ref_ids is None or not np.array_equal(fr.ids, ref_ids):
                rows = _rows(fr, index, n_sel)
                ref_ids = fr.ids
            times.append(t)
            steps.append(fr.timestep)
            los.extend(fr.lo)
            lens.extend(fr.lengths)
            frac = fr.frac_z(rows)
            counted = frac if params.include_excess else frac[: len(core_ids)]
            b = np.minimum((counted * n_bins).astype(np.int64), n_bins - 1)
            hist += np.bincount(b, minlength=n_bins)
            core_f.write(np.ascontiguousarray(fr.unwrapped[rows[: len(core_ids)]]).tobytes())
            exc_f.write(frac[len(core_ids) :].tobytes())
    if hist is None:
        raise _no_frame(dumps[0], params)
    return _Stream(
        times_ps=np.array(times),
        timesteps=np.array(steps),
        lo=np.array(los).reshape(-1, 3),
        lengths=np.array(lens).reshape(-1, 3),
        hist=hist,
        n_core=len(core_ids),
        n_exc=len(exc_ids),
        n_li_total=n_li_total,
        core_file=tmp / "core.f64",
        exc_file=tmp / "exc.f64",
    )


def _window(t: float, p: Params) -> str:
    """Where time t (ps) lies against the analysis window: before, in or after."""
    if p.window_ps and t < p.window_ps[0] - 1e-9:
        return "before"
    if p.window_ps and t > p.window_ps[1] + 1e-9:
        return "after"
    return "in"


def _interval(fr: Frame, last_step: int, interval: int | None) -> int:
    """The dump interval in steps; refused when it changes along the trajectory."""
    step = fr.timestep - last_step
    if interval is not None and step != interval:
        raise InputError(
            fr.file,
            f"frame {fr.index} (TIMESTEP {fr.timestep})",
            f"the dump interval changes from {interval} to {step} "
            "steps; the time series and the MSD need a constant interval",
            "dump at a fixed interval, or restrict the analysis with --window-ps",
        )
    return step


def _no_frame(dump: Path, params: Params) -> InputError:
    win = params.window_ps
    return InputError(
        dump,
        f"--window-ps {win[0]},{win[1]}" if win else "(file)",
        "no frame to analyse (empty trajectory or analysis window)",
        "check the dump and the --window-ps bounds (ps = TIMESTEP x --timestep-fs / 1000)",
    )


def _select(fr: Frame, sel: Selection, li_type: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(non-excess Li ids, excess Li ids, number of Li), sorted, from the first frame."""
    li_ids = np.sort(fr.ids[fr.types == li_type])
    if len(li_ids) == 0:
        present = sorted(set(fr.types.tolist()))
        name = sel.type_names.get(li_type, "not in the type map")
        raise InputError(
            fr.file,
            "type",
            f"no atom of the Li type {li_type} ({name}) in frame "
            f"{fr.index}; types present: {present}",
            "check --li-type and the type map (--data / --type-map)",
        )
    if sel.excess_ids is not None:
        exc = np.unique(sel.excess_ids.astype(np.int64))
        absent = np.setdiff1d(exc, fr.ids)
        if len(absent):
            raise InputError(
                sel.excess_ids_source,
                "ids",
                f"{len(absent)} excess id(s) not in the trajectory (e.g. {absent[:5].tolist()})",
                f"list ids of Li atoms of {fr.file.name}",
            )
        not_li = np.setdiff1d(exc, li_ids)
        if len(not_li):
            raise InputError(
                sel.excess_ids_source,
                "ids",
                f"{len(not_li)} excess id(s) are not Li (type {li_type}), e.g. "
                f"{not_li[:5].tolist()}",
                "list only ids of Li atoms",
            )
    elif sel.excess_above_id is not None:
        exc = li_ids[li_ids > sel.excess_above_id]
        if len(exc) == 0:
            raise InputError(
                CLI,
                "--excess-above-id",
                f"no Li id above {sel.excess_above_id} (largest Li id: {int(li_ids[-1])})",
                "give the last id of the original structure",
            )
    else:
        exc = np.empty(0, dtype=np.int64)
    return np.setdiff1d(li_ids, exc), exc, len(li_ids)


def _rows(fr: Frame, index: IdIndex, n_sel: int) -> np.ndarray:
    """Row of each selected atom in this frame, in slot order (atoms may come unsorted)."""
    slots = index.slots(fr.ids)
    mine = np.nonzero(slots >= 0)[0]
    rows = np.full(n_sel, -1, dtype=np.int64)
    rows[slots[mine]] = mine
    if len(mine) != n_sel or (rows < 0).any():
        raise InputError(
            fr.file,
            f"frame {fr.index} (TIMESTEP {fr.timestep})",
            "the set of Li atoms differs from the first frame (atoms lost or duplicated)",
            "analyse a trajectory with a fixed number of atoms",
        )
    return rows


# --- the profile (検証A) ---------------------------------------------------------


def _profile(st: _Stream, p: Params) -> dict:
    n_frames = len(st.times_ps)
    lx, ly, lz = st.lengths.mean(axis=0)
    zlo = float(st.lo[:, 2].mean())
    n_bins = len(st.hist)
    dz = lz / n_bins
    rho = st.hist / n_frames / (lx * ly * dz)
    z = zlo + (np.arange(n_bins) + 0.5) * dz
    check_planes(p, zlo, lz)
    if p.gb is not None:
        planes = [zlo + (g - zlo) % lz for g in p.gb]
    else:
        i = int(np.argmax(rho))
        ym, y0, yp = rho[i - 1], rho[i], rho[(i + 1) % n_bins]
        curv = ym - 2 * y0 + yp
        shift = 0.5 * (ym - yp) / curv if curv < 0 else 0.0
        z0 = zlo + (z[i] + shift * dz - zlo) % lz
        planes = [z0, zlo + (z0 + lz / 2 - zlo) % lz]
    check_geometry(p, planes, lz, z)
    numbers = profile_numbers(rho, z, float(lz), [float(x) for x in planes], p.w, p.d_bulk)
    return {"box": [float(lx), float(ly), float(lz)], "z": z, "rho": rho, "dz": float(dz)} | numbers


# --- excess Li in the bands (検証B) -------------------------------------------------


def _band_counts(st: _Stream, frac_planes: list[float], w: float) -> np.ndarray:
    """(F, 2) number of excess Li within w of each plane, read back in frame chunks."""
    n_frames = len(st.times_ps)
    counts = np.zeros((n_frames, 2), dtype=np.int64)
    per_chunk = max(1, (8 << 20) // (8 * st.n_exc))
    with open(st.exc_file, "rb") as f:
        for a in range(0, n_frames, per_chunk):
            b = min(n_frames, a + per_chunk)
            frac = np.fromfile(f, dtype=np.float64, count=(b - a) * st.n_exc)
            frac = frac.reshape(b - a, st.n_exc)
            lz = st.lengths[a:b, 2, None]
            for k, s in enumerate(frac_planes):
                counts[a:b, k] = (min_image(frac - s, 1.0) * lz <= w + EPS_A).sum(axis=1)
    return counts


def _excess(st: _Stream, frac_planes: list[float], p: Params, warn) -> dict:
    t = st.times_ps
    counts = _band_counts(st, frac_planes, p.w)
    span = float(t[-1] - t[0])
    avg = p.avg_window_ps
    if avg > span + 1e-9:
        warn(
            f"the analysed trajectory spans {span:g} ps < --avg-window-ps {avg:g}: the excess "
            "counts are averaged over all of it"
        )
        avg = span
    sel = t >= t[-1] - avg - 1e-9
    tw = t[sel]
    n_k = counts[sel]
    n_gb = n_k.sum(axis=1)
    nb = min(p.n_blocks, len(n_gb))
    sem = None
    if nb >= 2:
        means = [b.mean() for b in np.array_split(n_gb.astype(float), nb)]
        sem = float(np.std(means, ddof=1) / math.sqrt(nb))
    slope = slope_se = None
    if len(tw) >= 2:
        slope, slope_se = fit_slope(tw, n_gb)
    lz_w = float(st.lengths[sel, 2].mean())
    uniform = st.n_exc * (2 * p.w * 2) / lz_w
    n_bulk = st.n_exc - n_gb
    return {
        "window_ps": [float(tw[0]), float(tw[-1])],
        "avg_window_ps": avg,
        "n_frames": int(len(tw)),
        "per_gb_mean": [float(x) for x in n_k.mean(axis=0)],
        "per_gb_std": [float(x) for x in n_k.std(axis=0)],
        "gb_mean": float(n_gb.mean()),
        "gb_std": float(n_gb.std()),
        "gb_sem": sem,
        "n_blocks": nb,
        "bulk_mean": float(n_bulk.mean()),
        "bulk_std": float(n_bulk.std()),
        "uniform_expected": uniform,
        "enrichment": float(n_gb.mean()) / uniform,
        "slope_per_ps": slope,
        "slope_se_per_ps": slope_se,
        "series": {
            "t_ps": [float(x) for x in t],
            "n_gb": [int(x) for x in counts.sum(axis=1)],
            "n_per_gb": [[int(x) for x in counts[:, k]] for k in (0, 1)],
        },
    }


# --- diffusion from the MSD --------------------------------------------------------


def _diffusion(
    st: _Stream, frac_planes: list[float], p: Params, memory_mb: float, warn, extras: Extras
):
    n_frames = len(st.times_ps)
    if n_frames < 3 or st.n_core == 0:
        return None
    dt = float(st.times_ps[1] - st.times_ps[0])
    lags = np.arange(n_frames) * dt
    tau_max = float(lags[-1])
    t0, t1 = p.fit_window_ps or (0.1 * tau_max, 0.5 * tau_max)
    fit = (lags >= t0 - 1e-9) & (lags <= t1 + 1e-9) & (lags > 0)
    if fit.sum() < 2:
        if p.fit_window_ps is not None:
            raise InputError(
                CLI,
                "--fit-window-ps",
                f"fewer than 2 lags in {t0:g}..{t1:g} ps (lag step {dt:g} ps, longest {tau_max:g})",
                "widen the fit window",
            )
        warn(f"only {n_frames} frames: too few lags to fit the MSD; diffusion is null")
        return None
    w_start = p.w_start if p.w_start is not None else p.w
    acc = MSDAccumulator(n_frames, ("all", "gb_start", "bulk_start"), N_GROUPS)
    origins = (np.arange(n_frames) % p.origin_every == 0)[:, None]
    per_chunk = max(1, int(memory_mb * 2**20 / (BYTES_PER_ATOM_FRAME * n_frames)))
    fit_frames = np.flatnonzero(fit)
    extras.start((fit_frames[0], fit_frames[-1]), acc.classes, -(-st.n_core // per_chunk))
    for a, r in _atom_chunks(st, per_chunk):
        m = r.shape[1]
        frac = (r[:, :, 2] - st.lo[:, 2, None]) / st.lengths[:, 2, None]
        dmin = np.minimum(*(min_image(frac - s, 1.0) * st.lengths[:, 2, None] for s in frac_planes))
        weights = {
            "all": np.broadcast_to(origins, (n_frames, m)),
            "gb_start": origins & (dmin <= w_start + EPS_A),
            "bulk_start": origins & (dmin >= p.d_bulk - EPS_A),
        }
        acc.add(r, weights, (a + np.arange(m)) % N_GROUPS)
        extras.add(r, frac, dmin, weights)
    d_cm2, d_se, msd = fit_classes(acc, lags, fit, N_GROUPS)
    extras.finish(msd)
    gb, bulk = d_cm2["gb_start"], d_cm2["bulk_start"]
    diffusion = {
        "fit_window_ps": [float(lags[fit][0]), float(lags[fit][-1])],
        "D_cm2_s": d_cm2,
        "D_se_cm2_s": d_se,
        "ratio_gb_bulk": gb / bulk if gb is not None and bulk else None,
        "w_start_A": w_start,
        "origin_every": p.origin_every,
        "msd_A2": _thin(msd, 1000),
    }
    return diffusion


def _atom_chunks(st: _Stream, per_chunk: int):
    """(first slot, (F, m, 3) unwrapped positions) of consecutive atom chunks; one buffer."""
    n_frames = len(st.times_ps)
    buf = np.empty((n_frames, min(per_chunk, st.n_core), 3))
    with open(st.core_file, "rb") as f:
        for a in range(0, st.n_core, per_chunk):
            r = buf[:, : min(per_chunk, st.n_core - a)]
            for t in range(n_frames):  # one strided read per frame keeps RSS at the chunk
                f.seek((t * st.n_core + a) * 24)
                f.readinto(memoryview(r[t]).cast("B"))
            yield a, r


def _thin(curves: dict[str, np.ndarray], at_most: int) -> dict[str, list]:
    step = max(1, math.ceil(len(curves["lag_ps"]) / at_most))
    return {
        k: [None if not np.isfinite(x) else float(x) for x in v[::step]] for k, v in curves.items()
    }


# --- the document -------------------------------------------------------------------


def _document(st: _Stream, p: Params, prof: dict, excess, diffusion) -> dict:
    t = st.times_ps
    return {
        "schema": SCHEMA,
        "parameters": {
            "dz_A": p.dz,
            "w_A": p.w,
            "d_bulk_A": p.d_bulk,
            "window_ps": [float(t[0]), float(t[-1])],
            "timestep_fs": p.timestep_fs,
            "avg_window_ps": excess["avg_window_ps"] if excess else p.avg_window_ps,
            "n_blocks": p.n_blocks,
            "w_start_A": p.w_start if p.w_start is not None else p.w,
            "origin_every": p.origin_every,
            "fit_window_ps": list(p.fit_window_ps) if p.fit_window_ps else None,
            "include_excess": p.include_excess,
            "gb_planes_given": p.gb is not None,
        }
        | p.extra().parameters(),
        "box_A": prof["box"],
        "n_frames": int(len(t)),
        "n_li": st.n_core,
        "n_li_total": st.n_li_total,
        "n_excess": st.n_exc,
        "dump_interval_ps": float(t[1] - t[0]) if len(t) > 1 else None,
        "gb_planes_A": prof["planes"],
        "profile": {
            "z_A": [float(x) for x in prof["z"]],
            "rho_li_per_A3": [float(x) for x in prof["rho"]],
            "dz_A": prof["dz"],
            "n_bins": len(prof["z"]),
        },
        "rho_bulk_per_A3": prof["rho_bulk"],
        "rho_peak_per_A3": prof["rho_peak"],
        "peak_ratio": prof["peak_ratio"],
        "rho_band_per_A3": prof["rho_band"],
        "band_ratio": prof["band_ratio"],
        "gamma_per_nm2": {"per_gb": prof["gammas"], "mean": float(np.mean(prof["gammas"]))},
        "excess": excess,
        "diffusion": diffusion,
    }
