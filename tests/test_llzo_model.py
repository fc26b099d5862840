"""llzo-gb on the ML model named by reference (profiles.<p>.model): the reference's
one-line refusals, the species and units guards in preflight (`--dry-run` included), the
cpu `fix external` inputs of the MD and relax stages, and the h200 compile command (a
golden file: UPDATE_GOLDEN=1 rewrites it). Fast: no model runs here; the real model path
is exercised by hand (see the branch's report) and by tests/test_llzo_study.py's engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import InputError
from runbook import engine, files, loader, modelcard
from runbook.config import stage_config
from runbook.llzo import lmpdata, modelstage, relaxstage, stages
from runbook.stage import Context
from tests.conftest import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "templates"
LLZO = ["Li", "La", "Zr", "O", "Al"]


def card(type_names: list[str], lammps_units: str = "metal") -> modelcard.ModelManifest:
    units = dict(modelcard.DATA_UNITS, lammps_units=lammps_units)
    if lammps_units != "metal":
        units.update(energy="kcal/mol")
    return modelcard.ModelManifest(
        units=modelcard.Units(**units), type_names=type_names, r_max_angstrom=5.0,
        data={"dataset_output_hash": "d" * 64},
        artifacts={"compiled": {"file": "model.nequip.pt2", "target": "ase"}},
    )  # fmt: skip


def potential_run(root: Path, type_names=LLZO, units="metal", status="complete",
                  manifest=True, verdict="PASS") -> Path:  # fmt: skip
    """A potential study's run folder as `bundle run` leaves it (manifests, the deploy
    stage's model files: dummies, never loaded here)."""
    run = root / "pot"
    (run).mkdir(parents=True)
    names = ["train", "deploy", "validate"]
    (run / "study.json").write_text(json.dumps({"stages": names, "blocks": {}}))
    for i, name in enumerate(names, 1):
        d = run / f"{i:02d}_{name}"
        d.mkdir()
        kind = "check" if name == "validate" else name
        st = status if name == "deploy" else "complete"
        (d / files.MANIFEST).write_text(json.dumps({"kind": kind, "status": st}))
    dep = run / "02_deploy"
    (dep / "model.nequip.pt2").write_bytes(b"compiled")
    (dep / "model.nequip.zip").write_bytes(b"packaged")
    if manifest:
        modelcard.write(dep / modelcard.FILENAME, card(type_names, units))
    (run / "03_validate" / "validation.json").write_text(json.dumps({"verdict": verdict}))
    return run


def study(run: Path, profile: str = "cpu-allegro", key: str = "run"):
    return loader.load("llzo-gb", [f"profiles.{profile}.model.{key}={run}"], profile)


def refusal(s, tmp_path: Path) -> str:
    with pytest.raises(InputError) as e:
        engine.prepare(s, tmp_path / "gb", None, None, [])
    return str(e.value)


def test_the_reference_resolves_to_the_deploy_stage_with_its_verdict(tmp_path):
    run = potential_run(tmp_path)
    s = study(run)
    assert s.active.model is not None and s.active.model.run == str(run)
    engine.prepare(s, tmp_path / "gb", None, None, [])  # preflight passes
    r = modelstage.Model("model", stage_config(s, "model", modelstage.ModelConfig)).resolve(
        Context(s, tmp_path / "gb")
    )
    assert r is not None and r.compiled == run / "02_deploy" / "model.nequip.pt2"
    assert r.verdict == "PASS" and r.validation == run / "03_validate" / "validation.json"


def test_the_verdict_is_the_deployed_models_not_the_deepmd_models_of_the_same_run(tmp_path):
    """A potential run validates its Allegro model (07_validate) and then its DeePMD model
    (09_validate_deepmd): the model reference takes the verdict of the record that names
    the deployed model, not the last one."""
    run = potential_run(tmp_path)
    own = {"verdict": "PASS", "model": "../02_deploy/model.nequip.pt2"}
    (run / "03_validate" / "validation.json").write_text(json.dumps(own))
    d = run / "04_validate_deepmd"
    d.mkdir()
    (d / files.MANIFEST).write_text(json.dumps({"kind": "check", "status": "complete"}))
    other = {"verdict": "FAIL", "model": "../05_train_deepmd/model.pb"}
    (d / "validation.json").write_text(json.dumps(other))
    doc = json.loads((run / "study.json").read_text())
    (run / "study.json").write_text(json.dumps(doc | {"stages": [*doc["stages"], d.name[3:]]}))
    s = study(run)
    r = modelstage.Model("model", stage_config(s, "model", modelstage.ModelConfig)).resolve(
        Context(s, tmp_path / "gb")
    )
    assert r.verdict == "PASS" and r.validation == run / "03_validate" / "validation.json"


def test_a_relative_run_resolves_against_the_directory_bundle_run_starts_in(tmp_path, monkeypatch):
    potential_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    s = loader.load("llzo-gb", ["profiles.cpu-allegro.model.run=pot"], "cpu-allegro")
    assert s.active.model.run == str(tmp_path / "pot")
    engine.prepare(s, tmp_path / "gb", None, None, [])


def test_preflight_refuses_a_model_without_a_species_of_the_data_naming_both(tmp_path):
    msg = refusal(study(potential_run(tmp_path, type_names=["Li", "O"])), tmp_path)
    assert "llzo-gb.yaml: profiles.cpu-allegro.model.run:" in msg
    assert "knows Li, O but the data file of stage build_control holds Li, La, Zr, O, Al" in msg
    assert "(La, Zr, Al unknown to the model)" in msg


def test_preflight_refuses_al_data_with_an_undoped_model(tmp_path):
    msg = refusal(study(potential_run(tmp_path, type_names=["Li", "La", "Zr", "O"])), tmp_path)
    assert "knows Li, La, Zr, O but the data file" in msg and "(Al unknown" in msg


def test_preflight_refuses_a_model_in_other_units_naming_both(tmp_path):
    msg = refusal(study(potential_run(tmp_path, units="real")), tmp_path)
    assert "profiles.cpu-allegro.model.run:" in msg
    assert "trained in kcal/mol and Angstrom (LAMMPS 'real')" in msg
    assert "runs LAMMPS units 'metal'" in msg


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p / "nowhere", "no such run: "),
        (lambda p: potential_run(p, status="failed"), "no complete deploy stage (02_deploy is"),
        (lambda p: potential_run(p, manifest=False), "has no model_manifest.json"),
    ],
)  # fmt: skip
def test_a_bad_reference_is_one_line_naming_the_study_and_field(tmp_path, make, problem):
    msg = refusal(study(make(tmp_path)), tmp_path)
    assert "\n" not in msg and problem in msg
    assert msg.startswith(str(loader.read("llzo-gb")[0]) + ": profiles.cpu-allegro.model.run: ")


def test_dry_run_catches_the_species_refusal(tmp_path):
    run = potential_run(tmp_path, type_names=["Li", "O"])
    r = CliRunner().invoke(app, ["run", "llzo-gb", "--profile", "cpu-allegro", "--dry-run",
                                 "--set", f"profiles.cpu-allegro.model.run={run}",
                                 "--run-dir", str(tmp_path / "gb")])  # fmt: skip
    assert r.exit_code == 3, r.output
    assert "knows Li, O but the data file of stage build_control holds" in r.output
    assert not (tmp_path / "gb").exists()


def test_the_classical_profile_is_untouched(tmp_path):
    s = loader.load("llzo-gb")
    assert s.active.model is None
    md = stages.Md("production", stage_config(s, "production", stages.Md.Config))
    assert md.params(Context(s, tmp_path)).engine == "classical"


# ------------------------------------------------------------------ rendered inputs


def complete(ctx: Context, name: str, result: dict) -> None:
    d = ctx.dir_of(name)
    d.mkdir(parents=True, exist_ok=True)
    (d / files.MANIFEST).write_text(json.dumps({"status": "complete", "result": result}))


def model_driven_run(tmp_path: Path, species: list[str]) -> Context:
    """A cpu-allegro run folder whose model and build stages are complete: a five-atom
    data file with `species`, the model stage's record of the potential run's model."""
    run = potential_run(tmp_path, type_names=["Li", "La", "Zr", "O"])
    s = loader.load("llzo-gb", [f"profiles.cpu-allegro.model.run={run}",
                                "build.dopant=null", "build_control.dopant=null"],
                    "cpu-allegro")  # fmt: skip
    ctx = Context(s, tmp_path / "gb")
    m = modelstage.Model("model", stage_config(s, "model", modelstage.ModelConfig))
    res = m.collect(ctx, ctx.dir_of("model"))
    complete(ctx, "model", {"file": res.file, "provenance": res.provenance, "r_max_A": 5.0})
    pos = [[1.0 + 2.0 * i, 1.0, 1.0] for i in range(len(species))]
    data = lmpdata.from_symbols([12.0, 12.0, 12.0], species, pos)
    for name in ("build", "relax"):
        complete(ctx, name, {"data_file": "bc.data", "li_sites": "sites.npz"})
        lmpdata.write_data(ctx.dir_of(name) / "bc.data", data, "test")
    return ctx


def test_cpu_allegro_md_renders_fix_external_and_no_coulomb(tmp_path):
    ctx = model_driven_run(tmp_path, ["Li", "La", "Zr", "O"])
    md = stages.Md("equilibrate", stage_config(ctx.study, "equilibrate", stages.Md.Config))
    out = ctx.run_dir / "md"  # a sibling of the stage folders: reads ../05_relax
    out.mkdir()
    md.render(ctx, out)
    text = (out / "in.lammps").read_text()
    assert "pair_style zero 5.0000" in text
    assert "fix mlmd_model all external pf/callback 1 1" in text
    assert "fix_modify mlmd_model energy yes virial yes" in text
    for classical in ("kspace", "buck", "coul", "pair_style allegro", "newton on"):
        assert classical not in text
    assert "fix nvt li nvt temp 700.00" in text and "run 30\n" in text
    spec = json.loads((out / "model.json").read_text())
    assert spec["model"].endswith("02_deploy/model.nequip.pt2")
    assert spec["type_map"] == {"1": "Li", "2": "La", "3": "Zr", "4": "O"}
    (cmd,) = files.read_commands(out)
    assert cmd.argv == ("python", "-m", "runbook.llzo.md", "in.lammps")


def test_cpu_allegro_relax_minimises_with_the_models_energy_and_virial(tmp_path):
    ctx = model_driven_run(tmp_path, ["Li", "La", "Zr", "O"])
    cfg = stage_config(ctx.study, "relax", relaxstage.Relax.Config)
    rx = relaxstage.Relax("relax", cfg.model_copy(update={"reference": None}))
    out = ctx.run_dir / "relax"
    out.mkdir()
    rx.render(ctx, out)
    text = (out / "in.lammps").read_text()
    assert "fix_modify mlmd_model energy yes virial yes" in text
    assert "kspace" not in text and "set atom" not in text
    assert "fix boxz all box/relax z 0.0" in text and "minimize 0.0 0.02 20 200" in text
    assert "run 20\n" in text  # the toy anneal: 0.02 ps at 1 fs
    assert (out / "model.json").exists()


def test_the_data_file_itself_is_checked_against_the_model(tmp_path):
    ctx = model_driven_run(tmp_path, ["Li", "La", "Zr", "O", "Al"])
    md = stages.Md("equilibrate", stage_config(ctx.study, "equilibrate", stages.Md.Config))
    out = ctx.run_dir / "md"  # a sibling of the stage folders: reads ../05_relax
    out.mkdir()
    with pytest.raises(InputError, match=r"knows Li, La, Zr, O but the data file .*bc\.data "
                       r"holds Li, La, Zr, O, Al \(Al unknown"):  # fmt: skip
        md.render(ctx, out)


def test_h200_compiles_the_packaged_model_on_site_golden(tmp_path):
    """The h200 model stage: nequip-compile of the installed packaged model for
    pair_allegro on cuda, its manifest beside the output (rendered: no GPU here)."""
    zipped = tmp_path / "models" / "llzo-allegro.nequip.zip"
    zipped.parent.mkdir()
    zipped.write_bytes(b"packaged")
    s = study(zipped, "h200", "file")
    msg = refusal(s, tmp_path)
    assert "has no llzo-allegro.model_manifest.json or model_manifest.json beside it" in msg
    # models/ holds several models: each its own <name>.model_manifest.json
    modelcard.write(zipped.parent / f"llzo-allegro.{modelcard.FILENAME}", card(LLZO[:4]))
    engine.prepare(s, tmp_path / "gb", None, None, [])  # undoped h200 builds: accepted
    ctx = Context(s, tmp_path / "gb")
    m = modelstage.Model("model", stage_config(s, "model", modelstage.ModelConfig))
    out = ctx.dir_of("model")
    out.mkdir(parents=True)
    m.render(ctx, out)
    (cmd,) = files.read_commands(out)
    line = " ".join(cmd.argv).replace(str(tmp_path), "/opt/mlmd")
    doc = json.loads((out / "model.json").read_text())
    assert doc["compiles_to"] == "model.nequip.pt2" and (out / modelcard.FILENAME).exists()
    assert_golden(GOLDEN / "llzo-h200-model-compile.txt", line + "\n")


def test_the_report_names_the_model_its_sha256_and_the_validation_verdict(tmp_path):
    from runbook.llzo import report_parts

    ctx = model_driven_run(tmp_path, ["Li", "La", "Zr", "O"])
    text = "\n".join(report_parts.potential(ctx.run_dir, "01_model"))
    run = tmp_path / "pot"
    assert f"- model: `{run}/02_deploy/model.nequip.pt2`" in text
    assert f"- SHA-256: `{files.sha256_file(run / '02_deploy' / 'model.nequip.pt2')}`" in text
    assert "validation of the potential run: **PASS**" in text and "d" * 64 in text
    classical = "\n".join(report_parts.potential(ctx.run_dir, None))
    assert "Classical baseline" in classical
