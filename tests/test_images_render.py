"""Recipe renderings: exact golden files, and the h200 build steps checked line by line
against pair_nequip_allegro's README and LAMMPS's/QE's documented CMake builds.

Regenerate the golden files after a reviewed change:
    UPDATE_GOLDEN=1 pytest tests/test_images_render.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundle import images
from bundle.cli import app
from bundle.core import lock, paths
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_MISSING
from bundle.images import recipe
from tests.conftest import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "containers"
EXT = {"docker": "Dockerfile", "apptainer": "def"}
runner = CliRunner()


@pytest.mark.parametrize("flavor", lock.FLAVORS)
@pytest.mark.parametrize("fmt", images.FORMATS)
def test_rendering_matches_golden_file(flavor, fmt):
    assert_golden(GOLDEN / f"{flavor}.{EXT[fmt]}", images.render_flavor(flavor, fmt))


def test_cli_render_prints_the_same_text_and_writes_files(tmp_path):
    r = runner.invoke(app, ["images", "render", "--flavor", "h200", "--format", "apptainer"])
    assert r.exit_code == 0, r.output
    assert r.output == images.render_flavor("h200", "apptainer")
    out = tmp_path / "Dockerfile"
    r = runner.invoke(app, ["images", "render", "--flavor", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == images.render_flavor("cpu", "docker")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--flavor", "gpu"], "unknown flavor 'gpu'"),
        (["--flavor", "cpu", "--format", "singularity"], "unknown format 'singularity'"),
    ],
)
def test_cli_render_refuses_unknown_flavor_or_format(args, needle):
    r = runner.invoke(app, ["images", "render", *args])
    assert r.exit_code == EXIT_BAD_INPUT
    assert needle in r.output


def test_recipe_templates_hold_no_version_literal():
    """Versions live in the lock only: no x.y.z / release tag / commit in any template."""
    version = re.compile(r"\b\d+\.\d+\.\d+\b|\b[0-9a-f]{40}\b|stable_\d|patch_\d|\bcu1\d\d\b")
    for tpl in images.recipes_dir().glob("*.j2"):
        for n, line in enumerate(tpl.read_text().splitlines(), 1):
            assert not version.search(line), f"{tpl.name}:{n} holds a version literal: {line}"


def _lines(text: str) -> list[str]:
    return text.splitlines()


@pytest.fixture(scope="module")
def h200():
    stack = lock.model()
    return stack.flavors.h200, images.render_flavor("h200", "docker")


def test_h200_every_pinned_version_reaches_the_rendering(h200):
    f, text = h200
    pins = [
        f.cuda.build_image,
        f.cuda.runtime_image,
        f.nvhpc.image,
        f.ucx.ref,
        f.openmpi.url,
        f.openmpi.sha256,
        f"torch=={f.pytorch.version}+{f.pytorch.cuda_variant}",
        f.pytorch.index_url,
        f.lammps.ref,
        f.pair_nequip_allegro.ref,
        f.qe.ref,
        f"-DKokkos_ARCH_{f.gpu.kokkos_arch}=ON",
        f"-DNVFORTRAN_CUDA_CC={f.gpu.compute_capability}",
        f"python{f.python}",
    ]
    for pin in pins:
        assert pin in text, f"{pin} is pinned in the lock but not used by the h200 recipe"


def test_h200_follows_pair_nequip_allegro_readme(h200):
    """Each documented step of pair_nequip_allegro's README, in order."""
    _, text = h200
    stage = text[text.index("AS lammps") : text.index("AS runtime")]
    steps = [
        "checkout --detach",  # the pinned revision, not the branch head
        "./patch_lammps.sh /tmp/lammps",  # run from the pair_nequip_allegro directory
        "cmake -S /tmp/lammps/cmake",
        "-DCMAKE_PREFIX_PATH=\"$(python -c 'import torch; print(torch.utils.cmake_prefix_path)')\"",
        "-DPKG_KOKKOS=ON",
        "-DKokkos_ENABLE_CUDA=ON",
        "-DNEQUIP_AOT_COMPILE=ON",
        "-DMKL_INCLUDE_DIR=/tmp",
        "cmake --build",
    ]
    at = [stage.find(s) for s in steps]
    assert all(i >= 0 for i in at), dict(zip(steps, at, strict=True))
    assert at == sorted(at), "the README's order: patch, configure, build"
    assert "cd /tmp/pair_nequip_allegro" in stage
    # libtorch from the pinned PyTorch, with the cxx11 ABI the Kokkos build needs
    assert "torch._C._GLIBCXX_USE_CXX11_ABI" in stage
    # the README's check that AOT compilation is on, and that the Kokkos style exists
    assert "NEQUIP_AOT_COMPILE:BOOL=ON" in stage and "allegro/kk" in stage
    # OpenMP and Kokkos are mutually exclusive for pair_allegro
    assert "-DBUILD_OMP=OFF" in stage
    # LAMMPS's CMake docs: Kokkos CUDA builds compile with Kokkos's nvcc_wrapper
    assert "-DCMAKE_CXX_COMPILER=/tmp/lammps/lib/kokkos/bin/nvcc_wrapper" in stage


def test_h200_qe_gpu_build_uses_nvhpc_with_cuda_fortran_for_sm90(h200):
    f, text = h200
    stage = text[text.index("AS qe") : text.index("AS lammps")]
    assert f"FROM {f.nvhpc.image} AS qe" in text
    for flag in (
        "-DQE_ENABLE_CUDA=ON",
        "-DQE_ENABLE_OPENACC=ON",
        "-DQE_ENABLE_MPI_GPU_AWARE=ON",
        "-DNVFORTRAN_CUDA_CC=90",
        f"-DNVFORTRAN_CUDA_VERSION={f.nvhpc.cuda}",
        "-DCMAKE_Fortran_COMPILER=mpif90",
    ):
        assert flag in stage
    assert 'test "$(mpif90 --showme:command)" = nvfortran' in stage


def test_h200_is_multistage_with_a_runtime_without_compilers(h200):
    f, text = h200
    froms = [ln.split()[1] for ln in _lines(text) if ln.startswith("FROM ")]
    assert froms[-1] == f.cuda.runtime_image and "devel" not in froms[-1]
    runtime = text[text.index("AS runtime") :]
    for tool in ("cmake", "g++", "gfortran", "nvfortran ", "-dev "):
        assert f"install -y --no-install-recommends {tool}" not in runtime
        assert f" {tool} " not in runtime.split("apt-get install", 1)[1].split("\n", 1)[0]
    # one MPI rank per GPU, CUDA-aware OpenMPI over UCX
    assert "COPY files/mlmd-gpu-bind /usr/local/bin/mlmd-gpu-bind" in runtime
    assert 'OMPI_MCA_pml="ucx"' in runtime
    bind = (images.recipes_dir() / "files" / "mlmd-gpu-bind").read_text()
    assert "CUDA_VISIBLE_DEVICES" in bind and "OMPI_COMM_WORLD_LOCAL_RANK" in bind


def test_cpu_dockerfile_metadata_is_cheap_and_relabelling_keeps_the_cache():
    """On vfs the classic builder copies the whole rootfs for every metadata step: ENV,
    WORKDIR, CMD and static LABELs come right after FROM; per-build labels are
    `--label`s (one step at the end), never ARGs before the RUN steps."""
    text = images.render_flavor("cpu", "docker")
    runtime = text[text.index("AS runtime") :]
    first_run = runtime.index("\nRUN ")
    for meta in ("\nENV ", "\nWORKDIR ", "\nCMD ", "\nLABEL "):
        assert -1 < runtime.index(meta) < first_run, meta
    assert "\nARG " not in text
    assert "--label org.mlmd-bundle.lock-sha256=<LOCK_SHA256>" in text


def test_apptainer_rendering_bootstraps_debootstrap_and_passes_build_args():
    text = images.render_flavor("cpu", "apptainer")
    stack = lock.model()
    assert text.count("Bootstrap: debootstrap") == 2
    assert f"OSVersion: {stack.flavors.cpu.os.suite}" in text
    assert "%files from python\n    /opt/venv /opt/venv" in text
    assert "org.mlmd-bundle.lock-sha256 {{ LOCK_SHA256 }}" in text
    h = images.render_flavor("h200", "apptainer")
    assert h.count("Bootstrap: docker") == 4 and "Stage: runtime" in h


def test_run_steps_keep_continuations_and_join_commands():
    script = "echo a\ncmake -S x \\\n  -DFOO=ON\necho b\n"
    assert recipe._commands(script) == [["echo a"], ["cmake -S x \\", "  -DFOO=ON"], ["echo b"]]
    assert recipe._docker_run(script) == (
        "RUN set -eu; \\\n    echo a; \\\n    cmake -S x \\\n      -DFOO=ON; \\\n    echo b"
    )


def test_h200_dry_run_prints_the_full_plan():
    r = runner.invoke(app, ["images", "build", "--flavor", "h200", "--dry-run"])
    assert r.exit_code == 0, r.output
    for needle in (
        "build plan:",
        "1. base images",
        "2. build context",
        "3. docker build",
        "labels:",
        "versions manifest",
        "# ---- Dockerfile ----",
        "stage lammps",
        "./patch_lammps.sh",
    ):
        assert needle in r.output
    assert r.output.rstrip().endswith(images.render_flavor("h200", "docker").rstrip())
    assert lock.lock_hash() in r.output


def test_h200_cannot_be_built_here_and_says_how_to_see_its_plan():
    r = runner.invoke(app, ["images", "build", "--flavor", "h200"])
    assert r.exit_code == EXIT_MISSING
    assert "--dry-run" in r.output


def test_render_reads_the_lock_of_the_bundle_root(tmp_path, monkeypatch):
    """An installed bundle (MLMD_BUNDLE_ROOT) renders from its own lock and recipes."""
    root = tmp_path / "root"
    (root / "containers").mkdir(parents=True)
    text = paths.lock_file().read_text().replace("openmpi-5.0.9", "openmpi-5.0.10")
    (root / "containers" / "stack.lock.yaml").write_text(text)
    import shutil

    shutil.copytree(images.recipes_dir(), root / "containers" / "recipes")
    monkeypatch.setenv("MLMD_BUNDLE_ROOT", str(root))
    assert "openmpi-5.0.10.tar.bz2" in images.render_flavor("h200")


def test_a_build_appends_its_labels_as_one_last_label_step():
    recipe = images.describe("cpu")
    values = {"LOCK_SHA256": "f" * 64, "SOURCE_REVISION": "a" * 40}
    built = images.render(recipe, "docker", build_values=values)
    plain = images.render(recipe, "docker")
    head = plain[: plain.index("# Labels of each build")]
    assert built.startswith(head)  # every cached layer stays the same
    last = built.rstrip().split("\n# re-labels the image without invalidating a cached layer.\n")[1]
    assert last == (
        f'LABEL org.opencontainers.image.revision="{"a" * 40}" \\\n'
        f'      org.mlmd-bundle.lock-sha256="{"f" * 64}"'
    )


def test_the_build_stream_is_read_by_whole_lines_across_chunks():
    """The engine cuts its text where it likes: under load a chunk ended inside the
    versions manifest (the CI rehearsal of 2026-11-30: `Invalid control character`).
    Every cut of the same stream must give the same log, steps and manifest."""
    import json

    from bundle.images.build import parse_build_stream
    from bundle.images.labels import MANIFEST_BEGIN, MANIFEST_END

    manifest = {"schema": "image-versions/1", "python": {"ase": "3.29.0", "yarl": "1.25.1"}}
    text = "\n".join([
        "Step 1/2 : FROM base AS python", " ---> 5ea646024f46",
        "Step 2/2 : RUN make", " ---> Running in 7ff69e1d4a31", MANIFEST_BEGIN,
        *json.dumps(manifest, indent=2).splitlines(), MANIFEST_END,
        " ---> 1f813d72fed9", "Successfully built 1f813d72fed9", "",
    ])  # fmt: skip
    whole = parse_build_stream([{"stream": text}])
    assert whole.manifest == manifest and whole.steps == 2 and whole.froms == 1
    assert whole.image_id == "1f813d72fed9" and whole.step_images == ["1f813d72fed9"]
    for size in (1, 7, 13, 64):  # every cut, inside strings and inside line ends
        cut = [{"stream": text[i : i + size]} for i in range(0, len(text), size)]
        again = parse_build_stream(cut)
        assert (again.lines, again.manifest, again.steps) == (whole.lines, manifest, 2), size
    failed = parse_build_stream([{"stream": "Step 1/1 : RUN false\n"}, {"error": "exit 1"}])
    assert failed.error == "exit 1" and failed.lines[-1] == "ERROR: exit 1"
