"""The LLZO grain-boundary study: garnet cell, bicrystal, excess-Li insertion, classical baseline.

Modules, in the order the study uses them:

- `garnet`    cubic Li7La3Zr2O12 (Ia-3d) from cited site data, seeded Li ordering
- `bicrystal` a periodic Sigma5 (hk0)/[001] symmetric-tilt bicrystal, charge neutral
- `lmpdata`   LAMMPS data files (types 1 Li, 2 La, 3 Zr, 4 O) + the JSON beside them
- `insert`    +N excess Li away from both GB planes and from every atom
- `potential` the literature Buckingham + Coulomb set (data file `buckingham.yaml`)
- `md`        the LAMMPS driver: Li-only MD with the framework frozen
- `stages`    the study's stages (build, equilibrate, production, insert, ...)

Units: Angstrom, eV, ps/fs as named, K (LAMMPS `units metal`).
"""

from __future__ import annotations

# Type ids in every LAMMPS data file this package writes (and `bundle analyze` reads).
TYPE_IDS: dict[str, int] = {"Li": 1, "La": 2, "Zr": 3, "O": 4}
# Formal charges (e) of the rigid-ion model and of the neutrality bookkeeping.
FORMAL_CHARGE: dict[str, int] = {"Li": 1, "La": 3, "Zr": 4, "O": -2}
