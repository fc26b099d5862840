"""DeePMD-kit as the second potential backend (issue 16).

- `npy`   our writer/reader of the deepmd/npy data format (checked against dpdata)
- `logs`  parsers of `dp test` / `dp train` outputs and `lcurve.out`

The stage is runbook.stages.train_deepmd (`train_deepmd`); MD runs it with
`pair_style deepmd` (runbook.stages.md, `potential: deepmd`; templates/lammps/
setup-deepmd.lmp.j2); the committee's force deviation is read by checks.deviation.
The loader environment the LAMMPS plugin needs lives in bundle.core.engines.
"""
