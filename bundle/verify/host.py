"""Phase 2, host: CPU, memory, disk, OS; GPUs by NVML (count, model, memory, driver,
NVLink) against bundle/references/profiles.yaml and the lock; the container runtime; MPI."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from bundle.core import engines, lock
from bundle.core.errors import CheckFailed, MissingComponent
from bundle.verify.common import (
    E_CPU,
    E_DISK,
    E_DRIVER,
    E_GPU_COUNT,
    E_GPU_MEMORY,
    E_GPU_MODEL,
    E_MEMORY,
    E_MPI,
    E_NVLINK,
    E_NVML,
    E_OS,
    E_RUNTIME,
    FAIL,
    GIB,
    PASS,
    SKIP,
    Check,
    Context,
    at_least,
    run_logged,
)


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
    out = [at_least("gpu-count", len(ctx.gpus), req["min_count"], "GPUs", E_GPU_COUNT)]
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
        at_least("gpu-memory", low, req["min_memory_gib"], "GiB", E_GPU_MEMORY, "smallest GPU")
    )
    out.append(_driver_check(ctx.gpus[0]["driver"], min_driver))
    if req.get("nvlink") and len(ctx.gpus) > 1:
        out.append(_nvlink_check(ctx.gpus))
    return out


def _driver_check(drv: str, min_driver: str) -> Check:
    ok = _version_tuple(drv) >= _version_tuple(min_driver)
    return Check(
        "host",
        "driver",
        PASS if ok else FAIL,
        f"{'>=' if ok else '<'} {min_driver} (lock)",
        "" if ok else E_DRIVER,
        drv,
        f">= {min_driver}",
    )


def _nvlink_check(gpus: list[dict]) -> Check:
    none = [g["index"] for g in gpus if g["nvlinks_active"] == 0]
    links = {g["index"]: g["nvlinks_active"] for g in gpus}
    return Check(
        "host",
        "nvlink",
        FAIL if none else PASS,
        f"GPU(s) {none} have no active NVLink" if none else f"active links {links}",
        E_NVLINK if none else "",
        links,
    )


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
        at_least("cpu", cpus, req["min_cpus"], "CPUs", E_CPU, _cpu_model()),
        at_least("memory", _meminfo_gib(), req["min_memory_gib"], "GiB", E_MEMORY),
        at_least(
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
