"""The cpu image, built for real with the docker SDK (session fixture `cpu_image`),
then used without network: Quantum ESPRESSO, NequIP/Allegro and LAMMPS all run in it.
Also: cache hits on an unchanged rebuild, labels against the lock, save/load/inspect."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from bundle import images
from bundle.cli import app
from bundle.core import lock, paths
from bundle.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_MISSING
from bundle.images import daemon
from tests.conftest import cpu_tag_held

pytestmark = [pytest.mark.engine]
runner = CliRunner()
LOCK_IN_TREE = "containers/stack.lock.yaml"


@pytest.fixture(scope="module")
def offline(cpu_image, docker_engine, tmp_path_factory):
    """One container of the cpu image with --network none and a work folder at /work;
    each check is an `exec` in it (on vfs every new container copies the whole image)."""
    work = tmp_path_factory.mktemp("offline-work")
    work.chmod(0o777)
    c = docker_engine.containers.run(
        cpu_image.image_id,  # not the tag: another session may build and move it meanwhile
        ["sleep", "infinity"],
        detach=True,
        network_mode="none",
        volumes={str(work): {"bind": "/work", "mode": "rw"}},
        working_dir="/work",
    )
    try:

        def run(cmd: str, workdir: str = "/work") -> tuple[int, str]:
            code, out = c.exec_run(["sh", "-c", cmd], workdir=workdir)
            return code, out.decode(errors="replace")

        yield work, run
    finally:
        c.remove(force=True)


@pytest.mark.slow
def test_the_image_has_no_network(offline):
    _, run = offline
    code, out = run("ls /sys/class/net")
    assert code == 0 and out.split() == ["lo"]
    code, out = run(
        "python -c \"import socket; socket.create_connection(('deb.debian.org', 80), 5)\""
    )
    assert code != 0 and ("gaierror" in out or "unreachable" in out), out


@pytest.mark.slow
def test_pw_x_scf_of_a_12_atom_li2o_cell_offline_matches_the_stored_reference(offline):
    """The engines reference of `bundle verify`: rattled 12-atom Li2O, PBEsol USPP from
    the image's own /usr/share/espresso/pseudo, one MPI rank via the image's mpirun."""
    work, run = offline
    ref = yaml.safe_load((paths.root() / "bundle/references/engines.yaml").read_text())["qe_scf"]
    shutil.copy(paths.root() / "bundle/references" / ref["input"], work / "li2o.pw.in")
    (work / "li2o.pw.in").chmod(0o644)
    code, out = run(
        "mkdir -p qe && cd qe && ln -sfn /usr/share/espresso/pseudo pseudo && "
        "mpirun -np 1 pw.x -in ../li2o.pw.in > pw.out 2>&1; echo rc=$?"
    )
    text = (work / "qe" / "pw.out").read_text()
    assert "rc=0" in out, text[-2000:]
    assert "convergence has been achieved" in text
    assert "Program PWSCF v.6.7" in text
    energy = float(re.search(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.M).group(1))
    want = ref["energy_ry"]
    assert abs(energy - want["value"]) <= want["tolerance"]["cpu"], (energy, want["value"])
    assert re.search(r"Number of MPI processes:\s+1\b|running on\s+1 processors", text)


@pytest.mark.slow
def test_nequip_and_allegro_import_offline_at_the_locked_versions(offline):
    _, run = offline
    code, out = run(
        'python -c "import json, importlib.metadata as m, nequip, allegro, torch; '
        "print(json.dumps({p: m.version(p) for p in ('nequip', 'nequip-allegro', 'torch')}))\""
    )
    assert code == 0, out
    got = json.loads(out.strip().splitlines()[-1])
    pins = lock.python_pins()
    assert got == {p: pins[p] for p in ("nequip", "nequip-allegro", "torch")}


LJ_INPUT = """\
units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 1.44 87287 loop geom
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
neighbor 0.3 bin
fix 1 all nve
thermo_style custom step temp pe etotal
thermo 50
run 200
"""


@pytest.mark.slow
def test_a_short_lammps_run_offline_conserves_energy(offline):
    work, run = offline
    (work / "in.lj").write_text(LJ_INPUT)
    code, out = run("lmp -in in.lj -log lj.log -screen none; echo rc=$?")
    log = (work / "lj.log").read_text()
    assert "rc=0" in out, log[-2000:]
    assert "Loop time of" in log and "256 atoms" in log
    rows = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", log, re.M)
    etot = [float(r[3]) for r in rows]
    assert [int(r[0]) for r in rows] == list(range(0, 201, 50))
    assert max(etot) - min(etot) < 1e-2 * abs(etot[0])  # NVE, dt 0.005: drift < 1 %


@pytest.mark.slow
def test_labels_and_versions_manifest_match_the_lock(cpu_image, offline):
    ns = lock.model().images.label_namespace
    at_revision = subprocess.run(
        [
            "git",
            "-C",
            str(paths.root()),
            "show",
            f"{cpu_image.revision}:containers/stack.lock.yaml",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert cpu_image.labels[f"{ns}.lock-sha256"] == hashlib.sha256(at_revision).hexdigest()
    assert cpu_image.labels["org.opencontainers.image.revision"] == cpu_image.revision
    assert cpu_image.labels[f"{ns}.flavor"] == "cpu"
    beside = json.loads(cpu_image.manifest_path.read_text())
    _, run = offline
    code, out = run(f"cat {images.MANIFEST_PATH}")
    assert code == 0, out
    inside = json.loads(out)
    assert beside == inside
    assert inside["schema"] == images.MANIFEST_SCHEMA and inside["flavor"] == "cpu"
    stack = lock.model()
    for pkg, ver in stack.flavors.cpu.debian.pinned.items():
        assert inside["debian"][pkg] == ver
    assert len(inside["debian"]) > 100  # every Debian package, not just the pinned ones
    wheels = {k.lower(): v for k, v in inside["wheels"].items()}
    req = paths.containers_dir() / stack.flavors.cpu.wheels.requirements
    for line in req.read_text().splitlines():
        if "==" in line:
            name, ver = line.split("==")
            assert wheels.get(name.lower().replace("_", "-"), wheels.get(name.lower())) == ver
    assert wheels["mlmd-bundle"]
    assert inside["lock_sha256"] == cpu_image.labels[f"{ns}.lock-sha256"]


@pytest.mark.slow
def test_an_unchanged_rebuild_is_served_from_the_cache(
    cpu_image, docker_engine, tmp_path, tmp_path_factory
):
    with cpu_tag_held(tmp_path_factory):  # the rebuild moves the tag (onto the same image)
        again = images.build(
            "cpu", client=docker_engine, out_dir=tmp_path, ref=cpu_image.revision,
            log=lambda _: None,
        )  # fmt: skip
    assert again.image_id == cpu_image.image_id
    assert again.fully_cached, "\n".join(again.log)
    assert again.cached == again.steps - again.froms > 5
    # its wall time is a measurement (make bench), not a test: under load it exceeded the
    # 120 s this test once asserted, with every step served from the cache
    print(f"fully cached rebuild: {again.seconds:.0f} s")


@pytest.fixture(scope="module")
def relabelled(docker_engine, tmp_path_factory):
    """A tiny image (the debootstrap base + labels) labelled from a copy of the lock with
    one pin changed: the label logic of a rebuild, without rebuilding 2 GB."""
    tmp = tmp_path_factory.mktemp("relabel")
    changed = tmp / "stack.lock.yaml"
    changed.write_text(paths.lock_file().read_text().replace("nequip: 0.19.1", "nequip: 0.19.2"))
    labels = images.expected_labels("cpu", changed)
    base = images.ensure_base(docker_engine, lock.model(), log=lambda _: None)
    dockerfile = f"FROM {base}\nLABEL " + " ".join(f'{k}="{v}"' for k, v in labels.items())
    tag = "mlmd-bundle-test:relabelled"
    docker_engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag, changed
    docker_engine.images.remove(tag, force=True)


def test_a_changed_pin_gives_a_new_lock_hash_label(relabelled):
    tag, changed = relabelled
    labels = images.labels_of(tag)
    ns = lock.model().images.label_namespace
    assert labels[f"{ns}.lock-sha256"] == lock.lock_hash(changed) != lock.lock_hash()
    assert all(c.ok for c in images.inspect(tag, lock_path=changed))
    r = runner.invoke(app, ["images", "inspect", tag])
    assert r.exit_code == EXIT_CHECK_FAILED
    assert f"FAIL  {ns}.lock-sha256" in r.output
    assert runner.invoke(app, ["images", "inspect", tag, "--lock", str(changed)]).exit_code == 0


def test_save_load_inspect_round_trip(relabelled, docker_engine, tmp_path):
    tag, changed = relabelled
    tar = tmp_path / "relabelled.tar"
    r = runner.invoke(app, ["images", "save", tag, "--out", str(tar)])
    assert r.exit_code == 0, r.output
    # the archive is inspected without the engine: labels straight from its config
    assert images.archive_labels(tar) == images.labels_of(tag)
    r = runner.invoke(app, ["images", "inspect", str(tar), "--lock", str(changed), "--json"])
    assert r.exit_code == 0 and all(row["ok"] for row in json.loads(r.output))
    image_id = docker_engine.images.get(tag).id
    docker_engine.images.remove(tag, force=True)
    r = runner.invoke(app, ["images", "load", str(tar)])
    assert r.exit_code == 0 and tag in r.output
    assert docker_engine.images.get(tag).id == image_id


def test_an_image_saved_by_one_of_its_tags_is_named_by_that_tag(
    relabelled, docker_engine, tmp_path
):
    """`docker save` by the SDK's named=True keeps the image's first tag; a bundle that
    asked for another would install an image it then cannot find by name."""
    import tarfile

    tag, _ = relabelled
    other = "mlmd-bundle-test:another-name"
    docker_engine.images.get(tag).tag(other)
    try:
        for ref in (tag, other):
            tar = images.save(ref, tmp_path / "named.tar")
            with tarfile.open(tar) as t:
                manifest = json.load(t.extractfile("manifest.json"))
            assert manifest[0]["RepoTags"] == [ref]
    finally:
        docker_engine.images.remove(other)


def test_inspect_of_a_missing_archive_is_bad_input(tmp_path):
    r = runner.invoke(app, ["images", "inspect", str(tmp_path / "nope.tar")])
    assert r.exit_code == EXIT_BAD_INPUT


def test_apptainer_conversion_or_a_clear_absence(relabelled, tmp_path):
    tag, _ = relabelled
    tar = images.save(tag, tmp_path / "img.tar")
    r = runner.invoke(app, ["images", "apptainer", str(tar), "--out", str(tmp_path / "img.sif")])
    if shutil.which("apptainer") or shutil.which("singularity"):
        assert r.exit_code == 0 and (tmp_path / "img.sif").stat().st_size > 0
    else:
        assert r.exit_code == EXIT_MISSING
        assert "apptainer is not installed" in r.output and "docker-archive://" in r.output


def test_no_docker_engine_is_a_missing_component(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    r = runner.invoke(app, ["images", "build", "--flavor", "cpu"])
    assert r.exit_code == EXIT_MISSING
    assert "no Docker engine answers" in r.output


def test_a_superseded_image_is_removed_only_when_nothing_names_it(docker_engine):
    """Rebuilding under the same tag leaves the old image dangling (a full copy on vfs):
    it goes, unless another tag names it or the build still uses it as its cache; the
    dangling leftovers from our base are found by its label."""
    base = images.ensure_base(docker_engine, lock.model(), log=lambda _: None)
    ns = lock.model().images.label_namespace
    tag, keep = "mlmd-bundle-test:superseded", "mlmd-bundle-test:superseded-kept"

    def tiny(label: str) -> str:
        dockerfile = f'FROM {base}\nLABEL test.generation="{label}"'
        img, _ = docker_engine.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True
        )
        return img.id

    said = []
    try:
        first = tiny("1")
        second = tiny("2")  # `tag` moves: the first image is dangling now
        assert first in daemon._stale_stages(docker_engine, ns, "9999-12-31T00:00:00")
        assert first not in daemon._stale_stages(docker_engine, ns, "2000-01-01T00:00:00")
        assert images.remove_superseded(docker_engine, [first], [first[:19]], said.append) == 0
        assert images.remove_superseded(docker_engine, [first], [], said.append) == 1
        assert said == [f"removed superseded image {first[:19]}"]
        assert daemon._image_or_none(docker_engine, first) is None
        docker_engine.images.get(second).tag(keep)
        third = tiny("3")  # `tag` moves again, but `keep` still names the second image
        assert images.remove_superseded(docker_engine, [second, third], [], said.append) == 0
        assert docker_engine.images.get(keep).id == second
        assert docker_engine.images.get(tag).id == third and len(said) == 1
    finally:
        for ref in (tag, keep):
            if daemon._image_or_none(docker_engine, ref) is not None:
                docker_engine.images.remove(ref, force=True)
