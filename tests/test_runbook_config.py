"""Bad input to `bundle run`: one clear line naming file, field and fix; exit 3; nothing
computed or written. The units / type-map guard uses the smoke run's real model manifest."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core import paths

SMOKE = paths.root() / "runbook" / "studies" / "smoke-li2o.yaml"


def smoke_doc() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def run_cli(tmp_path: Path, doc: dict, *extra: str):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(study), "--run-dir", str(run), *extra])
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    return res, lines, study, run


def assert_one_line_error(res, lines, study: Path, run: Path, *needles: str) -> None:
    assert res.exit_code == 3, res.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {study}: "), res.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    # nothing ran: no stage folder was created
    assert not run.exists() or not any(p.name[:2].isdigit() for p in run.iterdir())


def test_the_shipped_smoke_study_is_valid():
    from runbook import loader

    cfg = loader.load("smoke-li2o")
    assert cfg.stages == [
        "structure",
        "dft",
        "dataset",
        "train",
        "deploy",
        "md",
        "analyze",
        "report",
    ]
    assert set(cfg.profiles) == {"cpu", "h200"} and cfg.profiles["h200"].accelerator == "cuda"


def test_unknown_stage_name(tmp_path):
    doc = smoke_doc()
    doc["stages"] = ["structure", "dtf"]
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(
        res, lines, study, run, "stages: unknown stage 'dtf'", "allowed: structure, dft"
    )


def test_unknown_stage_kind_and_stray_block(tmp_path):
    doc = smoke_doc()
    doc["stages"] = ["structure", "relax"]
    doc["relax"] = {"kind": "geometry-opt"}
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(res, lines, study, run, "relax.kind: unknown stage 'geometry-opt'")
    doc = smoke_doc()
    doc["struture"] = doc.pop("structure")
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(res, lines, study, run, "struture: neither a study field nor a stage")


def test_missing_pseudopotential(tmp_path):
    doc = smoke_doc()
    doc["dft"]["pseudopotentials"]["O"] = "O.not-installed.UPF"
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(
        res, lines, study, run, "dft.pseudopotentials.O: O.not-installed.UPF not found in "
    )
    doc = smoke_doc()
    del doc["dft"]["pseudopotentials"]["O"]
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(res, lines, study, run, "dft.pseudopotentials.O: no pseudopotential")


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("md", "n_steps"), "1000", "md.n_steps: should be a valid integer (got '1000')"),
        (("structure", "a_angstrom"), "4.61", "structure.a_angstrom: should be a valid number"),
        (("structure", "frames"), 5, "structure.frames: should be a valid list (got 5)"),
        (
            ("train", "model_dtype"),
            "float16",
            "train.model_dtype: should be 'float32' or 'float64'",
        ),
        (("species",), "Li", "species: should be a valid list (got 'Li')"),
        (("md", "temprature_k"), 600, "md.temprature_k: Extra inputs are not permitted"),
    ],
)
def test_wrong_yaml_types(tmp_path, path, value, needle):
    doc = smoke_doc()
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(res, lines, study, run, needle)


def test_bad_profile_and_bad_override(tmp_path):
    res, lines, study, run = run_cli(tmp_path, smoke_doc(), "--profile", "a100")
    assert_one_line_error(
        res, lines, study, run, "profile: unknown profile 'a100'", "'cpu', 'h200'"
    )
    res, lines, study, run = run_cli(tmp_path, smoke_doc(), "--set", "md.n_steps")
    assert res.exit_code == 3 and "expected dotted.key=value" in lines[-1]


def _md_only(model: Path, **md) -> dict:
    doc = smoke_doc()
    block = {**doc["md"], "model": str(model), "a_angstrom": 4.61, **md}
    return {k: doc[k] for k in ("schema", "name", "species", "profile", "profiles")} | {
        "stages": ["md"],
        "md": block,
    }


@pytest.fixture(scope="module")
def smoke_model(smoke_run):
    _, run = smoke_run
    return run / "05_deploy" / "model.nequip.pt2"


def test_units_mismatch_is_refused_naming_both(tmp_path, smoke_model):
    res, lines, study, run = run_cli(tmp_path, _md_only(smoke_model, units="real"))
    assert_one_line_error(
        res,
        lines,
        study,
        run,
        "md.units: LAMMPS units 'real'",
        "(LAMMPS 'metal')",
        "set md.units: metal",
    )


def test_model_type_map_mismatch_is_refused_naming_both(tmp_path, smoke_model):
    doc = _md_only(smoke_model, type_map={1: "Li", 2: "O", 3: "La"})
    doc["species"] = ["Li", "O", "La"]
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(
        res, lines, study, run, "md.type_map: LAMMPS types 3:La", "model type names: Li, O"
    )


def test_the_md_step_guards_again_at_run_time(tmp_path, smoke_model):
    """A model swapped after rendering: the driver checks the manifest beside the model."""
    manifest = json.loads((smoke_model.parent / "model_manifest.json").read_text())
    manifest["units"]["lammps_units"] = "real"
    (tmp_path / "model_manifest.json").write_text(json.dumps(manifest))
    params = {
        "setup": "none.lmp",
        "run": "none.lmp",
        "potential": "model",
        "units": "metal",
        "type_map": {"1": "Li", "2": "O"},
        "n_steps": 1,
        "model": str(smoke_model),
        "model_manifest": str(tmp_path / "model_manifest.json"),
    }
    (tmp_path / "md.json").write_text(json.dumps(params))
    (tmp_path / "none.lmp").write_text("units metal\n")
    out = subprocess.run(
        [sys.executable, "-m", "runbook.steps.md", "md.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "LAMMPS units 'metal' but the model" in out.stderr and "(LAMMPS 'real')" in out.stderr
    assert not (tmp_path / "md_result.json").exists()


def test_missing_study_lists_the_shipped_ones():
    res = CliRunner().invoke(app, ["run", "no-such-study"])
    assert res.exit_code == 3 and "no such study" in res.output and "smoke-li2o" in res.output


def test_overrides_reach_the_stage_config(tmp_path):
    from runbook import loader, stages

    cfg = loader.load(SMOKE, overrides=["md.temperature_k=700", "md.seed=9"], profile="h200")
    md = stages.build(cfg, "md")
    assert md.cfg.temperature_k == 700 and md.cfg.seed == 9 and cfg.active.gpus == 8
    doc = copy.deepcopy(smoke_doc())
    assert doc["md"]["temperature_k"] == 600  # the file itself is untouched


def test_an_override_holds_under_a_profile_that_sets_the_same_field():
    """li-diffusion's local profile sets md.production_ps; `--set md.production_ps=1` with
    `--profile local` used to be replaced by the profile's 50 without a word."""
    from runbook import loader, stages

    study = paths.root() / "runbook" / "studies" / "li-diffusion.yaml"
    cfg = loader.load(study, overrides=["md.production_ps=1"], profile="local")
    md = stages.build(cfg, "md")
    assert md.cfg.production_ps == 1
    assert md.cfg.equilibrate_ps == 5  # the profile's other fields still apply
    assert loader.load(study, profile="local").blocks["md"]["production_ps"] == 50
    # another profile's entry stays as written: it must stay valid on its own (llzo-gb's
    # cpu-allegro check says `reference: null` + `not_judged`; dropping its null under a
    # --set of check.reference left it with both: the Slurm sweep test caught it)
    gb = paths.root() / "runbook" / "studies" / "llzo-gb.yaml"
    cfg = loader.load(gb, overrides=["check.reference=llzo-gb-700K-published"])
    assert cfg.blocks["check"]["reference"] == "llzo-gb-700K-published"
    sets = ["check.reference=x", "check.not_judged=null"]  # under the active profile: both
    allegro = loader.load(gb, overrides=sets, profile="cpu-allegro")
    assert allegro.blocks["check"]["reference"] == "x"
    assert allegro.blocks["check"].get("not_judged") is None


def test_a_container_launcher_without_an_image(tmp_path):
    doc = smoke_doc()
    doc["profiles"]["cpu"]["launchers"]["dft"] = {"kind": "apptainer", "np": 2}
    res, lines, study, run = run_cli(tmp_path, doc)
    assert_one_line_error(
        res, lines, study, run, "profiles.cpu.launchers.dft: a apptainer launcher needs `image`"
    )
