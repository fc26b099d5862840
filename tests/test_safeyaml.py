"""One bounded YAML reader (bundle.core.safeyaml) for every user and bundle YAML file.

The "billion laughs" reference (1 KB, 9^9 nodes once expanded) made `bundle check` grow
without limit; here it is one line, exit 3, in a process capped at +256 MiB."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundle.cli import app
from bundle.core.errors import EXIT_BAD_INPUT, InputError
from tests.bounded_cli import BoundedCli

ROOT = Path(__file__).resolve().parents[1]
LAUGHS = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9)
)


def bomb_reference(path: Path) -> Path:
    body = "\n".join("  " + line for line in LAUGHS.splitlines())
    path.write_text(
        "schema: gb-reference/1\nparameters:\n  w_A: 2.0\n  laughs:\n"
        + "\n".join("  " + line for line in body.splitlines())
        + "\nquantities:\n  n_frames: {value: 1, lower: 0, upper: 1, bounds: absolute, "
        'unit: "1"}\n'
    )
    return path


def test_billion_laughs_reference_is_one_line_exit_3_in_bounded_memory(tmp_path):
    ref = bomb_reference(tmp_path / "laughs.yaml")
    assert len(ref.read_bytes()) < 1024
    results = tmp_path / "results.json"
    results.write_text('{"schema": "gb-analysis/1", "n_frames": 1, "parameters": {"w_A": 2.0}}')
    with BoundedCli(limit_mb=256, timeout_s=120) as cli:
        warm = cli(
            "check", results, "--reference", ROOT / "checks/references/llzo-gb-700K-cpu.yaml"
        )
        assert warm["exception"] is None, warm
        t0 = time.perf_counter()
        r = cli("check", results, "--reference", ref, "--json", tmp_path / "report.json")
        took = time.perf_counter() - t0
    assert r["exception"] is None, r
    assert r["exit"] == EXIT_BAD_INPUT, r
    lines = r["stderr"].strip().splitlines()
    assert len(lines) == 1 and "laughs.yaml: (aliases): the document expands to more" in lines[0]
    assert took < 10 and not (tmp_path / "report.json").exists()


def _err(text: str) -> str:
    from bundle.core import safeyaml

    with pytest.raises(InputError) as e:
        safeyaml.loads(text, "x.yaml")
    return str(e.value)


def test_recursion_depth_tags_and_merge_bombs_are_refused_naming_the_file():
    assert "(aliases): line 1: an alias refers to a collection that contains it" in _err(
        "a: &a [1, *a]"
    )
    assert "(structure): line 1: nested deeper than 64 levels" in _err("[" * 65 + "]" * 65)
    assert "python/object" in _err("x: !!python/object/apply:os.system [ls]")
    merges = "m0: &m0 {k: 1}\n" + "".join(
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}\n" for i in range(1, 30)
    )
    assert "(aliases): the document expands to more than" in _err(merges)
    assert re.match(r"x\.yaml: \(syntax\): line 1, column \d+: ", _err("a: [1, 2"))


def test_ordinary_documents_load_as_before(tmp_path):
    from bundle.core import safeyaml

    doc = "base: &b {w: 2.0, dz: 0.5}\nrun: {<<: *b, w: 3.0}\nlist: [*b, *b]\nnan: .nan\n"
    got = safeyaml.loads(doc, "x.yaml")
    assert got["run"] == {"w": 3.0, "dz": 0.5} and got["list"] == [got["base"]] * 2
    assert got["nan"] != got["nan"]  # NaN loads; the reference loader refuses it
    assert safeyaml.loads("", "x.yaml") is None
    for shipped in sorted(ROOT.glob("*/references/*.yaml")) + [ROOT / "containers/stack.lock.yaml"]:
        assert safeyaml.load(shipped) is not None, shipped
    with pytest.raises(FileNotFoundError):
        safeyaml.load(tmp_path / "missing.yaml")
    (tmp_path / "big.yaml").write_bytes(b"#" * (safeyaml.MAX_BYTES + 1))
    with pytest.raises(InputError, match=r"big\.yaml: \(size\)"):
        safeyaml.load(tmp_path / "big.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"a: \xff\xfe")
    with pytest.raises(InputError, match=r"bin\.yaml: \(encoding\): not UTF-8"):
        safeyaml.load(tmp_path / "bin.yaml")


def test_core_io_readers_are_the_bounded_loader(tmp_path):
    """bundle.core.io (the one reader every module calls) parses YAML with safeyaml: the
    same refusals, the caller's `missing` and `fix` in the line."""
    from bundle.core import io

    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    with pytest.raises(InputError, match=r"laughs\.yaml: \(aliases\): the document expands"):
        io.read_mapping(tmp_path / "laughs.yaml")
    with pytest.raises(InputError, match=r"--set: \(structure\): line 1"):
        io.parse_yaml("[" * 65 + "]" * 65, "--set", "dft.x")
    with pytest.raises(InputError, match=r"--set: dft\.x: line 1, "):
        io.parse_yaml("[40,", "--set", "dft.x")
    (tmp_path / "bad.yaml").write_text("a: [1, 2")
    with pytest.raises(InputError, match=r"bad\.yaml: \(syntax\): line 1, .*; restore it"):
        io.read_yaml(tmp_path / "bad.yaml", fix="restore it")
    with pytest.raises(InputError, match=r"gone\.yaml: \(file\): no such table"):
        io.read_yaml(tmp_path / "gone.yaml", missing="no such table")


def test_no_yaml_is_read_around_the_safe_loader():
    """Every YAML read in the packages goes through bundle.core.safeyaml."""
    direct = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all)\(")
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for pkg in ("bundle", "checks", "runbook")
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if p.name != "safeyaml.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []


def test_malformed_set_yaml_is_one_line_exit_3_and_nothing_is_created(tmp_path):
    run_dir = tmp_path / "run"
    r = CliRunner().invoke(
        app, ["run", "smoke-li2o", "--set", "dft.ecutwfc=[40,", "--run-dir", str(run_dir)]
    )
    assert r.exit_code == EXIT_BAD_INPUT, (r.exit_code, r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set: dft.ecutwfc: line 1"), lines
    assert not run_dir.exists()
