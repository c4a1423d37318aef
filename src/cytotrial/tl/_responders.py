"""Responders versus non-responders in the early change: within each arm and adjusted for arm.

Response rates differ between arms, and so does the early change: pooling the arms would find a
"responder signal" that is only the arm. So there are no pooled rows: each arm is analysed on its
own, and the arms are combined by a test *stratified by arm*, which compares responders with
non-responders only within the same arm.

Why a stratified rank test and not a logistic regression of response on arm and early change:
trials of this kind have about a dozen patients per arm and few responders in the control arm,
where a logistic model's Wald test and interval are unreliable (separation, small-sample bias),
whereas the stratified test is exact at any size (its null distribution is that of permuting
response labels within arm). Its estimate is the same quantity as the within-arm rows (the shift
in log2 fold change, responders minus non-responders), so the adjusted row reads like the rows it
combines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._rank import _interval_rank, _rank_sum_cdf
from ._response import _check_arms_agree

__all__ = ["responder_analysis", "stratified_shift_test"]

_RESPONDERS = ("CR", "PR")
_NON_RESPONDERS = ("SD", "PD")
_RESPONDER_COLUMNS = [
    "analysis", "arm", "compartment", "population", "measure", "visit", "n", "n_responders",
    "n_non_responders", "n_not_evaluable", "n_missing", "median_log2fc_responders",
    "median_log2fc_non_responders", "estimate", "ci_low", "ci_high", "p_value", "method", "note",
]  # fmt: skip
_WITHIN = "exact Mann-Whitney; Hodges-Lehmann shift"
_ADJUSTED = "exact Mann-Whitney stratified by arm; stratified Hodges-Lehmann shift"


def stratified_shift_test(
    strata: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    *,
    alpha: float = 0.05,
) -> tuple[float, float, float, float]:
    """Exact stratified Mann-Whitney test of ``x`` against ``y`` and the common shift's interval.

    The statistic is the sum over strata of each stratum's Mann-Whitney U (pairs ``x > y``, ties
    counting one half); its exact null distribution, the convolution of the strata's, is that of
    permuting the labels within each stratum. The shift estimate is the median of the pooled
    within-stratum differences ``x - y`` (with one stratum: the Hodges-Lehmann shift), and the
    ``1 - alpha`` interval inverts the test: the ``c``-th smallest and ``c``-th largest of those
    differences (as :func:`hodges_lehmann_shift_ci`, which it equals for one stratum).

    Parameters
    ----------
    strata
        ``(x, y)`` per stratum; non-finite values are left out, a stratum with an empty group
        does not count.
    alpha
        Level of the interval.

    Returns
    -------
    tuple
        ``(estimate, low, high, p_value)``, two-sided p; low/high NaN when too few pairs for a
        ``1 - alpha`` interval; all NaN when no stratum has both groups. Ties are scored one half
        against the distribution without ties (as scipy's exact method).
    """
    diffs, pmf = [], np.ones(1)
    u = 0.0
    for x, y in strata:
        a = np.asarray(x, dtype=float)
        b = np.asarray(y, dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) == 0 or len(b) == 0:
            continue
        d = np.subtract.outer(a, b).ravel()
        diffs.append(d)
        u += float(np.sum(d > 0) + 0.5 * np.sum(d == 0))
        pmf = np.convolve(pmf, np.diff(_rank_sum_cdf(len(a), len(b)), prepend=0.0))
    if not diffs:
        return (math.nan, math.nan, math.nan, math.nan)
    cdf = np.minimum(np.cumsum(pmf), 1.0)
    pooled = np.sort(np.concatenate(diffs))
    below = cdf[math.floor(u)]  # P(U <= u)
    above = 1.0 - (cdf[math.ceil(u) - 1] if math.ceil(u) >= 1 else 0.0)  # P(U >= u)
    p = min(1.0, 2.0 * min(below, above))
    estimate = float(np.median(pooled))
    c = _interval_rank(cdf, alpha)
    if c == 0:
        return (estimate, math.nan, math.nan, p)
    return (estimate, float(pooled[c - 1]), float(pooled[len(pooled) - c]), p)


def responder_analysis(
    log2fc: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    response_visit: str,
    alpha: float = 0.05,
    arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Early change in responders (CR/PR) versus non-responders (SD/PD), within and across arms.

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    patients
        Output of :func:`read_patients`.
    response_visit
        Visit whose change from baseline is compared.
    alpha
        Level of the intervals (``1 - alpha``).
    arms
        Arm order (default: sorted; arms not listed come after, sorted).

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis, arm, compartment, population, measure, visit, n, n_responders,
        n_non_responders, n_not_evaluable, n_missing, median_log2fc_responders,
        median_log2fc_non_responders, estimate, ci_low, ci_high, p_value, method, note``; per
        feature (``population``) and compartment with an early change:

        ``within_arm`` rows, one per arm: Hodges-Lehmann shift (responders minus
        non-responders) with its exact interval and the exact two-sided Mann-Whitney p
        (:func:`stratified_shift_test` with one stratum).
        One ``arm_adjusted`` row (``arm``: the arms combined, comma-separated):
        :func:`stratified_shift_test` with the arms as strata. No pooled unadjusted row.

        ``n`` = ``n_responders + n_non_responders`` (patients with an early change);
        ``n_not_evaluable``: NE patients and patients with samples but not in ``patients``
        (left out); ``n_missing``: evaluable patients without an early change (left out).
        ``note`` says why an estimate, interval or p-value is missing.

    Raises
    ------
    SampleSheetError
        A patient's arm in ``patients`` differs from the sample sheet.
    """
    _check_arms_agree(log2fc, patients.set_index("patient_id"))
    status = dict(zip(patients["patient_id"], patients["best_response"].map(_status)))
    arm_of = dict(zip(log2fc["patient_id"], log2fc["arm"]))
    arm_of.update(zip(patients["patient_id"], patients["arm"]))
    everyone = pd.DataFrame({"patient_id": sorted(arm_of)})
    everyone["arm"] = everyone["patient_id"].map(arm_of)
    everyone["status"] = everyone["patient_id"].map(status).fillna("not_evaluable")
    present = sorted(set(everyone["arm"]))
    arm_order = [a for a in (arms or []) if a in present] + sorted(set(present) - set(arms or []))
    early = log2fc[log2fc["visit"] == response_visit]
    rows = []
    for population in dict.fromkeys(log2fc["population"]):
        for compartment in sorted(set(early.loc[early["population"] == population, "compartment"])):
            cell = early[
                (early["population"] == population) & (early["compartment"] == compartment)
            ]
            change = cell.drop_duplicates("patient_id").set_index("patient_id")["log2fc"]
            data = everyone.assign(log2fc=everyone["patient_id"].map(change).astype(float))
            where = dict(
                compartment=compartment,
                population=population,
                measure=cell["measure"].iloc[0],
                visit=response_visit,
            )
            rows += _cell_rows(data, where, arm_order, alpha=alpha)
    table = pd.DataFrame(rows, columns=_RESPONDER_COLUMNS)
    for col in ("n", "n_responders", "n_non_responders", "n_not_evaluable", "n_missing"):
        table[col] = table[col].astype(int)
    return table


def _status(response: str) -> str:
    """``responder`` (CR/PR), ``non_responder`` (SD/PD) or ``not_evaluable`` (NE)."""
    if response in _RESPONDERS:
        return "responder"
    return "non_responder" if response in _NON_RESPONDERS else "not_evaluable"


def _cell_rows(
    data: pd.DataFrame, where: dict, arm_order: Sequence[str], *, alpha: float
) -> list[dict]:
    """The within-arm rows and the arm-adjusted row of one feature in one compartment."""
    strata, rows = [], []
    for arm in arm_order:
        own = data[data["arm"] == arm]
        has = np.isfinite(own["log2fc"].to_numpy(dtype=float))
        r = own.loc[has & (own["status"] == "responder").to_numpy(), "log2fc"].to_numpy(float)
        nr = own.loc[has & (own["status"] == "non_responder").to_numpy(), "log2fc"].to_numpy(float)
        counts = dict(
            n_not_evaluable=int((own["status"] == "not_evaluable").sum()),
            n_missing=int((~has & (own["status"] != "not_evaluable").to_numpy()).sum()),
        )
        if len(r) + len(nr) == 0:
            continue
        strata.append((arm, r, nr, counts))
        rows.append(_row("within_arm", arm, [(r, nr)], where, counts, alpha=alpha))
    if strata:
        totals = {k: sum(s[3][k] for s in strata) for k in ("n_not_evaluable", "n_missing")}
        informative = [s[0] for s in strata if len(s[1]) and len(s[2])]
        row = _row(
            "arm_adjusted",
            ", ".join(s[0] for s in strata),
            [(s[1], s[2]) for s in strata],
            where,
            totals,
            alpha=alpha,
        )
        left = [s[0] for s in strata if s[0] not in informative]
        if left and informative:
            extra = f"{', '.join(left)}: only one response group, no contribution"
            row["note"] = "; ".join(filter(None, [row["note"], extra]))
        rows.append(row)
    return rows


def _row(
    analysis: str,
    arm: str,
    groups: list[tuple[np.ndarray, np.ndarray]],
    where: dict,
    counts: dict,
    *,
    alpha: float,
) -> dict:
    """One row: counts, group medians and :func:`stratified_shift_test` of ``groups``."""
    r = np.concatenate([g[0] for g in groups])
    nr = np.concatenate([g[1] for g in groups])
    estimate, low, high, p = stratified_shift_test(groups, alpha=alpha)
    note = ""
    if not np.isfinite(estimate):
        note = "no responders" if len(r) == 0 else "no non-responders"
        note = note if analysis == "within_arm" else "no arm has both responders and non-responders"
    elif not np.isfinite(low):
        note = f"too few patients for a {1 - alpha:.0%} interval"
    return dict(
        analysis=analysis,
        arm=arm,
        **where,
        n=len(r) + len(nr),
        n_responders=len(r),
        n_non_responders=len(nr),
        **counts,
        median_log2fc_responders=float(np.median(r)) if len(r) else math.nan,
        median_log2fc_non_responders=float(np.median(nr)) if len(nr) else math.nan,
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_value=p,
        method=_WITHIN if analysis == "within_arm" else _ADJUSTED,
        note=note,
    )
