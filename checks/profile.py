"""The profile metrics of METRICS.md (rho_bulk, rho_peak, rho_band, ratios, Γ) from a Li
density profile and the GB planes: one function, used for the whole analysis window
(checks.metrics) and for its blocks (checks.blocks)."""

from __future__ import annotations

import numpy as np

from bundle.core.errors import InputError

EPS_A = 1e-9  # Å: tolerance of the distance comparisons (see checks.metrics)
PER_A2_TO_PER_NM2 = 100.0
CLI = "command line"


def min_image(dz: np.ndarray, length: float | np.ndarray) -> np.ndarray:
    """|dz| under the minimum-image convention along a periodic axis of `length`."""
    return np.abs((dz + 0.5 * length) % length - 0.5 * length)


def profile_numbers(
    rho: np.ndarray, z: np.ndarray, lz: float, planes: list[float], w: float, d_bulk: float
) -> dict:
    """The profile metrics of METRICS.md from a density profile `rho` (Li/Å³) on bin
    centres `z` (Å) tiling a periodic box of height `lz`, given the GB planes."""
    dz = lz / len(rho)
    d = [min_image(z - zk, lz) for zk in planes]
    bulk = (d[0] >= d_bulk - EPS_A) & (d[1] >= d_bulk - EPS_A)
    if not bulk.any():
        raise InputError(
            CLI,
            "--d-bulk",
            f"no bin is {d_bulk} Å from both GB planes {planes[0]:.2f}, {planes[1]:.2f} "
            f"(Lz = {lz:.2f} Å)",
            f"use --d-bulk below {lz / 4:.2f} Å",
        )
    band = (d[0] <= w + EPS_A) | (d[1] <= w + EPS_A)
    if not band.any():
        raise InputError(
            CLI,
            "--w",
            f"no bin centre within w = {w} Å of a GB plane",
            f"use --w >= {dz / 2:.3f} (half the bin width)",
        )
    rho_bulk = float(rho[bulk].mean())
    rho_band = float(rho[band].mean())
    rho_peak = float(rho.max())
    gammas = []
    for k in (0, 1):
        near = (d[k] < d[1 - k]) & (d[k] < d_bulk - EPS_A)
        gammas.append(float((rho[near] - rho_bulk).sum() * dz * PER_A2_TO_PER_NM2))
    ratio = (lambda x: x / rho_bulk) if rho_bulk > 0 else (lambda x: None)
    return {
        "planes": planes,
        "rho_bulk": rho_bulk,
        "rho_peak": rho_peak,
        "rho_band": rho_band,
        "peak_ratio": ratio(rho_peak),
        "band_ratio": ratio(rho_band),
        "gammas": gammas,
    }
