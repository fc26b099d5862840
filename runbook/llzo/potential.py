"""The classical LLZO baseline: a rigid-ion Buckingham + Coulomb set read from a data file.

The parameters and their provenance live in `buckingham.yaml` beside this module (paper,
table, and what was not verified). This module validates that file and renders the
LAMMPS pair/kspace commands for the types of `runbook.llzo.TYPE_IDS`.

Long-range Coulomb: PPPM (Ewald accuracy 1e-4) with an 8 Å real-space cutoff. Measured on
the Sigma5 (210) bicrystal (tests/bench/bench_llzo.py): Li forces agree with PPPM 1e-7 to
0.05 % RMS, while the damped-shifted-force sum (coul/dsf, alpha 0.2 / Å, 12 Å) is off by
about 30 % RMS: the layered boundary structure carries long-range fields that a
pairwise damped sum screens away. PPPM costs about the same per step here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bundle.core import io
from bundle.core.errors import InputError
from runbook.llzo import TYPE_IDS

DEFAULT_FILE = Path(__file__).with_name("buckingham.yaml")
SCHEMA = "llzo-potential/1"
BASE = {"Li", "La", "Zr", "O"}  # species every potential file must give charges for


@dataclass(frozen=True)
class Buckingham:
    """E(r) = A exp(-r / rho) - C / r^6; A eV, rho Å, C eV Å^6."""

    A: float
    rho: float
    C: float


@dataclass(frozen=True)
class PotentialSet:
    name: str
    charges: dict[str, float]
    pairs: dict[frozenset[str], Buckingham]
    source: str  # the data file it came from

    def pair(self, a: str, b: str) -> Buckingham | None:
        return self.pairs.get(frozenset({a, b}))

    def scaled(self, a: str, b: str, factor: float) -> PotentialSet:
        """The same set with the short-range a-b energy (A and C) multiplied by `factor`:
        the deliberate perturbation used to prove that `bundle check` discriminates."""
        key = frozenset({a, b})
        p = self.pairs[key]
        pairs = dict(self.pairs)
        pairs[key] = Buckingham(p.A * factor, p.rho, p.C * factor)
        return replace(self, name=f"{self.name} ({a}-{b} x {factor:g})", pairs=pairs)


def load(path: Path = DEFAULT_FILE) -> PotentialSet:
    """Read and validate a potential file (errors name the file and the field)."""
    doc = io.read_yaml(path, missing="no such potential file", fix="check the path")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(path, "schema", f"expected `schema: {SCHEMA}`")
    species = set(TYPE_IDS)
    charges = doc.get("charges") or {}
    if not isinstance(charges, dict) or not BASE <= set(charges) <= species:
        got = sorted(charges) if isinstance(charges, dict) else charges
        raise InputError(path, "charges", f"need {sorted(BASE)}, optionally "
                         f"{sorted(species - BASE)} (got {got})")  # fmt: skip
    pairs: dict[frozenset[str], Buckingham] = {}
    for key, p in (doc.get("pairs") or {}).items():
        names = str(key).split("-")
        if len(names) != 2 or not set(names) <= species:
            raise InputError(
                path, f"pairs.{key}", f"expected `A-B` with A, B in {', '.join(TYPE_IDS)}"
            )
        try:
            b = Buckingham(float(p["A"]), float(p["rho"]), float(p["C"]))
        except (KeyError, TypeError, ValueError):
            msg = "needs numbers A (eV), rho (Å), C (eV Å^6)"
            raise InputError(path, f"pairs.{key}", msg) from None
        if b.A < 0 or b.rho <= 0 or b.C < 0:
            raise InputError(path, f"pairs.{key}", "A >= 0, rho > 0, C >= 0 required")
        pairs[frozenset(names)] = b
    if frozenset({"Li", "O"}) not in pairs:
        raise InputError(path, "pairs.Li-O", "the Li-O interaction is required")
    return PotentialSet(str(doc.get("name", path)), {k: float(v) for k, v in charges.items()},
                        pairs, str(path))  # fmt: skip


def check_species(pset: PotentialSet, species: set[str], where: Path | str, field: str) -> None:
    """Refuse a structure holding a species the set gives no charge or no X-O pair for."""
    for s in sorted(species - {"O"}):
        if s not in pset.charges or pset.pair(s, "O") is None:
            raise InputError(
                where, field, f"the structure holds {s} but the potential file {pset.source} "
                f"has no {s} charge or {s}-O pair",
                f"add a cited {s}-O Buckingham pair and charge to the potential file",
            )  # fmt: skip


def lammps_lines(
    pset: PotentialSet, cutoff: float = 8.0, accuracy: float = 1e-4, n_types: int = 4
) -> list[str]:
    """`set type ... charge`, `pair_style`, `pair_coeff` and `kspace_style` lines (after
    `read_data`: the set's charges replace whatever the data file carried) for the first
    `n_types` types of TYPE_IDS (a data file declares as many as it needs)."""
    by_type = sorted(TYPE_IDS.items(), key=lambda kv: kv[1])[:n_types]
    missing = [s for s, _ in by_type if s not in pset.charges]
    if missing:
        raise InputError(pset.source, "charges", f"no charge for {', '.join(missing)}",
                         "add it (with the pair terms' source) or drop that species")  # fmt: skip
    lines = [f"set type {t} charge {pset.charges[s]:g}" for s, t in by_type]
    lines += [f"pair_style buck/coul/long {cutoff:g}", "pair_coeff * * 0.0 1.0 0.0"]
    for i, (a, ti) in enumerate(by_type):
        for b, tj in by_type[i:]:
            p = pset.pair(a, b)
            if p is not None:
                lines.append(f"pair_coeff {ti} {tj} {p.A:.6f} {p.rho:.6f} {p.C:.6f}  # {a}-{b}")
    lines.append(f"kspace_style pppm {accuracy:g}")
    return lines
