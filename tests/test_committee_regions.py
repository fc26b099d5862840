"""Trust levels per region (checks.deviation): GB planes, a band of half-width w around
each along a periodic z, atoms outside every band interior; and the out-of-domain verdict
(`left_domain`) that `bundle check` turns into a FAIL. Synthetic records only."""

from __future__ import annotations

import numpy as np
import pytest

from checks import deviation


def record(eps: list[list[float]], z: list[list[float]], lz: float | None = 20.0):
    eps_a, z_a = np.array(eps, float), np.array(z, float)
    f, n = eps_a.shape
    return deviation.DeviationRecord(
        step=np.arange(f, dtype=np.int64), time_ps=np.arange(f) * 0.01,
        ids=np.arange(1, n + 1, dtype=np.int32), types=np.zeros(n, np.uint8),
        type_names=["Li"], z=z_a.astype(np.float32), eps=eps_a.astype(np.float32),
        frame_max=eps_a.max(1), frame_min=eps_a.min(1), frame_mean=eps_a.mean(1),
        box_z=None if lz is None else np.tile([0.0, lz], (f, 1)), n_models=3, source="test",
    )  # fmt: skip


def test_band_mask_is_periodic_and_covers_every_plane():
    z = np.array([0.5, 19.6, 10.0, 7.9, 8.1, 15.0])
    # planes at 0 and 10, w = 0.5: 19.6 is 0.4 from 0 across the boundary; 10.0 on a plane
    got = deviation.band_mask(z, [0.0, 10.0], 0.5, 20.0)
    assert got.tolist() == [True, True, True, False, False, False]
    # a wider band takes 8.1 (1.9 from 10) but not 7.9 (2.1)
    assert deviation.band_mask(z, [0.0, 10.0], 2.0, 20.0).tolist()[3:5] == [False, True]
    # one length per frame: the same z is in the band of a 20 Å box, not of a 30 Å box
    two = deviation.band_mask(np.array([[19.6], [19.6]]), [0.0], 0.5, np.array([20.0, 30.0]))
    assert two[:, 0].tolist() == [True, False]
    with pytest.raises(ValueError, match="> 0"):
        deviation.band_mask(z, [0.0], 0.5, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        deviation.band_mask(z, [0.0], -1.0, 20.0)


def test_region_fractions_boundary_vs_interior():
    lo, hi = 0.05, 0.15
    # atoms 0, 1 near the plane at z = 5 (w = 1), atoms 2, 3 in the grain interior
    rec = record(
        eps=[[0.20, 0.10, 0.01, 0.02], [0.10, 0.04, 0.03, 0.16]],
        z=[[5.5, 4.2, 12.0, 15.0], [5.0, 6.0, 11.0, 0.5]],
    )
    out = deviation.trust_levels(rec, lo, hi, planes_z=[5.0], half_width=1.0)
    band, inner = out["regions"]["boundary"], out["regions"]["interior"]
    # boundary atom-frames: 0.20 failed, 0.10 candidate, 0.10 candidate, 0.04 accurate
    assert band["atom_frames"] == {"accurate": 0.25, "candidate": 0.5, "failed": 0.25, "n": 4}
    # interior: 0.01, 0.02, 0.03 accurate; 0.16 failed
    assert inner["atom_frames"] == {"accurate": 0.75, "candidate": 0.0, "failed": 0.25, "n": 4}
    # per frame, each region's own maximum: band 0.20 failed, 0.10 candidate
    assert band["frames"] == {"accurate": 0.0, "candidate": 0.5, "failed": 0.5, "n": 2}
    assert inner["frames"] == {"accurate": 0.5, "candidate": 0.0, "failed": 0.5, "n": 2}
    assert out["band"] == {"planes_z_a": [5.0], "half_width_a": 1.0}
    # a record without its box takes the periodic length from the caller
    nobox = record(eps=[[0.2, 0.01]], z=[[19.8, 10.0]], lz=None)
    with pytest.raises(ValueError, match="no z / box"):
        deviation.trust_levels(nobox, lo, hi, planes_z=[0.0], half_width=0.5)
    r = deviation.trust_levels(nobox, lo, hi, planes_z=[0.0], half_width=0.5, lz=20.0)
    assert r["regions"]["boundary"]["atom_frames"]["failed"] == 1.0
    assert r["regions"]["interior"]["atom_frames"]["accurate"] == 1.0


def test_a_frame_without_band_atoms_is_not_counted_for_the_band():
    rec = record(eps=[[0.01, 0.2], [0.3, 0.01]], z=[[5.0, 12.0], [12.0, 12.0]])
    band = deviation.trust_levels(rec, 0.05, 0.15, planes_z=[5.0], half_width=1.0)
    assert band["regions"]["boundary"]["frames"]["n"] == 1  # frame 1 has no band atom
    assert band["regions"]["interior"]["atom_frames"]["n"] == 3


def test_left_domain_names_the_region_and_fraction():
    rec = record(
        eps=[[0.20, 0.30, 0.01, 0.02], [0.01, 0.02, 0.03, 0.04]],
        z=[[5.0, 5.2, 12.0, 15.0], [5.0, 5.2, 12.0, 15.0]],
    )
    out = deviation.trust_levels(rec, 0.05, 0.15, planes_z=[5.0], half_width=1.0)
    why = deviation.left_domain(out, tolerance=0.10)
    assert why is not None and "boundary atom-frames: 50.0% failed" in why
    assert "interior" not in why and "\n" not in why
    assert deviation.left_domain(out, tolerance=0.5) is None  # 50 % is not above 50 %
    # without a per-atom record the frames decide
    out = {"hi_ev_a": 0.15, "frames": {"accurate": 0.5, "candidate": 0.0, "failed": 0.5}}
    assert "frames: 50.0% failed" in deviation.left_domain(out, 0.1)
