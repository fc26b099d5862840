"""Phase 6, report: report.json (`bundle-verify/1`), report.md, and the proofpack (logs,
versions, the study's files, GPU snapshots; redacted, hashed, ed25519-signed)."""

from __future__ import annotations

import getpass
import json
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bundle import manifest as mf
from bundle import pack
from bundle.core import __version__, atomic, lock, paths
from bundle.proofpack import shipped_members, write_proofpack
from bundle.verify.common import FAIL, PASS, PHASES, PROFILES, SCHEMA, SKIP, Check, Context


def report_markdown(rep: dict) -> str:
    s = rep["session"]
    lines = [
        f"# bundle verify: {rep['status']}",
        "",
        f"- profile `{s['profile']}`{' (quick)' if s['quick'] else ''},"
        f" bundle {s['bundle_version']} ({s['install']}), lock `{s['lock_sha256'][:16]}...`",
        f"- host `{s['host']}`, user `{s['user']}`; {s['facts'].get('host', {}).get('cpu', '')}",
        f"- started {s['started_utc']}, {s['wall_s']:.0f} s",
        "",
        "| phase | result | checks (fail/skip) |",
        "|---|---|---|",
    ]
    for p in rep["phases"]:
        lines.append(f"| {p['phase']} | {p['status']} | {p['n']} ({p['fail']}/{p['skip']}) |")
    lines += [
        "",
        "| phase/check | status | value | reference | reason | code |",
        "|---|---|---|---|---|---|",
    ]
    for c in rep["checks"]:
        v = "" if c["value"] is None or isinstance(c["value"], dict | list) else c["value"]
        ref = (
            ""
            if c["reference"] is None or isinstance(c["reference"], dict | list)
            else c["reference"]
        )
        unit = f" {c['unit']}" if c["unit"] and v != "" else ""
        reason = c["reason"].replace("|", "\\|")
        cells = [f"{c['phase']}/{c['name']}", c["status"], f"{v}{unit}", ref, reason, c["code"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def phase_summary(checks: list[Check]) -> list[dict]:
    out = []
    for ph in PHASES:
        cs = [c for c in checks if c.phase == ph]
        if not cs:
            continue
        fail = sum(c.status == FAIL for c in cs)
        skip = sum(c.status == SKIP for c in cs)
        status = FAIL if fail else (SKIP if skip == len(cs) else PASS)
        first = next((c for c in cs if c.status == FAIL), None)
        out.append(
            {
                "phase": ph,
                "status": status,
                "n": len(cs),
                "fail": fail,
                "skip": skip,
                "code": first.code if first else "",
                "reason": first.reason if first else "",
            }
        )
    return out


def build_report(ctx: Context, checks: list[Check], started: str, wall: float) -> dict:
    redact = ctx.opts.redact
    fails = sum(c.status == FAIL for c in checks)
    return {
        "schema": SCHEMA,
        "status": FAIL if fails else PASS,
        # an acceptance runs every phase, the study against the profile's own reference
        "acceptance": not (ctx.opts.quick or ctx.opts.only or ctx.opts.reference),
        "session": {
            "bundle_version": __version__,
            "profile": ctx.opts.profile,
            "quick": ctx.opts.quick,
            "only": list(ctx.opts.only),
            "install": "installed" if ctx.installed else "source checkout",
            "root": str(ctx.root),
            "lock_sha256": lock.lock_hash(),
            "manifest_sha256": (ctx.record or {}).get("manifest_sha256"),
            "signer": (ctx.record or {}).get("signer_fingerprint"),
            "host": "<redacted>" if redact else socket.gethostname(),
            "user": "<redacted>" if redact else getpass.getuser(),
            "python": platform.python_version(),
            "started_utc": started,
            "wall_s": round(wall, 1),
            "argv": ["bundle", "verify", *sys.argv[2:]] if redact else sys.argv,
            "facts": ctx.facts,
        },
        "phases": phase_summary(checks),
        "checks": [asdict(c) for c in checks],
    }


def _snapshots(ctx: Context) -> dict[str, str]:
    """nvidia-smi snapshots where the program exists (GPU hosts)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {}
    out = {}
    for name, args in (
        ("nvidia-smi-q.txt", ["-q"]),
        ("nvidia-smi-topo.txt", ["topo", "-m"]),
        ("nvidia-smi.txt", []),
    ):
        r = subprocess.run([smi, *args], capture_output=True, text=True)
        out[f"nvidia-smi/{name}"] = r.stdout + r.stderr
    return out


def _versions(ctx: Context) -> dict[str, str | Path]:
    out: dict[str, str | Path] = {
        "versions/stack.lock.yaml": paths.lock_file(),
        "versions/requirements.lock.txt": paths.containers_dir() / "requirements.lock.txt",
        "versions/python-packages.json": json.dumps(ctx.facts.get("python_packages", {}), indent=1),
        "versions/images.json": json.dumps(ctx.images, indent=1, default=str),
    }
    if ctx.installed:
        out["versions/install.json"] = ctx.root / "install.json"
        out["versions/MANIFEST.json"] = ctx.root / mf.MANIFEST
        for p in sorted((ctx.root / "images").glob("*.versions.json")):
            out[f"versions/image-{p.name}"] = p  # every Debian package and wheel in the image
    return out


def _study_files(ctx: Context) -> dict[str, str | Path]:
    """The study's results, its `bundle check` report and its own report (text only)."""
    out: dict[str, str | Path] = {}
    if "study_results" in ctx.facts:
        out["study/results.json"] = Path(ctx.facts["study_results"])
    if (ctx.work / "study-check.json").is_file():
        out["study/check.json"] = ctx.work / "study-check.json"
    run_dir = ctx.work / "study"
    for p in sorted(run_dir.glob("points/*/*/report.md")) if run_dir.is_dir() else []:
        out[f"study/{p.relative_to(run_dir)}"] = p
    return out


def signing_key(ctx: Context) -> mf.Ed25519PrivateKey:
    """Proofpacks are signed by --key, else the site key (made at install, or on first use)."""
    if ctx.opts.key:
        return mf.load_private_key(ctx.opts.key)
    site = (ctx.root / "keys" if ctx.installed else pack.config_dir() / "keys") / "site.key"
    if not site.exists():
        mf.generate_keys(site.parent, "site")
    return mf.load_private_key(site)


def _redactor(ctx: Context):
    """Redaction of this site's names, paths and addresses (bundle.redact), keeping the
    product's own words (profiles, flavors, shipped folder and file names)."""
    from bundle.redact import Redactor, product_words

    paths = {"<prefix>" if ctx.installed else "<checkout>": ctx.root, "<report>": ctx.out}
    paths["<code>"] = Path(__file__).resolve().parents[2]
    if sys.prefix != sys.base_prefix:
        paths["<venv>"] = Path(sys.prefix)
    shipped = []
    if ctx.installed and (ctx.root / mf.MANIFEST).is_file():
        man = mf.Manifest.from_json((ctx.root / mf.MANIFEST).read_bytes(), ctx.root)
        shipped = [f.path for f in man.files]
    words = product_words(ctx.root, [*PROFILES, *lock.load()["flavors"]], shipped)
    return Redactor.for_this_machine(ctx.opts.redact, paths, words)


def phase_report(ctx: Context, checks: list[Check], started: str, t0: float) -> dict:
    redactor = _redactor(ctx)
    rep = build_report(ctx, checks, started, time.perf_counter() - t0)
    (ctx.out / "report.md").write_text(report_markdown(_redacted(rep, redactor)))
    rep["checks"].append(
        asdict(Check("report", "json+markdown", PASS, f"{ctx.out.name}/report.json, report.md"))
    )
    ctx.say(Check(**rep["checks"][-1]).line())
    rep["phases"] = phase_summary([Check(**c) for c in rep["checks"]])
    text = json.dumps(_redacted(rep, redactor), indent=1, allow_nan=False) + "\n"
    (ctx.out / "report.json").write_text(text)
    members: dict[str, str | bytes | Path] = {
        "report.json": text,
        "report.md": report_markdown(_redacted(rep, redactor)),
    }
    members.update({f"logs/{p.name}": p for p in sorted(ctx.logs.glob("*")) if p.is_file()})
    members.update(_versions(ctx))
    members.update(_study_files(ctx))
    members.update(_snapshots(ctx))
    members["host.json"] = json.dumps(ctx.facts.get("host", {}), indent=1)
    shipped = shipped_members(ctx.root, members, ctx.record)
    pp = write_proofpack(ctx.out, members, signing_key(ctx), redactor, shipped)
    c = Check(
        "report",
        "proofpack",
        PASS,
        f"sha256 {pp['sha256']}, signed by {pp['signer']}",
        value=pp["file"],
    )
    ctx.say(c.line())
    rep["checks"].append(asdict(c))
    rep["phases"] = phase_summary([Check(**x) for x in rep["checks"]])
    rep["proofpack"] = pp
    atomic.write_file(
        ctx.out / "report.json", atomic.strict_json(_redacted(rep, redactor), indent=1)
    )
    return rep


def _redacted(rep: dict, redactor) -> dict:
    """The report as strict JSON data (Paths and the like as strings, NaN/inf as null),
    its values redacted."""
    return redactor.json(atomic.finite_or_null(json.loads(json.dumps(rep, default=str))))
