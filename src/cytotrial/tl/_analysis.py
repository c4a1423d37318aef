"""The ``analysis:`` config against the data: sample metadata, features, baselines, references.

A *feature* is what the statistics analyse, one value per sample: a population (a ``var`` of
``populations.h5ad``), a ratio (a column of ``obsm['ratios']``) or a median fluorescence intensity
``<population>:<marker>`` (a column of ``obsm['mfi_median']``). Compartments are free labels; each
has its own baseline visit and measure. :func:`analysis_plan` resolves every default of the
``analysis:`` section against one AnnData.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..config import check_section
from ..errors import ConfigError, SampleSheetError

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "FEATURE_OBSM",
    "analysis_plan",
    "baseline_visits",
    "feature_kinds",
    "resolve_analysis",
    "visit_order",
]

#: Where the features beside the populations live: ``obsm`` key -> feature kind (= its measure).
FEATURE_OBSM: dict[str, str] = {"ratios": "ratio", "mfi_median": "mfi"}

#: Measure of a compartment not listed in ``analysis.measure``.
DEFAULT_MEASURE = "freq_parent"

_OBS_REQUIRED = ("patient_id", "arm", "visit", "cycle", "day", "compartment")


def resolve_analysis(analysis: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``analysis:`` config section checked against the schema, with its defaults filled in.

    The schema (``cytotrial/schemas/config.schema.yaml``) holds every key's default and allowed
    values; this is :func:`cytotrial.config.check_section` for the ``analysis`` section, kept for
    library users who call a statistics step directly. Defaults that depend on the data (``""``
    baseline, reference arm and response visit, empty ``populations``) are resolved by
    :func:`analysis_plan`.

    Parameters
    ----------
    analysis
        The workflow config section ``analysis:`` (None: every default).

    Returns
    -------
    dict
        A complete, checked copy.

    Raises
    ------
    ConfigError
        An unknown key or a bad value (one line per problem, naming the key).
    """
    return check_section("analysis", analysis)


# --------------------------------------------------------------------------------------------
# sample metadata
# --------------------------------------------------------------------------------------------
def _typed_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """The metadata columns the statistics need, present, filled in and typed."""
    missing = [col for col in _OBS_REQUIRED if col not in obs.columns]
    if missing:
        raise SampleSheetError(
            f"populations.h5ad obs lacks column(s) {', '.join(missing)}; add them to the sample "
            "sheet (samples.tsv) and re-run the aggregation"
        )
    out = obs.copy()
    out["sample_id"] = out.index.astype(str)
    for col in ("patient_id", "arm", "visit", "compartment"):
        blank = out[col].isna() | (out[col].astype(str).str.strip() == "")
        if blank.any():
            sample = out.index[blank.to_numpy()][0]
            raise SampleSheetError(
                f"sample {sample}: column {col} is empty; fill it in samples.tsv"
            )
        out[col] = out[col].astype(str)
    for col in ("cycle", "day"):
        numbers = pd.to_numeric(out[col], errors="coerce")
        bad = numbers.isna() | (numbers != np.round(numbers))
        if bad.any():
            sample = out.index[bad.to_numpy()][0]
            raise SampleSheetError(
                f"sample {sample}: {col} {out.loc[sample, col]!r} is not a whole number; fix "
                "samples.tsv"
            )
        out[col] = numbers.astype(int)
    if "qc_flags" in out.columns:
        out["qc_flags"] = out["qc_flags"].astype(object).fillna("").astype(str)
    else:
        out["qc_flags"] = ""
    return out


def _check_one_arm_per_patient(obs: pd.DataFrame) -> None:
    arms = obs.groupby("patient_id", observed=True)["arm"].nunique()
    if (arms > 1).any():
        patient = arms.index[(arms > 1).to_numpy()][0]
        names = sorted(obs.loc[obs["patient_id"] == patient, "arm"].unique())
        raise SampleSheetError(
            f"patient {patient} is in more than one arm ({', '.join(names)}); give each patient "
            "one arm in samples.tsv"
        )


def _check_one_sample_per_visit(obs: pd.DataFrame) -> None:
    key = ["patient_id", "compartment", "visit"]
    dup = obs.duplicated(key, keep=False)
    if dup.any():
        first = obs.loc[dup].sort_values(key + ["sample_id"]).iloc[0]
        same = obs.loc[
            (obs["patient_id"] == first["patient_id"])
            & (obs["compartment"] == first["compartment"])
            & (obs["visit"] == first["visit"]),
            "sample_id",
        ]
        raise SampleSheetError(
            f"samples {', '.join(sorted(same))} are all patient {first['patient_id']}, visit "
            f"{first['visit']}, compartment {first['compartment']}; keep one per visit in "
            "samples.tsv"
        )


def _checked_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Sample metadata with the columns the statistics need, typed and checked."""
    out = _typed_obs(obs)
    _check_one_arm_per_patient(out)
    _check_one_sample_per_visit(out)
    visit_order(out)  # raises on a visit label with two (cycle, day)
    return out


def visit_order(obs: pd.DataFrame) -> list[str]:
    """Visit labels in clinical order: by ``cycle``, then ``day`` (never alphabetical).

    Parameters
    ----------
    obs
        A table with columns ``visit``, ``cycle`` and ``day`` (e.g. ``adata.obs``).

    Raises
    ------
    SampleSheetError
        One visit label has two different (cycle, day) pairs.
    """
    pairs = obs[["visit", "cycle", "day"]].drop_duplicates()
    pairs = pairs.assign(
        visit=pairs["visit"].astype(str),
        cycle=pd.to_numeric(pairs["cycle"], errors="coerce"),
        day=pd.to_numeric(pairs["day"], errors="coerce"),
    ).drop_duplicates()
    counts = pairs["visit"].value_counts()
    if (counts > 1).any():
        visit = sorted(counts.index[(counts > 1).to_numpy()])[0]
        found = pairs.loc[pairs["visit"] == visit, ["cycle", "day"]].to_numpy().tolist()
        raise SampleSheetError(
            f"visit {visit} has more than one (cycle, day): {found}; give each visit label one "
            "cycle and day in samples.tsv"
        )
    return pairs.sort_values(["cycle", "day", "visit"])["visit"].tolist()


def baseline_visits(
    table: pd.DataFrame, baseline_visit: str | Mapping[str, str] = ""
) -> dict[str, str]:
    """The baseline visit of every compartment of ``table``.

    Parameters
    ----------
    table
        Rows with ``compartment``, ``visit``, ``cycle`` and ``day`` (obs, or a long table).
    baseline_visit
        One visit for every compartment, or compartment -> visit; ``""`` or a compartment left
        out: that compartment's earliest visit in ``table`` (by cycle, then day).

    Returns
    -------
    dict
        Compartment -> baseline visit, compartments sorted.
    """
    out = {}
    for compartment, rows in table.groupby("compartment", sort=True, observed=True):
        given = (
            baseline_visit.get(compartment, "")
            if isinstance(baseline_visit, Mapping)
            else baseline_visit
        )
        out[str(compartment)] = given or visit_order(rows)[0]
    return out


def at_baseline(table: pd.DataFrame, baseline_visit: str | Mapping[str, str]) -> np.ndarray:
    """Boolean mask of the rows of ``table`` at their compartment's baseline visit."""
    if table.empty:
        return np.zeros(0, dtype=bool)
    baselines = baseline_visits(table, baseline_visit)
    return (table["visit"] == table["compartment"].map(baselines)).to_numpy(dtype=bool)


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------
def feature_kinds(adata: AnnData) -> dict[str, str]:
    """Every feature of an AnnData and its kind: ``population``, ``ratio`` or ``mfi``.

    Populations are the ``var_names``; ratios the columns of ``obsm['ratios']``; MFIs the columns
    ``<population>:<marker>`` of ``obsm['mfi_median']`` (each a DataFrame, when present).
    """
    kinds = {str(name): "population" for name in adata.var_names}
    for key, kind in FEATURE_OBSM.items():
        frame = adata.obsm.get(key)
        if isinstance(frame, pd.DataFrame):
            for column in frame.columns:
                kinds.setdefault(str(column), kind)
    return kinds


def _parent_maps(adata: AnnData) -> list[dict[str, str]]:
    """The parent of each population, per ``var`` column ``parent`` and ``parent_<panel>``.

    A column counts when every value is a population name or empty.
    """
    names = {str(v) for v in adata.var_names}
    maps = []
    for column in adata.var.columns:
        if column != "parent" and not str(column).startswith("parent_"):
            continue
        values = adata.var[column].astype(object).fillna("").astype(str)
        if all(v == "" or v in names for v in values):
            maps.append(dict(zip([str(v) for v in adata.var_names], values)))
    return maps


def _at_or_below(population: str, reference: str, maps: Sequence[Mapping[str, str]]) -> bool:
    """Whether ``population`` is ``reference`` or below it through any panel's parent chain."""
    for parents in maps:
        seen: set[str] = set()
        current = population
        while current and current not in seen:
            if current == reference:
                return True
            seen.add(current)
            current = parents.get(current, "")
    return population == reference


def _default_features(
    adata: AnnData, kinds: Mapping[str, str], frequencies_of: Sequence[str] | None
) -> list[str]:
    """Every population at or below the first reference, every ratio, every MFI."""
    populations = [name for name, kind in kinds.items() if kind == "population"]
    if frequencies_of is None:  # the references of the AnnData's freq_<ref> layers
        frequencies_of = [
            layer[len("freq_") :]
            for layer in adata.layers
            if layer.startswith("freq_") and layer != "freq_parent"
        ]
    references = [ref for ref in frequencies_of if ref in populations]
    if references:
        maps = _parent_maps(adata)
        populations = [p for p in populations if _at_or_below(p, references[0], maps)]
    others = [name for name, kind in kinds.items() if kind != "population"]
    return populations + sorted(others, key=lambda n: kinds[n] != "ratio")


def _features(
    adata: AnnData, cfg: Mapping[str, Any], frequencies_of: Sequence[str] | None
) -> list[str]:
    """The analysed features: ``analysis.populations``, or the default set when it is empty."""
    kinds = feature_kinds(adata)
    if not cfg["populations"]:
        return _default_features(adata, kinds, frequencies_of)
    unknown = [p for p in cfg["populations"] if p not in kinds]
    if unknown:
        raise ConfigError(
            f"analysis.populations: {', '.join(unknown)} not in populations.h5ad (known: "
            f"{', '.join(kinds)})"
        )
    return list(cfg["populations"])


# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------
def _resolved_baselines(obs: pd.DataFrame, baseline_visit: str | Mapping[str, str]) -> dict:
    """Compartment -> baseline visit; a configured visit must be one of the compartment's."""
    visits = set(obs["visit"])
    if isinstance(baseline_visit, str) and baseline_visit and baseline_visit not in visits:
        raise ConfigError(
            f"analysis.baseline_visit {baseline_visit!r} is no sample's visit (visits: "
            f"{', '.join(visit_order(obs))}); set it to the baseline visit label"
        )
    baselines = baseline_visits(obs, baseline_visit)
    for compartment, visit in baselines.items():
        rows = obs[obs["compartment"] == compartment]
        if visit in set(rows["visit"]):
            continue
        own = visit_order(rows)
        key = (
            f"analysis.baseline_visit.{compartment}"
            if isinstance(baseline_visit, Mapping)
            else "analysis.baseline_visit"
        )
        raise ConfigError(
            f"{key} {visit!r} is no {compartment} sample's visit ({compartment} visits: "
            f"{', '.join(own)}); give {compartment} its baseline per compartment, e.g. "
            f"baseline_visit: {{{compartment}: {own[0]}}}"
        )
    return baselines


def _reference_arm(obs: pd.DataFrame, reference: str, arms: Sequence[str] | None) -> str:
    """The reference arm: as configured, else the last of ``arms`` (else of the sorted arms)."""
    present = sorted(set(obs["arm"]))
    chosen = reference or (list(arms)[-1] if arms else present[-1])
    if len(present) > 1 and chosen not in present:
        given = repr(reference) if reference else f'"" (the last of arms:, {chosen})'
        raise ConfigError(
            f"analysis.reference_arm {given} is no sample's arm (arms: "
            f"{', '.join(present)}); set it to one of them"
        )
    return chosen


def _response_visit(obs: pd.DataFrame, response: str, baselines: Mapping[str, str]) -> str:
    """The response visit: as configured, else the earliest visit after every baseline."""
    if response:
        return response
    order = visit_order(obs)
    last_baseline = max(order.index(visit) for visit in baselines.values())
    later = order[last_baseline + 1 :]
    return later[0] if later else ""


def _measures(adata: AnnData, obs: pd.DataFrame, measure: Mapping[str, str]) -> dict[str, str]:
    """Compartment -> measure (listed, else ``freq_parent``), each one the AnnData holds."""
    out = dict(measure)
    for compartment in sorted(set(obs["compartment"])):
        chosen = out.setdefault(compartment, DEFAULT_MEASURE)
        if chosen != "count" and chosen not in adata.layers:
            raise ConfigError(
                f"analysis.measure.{compartment} is {chosen} but populations.h5ad has no layer "
                f"{chosen!r}; use one of count, {', '.join(adata.layers)}"
            )
    return out


def _validated(
    adata: AnnData,
    analysis: Mapping[str, Any] | None,
    *,
    arms: Sequence[str] | None = None,
    frequencies_of: Sequence[str] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The analysis plan (see :func:`analysis_plan`) and the checked obs."""
    cfg = resolve_analysis(analysis)
    obs = _checked_obs(adata.obs)
    cfg["populations"] = _features(adata, cfg, frequencies_of)
    cfg["baseline_visit"] = _resolved_baselines(obs, cfg["baseline_visit"])
    cfg["reference_arm"] = _reference_arm(obs, cfg["reference_arm"], arms)
    cfg["response_visit"] = _response_visit(obs, cfg["response_visit"], cfg["baseline_visit"])
    cfg["measure"] = _measures(adata, obs, cfg["measure"])
    return cfg, obs


def analysis_plan(
    adata: AnnData,
    *,
    analysis: Mapping[str, Any] | None = None,
    arms: Sequence[str] | None = None,
    frequencies_of: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``analysis:`` section with every default resolved against one ``populations.h5ad``.

    Parameters
    ----------
    adata
        ``populations.h5ad`` as an :class:`anndata.AnnData`.
    analysis
        The ``analysis:`` config section (see :func:`resolve_analysis`).
    arms
        The config's arms in order (``arms:``); the reference arm ``""`` is the last of them
        (without them: the last arm in sorted order).
    frequencies_of
        The config's ``frequencies.of``: empty ``populations`` analyse every population at or
        below the first reference (through ``var``'s parent columns), every ratio and every MFI;
        no reference: every population. None: the references of the ``freq_<ref>`` layers.

    Returns
    -------
    dict
        The section with ``populations`` the analysed features in order, ``baseline_visit``
        compartment -> visit (``""``: the compartment's earliest visit), ``measure`` compartment ->
        measure for every compartment of the samples (unlisted: ``freq_parent``),
        ``reference_arm`` and ``response_visit`` (``""``: the earliest visit after every
        compartment's baseline; still ``""`` when there is none).

    Raises
    ------
    ConfigError, SampleSheetError
        A value the data cannot satisfy, or bad sample metadata (one-line message).
    """
    return _validated(adata, analysis, arms=arms, frequencies_of=frequencies_of)[0]
