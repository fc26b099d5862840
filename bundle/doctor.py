"""`bundle doctor`: read the last verify report and say, per failure, what to do next.

ADVICE maps every error code of bundle.verify to the next step; `{root}` and
`{profile}` are filled from the report. A code without advice (a newer report read
by an older doctor) still prints its reason.
"""

from __future__ import annotations

from pathlib import Path

from bundle.core import io, paths
from bundle.core.errors import InputError
from bundle.verify import common as v
from bundle.verify import last_report

ADVICE: dict[str, str] = {
    v.E_RECORD: "The install record does not match this prefix. Re-run "
    "`bundle install BUNDLE --prefix {root}` with the delivered bundle.",
    v.E_SIGNATURE: "The manifest is not signed by the trusted vendor key. Do not use this "
    "installation; ask the vendor for the bundle again and compare the key fingerprint "
    "with the delivery note (`--trust sha256:...`).",
    v.E_HASH: "Installed files were changed after install (named in the reason). Re-run "
    "`bundle install BUNDLE --prefix {root}`; if files change again, find what writes there.",
    v.E_PYENV: "The Python environment differs from the lock. Re-run `bundle install` (it "
    "rebuilds {root}/venv from the bundle's wheels); never `pip install` into it.",
    v.E_CPU: "Too few CPUs for profile {profile}: run on a larger host or pick the profile "
    "that matches this machine (`--profile cpu`).",
    v.E_MEMORY: "Too little memory for profile {profile}: add memory or use a larger host.",
    v.E_DISK: "Too little free disk under {root}: free space (old runs/, reports/) or "
    "install to a larger filesystem.",
    v.E_OS: "Only Linux hosts are supported.",
    v.E_NVML: "NVML is not usable: install the NVIDIA driver (>= the lock's min_driver) and "
    "check `nvidia-smi` works; for a CPU box use `--profile cpu`.",
    v.E_GPU_COUNT: "Fewer GPUs than profile {profile} needs: check `nvidia-smi -L`, that no "
    "GPU is hidden by CUDA_VISIBLE_DEVICES, or MIG partitioning.",
    v.E_GPU_MODEL: "A GPU is not the model the lock's h200 flavor is built for (sm_90); "
    "the image's kernels target that model only.",
    v.E_GPU_MEMORY: "A GPU reports less memory than required: check MIG mode "
    "(`nvidia-smi -q | grep -i mig`) and that no other process holds memory.",
    v.E_DRIVER: "The NVIDIA driver is older than the lock's minimum for this CUDA: update "
    "the driver (containers/stack.lock.yaml: flavors.h200.cuda.min_driver).",
    v.E_NVLINK: "A GPU has no active NVLink: check `nvidia-smi topo -m` and "
    "`nvidia-smi nvlink -s`; the fabric manager service must run on HGX systems.",
    v.E_RUNTIME: "No container runtime answers: start docker (`systemctl start docker`) "
    "or install apptainer, then re-run verify.",
    v.E_MPI: "mpirun (the lock's host.mpirun) is missing or cannot start 2 ranks: "
    "install OpenMPI from the distribution (`make setup` as root) and check "
    "`mpirun -np 2 true`.",
    v.E_IMG_MISSING: "An image is missing or is another build: re-run "
    "`bundle install BUNDLE --prefix {root}` to load it from the bundle (no network).",
    v.E_IMG_LABELS: "An image's labels disagree with the lock (another build or a "
    "different lock): reload the image from the same bundle with `bundle install`.",
    v.E_QE: "pw.x did not reproduce the stored SCF energy/forces: see logs/qe-np1-pw.out "
    "in the proofpack; check that the bundle's pseudopotentials are used and that the "
    "BLAS library is the one of the lock (libopenblas0-serial on cpu).",
    v.E_QE_RANKS: "pw.x gives different results on 1 and 2 MPI ranks: the MPI library or "
    "the BLAS is broken or mismatched; check `mpirun --version` against the lock.",
    v.E_COMPILE: "nequip-compile failed on this machine: see logs/model-compile.log; it "
    "needs a C++ compiler (g++) for AOTInductor and the lock's torch.",
    v.E_MODEL: "The compiled model's forces differ from the stored ones: another torch or "
    "nequip than the lock, or a faulty device (on GPU hosts the check names the GPU: test "
    "it alone, e.g. `nvidia-smi -q -d ECC`).",
    v.E_LAMMPS: "LAMMPS forces (`fix external`, or `pair_style deepmd` for deepmd-lammps-*) "
    "differ from the model's Python forces: the LAMMPS build, its MPI library or the DeePMD "
    "plugin is wrong; re-run `bundle install` and see logs/model-model-check-*.log or "
    "logs/deepmd-deepmd-check.log.",
    v.E_DEEPMD: "The DeePMD model's forces differ from the stored ones, or it did not run: "
    "another DeePMD-kit or TensorFlow than the lock, or its libraries not on the loader path; "
    "see logs/deepmd-deepmd-check.log.",
    v.E_STUDY: "The reproducibility study did not run to a result: see logs/study-run.log "
    "and logs/study-check.log in the proofpack; fix the first error, then re-run "
    "`bundle verify --profile {profile}`.",
    v.E_METRIC: "A study metric is outside the reference bounds: first re-run the study "
    "with another seed (statistical outliers happen); if it fails again, compare the "
    "engine checks and the lock with the reference's (checks/references/).",
    v.E_PHASE: "A verify phase stopped with an error (reason above): fix it, then re-run "
    "`bundle verify`.",
}


def load_report(path: Path | None) -> tuple[Path, dict]:
    path = path or last_report()
    if path is None:
        raise InputError(
            paths.root(), "reports", "no verify report found", "run `bundle verify` first"
        )
    if path.is_dir():
        path = path / "report.json"
    doc = io.read_mapping(path, fix="pass a report.json")
    if doc.get("schema") != v.SCHEMA:
        raise InputError(path, "schema", f"{doc.get('schema')!r} is not {v.SCHEMA!r}")
    return path, doc


def advise(doc: dict, root: Path | None = None) -> list[str]:
    """One paragraph per failed check: what failed, why, and what to do next."""
    profile = doc["session"]["profile"]
    fill = {"root": str(root or paths.root()), "profile": profile}
    out = []
    for c in doc["checks"]:
        if c["status"] != v.FAIL:
            continue
        todo = ADVICE.get(c["code"], "no advice for this code; read the reason.")
        out.append(
            f"FAIL {c['phase']}/{c['name']} [{c['code']}]: {c['reason']}\n"
            f"  -> {todo.format(**fill)}"
        )
    skipped = [c for c in doc["checks"] if c["status"] == v.SKIP and "--quick" in c["reason"]]
    if skipped:
        out.append(
            f"NOTE the study was skipped (--quick): run `bundle verify --profile {profile}` "
            "for the acceptance."
        )
    return out
