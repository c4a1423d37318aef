"""What is analysed: the ``analysis:`` config, checked sample metadata, the measure and its log2.

Everything starts from ``populations.h5ad`` (samples x populations). The analysed value of a
population is one *measure* per compartment (``analysis.measure``: ``count``, ``freq_parent``,
``freq_live`` or ``per_ul``), analysed on the log2 scale, so that a change from baseline is a log2
ratio of a patient's value to the same patient's baseline value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..config import check_section
from ..errors import ConfigError, SampleSheetError

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "MEASURES",
    "MEASURE_UNITS",
    "log2_fold_changes",
    "measure_table",
    "missing_baselines",
    "resolve_analysis",
    "visit_order",
]

#: Measures a compartment can be analysed on: ``X`` (event counts) or a layer of the AnnData.
MEASURES: tuple[str, ...] = ("count", "freq_parent", "freq_live", "per_ul")

#: What a measure is, for axis labels and table columns.
MEASURE_UNITS: dict[str, str] = {
    "count": "events",
    "freq_parent": "fraction of parent gate",
    "freq_live": "fraction of live cells",
    "per_ul": "cells/µL",
}

_OBS_REQUIRED = ("patient_id", "arm", "visit", "cycle", "day", "compartment")

_MEASURE_COLUMNS = [
    "sample_id", "patient_id", "arm", "compartment", "population", "visit", "cycle", "day",
    "measure", "value", "log2_value", "qc_flags",
]  # fmt: skip

_LOG2FC_COLUMNS = [
    "patient_id", "arm", "compartment", "population", "measure", "visit", "cycle", "day",
    "sample_id", "baseline_sample_id", "value", "baseline_value", "log2_value",
    "baseline_log2_value", "log2fc", "qc_flags", "baseline_qc_flags",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# configuration and metadata
# --------------------------------------------------------------------------------------------
def resolve_analysis(analysis: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``analysis:`` config section checked against the schema, with its defaults filled in.

    The schema (``cytotrial/schemas/config.schema.yaml``) holds every key's default and allowed
    values; this is :func:`cytotrial.config.check_section` for the ``analysis`` section, kept for
    library users who call a statistics step directly.

    Parameters
    ----------
    analysis
        The workflow config section ``analysis:`` (None: every default). ``measure`` is filled
        per compartment, so ``{"measure": {"blood": "count"}}`` keeps the default tumor measure.

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
        out["qc_flags"] = out["qc_flags"].fillna("").astype(str)
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


def _check_measures(adata: AnnData, cfg: Mapping[str, Any], obs: pd.DataFrame) -> None:
    """Every compartment of the samples has a configured measure that the AnnData holds."""
    for compartment in sorted(set(obs["compartment"])):
        if compartment not in cfg["measure"]:
            raise ConfigError(
                f"analysis.measure has no entry for compartment {compartment!r}; add one of "
                f"{', '.join(MEASURES)}"
            )
        measure = cfg["measure"][compartment]
        if measure != "count" and measure not in adata.layers:
            raise ConfigError(
                f"analysis.measure.{compartment} is {measure} but populations.h5ad has no layer "
                f"{measure!r}; use one of count, {', '.join(adata.layers.keys())}"
            )


def _validated(
    adata: AnnData, analysis: Mapping[str, Any] | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Check ``analysis`` against the data; return the resolved config and the checked obs."""
    cfg = resolve_analysis(analysis)
    obs = _checked_obs(adata.obs)
    var_names = [str(v) for v in adata.var_names]
    unknown = [p for p in cfg["populations"] if p not in var_names]
    if unknown:
        raise ConfigError(
            f"analysis.populations: {', '.join(unknown)} not in populations.h5ad (known: "
            f"{', '.join(var_names)})"
        )
    visits = set(obs["visit"])
    if cfg["baseline_visit"] not in visits:
        raise ConfigError(
            f"analysis.baseline_visit {cfg['baseline_visit']!r} is no sample's visit (visits: "
            f"{', '.join(visit_order(obs))}); set it to the baseline visit label"
        )
    arms = sorted(set(obs["arm"]))
    if len(arms) > 1 and cfg["reference_arm"] not in arms:
        raise ConfigError(
            f"analysis.reference_arm {cfg['reference_arm']!r} is no sample's arm (arms: "
            f"{', '.join(arms)}); set it to one of them"
        )
    _check_measures(adata, cfg, obs)
    return cfg, obs


def _dense(matrix: Any) -> np.ndarray:
    """A (possibly sparse) matrix as a dense float array."""
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)


# --------------------------------------------------------------------------------------------
# the long tables
# --------------------------------------------------------------------------------------------
def measure_table(adata: AnnData, *, analysis: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per sample and analysed population: the configured measure and its log2.

    Parameters
    ----------
    adata
        ``populations.h5ad`` as an :class:`anndata.AnnData`.
    analysis
        The ``analysis:`` config section (see :func:`resolve_analysis`).

    Returns
    -------
    pandas.DataFrame
        Columns ``sample_id, patient_id, arm, compartment, population, visit, cycle, day, measure,
        value, log2_value, qc_flags``. ``value`` is NaN where the sample has no value (e.g. no
        ``lymphocytes_per_ul``); a population without any value in a compartment (not gated in
        that panel) has no rows there. ``log2_value`` is ``log2(count + pseudocount)`` for the
        ``count`` measure; for the other measures zeros are replaced by half the smallest
        positive value of that population in that compartment before taking log2.

    Raises
    ------
    ConfigError, SampleSheetError
        Bad ``analysis`` values or sample metadata (one-line message).
    """
    cfg, obs = _validated(adata, analysis)
    frames = []
    for compartment in sorted(set(obs["compartment"])):
        frames += _compartment_frames(adata, obs, cfg, compartment)
    if not frames:
        return pd.DataFrame(columns=_MEASURE_COLUMNS)
    table = pd.concat(frames, ignore_index=True)[_MEASURE_COLUMNS]
    return _sorted(
        table,
        ["population", "compartment", "arm", "patient_id", "cycle", "day"],
        populations=cfg["populations"],
    )


def _compartment_frames(
    adata: AnnData, obs: pd.DataFrame, cfg: Mapping[str, Any], compartment: str
) -> list[pd.DataFrame]:
    """The rows of :func:`measure_table` of one compartment, one frame per gated population."""
    var_names = [str(v) for v in adata.var_names]
    columns = [var_names.index(p) for p in cfg["populations"]]
    measure = cfg["measure"][compartment]
    source = adata.X if measure == "count" else adata.layers[measure]
    rows = np.flatnonzero((obs["compartment"] == compartment).to_numpy())
    values = _dense(source[rows][:, columns]) if len(rows) else np.empty((0, len(columns)))
    if measure == "per_ul" and len(rows) and np.isnan(values).all():
        raise ConfigError(
            f"analysis.measure.{compartment} is per_ul but no {compartment} sample has "
            "lymphocytes_per_ul; add that column to samples.tsv or use freq_live"
        )
    meta = obs.iloc[rows]
    frames = []
    for j, population in enumerate(cfg["populations"]):
        column = values[:, j]
        if np.isnan(column).all():
            continue  # not gated in this compartment's panel
        frames.append(
            pd.DataFrame(
                {
                    "sample_id": meta["sample_id"].to_numpy(),
                    "patient_id": meta["patient_id"].to_numpy(),
                    "arm": meta["arm"].to_numpy(),
                    "compartment": compartment,
                    "population": population,
                    "visit": meta["visit"].to_numpy(),
                    "cycle": meta["cycle"].to_numpy(),
                    "day": meta["day"].to_numpy(),
                    "measure": measure,
                    "value": column,
                    "log2_value": _log2(column, measure=measure, pseudocount=cfg["pseudocount"]),
                    "qc_flags": meta["qc_flags"].to_numpy(),
                }
            )
        )
    return frames


def _log2(values: np.ndarray, *, measure: str, pseudocount: float) -> np.ndarray:
    """log2 of a measure; zeros handled as documented in :func:`measure_table`."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    valid = np.isfinite(values) & (values >= 0)
    if measure == "count":
        out[valid] = np.log2(values[valid] + pseudocount)
        return out
    positive = valid & (values > 0)
    if not positive.any():
        return out
    floor = values[positive].min() / 2.0
    out[valid] = np.log2(np.where(values[valid] > 0, values[valid], floor))
    return out


def _sorted(
    table: pd.DataFrame, keys: Sequence[str], *, populations: Sequence[str] | None = None
) -> pd.DataFrame:
    """Sort rows deterministically: populations in config order, visits in clinical order."""
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


def log2_fold_changes(values: pd.DataFrame, *, baseline_visit: str) -> pd.DataFrame:
    """log2 ratio of each sample's value to the same patient's baseline value.

    Parameters
    ----------
    values
        Output of :func:`measure_table`.
    baseline_visit
        Visit label of the baseline.

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
        finite["visit"] == baseline_visit,
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


def missing_baselines(values: pd.DataFrame, *, baseline_visit: str) -> pd.DataFrame:
    """Patients whose samples in a compartment cannot be related to a baseline value.

    Parameters
    ----------
    values
        Output of :func:`measure_table`.
    baseline_visit
        Visit label of the baseline.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id, arm, compartment, visits_available, reason``; one row per patient
        and compartment with samples but no baseline sample, or with a baseline sample lacking a
        value for a population that has values at other visits. ``visits_available`` lists the
        patient's visits in that compartment in clinical order, separated by commas.
    """
    columns = ["patient_id", "arm", "compartment", "visits_available", "reason"]
    rows = []
    if values.empty:
        return pd.DataFrame(columns=columns)
    for (patient, compartment), group in values.groupby(["patient_id", "compartment"], sort=True):
        samples = group.drop_duplicates("sample_id").sort_values(["cycle", "day", "visit"])
        reason = _missing_reason(group, set(samples["visit"]), baseline_visit=baseline_visit)
        if reason is None:
            continue
        visits = ",".join(samples["visit"])
        rows.append((patient, group["arm"].iloc[0], compartment, visits, reason))
    return pd.DataFrame(rows, columns=columns)


def _missing_reason(group: pd.DataFrame, visits: set[str], *, baseline_visit: str) -> str | None:
    """Why one patient's samples in one compartment lack a baseline value (None: they do not)."""
    measure = group["measure"].iloc[0]
    if baseline_visit not in visits:
        return f"no {baseline_visit} sample"
    finite = np.isfinite(group["log2_value"].to_numpy(dtype=float))
    at_base = (group["visit"] == baseline_visit).to_numpy()
    measured_later = set(group.loc[finite & ~at_base, "population"])
    measured_base = set(group.loc[finite & at_base, "population"])
    lacking = [p for p in dict.fromkeys(group["population"]) if p in measured_later - measured_base]
    if not lacking:
        return None
    sample = group.loc[at_base, "sample_id"].iloc[0]
    if not measured_base:
        reason = f"{baseline_visit} sample {sample} has no {measure} value"
        if measure == "per_ul":
            reason += " (lymphocytes_per_ul missing)"
        return reason
    return f"{baseline_visit} sample {sample} has no {measure} value for {', '.join(lacking)}"
