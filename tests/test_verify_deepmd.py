"""`bundle verify`'s DeePMD engine check on the shipped reference (bundle/references:
a DeePMD model of the smoke Li2O labels and a 96-atom Li2O cell): DeePMD-kit's
Python forces against the stored ones, and LAMMPS `pair_style deepmd` through the
production setup template against its Python values; stored forces moved by 2 meV/Å on
one atom FAIL the force check (and only it); the h200 profile says why it skips."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase.io import read, write

from bundle import pack
from bundle.core import paths
from bundle.verify import common, engines
from bundle.verify.common import Context, VerifyOptions

pytestmark = pytest.mark.engine


def context(tmp_path, profile: str = "cpu") -> Context:
    for d in ("work", "logs"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    return Context(VerifyOptions(profile=profile), paths.root(), tmp_path, tmp_path / "work",
                   tmp_path / "logs", say=lambda _: None)  # fmt: skip


def statuses(checks) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_the_shipped_deepmd_model_passes_and_moved_forces_fail(tmp_path, monkeypatch):
    ref = common.references().deepmd_forces
    assert ref is not None, "engines.yaml ships a DeePMD reference"
    got = statuses(engines.engine_deepmd(context(tmp_path / "a"), ref))
    names = ["deepmd-forces[cpu]"] + [f"deepmd-lammps-{q}[cpu]" for q in ("forces", "energy",
                                                                          "virial")]  # fmt: skip
    assert got == dict.fromkeys(names, "PASS"), got

    refs = tmp_path / "refs"
    shutil.copytree(pack.references_dir(), refs)
    atoms = read(refs / ref.structure)
    f = atoms.get_forces()
    f[7, 2] += 2e-3
    atoms.calc.results["forces"] = f
    write(refs / ref.structure, atoms)
    monkeypatch.setattr(pack, "references_dir", lambda: refs)
    checks = engines.engine_deepmd(context(tmp_path / "b"), ref)
    bad = {c.name: c for c in checks if c.status == "FAIL"}
    assert list(bad) == ["deepmd-forces[cpu]"] and bad["deepmd-forces[cpu]"].code == common.E_DEEPMD
    assert np.isclose(checks[0].value, 2e-3, atol=ref.tolerance_ev_a.cpu)

    skip = engines.engine_deepmd(context(tmp_path / "c", "h200"), ref)
    assert statuses(skip) == {"deepmd-forces": "SKIP"} and "TensorFlow" in skip[0].reason
