"""What is analysed: one value per sample and feature, its log2, and its change from baseline.

Everything starts from ``populations.h5ad`` (samples x populations). A feature's value is:

* a population: one *measure* per compartment (``analysis.measure``: ``count``, ``freq_parent``,
  ``freq_<ref>`` or ``per_ul``; compartments not listed: ``freq_parent``);
* a ratio (``obsm['ratios']``): its value, measure ``ratio``;
* an MFI ``<population>:<marker>`` (``obsm['mfi_median']``): the linear median, measure ``mfi``; a
  median <= 0 has no log2 and is missing.

Values are analysed on the log2 scale, so that a change from baseline is a log2 ratio of a patient's
value to the same patient's value at the compartment's baseline visit.

Zeros have no log2; each is offset against its own denominator in the same sample, so that no
sample's value depends on another sample or patient (see :data:`ZERO_RULE`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import ConfigError
from ._aggregate import _row_parents
from ._analysis import _validated, at_baseline, baseline_visits, feature_kinds

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "MEASURES",
    "MEASURE_UNITS",
    "ZERO_RULE",
    "log2_fold_changes",
    "measure_table",
    "measure_unit",
    "missing_baselines",
]

#: Measures a compartment's populations can be analysed on: ``X`` (event counts) or a layer of
#: the AnnData; besides these, ``freq_<ref>`` for each reference of ``frequencies.of``.
MEASURES: tuple[str, ...] = ("count", "freq_parent", "per_ul")

#: What a measure is, for axis labels and table columns (``freq_<ref>``: see :func:`measure_unit`).
MEASURE_UNITS: dict[str, str] = {
    "count": "events",
    "freq_parent": "fraction of parent population",
    "per_ul": "cells/µL",
    "ratio": "ratio of counts",
    "mfi": "median fluorescence intensity",
}

#: How a zero gets a log2 value, from that sample's own counts only (one sentence per measure).
ZERO_RULE: str = (
    "A zero count is offset against its own denominator in the same sample before the logarithm: "
    "freq_parent and freq_<ref> of a zero count are (0 + 0.5) / (denominator count + 1), per_ul "
    "that fraction of the absolute reference times lymphocytes_per_ul, a ratio with a zero "
    "numerator (0 + 0.5) / (denominator count + 0.5); event counts get analysis.pseudocount "
    "added; non-zero values are unchanged. A zero whose denominator count is unknown has no "
    "log2 value."
)

_MEASURE_COLUMNS = [
    "sample_id", "patient_id", "arm", "compartment", "population", "visit", "cycle", "day",
    "measure", "value", "log2_value", "qc_flags", "missing",
]  # fmt: skip

_LOG2FC_COLUMNS = [
    "patient_id", "arm", "compartment", "population", "measure", "visit", "cycle", "day",
    "sample_id", "baseline_sample_id", "value", "baseline_value", "log2_value",
    "baseline_log2_value", "log2fc", "qc_flags", "baseline_qc_flags",
]  # fmt: skip

_MISSING_COLUMNS = [
    "patient_id", "arm", "compartment", "population", "measure", "visits_available", "reason",
]  # fmt: skip


def measure_unit(measure: str) -> str:
    """What a measure is: ``per_ul`` -> ``cells/µL``, ``freq_live`` -> ``fraction of live``."""
    if measure in MEASURE_UNITS:
        return MEASURE_UNITS[measure]
    if measure.startswith("freq_"):
        return f"fraction of {measure[len('freq_') :]}"
    return measure


def _dense(matrix: Any) -> np.ndarray:
    """A (possibly sparse) matrix as a dense float array."""
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)


# --------------------------------------------------------------------------------------------
# the long table of values
# --------------------------------------------------------------------------------------------
def measure_table(
    adata: AnnData,
    *,
    analysis: Mapping[str, Any] | None = None,
    arms: Sequence[str] | None = None,
    frequencies_of: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per sample and analysed feature: its value and its log2.

    Parameters
    ----------
    adata
        ``populations.h5ad`` as an :class:`anndata.AnnData`.
    analysis
        The ``analysis:`` config section (see :func:`resolve_analysis`).
    arms, frequencies_of
        The config's ``arms`` and ``frequencies.of`` (see :func:`analysis_plan`).

    Returns
    -------
    pandas.DataFrame
        Columns ``sample_id, patient_id, arm, compartment, population, visit, cycle, day, measure,
        value, log2_value, qc_flags, missing``; ``population`` names the feature. ``value`` is
        NaN where the sample has no value (e.g. no ``lymphocytes_per_ul``, an MFI median <= 0)
        and ``missing`` then says why when it is known (else ""); a feature without any value in
        a compartment (not gated in that panel) has no rows there. ``log2_value`` is
        ``log2(count + pseudocount)`` for the ``count`` measure and ``log2(median)`` for ``mfi``;
        for the other measures ``log2(value)``, where a zero (a zero count) is first offset
        against its own denominator in the same sample (:data:`ZERO_RULE`), so that a
        sample's ``log2_value`` depends only on that sample's counts. ``value`` itself stays the
        measured one (0).

    Raises
    ------
    ConfigError, SampleSheetError
        Bad ``analysis`` values or sample metadata (one-line message).
    """
    cfg, obs = _validated(adata, analysis, arms=arms, frequencies_of=frequencies_of)
    return _measure_table(adata, obs, cfg)


def _measure_table(adata: AnnData, obs: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`measure_table` of a resolved plan and checked obs."""
    kinds = feature_kinds(adata)
    frames = []
    for compartment in sorted(set(obs["compartment"])):
        frames += _compartment_frames(adata, obs, cfg, compartment, kinds)
    if not frames:
        return pd.DataFrame(columns=_MEASURE_COLUMNS)
    table = pd.concat(frames, ignore_index=True)[_MEASURE_COLUMNS]
    return _sorted(
        table,
        ["population", "compartment", "arm", "patient_id", "cycle", "day"],
        populations=cfg["populations"],
    )


def _raw_values(adata: AnnData, rows: np.ndarray, feature: str, kind: str, measure: str):
    """A feature's values of the samples ``rows``: the measure's column, or the ``obsm`` column."""
    if kind == "ratio":
        return adata.obsm["ratios"][feature].to_numpy(dtype=float)[rows]
    if kind == "mfi":
        return adata.obsm["mfi_median"][feature].to_numpy(dtype=float)[rows]
    source = adata.X if measure == "count" else adata.layers[measure]
    j = [str(v) for v in adata.var_names].index(feature)
    return _dense(source[rows][:, [j]])[:, 0] if len(rows) else np.empty(0)


def _flagged(flags: pd.Series, flag: str) -> np.ndarray:
    """Samples whose comma-separated ``qc_flags`` hold ``flag``."""
    return flags.map(lambda text: flag in text.split(",")).to_numpy(dtype=bool)


def _causes(
    raw: np.ndarray, feature: str, kind: str, measure: str, meta: pd.DataFrame
) -> np.ndarray:
    """Why a sample has no value of a feature, where it is known ("" otherwise)."""
    causes = np.full(len(raw), "", dtype=object)
    absent = ~np.isfinite(raw)
    if kind == "mfi":
        causes[np.isfinite(raw) & (raw <= 0)] = "median <= 0"
        causes[absent & _flagged(meta["qc_flags"], f"mfi_too_few_events:{feature}")] = (
            "too few events"
        )
    elif kind == "ratio":
        causes[absent & _flagged(meta["qc_flags"], f"ratio_zero_denominator:{feature}")] = (
            "zero denominator"
        )
    elif measure == "per_ul" and "lymphocytes_per_ul" in meta.columns:
        counts = pd.to_numeric(meta["lymphocytes_per_ul"], errors="coerce").to_numpy(dtype=float)
        causes[absent & np.isnan(counts)] = "lymphocytes_per_ul missing"
    return causes


def _compartment_frames(
    adata: AnnData,
    obs: pd.DataFrame,
    cfg: Mapping[str, Any],
    compartment: str,
    kinds: Mapping[str, str],
) -> list[pd.DataFrame]:
    """The rows of :func:`measure_table` of one compartment, one frame per feature it has."""
    measure = cfg["measure"][compartment]
    rows = np.flatnonzero((obs["compartment"] == compartment).to_numpy())
    meta = obs.iloc[rows]
    frames, population_values = [], []
    for feature in cfg["populations"]:
        kind = kinds[feature]
        own = measure if kind == "population" else kind
        raw = _raw_values(adata, rows, feature, kind, own)
        if kind == "population":
            population_values.append(raw)
        if np.isnan(raw).all():
            continue  # not gated in this compartment's panel
        value = np.where(raw > 0, raw, np.nan) if kind == "mfi" else raw
        offset = _zero_offsets(adata, rows, feature, kind, own, value)
        log2_value = _log2(value, measure=own, pseudocount=cfg["pseudocount"], offset=offset)
        causes = _causes(raw, feature, kind, own, meta)
        causes[(value == 0) & np.isnan(log2_value)] = "zero with unknown denominator"
        frames.append(
            pd.DataFrame(
                {
                    "sample_id": meta["sample_id"].to_numpy(),
                    "patient_id": meta["patient_id"].to_numpy(),
                    "arm": meta["arm"].to_numpy(),
                    "compartment": compartment,
                    "population": feature,
                    "visit": meta["visit"].to_numpy(),
                    "cycle": meta["cycle"].to_numpy(),
                    "day": meta["day"].to_numpy(),
                    "measure": own,
                    "value": value,
                    "log2_value": log2_value,
                    "qc_flags": meta["qc_flags"].to_numpy(),
                    "missing": causes,
                }
            )
        )
    measured = np.concatenate(population_values) if population_values else np.empty(0)
    if measure == "per_ul" and measured.size and np.isnan(measured).all():
        raise ConfigError(
            f"analysis.measure.{compartment} is per_ul but no {compartment} sample has "
            "lymphocytes_per_ul; add that column to samples.tsv or use a freq_<ref> measure"
        )
    return frames


def _log2(
    values: np.ndarray, *, measure: str, pseudocount: float, offset: np.ndarray | None = None
) -> np.ndarray:
    """log2 of a measure; a zero takes its ``offset`` value (:data:`ZERO_RULE`), NaN: no log2."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    valid = np.isfinite(values) & (values >= 0)
    if measure == "count":
        out[valid] = np.log2(values[valid] + pseudocount)
        return out
    positive = valid & (values > 0)
    out[positive] = np.log2(values[positive])
    if measure == "mfi" or offset is None:
        return out
    zero = valid & (values == 0) & np.isfinite(offset) & (offset > 0)
    out[zero] = np.log2(offset[zero])
    return out


def _zero_offsets(
    adata: AnnData, rows: np.ndarray, feature: str, kind: str, measure: str, value: np.ndarray
) -> np.ndarray | None:
    """The value each zero of a feature takes before log2 (:data:`ZERO_RULE`); NaN: unknown."""
    if measure in ("count", "mfi") or not (np.asarray(value) == 0).any():
        return None
    counts = _dense(adata.X[rows]) if len(rows) else np.empty((0, adata.n_vars))
    names = [str(v) for v in adata.var_names]
    if kind == "ratio":
        pair = dict(adata.uns.get("ratios", {})).get(feature)
        if pair is None or str(pair[1]) not in names:
            return np.full(len(rows), np.nan)
        return 0.5 / (counts[:, names.index(str(pair[1]))] + 0.5)
    if measure == "freq_parent":
        return 0.5 / (_parent_counts(adata, rows, feature, counts, names) + 1.0)
    if measure.startswith("freq_"):
        reference = measure[len("freq_") :]
        if reference not in names:
            return np.full(len(rows), np.nan)
        return 0.5 / (counts[:, names.index(reference)] + 1.0)
    if measure == "per_ul" and "lymphocytes_per_ul" in adata.obs.columns:
        per_ul = _dense(adata.layers["per_ul"][rows]) if len(rows) else counts * np.nan
        lymphocytes = pd.to_numeric(adata.obs["lymphocytes_per_ul"], errors="coerce")
        lymphocytes = lymphocytes.to_numpy(dtype=float)[rows]
        return 0.5 / (_reference_counts(counts, per_ul, lymphocytes) + 1.0) * lymphocytes
    return np.full(len(rows), np.nan)


def _parent_counts(
    adata: AnnData, rows: np.ndarray, feature: str, counts: np.ndarray, names: list[str]
) -> np.ndarray:
    """Each sample's count of its panel's parent of ``feature`` (NaN: a top population)."""
    j = names.index(feature)
    panels = adata.obs["panel"].astype(str).to_numpy()[rows] if "panel" in adata.obs else None
    parents = _row_parents(adata.var, j, panels, len(rows))
    out = np.full(len(rows), np.nan)
    for i, parent in enumerate(parents):
        if parent in names:
            out[i] = counts[i, names.index(parent)]
    return out


def _reference_counts(
    counts: np.ndarray, per_ul: np.ndarray, lymphocytes: np.ndarray
) -> np.ndarray:
    """Each sample's count of the absolute reference, from its own non-zero ``per_ul`` values.

    ``per_ul = count / reference count x lymphocytes_per_ul``, so any population of the sample
    with a positive count and ``per_ul`` gives the reference count; the largest count is used.
    """
    out = np.full(len(counts), np.nan)
    usable = np.isfinite(counts) & (counts > 0) & np.isfinite(per_ul) & (per_ul > 0)
    for i in np.flatnonzero(usable.any(axis=1)):
        k = np.flatnonzero(usable[i])[np.argmax(counts[i, usable[i]])]
        out[i] = np.round(counts[i, k] * lymphocytes[i] / per_ul[i, k])
    return out


def _sorted(
    table: pd.DataFrame, keys: Sequence[str], *, populations: Sequence[str] | None = None
) -> pd.DataFrame:
    """Sort rows deterministically: features in config order, visits in clinical order."""
    order = []
    helper = table.copy()
    for key in keys:
        if key == "population" and populations is not None:
            rank = {p: i for i, p in enumerate(populations)}
            helper["_population_rank"] = helper["population"].map(rank).fillna(len(rank))
            order += ["_population_rank", "population"]
        else:
            order.append(key)
    helper = helper.sort_values(order, kind="mergesort", na_position="first")
    return helper[list(table.columns)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# change from baseline
# --------------------------------------------------------------------------------------------
def log2_fold_changes(
    values: pd.DataFrame, *, baseline_visit: str | Mapping[str, str]
) -> pd.DataFrame:
    """log2 ratio of each sample's value to the same patient's baseline value.

    Parameters
    ----------
    values
        Output of :func:`measure_table`.
    baseline_visit
        Visit label of the baseline, or compartment -> visit (``""`` or a compartment left out:
        its earliest visit, see :func:`baseline_visits`).

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id, arm, compartment, population, measure, visit, cycle, day,
        sample_id, baseline_sample_id, value, baseline_value, log2_value, baseline_log2_value,
        log2fc, qc_flags, baseline_qc_flags``; only where both values exist. The baseline visit
        itself is included (``log2fc`` = 0).
    """
    finite = values[np.isfinite(values["log2_value"].to_numpy(dtype=float))]
    base = finite.loc[
        at_baseline(finite, baseline_visits(values, baseline_visit)),
        ["patient_id", "compartment", "population", "sample_id", "value", "log2_value", "qc_flags"],
    ].rename(
        columns={
            "sample_id": "baseline_sample_id",
            "value": "baseline_value",
            "log2_value": "baseline_log2_value",
            "qc_flags": "baseline_qc_flags",
        }
    )
    merged = finite.merge(base, on=["patient_id", "compartment", "population"], how="inner")
    merged["log2fc"] = merged["log2_value"] - merged["baseline_log2_value"]
    populations = list(dict.fromkeys(values["population"]))
    return _sorted(
        merged[_LOG2FC_COLUMNS],
        ["population", "compartment", "arm", "patient_id", "cycle", "day"],
        populations=populations,
    )


def missing_baselines(
    values: pd.DataFrame, *, baseline_visit: str | Mapping[str, str]
) -> pd.DataFrame:
    """Samples that cannot be related to a baseline value: no baseline sample, or no value.

    Parameters
    ----------
    values
        Output of :func:`measure_table`.
    baseline_visit
        Visit label of the baseline, or compartment -> visit (as in :func:`log2_fold_changes`).

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id, arm, compartment, population, measure, visits_available, reason``.
        Per patient and compartment: one row when the patient has no sample at the baseline
        visit (``population`` and ``measure`` empty: every feature); else one row per sample,
        measure and cause of the features (``population``, comma-separated) without a value in
        that sample, e.g. ``C1D1 sample S has no per_ul value (lymphocytes_per_ul missing)`` or
        ``C1D8 sample S has no mfi value (median <= 0)``. ``visits_available`` lists the
        patient's visits in that compartment in clinical order, separated by commas.
    """
    rows: list[tuple] = []
    if values.empty:
        return pd.DataFrame(columns=_MISSING_COLUMNS)
    baselines = baseline_visits(values, baseline_visit)
    for (patient, compartment), group in values.groupby(["patient_id", "compartment"], sort=True):
        samples = group.drop_duplicates("sample_id").sort_values(["cycle", "day", "visit"])
        where = (patient, group["arm"].iloc[0], compartment)
        visits = ",".join(samples["visit"])
        baseline = baselines[compartment]
        if baseline not in set(samples["visit"]):
            rows.append((*where, "", "", visits, f"no {baseline} sample"))
            continue
        for reason, measure, features in _missing_values(group, samples):
            rows.append((*where, ",".join(features), measure, visits, reason))
    return pd.DataFrame(rows, columns=_MISSING_COLUMNS)


def _missing_values(group: pd.DataFrame, samples: pd.DataFrame) -> list[tuple[str, str, list]]:
    """(reason, measure, features) of each sample's features without a log2 value."""
    lacking = group[~np.isfinite(group["log2_value"].to_numpy(dtype=float))]
    if lacking.empty:  # most patients of a trial: every value there
        return []
    if "missing" not in lacking.columns:  # a table not made by measure_table: causes unknown
        lacking = lacking.assign(missing="")
    found = []
    cells = dict(list(lacking.groupby("sample_id", sort=False)))
    for sample in samples.itertuples(index=False):
        cell = cells.get(sample.sample_id)
        if cell is None:
            continue
        for (measure, cause), features in cell.groupby(["measure", "missing"], sort=False):
            reason = f"{sample.visit} sample {sample.sample_id} has no {measure} value"
            reason += f" ({cause})" if cause else ""
            found.append((reason, measure, list(features["population"])))
    return found
