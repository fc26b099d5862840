"""PBEsol ultrasoft pseudopotentials for La, Zr and Al, made here with `ld1.x`.

The generation inputs `runbook/pseudo/<El>.ld1.in` transcribe pslibrary 1.0.0's
`us_ps_high.job` (A. Dal Corso; the source, commit and citation are in
`runbook/pseudo/pseudo.yaml`); the generated UPF files are committed beside them, with
their SHA-256 in `pseudo.yaml`. Regenerating one is render (copy the input into a fresh
folder) -> execute (`ld1.x < input`) -> collect (wrap the over-long lines, write the UPF).

Why the wrap: ld1.x 6.7 writes each PP_DIJ / PP_Q matrix on ONE line (936 characters
for Zr and Al with 6 projectors, 1664 for La with 8), and QE 6.7's UPF reader (upflib
xmltools, used by pw.x and by ld1.x's own test step) stops at lines over 1024 characters
with `xmlr_opentag: severe error, line too long` (measured: pw.x 6.7 and ld1.x read the
raw 936-character Zr file, both refuse the raw La file, pw.x then says "file ... not
readable", ld1.x "unrecognized dft"). `wrap_long_lines` re-flows every purely numeric line
longer than `MAX_LINE` into lines of `VALUES_PER_LINE` values, keeping each value's text
as written (no reformatting, so no number changes), in all three files alike.

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

from bundle.core import engines, io, paths
from bundle.core.errors import BundleError, EngineError, InputError

PSEUDO_DIR = paths.root() / "runbook" / "pseudo"  # also in an installed bundle (MLMD_BUNDLE_ROOT)
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
    doc = io.read_yaml(path, fix="restore it from git")
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


# --------------------------------------------------------------------- transferability
# ld1.x &test output: one block per configts(i); AE/PS eigenvalues of the valence states
# and, from the second configuration on, the total-energy change from configts(1).
_TEST_BLOCK = "Testing the pseudopotential"
_TEST_END = "End of pseudopotential test"
_EIG_ROW = re.compile(
    r"^\s+\d+\s+\d+\s+(\w+)\s+\d+\(\s*([\d.]+)\)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*$",
    re.M,
)
_DE_AE = re.compile(r"dEtot_ae =\s+(-?[\d.]+) Ry")
_DE_PS = re.compile(r"dEtot_ps =\s+(-?[\d.]+) Ry,\s+Delta E=\s+(-?[\d.]+) Ry")
_CONFIGTS = re.compile(r"configts\((\d+)\)\s*=\s*'([^']*)'")
TOL_DELTA_E_RY = 1e-3  # |dE_AE - dE_PS| per configuration (1 mRy = 13.6 meV)
TOL_EIGEN_RY = 1e-3  # |e_AE - e_PS| of every occupied valence state


@dataclass(frozen=True)
class ConfigTest:
    config: str
    de_ae_ry: float  # total-energy change from configuration 1, all-electron
    de_ps_ry: float  # the same with the pseudopotential
    max_eigen_err_ry: float  # largest |e_AE - e_PS| over occupied states

    @property
    def delta_ry(self) -> float:
        return self.de_ae_ry - self.de_ps_ry

    @property
    def passed(self) -> bool:
        return abs(self.delta_ry) <= TOL_DELTA_E_RY and self.max_eigen_err_ry <= TOL_EIGEN_RY


def parse_ld1_test(text: str, configs: list[str]) -> list[ConfigTest]:
    """The per-configuration results of an ld1.x `&test` run (checked on ld1.x 6.7MaX)."""
    blocks = [b.split(_TEST_END)[0] for b in text.split(_TEST_BLOCK)[1:]]
    if len(blocks) != len(configs):
        raise EngineError(f"ld1.x tested {len(blocks)} configurations, expected {len(configs)}")
    out = []
    for i, (block, conf) in enumerate(zip(blocks, configs, strict=True)):
        rows = _EIG_ROW.findall(block)
        occupied = [abs(float(r[4])) for r in rows if float(r[1]) > 0]
        ae, ps = _DE_AE.search(block), _DE_PS.search(block)
        if not rows or (i > 0 and not (ae and ps)):
            raise EngineError(f"ld1.x test output: configuration {i + 1} has no results")
        de_ae = float(ae.group(1)) if ae else 0.0
        de_ps = float(ps.group(1)) if ps else 0.0
        out.append(ConfigTest(conf.strip(), de_ae, de_ps, max(occupied, default=0.0)))
    return out


def transferability(element: str, work: Path, upf_dir: Path = PSEUDO_DIR) -> list[ConfigTest]:
    """Run the `&test` input of `element` on the UPF in `upf_dir` (read by ld1.x itself)."""
    ent = entry(load_table(), element)
    src = PSEUDO_DIR / ent["test_input"]
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, work / src.name)
    shutil.copyfile(upf_dir / ent["upf"], work / ent["upf"])
    text = run_ld1(work, src.name, f"{element}.ld1test.out")
    configs = [c for _, c in sorted(_CONFIGTS.findall(src.read_text()), key=lambda m: int(m[0]))]
    return parse_ld1_test(text, configs)


# --------------------------------------------------------------------- pseudo.yaml + CLI
def save_table(doc: dict, path: Path = TABLE_FILE) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=92, allow_unicode=True))


def update_table(keys: tuple[str, ...], value, path: Path = TABLE_FILE) -> None:
    """Set one nested key of pseudo.yaml, re-reading the file first (long runs must not
    overwrite what changed in the file while they ran)."""
    doc = load_table(path)
    node = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    save_table(doc, path)


def suggested_cutoffs(upf_text: str) -> dict[str, float]:
    """ld1.x's own estimate, written in PP_INFO: minimum ecutwfc / ecutrho in Ry."""
    found = re.findall(
        r"Suggested minimum cutoff for (wavefunctions|charge density):\s*([\d.]+)", upf_text
    )
    names = {"wavefunctions": "ecutwfc_ry", "charge density": "ecutrho_ry"}
    return {names[k]: float(v) for k, v in found}


def check_committed(work: Path) -> list[str]:
    """Regenerate every UPF into `work` and compare with the committed files (dates
    aside) and with the SHA-256 recorded in pseudo.yaml; return the problems found."""
    table, problems = load_table(), []
    for el, ent in table["generated"].items():
        committed = PSEUDO_DIR / ent["upf"]
        if sha256(committed) != ent.get("sha256"):
            problems.append(f"{committed.name}: SHA-256 differs from pseudo.yaml")
        fresh = generate(el, work / el, work / "upf", table).upf
        if without_dates(fresh.read_text()) != without_dates(committed.read_text()):
            problems.append(f"{committed.name}: regenerated file differs beyond the dates")
    return problems


def record_generation(dest: Path) -> list[Generated]:
    """Regenerate all UPFs into runbook/pseudo and record hashes and versions."""
    table = load_table()
    done = []
    for el in table["generated"]:
        g = generate(el, dest / el, PSEUDO_DIR, table)
        ent = {**load_table()["generated"][el], "sha256": g.sha256, "ld1_version": g.ld1_version}
        ent.update(
            wrapped_lines=g.wrapped_lines, suggested_cutoff=suggested_cutoffs(g.upf.read_text())
        )
        update_table(("generated", el), ent)
        done.append(g)
    return done


def record_transferability(work: Path) -> bool:
    """Run every element's &test input; record the results; True when every judged
    configuration (the first `judged_configs`, pslibrary's own) passes."""
    table, ok = load_table(), True
    for el, ent in table["generated"].items():
        results = transferability(el, work / el)
        judged = int(ent.get("judged_configs", len(results)))
        record = {
            "tolerance_ry": {"delta_e": TOL_DELTA_E_RY, "eigenvalue": TOL_EIGEN_RY},
            "configs": [
                {
                    "config": r.config,
                    "dE_ae_ry": r.de_ae_ry,
                    "dE_ps_ry": r.de_ps_ry,
                    "delta_mry": round(1e3 * r.delta_ry, 3),
                    "max_eigen_err_mry": round(1e3 * r.max_eigen_err_ry, 3),
                    "judged": i < judged,
                    "pass": r.passed,
                }
                for i, r in enumerate(results)
            ],
        }
        update_table(("generated", el, "transferability"), record)
        ok &= all(r.passed for r in results[:judged])
    return ok


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import tempfile

    p = argparse.ArgumentParser(prog="python -m runbook.pseudogen", description=__doc__)
    p.add_argument("command", choices=["generate", "check", "test"])
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    a = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = a.work or Path(tmp)
            if a.command == "generate":
                for g in record_generation(work):
                    print(f"{g.upf.name}  sha256 {g.sha256}  ld1.x {g.ld1_version}")
                return 0
            if a.command == "check":
                problems = check_committed(work)
                print("\n".join(problems) or "every UPF regenerates identically (dates aside)")
                return 1 if problems else 0
            ok = record_transferability(work)
            print("transferability:", "PASS" if ok else "FAIL", f"(recorded in {TABLE_FILE})")
            return 0 if ok else 1
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
