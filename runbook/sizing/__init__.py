"""GPU sizing for `bundle size`: a throughput table plus a stated scaling model.

Throughput table (YAML, schema `throughput/1`), one per site:

    schema: throughput/1
    provenance: site-measured        # shipped-default | user-given: every answer says so
    devices:
      - device: NVIDIA H200          # NVML's name; `cpu` for MPI ranks on cores
        model: allegro llzo-gb h200  # what was timed (model, r_max, precision)
        r_max_A: 5.0                 # the model's cutoff: sets the halo width
        source: "bundle verify --bench on host-a, 2026-05-01"
        points:                      # production MD steps only (no setup), atom-steps/s
          - {gpus: 1, atoms: 12288, atom_steps_per_s: 2.1e6}
          - {gpus: 1, atoms: 98304, atom_steps_per_s: 3.0e6}
          - {gpus: 2, atoms: 98304, atom_steps_per_s: 5.6e6}   # optional

Where it lives: `bundle size --table FILE`, else `$MLMD_THROUGHPUT`, else
`<bundle root>/site/throughput.yaml` (written by `record_point`, which
`bundle verify --bench` calls), else the shipped `runbook/sizing/defaults.yaml`.

Scaling model (time per MD step of N atoms on G GPUs, one rank per GPU, n = N/G):

    t(N, G) = t0 + n / R + [G > 1] * c * n_ghost(n)

- `t0` (s): per-step cost that no GPU count divides (kernel launches, integrator,
  neighbour bookkeeping); `R` (atom-steps/s): a saturated GPU's rate. Both come from
  the single-GPU points by least squares on t = atoms / rate (t0 = 0 when only one
  size was measured, which makes small systems look better than they are).
- `n_ghost(n)`: halo atoms of a cubic sub-domain of n atoms at number density rho,
  halo width r_max + 1 Å skin: rho * ((L + 2h)^3 - L^3), L = (n / rho)^(1/3).
- `c` (s per halo atom): the extra cost of a rank's halo (exchange, neighbour lists,
  force reverse-communication). Fitted from multi-GPU points when the table has
  them; otherwise the stated PESSIMISTIC assumption c = 1/R (a halo atom costs as
  much as an owned atom). The answer gives the ideal bound (c = 0) beside it.

ns/day = timestep_fs * 1e-6 * 86400 / t. The recommendation is the smaller of
4 and 8 GPUs whose *pessimistic* ns/day meets the target.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from bundle.core import io, paths
from bundle.core.errors import InputError, MissingComponent

SCHEMA = "throughput/1"
DEFAULTS = Path(__file__).with_name("defaults.yaml")
SKIN_A = 1.0
# LLZO garnet: 192 atoms (Li56La24Zr16O96) per 12.97 Å cubic cell = 0.0880 atoms/Å^3
LLZO_DENSITY = 192 / 12.97**3
CHOICES = (4, 8)
PROVENANCES = ("site-measured", "shipped-default", "user-given")


@dataclass(frozen=True)
class Point:
    gpus: int
    atoms: int
    atom_steps_per_s: float

    @property
    def step_s(self) -> float:
        return self.atoms / self.atom_steps_per_s


@dataclass(frozen=True)
class Device:
    device: str
    model: str
    r_max_A: float
    source: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Table:
    path: Path
    provenance: str  # site-measured | shipped-default | user-given
    devices: tuple[Device, ...]

    def find(self, device: str | None) -> Device:
        if not self.devices:
            raise MissingComponent(
                f"{self.path}: no throughput measured yet; run `bundle verify --bench` on the "
                "GPU node, or give `--rate` (atom-steps/s per GPU) from a benchmark you trust"
            )
        if device is None:  # the first GPU row; CPU rows only when asked for by name
            gpu = [d for d in self.devices if d.device.lower() != "cpu"]
            if gpu:
                return gpu[0]
            raise MissingComponent(
                f"{self.path}: no GPU throughput measured yet (rows: "
                f"{', '.join(d.device for d in self.devices)}); run `bundle verify --bench` on "
                "the GPU node, or give `--rate` (atom-steps/s per GPU) from a benchmark you "
                "trust (`--device cpu` sizes MPI ranks on this machine's cores instead)"
            )
        for d in self.devices:
            if d.device.lower() == device.lower():
                return d
        names = ", ".join(d.device for d in self.devices)
        raise MissingComponent(
            f"{self.path}: no throughput for device {device!r} (have: {names}); measure it with "
            "`bundle verify --bench` on that node, or give `--rate`"
        )


def site_table() -> Path:
    env = os.environ.get("MLMD_THROUGHPUT")
    return Path(env) if env else paths.root() / "site" / "throughput.yaml"


def _need(doc: object, key: str, kind: type, path: Path, where: str):
    """doc[key] as `kind` (int, float, str, list); numbers may be written 2.0e6."""
    if not isinstance(doc, dict) or key not in doc:
        raise InputError(path, f"{where}{key}", "missing", "see runbook/sizing/defaults.yaml")
    value = doc[key]
    try:
        if isinstance(value, bool) or (kind is not float and not isinstance(value, kind)):
            raise ValueError
        return float(value) if kind is float else value
    except (TypeError, ValueError):
        raise InputError(
            path, f"{where}{key}", f"expected {kind.__name__}, got {value!r}"
        ) from None


def load_table(path: Path) -> Table:
    """Read and validate a throughput table; errors name the file and the field."""
    doc = io.read_yaml(path, missing="no such throughput table")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(path, "schema", f"expected {SCHEMA!r}", "see runbook/sizing/defaults.yaml")
    prov = _need(doc, "provenance", str, path, "")
    if prov not in PROVENANCES:
        raise InputError(path, "provenance", f"{prov!r}", f"allowed: {', '.join(PROVENANCES)}")
    devices = []
    for i, d in enumerate(doc.get("devices") or []):
        where = f"devices[{i}]."
        pts = []
        for j, p in enumerate(_need(d, "points", list, path, where)):
            w = f"{where}points[{j}]."
            pt = Point(
                _need(p, "gpus", int, path, w),
                _need(p, "atoms", int, path, w),
                _need(p, "atom_steps_per_s", float, path, w),
            )
            if pt.gpus < 1 or pt.atoms < 1 or not 0 < pt.atom_steps_per_s < math.inf:
                raise InputError(path, w.rstrip("."), "gpus, atoms and rate must be positive")
            pts.append(pt)
        if not any(p.gpus == 1 for p in pts):
            raise InputError(path, f"{where}points", "needs at least one single-GPU point")
        devices.append(
            Device(
                _need(d, "device", str, path, where),
                str(d.get("model", "")),
                _need(d, "r_max_A", float, path, where),
                str(d.get("source", "")),
                tuple(pts),
            )
        )
    return Table(path, prov, tuple(devices))


def choose_table(explicit: Path | None = None) -> Table:
    if explicit:
        return load_table(explicit)
    site = site_table()
    return load_table(site if site.exists() else DEFAULTS)


def record_point(device: str, model: str, r_max_A: float, point: Point, source: str) -> Path:
    """Add a measured point to the site table (replacing one of the same device, model, gpus,
    atoms). For `bundle verify --bench`; the table's provenance becomes site-measured."""
    path = site_table()
    doc = io.read_yaml(path) if path.exists() else None
    doc = doc or {"schema": SCHEMA, "provenance": "site-measured", "devices": []}
    entry = next(
        (d for d in doc["devices"] if d["device"] == device and d.get("model") == model), None
    )
    if entry is None:
        entry = {"device": device, "model": model, "r_max_A": r_max_A, "points": []}
        doc["devices"].append(entry)
    entry.update(r_max_A=r_max_A, source=source)
    entry["points"] = [
        p for p in entry["points"] if (p["gpus"], p["atoms"]) != (point.gpus, point.atoms)
    ] + [asdict(point)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------------ the scaling model


def n_ghost(n_local: float, density: float, halo_A: float) -> float:
    """Halo atoms around a cubic sub-domain holding n_local atoms."""
    edge = (n_local / density) ** (1 / 3)
    return density * ((edge + 2 * halo_A) ** 3 - edge**3)


@dataclass(frozen=True)
class Model:
    t0_s: float
    rate: float  # R, atom-steps/s of one saturated GPU
    halo_s_per_atom: float  # c
    halo_A: float
    density: float
    halo_fitted: bool  # c from multi-GPU points (else the pessimistic default 1/R)

    def step_s(self, atoms: int, gpus: int, halo: bool = True) -> float:
        n = atoms / gpus
        t = self.t0_s + n / self.rate
        if gpus > 1 and halo:
            t += self.halo_s_per_atom * n_ghost(n, self.density, self.halo_A)
        return t


def fit(dev: Device, density: float = LLZO_DENSITY) -> Model:
    """t0 and R from the single-GPU points (least squares, t0 >= 0); c from the others."""
    one = [p for p in dev.points if p.gpus == 1]
    xs, ts = [p.atoms for p in one], [p.step_s for p in one]
    t0, inv_r = 0.0, sum(t * x for t, x in zip(ts, xs, strict=True)) / sum(x * x for x in xs)
    if len(set(xs)) >= 2:
        mx, mt = sum(xs) / len(xs), sum(ts) / len(ts)
        slope = sum((x - mx) * (t - mt) for x, t in zip(xs, ts, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        if slope > 0 and mt - slope * mx >= 0:
            t0, inv_r = mt - slope * mx, slope
    halo = dev.r_max_A + SKIN_A
    multi = [p for p in dev.points if p.gpus > 1]
    c, fitted = inv_r, False
    if multi:
        gs = [n_ghost(p.atoms / p.gpus, density, halo) for p in multi]
        rs = [p.step_s - t0 - p.atoms / p.gpus * inv_r for p in multi]
        c = max(0.0, sum(r * g for r, g in zip(rs, gs, strict=True)) / sum(g * g for g in gs))
        fitted = True
    return Model(t0, 1.0 / inv_r, c, halo, density, fitted)


def ns_per_day(step_s: float, timestep_fs: float) -> float:
    return timestep_fs * 1e-6 * 86400.0 / step_s


@dataclass
class Option:
    gpus: int
    ns_day: float  # with the halo term (pessimistic unless fitted)
    ns_day_ideal: float  # halo cost 0: an upper bound
    atoms_per_gpu: float
    efficiency: float  # vs one GPU, same N: t1 / (G * tG)
    meets: bool


@dataclass
class Sizing:
    atoms: int
    target_ns_day: float
    timestep_fs: float
    device: str
    model: str
    table: str
    provenance: str
    source: str
    fit: dict
    options: list[Option]
    recommended: int | None
    assumptions: list[str] = field(default_factory=list)


def size(
    table: Table,
    atoms: int,
    target_ns_day: float,
    *,
    gpus: int | None = None,
    device: str | None = None,
    timestep_fs: float = 1.0,
    density: float = LLZO_DENSITY,
) -> Sizing:
    if atoms < 1:
        raise InputError("--atoms", "atoms", f"{atoms} is not a positive atom count")
    if not target_ns_day > 0:
        raise InputError("--target-ns-day", "target", f"{target_ns_day} must be > 0")
    if not timestep_fs > 0:
        raise InputError("--timestep-fs", "timestep", f"{timestep_fs} must be > 0")
    if gpus is not None and gpus not in CHOICES:
        raise InputError("--gpus", "gpus", f"{gpus}", "allowed: 4 or 8 (a node's GPUs)")
    dev = table.find(device)
    m = fit(dev, density)
    t1 = m.step_s(atoms, 1)
    opts = []
    for g in [gpus] if gpus else CHOICES:
        tg = m.step_s(atoms, g)
        nd = ns_per_day(tg, timestep_fs)
        opts.append(
            Option(
                g,
                nd,
                ns_per_day(m.step_s(atoms, g, halo=False), timestep_fs),
                atoms / g,
                t1 / (g * tg),
                nd >= target_ns_day,
            )
        )
    ok = [o.gpus for o in opts if o.meets]
    assumptions = _assumptions(table, dev, m, atoms, opts, timestep_fs, density)
    return Sizing(
        atoms=atoms,
        target_ns_day=target_ns_day,
        timestep_fs=timestep_fs,
        device=dev.device,
        model=dev.model,
        table=str(table.path),
        provenance=table.provenance,
        source=dev.source,
        fit={"t0_s": m.t0_s, "rate_atom_steps_per_s": m.rate, "halo_s_per_atom": m.halo_s_per_atom},
        options=opts,
        recommended=min(ok) if ok else None,
        assumptions=assumptions,
    )


def _assumptions(table, dev, m, atoms: int, opts: list, timestep_fs: float, density: float):
    """What an answer of `size` rests on, in words (the CLI prints them)."""
    measured_sizes = sorted({p.atoms for p in dev.points if p.gpus == 1})
    origin = (
        "given with --rate"
        if table.provenance == "user-given"
        else f"fitted to single-GPU points at {measured_sizes} atoms"
    )
    assumptions = [
        f"t(N,G) = t0 + (N/G)/R + [G>1] c n_ghost(N/G); t0 = {m.t0_s * 1e3:.3g} ms, "
        f"R = {m.rate:.4g} atom-steps/s per GPU ({origin})",
        "one MPI rank per GPU, one node, cubic sub-domains; halo width r_max + 1 Å "
        f"= {m.halo_A:.1f} Å at {density:.4f} atoms/Å^3",
        (
            f"halo cost c = {m.halo_s_per_atom:.3g} s/atom fitted from multi-GPU points"
            if m.halo_fitted
            else "halo cost c = 1/R (PESSIMISTIC assumption: no multi-GPU point measured); "
            "the ideal column has c = 0"
        ),
        f"timestep {timestep_fs} fs",
    ]
    if len(measured_sizes) < 2:
        assumptions.append("t0 = 0 (one system size known): small systems are overestimated")
    elif atoms / min(o.gpus for o in opts) > 8 * max(measured_sizes):
        assumptions.append("extrapolated far beyond the measured system sizes")
    if table.provenance == "shipped-default":
        assumptions.insert(0, "SHIPPED DEFAULTS, not measured on this site")
    return assumptions


def explicit_rate_table(rate: float, device: str, r_max_A: float) -> Table:
    """A one-point table from `--rate` (atom-steps/s of one GPU at saturation)."""
    if not (rate > 0 and math.isfinite(rate)):
        raise InputError("--rate", "rate", f"{rate} must be a positive atom-steps/s")
    pt = Point(1, 1_000_000, rate)
    dev = Device(
        device, "given on the command line", r_max_A, "a number the user gave (--rate)", (pt,)
    )
    return Table(Path("--rate"), "user-given", (dev,))
