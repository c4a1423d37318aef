"""Declared multiplicity: the ``family`` of every q-value, q within the family, intervals or notes.

The planted trial of ``conftest`` (10 patients per arm, 2 arms, 3 compartments) with its patients
table; the family-wise error of the primary family is checked on simulated null trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from conftest import ANALYSIS, ARM_A, ARM_B, patients_table, planted_trial
from cytotrial import tl as stats
from cytotrial.errors import ConfigError
from cytotrial.tl._families import adjust, mmrm_families

ARMS = [ARM_A, ARM_B]
PRIMARY = {"populations": ["cd8", "cd4"], "correction": "holm"}
# table -> its p-value column, for every table with p-values
TESTED = {
    "change_from_baseline": "p_value",
    "arm_comparison": "p_value",
    "mmrm": "p_value",
    "response": "p_value",
    "responders": "p_value",
    "cox": "p_value",
    "km": "logrank_p",
}
METHOD = {"holm": "holm", "bonferroni": "bonferroni", "bh": "fdr_bh"}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    analysis = {**ANALYSIS, "primary": PRIMARY}
    return stats.compute_tables(
        planted_trial(), analysis=analysis, patients=patients_table(), arms=ARMS
    )


@pytest.mark.parametrize("name", sorted(TESTED))
def test_every_table_with_p_values_names_the_family_of_its_q_values(tables, name):
    table = tables[name]
    assert len(table) > 0
    columns = list(table.columns)
    at = columns.index(TESTED[name])
    assert columns[at + 1 : at + 3] == ["q_value", "family"]
    family = table["family"].astype(str)
    assert (family != "").all()
    allowed = family.eq("estimate") | family.str.startswith(("primary:", "secondary:"))
    assert allowed.all(), set(family[~allowed])
    # estimates have no q-value, tested rows of a family have one
    assert table.loc[family == "estimate", "q_value"].isna().all()
    p = table[TESTED[name]].to_numpy(dtype=float)
    tested = (family != "estimate").to_numpy() & np.isfinite(p)
    assert np.isfinite(table["q_value"].to_numpy(dtype=float)[tested]).all()


def test_the_families_of_each_table(tables):
    def families(name):
        return set(tables[name]["family"])

    assert families("change_from_baseline") == {"estimate"}
    assert families("arm_comparison") == {
        f"secondary:arm_comparison:{c}" for c in set(tables["arm_comparison"]["compartment"])
    }
    mmrm = tables["mmrm"]
    difference = mmrm["contrast"] == f"{ARM_A} - {ARM_B}"
    in_primary = difference & mmrm["population"].isin(PRIMARY["populations"])
    expected = np.where(
        in_primary,
        "primary:" + mmrm["compartment"],
        np.where(difference, "secondary:mmrm:" + mmrm["compartment"], "estimate"),
    )
    assert list(mmrm["family"]) == list(expected)
    assert set(mmrm.loc[~difference, "family"]) == {"estimate"}  # adjusted means
    assert families("responders") == {"secondary:responders"}
    cox = tables["cox"]
    assert set(cox.loc[cox["term"] == "log2fc", "family"]) == {"secondary:cox"}
    assert set(cox.loc[cox["term"] != "log2fc", "family"]) == {"estimate"}
    assert families("km") == {"estimate"}
    response = tables["response"]
    early = response["analysis"] == "early_change"
    assert set(response.loc[early, "family"]) == {"secondary:response"}
    assert set(response.loc[~early, "family"]) == {"estimate"}


@pytest.mark.parametrize("name", sorted(TESTED))
def test_q_values_are_computed_within_their_family_only(tables, name):
    table = tables[name]
    p_column = TESTED[name]
    for family, rows in table.groupby("family"):
        if family == "estimate":
            continue
        p = rows[p_column].to_numpy(dtype=float)
        ok = np.isfinite(p)
        method = METHOD[PRIMARY["correction"]] if family.startswith("primary:") else "fdr_bh"
        expected = np.full(len(p), np.nan)
        if ok.any():  # a family whose tests could not be run has no q-values
            expected[ok] = multipletests(p[ok], method=method)[1]
        np.testing.assert_allclose(rows["q_value"].to_numpy(dtype=float), expected, rtol=1e-12)


def test_the_primary_family_finds_the_planted_effects(tables):
    mmrm = tables["mmrm"]
    row = mmrm[
        (mmrm["family"] == "primary:blood")
        & (mmrm["population"] == "cd8")
        & (mmrm["visit"] == "C1D8")
    ].iloc[0]
    assert row["q_value"] < 0.05 and row["ci_low"] > 0


@pytest.mark.parametrize("correction", ["bonferroni", "bh"])
def test_the_configured_correction_is_used_in_the_primary_family(correction):
    analysis = {**ANALYSIS, "primary": {"populations": ["cd8"], "correction": correction}}
    mmrm = stats.compute_tables(planted_trial(), analysis=analysis, tables=["mmrm"])["mmrm"]
    primary = mmrm[mmrm["family"].str.startswith("primary:")]
    assert set(primary["population"]) == {"cd8"}
    for _, rows in primary.groupby("family"):
        p = rows["p_value"].to_numpy(dtype=float)
        np.testing.assert_allclose(rows["q_value"], adjust(p, correction), rtol=1e-12)


def test_primary_features_default_to_the_analysed_ones_and_must_be_analysed():
    mmrm = stats.compute_tables(planted_trial(), analysis=ANALYSIS, tables=["mmrm"])["mmrm"]
    primary = mmrm[mmrm["family"].str.startswith("primary:")]
    assert set(primary["population"]) == set(mmrm["population"])
    bad = {**ANALYSIS, "primary": {"populations": ["cd8", "nk"]}}
    with pytest.raises(ConfigError, match=r"analysis\.primary\.populations: nk not analysed"):
        stats.compute_tables(planted_trial(), analysis=bad, tables=["mmrm"])


def test_no_pooled_response_rows(tables):
    assert "all" not in set(tables["response"]["arm"])
    assert "all" not in set(tables["responders"]["arm"])


@pytest.mark.parametrize("name", sorted(set(TESTED) - {"km"}))
def test_every_p_value_has_an_interval_or_a_stated_reason(tables, name):
    table = tables[name]
    p = table["p_value"].to_numpy(dtype=float)
    ci = table[["ci_low", "ci_high"]].to_numpy(dtype=float)
    without = np.isfinite(p) & ~np.isfinite(ci).all(axis=1)
    notes = table["note"].fillna("").astype(str).to_numpy()
    assert (notes[without] != "").all(), table[without]


def test_small_groups_say_why_they_have_no_interval():
    # 3 vs 3 patients and 4 values: exact intervals at 95% do not exist, p-values do
    rng = np.random.default_rng(0)
    rows = [
        dict(
            population="cd8",
            compartment="blood",
            arm=arm,
            visit="C1D8",
            measure="per_ul",
            patient_id=f"{arm}{i}",
            log2fc=float(rng.normal()),
            cycle=1,
            day=8,
        )
        for arm in (ARM_A, ARM_B)
        for i in range(3)
    ]
    fc = pd.DataFrame(rows)
    arm = stats.arm_comparison(fc, reference_arm=ARM_B, baseline_visit="C1D1", alpha=0.05)
    assert np.isfinite(arm["p_value"]).all() and arm["ci_low"].isna().all()
    assert arm["note"].iloc[0].startswith("n = 3 vs 3: too few values for an exact 95% interval")
    within = stats.within_arm_changes(fc, baseline_visit="C1D1", alpha=0.05)
    assert within["note"].str.startswith("n = 3: too few values").all()
    assert set(within["family"]) == {"estimate"} and within["q_value"].isna().all()


def _null_trial(rng: np.random.Generator, *, n: int, features: int, visits: int) -> np.ndarray:
    """p-values of the arm difference per feature and visit in one trial without arm effect.

    Changes from baseline share a patient effect across features and visits (correlated tests);
    each arm difference is a Welch t-test, valid under the null.
    """
    shape = (2, n, features, visits)
    patient = rng.normal(size=(2, n, 1, 1))
    change = 0.7 * patient + rng.normal(size=shape) + rng.normal(size=(1, 1, features, visits))
    return sps.ttest_ind(change[0], change[1], axis=0, equal_var=False).pvalue


def test_holm_keeps_the_primary_family_wise_error_on_null_trials():
    rng = np.random.default_rng(12)
    alpha, trials, features, visits = 0.05, 300, 5, 3
    names = [f"f{i}" for i in range(features)]
    contrast = f"{ARM_A} - {ARM_B}"
    any_rejected = 0
    for _ in range(trials):
        p = _null_trial(rng, n=12, features=features, visits=visits)
        table = pd.DataFrame(
            [
                dict(population=names[f], compartment="blood", visit=f"V{v}", contrast=c, p_value=x)
                for f in range(features)
                for v in range(visits)
                for c, x in ((contrast, p[f, v]), (f"{ARM_A} adjusted mean", 0.001))
            ]
        )
        # one non-primary feature, very significant, must not enter the primary family
        table.loc[len(table)] = dict(
            population="other", compartment="blood", visit="V0", contrast=contrast, p_value=1e-9
        )
        out = mmrm_families(
            table, reference_arm=ARM_B, primary_populations=names, correction="holm"
        )
        primary = out[out["family"] == "primary:blood"]
        assert len(primary) == features * visits
        any_rejected += bool((primary["q_value"] < alpha).any())
    fwer = any_rejected / trials
    noise = 2.5 * np.sqrt(alpha * (1 - alpha) / trials)
    assert fwer <= alpha + noise, fwer
