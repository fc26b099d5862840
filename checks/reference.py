"""References as data, and the judgement of a results document against one.

Reference file (YAML, schema `gb-reference/1`; shipped ones in checks/references/):

    schema: gb-reference/1
    name: llzo-gb-700K-published
    source: where the values come from
    parameters:            # analysis parameters the values assume (keys of
      w_A: 2.0             # results.json "parameters"); null or absent = any value
    quantities:
      excess.enrichment:   # a path into results.json (list items by index: gb_planes_A.0)
        value: 0.73
        lower: 0.22        # how far below `value` still passes ...
        upper: 0.22        # ... and above: fractions of |value| (bounds: relative)
        bounds: absolute   #     or amounts in `unit` (bounds: absolute)
        unit: "1"
        source: the sentence of the source that states the value

An entry without `lower`/`upper` is reported, not judged. A quantity missing (or null)
in the results FAILs with the reason. Results computed with parameters that differ from
the reference's are refused (InputError) naming both values.
"""

from __future__ import annotations

import hashlib
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from bundle.core import __version__, atomic, io
from bundle.core.errors import InputError
from checks import deviation
from checks.results import get_path

SCHEMA = "gb-reference/1"
REPORT_SCHEMA = "gb-check/1"
REFERENCES_DIR = Path(__file__).resolve().parent / "references"
BOUNDS = ("relative", "absolute")
# results.json parameter → the `bundle analyze` option that sets it
FLAGS = {
    "dz_A": "--dz",
    "w_A": "--w",
    "d_bulk_A": "--d-bulk",
    "window_ps": "--window-ps",
    "avg_window_ps": "--avg-window-ps",
    "n_blocks": "--n-blocks",
    "w_start_A": "--w-start",
    "origin_every": "--origin-every",
    "fit_window_ps": "--fit-window-ps",
    "include_excess": "--include-excess",
    "timestep_fs": "--timestep-fs",
    "temperature_K": "--temperature-K",
    "hop_A": "--hop-A",
    "site_A": "--site-A",
}


@dataclass(frozen=True)
class Quantity:
    key: str
    value: float
    lower: float | None
    upper: float | None
    bounds: str | None
    unit: str
    source: str

    def limits(self) -> tuple[float, float] | None:
        if self.lower is None or self.upper is None:
            return None
        scale = abs(self.value) if self.bounds == "relative" else 1.0
        return self.value - self.lower * scale, self.value + self.upper * scale


@dataclass(frozen=True)
class Reference:
    name: str
    file: Path
    source: str
    parameters: dict
    quantities: tuple[Quantity, ...]


def available() -> list[str]:
    return sorted(p.stem for p in REFERENCES_DIR.glob("*.yaml"))


def load_reference(name_or_file: str | Path) -> Reference:
    """A shipped reference by NAME, or a reference FILE; validated."""
    path = Path(name_or_file)
    if not path.is_file():
        shipped = REFERENCES_DIR / f"{name_or_file}.yaml"
        if not shipped.is_file():
            raise InputError(
                name_or_file,
                "--reference",
                "neither a file nor a shipped reference",
                f"shipped: {', '.join(available()) or 'none'}",
            )
        path = shipped
    doc = io.read_yaml(path, fix="fix the YAML")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(
            path, "schema", f"expected {SCHEMA!r}", f"start the file with schema: {SCHEMA}"
        )
    params = doc.get("parameters") or {}
    qs = doc.get("quantities")
    if not isinstance(params, dict):
        raise InputError(path, "parameters", "expected a mapping of analysis parameters")
    for k, v in params.items():
        _finite_parameter(path, f"parameters.{k}", v)
    if not isinstance(qs, dict) or not qs:
        raise InputError(path, "quantities", "expected a non-empty mapping of quantities")
    return Reference(
        name=str(doc.get("name") or path.stem),
        file=path,
        source=str(doc.get("source", "")),
        parameters={k: v for k, v in params.items() if v is not None},
        quantities=tuple(_quantity(path, str(k), v) for k, v in qs.items()),
    )


def _finite_parameter(path: Path, field: str, v: object) -> None:
    """A parameter value: null, bool, string, a finite number or a list of those."""
    items = v if isinstance(v, list) else [v]
    for x in items:
        if isinstance(x, float) and not math.isfinite(x):
            raise InputError(path, field, f"{x} is not a finite number", "give a finite value")
        if isinstance(x, dict | list):
            raise InputError(path, field, "expected a value or a list of values")


def _number(path: Path, field: str, x: object, what: str, fix: str = "") -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise InputError(path, field, f"expected {what} (got {x!r})", fix)
    if not math.isfinite(x):
        raise InputError(path, field, f"{x} is not a finite number", fix or "give a finite value")
    return float(x)


def _quantity(path: Path, key: str, e: object) -> Quantity:
    field = f"quantities.{key}"
    if not isinstance(e, dict):
        raise InputError(path, field, "expected a mapping with value, lower, upper, bounds, unit")
    value = _number(path, f"{field}.value", e.get("value"), "a number")
    lower, upper, bounds = e.get("lower"), e.get("upper"), e.get("bounds")
    for name, x in (("lower", lower), ("upper", upper)):
        fix = "bounds are distances below/above value"
        if x is not None and _number(path, f"{field}.{name}", x, "a number or null", fix) < 0:
            raise InputError(
                path, f"{field}.{name}", f"expected a non-negative number (got {x!r})", fix
            )
    if (lower is None) != (upper is None):
        raise InputError(path, field, "give both lower and upper, or neither (not judged)")
    if lower is not None and bounds not in BOUNDS:
        raise InputError(path, f"{field}.bounds", f"expected one of {BOUNDS} (got {bounds!r})")
    if not isinstance(e.get("unit"), str):
        raise InputError(path, f"{field}.unit", 'expected a string ("1" when dimensionless)')
    return Quantity(key, value, lower, upper, bounds, e["unit"], str(e.get("source", "")))


def _same(a: object, b: object) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def check_parameters(results: dict, ref: Reference, results_path: Path) -> None:
    """Refuse results computed with other analysis parameters than the reference's."""
    got = results.get("parameters") or {}
    diffs = [
        f"{k} = {got.get(k)!r} (reference {ref.name}: {v!r}; {FLAGS.get(k, k)})"
        for k, v in ref.parameters.items()
        if not _same(got.get(k), v)
    ]
    if diffs:
        raise InputError(
            results_path,
            "parameters",
            "computed with other parameters than the reference assumes: " + "; ".join(diffs),
            "re-run `bundle analyze` with the reference's values",
        )


def judge_value(value: object, q: Quantity) -> tuple[str, str]:
    """One number against a quantity's limits: (PASS | FAIL | NOT-JUDGED, why). The judge
    every acceptance shares (`bundle check`, `bundle verify`): value, lower, upper, unit."""
    if value is None:
        return "FAIL", "missing"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "FAIL", f"not a number: {type(value).__name__}"
    limits = q.limits()
    if not math.isfinite(value):
        if limits is None:
            return "NOT-JUDGED", f"{value}; no bounds"
        return "FAIL", f"not a finite number: {value}"
    if limits is None:
        return "NOT-JUDGED", "the reference gives no bounds"
    lo, hi = limits
    if value < lo:
        return "FAIL", f"below the lower limit {lo:.4g}"
    if value > hi:
        return "FAIL", f"above the upper limit {hi:.4g}"
    return "PASS", ""


def judge(results: dict, q: Quantity) -> dict:
    """One check: value, reference, limits, unit, status (PASS/FAIL/NOT-JUDGED), reason."""
    limits = q.limits()
    row = {
        "quantity": q.key,
        "value": None,
        "reference": q.value,
        "lower": q.lower,
        "upper": q.upper,
        "bounds": q.bounds,
        "limits": list(limits) if limits else None,
        "unit": q.unit,
        "source": q.source,
    }
    value = get_path(results, q.key, None)
    if value is None:
        section = q.key.split(".")[0]
        why = (
            " (that section is null: its inputs were absent)"
            if results.get(section, 1) is None
            else ""
        )
        return row | {"status": "FAIL", "reason": f"missing from the results{why}"}
    status, reason = judge_value(value, q)
    if reason.startswith("not a"):  # not a number / not a finite number
        return row | {"status": status, "reason": reason.replace(":", " in the results:", 1)}
    if not math.isfinite(value):  # the report says so with an explicit null (strict JSON)
        return row | {"status": status, "reason": reason.replace(";", " in the results;", 1)}
    return row | {"value": value, "status": status, "reason": reason}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def compare(results: dict, ref: Reference, *, results_path: Path) -> dict:
    """The `gb-check/1` report of `results` against `ref` (parameters checked first)."""
    check_parameters(results, ref, results_path)
    rows = [judge(results, q) for q in ref.quantities]
    domain = deviation.domain_row(results)  # a committee summary: inside its trust domain?
    if domain is not None:
        rows.append(domain)
    n_pass = sum(r["status"] == "PASS" for r in rows)
    n_fail = sum(r["status"] == "FAIL" for r in rows)
    judged = n_pass + n_fail
    rp = results_path / "results.json" if results_path.is_dir() else results_path
    return {
        "schema": REPORT_SCHEMA,
        "status": "PASS" if judged and not n_fail else "FAIL",
        "summary": {
            "judged": judged,
            "pass": n_pass,
            "fail": n_fail,
            "not_judged": len(rows) - judged,
        },
        "session": {
            "bundle_version": __version__,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # no host name (reports leave the site): a short digest identifies the machine
            "host": {
                "id": hashlib.sha256(platform.node().encode()).hexdigest()[:12],
                "platform": platform.platform(),
                "cpus": __import__("os").cpu_count(),
            },
            "python": platform.python_version(),
        },
        "results": {
            "file": str(rp),
            "sha256": _sha256(rp) if rp.is_file() else None,
            "parameters": results.get("parameters"),
        },
        "reference": {
            "name": ref.name,
            "file": str(ref.file),
            "sha256": _sha256(ref.file),
            "source": ref.source,
            "parameters": ref.parameters,
        },
        "checks": rows,
    }


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def check_report_path(json_out: Path, results_file: Path, ref: Reference) -> None:
    """Refuse a --json target that is an input (the results or the reference) or a folder."""
    results_file = Path(results_file)
    inputs = [results_file, results_file / "results.json", ref.file]
    atomic.check_output(Path(json_out), "--json", inputs, folder=False)


def write_report(json_out: Path, report: dict) -> None:
    """The report as strict JSON (no NaN: non-finite numbers are null), written atomically."""
    json_out = Path(json_out)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_file(json_out, atomic.strict_json(report, indent=1))


def console_lines(report: dict) -> list[str]:
    """One line per quantity, then a summary line."""
    rows = report["checks"]
    width = max(len(r["quantity"]) for r in rows)
    lines = []
    for r in rows:
        tag = {"PASS": "PASS", "FAIL": "FAIL", "NOT-JUDGED": "----"}[r["status"]]
        lim = f"[{_num(r['limits'][0])}, {_num(r['limits'][1])}]" if r["limits"] else "(no bounds)"
        unit = "" if r["unit"] == "1" else r["unit"]
        line = (
            f"{tag}  {r['quantity']:<{width}}  {_num(r['value']):>10}  "
            f"ref {_num(r['reference']):>9}  {lim:<22} {unit}"
        )
        lines.append(line.rstrip() + (f"  - {r['reason']}" if r["reason"] else ""))
    s = report["summary"]
    lines.append(
        f"{report['status']}: {s['pass']} pass, {s['fail']} fail of {s['judged']} judged"
        f" ({s['not_judged']} reported only) against {report['reference']['name']}"
    )
    return lines
