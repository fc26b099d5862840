"""The `gb-analysis/1` results document (results.json) as types: the one place its keys are
spelled for the code that reads it.

`checks.metrics.analyze` produces the document (a test keeps it and this schema equal);
everything that reads one goes through `Results.of(doc)` or `checks.results.read()` and
uses attributes: `r.parameters.w_A`, `r.diffusion.D_cm2_s["all"]`. A document merged
across seeds (checks.aggregate) fits too: it keeps the keys, its long curves may be
null where the seeds' lengths differ, and it adds `seeds`; a document merged from two
analyses (runbook.llzo.results) adds `sources`. Unknown keys are kept, never dropped.
Units are in the names (Å, ps, fs, cm²/s, Li/Å³, Li/nm²).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bundle.core.errors import InputError

SCHEMA = "gb-analysis/1"
DIFFUSION_CLASSES = ("all", "gb_start", "bulk_start")  # by the region of the time origin

Curve = list[float | None] | None  # a long series (null where seeds could not be merged)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Parameters(_Doc):
    dz_A: float
    w_A: float
    d_bulk_A: float
    window_ps: list[float | None]
    timestep_fs: float
    avg_window_ps: float | None
    n_blocks: int | float
    w_start_A: float
    origin_every: int | float
    fit_window_ps: list[float] | None = None
    include_excess: bool
    gb_planes_given: bool | float | None = None


class Profile(_Doc):
    z_A: Curve
    rho_li_per_A3: Curve
    dz_A: float
    n_bins: int | float


class Gamma(_Doc):
    per_gb: list[float | None]
    mean: float | None


class Series(_Doc):
    t_ps: Curve
    n_gb: Curve
    n_per_gb: list[Curve] | None = None


class Excess(_Doc):
    window_ps: list[float | None]
    avg_window_ps: float
    n_frames: int | float
    per_gb_mean: list[float | None]
    per_gb_std: list[float | None]
    gb_mean: float
    gb_std: float
    gb_sem: float | None
    n_blocks: int | float
    bulk_mean: float
    bulk_std: float
    uniform_expected: float
    enrichment: float
    slope_per_ps: float | None
    slope_se_per_ps: float | None
    series: Series | None = None


class Diffusion(_Doc):
    fit_window_ps: list[float | None]
    D_cm2_s: dict[str, float | None]
    D_se_cm2_s: dict[str, float | None]
    ratio_gb_bulk: float | None
    w_start_A: float
    origin_every: int | float
    msd_A2: dict[str, Curve] | None = None


class Results(_Doc):
    """One results.json (schema gb-analysis/1). A run made with a model committee also
    carries `deviation` (checks.deviation.trust_levels' output, judged by
    checks.deviation.domain_row), kept as an extra key: absent, not null, otherwise."""

    schema_: Literal["gb-analysis/1"] = Field(alias="schema")
    parameters: Parameters
    box_A: list[float]
    n_frames: int | float
    n_li: int | float
    n_li_total: int | float
    n_excess: int | float
    dump_interval_ps: float | None
    gb_planes_A: list[float]
    profile: Profile
    rho_bulk_per_A3: float | None
    rho_peak_per_A3: float | None
    peak_ratio: float | None
    rho_band_per_A3: float | None
    band_ratio: float | None
    gamma_per_nm2: Gamma
    excess: Excess | None
    diffusion: Diffusion | None

    @classmethod
    def of(cls, doc: dict[str, Any], where: object = "results.json") -> Results:
        """The typed view of a results document; InputError naming the first bad key."""
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise InputError(
                where,
                "schema",
                f"expected {SCHEMA!r}, got {got!r}",
                "give a `bundle analyze` results",
            )
        try:
            return cls.model_validate(doc)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InputError(where, loc, f"{err['msg']} (not a {SCHEMA} document)") from None

    def doc(self) -> dict[str, Any]:
        """Back to plain JSON data, keys as in the file."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def D(self) -> dict[str, float | None]:
        """D (cm²/s) by start region; every class None when there is no diffusion section."""
        d = self.diffusion.D_cm2_s if self.diffusion else {}
        return {k: d.get(k) for k in DIFFUSION_CLASSES}


# The scalar headline quantities by name -> their dotted path in the document (what stage
# results and sweep reports aggregate); `metrics_of` reads them from a plain document,
# partial or merged ones too (absent or null: None).
METRICS = {
    "peak_ratio": "peak_ratio",
    "band_ratio": "band_ratio",
    "gamma_per_nm2": "gamma_per_nm2.mean",
    "enrichment": "excess.enrichment",
    "excess_gb_mean": "excess.gb_mean",
    **{f"D_{k}_cm2_s": f"diffusion.D_cm2_s.{k}" for k in DIFFUSION_CLASSES},
}


def metrics_of(doc: dict[str, Any]) -> dict[str, float | None]:
    """Every METRICS quantity of a results document (None where it has none)."""
    out: dict[str, float | None] = {}
    for name, path in METRICS.items():
        node: Any = doc
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        ok = isinstance(node, int | float) and not isinstance(node, bool)
        out[name] = float(node) if ok else None
    return out
