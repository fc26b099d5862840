"""`bundle analyze` (grain-boundary metrics of LAMMPS dumps) and `bundle check` (against a
reference). Thin: parse options, call `checks`, print; errors are domain errors."""

from __future__ import annotations

import inspect
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

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


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


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


Dumps = Annotated[
    list[Path],
    typer.Argument(help="LAMMPS text dumps (`dump custom`, plain or .gz) in time order."),
]
TimestepFs = Annotated[float, typer.Option("--timestep-fs", help="MD timestep, fs.")]
Out = Annotated[Path, typer.Option("--out", help="Output folder (results.json, PNGs).")]
Data = Annotated[Path | None, typer.Option("--data", help="LAMMPS data file naming the types.")]
TypeMap = Annotated[str | None, typer.Option("--type-map", help="Type names, e.g. 1:Li,2:La.")]
LiType = Annotated[str, typer.Option("--li-type", help="Name (or type number) of Li.")]
ExcessAbove = Annotated[
    int | None, typer.Option("--excess-above-id", help="Excess Li = Li with an id above N.")
]
ExcessIds = Annotated[Path | None, typer.Option("--excess-ids", help="File of excess Li ids.")]
Gb = Annotated[
    str | None, typer.Option("--gb", help="GB planes Z0,Z1 in Å (default: from the profile).")
]
Dz = Annotated[float, typer.Option("--dz", help="Profile bin width, Å.")]
W = Annotated[float, typer.Option("--w", help="GB band half-width, Å.")]
DBulk = Annotated[float, typer.Option("--d-bulk", help="Bulk margin from both planes, Å.")]
Window = Annotated[
    str | None, typer.Option("--window-ps", help="Analysis window T0,T1, ps (default: all).")
]
AvgWindow = Annotated[
    float, typer.Option("--avg-window-ps", help="Excess-Li averaging window: the last T ps.")
]
NBlocks = Annotated[int, typer.Option("--n-blocks", help="Blocks for the SEM of n_gb.")]
WStart = Annotated[
    float | None, typer.Option("--w-start", help="MSD GB-start half-width, Å (default w).")
]
OriginEvery = Annotated[
    int, typer.Option("--origin-every", help="MSD time-origin spacing, frames.")
]
FitWindow = Annotated[
    str | None,
    typer.Option("--fit-window-ps", help="MSD fit window T0,T1 in lag, ps (default 10-50 %)."),
]
IncludeExcess = Annotated[
    bool, typer.Option("--include-excess", help="Count excess Li in the profile.")
]
TemperatureK = Annotated[
    float | None,
    typer.Option(
        "--temperature-K",
        help="Thermostat target of the run (K), recorded in the results for `bundle "
        "check`: a reference made at one temperature refuses results from another.",
    ),
]
LiSites = Annotated[
    Path | None,
    typer.Option("--li-sites", help="li_sites.npz of the build: 24d/96h occupancies."),
]
Deviation = Annotated[
    Path | None,
    typer.Option(
        "--deviation",
        help="The MD's committee deviation summary (JSON, `deviation` of its md stage "
        "result), copied into the results: `bundle check` FAILs a run that left the "
        "committee's trust domain.",
    ),
]
SiteA = Annotated[float, typer.Option("--site-A", help="Site assignment radius for --li-sites, Å.")]
HopA = Annotated[float, typer.Option("--hop-A", help="Hop distance, Å.")]
DropIncomplete = Annotated[
    bool,
    typer.Option(
        "--drop-incomplete-frame",
        help="A truncated last frame (a run still writing, or killed) is refused by "
        "default; with this flag it is dropped with a warning and the complete frames "
        "are analysed.",
    ),
]


def analyze(
    dumps: Dumps,
    timestep_fs: TimestepFs,
    out: Out,
    data: Data = None,
    type_map: TypeMap = None,
    li_type: LiType = "Li",
    excess_above_id: ExcessAbove = None,
    excess_ids: ExcessIds = None,
    gb: Gb = None,
    dz: Dz = 0.5,
    w: W = 2.0,
    d_bulk: DBulk = 8.0,
    window_ps: Window = None,
    avg_window_ps: AvgWindow = 50.0,
    n_blocks: NBlocks = 5,
    w_start: WStart = None,
    origin_every: OriginEvery = 1,
    fit_window_ps: FitWindow = None,
    include_excess: IncludeExcess = False,
    temperature_k: TemperatureK = None,
    li_sites: LiSites = None,
    site_a: SiteA = 1.0,
    hop_a: HopA = 1.5,
    drop_incomplete_frame: DropIncomplete = False,
    deviation: Deviation = None,
) -> None:
    """Grain-boundary metrics of METRICS.md (Li profile, Γ, excess Li in the GB bands,
    D by region of the time origin) → OUT/results.json (schema gb-analysis/1), profile.png,
    excess_ngb.png, msd.png and summary.md.

    Several dumps given in time order are one trajectory (a restart's repeated frame is
    dropped). Bad input (truncated frame, missing columns, tilted box, no Li, unknown
    excess ids, empty window, timesteps going backwards, bad --gb) is one error line and
    exit 3. Everything is written in a staging folder beside OUT and moved into OUT only
    when the analysis succeeded: a failure leaves OUT as it was."""
    from checks import request, results

    req = request.AnalysisRequest(
        dumps=tuple(str(d) for d in dumps), timestep_fs=timestep_fs, out=str(out),
        data=_str(data), type_map=type_map, li_type=li_type, excess_above_id=excess_above_id,
        excess_ids=_str(excess_ids), gb=_pair(gb, "--gb", "20.0,60.0"), dz=dz, w=w,
        d_bulk=d_bulk, window_ps=_pair(window_ps, "--window-ps", "50,100"),
        avg_window_ps=avg_window_ps, n_blocks=n_blocks, w_start=w_start,
        origin_every=origin_every, fit_window_ps=_pair(fit_window_ps, "--fit-window-ps", "2,10"),
        include_excess=include_excess, drop_incomplete_frame=drop_incomplete_frame,
        temperature_K=temperature_k, li_sites=_str(li_sites), site_A=site_a, hop_A=hop_a,
        deviation=_str(deviation),
    )  # fmt: skip
    bar, tick = _progress(sum(d.stat().st_size for d in dumps if d.is_file()))
    with bar:
        path, doc = request.analyze(
            req, warn=lambda m: typer.echo(f"warning: {m}", err=True), progress=tick
        )
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
    from checks import request

    report = request.check(
        request.CheckRequest(
            str(results_file), reference, str(json_out) if json_out is not None else None
        )
    )
    for line in ref.console_lines(report):
        typer.echo(line)
    if json_out is not None:
        typer.echo(f"wrote {json_out}")
    if report["status"] != "PASS":
        s = report["summary"]
        raise CheckFailed(f"{s['fail']} of {s['judged']} judged quantities FAILED")


analyze.__doc__ = _reflow(analyze.__doc__)
check.__doc__ = _reflow(check.__doc__)
