"""PBEsol ultrasoft pseudopotentials for La, Zr and Al, made here with `ld1.x`.

The generation inputs `runbook/pseudo/<El>.ld1.in` transcribe pslibrary 1.0.0's
`us_ps_high.job` (A. Dal Corso; the source, commit and citation are in
`runbook/pseudo/pseudo.yaml`); the generated UPF files are committed beside them, with
their SHA-256 in `pseudo.yaml`. Regenerating one is render (copy the input into a fresh
folder) -> execute (`ld1.x < input`) -> collect (wrap the over-long lines, write the UPF).

Why the wrap: ld1.x 6.7 writes each PP_DIJ / PP_Q matrix on ONE line (936 characters
for 6 projectors, 1664 for 8), and QE 6.7's UPF reader (upflib xmltools, used by pw.x
and by ld1.x's own test step) stops at lines over 1024 characters with
`xmlr_opentag: severe error, line too long`. `wrap_long_lines` re-flows every purely
numeric line longer than `MAX_LINE` into lines of `VALUES_PER_LINE` values, keeping each
value's text as written (no reformatting, so no number changes).

Regenerated files differ from the committed ones only in the generation date, which
ld1.x writes twice (`Generation date: ...` in PP_INFO and `date="..."` in PP_HEADER);
`without_dates` blanks both for the comparison.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from bundle.core import engines
from bundle.core.errors import EngineError, InputError

PSEUDO_DIR = Path(__file__).resolve().parent / "pseudo"
TABLE_FILE = PSEUDO_DIR / "pseudo.yaml"
MAX_LINE = 600  # longest line we leave alone (the reader's hard limit is 1024)
VALUES_PER_LINE = 4
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eEdD][-+]?\d+)?")
_DATES = (
    re.compile(r"(Generation date:)[^\n]*"),
    re.compile(r'(<PP_HEADER\b[^>]*?\bdate=)"[^"]*"'),
)
_LD1_BANNER = re.compile(r"Program LD1 v\.(\S+) starts")


@dataclass(frozen=True)
class Generated:
    element: str
    upf: Path
    sha256: str
    ld1_version: str
    wrapped_lines: int


def load_table(path: Path = TABLE_FILE) -> dict:
    """`pseudo.yaml`: per element the input, the UPF name, its SHA-256 and the validation."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, "(file)", f"cannot read: {e}".splitlines()[0]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("generated"), dict):
        raise InputError(path, "generated", "missing", "restore it from git")
    return doc


def entry(table: dict, element: str, path: Path = TABLE_FILE) -> dict:
    ent = table["generated"].get(element)
    if not isinstance(ent, dict) or not {"input", "upf"} <= ent.keys():
        known = ", ".join(table["generated"])
        raise InputError(path, f"generated.{element}", "no such element", f"use one of {known}")
    return ent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wrap_long_lines(text: str, max_len: int = MAX_LINE) -> tuple[str, int]:
    """Re-flow numeric lines longer than `max_len`; return (text, number of lines re-flowed).

    A long line that is not a plain list of numbers is refused: we only split data."""
    out, n = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if len(body) <= max_len:
            out.append(line)
            continue
        values = body.split()
        if not all(_NUMBER.fullmatch(v) for v in values):
            raise EngineError(f"UPF line of {len(body)} characters is not data: {body[:60]}")
        indent = body[: len(body) - len(body.lstrip())]
        for i in range(0, len(values), VALUES_PER_LINE):
            out.append(indent + "  ".join(values[i : i + VALUES_PER_LINE]) + "\n")
        n += 1
    return "".join(out), n


def without_dates(text: str) -> str:
    """The UPF text with ld1.x's two generation-date fields blanked."""
    text = _DATES[0].sub(r"\1 <date>", text)
    return _DATES[1].sub(r'\1"<date>"', text)


def ld1_version(text: str) -> str:
    m = _LD1_BANNER.search(text)
    return m.group(1) if m else "unknown"


# --------------------------------------------------------------------- render/execute/collect
def render(element: str, work: Path, table: dict) -> Path:
    """Copy the generation input of `element` into the empty folder `work`."""
    src = PSEUDO_DIR / entry(table, element)["input"]
    if not src.is_file():
        raise InputError(src, "(file)", "generation input missing", "restore it from git")
    work.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(src, work / src.name))


def run_ld1(work: Path, input_name: str, output_name: str) -> str:
    """`ld1.x < input > output` in `work`; return the output text (EngineError on failure)."""
    exe = engines.program("ld1.x")
    out = work / output_name
    with (work / input_name).open() as stdin, out.open("w") as stdout:
        rc = subprocess.run(
            [exe], stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT, cwd=work
        ).returncode
    text = out.read_text(errors="replace")
    if rc != 0 or "%%%%" in text:
        raise EngineError(f"ld1.x failed (exit {rc}) on {work / input_name}; see {out}")
    return text


def collect(element: str, work: Path, dest: Path, table: dict, log: str) -> Generated:
    """Wrap the UPF that ld1.x wrote in `work` and write it into `dest`."""
    name = entry(table, element)["upf"]
    raw = work / name
    if not raw.is_file():
        raise EngineError(f"ld1.x wrote no {name} in {work}; see its output there")
    text, n = wrap_long_lines(raw.read_text())
    dest.mkdir(parents=True, exist_ok=True)
    upf = dest / name
    upf.write_text(text)
    return Generated(element, upf, sha256(upf), ld1_version(log), n)


def generate(element: str, work: Path, dest: Path, table: dict | None = None) -> Generated:
    """Regenerate one UPF: render -> execute -> collect."""
    table = table or load_table()
    inp = render(element, work, table)
    log = run_ld1(work, inp.name, f"{element}.ld1.out")
    return collect(element, work, dest, table, log)
