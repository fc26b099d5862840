"""The LLZO grain-boundary study: garnet cell, bicrystal, excess-Li insertion, classical baseline.

Modules, in the order the study uses them:

- `garnet`    cubic Li7La3Zr2O12 (Ia-3d) from cited site data, dopants (Al/Ga on 24d, Ta on
              16a, charge-compensating Li vacancies), seeded Li ordering
- `bicrystal` a periodic Sigma5 (hk0)/[001] symmetric-tilt bicrystal (rigid-body translation,
              charge-neutral contact removal) or its boundary-free control
- `contacts`  the charge-neutral removal of close contacts across a boundary
- `scan`      the rigid-body translation scan (each point minimised, lowest energy kept)
- `refs`      bulk references (garnet per formula unit, binary oxides) and the boundary energy
- `relax`     the relax stage's input (minimise, anneal, quench; every atom mobile) and its
              post step: boundary energy, residual forces, coordination, sites
- `lmpdata`   LAMMPS data files (types 1 Li, 2 La, 3 Zr, 4 O, 5 Al, ...) + JSON beside them
- `insert`    +N excess Li (placement away/near/uniform; compensation none/reduce/neutral)
- `potential` the literature Buckingham + Coulomb set (data file `buckingham.yaml`)
- `md`        the LAMMPS driver: MD with the framework frozen (Li only) or mobile
- `minimize`  in-process 0 K minimisation (the scan, the oxide references)
- `stages`    the study's stages (build, equilibrate, production, insert, ...);
              `relaxstage` the relax stage

Units: Angstrom, eV, ps/fs as named, K (LAMMPS `units metal`).
"""

from __future__ import annotations

# Type ids in every LAMMPS data file this package writes (and `bundle analyze` reads).
# 1-4 are the undoped garnet; dopants follow. A data file declares types up to the highest
# one it holds (4 for undoped LLZO), so undoped files are what they always were.
TYPE_IDS: dict[str, int] = {"Li": 1, "La": 2, "Zr": 3, "O": 4, "Al": 5, "Ga": 6, "Ta": 7}
# Formal charges (e) of the rigid-ion model and of the neutrality bookkeeping.
FORMAL_CHARGE: dict[str, int] = {"Li": 1, "La": 3, "Zr": 4, "O": -2, "Al": 3, "Ga": 3, "Ta": 5}
FRAMEWORK = ("La", "Zr", "O", "Al", "Ga", "Ta")  # everything but Li
