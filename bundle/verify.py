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
|                  | `fix external` forces = the model's Python forces; per GPU in turn   |
| reproducibility  | the profile's study through `bundle check` vs its reference          |
| report           | report.json (`bundle-verify/1`), report.md, proofpack.zip + SHA-256  |
|                  | + ed25519 signature; host and user names redacted                    |

A failing integrity phase stops the expensive phases (engines, reproducibility:
SKIP, "integrity FAILED"); every other failure lets the rest run, so one report
lists all that is wrong. Error codes are the keys of `bundle.doctor.ADVICE`.
Engine references live in `bundle/references/engines.yaml` (data, not code),
profile requirements in `bundle/references/profiles.yaml`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bundle import manifest as mf
from bundle import pack
from bundle.core import __version__, atomic, lock, paths, safeyaml
from bundle.core.errors import BundleError, CheckFailed, InputError

SCHEMA = "bundle-verify/1"
PHASES = ("integrity", "host", "images", "engines", "reproducibility", "report")
PROFILES = ("cpu", "h200")
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

# Error codes, one per way a check fails (bundle.doctor.ADVICE says what to do for each).
E_RECORD, E_SIGNATURE, E_HASH, E_PYENV = "INT-RECORD", "INT-SIGNATURE", "INT-HASH", "INT-PYENV"
E_CPU, E_MEMORY, E_DISK, E_OS = "HOST-CPU", "HOST-MEMORY", "HOST-DISK", "HOST-OS"
E_NVML, E_GPU_COUNT, E_GPU_MODEL = "HOST-NVML", "HOST-GPU-COUNT", "HOST-GPU-MODEL"
E_GPU_MEMORY, E_DRIVER, E_NVLINK = "HOST-GPU-MEMORY", "HOST-DRIVER", "HOST-NVLINK"
E_RUNTIME, E_MPI = "HOST-RUNTIME", "HOST-MPI"
E_IMG_MISSING, E_IMG_LABELS = "IMG-MISSING", "IMG-LABELS"
E_QE, E_QE_RANKS, E_COMPILE = "ENG-QE", "ENG-QE-RANKS", "ENG-COMPILE"
E_MODEL, E_LAMMPS = "ENG-MODEL-FORCES", "ENG-LAMMPS"
E_STUDY, E_METRIC = "REPRO-RUN", "REPRO-METRIC"
E_PHASE = "PHASE-ERROR"
CODES = tuple(v for k, v in dict(globals()).items() if k.startswith("E_"))

GIB = 1024**3


@dataclass
class Check:
    """One judged (or skipped) item; `lower`/`upper` are absolute bounds on `value`."""

    phase: str
    name: str
    status: str
    reason: str = ""
    code: str = ""
    value: Any = None
    reference: Any = None
    lower: float | None = None
    upper: float | None = None
    unit: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        """The one console line of this check."""
        parts = [f"{self.status:<4} {self.phase}/{self.name}"]
        if self.value is not None and not isinstance(self.value, dict | list):
            v = f"{self.value:.10g}" if isinstance(self.value, float) else str(self.value)
            parts.append(f"= {v}{' ' + self.unit if self.unit else ''}")
        if self.reference is not None and not isinstance(self.reference, dict | list):
            parts.append(f"(ref {self.reference}")
            if self.lower is not None and self.upper is not None:
                parts[-1] += f", [{self.lower:.10g}, {self.upper:.10g}]"
            parts[-1] += ")"
        if self.reason:
            parts.append(f"- {self.reason}")
        if self.code and self.status == FAIL:
            parts.append(f"[{self.code}]")
        return " ".join(parts)


def judge(
    phase: str,
    name: str,
    value: float,
    reference: float,
    tol: float,
    unit: str,
    code: str,
    what: str = "",
) -> Check:
    """PASS when |value - reference| <= tol (absolute); the reason states the deviation."""
    dev = abs(value - reference)
    ok = bool(np.isfinite(value)) and dev <= tol
    reason = f"{what}{'; ' if what else ''}|dev| {dev:.3g} {'<=' if ok else '>'} {tol:.3g} {unit}"
    return Check(
        phase,
        name,
        PASS if ok else FAIL,
        reason,
        "" if ok else code,
        value,
        reference,
        reference - tol,
        reference + tol,
        unit,
    )


def within(phase: str, name: str, dev: float, tol: float, unit: str, code: str, what: str) -> Check:
    """PASS when a non-negative deviation `dev` (e.g. max |F - F_ref|) is <= tol."""
    ok = bool(np.isfinite(dev)) and dev <= tol
    reason = f"{what} = {dev:.3g} {'<=' if ok else '>'} {tol:.3g} {unit}"
    return Check(
        phase, name, PASS if ok else FAIL, reason, "" if ok else code, dev, None, None, tol, unit
    )


@dataclass(frozen=True)
class VerifyOptions:
    profile: str = "cpu"
    quick: bool = False
    out: Path | None = None
    results: Path | None = None  # judge this study results.json instead of running the study
    reference: str | None = None  # judge against this reference instead of the profile's
    redact: bool = True
    key: Path | None = None  # proofpack signing key (default: the site key)
    trust: tuple[str, ...] = ()
    engines_in: str = "auto"  # host | image | auto (cpu: host, h200: image)
    only: tuple[str, ...] = ()  # run only these phases (re-checks after a fix); report says so
    bench: bool = False  # also measure MD throughput for `bundle size`


@dataclass
class Context:
    opts: VerifyOptions
    root: Path
    out: Path
    work: Path
    logs: Path
    say: Callable[[str], None]
    record: dict | None = None
    profile: dict = field(default_factory=dict)
    gpus: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # session facts for the report

    @property
    def installed(self) -> bool:
        return self.record is not None


def references() -> dict:
    path = pack.references_dir() / "engines.yaml"
    try:
        return safeyaml.load(path)
    except FileNotFoundError:
        raise InputError(path, "(file)", "engine references missing", "re-install") from None


def profile_requirements(profile: str) -> dict:
    path = pack.references_dir() / "profiles.yaml"
    doc = safeyaml.load(path)
    if profile not in doc:
        raise InputError(path, profile, "no such profile", f"use one of {sorted(doc)}")
    return doc[profile]


def run_logged(argv: list[str], log: Path, cwd: Path | None = None, env=None, timeout=None):
    """Run a program with stdout+stderr into `log`; returns the CompletedProcess."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write(f"$ {' '.join(map(str, argv))}\n")
        f.flush()
        return subprocess.run(
            argv, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env, timeout=timeout
        )


# =========================================================================== 1. integrity
def phase_integrity(ctx: Context) -> list[Check]:
    ph = "integrity"
    out = []
    if not ctx.installed:
        why = "source checkout: no install record (integrity applies to an installed bundle)"
        out += [Check(ph, n, SKIP, why) for n in ("install-record", "signature", "hashes")]
    else:
        out += _installed_integrity(ctx)
    out.append(_python_env(ctx))
    return out


def _installed_integrity(ctx: Context) -> list[Check]:
    import hashlib

    ph, root, rec = "integrity", ctx.root, ctx.record
    man_path = root / mf.MANIFEST
    if rec.get("schema") != "bundle-install/1" or not man_path.is_file():
        return [
            Check(ph, "install-record", FAIL, "install.json or MANIFEST.json unusable", E_RECORD)
        ]
    sha = hashlib.sha256(man_path.read_bytes()).hexdigest()
    if sha != rec.get("manifest_sha256"):
        why = "MANIFEST.json is not the one the install recorded"
        return [Check(ph, "install-record", FAIL, why, E_RECORD, sha, rec.get("manifest_sha256"))]
    out = [Check(ph, "install-record", PASS, f"bundle {rec['bundle_version']} ({rec['flavor']})")]
    trust = mf.Trust.parse([rec["signer_fingerprint"], *ctx.opts.trust])
    try:
        man, fp = mf.read_signed(root, trust)
    except mf.IntegrityError as e:
        out.append(Check(ph, "signature", FAIL, str(e.problems[0]), E_SIGNATURE))
        return out + [Check(ph, "hashes", SKIP, "signature FAILED")]
    out.append(Check(ph, "signature", PASS, "ed25519, by the signer trusted at install", value=fp))
    # image archives are streamed into the runtime at install: the images phase checks them
    from bundle.install import archives

    files = [f for f in man.files if f.path not in archives(man)]
    installed = dataclasses.replace(man, files=files)
    problems = mf.check_payload(root, installed, stored=False)
    n = len(installed.files)
    if problems:
        out.append(
            Check(ph, "hashes", FAIL, "; ".join(map(str, problems[:5])), E_HASH, len(problems))
        )
    else:
        out.append(Check(ph, "hashes", PASS, f"{n} files match the manifest", value=n))
    return out


def _python_env(ctx: Context) -> Check:
    """The running environment's distributions equal the Python lock (and this bundle)."""
    from importlib import metadata

    have = {pack._norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    flavor_reqs = ctx.root / "wheels" / "requirements.txt"  # an install: its flavor's part
    want = pack.locked_requirements(
        flavor_reqs if ctx.installed and flavor_reqs.is_file() else None
    )
    wrong = sorted(
        f"{n} {have.get(n, 'absent')} (lock {v})" for n, v in want.items() if have.get(n) != v
    )
    ctx.facts["python_packages"] = {n: have.get(n) for n in sorted(want)}
    if wrong:
        return Check("integrity", "python-env", FAIL, "; ".join(wrong[:5]), E_PYENV, len(wrong))
    return Check("integrity", "python-env", PASS, f"{len(want)} packages = lock", value=len(want))


# =========================================================================== 2. host
def _meminfo_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _at_least(name: str, value: float, minimum: float, unit: str, code: str, what="") -> Check:
    ok = value >= minimum
    why = f"{what}{'; ' if what else ''}{'>=' if ok else '<'} {minimum} {unit} required"
    return Check(
        "host",
        name,
        PASS if ok else FAIL,
        why,
        "" if ok else code,
        round(value, 2),
        f">= {minimum}",
        minimum,
        None,
        unit,
    )


def probe_gpus() -> list[dict]:
    """GPUs by NVML: index, model, memory, driver, active NVLinks. Raises BundleError if absent."""
    try:
        import pynvml
    except ImportError:
        raise CheckFailed("nvidia-ml-py (pynvml) is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        raise CheckFailed(f"NVML not available: {e} (no NVIDIA driver?)") from None
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            links = 0
            for link in range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18)):
                try:
                    links += pynvml.nvmlDeviceGetNvLinkState(h, link) == pynvml.NVML_FEATURE_ENABLED
                except pynvml.NVMLError:
                    break
            gpus.append(
                {
                    "index": i,
                    "model": name.decode() if isinstance(name, bytes) else name,
                    "memory_gib": round(pynvml.nvmlDeviceGetMemoryInfo(h).total / GIB, 1),
                    "driver": driver,
                    "nvlinks_active": links,
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def _gpu_checks(ctx: Context) -> list[Check]:
    req = ctx.profile.get("gpus")
    try:
        ctx.gpus = probe_gpus()
    except CheckFailed as e:
        if not req:
            return [Check("host", "gpus", SKIP, f"{e}; profile {ctx.opts.profile} needs no GPU")]
        return [Check("host", "gpus", FAIL, str(e), E_NVML)]
    ctx.facts["gpus"] = ctx.gpus
    if not req:
        return [
            Check(
                "host", "gpus", PASS, f"{len(ctx.gpus)} GPU(s); none required", value=len(ctx.gpus)
            )
        ]
    h200 = lock.load().get("flavors", {}).get("h200", {})
    model = req.get("model") or h200.get("gpu", {}).get("model", "")
    min_driver = str(req.get("min_driver") or h200.get("cuda", {}).get("min_driver", "0"))
    out = [_at_least("gpu-count", len(ctx.gpus), req["min_count"], "GPUs", E_GPU_COUNT)]
    if not ctx.gpus:
        return out
    bad = [g["index"] for g in ctx.gpus if model.lower() not in g["model"].lower()]
    out.append(
        Check(
            "host",
            "gpu-model",
            FAIL if bad else PASS,
            f"GPU(s) {bad} are not {model}" if bad else f"all {ctx.gpus[0]['model']}",
            E_GPU_MODEL if bad else "",
            ctx.gpus[0]["model"],
            model,
        )
    )
    low = min(g["memory_gib"] for g in ctx.gpus)
    out.append(
        _at_least("gpu-memory", low, req["min_memory_gib"], "GiB", E_GPU_MEMORY, "smallest GPU")
    )
    drv = ctx.gpus[0]["driver"]
    ok = _version_tuple(drv) >= _version_tuple(min_driver)
    out.append(
        Check(
            "host",
            "driver",
            PASS if ok else FAIL,
            f"{'>=' if ok else '<'} {min_driver} (lock)",
            "" if ok else E_DRIVER,
            drv,
            f">= {min_driver}",
        )
    )
    if req.get("nvlink") and len(ctx.gpus) > 1:
        none = [g["index"] for g in ctx.gpus if g["nvlinks_active"] == 0]
        links = {g["index"]: g["nvlinks_active"] for g in ctx.gpus}
        out.append(
            Check(
                "host",
                "nvlink",
                FAIL if none else PASS,
                f"GPU(s) {none} have no active NVLink" if none else f"active links {links}",
                E_NVLINK if none else "",
                links,
            )
        )
    return out


def _runtime_check(ctx: Context) -> Check:
    try:
        import docker

        v = docker.from_env(timeout=10).version()
        return Check(
            "host",
            "container-runtime",
            PASS,
            "docker daemon answers",
            value=f"docker {v.get('Version')}",
        )
    except Exception as e:  # the SDK raises several types for 'no daemon'
        docker_err = type(e).__name__
    if ap := shutil.which("apptainer"):
        v = subprocess.run([ap, "--version"], capture_output=True, text=True).stdout.strip()
        return Check("host", "container-runtime", PASS, "apptainer", value=v)
    return Check(
        "host",
        "container-runtime",
        FAIL,
        f"no docker daemon ({docker_err}) and no apptainer",
        E_RUNTIME,
    )


def _mpi_check(ctx: Context) -> Check:
    from bundle.core import engines
    from bundle.core.errors import MissingComponent

    try:
        mpirun = engines.mpirun()
    except MissingComponent as e:
        return Check("host", "mpi", FAIL, str(e), E_MPI)
    v = subprocess.run(
        [mpirun, "--version"], capture_output=True, text=True, env=engines.mpirun_env()
    )
    version = (v.stdout.strip().splitlines() or ["?"])[0]
    r = run_logged(
        [mpirun, "-np", "2", "/bin/true"], ctx.logs / "mpi-np2.log", env=engines.mpirun_env()
    )
    if r.returncode != 0:
        return Check(
            "host", "mpi", FAIL, f"`mpirun -np 2 true` exited {r.returncode}", E_MPI, version
        )
    return Check("host", "mpi", PASS, "2 ranks start", value=version)


def phase_host(ctx: Context) -> list[Check]:
    req = ctx.profile
    cpus = len(os.sched_getaffinity(0))
    osr = {}
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            k, _, v = line.partition("=")
            osr[k] = v.strip('"')
    os_name = f"{osr.get('PRETTY_NAME', platform.system())}, kernel {platform.release()}"
    ctx.facts["host"] = {
        "cpu": _cpu_model(),
        "cpus": cpus,
        "memory_gib": round(_meminfo_gib(), 1),
        "os": os_name,
        "machine": platform.machine(),
    }
    is_linux = platform.system() == "Linux"
    out = [
        _at_least("cpu", cpus, req["min_cpus"], "CPUs", E_CPU, _cpu_model()),
        _at_least("memory", _meminfo_gib(), req["min_memory_gib"], "GiB", E_MEMORY),
        _at_least(
            "disk",
            shutil.disk_usage(ctx.root).free / GIB,
            req["min_disk_free_gib"],
            "GiB",
            E_DISK,
            f"free under the {'prefix' if ctx.installed else 'checkout'}",
        ),
        Check(
            "host",
            "os",
            PASS if is_linux else FAIL,
            "" if is_linux else "Linux required",
            "" if is_linux else E_OS,
            os_name,
        ),
    ]
    out += _gpu_checks(ctx)
    out.append(_runtime_check(ctx))
    out.append(_mpi_check(ctx))
    return out


# =========================================================================== 3. images
def expected_images(ctx: Context) -> list[dict]:
    """The images this installation must have: from the install record, else the flavor's."""
    if ctx.installed:
        return list(ctx.record.get("images", []))
    from bundle import images

    return [{"ref": images.image_tag(ctx.opts.profile), "id": None}]


def phase_images(ctx: Context) -> list[Check]:
    from bundle import images

    wanted = expected_images(ctx)
    if not wanted:
        return [Check("images", "images", SKIP, "this bundle ships no images")]
    hint = (
        f"hint: re-run `bundle install BUNDLE --prefix {ctx.root}` (it loads missing images)"
        if ctx.installed
        else f"hint: `bundle images build --flavor {ctx.opts.profile}`"
    )
    out = []
    for img in wanted:
        ref = img["ref"]
        if img.get("sif"):  # apptainer installs: the SIF file is the image
            sif = ctx.root / img["sif"]
            ok = sif.is_file()
            why = f"{img['sif']} present" if ok else f"{img['sif']} missing; {hint}"
            out.append(Check("images", ref, PASS if ok else FAIL, why, "" if ok else E_IMG_MISSING))
            continue
        try:
            info = pack.image_info(ref, hint)
        except BundleError as e:
            out.append(Check("images", ref, FAIL, str(e), E_IMG_MISSING))
            continue
        ctx.images.append({"ref": ref, **info})
        if img.get("id") and info["id"] != img["id"]:
            why = f"present, but ID {info['id'][:19]} != {img['id'][:19]} installed; {hint}"
            out.append(Check("images", ref, FAIL, why, E_IMG_MISSING, info["id"], img["id"]))
            continue
        bad = [c for c in images.check_labels(info["labels"]) if not c.ok]
        if bad:
            why = "; ".join(
                f"label {c.label} is {c.found!r}, the lock says {c.expected!r}" for c in bad
            )
            out.append(Check("images", ref, FAIL, why, E_IMG_LABELS))
        else:
            out.append(Check("images", ref, PASS, "present, labels = lock", value=info["id"][:19]))
    return out


# =========================================================================== 4. engines
def _launcher(ctx: Context, np_: int, gpus: int = 0):
    from runbook import launchers

    mode = ctx.opts.engines_in
    if mode == "auto":
        mode = "host" if ctx.opts.profile == "cpu" else "image"
    if mode == "host":
        return launchers.Mpi(np=np_, threads=1)
    ref = (ctx.images or expected_images(ctx) or [{"ref": ""}])[0]["ref"]
    runtime = (
        "apptainer" if ctx.installed and ctx.record.get("runtime") == "apptainer" else "docker"
    )
    return launchers.Container(runtime, ref, binds=(str(ctx.work),), np=np_, gpus=gpus)


def _run(ctx: Context, argv: tuple[str, ...], cwd: Path, log: str, np_: int = 1, mpi=False):
    """One engine command through the launcher; its log is kept for the proofpack."""
    from runbook import launchers

    cmd = launchers.Command(argv, log, mpi=mpi)
    rc = launchers.run(_launcher(ctx, np_, gpus=len(ctx.gpus) if ctx.gpus else 0), cmd, cwd)
    shutil.copyfile(cwd / log, ctx.logs / f"{cwd.name}-{log}")
    return rc


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _find_pseudo(name: str) -> Path:
    for d in pack.pseudo_dirs():
        if (d / name).is_file():
            return d / name
    raise InputError(name, "(pseudopotential)", "not found", f"look in {pack.pseudo_dirs()}")


def engine_qe(ctx: Context, ref: dict) -> list[Check]:
    from runbook.qe import RY_PER_BOHR_TO_EV_PER_A, parse_pw_output

    ph, res = "engines", {}
    src = pack.references_dir() / ref["input"]
    for np_ in ref["ranks"]:
        d = _fresh(ctx.work / f"qe-np{np_}")
        shutil.copyfile(src, d / src.name)
        for name in ref["pseudopotentials"]:
            (d / "pseudo").mkdir(exist_ok=True)
            shutil.copyfile(_find_pseudo(name), d / "pseudo" / name)
        t0 = time.perf_counter()
        rc = _run(ctx, ("pw.x", "-in", src.name), d, "pw.out", np_=np_, mpi=True)
        try:
            if rc != 0:
                raise BundleError(f"pw.x exited {rc}")
            r = parse_pw_output((d / "pw.out").read_text(errors="replace"), ref["nat"], "pw.out")
        except BundleError as e:
            return [Check(ph, f"qe-np{np_}", FAIL, f"{e}; log {d / 'pw.out'}", E_QE)]
        res[np_] = (r, time.perf_counter() - t0)
    ctx.facts["qe_version"] = res[ref["ranks"][0]][0].version
    base, secs = res[ref["ranks"][0]]
    tol = ref["energy_ry"]["tolerance"][ctx.opts.profile]
    out = [
        judge(
            ph,
            "qe-energy",
            base.energy_ry,
            ref["energy_ry"]["value"],
            tol,
            "Ry",
            E_QE,
            f"pw.x {base.version}, {ref['nat']} atoms, {secs:.1f} s",
        )
    ]
    fref = np.asarray(ref["forces_ry_bohr"]["value"])
    f = base.forces_ev_a / RY_PER_BOHR_TO_EV_PER_A
    dev = float(np.abs(f - fref).max())
    ftol = ref["forces_ry_bohr"]["tolerance"][ctx.opts.profile]
    out.append(within(ph, "qe-forces", dev, ftol, "Ry/Bohr", E_QE, "max |F - F_ref|"))
    rt = ref["rank_tolerance"]
    for np_ in ref["ranks"][1:]:
        other, n0 = res[np_][0], ref["ranks"][0]
        de = abs(other.energy_ry - base.energy_ry)
        df = float(np.abs(other.forces_ev_a - base.forces_ev_a).max() / RY_PER_BOHR_TO_EV_PER_A)
        what = f"{n0} vs {np_} ranks"
        out.append(
            within(
                ph,
                f"qe-ranks-{n0}v{np_}-energy",
                de,
                rt["energy_ry"],
                "Ry",
                E_QE_RANKS,
                f"{what}: |dE|",
            )
        )
        out.append(
            within(
                ph,
                f"qe-ranks-{n0}v{np_}-forces",
                df,
                rt["forces_ry_bohr"],
                "Ry/Bohr",
                E_QE_RANKS,
                f"{what}: max |dF|",
            )
        )
    return out


def engine_model(ctx: Context, ref: dict) -> list[Check]:
    """Compile the packaged model HERE (AOTInductor artifacts are machine specific), then
    per device (each GPU in turn, else the CPU): its forces vs the stored ones, and the
    LAMMPS `fix external` forces / energy / pressure vs the model's Python values."""
    ph = "engines"
    d = _fresh(ctx.work / "model")
    refs = pack.references_dir()
    model, structure = refs / ref["model"], refs / ref["structure"]
    shutil.copyfile(model, d / model.name)
    shutil.copyfile(structure, d / structure.name)
    dev = "cuda" if ctx.gpus else "cpu"
    compile_cmd = ("nequip-compile", model.name, "model.nequip.pt2", "--mode", "aotinductor")
    t0 = time.perf_counter()
    rc = _run(ctx, (*compile_cmd, "--device", dev, "--target", "ase"), d, "compile.log")
    secs = time.perf_counter() - t0
    if rc != 0 or not (d / "model.nequip.pt2").is_file():
        why = f"nequip-compile exited {rc}; log {d / 'compile.log'}"
        return [Check(ph, "model-compile", FAIL, why, E_COMPILE)]
    out = [
        Check(
            ph,
            "model-compile",
            PASS,
            f"aotinductor, {dev}, {secs:.0f} s",
            value=round(secs, 1),
            unit="s",
        )
    ]
    fref = _read_forces(structure)
    tol, lt = ref["tolerance_ev_a"][ctx.opts.profile], ref["lammps_tolerance"]
    for device in [f"cuda:{g['index']}" for g in ctx.gpus] or ["cpu"]:
        tag = device.replace(":", "")
        res = d / f"forces-{tag}.json"
        argv = (
            "python",
            "-m",
            "bundle.verify",
            "model-check",
            "--compiled",
            "model.nequip.pt2",
            "--structure",
            structure.name,
            "--device",
            device,
            "--out",
            res.name,
        )
        if ctx.opts.bench:
            argv += ("--bench", str(ref.get("bench_atoms", 3000)))
        rc = _run(ctx, argv, d, f"model-check-{tag}.log")
        if rc != 0 or not res.is_file():
            why = f"model evaluation exited {rc}; log {d / f'model-check-{tag}.log'}"
            out.append(Check(ph, f"model-forces[{device}]", FAIL, why, E_MODEL))
            continue
        r = json.loads(res.read_text())
        f, fl = np.asarray(r["forces_ev_a"]), np.asarray(r["lammps_forces_ev_a"])
        n = len(f)
        out.append(
            within(
                ph,
                f"model-forces[{device}]",
                float(np.abs(f - fref).max()),
                tol,
                "eV/A",
                E_MODEL,
                f"max |F - F_ref| over {n} atoms",
            )
        )
        out.append(
            within(
                ph,
                f"lammps-forces[{device}]",
                float(np.abs(fl - f).max()),
                lt["forces_ev_a"],
                "eV/A",
                E_LAMMPS,
                "max |F_lammps - F_python|",
            )
        )
        out.append(
            within(
                ph,
                f"lammps-energy[{device}]",
                abs(r["lammps_energy_ev"] - r["energy_ev"]),
                lt["energy_ev"],
                "eV",
                E_LAMMPS,
                "|E_lammps - E_python|",
            )
        )
        dp = abs(r["lammps_press_bar"] - r["press_bar"]) / max(abs(r["press_bar"]), 1.0)
        out.append(
            within(
                ph,
                f"lammps-virial[{device}]",
                dp,
                lt["pressure_rel"],
                "",
                E_LAMMPS,
                f"|P_lammps - P_python|/|P| (P = {r['press_bar']:.1f} bar)",
            )
        )
        if "bench" in r:
            out.append(_record_bench(ctx, ref, device, r["bench"]))
    return out


def _record_bench(ctx: Context, ref: dict, device: str, b: dict) -> Check:
    """One throughput point into the site table `bundle size` reads (runbook.sizing)."""
    from runbook import sizing

    name = "cpu" if device == "cpu" else ctx.gpus[int(device.split(":")[1])]["model"]
    point = sizing.Point(
        gpus=1, atoms=int(b["atoms"]), atom_steps_per_s=float(b["atom_steps_per_s"])
    )
    source = f"bundle verify --bench on {device}, {mf.now_utc()[:10]}"
    path = sizing.record_point(name, ref["label"], float(ref["r_max_A"]), point, source)
    why = f"{b['atoms']} atoms x {b['steps']} NVE steps in {b['seconds']:.1f} s -> {path.name}"
    return Check(
        "engines",
        f"bench[{device}]",
        PASS,
        why,
        value=round(point.atom_steps_per_s, 1),
        unit="atom-steps/s",
    )


def _read_forces(structure: Path) -> np.ndarray:
    from ase.io import read

    return np.asarray(read(structure).get_forces())


def phase_engines(ctx: Context) -> list[Check]:
    refs = references()
    out = engine_qe(ctx, refs["qe_scf"])
    if "model_forces" in refs:
        out += engine_model(ctx, refs["model_forces"])
    else:
        out.append(Check("engines", "model-forces", SKIP, "no stored model reference"))
    return out


# =========================================================================== model-check worker
EV_A3_TO_BAR = 1.602176634e6  # 1 eV/A^3 in bar (LAMMPS metal pressure unit)


def lammps_run(atoms, calc, md_steps: int = 0) -> dict:
    """The runbook's coupling (runbook.mdcoupling: `fix external pf/callback`, 1 rank) on
    `atoms`: forces, energy and pressure at step 0, then `md_steps` of NVE, timed."""
    from ase.data import atomic_masses, atomic_numbers

    from bundle.core import engines
    from runbook.mdcoupling import FIX_ID, ModelCoupling

    cell = np.asarray(atoms.cell)
    if np.abs(cell - np.diag(np.diag(cell))).max() > 1e-9:
        raise InputError("structure", "cell", "not orthorhombic", "use an orthorhombic cell")
    atoms = atoms.copy()
    atoms.wrap()
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    types = [species.index(s) + 1 for s in atoms.get_chemical_symbols()]
    n = len(atoms)
    lmp = engines.load_lammps().lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
    lx, ly, lz = (float(x) for x in np.diag(cell))
    lmp.commands_string(
        f"units metal\natom_style atomic\natom_modify map array\nboundary p p p\n"
        f"region box block 0 {lx!r} 0 {ly!r} 0 {lz!r}\ncreate_box {len(species)} box\n"
    )
    for i, s in enumerate(species):
        lmp.command(f"mass {i + 1} {atomic_masses[atomic_numbers[s]]}")
    lmp.create_atoms(n, list(range(1, n + 1)), types, atoms.positions.ravel().tolist())
    lmp.commands_string(
        f"pair_style zero 1.0\npair_coeff * *\nfix {FIX_ID} all external pf/callback 1 1\n"
        f"fix_modify {FIX_ID} energy yes virial yes\nthermo_style custom step pe press\n"
    )
    coupling = ModelCoupling(lmp, calc, {i + 1: s for i, s in enumerate(species)}).attach()
    lmp.command("run 0")
    if coupling.error is not None:
        raise RuntimeError(f"the model callback failed: {coupling.error!r}")
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    forces = np.empty((n, 3))
    forces[ids - 1] = lmp.numpy.extract_atom("f")[:n]
    out = {
        "forces": forces,
        "energy": float(lmp.get_thermo("pe")),
        "press_bar": float(lmp.get_thermo("press")),
    }
    if md_steps:
        lmp.commands_string("velocity all create 700.0 4928459 dist gaussian\nfix md all nve\n")
        t0 = time.perf_counter()
        lmp.command(f"run {md_steps}")
        out["md_seconds"] = time.perf_counter() - t0
    lmp.close()
    return out


def model_check(compiled: Path, structure: Path, device: str, bench: int = 0) -> dict:
    """Energy, forces and stress of the compiled model on `structure`, in Python and
    through LAMMPS; with `bench` > 0, also NVE steps/s on the structure replicated to
    about `bench` atoms (the throughput `bundle size` needs)."""
    from ase.io import read

    from runbook.mdcoupling import load_calculator

    atoms = read(structure)
    atoms.calc = None
    calc = load_calculator(str(compiled), device=device)
    probe = atoms.copy()
    probe.calc = calc
    energy, forces = float(probe.get_potential_energy()), probe.get_forces()
    press_bar = -float(np.trace(probe.get_stress(voigt=False))) / 3 * EV_A3_TO_BAR
    lmp = lammps_run(atoms, calc)
    doc = {
        "device": device,
        "n_atoms": len(atoms),
        "energy_ev": energy,
        "forces_ev_a": forces.tolist(),
        "press_bar": press_bar,
        "lammps_energy_ev": lmp["energy"],
        "lammps_forces_ev_a": lmp["forces"].tolist(),
        "lammps_press_bar": lmp["press_bar"],
    }
    if bench:
        k = max(1, round((bench / len(atoms)) ** (1 / 3)))
        big = atoms.repeat((k, k, k))
        steps = 20
        run = lammps_run(big, calc, md_steps=steps)
        doc["bench"] = {
            "atoms": len(big),
            "steps": steps,
            "seconds": run["md_seconds"],
            "atom_steps_per_s": len(big) * steps / run["md_seconds"],
        }
    return doc


def _worker(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bundle.verify model-check")
    ap.add_argument("--compiled", type=Path, required=True)
    ap.add_argument("--structure", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bench", type=int, default=0, help="also time NVE on ~N atoms")
    a = ap.parse_args(argv)
    doc = model_check(a.compiled, a.structure, a.device, a.bench)
    a.out.write_text(json.dumps(doc) + "\n")
    print(f"energy {doc['energy_ev']:.8f} eV, LAMMPS {doc['lammps_energy_ev']:.8f} eV")
    return 0


# =========================================================================== 5. reproducibility
def run_study(ctx: Context, spec: dict) -> Path:
    """One replica of the profile's study (seed `spec["seed"]`), frozen by the runbook's
    sweep planner (sweep block removed, the seed set in every field the sweep sets), run
    by `bundle run FILE` in the work folder; returns its analysis results.json."""
    from bundle.core import engines
    from runbook import sweep

    plan = sweep.plan(spec["name"], ctx.work / "study", [f"sweep.seeds=[{spec['seed']}]"],
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
    from bundle.core import engines

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
    from checks.reference import load_reference

    doc = safeyaml.load(load_reference(reference).file)
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


# =========================================================================== 6. report
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
    import getpass
    import socket

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
    paths["<code>"] = Path(__file__).resolve().parents[1]
    if sys.prefix != sys.base_prefix:
        paths["<venv>"] = Path(sys.prefix)
    shipped = []
    if ctx.installed and (ctx.root / mf.MANIFEST).is_file():
        man = mf.Manifest.from_json((ctx.root / mf.MANIFEST).read_bytes(), ctx.root)
        shipped = [f.path for f in man.files]
    words = product_words(ctx.root, [*PROFILES, *lock.load()["flavors"]], shipped)
    return Redactor.for_this_machine(ctx.opts.redact, paths, words)


def phase_report(ctx: Context, checks: list[Check], started: str, t0: float) -> dict:
    from bundle.proofpack import shipped_members, write_proofpack

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


# =========================================================================== orchestration
def reports_dir(root: Path, installed: bool) -> Path:
    return root / "reports" if installed else root / "runs" / "verify"


def last_report(root: Path | None = None) -> Path | None:
    """The report.json of the most recent verify under this root (None if there is none)."""
    from bundle.install import read_record

    root = root or paths.root()
    base = reports_dir(root, read_record(root) is not None)
    last = base / "LAST"
    if not last.is_file():
        return None
    path = base / last.read_text().strip() / "report.json"
    return path if path.is_file() else None


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
    from bundle.install import read_record

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
        _fresh(out / "work"),
        _fresh(out / "logs"),
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
        if opts.only and phase not in opts.only:
            results = [Check(phase, phase, SKIP, f"not selected (--only {','.join(opts.only)})")]
        elif phase in ("engines", "reproducibility") and any(
            c.phase == "integrity" and c.status == FAIL for c in checks
        ):
            results = [Check(phase, phase, SKIP, "not run: integrity FAILED")]
        else:
            ts = time.perf_counter()
            try:
                results = fn(ctx)
            except BundleError as e:
                results = [Check(phase, phase, FAIL, str(e), E_PHASE)]
            for c in results:
                c.seconds = c.seconds or round(time.perf_counter() - ts, 2)
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["model-check"]:
        raise SystemExit(_worker(sys.argv[2:]))
    raise SystemExit("usage: python -m bundle.verify model-check ...")
