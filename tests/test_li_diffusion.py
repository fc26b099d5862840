"""The li-diffusion study: the D fit, Arrhenius extrapolation and Nernst-Einstein numbers
(unit tests), the checks before a run, and the cpu profile end to end at toy length
(classical baseline, framework frozen: build -> md -> analyze -> check -> report)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from bundle.core.errors import InputError
from runbook import config, engine, files, loader, modelcard, stages
from runbook.lidiff import analysis
from runbook.sweep.stats import KB_EV_PER_K, Stat, arrhenius


def test_fit_diffusion_recovers_d_and_tells_diffusive_from_caged():
    t = np.linspace(0, 10, 101)
    rng = np.random.default_rng(0)
    msd = 6 * 0.25 * t + 0.3 + rng.normal(0, 0.05, t.size)  # D = 0.25 Å²/ps
    fit = analysis.fit_diffusion(t, msd, (0.1, 0.5))
    assert fit.D_cm2_s == pytest.approx(0.25e-4, rel=0.02)
    assert fit.t_lo_ps == pytest.approx(1.0) and fit.t_hi_ps == pytest.approx(5.0)
    assert 0.85 < fit.loglog_slope < 1.0  # the (cage) intercept bends it a little below 1
    caged = analysis.fit_diffusion(t, 2.0 * np.sqrt(t), (0.1, 0.5))
    assert caged.loglog_slope == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="fewer than 3 lags"):
        analysis.fit_diffusion(t[:4], msd[:4], (0.1, 0.5))


def test_arrhenius_extrapolation_uses_the_fit_covariance():
    temps = [700.0, 1000.0, 1300.0]
    ea, d0 = 0.3, 1e-3
    d = [d0 * math.exp(-ea / (KB_EV_PER_K * t)) for t in temps]
    stats = [Stat(x * f, 0.1 * x, 2) for x, f in zip(d, (1.05, 0.97, 1.02), strict=True)]
    fit = arrhenius(temps, stats)
    ln_d, se = analysis.ln_d_at(temps, stats, 300.0)
    assert ln_d == pytest.approx(fit.ln_D0 - fit.Ea_eV / (KB_EV_PER_K * 300.0))
    naive = math.hypot(fit.ln_D0_se, fit.Ea_se_eV / (KB_EV_PER_K * 300.0))
    assert 0 < se < naive + 1e-12  # ln D0 and Ea are correlated; the covariance counts it
    at_1000 = analysis.ln_d_at(temps, stats, 1000.0)[1]
    assert at_1000 < se  # interpolation is sharper than extrapolation


def test_nernst_einstein_number():
    n = 56 / 12.9682**3  # Li per Å³ in Li56La24Zr16O96
    sigma = analysis.nernst_einstein(n, 1e-5, 1000.0)
    # n e^2 D / (kB T): 2.568e22 cm^-3 * (1.602e-19 C)^2 * 1e-5 cm²/s / (1.381e-23 J/K * 1000 K)
    assert sigma == pytest.approx(0.4773, rel=1e-3)
    assert analysis.nernst_einstein(n, 1e-5, 1000.0, haven=0.5) == pytest.approx(2 * sigma)


def _study(tmp_path: Path, edit=None):
    path = config.resolve_path("li-diffusion")
    doc = yaml.safe_load(path.read_text())
    if edit:
        edit(doc)
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "li-diffusion.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    s = loader.load(out)
    ctx = engine.Context(s, tmp_path / "run")
    for name in s.stages:
        stages.build(s, name).preflight(ctx)
    return s


def test_shipped_study_passes_preflight(tmp_path):
    s = _study(tmp_path)
    assert s.stages == ["build", "md", "analyze", "check", "report"]


def _model(folder: Path, backend: str, type_names: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.pb").write_bytes(b"only the manifest is read before a run")
    card = modelcard.ModelManifest(
        backend=backend, units=modelcard.Units(**modelcard.DATA_UNITS),
        type_names=type_names, r_max_angstrom=5.0,
    )  # fmt: skip
    modelcard.write(folder / modelcard.FILENAME, card)
    return folder / "model.pb"


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"temperatures_K": [700]}, "md.temperatures_K", "at least 2"),
        ({"temperatures_K": [700, 700]}, "md.temperatures_K", "distinct"),
        ({"dump_every_ps": 2.0}, "md.dump_every_ps", "fewer than 10 frames"),
        ({"potential": "deepmd"}, "md.model", "needs a model"),
    ],
)
def test_bad_md_blocks_are_refused(tmp_path, change, field, words):
    with pytest.raises(InputError) as e:
        _study(tmp_path, lambda d: d["md"].update(change))
    assert e.value.field == field and words in str(e.value)


def test_a_model_of_other_species_or_backend_is_refused(tmp_path):
    li2o = _model(tmp_path / "li2o", "deepmd", ["Li", "O"])
    with pytest.raises(InputError, match="La.*does not know") as e:
        _study(tmp_path, lambda d: d["md"].update(potential="deepmd", model=str(li2o)))
    assert e.value.field == "md.type_map"
    llzo = _model(tmp_path / "llzo", "allegro", ["Li", "La", "Zr", "O"])
    with pytest.raises(InputError, match="allegro model, not deepmd"):
        _study(tmp_path, lambda d: d["md"].update(potential="deepmd", model=str(llzo)))


def test_a_deepmd_model_renders_pair_deepmd_and_needs_the_plugin_env(tmp_path):
    llzo = _model(tmp_path / "llzo", "deepmd", ["Li", "La", "Zr", "O"])
    s = _study(tmp_path, lambda d: d["md"].update(potential="deepmd", model=str(llzo)))
    engine.run(s, tmp_path / "run", until="build", echo=lambda line: None)  # the real cell
    out = tmp_path / "stage"
    out.mkdir()
    stages.build(s, "md").render(engine.Context(s, tmp_path / "run"), out)
    setup = (out / "runs" / "T700_s1" / "setup.lmp").read_text()
    assert f"pair_style      deepmd {llzo.resolve()}" in setup
    assert "pair_coeff      * * Li La Zr O" in setup and "Every atom is integrated" in setup
    cmds = files.read_commands(out)
    assert len(cmds) == 6 and all(c.needs == ("deepmd",) for c in cmds)


@pytest.mark.engine
@pytest.mark.slow
def test_cpu_profile_end_to_end(lammps_module, tmp_path):
    """The shipped study, cpu profile, as CI runs it: 3 temperatures x 2 seeds of the
    framework-frozen garnet with the classical baseline; D(T), Ea ± error, sigma(300 K),
    the reference check and the report."""
    s = loader.load("li-diffusion")
    summary = engine.run(s, tmp_path / "run", echo=print)
    assert summary.ran == s.stages
    r = json.loads((tmp_path / "run" / "03_analyze" / "results.json").read_text())
    temps = sorted(r["temperatures"].values(), key=lambda v: v["T_K"])
    for v in temps:
        assert v["D_cm2_s"] > 0 and v["D_se_cm2_s"] > 0 and v["n_seeds"] == 2
    assert temps[-1]["D_cm2_s"] > temps[0]["D_cm2_s"]  # hotter diffuses faster
    a = r["arrhenius"]
    assert a["Ea_eV"] > 0 and a["Ea_se_eV"] > 0 and len(a["used_K"]) >= 2
    c = r["conductivity"]
    assert c["T_K"] == 300.0 and c["extrapolated"] and c["haven_ratio"] == 1.0
    print("li-diffusion cpu:", {v["T_K"]: (v["D_cm2_s"], v["D_se_cm2_s"]) for v in temps},
          "Ea", a["Ea_eV"], "+-", a["Ea_se_eV"], "sigma(300 K)", c["sigma_S_cm"],
          "cost", r["md_cost"])  # fmt: skip
    for run in r["runs"]:
        assert abs(run["nve_drift_ev_per_li_ps"]) < 1e-3  # NVE at 2 fs holds
    check = json.loads((tmp_path / "run" / "04_check" / "check.json").read_text())
    assert check["status"] == "PASS", [c for c in check["checks"] if c["status"] != "PASS"]
    report = (tmp_path / "run" / "05_report" / "report.md").read_text()
    assert "Haven ratio H_R = 1 assumed" in report and "Ea =" in report
    assert (tmp_path / "run" / "05_report" / "arrhenius.png").stat().st_size > 5000
    # a profile with no reference of its own (local, h200) is NOT JUDGED, and says why
    why = loader.load("li-diffusion", profile="local").blocks["check"]["not_judged"]
    unjudged = loader.load("li-diffusion", ["check.reference=null",
                                            f"check.not_judged={json.dumps(why)}"])  # fmt: skip
    summary = engine.run(unjudged, tmp_path / "run", start="check", echo=print)
    assert summary.ran == ["check", "report"]
    report = (tmp_path / "run" / "05_report" / "report.md").read_text()
    assert f"**Reference check**: NOT JUDGED ({why})" in report


def test_the_reference_check_can_fail():
    """The cpu reference (bounds from 8 replicas' scatter) passes its own mean and fails a
    units slip (D x 10: Å²/ps read as 1e-3 cm²/s) and a run that does not diffuse."""
    from checks import reference

    ref = reference.load_reference("li-diffusion-cpu")
    judged = [q for q in ref.quantities if q.limits()]
    assert {q.key for q in judged} >= {"arrhenius.Ea_eV", "temperatures.T700.D_cm2_s"}

    def results(scale: float) -> dict:
        """Every quantity at the reference value, the D's multiplied by `scale`."""
        doc: dict = {"parameters": dict(ref.parameters)}
        for q in ref.quantities:
            *parents, last = q.key.split(".")
            node = doc
            for k in parents:
                node = node.setdefault(k, {})
            node[last] = q.value * (scale if last == "D_cm2_s" else 1.0)
        return doc

    def status(doc: dict) -> str:
        return reference.compare(doc, ref, results_path=Path("results.json"))["status"]

    assert status(results(1.0)) == "PASS"
    assert status(results(10.0)) == "FAIL"
    assert status(results(0.01)) == "FAIL"
    other = results(1.0)
    other["parameters"]["production_ps"] = 20.0
    with pytest.raises(InputError, match="production_ps"):
        status(other)


def test_a_temperature_not_yet_diffusive_is_flagged_and_left_out():
    def t(k: float, d: float, diffusive: bool) -> dict:
        return {"T_K": k, "D_cm2_s": d, "D_se_cm2_s": 0.1 * d, "n_seeds": 2,
                "diffusive": diffusive}  # fmt: skip

    temps = {"T600": t(600, 1e-9, False), "T900": t(900, 2e-6, True), "T1200": t(1200, 8e-6, True)}
    out = analysis.arrhenius_and_conductivity(temps, 0.0257, 300.0)
    assert out["arrhenius"]["used_K"] == [900, 1200] and out["arrhenius"]["excluded_K"] == [600]
    assert out["conductivity"]["extrapolated"] and out["conductivity"]["haven_ratio"] == 1.0
    temps["T900"]["diffusive"] = False
    out = analysis.arrhenius_and_conductivity(temps, 0.0257, 300.0)
    assert "fewer than 2 diffusive" in out["arrhenius"]["error"] and out["conductivity"] is None


def test_the_structure_is_an_input(tmp_path):
    """build.source names a LAMMPS data file instead of the garnet builder: the same cell
    written by the garnet build, read back and repeated by `supercell`."""
    s = _study(tmp_path / "a")
    engine.run(s, tmp_path / "a" / "run", until="build", echo=lambda line: None)
    cell = tmp_path / "a" / "run" / "01_build" / "cell.data"
    s = _study(tmp_path, lambda d: d["build"].update(source=str(cell), supercell=[2, 1, 1]))
    engine.run(s, tmp_path / "run", until="build", echo=lambda line: None)
    doc = json.loads((tmp_path / "run" / "01_build" / "cell.json").read_text())
    assert doc["counts"] == {"Li": 112, "La": 48, "Zr": 32, "O": 192}
    assert doc["source"] == str(cell) and doc["box_A"][0] == pytest.approx(2 * 12.9682)
    with pytest.raises(InputError, match="no such file"):
        _study(tmp_path / "b", lambda d: d["build"].update(source="/nonexistent/cell.data"))
