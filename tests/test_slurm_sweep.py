"""`bundle run --executor slurm` against the real one-node Slurm: a seed x temperature sweep
of a short cpu `llzo-gb` runs as job arrays and the aggregated report appears; a job
cancelled mid-run (`scancel`) is all that a second `bundle run` resubmits.

The study is the shipped llzo-gb with its MD cut to under a picosecond (and without the
check/report stages, which judge a full-length run against the cpu reference): real
bicrystal, real Buckingham + PPPM MD, real `bundle analyze`; numbers are not physics.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_CHECK_FAILED
from runbook import slurm
from runbook.sweep import plan as sweep_plan
from runbook.sweep import slurm as sweep_slurm
from tests.test_sweep_runs import tiny_sets, unmeetable_reference

pytestmark = [pytest.mark.engine, pytest.mark.slow]

runner = CliRunner()


def tiny_llzo(path: Path, seeds: list[int], temps: list[float], production_ps: float) -> Path:
    shipped = Path(__file__).resolve().parents[1] / "runbook" / "studies" / "llzo-gb.yaml"
    doc = yaml.safe_load(shipped.read_text())
    doc["name"] = "llzo-gb-tiny"
    # the boundary-only chain, built at a fixed translation and minimised briefly: this test
    # is about job arrays, not the relaxation (tests/test_llzo_relax.py)
    # (and the model stage: the classical profile's record of "no model", read by no stage)
    drop = ("model", "check", "report", "build_control", "relax_control",
            "equilibrate_control", "production_control")  # fmt: skip
    doc["stages"] = [s for s in doc["stages"] if s not in drop]
    for s in drop:
        del doc[s]
    for key in ("control_from", "control_build"):  # the control chain is dropped
        doc["analyze"].pop(key, None)
    doc["sweep"]["set"]["seed"] = [s for s in doc["sweep"]["set"]["seed"] if "control" not in s]
    doc["sweep"]["set"]["temperature"] = [
        s for s in doc["sweep"]["set"]["temperature"] if "control" not in s
    ]
    doc["build"].pop("scan")
    doc["build"]["gap_A"] = 1.0
    doc["relax"].update(reference=None, anneal_ps=0.0, maxiter=40, fmax_bound_eV_A=100.0)
    doc["sweep"].update(seeds=seeds, temperatures_K=temps, band_widths_A=[1.5, 2.0])
    doc["equilibrate"]["time_ps"] = 0.2
    for stage in ("production", "production_excess"):
        doc[stage].update(time_ps=production_ps, dump_every_ps=0.04)
    doc["analyze"]["avg_window_ps"] = 0.4
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def bundle_run(study: Path, run_dir: Path, *extra: str):
    args = ["run", str(study), "--run-dir", str(run_dir), "--executor", "slurm", *extra]
    return runner.invoke(app, args)


def manifests(run_dir: Path) -> dict[str, str]:
    """sha256 of every complete stage manifest under the run folder."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.glob("points/*/[0-9][0-9]_*/manifest.json"))
        if json.loads(p.read_text()).get("status") == "complete"
    }


def test_sweep_runs_as_job_arrays_and_the_report_appears(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    study = tiny_llzo(tmp_path / "tiny.yaml", [1, 2], [600.0, 700.0], production_ps=0.6)
    run = tmp_path / "run"
    r = bundle_run(study, run, "--wait")
    assert r.exit_code == 0, r.output
    report = run / "sweep" / "report" / "report.md"
    assert f"complete; report {report}" in r.output
    # one job array per stage over the 4 points, then the collect job
    rec = json.loads((run / "sweep" / "slurm" / "jobs.json").read_text())
    subs = rec["submissions"]
    assert [s["stage"] for s in subs][-1] == "collect"
    assert all(s["tasks"] == [0, 1, 2, 3] for s in subs[:-1])
    script = Path(subs[1]["script"]).read_text()
    assert "#SBATCH --array=0,1,2,3\n" in script
    assert f"#SBATCH --dependency=aftercorr:{subs[0]['job']}\n" in script
    assert (
        f"#SBATCH --dependency=afterok:{subs[-2]['job']}\n" in Path(subs[-1]["script"]).read_text()
    )
    comp = slurm_cluster.jobcomp.read_text()
    for s in subs[:-1]:
        done = [ln for ln in comp.splitlines() if f"ArrayJobId={s['job']} " in ln]
        assert len(done) == 4 and all("JobState=COMPLETED" in ln for ln in done), s["stage"]
    # the aggregated report: every (T, w), mean ± SE over 2 seeds, an Arrhenius fit of D
    doc = json.loads((run / "sweep" / "report" / "sweep.json").read_text())
    assert doc["temperatures_K"] == [600.0, 700.0] and doc["band_widths_A"] == [1.5, 2.0]
    assert len(doc["groups"]) == 4 and all(g["n_seeds"] == 2 for g in doc["groups"])
    for g in doc["groups"]:
        gamma = g["stats"]["gamma_within_w_per_nm2"]
        assert gamma["n"] == 2 and gamma["se"] is not None
    # Arrhenius of D: fitted where every temperature resolves D > 0, else the reason (the
    # relaxed cell's Li barely leave their cages in 0.6 ps: tests/test_slurm_sweep_report.py
    # checks the fit itself)
    fit = doc["arrhenius"]["D_all_cm2_s"]
    text = report.read_text()
    assert "Arrhenius" in text and "| 700 | 1.5 | 2 |" in text
    resolved = {g["T_K"] for g in doc["groups"] if (g["stats"]["D_all_cm2_s"]["mean"] or 0) > 0}
    if len(resolved) >= 2:
        assert fit is not None and fit["Ea_se_eV"] is not None
        assert (run / "sweep" / "report" / "arrhenius.png").stat().st_size > 0
    else:
        assert fit is None and "D_all_cm2_s: no fit (needs ≥ 2 temperatures with D > 0)" in text
    merged = json.loads((run / "sweep" / "report" / "T700K_w2" / "results.json").read_text())
    assert merged["schema"] == "gb-analysis/1" and len(merged["seeds"]["sources"]) == 2
    # a second run finds everything done and submits nothing
    r2 = bundle_run(study, run)
    assert r2.exit_code == 0 and "complete: every stage" in r2.output
    assert len(
        json.loads((run / "sweep" / "slurm" / "jobs.json").read_text())["submissions"]
    ) == len(subs)


def _wait(predicate, timeout: float, what: str, cluster) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{cluster.logs()}")


def test_scancel_then_rerun_resubmits_only_the_unfinished(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    study = tiny_llzo(tmp_path / "tiny.yaml", [1, 2], [700.0], production_ps=1.6)
    run = tmp_path / "run"
    r = bundle_run(study, run)
    assert r.exit_code == 0, r.output
    rec = json.loads((run / "sweep" / "slurm" / "jobs.json").read_text())
    first = {s["stage"]: s for s in rec["submissions"]}
    production = first["production"]["job"]

    def running_task():
        return next(
            (t for t in slurm.queue({production}) if t.state == "RUNNING" and t.task is not None),
            None,
        )

    victim = _wait(running_task, 240, "a running production task", slurm_cluster)
    point = first["production"]["points"][first["production"]["tasks"].index(victim.task)]
    slurm_cluster.run("scancel", f"{victim.job}_{victim.task}")
    # the cancelled task's later stages can never start (aftercorr), nor the collect job
    pl = sweep_plan.load_plan(run)
    _wait(lambda: not sweep_slurm.progress(pl).active, 240, "the queue to drain", slurm_cluster)
    states = sweep_slurm.progress(pl).stages
    assert states[point][:3] == ["complete"] * 3  # build, relax, equilibrate
    assert states[point][3] in ("incomplete", "pending")  # production: killed mid-run
    other = next(n for n in states if n != point)
    assert set(states[other]) == {"complete"}
    assert not (run / "sweep" / "report" / "report.md").exists()
    before = manifests(run)

    r = bundle_run(study, run, "--wait")
    assert r.exit_code == 0, r.output
    rec = json.loads((run / "sweep" / "slurm" / "jobs.json").read_text())
    again = rec["submissions"][len(first) :]
    index = first["production"]["points"].index(point)
    assert [s["stage"] for s in again] == [
        "production", "insert", "production_excess", "analyze", "collect"
    ]  # fmt: skip
    assert all(s["tasks"] == [index] and s["points"] == [point] for s in again[:-1])
    after = manifests(run)
    assert {k: after[k] for k in before} == before  # finished stages untouched
    assert len(after) == len(before) + 4  # the point's production .. analyze
    assert (run / "sweep" / "report" / "report.md").exists()


def test_a_failing_stage_is_named_with_its_log(slurm_cluster, tmp_path, monkeypatch):
    """--wait on a run whose insert stage cannot succeed (more Li than there is room for):
    exit 4, the message names the point and stage and where the logs are; the stages
    after it never ran (aftercorr, kill-on-invalid-dep)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    study = tiny_llzo(tmp_path / "tiny.yaml", [1], [700.0], production_ps=0.2)
    run = tmp_path / "run"
    r = bundle_run(study, run, "--wait", "--set", "insert.n=100000")
    assert r.exit_code == 4, r.output
    assert "seed1_T700K:insert" in r.output and "logs in" in r.output
    states = sweep_slurm.progress(sweep_plan.load_plan(run)).stages["seed1_T700K"]
    assert states[:4] == ["complete"] * 4 and states[4] == "failed"  # .. production; insert
    assert states[5:] == ["pending", "pending"]


def test_a_failing_check_of_the_shipped_sweep_exits_1_after_wait(
    slurm_cluster, tmp_path, monkeypatch
):
    """The shipped llzo-gb sweep (one seed, MD cut short) with its check stage given a
    reference no run meets: --wait sees the jobs end, the report lists the point's FAIL
    and `bundle run` exits 1 (the verdict of the check, not a failed job)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    ref = unmeetable_reference(tmp_path)
    run = tmp_path / "run"
    sets = tiny_sets("sweep.seeds=[1]", f"check.reference={ref}")
    r = runner.invoke(app, ["run", "llzo-gb", "--run-dir", str(run), "--executor", "slurm",
                            "--wait", *sets])  # fmt: skip
    assert r.exit_code == EXIT_CHECK_FAILED, r.output
    assert "seed1:check" in r.output and "FAILED" in r.output
    report = (run / "sweep" / "report" / "report.md").read_text()
    assert "| seed1 | check | FAIL |" in report
    # every stage completed: the check FAILed as a verdict, no job failed
    assert set(sweep_slurm.progress(sweep_plan.load_plan(run)).stages["seed1"]) == {"complete"}


def test_executor_bad_input_and_missing_slurm(tmp_path, monkeypatch):
    study = tiny_llzo(tmp_path / "tiny.yaml", [1], [700.0], production_ps=0.2)
    r = runner.invoke(app, ["run", str(study), "--executor", "pbs"])
    assert r.exit_code == 3 and "allowed: local, slurm" in r.output
    # partial runs of a sweep work (--point, --until; tests/test_sweep_local.py); redoing
    # stages (--from, --force) is for local runs
    r = bundle_run(study, tmp_path / "run", "--from", "build")
    assert r.exit_code == 3 and "not for slurm runs" in r.output
    r = bundle_run(study, tmp_path / "run", "--set", "sweep.seeds=[1,1]")
    assert r.exit_code == 3 and "sweep.seeds" in r.output
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    r = bundle_run(study, tmp_path / "run")
    assert r.exit_code == 5 and "sbatch" in r.output
