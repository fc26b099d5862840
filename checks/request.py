"""What an analysis or a check is asked to do, as typed parameters, and doing it.

    analyze(AnalysisRequest(...))  -> results.json (+ figures, summary.md) in `out`
    check(CheckRequest(...))       -> the gb-check/1 report (its verdict a value)

`bundle analyze` / `bundle check` build these from their options; the runbook's analyze
and check stages render them as JSON files and run `python -m checks analyze|check
FILE.json` (checks.__main__); a sweep re-analyses at another band width by changing `w`
of the same request (`dataclasses.replace`). Paths in a request are relative to the
folder the request runs in (the stage folder), or absolute.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.core import atomic, io
from bundle.core.errors import InputError
from checks import figures, metrics, results
from checks import reference as ref
from checks.lammpsio import parse_type_map, read_data_types


@dataclass(frozen=True)
class AnalysisRequest:
    """`bundle analyze`'s options as data. Lengths in Å, times in ps (timestep in fs)."""

    dumps: tuple[str, ...]
    timestep_fs: float
    out: str
    data: str | None = None  # a LAMMPS data file naming the types ...
    type_map: str | None = None  # ... or the map itself, e.g. "1:Li,2:O"
    li_type: str = "Li"
    excess_above_id: int | None = None
    excess_ids: str | None = None  # a file of excess Li ids
    gb: tuple[float, float] | None = None
    dz: float = 0.5
    w: float = 2.0
    d_bulk: float = 8.0
    window_ps: tuple[float, float] | None = None
    avg_window_ps: float = 50.0
    n_blocks: int = 5
    w_start: float | None = None
    origin_every: int = 1
    fit_window_ps: tuple[float, float] | None = None
    include_excess: bool = False
    drop_incomplete_frame: bool = False
    temperature_K: float | None = None  # the run's thermostat target, recorded
    li_sites: str | None = None  # li_sites.npz of the build: 24d/96h occupancies
    site_A: float = 1.0  # site assignment radius
    hop_A: float = 1.5  # hop distance
    deviation: str | None = None  # the MD's committee summary (JSON), copied into results

    def params(self, base: Path = Path(".")) -> metrics.Params:
        p = metrics.Params(
            timestep_fs=self.timestep_fs,
            dz=self.dz,
            w=self.w,
            d_bulk=self.d_bulk,
            window_ps=self.window_ps,
            avg_window_ps=self.avg_window_ps,
            n_blocks=self.n_blocks,
            gb=self.gb,
            w_start=self.w_start,
            origin_every=self.origin_every,
            fit_window_ps=self.fit_window_ps,
            include_excess=self.include_excess,
            drop_incomplete_frame=self.drop_incomplete_frame,
            temperature_K=self.temperature_K,
            li_sites=base / self.li_sites if self.li_sites is not None else None,
            site_A=self.site_A,
            hop_A=self.hop_A,
        )
        p.validate()
        return p

    def check_choices(self) -> None:
        """The options that exclude each other."""
        if (self.data is None) == (self.type_map is None):
            raise InputError(
                metrics.CLI, "--data/--type-map", "give exactly one", "e.g. --type-map 1:Li,2:O"
            )
        if self.excess_above_id is not None and self.excess_ids is not None:
            raise InputError(metrics.CLI, "--excess-above-id/--excess-ids", "give at most one")

    def type_names(self, base: Path) -> dict[int, str]:
        if self.data is not None:
            return read_data_types(base / self.data)
        return parse_type_map(self.type_map or "")

    def selection(self, base: Path, names: dict[int, str]) -> metrics.Selection:
        ids = read_ids(base / self.excess_ids) if self.excess_ids is not None else None
        return metrics.Selection(
            type_names=names,
            li_type=self.li_type,
            excess_ids=ids,
            excess_ids_source=self.excess_ids or "--excess-ids",
            excess_above_id=self.excess_above_id,
        )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> AnalysisRequest:
        pairs = ("gb", "window_ps", "fit_window_ps")
        fixed = {k: tuple(v) if k in pairs and v is not None else v for k, v in d.items()}
        return cls(**{**fixed, "dumps": tuple(d["dumps"])})

    def absolute(self, base: Path) -> AnalysisRequest:
        """The request with its input paths made absolute against `base` (to run it from
        another folder: a sweep's re-analysis)."""

        def a(p: str | None) -> str | None:
            return None if p is None else str((base / p).resolve())

        return dataclasses.replace(
            self,
            dumps=tuple(str((base / d).resolve()) for d in self.dumps),
            data=a(self.data),
            excess_ids=a(self.excess_ids),
            li_sites=a(self.li_sites),
            deviation=a(self.deviation),
        )


def read_ids(path: Path) -> np.ndarray:
    """Atom ids, one or more per line (commas or blanks; `#` comments)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(
            path, "(file)", f"cannot read: {e.strerror}", "check --excess-ids"
        ) from None
    tokens = re.sub(r"#.*", "", text).replace(",", " ").split()
    try:
        ids = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError as e:
        raise InputError(
            path, "ids", f"not an integer id ({e})", "list atom ids, one per line"
        ) from None
    if len(ids) == 0:
        raise InputError(path, "ids", "no id in the file", "list atom ids, one per line")
    return ids


def committee_summary(path: Path) -> dict:
    """An MD's committee deviation summary (checks.deviation.trust_levels' output, as
    the md stage records it): a mapping with the trust window and the frame levels."""
    doc = io.read_json(path, fix="give the `deviation` of an md stage's result")
    if not isinstance(doc, dict) or not {"lo_ev_a", "hi_ev_a", "frames"} <= set(doc):
        raise InputError(
            path, "(document)", "not a committee deviation summary",
            "give the `deviation` of an md stage's result (lo_ev_a, hi_ev_a, frames)",
        )  # fmt: skip
    return doc


def analyze(
    req: AnalysisRequest,
    base: Path = Path("."),
    *,
    warn: Callable[[str], None] = lambda m: None,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[Path, dict]:
    """Run an analysis request in `base`: results.json, the figures and summary.md are
    written in a staging folder beside OUT and moved into OUT only when the analysis
    succeeded (bundle.core.atomic): a failure leaves OUT as it was. Returns (results
    path, document)."""
    req.check_choices()
    dumps = [base / d for d in req.dumps]
    for d in dumps:
        if not d.is_file():
            raise InputError(d, "(file)", "not found", "give the path of a LAMMPS dump")
    out = base / req.out
    atomic.check_output(out, "--out", dumps)
    names = req.type_names(base)
    params = req.params(base)
    selection = req.selection(base, names)
    committee = None if req.deviation is None else committee_summary(base / req.deviation)
    owned = (results.RESULTS, results.SUMMARY, *figures.FIGURES)
    with atomic.output_dir(out, "--out", dumps, owned=owned) as staging:
        doc = metrics.analyze(
            dumps, params, selection, scratch=staging, warn=warn, progress=progress
        )
        if committee is not None:
            doc["deviation"] = committee
        figures.write_figures(staging, doc)
        results.write_results(staging, doc)
    return out / results.RESULTS, doc


@dataclass(frozen=True)
class CheckRequest:
    """`bundle check RESULTS --reference R --json REPORT` as data."""

    results: str
    reference: str
    report: str | None = None


def check(req: CheckRequest, base: Path = Path(".")) -> dict:
    """Judge a results document against a reference; the gb-check/1 report (written to
    `report` when given). The verdict is the report's `status` (PASS/FAIL)."""
    path = base / req.results
    doc = results.load_results(path)
    spec = ref.load_reference(req.reference)
    out = None if req.report is None else base / req.report
    if out is not None:  # never one of the inputs, never a folder
        ref.check_report_path(out, path, spec)
    report = ref.compare(doc, spec, results_path=path)
    if out is not None:
        ref.write_report(out, report)  # strict JSON: NaN/inf are null
    return report
