"""The committed La/Zr/Al pseudopotentials (runbook/pseudo): they regenerate with ld1.x to
the same file except ld1.x's two date fields, their SHA-256 is the one pseudo.yaml records,
the line wrapping is what lets QE 6.7 read them (ld1.x's test step refuses the raw La
file), ld1.x's transferability tests pass, pw.x reads them, a cheap E(V) fit of c-ZrO2
lands within the stated tolerance of experiment, and a packed bundle ships them.
"""

from __future__ import annotations

import dataclasses
import difflib
import shutil

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bundle import manifest as mf
from bundle import pack
from bundle.cli import app
from bundle.core.errors import CheckFailed, EngineError, InputError
from runbook import pseudogen, pseudoval, pwscf, qe, refcells
from runbook.dftcost import SPECIES
from tests.conftest import require_program

TABLE = pseudogen.load_table()
ELEMENTS = list(TABLE["generated"])


def _upf(el: str):
    return pseudogen.PSEUDO_DIR / TABLE["generated"][el]["upf"]


# ----------------------------------------------------------------- no engine needed
def test_wrapping_splits_only_long_numeric_lines_and_keeps_every_value():
    long = "   " + "  ".join(f"{x:.16E}" for x in np.linspace(-1, 1, 64))
    text = f"<PP_DIJ>\n{long}\n  1.0 2.0\n</PP_DIJ>\n"
    out, n = pseudogen.wrap_long_lines(text, max_len=600)
    assert n == 1
    assert max(len(line) for line in out.splitlines()) <= 600
    assert out.split() == text.split()  # same values, same text, same order
    assert out.startswith("<PP_DIJ>\n   ") and out.endswith("  1.0 2.0\n</PP_DIJ>\n")
    with pytest.raises(EngineError, match="not data"):
        pseudogen.wrap_long_lines("<PP_HEADER " + 'a="1" ' * 200 + "/>\n", max_len=600)


def test_without_dates_blanks_the_two_date_fields_only():
    text = '    Generation date: 30Nov2026\n  <PP_HEADER author="ADC" date="30Nov2026" x="1"/>\n'
    other = text.replace("30Nov2026", "01Jan2030")
    assert pseudogen.without_dates(text) == pseudogen.without_dates(other)
    assert pseudogen.without_dates(text).count("<date>") == 2
    assert pseudogen.without_dates(text.replace('x="1"', 'x="2"')) != pseudogen.without_dates(text)


@pytest.mark.parametrize("el", ELEMENTS)
def test_committed_upf_has_the_recorded_sha256_and_no_overlong_line(el):
    ent = TABLE["generated"][el]
    upf = _upf(el)
    assert pseudogen.sha256(upf) == ent["sha256"]
    lines = upf.read_text().splitlines()
    assert max(len(line) for line in lines) <= pseudogen.MAX_LINE
    assert ent["wrapped_lines"] >= 2  # PP_DIJ and PP_Q were wrapped
    assert upf.stat().st_size < 3_000_000  # small enough to commit
    assert 'functional="PBESOL"' in upf.read_text()[:20000]


def test_an_unknown_element_is_a_one_line_input_error(tmp_path):
    with pytest.raises(InputError, match=r"generated\.Xx: no such element; use one of La"):
        pseudogen.render("Xx", tmp_path, TABLE)


def test_k_points_gamma_is_rendered_for_a_large_cell_and_not_for_a_small_one():
    s = pwscf.Settings(30, 240, kpoint_spacing_inv_angstrom=0.7, kpoint_gamma=True)
    llzo = refcells.llzo_primitive(0)
    ctx = qe.input_context(llzo, SPECIES, s, "x")
    assert ctx["gamma"] and ctx["kpoints"] == [1, 1, 1] and ctx["nat"] == 96
    from bundle.core import render

    text = render.render_text("qe/pw-scf.in.j2", **ctx)
    assert text.rstrip().endswith("K_POINTS gamma")
    small = qe.input_context(refcells.fluorite("Zr", "O", 5.07), SPECIES, s, "x")
    assert not small["gamma"] and small["kpoints"] != [1, 1, 1]  # its grid, never Γ alone


def test_the_llzo_cells_have_the_stated_compositions():
    assert refcells.llzo_primitive(0).symbols.formula.count() == {
        "Li": 28,
        "La": 12,
        "Zr": 8,
        "O": 48,
    }
    al = refcells.llzo_al_primitive(0)
    assert al.symbols.formula.count() == {"Li": 25, "Al": 1, "La": 12, "Zr": 8, "O": 48}


def test_birch_murnaghan_fit_recovers_its_parameters():
    v = np.linspace(36.0, 44.0, 7)
    e = pseudoval.birch_murnaghan(v, -10.0, 40.0, 1.2, 4.5)
    fit = pseudoval.fit_eos(v, e)
    assert abs(fit.v0 - 40.0) < 1e-6 and abs(fit.b0_gpa - 1.2 * pseudoval.EV_A3_TO_GPA) < 1e-3
    assert yaml.safe_load(yaml.safe_dump(dataclasses.asdict(fit)))["v0"] == fit.v0  # plain floats
    with pytest.raises(CheckFailed, match="outside the sampled volumes"):
        w = np.linspace(30.0, 37.0, 6)
        pseudoval.fit_eos(w, pseudoval.birch_murnaghan(w, -10.0, 40.0, 1.2, 4.5))
    with pytest.raises(CheckFailed, match="too few"):
        pseudoval.fit_eos(v[:3], e[:3])


def test_a_packed_bundle_ships_the_generated_pseudopotentials(tmp_path, monkeypatch):
    monkeypatch.setenv("MLMD_BUNDLE_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("MLMD_BUNDLE_TRUST", raising=False)
    key, _ = mf.generate_keys(tmp_path / "vendor")
    out = tmp_path / "b"
    args = ["pack", "--flavor", "cpu", "--out", str(out), "--key", str(key)]
    r = CliRunner().invoke(app, [*args, "--no-wheels", "--no-images"])
    assert r.exit_code == 0, r.output
    for el in ELEMENTS:
        shipped = out / "runbook" / "pseudo" / _upf(el).name
        assert pseudogen.sha256(shipped) == TABLE["generated"][el]["sha256"]
    assert (out / "runbook" / "pseudo" / "pseudo.yaml").is_file()
    assert pseudogen.PSEUDO_DIR in pack.pseudo_dirs()


# ----------------------------------------------------------------- ld1.x
@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    require_program("ld1.x")
    work = tmp_path_factory.mktemp("ld1")
    return work, {el: pseudogen.generate(el, work / el, work / "upf", TABLE) for el in ELEMENTS}


@pytest.mark.engine
@pytest.mark.parametrize("el", ELEMENTS)
def test_regenerated_upf_equals_the_committed_one_except_the_date_lines(regenerated, el):
    _, gen = regenerated
    new, old = gen[el].upf.read_text(), _upf(el).read_text()
    assert pseudogen.without_dates(new) == pseudogen.without_dates(old)
    changed = [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=0, lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    # only ld1.x's date lines may differ (they do when regenerated on another day)
    assert all("Generation date:" in x or "<PP_HEADER" in x for x in changed), changed[:4]
    assert gen[el].ld1_version == TABLE["generated"][el]["ld1_version"]


@pytest.mark.engine
def test_ld1_test_step_refuses_the_raw_la_file_and_reads_the_wrapped_one(regenerated, tmp_path):
    work, _ = regenerated
    name = TABLE["generated"]["La"]["upf"]
    raw = (work / "La" / name).read_text()  # ld1.x's own output, before wrapping
    assert max(len(line) for line in raw.splitlines()) > 1024
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / name).write_text(raw)
    with pytest.raises(EngineError, match="ld1.x failed"):
        pseudogen.transferability("La", tmp_path / "rawrun", upf_dir=tmp_path / "raw")
    assert "line too long" in (tmp_path / "rawrun" / "La.ld1test.out").read_text(errors="replace")


@pytest.mark.engine
@pytest.mark.parametrize("el", ELEMENTS)
def test_ld1_transferability_tests_pass_on_the_committed_file(el, tmp_path):
    require_program("ld1.x")
    results = pseudogen.transferability(el, tmp_path)
    ent = TABLE["generated"][el]
    recorded = ent["transferability"]["configs"]
    assert len(results) == len(recorded) >= 6
    for r, rec in zip(results, recorded, strict=True):
        assert r.config == rec["config"] and abs(1e3 * r.delta_ry - rec["delta_mry"]) < 2e-3
    judged = results[: ent["judged_configs"]]  # pslibrary's own test configurations
    assert all(r.passed for r in judged), [(r.config, r.delta_ry) for r in judged]
    assert max(r.de_ae_ry for r in judged) > 0.05  # the configurations really differ


# ----------------------------------------------------------------- pw.x
@pytest.mark.engine
def test_pw_x_reads_every_generated_upf(tmp_path):
    require_program("pw.x")
    s = pwscf.Settings(25, 200, kpoint_spacing_inv_angstrom=0.8)
    for name, atoms in (("la2o3", refcells.la2o3(3.937)), ("al2o3", refcells.corundum(4.759))):
        run = pwscf.run_scf(atoms, SPECIES, s, tmp_path / name, "scf")
        text = run.output.read_text()
        assert run.result.version.startswith("6.7") and run.result.energy_ev < 0
        for el in {"La", "Al"} & set(atoms.get_chemical_symbols()):
            assert _upf(el).name in text


@pytest.mark.engine
@pytest.mark.slow
def test_cheap_e_of_v_fit_of_cubic_zro2_is_within_tolerance_of_experiment(tmp_path):
    """5 volumes at 45/360 Ry, k spacing 0.4 1/Å (6x6x6): about 1 min of CPU."""
    require_program("pw.x")
    block = TABLE["lattice"]
    exp = block["crystals"]["c-ZrO2"]["experiment"]
    s = pwscf.Settings(45, 360, kpoint_spacing_inv_angstrom=0.4, conv_thr_per_atom_ry=1e-9)
    res = pseudoval.lattice_constant("c-ZrO2", exp, s, tmp_path, n=5, span=0.06)
    assert abs(res["error_percent"]) <= block["tolerance_percent"], res
    assert 150 < res["b0_gpa"] < 350  # a fluorite oxide, not a fit artefact
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_broken_pseudo_yaml_is_one_line_and_exit_3(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "pseudo.yaml"
    bad.write_text("generated: [\n")
    with pytest.raises(InputError, match=r"pseudo.yaml: \(syntax\): line 2, column 1"):
        pseudogen.load_table(bad)
    bad.write_text("schema: pseudo/1\n")
    monkeypatch.setattr(pseudogen, "TABLE_FILE", bad)
    monkeypatch.setattr(pseudogen.load_table, "__defaults__", (bad,))
    assert pseudogen.main(["check"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "generated: missing" in err
