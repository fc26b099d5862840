"""`bundle size`: 4 or 8 GPUs for a target ns/day? Thin: options → runbook.sizing → print.

Exit codes: 0 an answer was given (also when no choice meets the target: it says so and
`--json` has `recommended: null`), 3 bad input, 5 no throughput measured for the device.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from runbook import sizing


def size(
    atoms: Annotated[int, typer.Option("--atoms", help="Atoms in the MD system.")],
    target_ns_day: Annotated[
        float, typer.Option("--target-ns-day", help="Wanted simulated ns per day.")
    ],
    gpus: Annotated[
        int | None, typer.Option("--gpus", help="Evaluate only this GPU count (4 or 8).")
    ] = None,
    timestep_fs: Annotated[float, typer.Option("--timestep-fs", help="MD timestep, fs.")] = 1.0,
    device: Annotated[
        str | None, typer.Option("--device", help="Table row, e.g. 'NVIDIA H200' (default: first).")
    ] = None,
    table: Annotated[
        Path | None,
        typer.Option("--table", help="Throughput table (default: the site's, else shipped)."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Instead of a table: atom-steps/s of one saturated GPU."),
    ] = None,
    r_max: Annotated[float, typer.Option("--r-max", help="Model cutoff in Å (with --rate).")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Recommend 4 or 8 GPUs for ATOMS at a target ns/day, with the assumptions used."""
    if rate is not None:
        tab = sizing.explicit_rate_table(rate, device or "GPU", r_max)
    else:
        tab = sizing.choose_table(table)
    s = sizing.size(tab, atoms, target_ns_day, gpus=gpus, device=device, timestep_fs=timestep_fs)
    if as_json:
        typer.echo(json.dumps(asdict(s), indent=2))
        return
    typer.echo(
        f"{s.atoms} atoms, target {s.target_ns_day:g} ns/day at {s.timestep_fs:g} fs, "
        f"{s.device} ({s.model})"
    )
    typer.echo(f"throughput: {s.table} [{s.provenance}]; source: {s.source or '?'}")
    unit = "ranks" if s.device.lower() == "cpu" else "GPUs"
    typer.echo(f"{unit:>5}  {'ns/day':>9}  {'ideal':>9}  {'atoms/GPU':>9}  {'eff.':>5}  target")
    for o in s.options:
        typer.echo(
            f"{o.gpus:>5}  {o.ns_day:>9.3g}  {o.ns_day_ideal:>9.3g}  {o.atoms_per_gpu:>9.0f}  "
            f"{o.efficiency:>5.2f}  {'met' if o.meets else 'NOT met'}"
        )
    if s.recommended:
        typer.echo(f"recommended: {s.recommended} GPUs")
    else:
        best = max(s.options, key=lambda o: o.ns_day)
        typer.echo(
            f"recommended: none meets {s.target_ns_day:g} ns/day; {best.gpus} GPUs give "
            f"{best.ns_day:.3g} (shorten the target, the system, or use more nodes)"
        )
        if any(o.ns_day_ideal >= s.target_ns_day for o in s.options):
            typer.echo(
                "  the ideal bound would meet it: a measured multi-GPU point settles the halo cost"
            )
    typer.echo("assumptions:")
    for a in s.assumptions:
        typer.echo(f"  - {a}")
