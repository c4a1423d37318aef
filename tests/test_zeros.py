"""Zeros: each sample's log2 value depends only on that sample's own counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import ANALYSIS, ARM_A, BASELINES, POPULATIONS, make_trial
from cytotrial import tl as stats

# cd8 in blood (per_ul: fraction of live x lymphocytes_per_ul), tumor (freq_parent: of cd3),
# bone marrow (freq_live); the ratio cd4_treg (cd4 / treg)
ZERO_ANALYSIS = {
    **ANALYSIS,
    "populations": ["cd8", "cd4_treg"],
    "measure": {"blood": "per_ul", "bone marrow": "freq_live"},
}
COL = {p: i for i, p in enumerate(POPULATIONS)}


def _set_count(adata, sample: str, population: str, count: float) -> None:
    """Set one count and every value derived from it, as the aggregation computes them."""
    i, j = adata.obs_names.get_loc(sample), COL[population]
    adata.X[i, j] = count
    row = adata.X[i]
    parents = {"cd8": "cd3", "treg": "cd4", "cd4": "cd3"}
    adata.layers["freq_parent"][i, j] = count / row[COL[parents[population]]]
    adata.layers["freq_live"][i, j] = count / row[COL["live"]]
    adata.layers["per_ul"][i, j] = (
        count / row[COL["live"]] * float(adata.obs["lymphocytes_per_ul"].iloc[i])
    )
    adata.obsm["ratios"].iloc[i, 0] = row[COL["cd4"]] / row[COL["treg"]]


def _values(adata) -> pd.DataFrame:
    values = stats.measure_table(adata, analysis=ZERO_ANALYSIS)
    return values.set_index(["sample_id", "population"])


@pytest.fixture(scope="module")
def trial():
    return make_trial(n_per_arm=4, seed=3)


@pytest.mark.parametrize(
    ("sample", "population", "expected"),
    [
        # tumor freq_parent of a zero count: (0 + 0.5) / (cd3 + 1)
        ("P01_tumor_C2D1", "cd8", lambda x, obs: 0.5 / (x[COL["cd3"]] + 1)),
        # bone marrow freq_live: (0 + 0.5) / (live + 1)
        ("P01_bone_marrow_C2D1", "cd8", lambda x, obs: 0.5 / (x[COL["live"]] + 1)),
        # blood per_ul: that fraction of live x lymphocytes_per_ul
        (
            "P01_blood_C1D8",
            "cd8",
            lambda x, obs: 0.5 / (x[COL["live"]] + 1) * obs["lymphocytes_per_ul"],
        ),
        # ratio with a zero numerator: (0 + 0.5) / (treg + 0.5)
        ("P01_blood_C1D8", "cd4_treg", lambda x, obs: 0.5 / (x[COL["treg"]] + 0.5)),
    ],
)
def test_zero_is_offset_against_its_own_denominator(trial, sample, population, expected):
    adata = trial.copy()
    _set_count(adata, sample, "cd8" if population == "cd8" else "cd4", 0.0)
    row = _values(adata).loc[(sample, population)]
    i = adata.obs_names.get_loc(sample)
    assert row["value"] == 0.0  # the measured value is reported as it is
    want = expected(adata.X[i], adata.obs.iloc[i])
    assert row["log2_value"] == pytest.approx(math.log2(want), rel=1e-12)
    assert np.isfinite(row["log2_value"])


def test_a_sample_never_depends_on_another_patient(trial):
    adata = trial.copy()
    zeros = ["P01_tumor_C2D1", "P01_blood_C1D8", "P01_bone_marrow_C2D1"]
    for sample in zeros:
        _set_count(adata, sample, "cd8", 0.0)
    _set_count(adata, "P01_blood_C2D1", "cd4", 0.0)
    before = _values(adata)
    changed = adata.copy()
    others = [s for s in changed.obs_names if not s.startswith("P01_")]
    for k, sample in enumerate(others):  # other patients: much smaller values, more zeros
        _set_count(changed, sample, "cd8", 0.0 if k % 3 == 0 else 1.0 + k)
        _set_count(changed, sample, "cd4", 0.0 if k % 4 == 0 else 2.0)
    after = _values(changed)
    own = [s for s in adata.obs_names if s.startswith("P01_")]
    pd.testing.assert_frame_equal(before.loc[own], after.loc[own])
    assert np.isfinite(after["log2_value"]).all()  # every zero has a finite log2


def test_non_zero_values_are_unchanged(trial):
    values = _values(trial)
    positive = values["value"] > 0
    assert positive.all()
    expected = np.log2(values["value"].to_numpy(dtype=float))
    np.testing.assert_array_equal(values["log2_value"].to_numpy(), expected)


def test_zero_gives_a_finite_change_from_baseline(trial):
    adata = trial.copy()
    _set_count(adata, "P01_blood_C1D1", "cd8", 0.0)  # a zero at baseline
    _set_count(adata, "P02_blood_C1D8", "cd8", 0.0)  # and on treatment
    values = stats.measure_table(adata, analysis=ZERO_ANALYSIS)
    fc = stats.log2_fold_changes(values, baseline_visit=BASELINES)
    cd8 = fc[(fc["population"] == "cd8") & (fc["compartment"] == "blood")]
    assert set(cd8.loc[cd8["arm"] == ARM_A, "patient_id"]) >= {"P01", "P02"}
    assert np.isfinite(cd8["log2fc"]).all()


def test_zero_without_a_known_denominator_is_missing_and_says_why(trial):
    adata = trial.copy()
    adata.uns["ratios"] = {}  # the ratio's populations unknown: its denominator is unknown
    _set_count(adata, "P01_blood_C1D8", "cd4", 0.0)
    row = _values(adata).loc[("P01_blood_C1D8", "cd4_treg")]
    assert row["value"] == 0.0
    assert np.isnan(row["log2_value"])
    assert row["missing"] == "zero with unknown denominator"
