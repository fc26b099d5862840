"""`bundle verify`: the acceptance test, in six phases, with a signed proofpack.

| phase            | checks (each: PASS / FAIL / SKIP, a reason, an error code)          |
|------------------|----------------------------------------------------------------------|
| integrity        | install record; manifest signature; every installed file's SHA-256; |
|                  | the Python environment equals the lock                              |
| host             | CPU, memory, disk, OS; GPUs by NVML (count, model, memory, driver,  |
|                  | NVLink); container runtime; MPI                                      |
| images           | each image of the install present, with labels equal to the lock    |
| engines          | QE SCF energy vs the stored reference; QE 1 vs 2 MPI ranks; the      |
|                  | packaged model compiled here, its forces vs stored forces; LAMMPS    |
|                  | through the production inputs (the md stage's data file and fix-     |
|                  | external setup template) = the model's Python forces; per GPU; the   |
|                  | shipped DeePMD model's forces vs stored, pair_style deepmd = Python  |
| reproducibility  | the profile's study through `bundle check` vs its reference          |
| report           | report.json (`bundle-verify/1`), report.md, proofpack.zip + SHA-256  |
|                  | + ed25519 signature; host and user names redacted                    |

A failing integrity phase stops the expensive phases (engines, reproducibility:
SKIP, "integrity FAILED"); every other failure lets the rest run, so one report
lists all that is wrong. Error codes are the keys of `bundle.doctor.ADVICE`.
Engine references live in `bundle/references/engines.yaml` (data, not code, validated
by a schema), profile requirements in `bundle/references/profiles.yaml`. Every judged
number goes through checks.reference.judge_value, the judge `bundle check` uses.

One module per phase (integrity, host, images, engines + the model-check and deepmd-check
workers, reproducibility, report); `common` holds what they share; this module runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bundle import manifest as mf
from bundle.core import paths
from bundle.core.errors import BundleError, CheckFailed, InputError
from bundle.install import read_record
from bundle.verify.common import (
    CODES,
    E_PHASE,
    FAIL,
    PHASES,
    PROFILES,
    SCHEMA,
    SKIP,
    Check,
    Context,
    VerifyOptions,
    fresh,
    profile_requirements,
)
from bundle.verify.engines import phase_engines
from bundle.verify.host import phase_host
from bundle.verify.images import phase_images
from bundle.verify.integrity import phase_integrity
from bundle.verify.report import phase_report
from bundle.verify.reproducibility import phase_reproducibility, reference_replicas

__all__ = [
    "CODES",
    "PHASES",
    "PROFILES",
    "SCHEMA",
    "VerifyOptions",
    "last_report",
    "profile_requirements",
    "reference_replicas",
    "verify",
]


def reports_dir(root: Path, installed: bool) -> Path:
    return root / "reports" if installed else root / "runs" / "verify"


def last_report(root: Path | None = None) -> Path | None:
    """The report.json of the most recent verify under this root (None if there is none)."""
    root = root or paths.root()
    base = reports_dir(root, read_record(root) is not None)
    last = base / "LAST"
    if not last.is_file():
        return None
    path = base / last.read_text().strip() / "report.json"
    return path if path.is_file() else None


def _run_phase(ctx: Context, phase: str, fn, earlier: list[Check]) -> list[Check]:
    """One phase's checks: SKIP when not selected, or when integrity FAILed and the phase
    is an expensive one; a phase that stops with an error is one FAIL."""
    opts = ctx.opts
    if opts.only and phase not in opts.only:
        return [Check(phase, phase, SKIP, f"not selected (--only {','.join(opts.only)})")]
    if phase in ("engines", "reproducibility") and any(
        c.phase == "integrity" and c.status == FAIL for c in earlier
    ):
        return [Check(phase, phase, SKIP, "not run: integrity FAILED")]
    ts = time.perf_counter()
    try:
        results = fn(ctx)
    except BundleError as e:
        results = [Check(phase, phase, FAIL, str(e), E_PHASE)]
    for c in results:
        c.seconds = c.seconds or round(time.perf_counter() - ts, 2)
    return results


PHASE_FUNCS: tuple[tuple[str, Callable[[Context], list[Check]]], ...] = (
    ("integrity", phase_integrity),
    ("host", phase_host),
    ("images", phase_images),
    ("engines", phase_engines),
    ("reproducibility", phase_reproducibility),
)


def verify(opts: VerifyOptions, say: Callable[[str], None] = print) -> dict:
    """Run the phases in order, write the report and proofpack; returns the report.

    Raises CheckFailed (exit 1) when any check FAILed, after everything is written.
    """
    if opts.profile not in PROFILES:
        raise InputError("--profile", "value", f"{opts.profile!r} is unknown", f"use {PROFILES}")
    if bad := [p for p in opts.only if p not in PHASES[:-1]]:
        raise InputError("--only", "value", f"unknown phase(s) {bad}", f"use {PHASES[:-1]}")
    root = paths.root()
    record = read_record(root)
    started = mf.now_utc()
    name = "verify-" + started.replace(":", "").replace("-", "")
    out = opts.out or reports_dir(root, record is not None) / name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        opts,
        root,
        out,
        fresh(out / "work"),
        fresh(out / "logs"),
        say,
        record,
        profile_requirements(opts.profile),
    )
    say(
        f"bundle verify: profile {opts.profile}{' (quick)' if opts.quick else ''}, "
        f"{'installed at ' + str(root) if record else 'source checkout'}; report in {out}"
    )
    t0 = time.perf_counter()
    checks: list[Check] = []
    for phase, fn in PHASE_FUNCS:
        results = _run_phase(ctx, phase, fn, checks)
        for c in results:
            say(c.line())
        checks += results
    rep = phase_report(ctx, checks, started, t0)
    if opts.out is None:
        (out.parent / "LAST").write_text(out.name + "\n")
    n_fail = sum(c["status"] == FAIL for c in rep["checks"])
    partial = "" if rep["acceptance"] else " (a re-check: --quick/--only/--reference)"
    say(
        f"verify {rep['status']}{partial}: {len(rep['checks'])} checks, {n_fail} failed; "
        f"proofpack {out / 'proofpack.zip'} (sha256 {rep['proofpack']['sha256'][:16]}...)"
    )
    if n_fail:
        raise CheckFailed(f"verify FAILED ({n_fail} checks); `bundle doctor` says what to do next")
    return rep
