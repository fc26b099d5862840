"""Sweeps: seeds x temperatures x band widths, and the aggregated sweep report.

The study YAML may carry a `sweep` block (the study's other fields stay as they are):

    sweep:
      seeds: [1, 2]
      temperatures_K: [600, 700]
      band_widths_A: [1.5, 2.0, 2.5]       # analysis only: no extra MD
      set:                                 # which study fields each axis sets (dotted)
        seed: [structure.seed, md.seed]
        temperature: [md.temperature_k]

Every (seed, temperature) is a *point*, run as its own study in `RUN/points/<name>/`
(its frozen study file in `RUN/sweep/studies/<name>.yaml`); band widths re-analyse each
point's trajectories (a parameter of the analysis stage, not a new run). The report
aggregates, per temperature and band width:
- every metric as mean ± standard error across seeds (SE = s / sqrt(n), n >= 2);
- an Arrhenius fit ln D = ln D0 - Ea / (kB T) of each diffusion coefficient over the
  temperatures, weighted by the seed SEs (uncertainties from the weighted least-squares
  covariance; with one seed per temperature, from the residuals when dof > 0);
- Γ and enrichment as functions of w. `Gamma_w` is the band-limited excess
  Σ_{|z - z_k| <= w} (rho - rho_bulk) dz (mean over the two planes, Li/nm²), which
  tends to METRICS.md's Γ as w -> d_bulk; Γ itself does not depend on w.

Modules, one way:
- `plan`     the points on disk (validated by runbook.loader before anything runs)
- `local`    the sweep here, point after point (`bundle run`), and partial runs
- `slurm`    the sweep as Slurm job arrays (`bundle run --executor slurm`)
- `collect`  the report: every point's analysis at every band width, per-point verdicts
- `stats`    mean ± SE across seeds, the Arrhenius fit, Γ_w (pure)
- `report`   the markdown and the figures of the report (pure)
"""
