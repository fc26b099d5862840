"""The dft stage's bad-input and failure rules, with real pw.x on small Li2O cells:
a frame whose SCF does not converge is RECORDED and EXCLUDED (never kept, never a crash
of the stage), a stage where nothing converges fails with one line, and a missing
pseudopotential is a one-line error before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from ase.io import read
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core import paths
from bundle.core.errors import EXIT_BAD_INPUT, EngineError, InputError
from runbook import engine, loader, qe, stages
from tests.conftest import require_program

pytestmark = pytest.mark.engine


def li2o_study(tmp_path: Path, maxstep: int) -> Path:
    """smoke-li2o cut to structure -> dft: two 12-atom frames at the smoke's cutoffs,
    Gamma only (a few seconds per SCF)."""
    doc = yaml.safe_load((paths.root() / "runbook" / "studies" / "smoke-li2o.yaml").read_text())
    doc["stages"] = ["structure", "dft"]
    for k in ("dataset", "train", "deploy", "md", "analyze", "report"):
        doc.pop(k, None)
    doc["structure"]["frames"] = [{"supercell": [1, 1, 1], "n": 2}]
    doc["dft"].update(electron_maxstep=maxstep, kpoint_spacing_inv_angstrom=1.5,
                      kpoint_shift=False, kpoint_gamma=True)  # fmt: skip
    path = tmp_path / f"li2o-maxstep{maxstep}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_frame_that_does_not_converge_is_recorded_and_excluded(tmp_path):
    require_program("pw.x")
    good = loader.load(li2o_study(tmp_path, 100))
    engine.run(good, tmp_path / "good", echo=lambda _: None)
    # every SCF stopped after 2 iterations: pw.x exits 2, the stage fails with one line
    bad = loader.load(li2o_study(tmp_path, 2))
    with pytest.raises(EngineError, match="no frame converged") as e:
        engine.run(bad, tmp_path / "bad", echo=lambda _: None)
    assert "\n" not in str(e.value)
    out = (tmp_path / "bad" / "02_dft" / "pw-001.out").read_text()
    assert "convergence NOT achieved after   2 iterations" in out
    m = json.loads((tmp_path / "bad" / "02_dft" / "manifest.json").read_text())
    assert m["status"] == "failed"
    with pytest.raises(qe.ScfNotConverged) as nc:
        qe.parse_pw_output(out, 12, "pw-001.out")
    assert nc.value.iterations == 2

    # one real non-converged output among converged ones: recorded, left out, stage OK
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "good", mixed)
    shutil.copyfile(tmp_path / "bad" / "02_dft" / "pw-001.out", mixed / "02_dft" / "pw-001.out")
    ctx = engine.Context(good, mixed)
    result = stages.build(good, "dft").collect(ctx, mixed / "02_dft")
    assert result.n_frames == 1
    assert result.excluded == [
        {"frame": 1, "source": "pw-001.out", "reason": "SCF not converged in 2 iterations"}
    ]
    kept = read(mixed / "02_dft" / "dft.extxyz", index=":")
    assert [a.info["frame"] for a in kept] == [0]
    full = read(tmp_path / "good" / "02_dft" / "dft.extxyz", index=":")
    assert kept[0].get_potential_energy() == pytest.approx(full[0].get_potential_energy())
    assert kept[0].info["supercell"] == "1x1x1"  # the structure's info travels with the label


def test_a_missing_pseudopotential_is_one_line_before_anything_runs(tmp_path):
    res = CliRunner().invoke(
        app, ["run", "llzo-potential", "--run-dir", str(tmp_path / "run"),
              "--set", "dft.pseudo_path=[/usr/share/espresso/pseudo]"],
    )  # fmt: skip
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    (line,) = res.output.strip().splitlines()
    assert ": dft.pseudopotentials.La: La.pbesol-spfn-rrkjus_psl.1.0.0.UPF not found in " in line
    assert "set dft.pseudo_path" in line
    assert not (tmp_path / "run" / "01_sample").exists()


def test_pseudo_path_is_searched_in_order_and_excludes_pseudo_dir(tmp_path):
    study = loader.load("smoke-li2o")
    dft = stages.build(study, "dft")
    ctx = engine.Context(study, tmp_path)
    dft.preflight(ctx)  # the default: [pseudo_dir]
    first = tmp_path / "first"
    first.mkdir()
    (first / "Li.pbesol-s-rrkjus_psl.0.2.1.UPF").write_text("a local copy\n")
    cfg = dft.cfg.model_copy(update={"pseudo_path": [str(first), "/usr/share/espresso/pseudo"]})
    li, o = "Li.pbesol-s-rrkjus_psl.0.2.1.UPF", "O.pbesol-n-rrkjus_psl.0.1.UPF"
    assert cfg.find_pseudo(li) == first / li
    assert cfg.find_pseudo(o) == Path("/usr/share/espresso/pseudo") / o
    assert cfg.find_pseudo("Xx.UPF") is None
    both = loader.load("smoke-li2o", overrides=["dft.pseudo_path=[/tmp]"])
    with pytest.raises(InputError, match="both pseudo_dir and pseudo_path"):
        stages.build(both, "dft").preflight(engine.Context(both, tmp_path))


def test_the_potential_dft_stage_reuses_finished_labels_from_the_run_label_store(tmp_path):
    """A forced re-run of the dft stage (as after a kill, or after a settings change that
    left a frame's input alone) takes both labels from `<run>/labels`, runs no pw.x, and
    gives the same dft.extxyz; a frame whose input changed would get a new key."""
    require_program("pw.x")
    path = li2o_study(tmp_path, 100)
    doc = yaml.safe_load(path.read_text())
    doc["dft"]["kind"] = "runbook.potential.stages:Dft"
    path.write_text(yaml.safe_dump(doc))
    study = loader.load(path)
    run = tmp_path / "run"
    engine.run(study, run, echo=lambda _: None)
    first = json.loads((run / "02_dft" / "timings.json").read_text())
    assert [t["exit_status"] for t in first] == [0, 0] and all("cpu_s" in t for t in first)
    assert len(list((run / "labels").glob("*/done"))) == 2
    energies = [a.get_potential_energy() for a in read(run / "02_dft" / "dft.extxyz", ":")]
    engine.run(study, run, force=["dft"], echo=lambda _: None)
    again = json.loads((run / "02_dft" / "timings.json").read_text())
    assert [sorted(t) for t in again] == [["exit_status", "log", "reused"]] * 2
    assert [a.get_potential_energy() for a in read(run / "02_dft" / "dft.extxyz", ":")] == energies
