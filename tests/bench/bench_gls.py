"""Benchmark `gls`: how often the 95 % interval of D (checks.diffusion, GLS with the MSD
covariance) holds the true D of synthetic random walks, against OLS with its residual
standard error, over BENCH_GLS_REPS replicas (default 1000) per configuration:

- plain: 40 walkers x 100 frames, every origin;
- noise: the same plus white noise of 0.4 Å per axis (a cage rattle, MSD intercept 0.96 Å²);
- region: origins only where sin(z / 3 Å) > 0 (a region-of-origin selection, as gb_start);
- long: 80 walkers x 300 frames (fit window 10-50 % as in checks.metrics).

Figures per configuration and component (xyz, xy, z): coverage, the standard deviation of
(D - D_true) / SE (1 when the SE is right), OLS-naive coverage, CPU seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from checks.diffusion import coverage

REPS = int(os.environ.get("BENCH_GLS_REPS", 1000))
CONFIGS = {
    "plain": {"n_frames": 100, "n_atoms": 40},
    "noise": {"n_frames": 100, "n_atoms": 40, "noise_A": 0.4},
    "region": {"n_frames": 100, "n_atoms": 40, "half_origins": True},
    "long": {"n_frames": 300, "n_atoms": 80},
}


def run(work: Path) -> dict:
    rng = np.random.default_rng(12)
    out = {"replicas": REPS, "D_A2_per_ps": 0.1, "dt_ps": 0.2}
    for name, cfg in CONFIGS.items():
        t0 = time.process_time()
        cov = coverage(rng, REPS, d_a2_ps=0.1, **cfg)
        out[name] = cov | {"cpu_s": round(time.process_time() - t0, 1),
                           "binomial_se": round(float(np.sqrt(0.95 * 0.05 / REPS)), 4)}  # fmt: skip
        print(name, out[name], flush=True)
    return out
