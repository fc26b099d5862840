"""Phase 5, reproducibility: one replica of the profile's study (a seed the reference was
not made from) run by `bundle run`, its results judged by `bundle check` against the
profile's reference; one verify check per quantity."""

from __future__ import annotations

import json
from pathlib import Path

from bundle.core import engines, io
from bundle.core.errors import CheckFailed
from bundle.verify.common import E_METRIC, E_STUDY, FAIL, PASS, SKIP, Check, Context, run_logged
from checks.reference import load_reference
from runbook.sweep.plan import plan as sweep_plan


def run_study(ctx: Context, spec: dict) -> Path:
    """One replica of the profile's study (seed `spec["seed"]`), frozen by the runbook's
    sweep planner (sweep block removed, the seed set in every field the sweep sets), run
    by `bundle run FILE` in the work folder; returns its analysis results.json."""
    plan = sweep_plan(spec["name"], ctx.work / "study", [f"sweep.seeds=[{spec['seed']}]"],
                      ctx.opts.profile)  # fmt: skip
    point = plan.points[0]
    argv = [
        engines.venv_bin("bundle"),
        "run",
        str(point.study_file),
        "--run-dir",
        str(point.run_dir),
    ]
    r = run_logged(argv, ctx.logs / "study-run.log")
    if r.returncode != 0:
        why = f"`bundle run {point.study_file.name}` (seed {spec['seed']}) exited {r.returncode}"
        raise CheckFailed(f"{why}; see logs/study-run.log")
    found = sorted(point.run_dir.glob(spec["results"]))
    if len(found) != 1:
        raise CheckFailed(
            f"expected one {spec['results']} under {point.run_dir}, found {len(found)}"
        )
    return found[0]


def check_study(ctx: Context, results: Path, reference: str) -> list[Check]:
    """`bundle check RESULTS --reference NAME --json`: one verify check per quantity."""
    ph = "reproducibility"
    out_json = ctx.work / "study-check.json"
    out_json.unlink(missing_ok=True)
    argv = [
        engines.venv_bin("bundle"),
        "check",
        str(results),
        "--reference",
        reference,
        "--json",
        str(out_json),
    ]
    r = run_logged(argv, ctx.logs / "study-check.log")
    if not out_json.is_file():
        last = (ctx.logs / "study-check.log").read_text(errors="replace").strip().splitlines()[-1:]
        why = f"`bundle check` exited {r.returncode}: {' '.join(last)}"
        return [Check(ph, f"check:{reference}", FAIL, why, E_STUDY)]
    doc = json.loads(out_json.read_text())
    out = []
    for row in doc["checks"]:
        q, st = row["quantity"], row["status"]
        lo, hi = row["limits"] or (None, None)
        unit = "" if row["unit"] == "1" else row["unit"]
        if st == "NOT-JUDGED":
            c = Check(ph, q, SKIP, "reported, not judged: the reference gives no bounds")
        elif st == "PASS":
            c = Check(ph, q, PASS, "within the reference bounds")
        else:
            c = Check(ph, q, FAIL, f"metric {q}: {row['reason']}", E_METRIC)
        c.value, c.reference, c.lower, c.upper, c.unit = (
            row["value"],
            row["reference"],
            lo,
            hi,
            unit,
        )
        out.append(c)
    ctx.facts["study_check"] = {
        "reference": reference,
        "status": doc["status"],
        "summary": doc["summary"],
    }
    return out


def reference_replicas(reference: str) -> list[str]:
    """The runs a reference was made from (`made_by.replicas`, e.g. seed3), if it says."""
    doc = io.read_mapping(load_reference(reference).file)
    return [str(r) for r in (doc.get("made_by") or {}).get("replicas", [])]


def phase_reproducibility(ctx: Context) -> list[Check]:
    spec = ctx.profile["study"]
    if ctx.opts.results is None and ctx.opts.quick:
        why = "--quick: the study was not run (the acceptance needs a run without --quick)"
        return [Check("reproducibility", spec["name"], SKIP, why)]
    reference = ctx.opts.reference or spec["reference"]
    if ctx.opts.results is None and f"seed{spec['seed']}" in reference_replicas(reference):
        why = (
            f"seed {spec['seed']} is one of the replicas {reference} was made from: not an "
            "independent run; choose another seed in bundle/references/profiles.yaml"
        )
        return [Check("reproducibility", spec["name"], FAIL, why, E_STUDY)]
    try:
        results = ctx.opts.results or run_study(ctx, spec)
    except CheckFailed as e:
        return [Check("reproducibility", spec["name"], FAIL, str(e), E_STUDY)]
    ctx.facts["study_results"] = str(results)
    return check_study(ctx, results, reference)
