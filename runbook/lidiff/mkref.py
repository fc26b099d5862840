"""Make the li-diffusion cpu profile's reference (`gb-reference/1`, read by `bundle check`)
from replicas of the study: each replica another Li ordering (build.seed = k) and other
velocity seeds (md.seeds = [2k-1, 2k]).

    python -m runbook.lidiff.mkref --name NAME --out FILE --command "..." RESULTS.json ...

A judged quantity's value is the mean over the n replicas and its bounds a prediction
interval for ONE further replica, |x - mean| <= t(1 - alpha/2, n - 1) s sqrt(1 + 1/n)
with alpha = 0.01 per quantity (runbook.llzo.mkref sets a family-wise rate instead); the
analysis parameters are
copied from the replicas, which must agree. The conductivity at the stated temperature
is an extrapolation along the Arrhenius line: reported, not judged.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from checks.results import get_path
from runbook import refdoc
from runbook.refdoc import r6 as _r

ALPHA = 0.01
REPORTED = [("arrhenius.ln_D0", "1", "ln of the prefactor D0 in cm²/s"),
            ("conductivity.sigma_S_cm", "S/cm", "extrapolated to conductivity.T_K")]  # fmt: skip


def judged(docs: list[dict]) -> list[tuple[str, str, str]]:
    temps = sorted(docs[0]["temperatures"].values(), key=lambda v: v["T_K"])
    out = [(f"temperatures.T{v['T_K']:g}.D_cm2_s", "cm²/s", f"Li D at {v['T_K']:g} K")
           for v in temps]  # fmt: skip
    return [*out, ("arrhenius.Ea_eV", "eV", "Arrhenius activation energy")]


def make(docs: list[dict], names: list[str], name: str, command: str) -> dict:
    params = docs[0]["parameters"]
    for n, d in zip(names, docs, strict=True):
        if d["parameters"] != params:
            raise SystemExit(f"{n}: analysis parameters differ from {names[0]}'s")
    n = len(docs)
    if n < 3:
        raise SystemExit("need at least 3 replicas for a prediction interval")
    factor = float(stats.t.ppf(1 - ALPHA / 2, n - 1) * math.sqrt(1 + 1 / n))
    quantities: dict[str, dict] = {}
    for key, unit, what in judged(docs):
        x = np.array([float(get_path(d, key)) for d in docs])
        s = float(x.std(ddof=1))
        quantities[key] = {
            "value": _r(x.mean()), "lower": _r(factor * s), "upper": _r(factor * s),
            "bounds": "absolute", "unit": unit,
            "source": f"mean of {n} replicas; bounds t*s*sqrt(1+1/n), s = {s:.4g} ({what})",
            "replicas": [_r(v) for v in x],
        }  # fmt: skip
    for key, unit, what in REPORTED:
        x = [get_path(d, key, None) for d in docs]
        x = [float(v) for v in x if v is not None]
        if x:
            why = f"mean of {len(x)} replicas, not judged ({what})"
            quantities[key] = {"value": _r(float(np.mean(x))), "unit": unit, "source": why}
    interval = (f"prediction interval for one new replica, alpha = {ALPHA} per quantity: "
                f"t({1 - ALPHA / 2}, {n - 1}) * sqrt(1 + 1/{n}) = {factor:.3f} s")  # fmt: skip
    return refdoc.document(
        name, f"the li-diffusion study, cpu profile, {n} replicas ({', '.join(names)})",
        command, names, params, quantities, interval=interval,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    a = refdoc.parser("python -m runbook.lidiff.mkref").parse_args(argv)
    docs = refdoc.read_results(a.results)
    names = [p.parent.parent.name for p in a.results]  # <replica>/<NN_analyze>/results.json
    doc = make(docs, names, a.name, a.command)
    head = (f"# {a.name}: the li-diffusion cpu profile's own reference (runbook.lidiff.mkref)."
            "\n# Values: mean over replicas; bounds: a prediction interval for one more "
            "replica.\n")  # fmt: skip
    refdoc.write(a.out, head, doc)
    print(f"wrote {a.out} from {len(docs)} replicas")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
