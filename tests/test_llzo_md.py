"""LLZO MD driver: a real Li-only LAMMPS segment, the Coulomb solver's accuracy, and the
h200 (Allegro + Kokkos) rendering of the study, which runs on GPU sites only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bundle.core.errors import InputError
from runbook import config, engine, files, lammpslog, loader, modelcard
from runbook.config import stage_config
from runbook.llzo import bicrystal, buildstage, lmpdata, md, potential, relaxstage, stages
from runbook.stage import Context


@pytest.fixture(scope="module")
def bicrystal_data(tmp_path_factory) -> Path:
    spec = bicrystal.BicrystalSpec(plane=(2, 1), termination=1, gap=1.0, dopant="Al",
                                   dopant_level=0.25)  # fmt: skip
    b = bicrystal.build(spec, 3)
    d = lmpdata.from_symbols(b.box, b.atoms.get_chemical_symbols(), b.atoms.positions)
    return lmpdata.write_data(tmp_path_factory.mktemp("llzo") / "bc.data", d, "test")


def _frame_sorted(data: lmpdata.DataFile):
    frame = data.types != 1
    return data.ids[frame], np.mod(data.positions[frame], data.box)


@pytest.mark.engine
def test_md_segment_moves_only_li(lammps_module, bicrystal_data, tmp_path):
    p = md.MDParams(temperature_K=700, steps=100, timestep_fs=2.0, velocity_seed=5,
                    dump_every=50, thermo_every=50)  # fmt: skip
    md.render(p, tmp_path, str(bicrystal_data))
    text = (tmp_path / "in.lammps").read_text()
    assert "neigh_modify every 1 delay 0 check yes exclude group frame frame" in text
    assert "kspace_style pppm 0.0001" in text and "fix nvt li nvt temp 700.00" in text
    assert md.main([str(tmp_path / "in.lammps")]) == 0
    r = md.collect(tmp_path)
    n_li = lmpdata.read_data(bicrystal_data).counts()["Li"]
    assert r.steps == 100 and r.frames == 3 and r.nprocs == 1
    assert r.atoms == len(lmpdata.read_data(bicrystal_data).ids)
    t_li = lammpslog.thermo_blocks((tmp_path / "log.lammps").read_text())[-1]["c_tli"]
    assert t_li[0] == pytest.approx(700.0, abs=0.5)  # created on Li only, measured on Li only
    assert r.temperature_mean_K > 700  # Li start on ideal sites: the relaxation heats them
    before, after = lmpdata.read_data(bicrystal_data), lmpdata.read_data(tmp_path / "final.data")
    ids0, f0 = _frame_sorted(before)
    ids1, f1 = _frame_sorted(after)
    assert np.array_equal(ids0, ids1) and np.abs(f1 - f0).max() < 1e-6  # framework frozen
    li0, li1 = before.positions[before.types == 1], after.positions[after.types == 1]
    assert np.abs(li1 - li0).max() > 0.05  # Li moved
    assert np.all(after.velocities[after.types != 1] == 0)
    frames = (tmp_path / "traj.lammpstrj").read_text().split("ITEM: TIMESTEP")[1:]
    assert all(f"ITEM: NUMBER OF ATOMS\n{n_li}\n" in f for f in frames)  # Li only
    assert "id type xu yu zu" in frames[0]


@pytest.mark.engine
def test_pppm_li_forces_match_a_tight_ewald_reference(lammps_module, bicrystal_data):
    """The production solver (PPPM 1e-4, 8 Å) against PPPM 1e-7 with 12 Å: < 0.5 % RMS."""
    pset = potential.load()

    def li_forces(lines: list[str]) -> np.ndarray:
        lmp = lammps_module.lammps(cmdargs=["-log", "none", "-screen", "none"])
        lmp.commands_string(
            "units metal\natom_style charge\n"
            f"read_data {bicrystal_data}\n" + "\n".join(lines) + "\n"
            "group frame type 2 3 4\nneigh_modify exclude group frame frame\nrun 0"
        )
        n = lmp.get_natoms()
        f = np.array(lmp.numpy.extract_atom("f")[:n])
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        t = np.array(lmp.numpy.extract_atom("type")[:n])
        lmp.close()
        o = np.argsort(ids)
        return f[o][t[o] == 1]

    ref = li_forces(potential.lammps_lines(pset, cutoff=12.0, accuracy=1e-7))
    got = li_forces(potential.lammps_lines(pset))
    rms = np.sqrt((ref**2).sum(axis=1).mean())
    err = np.sqrt(((got - ref) ** 2).sum(axis=1).mean())
    assert rms > 1.0  # Li on ideal sites: real forces to compare
    assert err / rms < 5e-3
    # the perturbation used by the discrimination test changes the Li forces
    scaled = li_forces(potential.lammps_lines(pset.scaled("Li", "O", 1.5)))
    assert np.sqrt(((scaled - ref) ** 2).sum(axis=1).mean()) > 0.1 * rms


@pytest.mark.slow
def test_h200_profile_renders_allegro_kokkos_on_all_gpus(tmp_path):
    """The h200 profile: >= 50,000 atoms, Allegro via Kokkos, one rank per GPU, 100 ps
    after insertion. The structure is built for real; the MD is rendered (no GPU here)."""
    study = loader.load("llzo-gb", profile="h200")
    assert study.active.accelerator == "cuda" and study.active.gpus == 8
    # build for real with a study of the build stage alone (the full study's preflight
    # refuses to start without the installed model, as it should on a machine without it)
    doc = yaml.safe_load(config.resolve_path("llzo-gb").read_text())
    doc.pop("sweep")
    doc["stages"] = ["build"]
    doc = {k: v for k, v in doc.items() if k in ("schema", "name", "species", "profile",
                                                 "profiles", "stages", "build")}  # fmt: skip
    # the translation found by the scan, not the scan itself (an hour of classical
    # minimisations on the (310) cell): the structure at the first grid point
    scan = doc["build"]["by_profile"]["h200"].pop("scan")
    doc["build"].pop("scan")
    doc["build"]["by_profile"]["h200"].update(
        termination=scan["termination"][0], gap_A=scan["gap_A"][1]
    )
    (tmp_path / "build-only.yaml").write_text(yaml.safe_dump(doc))
    build_only = loader.load(tmp_path / "build-only.yaml", profile="h200")
    engine.run(build_only, tmp_path / "build-only", echo=lambda s: None)
    # the later stages read it as input from the full study's run folder, beside the
    # model stage's record (the compile itself runs on the GPU site only)
    ctx = Context(study, tmp_path / "run")
    ctx.run_dir.mkdir()
    (tmp_path / "build-only" / "01_build").rename(ctx.dir_of("build"))
    res = ctx.result("build", buildstage.BuildResult)
    assert sum(res.counts.values()) >= 50_000 and res.charge_e == 0
    assert 75 < res.box_A[2] < 90  # Lz as in the published cell (about 80 Å)
    compiled = ctx.dir_of("model") / "model.nequip.pt2"
    compiled.parent.mkdir()
    card = modelcard.ModelManifest(
        units=modelcard.Units(**modelcard.DATA_UNITS),
        type_names=["Li", "La", "Zr", "O"],
        r_max_angstrom=5.0,
    )
    modelcard.write(compiled.parent / modelcard.FILENAME, card)
    prov = {"manifest": str(compiled.parent / modelcard.FILENAME), "sha256": "0" * 64}
    (compiled.parent / "manifest.json").write_text(
        json.dumps({"status": "complete", "result": {"file": str(compiled), "provenance": prov}})
    )

    def stage(name: str, **over) -> stages.Md:
        cfg = stage_config(study, name, stages.Md.Config)
        return stages.Md(name, cfg.model_copy(update=over))

    p = stage("production_excess").params(ctx)
    assert p.engine == "allegro" and p.steps * p.timestep_fs / 1000 == pytest.approx(100.0)
    # the relax stage on this profile: Allegro minimises and anneals the big cell
    rcfg = stage_config(study, "relax", relaxstage.Relax.Config).model_copy(
        update={"reference": None}  # the control is not built here
    )
    rx = relaxstage.Relax("relax", rcfg)
    rdir = tmp_path / "run" / "relax"  # a sibling of the build's folder: reads ../04_build
    rdir.mkdir()
    rx.render(ctx, rdir)
    rtext = (rdir / "in.lammps").read_text()
    assert "pair_style allegro\n" in rtext and "fix boxz all box/relax z 0.0" in rtext
    assert "fix anneal all npt temp 1000.00 1000.00" in rtext and "run 10000" in rtext
    (run_cmd, post_cmd) = files.read_commands(rdir)
    assert run_cmd.mpi and run_cmd.argv[:2] == ("lmp", "-sf") and "relax_post.json" in post_cmd.argv
    out = tmp_path / "run" / "render"
    out.mkdir()
    stage("equilibrate", input="build").render(ctx, out)  # reads the built structure
    text = (out / "in.lammps").read_text()
    assert "pair_style allegro\n" in text
    assert f"pair_coeff * * {compiled} Li La Zr O" in text
    assert "fix nvt li nvt temp 700.00" in text and "exclude group frame frame" not in text
    (cmd,) = files.read_commands(out)
    assert cmd.mpi and cmd.argv[:8] == ("lmp", "-sf", "kk", "-k", "on", "g", "8", "-pk")
    for name in ("equilibrate", "production", "production_excess"):
        spec = study.active.launcher_for(name)
        assert spec.kind == "mpi" and spec.np == 8  # one MPI rank per GPU
    params = json.loads((out / "md_params.json").read_text())
    assert params["engine"] == "allegro" and params["gpus"] == 8
    # without the installed packaged model on this machine the study refuses before running
    with pytest.raises(InputError, match="no such model file: /opt/mlmd/models/llzo-allegro"):
        engine.prepare(study, tmp_path / "refused", None, None, [])
