"""The DeePMD run the DeePMD tests share (one training per session).

`deepmd_run`: the smoke-li2o study's structure/dft/dataset stages, copied from the
session's smoke run (same inputs, so the engine skips them), plus the stages of
tests/data/deepmd/smoke-deepmd.yaml: three DeePMD models trained on the same split
(seeds 1, 2, 3), frozen, `dp test` on the held-out frames, packaged as one committee
(runbook.deepmd.committee), and LAMMPS MD with `pair_style deepmd` whose committee writes
model_devi.out and the deviation record.
MLMD_DEEPMD_RUN_DIR names a persistent folder to reuse across sessions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

OVERLAY = Path(__file__).parent / "data" / "deepmd" / "smoke-deepmd.yaml"
SHARED = ("structure", "dft", "dataset")


def compose(smoke_study: Path, out: Path) -> Path:
    """The smoke study file with its first stages and the overlay's stages and blocks."""
    doc = yaml.safe_load(smoke_study.read_text())
    extra = yaml.safe_load(OVERLAY.read_text())
    stages = extra.pop("stages")
    for name in list(doc):
        if name in doc.get("stages", []) and name not in SHARED:
            del doc[name]
    doc.update(name="smoke-li2o-deepmd", stages=stages, **extra)
    one = {"kind": "local", "threads": 1}
    doc["profiles"]["cpu"]["launchers"].update(
        {n: one for n in stages if n.startswith("train_deepmd")}
    )
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def run_deepmd(smoke_dir: Path, run_dir: Path, echo=print):
    """Copy the shared stages of a finished smoke run, then run the composed study."""
    from runbook import config, engine, loader

    run_dir.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(SHARED, start=1):
        src, dst = smoke_dir / f"{k:02d}_{name}", run_dir / f"{k:02d}_{name}"
        if not dst.exists():
            shutil.copytree(src, dst, symlinks=True)
    study_file = compose(config.resolve_path("smoke-li2o"), run_dir.parent / "smoke-deepmd.yaml")
    study = loader.load(study_file)
    engine.run(study, run_dir, echo=echo)
    return study, run_dir.resolve()


@pytest.fixture(scope="session")
def deepmd_run(smoke_run, tmp_path_factory):
    from bundle.core import engines
    from bundle.core.errors import MissingComponent
    from tests.conftest import require, run_once, shared_dir

    try:
        engines.deepmd_libs()
        engines.venv_bin("dp")
    except MissingComponent as e:
        require(False, "deepmd-kit (dp, LAMMPS plugin)", str(e))
    _, smoke_dir = smoke_run
    base = os.environ.get("MLMD_DEEPMD_RUN_DIR")
    with shared_dir(tmp_path_factory, "deepmd") as shared:
        run_dir = Path(base) / "run" if base else shared / "run"
        out: list = []
        echo = lambda line: print(f"deepmd_run: {line}")  # noqa: E731
        run_once(shared, run_dir, lambda: out.append(run_deepmd(smoke_dir, run_dir, echo=echo)))
        if out:
            return out[0]
        study_file = run_dir.parent / "smoke-deepmd.yaml"  # composed by the first worker
        from runbook import loader

        return loader.load(study_file), run_dir.resolve()


def extend(deepmd_run, run_dir: Path, blocks: dict, echo=print, **run_kw):
    """The DeePMD run with more stages (`blocks`: name -> block, in order) run into
    `run_dir`: the run's stage folders are copied there first (same inputs: skipped), so
    nothing of the shared run is written. Returns (study, run_dir, engine summary)."""
    from runbook import engine, loader

    study, src = deepmd_run
    run_dir.mkdir(parents=True, exist_ok=True)
    for d in sorted(src.iterdir()):
        if d.is_dir() and d.name[:2].isdigit() and not (run_dir / d.name).exists():
            shutil.copytree(d, run_dir / d.name, symlinks=True)
    doc = yaml.safe_load(Path(study.source).read_text())
    doc["stages"] = [*doc["stages"], *blocks]
    doc.update(blocks)
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    ext = loader.load(path)
    summary = engine.run(ext, run_dir, echo=echo, **run_kw)
    return ext, run_dir.resolve(), summary
