"""The LLZO potential study (`runbook/studies/llzo-potential.yaml`): the data and checks
that make an Allegro model of Li-La-Zr-O(-Al) a product of the runbook.

    sample -> select -> dft -> dataset -> train -> deploy -> validate
                                  +-> train_deepmd -> validate_deepmd -> compare

Modules, in the order the study uses them:

- `cells`       96-atom primitive LLZO cells: Li orderings, Al on 24d, one excess Li
- `phases`      the related phases (Li2O, c-ZrO2, h-La2O3, alpha-Al2O3, La2Zr2O7)
- `gbcell`      DFT-sized grain-boundary cells cut from the Sigma5 (210) bicrystal
- `classical`   snapshots of classical MD (the LLZO Buckingham baseline through LAMMPS)
- `sample`      the `sample` step: every candidate frame, tagged `env_class` + `family`
- `descriptors` Behler-Parrinello symmetry functions (radial G2, angular G3)
- `selection`   pooled descriptors -> PCA -> farthest-point sampling with class quotas
- `choose`      the `select` step: the chosen frames, the rule, the figure
- `validate`    the `validate` step: per-class errors vs trivial baselines, parity plots
                (one code path for an Allegro and a DeePMD model)
- `compare`     the `compare` step: two validated models per class, bootstrap winners
- `stability`   a short MD of bulk LLZO through the model (`fix external`)
- `stages`      the plug-in stage classes of the study (sample, select, dft with
                timings, train with the DFT settings and classes in its manifest, validate)

Units: eV, Å, eV/Å (LAMMPS `metal`). Environment classes are the keys of `ENV_CLASSES`.
"""

from __future__ import annotations

# The environment classes a frame may carry in its extxyz info (`env_class`), and what
# each stands for. Validation reports errors per class; selection and the dataset split
# keep every class in training AND held-out frames.
ENV_CLASSES: dict[str, str] = {
    "bulk": "cubic garnet, pure and Al-doped, strained/rattled/thermal",
    "gb": "grain-boundary cells cut from the Sigma5 (210) bicrystal",
    "related": "phases a transferable LLZO potential needs (binary oxides, pyrochlore)",
    "excess_li": "bulk garnet with one extra Li atom (neutral cell)",
}
