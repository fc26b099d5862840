"""The stack lock's schema: an unknown key, a missing or malformed version is refused
with one line naming the file and the key; the lock hash follows every pin."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bundle import images
from bundle.cli import app
from bundle.core import lock, paths
from bundle.core.errors import EXIT_BAD_INPUT, InputError


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(paths.lock_file().read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "stack.lock.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _edit(doc: dict, dotted: str, value=None, delete: bool = False) -> dict:
    data = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = data
    for k in parents:
        node = node[k]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


def test_the_shipped_lock_is_valid():
    m = lock.model()
    assert set(lock.FLAVORS) == {"cpu", "h200"}
    assert m.flavors.h200.gpu.kokkos_arch == "HOPPER90"
    assert lock.load()["host"]["mpirun"] == m.host.mpirun  # plain-data view for older callers


@pytest.mark.parametrize(
    "dotted",
    ["imagez", "flavors.cpu.os.mirrors", "flavors.h200.lammps.tag", "flavors.gpu"],
)
def test_an_unknown_key_is_refused_by_name(tmp_path, doc, dotted):
    p = _write(tmp_path, _edit(doc, dotted, "x"))
    with pytest.raises(InputError) as e:
        lock.model(p)
    assert e.value.field == dotted and "unknown key" in e.value.problem
    assert str(p) in str(e.value)


@pytest.mark.parametrize(
    "dotted",
    [
        "flavors.h200.cuda.toolkit",
        "flavors.h200.cuda.min_driver",
        "flavors.h200.pytorch.version",
        "flavors.h200.lammps.ref",
        "flavors.h200.pair_nequip_allegro.ref",
        "flavors.h200.qe.version",
        "flavors.h200.openmpi.sha256",
        "flavors.cpu.os.suite",
        "python",
    ],
)
def test_a_missing_version_is_refused_by_name(tmp_path, doc, dotted):
    with pytest.raises(InputError) as e:
        lock.model(_write(tmp_path, _edit(doc, dotted, delete=True)))
    assert e.value.field == dotted and e.value.problem.startswith("missing")


@pytest.mark.parametrize(
    "dotted,value,problem",
    [
        ("python_packages.nequip", None, "no version given"),
        ("flavors.h200.ucx.version", "", "no version given"),
        ("flavors.cpu.debian.pinned.quantum-espresso", None, "no version given"),
        ("flavors.h200.qe.version", 7.5, "is not a string"),  # YAML 7.5: a float, not "7.5"
        ("flavors.h200.pair_nequip_allegro.ref", "main", "not a full git commit SHA"),
        ("flavors.h200.openmpi.sha256", "abc", "not a SHA-256"),
    ],
)
def test_a_malformed_version_is_refused_by_name(tmp_path, doc, dotted, value, problem):
    with pytest.raises(InputError) as e:
        lock.model(_write(tmp_path, _edit(doc, dotted, value)))
    assert e.value.field == dotted and problem in e.value.problem


def test_the_cpu_python_must_be_the_python_lock_s(tmp_path, doc):
    with pytest.raises(InputError) as e:
        lock.model(_write(tmp_path, _edit(doc, "flavors.cpu.python", "3.12")))
    assert e.value.field == "flavors.cpu.python"


def test_cli_refuses_a_bad_lock_with_exit_3_and_the_key(tmp_path, doc, monkeypatch):
    root = tmp_path / "root"
    (root / "containers").mkdir(parents=True)
    _write(root / "containers", _edit(doc, "flavors.h200.cuda.toolkit", delete=True))
    monkeypatch.setenv("MLMD_BUNDLE_ROOT", str(root))
    r = CliRunner().invoke(app, ["images", "render", "--flavor", "h200"])
    assert r.exit_code == EXIT_BAD_INPUT
    assert "flavors.h200.cuda.toolkit: missing" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_one_changed_pin_changes_the_lock_hash_and_the_expected_label(tmp_path):
    original = paths.lock_file().read_text()
    changed = tmp_path / "stack.lock.yaml"
    changed.write_text(original.replace("nequip: 0.19.1", "nequip: 0.19.2", 1))
    assert changed.read_text() != original
    assert lock.lock_hash(changed) != lock.lock_hash()
    ns = lock.model().images.label_namespace
    old = images.expected_labels("cpu")[f"{ns}.lock-sha256"]
    new = images.expected_labels("cpu", changed)[f"{ns}.lock-sha256"]
    assert old == lock.lock_hash() and new == lock.lock_hash(changed) and old != new


def test_flavor_wheel_lists_come_from_the_python_lock():
    """No version is repeated: both flavors point at containers/requirements.lock.txt,
    and h200's exclusions name packages that the Python lock really has."""
    m = lock.model()
    req = paths.containers_dir() / m.flavors.cpu.wheels.requirements
    names = {ln.split("==")[0].lower() for ln in req.read_text().splitlines() if "==" in ln}
    assert m.flavors.h200.wheels.requirements == m.flavors.cpu.wheels.requirements
    for name in m.flavors.h200.wheels.exclude:
        assert name.lower() in names
    assert f"torch=={m.python_packages['torch']}" in req.read_text()
