"""`bundle analyze` (grain-boundary metrics of LAMMPS dumps) and `bundle check` (against a
reference). Thin: parse options, call `checks`, print; errors are domain errors."""

from __future__ import annotations

import inspect
import re
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bundle.core.errors import CheckFailed, InputError

CLI = "command line"


def _pair(text: str | None, flag: str, example: str) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = (float(x) for x in parts)
    except ValueError:
        raise InputError(
            CLI, flag, f"expected two numbers A,B (got {text!r})", f"write e.g. {flag} {example}"
        ) from None
    return a, b


def _read_ids(path: Path) -> np.ndarray:
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(
            path, "(file)", f"cannot read: {e.strerror}", "check --excess-ids"
        ) from None
    tokens = re.sub(r"#.*", "", text).replace(",", " ").split()
    try:
        ids = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError as e:
        raise InputError(
            path, "ids", f"not an integer id ({e})", "list atom ids, one per line"
        ) from None
    if len(ids) == 0:
        raise InputError(path, "ids", "no id in the file", "list atom ids, one per line")
    return ids


def _progress(total: int):
    """(context, callback) of a progress bar on stderr for long, interactive runs."""
    if not sys.stderr.isatty() or total < 200 * 2**20:
        return nullcontext(), lambda n: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "reading dumps",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("read", total=total)
    return bar, lambda n: bar.update(task, completed=n)


def analyze(
    dumps: Annotated[
        list[Path],
        typer.Argument(help="LAMMPS text dumps (`dump custom`, plain or .gz) in time order."),
    ],
    timestep_fs: Annotated[float, typer.Option("--timestep-fs", help="MD timestep, fs.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (results.json, PNGs).")],
    data: Annotated[
        Path | None, typer.Option("--data", help="LAMMPS data file naming the types.")
    ] = None,
    type_map: Annotated[
        str | None, typer.Option("--type-map", help="Type names, e.g. 1:Li,2:La.")
    ] = None,
    li_type: Annotated[str, typer.Option("--li-type", help="Name (or type number) of Li.")] = "Li",
    excess_above_id: Annotated[
        int | None, typer.Option("--excess-above-id", help="Excess Li = Li with an id above N.")
    ] = None,
    excess_ids: Annotated[
        Path | None, typer.Option("--excess-ids", help="File of excess Li ids.")
    ] = None,
    gb: Annotated[
        str | None, typer.Option("--gb", help="GB planes Z0,Z1 in Å (default: from the profile).")
    ] = None,
    dz: Annotated[float, typer.Option("--dz", help="Profile bin width, Å.")] = 0.5,
    w: Annotated[float, typer.Option("--w", help="GB band half-width, Å.")] = 2.0,
    d_bulk: Annotated[
        float, typer.Option("--d-bulk", help="Bulk margin from both planes, Å.")
    ] = 8.0,
    window_ps: Annotated[
        str | None, typer.Option("--window-ps", help="Analysis window T0,T1, ps (default: all).")
    ] = None,
    avg_window_ps: Annotated[
        float, typer.Option("--avg-window-ps", help="Excess-Li averaging window: the last T ps.")
    ] = 50.0,
    n_blocks: Annotated[int, typer.Option("--n-blocks", help="Blocks for the SEM of n_gb.")] = 5,
    w_start: Annotated[
        float | None, typer.Option("--w-start", help="MSD GB-start half-width, Å (default w).")
    ] = None,
    origin_every: Annotated[
        int, typer.Option("--origin-every", help="MSD time-origin spacing, frames.")
    ] = 1,
    fit_window_ps: Annotated[
        str | None,
        typer.Option("--fit-window-ps", help="MSD fit window T0,T1 in lag, ps (default 10-50 %)."),
    ] = None,
    include_excess: Annotated[
        bool, typer.Option("--include-excess", help="Count excess Li in the profile.")
    ] = False,
    temperature_k: Annotated[
        float | None,
        typer.Option(
            "--temperature-K",
            help="Thermostat target of the run (K), recorded in the results for `bundle "
            "check`: a reference made at one temperature refuses results from another.",
        ),
    ] = None,
    li_sites: Annotated[
        Path | None,
        typer.Option("--li-sites", help="li_sites.npz of the build: 24d/96h occupancies."),
    ] = None,
    site_a: Annotated[
        float, typer.Option("--site-A", help="Site assignment radius for --li-sites, Å.")
    ] = 1.0,
    hop_a: Annotated[float, typer.Option("--hop-A", help="Hop distance, Å.")] = 1.5,
    drop_incomplete_frame: Annotated[
        bool,
        typer.Option(
            "--drop-incomplete-frame",
            help="A truncated last frame (a run still writing, or killed) is refused by "
            "default; with this flag it is dropped with a warning and the complete frames "
            "are analysed.",
        ),
    ] = False,
) -> None:
    """Grain-boundary metrics of METRICS.md (Li profile, Γ, excess Li in the GB bands,
    D by region of the time origin) → OUT/results.json (schema gb-analysis/1), profile.png,
    excess_ngb.png, msd.png and summary.md.

    Several dumps given in time order are one trajectory (a restart's repeated frame is
    dropped). Bad input (truncated frame, missing columns, tilted box, no Li, unknown
    excess ids, empty window, timesteps going backwards, bad --gb) is one error line and
    exit 3; OUT/results.json is written whole at the end or not at all."""
    from checks import figures, metrics, results
    from checks.lammpsio import parse_type_map, read_data_types

    if (data is None) == (type_map is None):
        raise InputError(CLI, "--data/--type-map", "give exactly one", "e.g. --type-map 1:Li,2:O")
    if excess_above_id is not None and excess_ids is not None:
        raise InputError(CLI, "--excess-above-id/--excess-ids", "give at most one")
    for d in dumps:
        if not d.is_file():
            raise InputError(d, "(file)", "not found", "give the path of a LAMMPS dump")
    names = read_data_types(data) if data is not None else parse_type_map(type_map or "")
    params = metrics.Params(
        timestep_fs=timestep_fs,
        dz=dz,
        w=w,
        d_bulk=d_bulk,
        window_ps=_pair(window_ps, "--window-ps", "50,100"),
        avg_window_ps=avg_window_ps,
        n_blocks=n_blocks,
        gb=_pair(gb, "--gb", "20.0,60.0"),
        w_start=w_start,
        origin_every=origin_every,
        fit_window_ps=_pair(fit_window_ps, "--fit-window-ps", "2,10"),
        include_excess=include_excess,
        drop_incomplete_frame=drop_incomplete_frame,
        temperature_K=temperature_k,
        li_sites=li_sites,
        site_A=site_a,
        hop_A=hop_a,
    )
    params.validate()
    selection = metrics.Selection(
        type_names=names,
        li_type=li_type,
        excess_ids=_read_ids(excess_ids) if excess_ids is not None else None,
        excess_ids_source=str(excess_ids) if excess_ids is not None else "--excess-ids",
        excess_above_id=excess_above_id,
    )
    out.mkdir(parents=True, exist_ok=True)
    bar, tick = _progress(sum(d.stat().st_size for d in dumps))
    with bar:
        doc = metrics.analyze(
            dumps,
            params,
            selection,
            scratch=out,
            warn=lambda m: typer.echo(f"warning: {m}", err=True),
            progress=tick,
        )
    figures.write_figures(out, doc)
    path = results.write_results(out, doc)
    typer.echo(results.summary_md(doc))
    typer.echo(f"wrote {path}")


def _reflow(doc: str | None) -> str | None:
    """Help text: the docstring's paragraphs as single lines (typer keeps line breaks)."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def check(
    results_file: Annotated[
        Path, typer.Argument(metavar="RESULTS", help="results.json (or its folder).")
    ],
    reference: Annotated[
        str,
        typer.Option("--reference", help="Shipped reference NAME (checks/references/) or a file."),
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here.")
    ] = None,
) -> None:
    """Compare results.json with a reference: one line per quantity; exit 0 only if every
    judged quantity passes (1 otherwise, 3 if the parameters differ from the reference's)."""
    from checks import reference as ref
    from checks.results import load_results, write_atomic

    doc = load_results(results_file)
    spec = ref.load_reference(reference)
    report = ref.compare(doc, spec, results_path=Path(results_file))
    for line in ref.console_lines(report):
        typer.echo(line)
    if json_out is not None:
        import json

        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(json_out, json.dumps(report, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")
    if report["status"] != "PASS":
        s = report["summary"]
        raise CheckFailed(f"{s['fail']} of {s['judged']} judged quantities FAILED")


analyze.__doc__ = _reflow(analyze.__doc__)
check.__doc__ = _reflow(check.__doc__)
