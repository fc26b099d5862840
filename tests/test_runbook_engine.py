"""The stage engine on real, cheap stages: manifests, skip, refuse, force, resume, status.

The `structure` stage (a Python step run through the Local launcher) costs ~1 s; the
failing stage is a real pw.x run on a corrupt pseudopotential.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EngineError, InputError
from runbook import engine, files, loader
from runbook.stage import Stage
from runbook.stages.dataset import DatasetResult
from runbook.stages.structure import StructureResult
from tests.conftest import require_program

STUDY = {
    "schema": "study/1",
    "name": "mini",
    "species": ["Li", "O"],
    "stages": ["structure", "dataset_like"],
    "structure": {
        "a_angstrom": 4.61,
        "frames": [{"supercell": [1, 1, 1], "n": 3}],
        "strain_max": 0.02,
        "rattle_angstrom": 0.05,
        "seed": 7,
    },
    # a second stage of the same kind under another name: its own folder and manifest
    "dataset_like": {
        "kind": "structure",
        "a_angstrom": 4.0,
        "frames": [{"supercell": [1, 1, 1], "n": 1}],
    },
}


def _write(tmp_path: Path, doc: dict, name: str = "mini.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(folder).as_posix(): (files.sha256_file(p), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run(path: Path, run: Path, **kw) -> engine.RunSummary:
    kw.setdefault("echo", lambda s: None)
    return engine.run(loader.load(path), run, **kw)


def test_manifest_skip_and_no_rewrite(tmp_path):
    study = _write(tmp_path, STUDY)
    run = tmp_path / "run"
    first = _run(study, run)
    assert first.ran == ["structure", "dataset_like"]
    m = json.loads((run / "01_structure" / "manifest.json").read_text())
    assert m["status"] == "complete" and m["exit_status"] == 0 and m["wall_s"] > 0
    assert set(m["inputs"]) == {"commands.json", "structure.json"}
    assert "structures.extxyz" in m["outputs"] and m["tools"]["locked"]["ase"]
    assert m["tools"]["installed"]["numpy"] and m["result"]["n_frames"] == 3
    assert (run / "02_dataset_like" / "manifest.json").exists()
    before = _snapshot(run / "01_structure") | _snapshot(run / "02_dataset_like")
    again = _run(study, run)
    assert again.ran == [] and again.skipped == ["structure", "dataset_like"]
    assert _snapshot(run / "01_structure") | _snapshot(run / "02_dataset_like") == before
    # a run folder is relocatable: inputs are written with relative paths
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    assert _run(study, moved).skipped == ["structure", "dataset_like"]


def test_changed_inputs_are_refused_then_forced(tmp_path):
    run = tmp_path / "run"
    _run(_write(tmp_path, STUDY), run)
    before = _snapshot(run / "01_structure")
    changed = _write(tmp_path, {**STUDY, "structure": {**STUDY["structure"], "seed": 8}}, "b.yaml")
    with pytest.raises(InputError) as e:
        _run(changed, run)
    assert "structure" in str(e.value) and "structure.json" in str(e.value)
    assert "--force structure" in str(e.value)
    assert _snapshot(run / "01_structure") == before  # refused: nothing touched
    forced = _run(changed, run, force=["structure"])
    # the later stage's upstream changed, so it is redone in the same run, not refused
    assert forced.ran == ["structure", "dataset_like"]


def test_incomplete_stage_is_wiped_and_redone_until_and_from(tmp_path):
    study = _write(tmp_path, STUDY)
    run = tmp_path / "run"
    s = _run(study, run, until="structure")
    assert s.ran == ["structure"] and not (run / "02_dataset_like").exists()
    # a killed stage: a folder with partial outputs and no manifest
    (run / "02_dataset_like").mkdir()
    (run / "02_dataset_like" / "partial.txt").write_text("half")
    lines: list[str] = []
    s = engine.run(loader.load(study), run, echo=lines.append)
    assert s.skipped == ["structure"] and s.ran == ["dataset_like"]
    assert not (run / "02_dataset_like" / "partial.txt").exists()
    assert any("removing previous folder (incomplete)" in ln for ln in lines)
    s = _run(study, run, start="dataset_like")
    assert s.ran == ["dataset_like"] and s.skipped == []


def test_selection_errors_and_the_run_lock(tmp_path):
    study = _write(tmp_path, STUDY)
    run = tmp_path / "run"
    with pytest.raises(InputError, match="unknown stage of this study"):
        _run(study, run, force=["train"])
    with pytest.raises(InputError, match="earlier stage structure is not complete"):
        _run(study, run, start="dataset_like")
    run.mkdir(exist_ok=True)
    with open(run / ".run.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InputError, match="another `bundle run` is using it"):
            _run(study, run)


def test_a_result_is_read_typed_and_a_misfit_names_the_manifest_and_field(tmp_path):
    """`ctx.result(name, Type)`: a stage reads an earlier stage's result as its type;
    a recorded result that does not fit is one line naming the manifest and the field."""
    study = loader.load(_write(tmp_path, STUDY))
    run = tmp_path / "run"
    engine.run(study, run, echo=lambda s: None, until="structure")
    ctx = engine.Context(study, run)
    manifest = run / "01_structure" / "manifest.json"
    assert ctx.result("structure", StructureResult).n_frames == 3
    with pytest.raises(InputError) as e:  # the wrong type: a field it lacks
        ctx.result("structure", DatasetResult)
    assert (e.value.file, e.value.field) == (str(manifest), "result.split")
    assert "DatasetResult" in str(e.value) and "\n" not in str(e.value)
    m = json.loads(manifest.read_text())
    m["result"]["n_frames"] = "three"  # a recorded value of the wrong type
    manifest.write_text(json.dumps(m))
    with pytest.raises(InputError) as e:
        ctx.result("structure", StructureResult)
    assert (e.value.file, e.value.field) == (str(manifest), "result.n_frames")
    assert "\n" not in str(e.value)


def test_status_reports_states_and_modified_outputs(tmp_path):
    study = _write(tmp_path, STUDY)
    run = tmp_path / "run"
    _run(study, run, until="structure")
    out = CliRunner().invoke(app, ["status", str(run)])
    assert out.exit_code == 0, out.output
    assert "01_structure" in out.output and "complete" in out.output
    assert "02_dataset_like" in out.output and "pending" in out.output
    (run / "01_structure" / "structures.extxyz").write_text("edited\n")
    out = CliRunner().invoke(app, ["status", str(run), "--json"])
    states = json.loads(out.output)
    assert states[0]["modified"] == ["structures.extxyz"] and states[1]["status"] == "pending"
    out = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert out.exit_code == 3 and "not a run folder" in out.output


@pytest.mark.engine
def test_a_failing_engine_leaves_a_failed_manifest_and_exit_4(tmp_path):
    require_program("pw.x")
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    shutil.copyfile(
        "/usr/share/espresso/pseudo/Li.pbesol-s-rrkjus_psl.0.2.1.UPF", pseudo / "Li.UPF"
    )
    (pseudo / "O.UPF").write_text("<UPF version='2.0.1'>\nnot a pseudopotential\n")
    doc = {
        **STUDY,
        "stages": ["structure", "dft"],
        "dft": {
            "pseudo_dir": str(pseudo),
            "pseudopotentials": {"Li": "Li.UPF", "O": "O.UPF"},
            "ecutwfc_ry": 20,
            "ecutrho_ry": 160,
        },
    }
    doc.pop("dataset_like")
    study = _write(tmp_path, doc)
    run = tmp_path / "run"
    with pytest.raises(
        EngineError, match=r"stage dft: `pw.x` exited with status \d+; see .*pw-000.out"
    ):
        _run(study, run)
    m = json.loads((run / "02_dft" / "manifest.json").read_text())
    assert m["status"] == "failed" and m["exit_status"] != 0
    out = CliRunner().invoke(app, ["run", str(study), "--run-dir", str(run)])
    assert out.exit_code == 4, out.output
    assert out.output.strip().splitlines()[-1].startswith("error: stage dft:")


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stop: bool = False


class Gate(Stage):
    """A stage with no command whose result may end the run (as a converged loop's select)."""

    kind = "gate"
    Config = GateConfig

    def render(self, ctx, stage_dir: Path) -> list[Path]:
        return [files.write_commands(stage_dir, [])]

    def collect(self, ctx, stage_dir: Path) -> dict:
        return {"stop_reason": "enough data" if self.cfg.stop else None}


def test_a_stage_whose_result_says_stop_ends_the_run_and_a_rerun_stops_there_again(tmp_path):
    doc = {**STUDY, "stages": ["structure", "gate", "dataset_like"],
           "gate": {"kind": "tests.test_runbook_engine:Gate", "stop": True}}  # fmt: skip
    path, run = _write(tmp_path, doc), tmp_path / "run"
    lines: list[str] = []
    s = _run(path, run, echo=lines.append)
    assert s.ran == ["structure", "gate"] and s.stopped == ("gate", "enough data")
    assert "stopped after gate: enough data (not run: dataset_like)" in lines
    assert not (run / "03_dataset_like").exists()
    again = _run(path, run)
    assert again.ran == [] and again.skipped == ["structure", "gate"] and again.stopped
    doc["gate"]["stop"] = False
    path = _write(tmp_path, doc)
    s = _run(path, run, force=["gate"])
    assert s.ran == ["gate", "dataset_like"] and s.stopped is None


def test_an_output_a_step_did_not_write_is_one_line_naming_it_and_its_logs(tmp_path):
    out = tmp_path / "stage" / "results.json"
    out.parent.mkdir()
    with pytest.raises(EngineError) as e:
        files.written(out, "analyze.log", "merge.log")
    assert str(e.value) == (
        f"{out} not written; see {out.parent / 'analyze.log'}, {out.parent / 'merge.log'}"
    )
    out.write_text("{}")
    assert files.written(out, "analyze.log") == out
