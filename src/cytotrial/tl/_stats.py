"""What treatment did: change from baseline, arm comparisons, mixed models and the outcome link.

Everything here starts from ``populations.h5ad`` (samples x populations) and ends in tidy tables.
The analysed value of a population is one *measure* per compartment (``analysis.measure``:
``count``, ``freq_parent``, ``freq_live`` or ``per_ul``), analysed on the log2 scale, so that a
change from baseline is a log2 ratio of a patient's value to the same patient's baseline value.

Tables (each one tidy TSV, rows sorted, floats written with 6 significant digits):

``log2fc``
    One row per patient, compartment, population and visit with a baseline: value, baseline
    value, log2 fold change, ``qc_flags`` of both samples.
``missing_baseline``
    Patients (per compartment) whose samples cannot be related to a baseline, and why.
``summary``
    Per arm, compartment, population and visit: value median and IQR, mean log2 fold change with
    its t-interval.
``change_from_baseline``
    Within each arm, Wilcoxon signed-rank test of each visit against baseline, with the
    Hodges-Lehmann estimate (median of Walsh averages) and its exact distribution-free interval.
``arm_comparison``
    Between arms, Mann-Whitney test of the log2 fold change at each visit, with the Hodges-Lehmann
    shift (arm minus reference arm) and its exact distribution-free interval.
``mixed_model``
    Per population and compartment, a linear mixed model of the log2 value on arm, visit and their
    interaction with a random intercept per patient.
``response``
    Objective response rate per arm (Clopper-Pearson interval) and the early change in responders
    versus non-responders (Mann-Whitney, Hodges-Lehmann shift).

Benjamini-Hochberg q-values are computed within each table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from ..errors import ConfigError, SampleSheetError

__all__ = [
    "DEFAULT_ANALYSIS",
    "MEASURES",
    "MEASURE_UNITS",
    "RESPONSE_CATEGORIES",
    "STAT_TABLES",
    "arm_comparison",
    "bh_qvalues",
    "compute_tables",
    "hodges_lehmann_ci",
    "hodges_lehmann_shift_ci",
    "log2_fold_changes",
    "measure_table",
    "missing_baselines",
    "mixed_models",
    "read_patients",
    "resolve_analysis",
    "response_table",
    "summary_table",
    "t_interval",
    "visit_order",
    "within_arm_changes",
    "write_stats",
    "write_tsv",
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

#: Defaults of the workflow config section ``analysis:``.
DEFAULT_ANALYSIS: dict[str, Any] = {
    "baseline_visit": "C1D1",
    "measure": {"blood": "per_ul", "tumor": "freq_parent"},
    "populations": ["cd3", "cd4", "cd8", "treg", "nk", "cd8_ki67"],
    "reference_arm": "NIVO",
    "response_visit": "C1D8",
    "alpha": 0.05,
    "pseudocount": 1.0,
}

#: Names of the tables :func:`write_stats` can write (file name = name + ``.tsv``).
STAT_TABLES: tuple[str, ...] = (
    "log2fc",
    "missing_baseline",
    "summary",
    "change_from_baseline",
    "arm_comparison",
    "mixed_model",
    "response",
)

#: Allowed ``best_response`` values (RECIST); ``NE`` = not evaluable (also used for a blank cell).
RESPONSE_CATEGORIES: tuple[str, ...] = ("CR", "PR", "SD", "PD", "NE")
_RESPONDERS = ("CR", "PR")

_OBS_REQUIRED = ("patient_id", "arm", "visit", "cycle", "day", "compartment")
_FLOAT_FORMAT = "%.6g"
_INTERCEPT = "Intercept"


# --------------------------------------------------------------------------------------------
# configuration and metadata
# --------------------------------------------------------------------------------------------
def resolve_analysis(analysis: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``analysis`` over :data:`DEFAULT_ANALYSIS` and check every value.

    Parameters
    ----------
    analysis
        The workflow config section ``analysis:`` (keys not listed in the defaults are ignored).
        ``measure`` is merged per compartment, so ``{"measure": {"blood": "count"}}`` keeps the
        default tumor measure.

    Returns
    -------
    dict
        A complete, checked copy.

    Raises
    ------
    ConfigError
        A value has the wrong type or is out of range.
    """
    if analysis is not None and not isinstance(analysis, Mapping):
        raise ConfigError("config 'analysis' must be a mapping of options; see config/README.md")
    user = dict(analysis or {})
    cfg = {key: value for key, value in DEFAULT_ANALYSIS.items()}
    cfg["measure"] = dict(DEFAULT_ANALYSIS["measure"])
    cfg["populations"] = list(DEFAULT_ANALYSIS["populations"])
    for key in DEFAULT_ANALYSIS:
        if key not in user or user[key] is None:
            continue
        if key == "measure":
            if not isinstance(user[key], Mapping):
                raise ConfigError(
                    "analysis.measure must map compartment to measure, e.g. {blood: per_ul}"
                )
            cfg["measure"].update({str(k): v for k, v in user[key].items()})
        else:
            cfg[key] = user[key]

    for key in ("baseline_visit", "reference_arm", "response_visit"):
        if not isinstance(cfg[key], str) or not cfg[key]:
            raise ConfigError(f"analysis.{key} must be a non-empty text, got {cfg[key]!r}")
    for compartment, measure in cfg["measure"].items():
        if measure not in MEASURES:
            raise ConfigError(
                f"analysis.measure.{compartment} is {measure!r}; use one of {', '.join(MEASURES)}"
            )
    pops = cfg["populations"]
    if isinstance(pops, str) or not isinstance(pops, Sequence) or len(pops) == 0:
        raise ConfigError("analysis.populations must be a non-empty list of population names")
    if len(set(pops)) != len(pops):
        raise ConfigError("analysis.populations lists a population twice; list each once")
    cfg["populations"] = [str(p) for p in pops]
    try:
        alpha = float(cfg["alpha"])
    except (TypeError, ValueError):
        alpha = float("nan")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(
            f"analysis.alpha must be between 0 and 1 (e.g. 0.05), got {cfg['alpha']!r}"
        )
    cfg["alpha"] = alpha
    try:
        pseudocount = float(cfg["pseudocount"])
    except (TypeError, ValueError):
        pseudocount = float("nan")
    if not pseudocount > 0.0:
        raise ConfigError(
            f"analysis.pseudocount must be a positive number (e.g. 1), got {cfg['pseudocount']!r}"
        )
    cfg["pseudocount"] = pseudocount
    return cfg


def _checked_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Sample metadata with the columns the statistics need, typed and checked."""
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

    arms = out.groupby("patient_id", observed=True)["arm"].nunique()
    if (arms > 1).any():
        patient = arms.index[(arms > 1).to_numpy()][0]
        names = sorted(out.loc[out["patient_id"] == patient, "arm"].unique())
        raise SampleSheetError(
            f"patient {patient} is in more than one arm ({', '.join(names)}); give each patient "
            "one arm in samples.tsv"
        )
    key = ["patient_id", "compartment", "visit"]
    dup = out.duplicated(key, keep=False)
    if dup.any():
        first = out.loc[dup].sort_values(key + ["sample_id"]).iloc[0]
        same = out.loc[
            (out["patient_id"] == first["patient_id"])
            & (out["compartment"] == first["compartment"])
            & (out["visit"] == first["visit"]),
            "sample_id",
        ]
        raise SampleSheetError(
            f"samples {', '.join(sorted(same))} are all patient {first['patient_id']}, visit "
            f"{first['visit']}, compartment {first['compartment']}; keep one per visit in "
            "samples.tsv"
        )
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


def _validated(adata: Any, analysis: Mapping[str, Any] | None) -> tuple[dict, pd.DataFrame]:
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
    return cfg, obs


def _dense(matrix: Any) -> np.ndarray:
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=float)


# --------------------------------------------------------------------------------------------
# the long tables
# --------------------------------------------------------------------------------------------
def measure_table(adata: Any, *, analysis: Mapping[str, Any] | None = None) -> pd.DataFrame:
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
    var_names = [str(v) for v in adata.var_names]
    columns = [var_names.index(p) for p in cfg["populations"]]
    frames = []
    for compartment in sorted(set(obs["compartment"])):
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
                        "log2_value": _log2(
                            column, measure=measure, pseudocount=cfg["pseudocount"]
                        ),
                        "qc_flags": meta["qc_flags"].to_numpy(),
                    }
                )
            )
    columns_out = [
        "sample_id", "patient_id", "arm", "compartment", "population", "visit", "cycle", "day",
        "measure", "value", "log2_value", "qc_flags",
    ]  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=columns_out)
    table = pd.concat(frames, ignore_index=True)[columns_out]
    return _sorted(
        table,
        ["population", "compartment", "arm", "patient_id", "cycle", "day"],
        populations=cfg["populations"],
    )


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
    columns = [
        "patient_id", "arm", "compartment", "population", "measure", "visit", "cycle", "day",
        "sample_id", "baseline_sample_id", "value", "baseline_value", "log2_value",
        "baseline_log2_value", "log2fc", "qc_flags", "baseline_qc_flags",
    ]  # fmt: skip
    populations = list(dict.fromkeys(values["population"]))
    return _sorted(
        merged[columns],
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
        visits = ",".join(samples["visit"])
        arm = group["arm"].iloc[0]
        measure = group["measure"].iloc[0]
        if baseline_visit not in set(samples["visit"]):
            reason = f"no {baseline_visit} sample"
        else:
            finite = np.isfinite(group["log2_value"].to_numpy(dtype=float))
            at_base = (group["visit"] == baseline_visit).to_numpy()
            measured_later = set(group.loc[finite & ~at_base, "population"])
            measured_base = set(group.loc[finite & at_base, "population"])
            lacking = [
                p for p in dict.fromkeys(group["population"]) if p in measured_later - measured_base
            ]
            if not lacking:
                continue
            sample = group.loc[at_base, "sample_id"].iloc[0]
            if not measured_base:
                reason = f"{baseline_visit} sample {sample} has no {measure} value"
                if measure == "per_ul":
                    reason += " (lymphocytes_per_ul missing)"
            else:
                reason = (
                    f"{baseline_visit} sample {sample} has no {measure} value for "
                    f"{', '.join(lacking)}"
                )
        rows.append((patient, arm, compartment, visits, reason))
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# interval estimates and multiplicity
# --------------------------------------------------------------------------------------------
def bh_qvalues(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (statsmodels ``fdr_bh``); NaN p-values stay NaN and do not count.

    Parameters
    ----------
    p_values
        Raw p-values of one family of tests.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def t_interval(
    values: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean and its two-sided ``1 - alpha`` Student-t interval.

    Returns
    -------
    tuple
        ``(mean, low, high)``; low/high are NaN for fewer than two values.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(np.mean(x))
    if len(x) < 2:
        return (mean, math.nan, math.nan)
    half = float(sps.t.ppf(1 - alpha / 2, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))
    return (mean, mean - half, mean + half)


_EXACT_SIGNED_RANK_MAX_N = 200
_EXACT_RANK_SUM_MAX_MN = 40_000


def _signed_rank_cdf(n: int) -> np.ndarray:
    """``P(T+ <= t)``, ``t = 0 .. n(n+1)/2``, under H0 (no ties); normal approximation for big n."""
    total = n * (n + 1) // 2
    if n > _EXACT_SIGNED_RANK_MAX_N:
        mean = total / 2.0
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
        return sps.norm.cdf((np.arange(total + 1) + 0.5 - mean) / sd)
    pmf = np.zeros(total + 1)
    pmf[0] = 1.0
    for rank in range(1, n + 1):  # generating function prod (1 + q^rank) / 2
        shifted = np.zeros_like(pmf)
        shifted[rank:] = pmf[:-rank]
        pmf = 0.5 * (pmf + shifted)
    return np.cumsum(pmf)


def _rank_sum_cdf(m: int, n: int) -> np.ndarray:
    """``P(U <= u)`` for ``u = 0 .. m*n`` of the Mann-Whitney U under H0 (no ties).

    Exact from the Gaussian binomial coefficient ``[m+n choose m]_q`` (normalised at each step);
    normal approximation for large samples.
    """
    total = m * n
    if total > _EXACT_RANK_SUM_MAX_MN:
        mean = total / 2.0
        sd = math.sqrt(m * n * (m + n + 1) / 12.0)
        return sps.norm.cdf((np.arange(total + 1) + 0.5 - mean) / sd)
    if m > n:
        m, n = n, m
    poly = np.zeros(total + 1)
    poly[0] = 1.0
    for i in range(1, m + 1):
        # multiply by (1 - q^(n+i))
        shifted = np.zeros_like(poly)
        shifted[n + i :] = poly[: total + 1 - (n + i)]
        poly = poly - shifted
        # divide by (1 - q^i): r[k] = p[k] + r[k - i], a strided cumulative sum
        padded = np.zeros(((total + 1 + i - 1) // i) * i)
        padded[: total + 1] = poly
        poly = np.cumsum(padded.reshape(-1, i), axis=0).reshape(-1)[: total + 1]
        poly *= i / (n + i)  # keeps the total mass at 1
    poly = np.clip(poly, 0.0, None)
    return np.minimum(np.cumsum(poly), 1.0)


def _interval_rank(cdf: np.ndarray, alpha: float) -> int:
    """Largest ``c`` with ``P(stat <= c - 1) <= alpha/2``; 0 when no such interval exists."""
    below = np.flatnonzero(cdf <= alpha / 2 + 1e-12)
    return int(below[-1] + 1) if len(below) else 0


def hodges_lehmann_ci(
    values: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """One-sample Hodges-Lehmann estimate (median of Walsh averages) and its exact interval.

    The interval inverts the Wilcoxon signed-rank test (Hollander & Wolfe): the ``c``-th smallest
    and ``c``-th largest Walsh average, ``c`` from the exact null distribution of the signed-rank
    statistic (ignoring ties; normal approximation above 200 values).

    Returns
    -------
    tuple
        ``(estimate, low, high)``; low/high are NaN when the sample is too small for a
        ``1 - alpha`` interval (fewer than 6 values at alpha 0.05).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2.0)
    estimate = float(np.median(walsh))
    c = _interval_rank(_signed_rank_cdf(n), alpha)
    if c == 0:
        return (estimate, math.nan, math.nan)
    return (estimate, float(walsh[c - 1]), float(walsh[len(walsh) - c]))


def hodges_lehmann_shift_ci(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Two-sample Hodges-Lehmann shift ``x - y`` (median of pairwise differences) and interval.

    The interval inverts the Mann-Whitney test: the ``c``-th smallest and ``c``-th largest
    pairwise difference, ``c`` from the exact null distribution of U (ignoring ties; normal
    approximation when ``len(x) * len(y) > 40000``).

    Returns
    -------
    tuple
        ``(estimate, low, high)``; low/high NaN when the samples are too small for a
        ``1 - alpha`` interval (e.g. 3 vs 3 at alpha 0.05).
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return (math.nan, math.nan, math.nan)
    diffs = np.sort(np.subtract.outer(a, b).ravel())
    estimate = float(np.median(diffs))
    c = _interval_rank(_rank_sum_cdf(len(a), len(b)), alpha)
    if c == 0:
        return (estimate, math.nan, math.nan)
    return (estimate, float(diffs[c - 1]), float(diffs[len(diffs) - c]))


def _signed_rank_p(x: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1 when every difference is 0, NaN if untestable."""
    if len(x) == 0:
        return math.nan
    if np.all(x == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(sps.wilcoxon(x, alternative="two-sided").pvalue)
        except ValueError:
            return math.nan


def _rank_sum_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Mann-Whitney p-value; NaN if either group is empty."""
    if len(x) == 0 or len(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p = float(sps.mannwhitneyu(x, y, alternative="two-sided").pvalue)
        except ValueError:
            return math.nan
    return p if np.isfinite(p) else math.nan


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
def summary_table(
    values: pd.DataFrame, log2fc: pd.DataFrame, *, alpha: float = 0.05
) -> pd.DataFrame:
    """Per arm, compartment, population and visit: value median/IQR and mean log2 fold change.

    Parameters
    ----------
    values
        Output of :func:`measure_table` (every sample, with or without a baseline).
    log2fc
        Output of :func:`log2_fold_changes`.
    alpha
        The interval is a two-sided ``1 - alpha`` Student-t interval of the mean log2 fold change.

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, arm, visit, cycle, day, measure, unit, n_patients,
        median, q1, q3, n_log2fc, mean_log2fc, ci_low, ci_high``. ``n_patients`` counts patients
        with a value; ``n_log2fc`` those who also have a baseline.
    """
    keys = ["arm", "compartment", "population", "visit"]
    finite = values[np.isfinite(values["value"].to_numpy(dtype=float))]
    rows = []
    for key, group in finite.groupby(keys, sort=False):
        v = group["value"].to_numpy(dtype=float)
        rows.append(
            dict(
                zip(keys, key),
                cycle=int(group["cycle"].iloc[0]),
                day=int(group["day"].iloc[0]),
                measure=group["measure"].iloc[0],
                n_patients=int(group["patient_id"].nunique()),
                median=float(np.median(v)),
                q1=float(np.percentile(v, 25)),
                q3=float(np.percentile(v, 75)),
            )
        )
    summary = pd.DataFrame(rows)
    columns = [
        "population", "compartment", "arm", "visit", "cycle", "day", "measure", "unit",
        "n_patients", "median", "q1", "q3", "n_log2fc", "mean_log2fc", "ci_low", "ci_high",
    ]  # fmt: skip
    if summary.empty:
        return pd.DataFrame(columns=columns)
    fc_rows = []
    for key, group in log2fc.groupby(keys, sort=False):
        mean, low, high = t_interval(group["log2fc"].to_numpy(dtype=float), alpha=alpha)
        fc_rows.append(
            dict(zip(keys, key), n_log2fc=len(group), mean_log2fc=mean, ci_low=low, ci_high=high)
        )
    fc = pd.DataFrame(fc_rows, columns=keys + ["n_log2fc", "mean_log2fc", "ci_low", "ci_high"])
    summary = summary.merge(fc, on=keys, how="left")
    summary["n_log2fc"] = summary["n_log2fc"].fillna(0).astype(int)
    summary["unit"] = summary["measure"].map(MEASURE_UNITS)
    populations = list(dict.fromkeys(values["population"]))
    return _sorted(
        summary[columns],
        ["population", "compartment", "arm", "cycle", "day", "visit"],
        populations=populations,
    )


def within_arm_changes(
    log2fc: pd.DataFrame, *, baseline_visit: str, alpha: float = 0.05
) -> pd.DataFrame:
    """Within each arm, each on-treatment visit against baseline (paired Wilcoxon signed-rank).

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    baseline_visit
        Visit label of the baseline (not tested against itself).
    alpha
        Level of the interval (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, arm, visit, measure, n, median_log2fc, hl_log2fc,
        ci_low, ci_high, p_value, q_value``. ``median_log2fc`` is the sample median;
        ``hl_log2fc`` the Hodges-Lehmann pseudo-median with its exact interval (see
        :func:`hodges_lehmann_ci`); ``q_value`` Benjamini-Hochberg over the whole table.
    """
    columns = [
        "population", "compartment", "arm", "visit", "measure", "n", "median_log2fc",
        "hl_log2fc", "ci_low", "ci_high", "p_value", "q_value",
    ]  # fmt: skip
    data = log2fc[log2fc["visit"] != baseline_visit]
    rows = []
    for (population, compartment, arm, visit), group in data.groupby(
        ["population", "compartment", "arm", "visit"], sort=False
    ):
        d = group["log2fc"].to_numpy(dtype=float)
        estimate, low, high = hodges_lehmann_ci(d, alpha=alpha)
        rows.append(
            dict(
                population=population,
                compartment=compartment,
                arm=arm,
                visit=visit,
                measure=group["measure"].iloc[0],
                n=len(d),
                median_log2fc=float(np.median(d)),
                hl_log2fc=estimate,
                ci_low=low,
                ci_high=high,
                p_value=_signed_rank_p(d),
                _cycle=group["cycle"].iloc[0],
                _day=group["day"].iloc[0],
            )
        )
    table = pd.DataFrame(rows, columns=columns[:-1] + ["_cycle", "_day"])
    table["q_value"] = bh_qvalues(table["p_value"].to_numpy(dtype=float))
    populations = list(dict.fromkeys(log2fc["population"]))
    table = _sorted(
        table,
        ["population", "compartment", "arm", "_cycle", "_day", "visit"],
        populations=populations,
    )
    return table[columns]


def arm_comparison(
    log2fc: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Between arms: each arm against the reference arm on the log2 fold change at each visit.

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    reference_arm
        The comparator; ``estimate`` is arm minus reference arm.
    baseline_visit
        Visit label of the baseline (not compared: every log2 fold change is 0 there).
    alpha
        Level of the interval (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, visit, measure, arm, reference_arm, n_arm,
        n_reference, median_log2fc_arm, median_log2fc_reference, estimate, ci_low, ci_high,
        p_value, q_value``. ``estimate`` is the Hodges-Lehmann shift (median of all pairwise
        differences) with its exact interval (see :func:`hodges_lehmann_shift_ci`); ``p_value``
        two-sided Mann-Whitney; ``q_value`` Benjamini-Hochberg over the whole table.
    """
    columns = [
        "population", "compartment", "visit", "measure", "arm", "reference_arm", "n_arm",
        "n_reference", "median_log2fc_arm", "median_log2fc_reference", "estimate", "ci_low",
        "ci_high", "p_value", "q_value",
    ]  # fmt: skip
    data = log2fc[log2fc["visit"] != baseline_visit]
    rows = []
    for (population, compartment, visit), group in data.groupby(
        ["population", "compartment", "visit"], sort=False
    ):
        ref = group.loc[group["arm"] == reference_arm, "log2fc"].to_numpy(dtype=float)
        for arm in sorted(set(group["arm"]) - {reference_arm}):
            x = group.loc[group["arm"] == arm, "log2fc"].to_numpy(dtype=float)
            if len(ref) == 0:
                continue
            estimate, low, high = hodges_lehmann_shift_ci(x, ref, alpha=alpha)
            rows.append(
                dict(
                    population=population,
                    compartment=compartment,
                    visit=visit,
                    measure=group["measure"].iloc[0],
                    arm=arm,
                    reference_arm=reference_arm,
                    n_arm=len(x),
                    n_reference=len(ref),
                    median_log2fc_arm=float(np.median(x)),
                    median_log2fc_reference=float(np.median(ref)),
                    estimate=estimate,
                    ci_low=low,
                    ci_high=high,
                    p_value=_rank_sum_p(x, ref),
                    _cycle=group["cycle"].iloc[0],
                    _day=group["day"].iloc[0],
                )
            )
    table = pd.DataFrame(rows, columns=columns[:-1] + ["_cycle", "_day"])
    table["q_value"] = bh_qvalues(table["p_value"].to_numpy(dtype=float))
    populations = list(dict.fromkeys(log2fc["population"]))
    table = _sorted(
        table,
        ["population", "compartment", "_cycle", "_day", "visit", "arm"],
        populations=populations,
    )
    return table[columns]


# --------------------------------------------------------------------------------------------
# mixed models
# --------------------------------------------------------------------------------------------
_MIXED_COLUMNS = [
    "population", "compartment", "measure", "term", "estimate", "ci_low", "ci_high", "p_value",
    "q_value", "n_obs", "n_patients", "converged", "random_intercept_var", "note",
]  # fmt: skip


def _design(
    data: pd.DataFrame, *, reference_arm: str, baseline_visit: str, visits: Sequence[str]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Treatment-coded design: intercept, arm, visit, arm x visit; drops what is not estimable."""
    arms = sorted(set(data["arm"]) - {reference_arm}) if reference_arm in set(data["arm"]) else []
    present = set(data["visit"])
    later = [v for v in visits if v in present and v != baseline_visit]
    arm = data["arm"].to_numpy()
    visit = data["visit"].to_numpy()
    names = [_INTERCEPT]
    cols = [np.ones(len(data))]
    for a in arms:
        names.append(f"arm[{a}]")
        cols.append((arm == a).astype(float))
    for v in later:
        names.append(f"visit[{v}]")
        cols.append((visit == v).astype(float))
    for a in arms:
        for v in later:
            names.append(f"arm[{a}]:visit[{v}]")
            cols.append(((arm == a) & (visit == v)).astype(float))
    kept_names: list[str] = []
    kept_cols: list[np.ndarray] = []
    dropped: list[str] = []
    for name, col in zip(names, cols):
        trial = np.column_stack(kept_cols + [col])
        if col.any() and np.linalg.matrix_rank(trial) == trial.shape[1]:
            kept_names.append(name)
            kept_cols.append(col)
        else:
            dropped.append(name)
    return np.column_stack(kept_cols), kept_names, dropped


def _gls_cov(x: np.ndarray, groups: np.ndarray, *, scale: float, re_var: float) -> np.ndarray:
    """Covariance of the fixed effects given the variance components (random intercept model)."""
    info = np.zeros((x.shape[1], x.shape[1]))
    for g in np.unique(groups):
        xi = x[groups == g]
        k = len(xi)
        # V^-1 = (I - re_var / (scale + k re_var) 11') / scale
        s = xi.sum(axis=0)
        info += (xi.T @ xi - np.outer(s, s) * re_var / (scale + k * re_var)) / scale
    return np.linalg.pinv(info)


def _fit_one(
    data: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str,
    visits: Sequence[str],
    alpha: float,
) -> tuple[list[dict], dict]:
    """Fit one random-intercept model; never raises, reports problems in ``note``."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    n_obs = len(data)
    n_patients = int(data["patient_id"].nunique())
    info = dict(n_obs=n_obs, n_patients=n_patients, converged=False, random_intercept_var=math.nan)

    def failed(note: str) -> tuple[list[dict], dict]:
        return [
            dict(
                term="model", estimate=math.nan, ci_low=math.nan, ci_high=math.nan, p_value=math.nan
            )
        ], dict(info, note=note)

    if baseline_visit not in set(data["visit"]):
        return failed(f"not fitted: no {baseline_visit} samples")
    if n_patients < 2:
        return failed("not fitted: fewer than 2 patients")
    x, names, dropped = _design(
        data, reference_arm=reference_arm, baseline_visit=baseline_visit, visits=visits
    )
    if n_obs <= x.shape[1] + 1:
        return failed(f"not fitted: {n_obs} observations for {x.shape[1]} fixed effects")
    y = data["log2_value"].to_numpy(dtype=float)
    groups = data["patient_id"].to_numpy()
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        return failed("not fitted: the log2 values do not vary")
    notes = [f"not estimable: {', '.join(dropped)}"] if dropped else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = MixedLM(y, x, groups=groups).fit(reml=True)
        except Exception as error:  # noqa: BLE001 - a failed fit is reported, never fatal
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            return failed("; ".join(notes + [f"fit failed: {message}"]))
    fe = np.asarray(result.fe_params, dtype=float)
    scale = float(result.scale)
    re_var = float(np.asarray(result.cov_re)[0, 0])
    with np.errstate(invalid="ignore"):
        bse = np.asarray(result.bse_fe, dtype=float)
    for w in caught:
        text = str(w.message).splitlines()[0]
        # statsmodels' boundary warning fires below an absolute 0.01; judged below instead
        if "boundary of the parameter space" in text or "Retrying MixedLM" in text:
            continue
        if text not in notes:
            notes.append(text)
    if not np.all(np.isfinite(bse)) and np.isfinite(scale) and scale > 0:
        cov = _gls_cov(x, groups, scale=scale, re_var=max(re_var, 0.0))
        bse = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        notes.append("fixed-effect standard errors from the GLS covariance (Hessian not usable)")
    if np.isfinite(re_var) and re_var <= 1e-6 * max(scale, 1e-12):
        notes.append("random-intercept variance is 0 (singular fit)")
    z = sps.norm.ppf(1 - alpha / 2)
    rows = []
    for name, est, se in zip(names, fe, bse):
        p = 2 * sps.norm.sf(abs(est / se)) if se > 0 and np.isfinite(se) else math.nan
        rows.append(
            dict(
                term=name,
                estimate=float(est),
                ci_low=float(est - z * se) if np.isfinite(se) else math.nan,
                ci_high=float(est + z * se) if np.isfinite(se) else math.nan,
                p_value=math.nan if name == _INTERCEPT else float(p),
            )
        )
    converged = bool(result.converged) and bool(np.all(np.isfinite(fe)))
    return rows, dict(
        info,
        converged=converged,
        random_intercept_var=re_var,
        note="; ".join(notes),
    )


def mixed_models(
    values: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str,
    visits: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Linear mixed model of the log2 value per population and compartment.

    ``log2_value ~ arm * visit + (1 | patient_id)``, treatment coding with the reference arm and
    the baseline visit as references, fitted by REML with statsmodels ``MixedLM``. Every sample
    counts, also of patients without a baseline sample. The ``arm[A]:visit[V]`` term is the
    difference between arms in the change from baseline to visit V (log2 scale).

    Parameters
    ----------
    values
        Output of :func:`measure_table`.
    reference_arm, baseline_visit
        The references of the treatment coding.
    visits
        Visit labels in clinical order (default: from the ``cycle`` and ``day`` columns).
    alpha
        Level of the Wald intervals (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, measure, term, estimate, ci_low, ci_high, p_value,
        q_value, n_obs, n_patients, converged, random_intercept_var, note``. Wald z tests; the
        intercept gets no p-value and no q-value; q-values are Benjamini-Hochberg over all other
        terms of the table. A model that cannot be fitted gives one row with ``term`` =
        ``model``, ``converged`` False and the reason in ``note``.
    """
    if visits is None:
        visits = visit_order(values)
    finite = values[np.isfinite(values["log2_value"].to_numpy(dtype=float))]
    rows = []
    for (population, compartment), data in finite.groupby(
        ["population", "compartment"], sort=False
    ):
        data = data.sort_values(["patient_id", "cycle", "day"], kind="mergesort")
        terms, info = _fit_one(
            data,
            reference_arm=reference_arm,
            baseline_visit=baseline_visit,
            visits=visits,
            alpha=alpha,
        )
        for term in terms:
            rows.append(
                dict(
                    population=population,
                    compartment=compartment,
                    measure=data["measure"].iloc[0],
                    **term,
                    **info,
                )
            )
    table = pd.DataFrame(rows, columns=[c for c in _MIXED_COLUMNS if c != "q_value"])
    table["q_value"] = bh_qvalues(table["p_value"].to_numpy(dtype=float))
    # keep term order within a model: sort only by population and compartment (stable)
    populations = list(dict.fromkeys(values["population"]))
    return _sorted(table[_MIXED_COLUMNS], ["population", "compartment"], populations=populations)


# --------------------------------------------------------------------------------------------
# outcome
# --------------------------------------------------------------------------------------------
def read_patients(path: str | Path) -> pd.DataFrame:
    """Read and check the clinical table ``patients.tsv`` (see :func:`cytotrial.sheet.read_patients`).

    ``best_response`` is one of CR, PR, SD, PD or NE; a blank cell counts as NE (not evaluable).

    Raises
    ------
    SampleSheetError
        Unreadable file, missing column, repeated patient or a bad value (names the row).
    """
    from ..io._sheet import read_patients as read_checked

    table = read_checked(path)
    table["best_response"] = table["best_response"].fillna("NE").astype(str)
    return table


def response_table(
    log2fc: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    response_visit: str,
    alpha: float = 0.05,
    arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Objective response rate per arm and early change in responders versus non-responders.

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    patients
        Output of :func:`read_patients`.
    response_visit
        Visit whose change from baseline is compared between responders and non-responders.
    alpha
        Level of the intervals (``1 - alpha``).
    arms
        Arm order (default: sorted).

    Returns
    -------
    pandas.DataFrame
        One tidy table, ``analysis`` telling the row kind. Columns ``analysis, arm, compartment,
        population, visit, n, n_responders, n_non_responders, median_log2fc_responders,
        median_log2fc_non_responders, estimate, ci_low, ci_high, p_value, q_value``.

        ``objective_response_rate`` rows: per arm of ``patients``, responders (CR/PR) over all
        listed patients (NE counted as non-responder), Clopper-Pearson interval; no test.
        ``early_change`` rows: per arm and for all arms pooled (``arm`` = ``all``), per
        compartment and population, the log2 fold change at ``response_visit`` in responders
        (CR/PR) minus non-responders (SD/PD; NE left out): Hodges-Lehmann shift, exact interval,
        two-sided Mann-Whitney p; q-values Benjamini-Hochberg over the early-change rows.

    Raises
    ------
    SampleSheetError
        A patient's arm in ``patients`` differs from the sample sheet.
    """
    columns = [
        "analysis", "arm", "compartment", "population", "visit", "n", "n_responders",
        "n_non_responders", "median_log2fc_responders", "median_log2fc_non_responders",
        "estimate", "ci_low", "ci_high", "p_value", "q_value",
    ]  # fmt: skip
    sample_arms = log2fc.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    clinical = patients.set_index("patient_id")
    both = sample_arms.index.intersection(clinical.index)
    differ = [p for p in both if clinical.loc[p, "arm"] != sample_arms.loc[p]]
    if differ:
        p = sorted(differ)[0]
        raise SampleSheetError(
            f"patient {p} is arm {clinical.loc[p, 'arm']!r} in patients.tsv but "
            f"{sample_arms.loc[p]!r} in samples.tsv; make them agree"
        )
    arm_order = (
        list(arms) if arms is not None else sorted(set(patients["arm"]) | set(log2fc["arm"]))
    )

    orr_rows = []
    for arm in arm_order:
        group = patients[patients["arm"] == arm]
        n = len(group)
        if n == 0:
            continue
        k = int(group["best_response"].isin(_RESPONDERS).sum())
        ci = sps.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
        orr_rows.append(
            dict(
                analysis="objective_response_rate",
                arm=arm,
                n=n,
                n_responders=k,
                n_non_responders=n - k,
                estimate=k / n,
                ci_low=float(ci.low),
                ci_high=float(ci.high),
                p_value=math.nan,
                q_value=math.nan,
            )
        )

    status = clinical["best_response"].map(
        lambda r: (
            "responder" if r in _RESPONDERS else ("non_responder" if r in ("SD", "PD") else "")
        )
    )
    early = log2fc[log2fc["visit"] == response_visit].copy()
    early["status"] = early["patient_id"].map(status).fillna("")
    early = early[early["status"] != ""]
    change_rows = []
    populations = list(dict.fromkeys(log2fc["population"]))
    for population in populations:
        for compartment in sorted(set(early["compartment"])):
            cell = early[
                (early["population"] == population) & (early["compartment"] == compartment)
            ]
            if cell.empty:
                continue
            for arm in arm_order + ["all"]:
                group = cell if arm == "all" else cell[cell["arm"] == arm]
                r = group.loc[group["status"] == "responder", "log2fc"].to_numpy(dtype=float)
                nr = group.loc[group["status"] == "non_responder", "log2fc"].to_numpy(dtype=float)
                if len(r) + len(nr) == 0:
                    continue
                estimate, low, high = hodges_lehmann_shift_ci(r, nr, alpha=alpha)
                change_rows.append(
                    dict(
                        analysis="early_change",
                        arm=arm,
                        compartment=compartment,
                        population=population,
                        visit=response_visit,
                        n=len(r) + len(nr),
                        n_responders=len(r),
                        n_non_responders=len(nr),
                        median_log2fc_responders=float(np.median(r)) if len(r) else math.nan,
                        median_log2fc_non_responders=float(np.median(nr)) if len(nr) else math.nan,
                        estimate=estimate,
                        ci_low=low,
                        ci_high=high,
                        p_value=_rank_sum_p(r, nr),
                    )
                )
    change = pd.DataFrame(change_rows, columns=columns)
    change["q_value"] = bh_qvalues(change["p_value"].to_numpy(dtype=float))
    table = pd.concat([pd.DataFrame(orr_rows, columns=columns), change], ignore_index=True)
    for col in ("compartment", "population", "visit"):
        table[col] = table[col].fillna("")
    for col in ("n", "n_responders", "n_non_responders"):
        table[col] = table[col].astype(int)
    return table[columns]


def _empty_response() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "analysis", "arm", "compartment", "population", "visit", "n", "n_responders",
            "n_non_responders", "median_log2fc_responders", "median_log2fc_non_responders",
            "estimate", "ci_low", "ci_high", "p_value", "q_value",
        ]
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def compute_tables(
    adata: Any,
    *,
    analysis: Mapping[str, Any] | None = None,
    patients: pd.DataFrame | None = None,
    tables: Sequence[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """All statistics tables of one ``populations.h5ad``, in memory.

    Parameters
    ----------
    adata
        ``populations.h5ad`` as an :class:`anndata.AnnData`.
    analysis
        The ``analysis:`` config section (see :func:`resolve_analysis`).
    patients
        Output of :func:`read_patients`, or None (then ``response`` has a header only).
    tables
        Names from :data:`STAT_TABLES` to compute (default all); the mixed models are the slow
        part, so leave ``mixed_model`` out when only figures are needed.

    Returns
    -------
    dict
        Table name -> DataFrame.

    Raises
    ------
    ConfigError, SampleSheetError
        Bad ``analysis`` values, sample metadata or patients table (one-line message).
    """
    wanted = list(STAT_TABLES if tables is None else tables)
    unknown = [t for t in wanted if t not in STAT_TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {STAT_TABLES}")
    cfg, obs = _validated(adata, analysis)
    visits = visit_order(obs)
    values = measure_table(adata, analysis=cfg)
    fc = log2_fold_changes(values, baseline_visit=cfg["baseline_visit"])
    out: dict[str, pd.DataFrame] = {}
    for name in wanted:
        if name == "log2fc":
            out[name] = fc
        elif name == "missing_baseline":
            out[name] = missing_baselines(values, baseline_visit=cfg["baseline_visit"])
        elif name == "summary":
            out[name] = summary_table(values, fc, alpha=cfg["alpha"])
        elif name == "change_from_baseline":
            out[name] = within_arm_changes(
                fc, baseline_visit=cfg["baseline_visit"], alpha=cfg["alpha"]
            )
        elif name == "arm_comparison":
            out[name] = arm_comparison(
                fc,
                reference_arm=cfg["reference_arm"],
                baseline_visit=cfg["baseline_visit"],
                alpha=cfg["alpha"],
            )
        elif name == "mixed_model":
            out[name] = mixed_models(
                values,
                reference_arm=cfg["reference_arm"],
                baseline_visit=cfg["baseline_visit"],
                visits=visits,
                alpha=cfg["alpha"],
            )
        elif name == "response":
            if patients is None:
                out[name] = _empty_response()
            else:
                if cfg["response_visit"] not in visits:
                    raise ConfigError(
                        f"analysis.response_visit {cfg['response_visit']!r} is no sample's visit "
                        f"(visits: {', '.join(visits)}); set it to an on-treatment visit"
                    )
                out[name] = response_table(
                    fc, patients, response_visit=cfg["response_visit"], alpha=cfg["alpha"]
                )
    return out


def write_tsv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a tidy table: tab-separated, header, ``NA`` for missing, 6 significant digits."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(
        path, sep="\t", index=False, na_rep="NA", float_format=_FLOAT_FORMAT, lineterminator="\n"
    )
    return path


def write_stats(
    adata_path: str | Path,
    *,
    outdir: str | Path | None = None,
    outputs: Mapping[str, str | Path] | None = None,
    analysis: Mapping[str, Any] | None = None,
    patients_path: str | Path | None = None,
) -> dict[str, Path]:
    """Read ``populations.h5ad`` and write the statistics tables as TSV.

    Parameters
    ----------
    adata_path
        ``results/counts/populations.h5ad``.
    outdir
        Write every table of :data:`STAT_TABLES` as ``<outdir>/<name>.tsv``.
    outputs
        Instead of ``outdir``: table name -> file path, writing only those tables (e.g. the
        named outputs of a Snakemake rule).
    analysis
        The ``analysis:`` config section.
    patients_path
        ``patients.tsv`` (clinical outcome) or None; without it ``response.tsv`` has a header
        only.

    Returns
    -------
    dict
        Table name -> path written.

    Raises
    ------
    ConfigError, SampleSheetError
        Bad config, sample metadata or patients table (one-line message).
    """
    import anndata

    if (outdir is None) == (outputs is None):
        raise ValueError("give exactly one of outdir or outputs")
    targets = (
        {name: Path(outdir) / f"{name}.tsv" for name in STAT_TABLES}
        if outputs is None
        else {name: Path(path) for name, path in outputs.items()}
    )
    adata = _read_adata(adata_path, anndata)
    patients = read_patients(patients_path) if patients_path else None
    tables = compute_tables(adata, analysis=analysis, patients=patients, tables=list(targets))
    return {name: write_tsv(tables[name], path) for name, path in targets.items()}


def _read_adata(path: str | Path, anndata: Any) -> Any:
    path = Path(path)
    try:
        return anndata.read_h5ad(path)
    except (OSError, KeyError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path}: cannot be read as an AnnData .h5ad file ({first}); re-run the aggregation"
        ) from None
