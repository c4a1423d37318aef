"""Change from baseline within arms and between arms: the summary, signed-rank and rank-sum tables.

Each table has one row per feature (a population, ratio or MFI, named in the ``population``
column, its ``measure`` beside it), compartment, arm and visit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._analysis import at_baseline
from ._families import ESTIMATE, interval_notes, secondary_families
from ._measures import _sorted, measure_unit
from ._rank import (
    _rank_sum_p,
    _signed_rank_p,
    hodges_lehmann_ci,
    hodges_lehmann_shift_ci,
    t_interval,
)

__all__ = ["arm_comparison", "summary_table", "within_arm_changes"]

_CELL = ["arm", "compartment", "population", "visit"]

_SUMMARY_COLUMNS = [
    "population", "compartment", "arm", "visit", "cycle", "day", "measure", "unit",
    "n_patients", "median", "q1", "q3", "n_log2fc", "mean_log2fc", "ci_low", "ci_high",
]  # fmt: skip

_CHANGE_COLUMNS = [
    "population", "compartment", "arm", "visit", "measure", "n", "median_log2fc",
    "hl_log2fc", "ci_low", "ci_high", "p_value", "q_value", "family", "note",
]  # fmt: skip

_ARM_COLUMNS = [
    "population", "compartment", "visit", "measure", "arm", "reference_arm", "n_arm",
    "n_reference", "median_log2fc_arm", "median_log2fc_reference", "estimate", "ci_low",
    "ci_high", "p_value", "q_value", "family", "note",
]  # fmt: skip


def summary_table(values: pd.DataFrame, log2fc: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Per arm, compartment, feature and visit: value median/IQR and mean log2 fold change.

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
        with a value; ``n_log2fc`` those who also have a baseline; ``unit`` is
        :func:`measure_unit` of the measure.
    """
    summary = _value_summary(values)
    if summary.empty:
        return pd.DataFrame(columns=_SUMMARY_COLUMNS)
    summary = summary.merge(_fold_change_summary(log2fc, alpha=alpha), on=_CELL, how="left")
    summary["n_log2fc"] = summary["n_log2fc"].fillna(0).astype(int)
    summary["unit"] = summary["measure"].map(measure_unit)
    populations = list(dict.fromkeys(values["population"]))
    return _sorted(
        summary[_SUMMARY_COLUMNS],
        ["population", "compartment", "arm", "cycle", "day", "visit"],
        populations=populations,
    )


def _value_summary(values: pd.DataFrame) -> pd.DataFrame:
    """Per cell (arm, compartment, population, visit): patients with a value, median and IQR."""
    finite = values[np.isfinite(values["value"].to_numpy(dtype=float))]
    rows = []
    for key, group in finite.groupby(_CELL, sort=False):
        v = group["value"].to_numpy(dtype=float)
        rows.append(
            dict(
                zip(_CELL, key),
                cycle=int(group["cycle"].iloc[0]),
                day=int(group["day"].iloc[0]),
                measure=group["measure"].iloc[0],
                n_patients=int(group["patient_id"].nunique()),
                median=float(np.median(v)),
                q1=float(np.percentile(v, 25)),
                q3=float(np.percentile(v, 75)),
            )
        )
    return pd.DataFrame(rows)


def _fold_change_summary(log2fc: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Per cell: patients with a log2 fold change, its mean and Student-t interval."""
    rows = []
    for key, group in log2fc.groupby(_CELL, sort=False):
        mean, low, high = t_interval(group["log2fc"].to_numpy(dtype=float), alpha=alpha)
        rows.append(
            dict(zip(_CELL, key), n_log2fc=len(group), mean_log2fc=mean, ci_low=low, ci_high=high)
        )
    return pd.DataFrame(rows, columns=_CELL + ["n_log2fc", "mean_log2fc", "ci_low", "ci_high"])


def within_arm_changes(
    log2fc: pd.DataFrame, *, baseline_visit: str | Mapping[str, str], alpha: float
) -> pd.DataFrame:
    """Within each arm, each on-treatment visit against baseline (paired Wilcoxon signed-rank).

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    baseline_visit
        Visit label of the baseline, or compartment -> visit (``""`` or a compartment left out:
        its earliest visit); not tested against itself.
    alpha
        Level of the interval (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, arm, visit, measure, n, median_log2fc, hl_log2fc,
        ci_low, ci_high, p_value, q_value, family, note``. ``median_log2fc`` is the sample
        median; ``hl_log2fc`` the Hodges-Lehmann pseudo-median with its exact interval (see
        :func:`hodges_lehmann_ci`). Within-arm changes are estimates, not a declared question:
        ``family`` is ``estimate`` and ``q_value`` empty (the signed-rank p is descriptive);
        ``note`` says why a row has a p-value but no interval (too few values).
    """
    data = log2fc[~at_baseline(log2fc, baseline_visit)]
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
    table = pd.DataFrame(rows, columns=_CHANGE_COLUMNS[:-3] + ["_cycle", "_day"])
    table["q_value"] = np.nan
    table["family"] = ESTIMATE
    table["note"] = interval_notes(table, table["n"].to_numpy(), alpha=alpha)
    populations = list(dict.fromkeys(log2fc["population"]))
    table = _sorted(
        table,
        ["population", "compartment", "arm", "_cycle", "_day", "visit"],
        populations=populations,
    )
    return table[_CHANGE_COLUMNS]


def arm_comparison(
    log2fc: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str | Mapping[str, str],
    alpha: float,
) -> pd.DataFrame:
    """Between arms: each arm against the reference arm on the log2 fold change at each visit.

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    reference_arm
        The comparator; ``estimate`` is arm minus reference arm.
    baseline_visit
        Visit label of the baseline, or compartment -> visit (as in
        :func:`within_arm_changes`); not compared: every log2 fold change is 0 there.
    alpha
        Level of the interval (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, visit, measure, arm, reference_arm, n_arm,
        n_reference, median_log2fc_arm, median_log2fc_reference, estimate, ci_low, ci_high,
        p_value, q_value, family, note``. ``estimate`` is the Hodges-Lehmann shift (median of
        all pairwise differences) with its exact interval (see :func:`hodges_lehmann_shift_ci`);
        ``p_value`` two-sided Mann-Whitney; ``q_value`` Benjamini-Hochberg within ``family``
        ``secondary:arm_comparison:<compartment>`` (the declared primary question is the MMRM
        arm difference); ``note`` says why a row has a p-value but no interval.
    """
    data = log2fc[~at_baseline(log2fc, baseline_visit)]
    rows = []
    for (population, compartment, visit), group in data.groupby(
        ["population", "compartment", "visit"], sort=False
    ):
        cell = dict(
            population=population,
            compartment=compartment,
            visit=visit,
            measure=group["measure"].iloc[0],
        )
        rows += _arm_rows(group, cell, reference_arm=reference_arm, alpha=alpha)
    table = pd.DataFrame(rows, columns=_ARM_COLUMNS[:-3] + ["_cycle", "_day"])
    sizes = [f"{a} vs {b}" for a, b in zip(table["n_arm"], table["n_reference"])]
    table["note"] = interval_notes(table, np.asarray(sizes, dtype=object), alpha=alpha)
    table = secondary_families("arm_comparison", table, by_compartment=True)
    populations = list(dict.fromkeys(log2fc["population"]))
    table = _sorted(
        table,
        ["population", "compartment", "_cycle", "_day", "visit", "arm"],
        populations=populations,
    )
    return table[_ARM_COLUMNS]


def _arm_rows(group: pd.DataFrame, cell: dict, *, reference_arm: str, alpha: float) -> list[dict]:
    """The rows of :func:`arm_comparison` of one population, compartment and visit."""
    ref = group.loc[group["arm"] == reference_arm, "log2fc"].to_numpy(dtype=float)
    rows = []
    for arm in sorted(set(group["arm"]) - {reference_arm}):
        x = group.loc[group["arm"] == arm, "log2fc"].to_numpy(dtype=float)
        if len(ref) == 0:
            continue
        estimate, low, high = hodges_lehmann_shift_ci(x, ref, alpha=alpha)
        rows.append(
            dict(
                cell,
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
    return rows
