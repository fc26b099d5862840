"""The llzo-gb study, cpu profile (the issue-12 protocol: translation scan, relaxed and
annealed Al-doped boundary, boundary-free control), end to end through `bundle run`, and
the proof that `bundle check` against the CPU reference discriminates:

- a seed that is not among the reference's replicas PASSES;
- the same seed with every MD stage at 500 K is refused by the reference's temperature
  parameter, and its results, when they claim 700 K (a thermostat that did not hold its
  target), FAIL on the judged 1-ps MSD: the cage rattling scales with T.
Measured when the reference was made (made_by.discrimination, runbook.llzo.mkref): a run
at 600 K FAILs with population probability 0.95, at 500 K 1.0; Li-O x 1.1 0.03 and x 1.5
0.26: in the relaxed, framework-frozen protocol no Li hops in 20 ps at 700 K (D is not
resolved, see the reference's not_judged), so a potential change shows only through the
rattling and the Li partition. 500 K is the robust probe.

Both runs come from the session fixture `llzo_gb_runs` (tests/llzo_fixture.py: the
translation scan, builds and relaxations once, then the two MD chains side by side); the
700 K run produces a report with the control and boundary profiles.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml

from bundle.core import engines
from checks.reference import load_reference
from runbook.llzo import mkref
from tests.llzo_fixture import COLD_K, NEW_SEED

MD_STAGES = ("equilibrate", "production", "production_excess", "equilibrate_control",
             "production_control")  # fmt: skip


def _stage(run: Path, name: str) -> Path:
    (d,) = run.glob(f"[0-9][0-9]_{name}")
    return d


def _check(run: Path) -> dict:
    return json.loads((_stage(run, "check") / "check.json").read_text())


@pytest.mark.slow
@pytest.mark.engine
def test_new_seed_passes_the_cpu_reference(llzo_gb_runs):
    r = llzo_gb_runs["new_seed"]
    assert r["code"] == 0, r["log"][-2000:]
    rep = _check(r["dir"])
    assert rep["status"] == "PASS" and rep["reference"]["name"] == "llzo-gb-700K-cpu"
    ref = load_reference("llzo-gb-700K-cpu")
    assert NEW_SEED not in {int(s.removeprefix("seed")) for s in _replicas(ref)}
    judged = [c for c in rep["checks"] if c["status"] != "NOT-JUDGED"]
    assert {c["quantity"] for c in judged} == {q.key for q in ref.quantities if q.limits()}
    assert len(judged) >= 4 and all(c["status"] == "PASS" for c in judged)


@pytest.mark.slow
@pytest.mark.engine
def test_a_run_at_another_temperature_is_refused_and_fails_when_it_claims_700K(
    llzo_gb_runs, tmp_path
):
    r = llzo_gb_runs["cold"]
    assert r["code"] != 0, r["log"][-2000:]  # the check stage is refused: not a verdict
    log = (_stage(r["dir"], "check") / "check.log").read_text()
    assert "temperature_K = 500.0" in log and "700.0" in log, log
    res = _results(r["dir"])
    res["parameters"]["temperature_K"] = 700.0  # a thermostat that missed its target
    claimed = tmp_path / "claims-700K.json"
    claimed.write_text(json.dumps(res))
    out = tmp_path / "check.json"
    argv = [engines.venv_bin("bundle"), "check", str(claimed), "--reference",
            "llzo-gb-700K-cpu", "--json", str(out)]  # fmt: skip
    p = subprocess.run(argv, capture_output=True, text=True)
    assert p.returncode == 1, p.stdout + p.stderr
    rep = json.loads(out.read_text())
    failed = {c["quantity"] for c in rep["checks"] if c["status"] == "FAIL"}
    assert "diffusion_gls.msd_short_A2.all" in failed, failed
    msd = lambda run: _results(run)["diffusion_gls"]["msd_short_A2"]["all"]  # noqa: E731
    assert msd(r["dir"]) < 0.85 * msd(llzo_gb_runs["new_seed"]["dir"])  # colder: tighter rattling
    _assert_thermostat_held(r["dir"], "production", COLD_K, _results(r["dir"])["n_li_total"])


@pytest.mark.slow
@pytest.mark.engine
def test_cpu_study_report_shows_the_li_profile(llzo_gb_runs):
    run = llzo_gb_runs["new_seed"]["dir"]
    rep = _stage(run, "report")
    text = (rep / "report.md").read_text()
    assert "![li_profile.png](li_profile.png)" in text and (rep / "li_profile.png").stat().st_size
    assert "| Γ |" in text and "bundle check against llzo-gb-700K-cpu: PASS" in text
    assert "## What this run shows" in text and "control" in text
    res = _results(run)
    assert res["reference_runs"]["control_table"], "the control sits beside the boundary"
    assert res["n_excess"] == 24 and res["excess"] is not None
    assert res["profile"]["rho_li_per_A3"] and res["rho_peak_per_A3"] > res["rho_bulk_per_A3"]
    for name in MD_STAGES:
        _assert_thermostat_held(run, name, 700.0, res["n_li_total"])
    total = sum(
        json.loads((d / "manifest.json").read_text())["wall_s"] for d in run.glob("[0-9][0-9]_*")
    )
    print(f"\nllzo-gb cpu study, one seed: {total:.0f} s of stage wall time")


def _assert_thermostat_held(run: Path, stage: str, target_K: float, n_li: int) -> None:
    """The mean of the thermo samples (one per `thermo_every` = 500 steps, ~independent)
    within 5 canonical standard errors of the target: sigma_T = T sqrt(2 / (3 N_Li)) for
    the N_Li integrated atoms (the framework is frozen)."""
    md = json.loads((_stage(run, stage) / "manifest.json").read_text())["result"]["md"]
    n_samples = md["steps"] // 500 + 1
    bound = 5 * target_K * math.sqrt(2 / (3 * n_li)) / math.sqrt(n_samples)
    assert abs(md["temperature_mean_K"] - target_K) < bound, (stage, md, bound)


def _results(run: Path) -> dict:
    return json.loads((_stage(run, "analyze") / "results.json").read_text())


def _replicas(ref) -> list[str]:
    doc = yaml.safe_load(ref.file.read_text())
    return doc["made_by"]["replicas"]


def test_cpu_reference_records_how_it_was_made():
    ref = load_reference("llzo-gb-700K-cpu")
    doc = yaml.safe_load(ref.file.read_text())
    made = doc["made_by"]
    assert len(made["replicas"]) >= 5 and made["bundle_version"] and made["date_utc"]
    assert "bundle run" in made["command"] and "llzo-gb" in made["command"]
    assert ref.parameters["w_A"] == 2.0 and ref.parameters["timestep_fs"] == 2.0
    assert ref.parameters["temperature_K"] == 700.0
    judged = [q for q in ref.quantities if q.limits()]
    candidates = {j.key for j in mkref.JUDGED}
    assert {q.key for q in judged} | set(made.get("not_judged", {})) == candidates
    assert len(judged) >= 4
    for q in judged:  # bounds from the seed spread: never zero
        assert q.lower > 0 and q.upper > 0, q.key
    fw = made["family_wise"]
    assert 0 < fw["alpha_fw"] <= 0.05 and fw["bootstrap_rate"]["value"] <= 2 * fw["alpha_fw"]
    probes = made["discrimination"]
    assert {"600K", "li_o_x1.1"} <= set(probes), "the 100 K and Li-O x 1.1 probes are recorded"
    assert probes["600K"]["p_fail"] > 0.5  # 100 K off: FAILs more often than not
