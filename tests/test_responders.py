"""Responders versus non-responders within arm and adjusted for arm (cytotrial.tl).

The stratified test is checked against scipy (one stratum) and full enumeration (two strata), its
interval by inverting the test; on trials where response rates differ by arm (50% vs 20%) and the
early change differs by arm but not by response within arm, the arm-adjusted test must keep its
level while a pooled test (which the table no longer has) would not.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cytotrial import tl as stats

COMBO, CONTROL = "COMBO", "CONTROL"
VISIT = "C1D8"


def _tables(change: np.ndarray, arm: np.ndarray, response: np.ndarray):
    """(log2fc, patients) of one feature in blood at C1D8."""
    ids = [f"P{i + 1:03d}" for i in range(len(arm))]
    patients = pd.DataFrame({"patient_id": ids, "arm": arm, "best_response": response})
    fc = pd.DataFrame(
        {
            "patient_id": ids,
            "arm": arm,
            "compartment": "blood",
            "population": "cd8",
            "measure": "per_ul",
            "visit": VISIT,
            "log2fc": change,
        }
    )
    return fc[np.isfinite(change)], patients


def confounded_trial(seed: int, *, n_per_arm: int = 24, link: float = 0.0):
    """(log2fc, patients): response 50% (COMBO) vs 20% (CONTROL).

    The early change is 2 log2 units higher under COMBO (sd 1); within an arm responders differ
    from non-responders by ``link``.
    """
    rng = np.random.default_rng(seed)
    arm = np.repeat([COMBO, CONTROL], n_per_arm)
    rate = np.where(arm == COMBO, 0.5, 0.2)
    responder = rng.random(len(arm)) < rate
    response = np.where(
        responder, rng.choice(["CR", "PR"], len(arm)), rng.choice(["SD", "PD"], len(arm))
    )
    change = rng.normal(np.where(arm == COMBO, 2.0, 0.0) + link * responder, 1.0)
    return _tables(change, arm, response)


# --------------------------------------------------------------------------------------------
# the stratified test itself
# --------------------------------------------------------------------------------------------
def test_one_stratum_equals_hodges_lehmann_and_exact_mann_whitney():
    rng = np.random.default_rng(4)
    for m, n in [(3, 4), (6, 7), (9, 5), (12, 12)]:
        x, y = rng.normal(0.5, 1, m), rng.normal(0, 1, n)
        estimate, low, high, p = stats.stratified_shift_test([(x, y)])
        assert (estimate, low, high) == pytest.approx(
            stats.hodges_lehmann_shift_ci(x, y), nan_ok=True
        )
        expected = sps.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue
        assert p == pytest.approx(expected, rel=1e-9)


def _enumerated_p(strata) -> float:
    """Two-sided p of the summed U by enumerating every within-stratum relabelling."""
    observed = sum(float(np.sum(np.subtract.outer(x, y) > 0)) for x, y in strata)
    per_stratum = []
    for x, y in strata:
        pooled = np.concatenate([x, y])
        options = []
        for chosen in itertools.combinations(range(len(pooled)), len(x)):
            mask = np.zeros(len(pooled), dtype=bool)
            mask[list(chosen)] = True
            options.append(float(np.sum(np.subtract.outer(pooled[mask], pooled[~mask]) > 0)))
        per_stratum.append(options)
    totals = np.array([sum(c) for c in itertools.product(*per_stratum)])
    mean = sum(len(x) * len(y) for x, y in strata) / 2
    return float(np.mean(np.abs(totals - mean) >= abs(observed - mean) - 1e-9))


def test_two_strata_p_equals_enumeration_and_interval_inverts_the_test():
    rng = np.random.default_rng(7)
    strata = [
        (rng.normal(1, 1, 3), rng.normal(0, 1, 4)),
        (rng.normal(4, 1, 4), rng.normal(3, 1, 3)),
    ]
    estimate, low, high, p = stats.stratified_shift_test(strata, alpha=0.1)
    assert p == pytest.approx(_enumerated_p(strata), rel=1e-9)
    pooled = np.concatenate([np.subtract.outer(x, y).ravel() for x, y in strata])
    assert estimate == pytest.approx(np.median(pooled))
    # shifts inside the interval are not rejected at alpha, shifts beyond it are
    eps = 1e-9

    def p_at(delta: float) -> float:
        return stats.stratified_shift_test([(x - delta, y) for x, y in strata])[3]

    assert p_at(low + eps) > 0.1 and p_at(high - eps) > 0.1
    assert p_at(low - 1e-6) <= 0.1 + 1e-12 and p_at(high + 1e-6) <= 0.1 + 1e-12


def test_strata_without_both_groups_do_not_count():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 0.5, -1.0])
    alone = stats.stratified_shift_test([(x, y)])
    assert stats.stratified_shift_test([(x, y), (np.array([]), np.array([5.0, 6.0]))]) == alone
    assert all(math.isnan(v) for v in stats.stratified_shift_test([(x, np.array([]))]))


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
def test_arm_adjusted_test_keeps_its_level_where_pooling_does_not():
    """200 trials, response 50% vs 20% by arm, no link within arm: adjusted rejects <= 7%."""
    adjusted = pooled = within = 0
    for seed in range(200):
        fc, patients = confounded_trial(seed)
        table = stats.responder_analysis(fc, patients, response_visit=VISIT)
        row = table[table["analysis"] == "arm_adjusted"].iloc[0]
        adjusted += bool(row["p_value"] < 0.05)
        within += int((table.loc[table["analysis"] == "within_arm", "p_value"] < 0.05).sum())
        status = patients.set_index("patient_id")["best_response"].isin(["CR", "PR"])
        r = fc.loc[fc["patient_id"].map(status), "log2fc"]
        nr = fc.loc[~fc["patient_id"].map(status), "log2fc"]
        pooled += bool(sps.mannwhitneyu(r, nr).pvalue < 0.05)
    assert adjusted <= 14, adjusted  # 7% of 200
    assert within <= 28, within  # 7% of the 400 within-arm tests
    assert pooled >= 50, pooled  # the confounding is real: pooling would find a "signal"


def test_arm_adjusted_test_finds_a_within_arm_link():
    found = 0
    for seed in range(20):
        fc, patients = confounded_trial(seed, link=1.5)
        table = stats.responder_analysis(fc, patients, response_visit=VISIT)
        row = table[table["analysis"] == "arm_adjusted"].iloc[0]
        found += bool(row["p_value"] < 0.05 and row["ci_low"] <= 1.5 <= row["ci_high"])
    assert found >= 15, found


def test_rows_counts_and_notes():
    arm = np.array([COMBO] * 8 + [CONTROL] * 6)
    response = np.array(
        ["CR", "PR", "PR", "SD", "PD", "PD", "NE", "SD", "SD", "PD", "PD", "SD", "NE", "PD"]
    )
    change = np.array([2.0, 2.5, 1.8, 0.2, 0.1, 0.4, 3.0, np.nan, 0.1, -0.2, 0.3, 0.0, 0.5, 0.2])
    fc, patients = _tables(change, arm, response)
    extra = pd.DataFrame([dict(fc.iloc[0]) | {"patient_id": "X99", "log2fc": 9.0}])
    fc = pd.concat([fc, extra], ignore_index=True)  # samples but not in the patients table
    table = stats.responder_analysis(fc, patients, response_visit=VISIT, arms=[CONTROL, COMBO])
    assert list(table.columns) == [
        "analysis", "arm", "compartment", "population", "measure", "visit", "n", "n_responders",
        "n_non_responders", "n_not_evaluable", "n_missing", "median_log2fc_responders",
        "median_log2fc_non_responders", "estimate", "ci_low", "ci_high", "p_value", "method",
        "note",
    ]  # fmt: skip
    assert list(table["analysis"]) == ["within_arm", "within_arm", "arm_adjusted"]
    assert list(table["arm"]) == [CONTROL, COMBO, f"{CONTROL}, {COMBO}"]  # no pooled "all" row
    control, combo, adjusted = (table.iloc[i] for i in range(3))
    # COMBO: 3 responders, 3 SD/PD with a change, P008 (SD) without one, P007 NE, X99 unknown
    assert (combo["n"], combo["n_responders"], combo["n_non_responders"]) == (6, 3, 3)
    assert (combo["n_not_evaluable"], combo["n_missing"]) == (2, 1)
    assert combo["median_log2fc_responders"] == 2.0 and combo["median_log2fc_non_responders"] == 0.2
    assert combo["note"] == "too few patients for a 95% interval" and math.isnan(combo["ci_low"])
    assert combo["p_value"] == pytest.approx(0.1)  # 3 vs 3, complete separation: 2 / 20
    # CONTROL: no responders
    assert control["n_responders"] == 0 and control["note"] == "no responders"
    assert math.isnan(control["estimate"]) and math.isnan(control["p_value"])
    # adjusted: only COMBO informs it, and it says so
    assert adjusted["p_value"] == pytest.approx(combo["p_value"])
    assert adjusted["n"] == 11 and adjusted["n_not_evaluable"] == 3 and adjusted["n_missing"] == 1
    assert adjusted["note"] == (
        f"too few patients for a 95% interval; {CONTROL}: only one response group, no contribution"
    )
    assert adjusted["method"].startswith("exact Mann-Whitney stratified by arm")


def test_arms_must_agree():
    from cytotrial.errors import SampleSheetError

    fc, patients = confounded_trial(0, n_per_arm=3)
    patients.loc[0, "arm"] = CONTROL
    with pytest.raises(SampleSheetError, match=r"patient P001 is arm 'CONTROL' in patients\.tsv"):
        stats.responder_analysis(fc, patients, response_visit=VISIT)
