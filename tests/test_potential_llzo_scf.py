"""A real pw.x SCF of a 96-atom LLZO cell in the suite: the llzo-potential cpu study's
first label (its first selected bulk frame, Li28La12Zr8O48 with the generated La/Zr and
Debian's Li/O PBEsol pseudopotentials, 30/240 Ry, Gamma), rendered by the study's own
sample, select and dft stages, run through the study's dft launcher, and compared with
the label recorded from a full run of the study (tests/data/llzo/scf96.yaml)."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from bundle.core import paths
from runbook import engine, launchers, loader, qe, stages
from runbook.launchers import Command
from tests.conftest import require_program

pytestmark = pytest.mark.engine

REF = paths.root() / "tests" / "data" / "llzo" / "scf96.yaml"


def test_the_cpu_studys_first_bulk_label_is_reproduced_by_pw_x(tmp_path):
    require_program("pw.x")
    ref = yaml.safe_load(REF.read_text())
    study = loader.load("llzo-potential")
    run = tmp_path / "run"
    engine.run(study, run, until="select", echo=lambda _: None)
    d = tmp_path / "dft"
    d.mkdir()
    stages.build(study, "dft").render(engine.Context(study, run), d)
    text = (d / "pw-000.in").read_text()
    assert "nat = 96" in text and "K_POINTS gamma" in text
    assert hashlib.sha256(text.encode()).hexdigest() == ref["input_sha256"], (
        "the study's first label frame or its settings changed: re-record scf96.yaml"
    )
    launcher = launchers.from_spec(study.active.launcher_for("dft"))
    rc = launchers.run(launcher, Command(("pw.x", "-in", "pw-000.in"), "pw-000.out", mpi=True), d)
    out = (d / "pw-000.out").read_text()
    assert rc == 0, out[-2000:]
    label = qe.parse_pw_output(out, 96, "pw-000.out")
    assert abs(label.energy_ry - ref["energy_ry"]) <= ref["tolerance_ry"]
    assert label.forces_ev_a.shape == (96, 3)
    # a net force on the cell is numerical noise only (translation invariance)
    assert abs(label.forces_ev_a.sum(axis=0)).max() < 1e-2
