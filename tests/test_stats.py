"""Longitudinal statistics (cytotrial.tl) on a tiny simulated trial with planted effects.

The trial is built in conftest.py (``make_trial``, also used by test_plots.py): per-patient
baseline values times ``2 ** (planted effect + noise)``, layers and ``obsm`` per the
populations.h5ad contract, three compartments (blood, tumor, bone marrow with its own SCREEN
baseline), features that are populations, a ratio and an MFI. Expected values come from the
planted effects or from independent computations (scipy, direct formulas), never from the code
under test.
"""

from __future__ import annotations

import math
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import (
    ANALYSIS,
    ARM_A,
    ARM_B,
    BASELINES,
    EFFECTS,
    FEATURES,
    MARROW,
    MFI,
    PLANTED,
    RATIOS,
    patients_table,
    planted_trial,
)
from cytotrial import tl as stats
from cytotrial.config import defaults
from cytotrial.errors import ConfigError, SampleSheetError


@pytest.fixture(scope="module")
def trial() -> ad.AnnData:
    return planted_trial()


@pytest.fixture(scope="module")
def patients_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("clinical") / "patients.tsv"
    patients_table().to_csv(path, sep="\t", index=False)
    return str(path)


@pytest.fixture(scope="module")
def tables(trial, patients_path) -> dict[str, pd.DataFrame]:
    return stats.compute_tables(
        trial, analysis=ANALYSIS, patients=stats.read_patients(patients_path)
    )


def _row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for key, value in where.items():
        mask &= (table[key] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {where}, found {mask.sum()}"
    return table.loc[mask].iloc[0]


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg written out: q_(i) = min over j >= i of p_(j) * m / j."""
    order = np.argsort(p)
    m = len(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


# --------------------------------------------------------------------------------------------
# change from baseline values
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("feature", ["cd4", "cd4_treg", MFI])
def test_log2fc_equals_planted_value_where_noise_free(tables, feature):
    # a population, a ratio of two noise-free populations, an MFI: each its planted value
    fc = tables["log2fc"]
    rows = fc[fc["population"] == feature]
    expected = [
        PLANTED.get((row.arm, row.compartment, feature, row.visit), 0.0)
        for row in rows.itertuples()
    ]
    np.testing.assert_allclose(rows["log2fc"].to_numpy(), expected, atol=1e-12)
    assert (rows["log2fc"] != 0).any()
    blood = rows[rows["compartment"] == "blood"]
    # 10 + 10 patients x 3 visits, minus P03 who has no blood baseline
    assert len(blood) == 19 * 3
    measures = dict(zip(rows["compartment"], rows["measure"]))
    if feature == "cd4":
        assert measures == {"blood": "per_ul", "tumor": "freq_parent", MARROW: "freq_parent"}
    else:
        assert set(measures.values()) == {"ratio" if feature in RATIOS else "mfi"}
    # the MFI is not in the bone marrow panel: no rows there
    assert (MARROW in measures) == (feature != MFI)


def test_each_compartment_is_related_to_its_own_baseline(tables):
    fc = tables["log2fc"]
    marrow = fc[fc["compartment"] == MARROW]
    assert set(marrow["baseline_sample_id"].str.rsplit("_", n=1).str[1]) == {"SCREEN"}
    assert set(marrow["visit"]) == {"SCREEN", "C2D1"}
    row = _row(marrow, patient_id="P01", population="cd4", visit="C2D1")
    assert row["baseline_sample_id"] == "P01_bone_marrow_SCREEN"
    assert row["log2fc"] == pytest.approx(0.5, abs=1e-12)
    # the baseline is not tested against itself, in any compartment
    for name in ("change_from_baseline", "arm_comparison"):
        table = tables[name]
        for compartment, baseline in BASELINES.items():
            visits = set(table.loc[table["compartment"] == compartment, "visit"])
            assert visits and baseline not in visits, (name, compartment)


def test_log2fc_is_the_log2_ratio_of_the_value_to_the_own_baseline(trial, tables):
    fc = tables["log2fc"]
    per_ul = pd.Series(
        trial.layers["per_ul"][:, list(trial.var_names).index("cd8")], index=trial.obs_names
    )
    freq = pd.Series(
        trial.layers["freq_parent"][:, list(trial.var_names).index("cd8")], index=trial.obs_names
    )
    for compartment, layer in (("blood", per_ul), ("tumor", freq)):
        rows = fc[(fc["population"] == "cd8") & (fc["compartment"] == compartment)]
        assert set(rows["measure"]) == {"per_ul" if compartment == "blood" else "freq_parent"}
        for _, row in rows.iterrows():
            own = f"{row['patient_id']}_{compartment}_{row['visit']}"
            base = f"{row['patient_id']}_{compartment}_C1D1"
            assert row["sample_id"] == own and row["baseline_sample_id"] == base
            assert row["log2fc"] == pytest.approx(math.log2(layer[own] / layer[base]), abs=1e-9)
    # a ratio and an MFI: their own values, whatever the compartment's measure
    for feature, key in (("cd4_treg", "ratios"), (MFI, "mfi_median")):
        values = trial.obsm[key][feature]
        rows = fc[(fc["population"] == feature) & (fc["compartment"] == "tumor")]
        assert len(rows) == 40
        for _, row in rows.iterrows():
            expected = math.log2(values[row["sample_id"]] / values[row["baseline_sample_id"]])
            assert row["log2fc"] == pytest.approx(expected, abs=1e-9)
            assert row["value"] == pytest.approx(values[row["sample_id"]])


def test_qc_flags_are_kept_in_the_long_table(tables):
    fc = tables["log2fc"]
    flagged = fc[fc["sample_id"] == "P05_blood_C1D8"]
    assert list(flagged["population"]) == FEATURES
    assert set(flagged["qc_flags"]) == {"low_events"}
    assert set(fc.loc[fc["sample_id"] != "P05_blood_C1D8", "qc_flags"]) == {""}
    assert "baseline_qc_flags" in fc.columns


def test_every_sample_flagged_as_read_back_from_h5ad(trial, tmp_path):
    """qc_flags come back from an h5ad as a categorical; with every sample flagged "" is not one."""
    flagged = trial.copy()
    flagged.obs["qc_flags"] = pd.Categorical(["low_events"] * flagged.n_obs)
    fc = stats.compute_tables(flagged, analysis=ANALYSIS, tables=["log2fc"])["log2fc"]
    assert set(fc["qc_flags"]) == {"low_events"}


def test_patient_without_baseline_is_reported_not_dropped_silently(tables):
    missing = tables["missing_baseline"]
    row = _row(missing, patient_id="P03", compartment="blood")
    assert row["arm"] == ARM_A
    assert row["visits_available"] == "C1D8,C2D1"
    assert row["reason"] == "no C1D1 sample"
    assert (row["population"], row["measure"]) == ("", "")  # every feature
    assert len(missing) == 1  # P03 has a tumor baseline
    fc = tables["log2fc"]
    assert not ((fc["patient_id"] == "P03") & (fc["compartment"] == "blood")).any()
    assert ((fc["patient_id"] == "P03") & (fc["compartment"] == "tumor")).any()
    # the MMRM needs the baseline (its covariate): P03 is left out, 19 patients x 2 visits
    mmrm = tables["mmrm"]
    blood = mmrm[mmrm["compartment"] == "blood"]
    assert set(blood["n_obs"]) == {38}
    assert set(blood.loc[blood["contrast"] == f"{ARM_A} adjusted mean", "n_patients"]) == {9}


def test_baseline_without_value_is_reported(trial):
    adata = _with_obs_value(trial, "P07_blood_C1D1", "lymphocytes_per_ul", np.nan)
    adata.obs["lymphocytes_per_ul"] = adata.obs["lymphocytes_per_ul"].astype(float)
    adata.layers["per_ul"][adata.obs_names.get_loc("P07_blood_C1D1"), :] = np.nan
    out = stats.compute_tables(adata, analysis=ANALYSIS, tables=["missing_baseline", "log2fc"])
    row = _row(out["missing_baseline"], patient_id="P07", compartment="blood")
    assert row["reason"] == (
        "C1D1 sample P07_blood_C1D1 has no per_ul value (lymphocytes_per_ul missing)"
    )
    assert (row["population"], row["measure"]) == ("cd4,cd8", "per_ul")
    fc = out["log2fc"]
    p07 = fc[(fc["patient_id"] == "P07") & (fc["compartment"] == "blood")]
    # the populations have no change from baseline; the ratio and the MFI still do
    assert set(p07["population"]) == {"cd4_treg", MFI}


def test_zero_values_stay_finite(trial):
    adata = trial.copy()
    j = list(adata.var_names).index("cd8")
    adata.layers["freq_parent"][adata.obs_names.get_loc("P12_tumor_C2D1"), j] = 0.0
    adata.X[adata.obs_names.get_loc("P12_blood_C1D8"), j] = 0.0
    out = stats.compute_tables(
        adata,
        analysis={**ANALYSIS, "measure": {"blood": "count"}, "pseudocount": 1.0},
        tables=["log2fc"],
    )["log2fc"]
    tumor = _row(out, patient_id="P12", compartment="tumor", population="cd8", visit="C2D1")
    # a zero is offset against its own parent's count in the same sample (cd8's parent: cd3)
    cd3 = adata.X[adata.obs_names.get_loc("P12_tumor_C2D1"), list(adata.var_names).index("cd3")]
    assert tumor["log2_value"] == pytest.approx(math.log2(0.5 / (cd3 + 1)))
    blood = _row(out, patient_id="P12", compartment="blood", population="cd8", visit="C1D8")
    assert blood["log2_value"] == pytest.approx(0.0)  # log2(0 + pseudocount 1)
    base = adata.X[adata.obs_names.get_loc("P12_blood_C1D1"), j]
    assert blood["log2fc"] == pytest.approx(-math.log2(base + 1.0))


def _with_mfi(adata: ad.AnnData, changes: dict[str, float]) -> ad.AnnData:
    adata = adata.copy()
    frame = adata.obsm["mfi_median"].copy()
    for sample, value in changes.items():
        frame.loc[sample, MFI] = value
    adata.obsm["mfi_median"] = frame
    return adata


def test_non_positive_mfi_median_is_missing_not_a_number(trial):
    adata = _with_mfi(trial, {"P02_blood_C1D8": -3.0, "P04_blood_C1D1": 0.0})
    values = stats.measure_table(adata, analysis=ANALYSIS)
    row = _row(values, sample_id="P02_blood_C1D8", population=MFI)
    assert np.isnan(row["value"]) and np.isnan(row["log2_value"])
    assert (row["measure"], row["missing"]) == ("mfi", "median <= 0")
    out = stats.compute_tables(
        adata, analysis=ANALYSIS, tables=["log2fc", "missing_baseline", "summary"]
    )
    fc = out["log2fc"][out["log2fc"]["population"] == MFI]
    assert "P02_blood_C1D8" not in set(fc["sample_id"])
    assert not ((fc["patient_id"] == "P04") & (fc["compartment"] == "blood")).any()
    assert np.isfinite(fc["log2fc"]).all()
    missing = out["missing_baseline"]
    p02 = _row(missing, patient_id="P02", compartment="blood")
    assert (p02["population"], p02["measure"]) == (MFI, "mfi")
    assert p02["reason"] == "C1D8 sample P02_blood_C1D8 has no mfi value (median <= 0)"
    p04 = _row(missing, patient_id="P04", compartment="blood")
    assert p04["reason"] == "C1D1 sample P04_blood_C1D1 has no mfi value (median <= 0)"
    # the summary counts patients with a value: P02 has none at C1D8
    summary = _row(out["summary"], population=MFI, compartment="blood", arm=ARM_A, visit="C1D8")
    assert summary["n_patients"] == 9 and summary["unit"] == "median fluorescence intensity"


def test_missing_values_say_why(trial):
    adata = _with_mfi(trial, {"P06_tumor_C2D1": np.nan})
    ratios = adata.obsm["ratios"].copy()
    ratios.loc["P08_tumor_C2D1", "cd4_treg"] = np.nan
    adata.obsm["ratios"] = ratios
    flags = {
        "P06_tumor_C2D1": f"mfi_too_few_events:{MFI}",
        "P08_tumor_C2D1": "too_few_events:cd3<200,ratio_zero_denominator:cd4_treg",
    }
    for sample, flag in flags.items():
        adata = _with_obs_value(adata, sample, "qc_flags", flag)
    missing = stats.compute_tables(adata, analysis=ANALYSIS, tables=["missing_baseline"])
    missing = missing["missing_baseline"].set_index("patient_id")
    assert missing.loc["P06", "reason"] == (
        "C2D1 sample P06_tumor_C2D1 has no mfi value (too few events)"
    )
    assert missing.loc["P08", "reason"] == (
        "C2D1 sample P08_tumor_C2D1 has no ratio value (zero denominator)"
    )
    assert (missing.loc["P08", "population"], missing.loc["P08", "measure"]) == (
        "cd4_treg",
        "ratio",
    )
    assert list(missing.columns) == [
        "arm", "compartment", "population", "measure", "visits_available", "reason",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "name", ["log2fc", "summary", "change_from_baseline", "arm_comparison", "mmrm"]
)
def test_ratio_and_mfi_rows_are_in_every_table(tables, name):
    table = tables[name]
    measures = table.groupby("population")["measure"].agg(set).to_dict()
    assert measures["cd4_treg"] == {"ratio"} and measures[MFI] == {"mfi"}
    assert list(dict.fromkeys(table["population"])) == FEATURES  # in the configured order
    assert set(table["compartment"]) == {"blood", "tumor", MARROW}


def test_ratio_and_mfi_effects_are_found(tables):
    arm = tables["arm_comparison"]
    row = _row(arm, population=MFI, compartment="blood", visit="C1D8")
    assert row["estimate"] == pytest.approx(1.5) and row["q_value"] < 0.05
    row = _row(arm, population="cd4_treg", compartment="blood", visit="C1D8")
    assert row["estimate"] == pytest.approx(1.0) and row["q_value"] < 0.05
    summary = tables["summary"]
    assert (
        _row(summary, population="cd4_treg", compartment="tumor", arm=ARM_B, visit="C1D1")["unit"]
        == "ratio of counts"
    )
    early = tables["response"]
    early = early[early["analysis"] == "early_change"]
    assert {"cd4_treg", MFI} <= set(early["population"])


def test_defaults_resolve_against_the_data(trial):
    arms = [ARM_A, ARM_B]
    plan = stats.analysis_plan(trial, analysis={}, arms=arms, frequencies_of=["live"])
    assert plan["baseline_visit"] == BASELINES  # "": each compartment's earliest visit
    assert plan["reference_arm"] == ARM_B  # "": the last arm of the config's arms
    assert plan["response_visit"] == "C1D8"  # "": the earliest visit after every baseline
    assert plan["measure"] == dict.fromkeys(BASELINES, "freq_parent")  # unlisted: freq_parent
    # empty populations: every population at or below live, every ratio, every MFI
    below_live = ["live", "leukocytes", "cd3", "cd4", "cd8", "treg", "nk", "cd8_ki67"]
    assert plan["populations"] == [*below_live, "cd4_treg", MFI]
    assert stats.analysis_plan(trial, arms=[ARM_B, ARM_A])["reference_arm"] == ARM_A
    assert stats.analysis_plan(trial)["populations"] == plan["populations"]  # freq_live layer
    everything = stats.analysis_plan(trial, frequencies_of=[])["populations"]
    assert everything[:3] == ["lymphocytes", "singlets", "live"] and len(everything) == 12
    below_cd3 = stats.analysis_plan(trial, frequencies_of=["cd3"])["populations"]
    assert below_cd3 == ["cd3", "cd4", "cd8", "treg", "cd8_ki67", "cd4_treg", MFI]
    # a compartment left out of the mapping: its earliest visit
    partial = stats.analysis_plan(trial, analysis={"baseline_visit": {"tumor": "C2D1"}})
    assert partial["baseline_visit"] == {"blood": "C1D1", MARROW: "SCREEN", "tumor": "C2D1"}
    assert partial["response_visit"] == ""  # no visit after tumor's C2D1


def test_default_tables_equal_the_explicit_ones(trial, tables):
    defaults_ = {"populations": FEATURES, "measure": {"blood": "per_ul"}}
    out = stats.compute_tables(
        trial,
        analysis=defaults_,
        patients=patients_table(),
        tables=["log2fc", "arm_comparison", "response"],
        arms=[ARM_A, ARM_B],
    )
    for name, table in out.items():
        pd.testing.assert_frame_equal(table, tables[name], obj=name)


def test_no_response_visit_after_baseline_is_a_config_error(trial):
    analysis = {**ANALYSIS, "baseline_visit": {**BASELINES, "tumor": "C2D1"}}
    with pytest.raises(ConfigError, match=r"analysis\.response_visit: no visit follows"):
        stats.compute_tables(trial, analysis=analysis, patients=patients_table())


# --------------------------------------------------------------------------------------------
# tests and estimates
# --------------------------------------------------------------------------------------------
def test_change_from_baseline_finds_the_planted_rise_in_one_arm_only(tables):
    cfb = tables["change_from_baseline"]
    for compartment, visit in (("blood", "C1D8"), ("tumor", "C2D1")):
        treated = _row(cfb, population="cd8", compartment=compartment, arm=ARM_A, visit=visit)
        control = _row(cfb, population="cd8", compartment=compartment, arm=ARM_B, visit=visit)
        # within-arm changes are estimates: no q-value, the p-value is descriptive
        assert treated["p_value"] < 0.05 and treated["hl_log2fc"] > 1.0
        assert treated["ci_low"] > 0.5
        assert control["p_value"] >= 0.05
        assert np.isnan(treated["q_value"]) and treated["family"] == "estimate"
        assert abs(control["hl_log2fc"]) < 0.3
    # tumor: no responder effect, so the estimate is the planted 1.5 up to noise
    tumor = _row(cfb, population="cd8", compartment="tumor", arm=ARM_A, visit="C2D1")
    assert tumor["ci_low"] < EFFECTS[(ARM_A, "tumor", "cd8", "C2D1")] < tumor["ci_high"]
    assert tumor["n"] == 10
    # the noise-free population: every patient exactly +1
    cd4 = _row(cfb, population="cd4", compartment="blood", arm=ARM_A, visit="C2D1")
    assert (cd4["median_log2fc"], cd4["ci_low"], cd4["ci_high"]) == pytest.approx((1.0, 1.0, 1.0))
    assert cd4["n"] == 9


def test_change_from_baseline_p_values_are_wilcoxon_signed_rank(tables):
    fc, cfb = tables["log2fc"], tables["change_from_baseline"]
    row = _row(cfb, population="cd8", compartment="blood", arm=ARM_B, visit="C2D1")
    d = fc[
        (fc["population"] == "cd8")
        & (fc["compartment"] == "blood")
        & (fc["arm"] == ARM_B)
        & (fc["visit"] == "C2D1")
    ]["log2fc"]
    assert row["p_value"] == pytest.approx(sps.wilcoxon(d.to_numpy()).pvalue)
    assert row["median_log2fc"] == pytest.approx(np.median(d))


def test_arm_comparison_finds_the_difference_with_the_right_sign(trial, tables):
    arm = tables["arm_comparison"]
    assert set(arm["reference_arm"]) == {ARM_B} and set(arm["arm"]) == {ARM_A}
    for compartment, visit in (("blood", "C1D8"), ("tumor", "C2D1")):
        row = _row(arm, population="cd8", compartment=compartment, visit=visit)
        assert row["estimate"] > 1.0 and row["ci_low"] > 0 and row["q_value"] < 0.05
    later = _row(arm, population="cd8", compartment="blood", visit="C2D1")
    assert later["q_value"] >= 0.05 and later["ci_low"] < 0 < later["ci_high"]
    row = _row(arm, population="cd8", compartment="blood", visit="C1D8")
    assert (row["n_arm"], row["n_reference"]) == (9, 10)
    # swapping the reference arm flips the sign exactly
    swapped = stats.compute_tables(
        trial, analysis={**ANALYSIS, "reference_arm": ARM_A}, tables=["arm_comparison"]
    )["arm_comparison"]
    flipped = _row(swapped, population="cd8", compartment="blood", visit="C1D8")
    assert flipped["arm"] == ARM_B and flipped["estimate"] == pytest.approx(-row["estimate"])
    assert (flipped["ci_low"], flipped["ci_high"]) == pytest.approx(
        (-row["ci_high"], -row["ci_low"])
    )
    assert flipped["p_value"] == pytest.approx(row["p_value"])


def test_mmrm_recovers_the_planted_arm_differences(tables):
    mmrm = tables["mmrm"]
    difference = f"{ARM_A} - {ARM_B}"
    row = _row(mmrm, population="cd8", compartment="blood", visit="C1D8", contrast=difference)
    # planted 2.0, and 1.0 more in the 4 responders of the 9 combination patients with a baseline
    truth = EFFECTS[(ARM_A, "blood", "cd8", "C1D8")] + 4 / 9
    assert row["ci_low"] < truth < row["ci_high"] and row["q_value"] < 0.05
    assert row["covariance"] == "unstructured" and row["family"] == "primary:blood"
    later = _row(mmrm, population="cd8", compartment="blood", visit="C2D1", contrast=difference)
    assert later["p_value"] >= 0.05  # nothing planted there
    tumor = _row(mmrm, population="cd8", compartment="tumor", visit="C2D1", contrast=difference)
    truth = EFFECTS[(ARM_A, "tumor", "cd8", "C2D1")]
    assert tumor["ci_low"] < truth < tumor["ci_high"] and tumor["q_value"] < 0.05
    assert tumor["covariance"] == "ancova"  # one visit after the tumor baseline
    means = mmrm[mmrm["contrast"].str.endswith(" adjusted mean")]
    assert len(means) and set(means["family"]) == {"estimate"} and means["q_value"].isna().all()


@pytest.fixture
def mmrm_fit(monkeypatch):
    """Replace the REML fit of one covariance structure: ``fake(original, *arguments)``."""
    from cytotrial.tl import _mmrm_fit

    original = _mmrm_fit.fit

    def install(fake):
        monkeypatch.setattr(_mmrm_fit, "fit", lambda *args: fake(original, *args))

    return install


def test_failed_fit_is_a_row_with_its_note(trial, tables, mmrm_fit):
    # every structure fails on the models with two visits (blood): their rows stay, with the
    # reason; the other models are fitted as before
    from cytotrial.tl._mmrm_fit import FitError

    def diverging(original, prob, structure, theta0):
        if prob.n_visits > 1:
            raise FitError("REML did not converge")
        return original(prob, structure, theta0)

    mmrm_fit(diverging)
    got = stats.compute_tables(trial, analysis=ANALYSIS, tables=["mmrm"])["mmrm"]
    before = tables["mmrm"]
    keys = ["population", "compartment", "visit", "contrast"]
    assert got[keys].equals(before[keys])
    blood = (got["compartment"] == "blood").to_numpy()
    pd.testing.assert_frame_equal(got[~blood], before[~blood])
    failed = got[blood & (before["note"] != "not fitted: the changes do not vary").to_numpy()]
    structures = ["unstructured", "heterogeneous_toeplitz", "heterogeneous_compound_symmetry"]
    reason = "; ".join(f"{s}: REML did not converge" for s in [*structures, "compound_symmetry"])
    assert len(failed) and (failed["note"] == f"not fitted: {reason}").all()
    assert (failed["covariance"] == "").all()
    assert failed[["estimate", "se", "df", "p_value", "q_value"]].isna().all().all()
    assert (failed["n_obs"] == 38).all()


def test_programming_error_in_fit_is_not_swallowed(trial, mmrm_fit):
    def broken(original, *args):
        raise TypeError("fit() got an unexpected keyword argument")

    mmrm_fit(broken)
    with pytest.raises(TypeError, match="unexpected keyword"):
        stats.compute_tables(trial, analysis=ANALYSIS, tables=["mmrm"])


def test_summary_counts_and_intervals(trial, tables):
    summary, fc = tables["summary"], tables["log2fc"]
    row = _row(summary, population="cd8", compartment="blood", arm=ARM_A, visit="C1D8")
    assert row["n_patients"] == 10 and row["n_log2fc"] == 9 and row["unit"] == "cells/µL"
    j = list(trial.var_names).index("cd8")
    mask = (
        (trial.obs["arm"] == ARM_A)
        & (trial.obs["visit"] == "C1D8")
        & (trial.obs["compartment"] == "blood")
    ).to_numpy()
    values = trial.layers["per_ul"][mask, j]
    assert row["median"] == pytest.approx(np.median(values))
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(values, [25, 75])))
    d = fc[
        (fc["population"] == "cd8")
        & (fc["compartment"] == "blood")
        & (fc["arm"] == ARM_A)
        & (fc["visit"] == "C1D8")
    ]["log2fc"]
    low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert (row["mean_log2fc"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (d.mean(), low, high)
    )
    base = _row(summary, population="cd8", compartment="blood", arm=ARM_A, visit="C1D1")
    assert base["n_patients"] == 9 and base["mean_log2fc"] == 0


def test_response_rates_and_early_change(tables):
    resp = tables["response"]
    orr = resp[resp["analysis"] == "objective_response_rate"]
    assert list(orr["arm"]) == [ARM_A, ARM_B]
    for arm, k in ((ARM_A, 4), (ARM_B, 2)):
        row = _row(orr, arm=arm)
        ci = sps.binomtest(k, 10).proportion_ci(confidence_level=0.95, method="exact")
        assert (row["n"], row["n_responders"]) == (10, k)  # NE counted as no response
        assert row["estimate"] == pytest.approx(k / 10)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    early = resp[resp["analysis"] == "early_change"]
    assert set(early["visit"]) == {"C1D8"} and set(early["compartment"]) == {"blood"}
    row = _row(early, arm=ARM_A, population="cd8")
    assert (row["n_responders"], row["n_non_responders"]) == (4, 5)  # P03 has no baseline
    assert row["estimate"] > 0.5 and row["ci_low"] > 0
    assert "all" not in set(resp["arm"])  # no pooled rows: response is confounded by arm
    assert set(early["family"]) == {"secondary:response"}
    assert set(orr["family"]) == {"estimate"} and orr["q_value"].isna().all()


def test_response_without_evaluable_patients_has_rates_only(trial):
    patients = patients_table().assign(best_response="NE")
    resp = stats.compute_tables(trial, analysis=ANALYSIS, patients=patients, tables=["response"])
    resp = resp["response"]
    assert list(resp["analysis"]) == ["objective_response_rate"] * 2
    assert (resp["n_responders"] == 0).all() and (resp["n"] == 10).all()


# --------------------------------------------------------------------------------------------
# contracts: columns, q-values, order, determinism
# --------------------------------------------------------------------------------------------
COLUMNS = {
    "missing_baseline": ["patient_id", "arm", "compartment", "visits_available", "reason"],
    "summary": [
        "arm",
        "compartment",
        "population",
        "visit",
        "n_patients",
        "median",
        "q1",
        "q3",
        "mean_log2fc",
        "ci_low",
        "ci_high",
    ],
    "change_from_baseline": [
        "population",
        "compartment",
        "arm",
        "visit",
        "n",
        "median_log2fc",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
    ],
    "arm_comparison": [
        "population",
        "compartment",
        "visit",
        "arm",
        "reference_arm",
        "n_arm",
        "n_reference",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
    ],
    "mmrm": [
        "population",
        "compartment",
        "measure",
        "visit",
        "contrast",
        "estimate",
        "se",
        "df",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
        "family",
        "n_patients",
        "n_obs",
        "covariance",
        "note",
    ],
    "response": [
        "analysis",
        "arm",
        "n",
        "n_responders",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
    ],
    "log2fc": [
        "patient_id",
        "arm",
        "compartment",
        "population",
        "visit",
        "sample_id",
        "log2fc",
        "qc_flags",
    ],
}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_tables_have_the_named_columns(tables, name):
    assert set(COLUMNS[name]) <= set(tables[name].columns)
    assert len(tables[name]) > 0


@pytest.mark.parametrize("name", ["arm_comparison", "response"])
def test_q_values_are_benjamini_hochberg(tables, name):
    # within each secondary family (test_families.py checks every family of every table)
    table = tables[name]
    table = table[table["family"] == table["family"][table["family"] != "estimate"].iloc[0]]
    tested = table[np.isfinite(table["p_value"].to_numpy(dtype=float))]
    p, q = tested["p_value"].to_numpy(dtype=float), tested["q_value"].to_numpy(dtype=float)
    assert len(p) >= 4
    assert np.all(q >= p - 1e-15)
    order = np.argsort(p, kind="mergesort")
    assert np.all(np.diff(q[order]) >= -1e-15)  # monotone in p
    np.testing.assert_allclose(q, _bh(p), rtol=1e-12)
    assert table.loc[~np.isfinite(table["p_value"].to_numpy(dtype=float)), "q_value"].isna().all()


def test_visits_are_in_clinical_order_not_alphabetical(trial):
    adata = trial.copy()
    relabel = {
        "C1D8": ("C1D15", 1, 15),
        "C2D1": ("C10D1", 10, 1),
    }  # alphabetical: C10D1 < C1D1 < C1D15
    obs = adata.obs.copy()
    for old, (new, cycle, day) in relabel.items():
        mask = obs["visit"] == old
        obs.loc[mask, "visit"], obs.loc[mask, "cycle"], obs.loc[mask, "day"] = new, cycle, day
    adata.obs = obs
    assert stats.visit_order(adata.obs) == ["SCREEN", "C1D1", "C1D15", "C10D1"]
    out = stats.compute_tables(
        adata,
        analysis={**ANALYSIS, "response_visit": "C1D15"},
        tables=["summary", "change_from_baseline", "mmrm"],
    )
    cell = out["summary"][
        (out["summary"]["population"] == "cd8")
        & (out["summary"]["compartment"] == "blood")
        & (out["summary"]["arm"] == ARM_A)
    ]
    assert list(cell["visit"]) == ["C1D1", "C1D15", "C10D1"]
    cfb = out["change_from_baseline"]
    assert list(
        cfb[(cfb["population"] == "cd8") & (cfb["compartment"] == "blood") & (cfb["arm"] == ARM_A)][
            "visit"
        ]
    ) == ["C1D15", "C10D1"]
    mmrm = out["mmrm"].query("population == 'cd8' and compartment == 'blood'")
    assert list(dict.fromkeys(mmrm["visit"])) == ["C1D15", "C10D1"]


def test_write_stats_is_deterministic_and_tidy(tmp_path, trial, patients_path):
    path = tmp_path / "populations.h5ad"
    trial.write_h5ad(path)
    first = stats.write_stats(
        path, outdir=tmp_path / "a", analysis=ANALYSIS, patients_path=patients_path
    )
    second = stats.write_stats(
        path, outdir=tmp_path / "b", analysis=ANALYSIS, patients_path=patients_path
    )
    assert sorted(first) == sorted(stats.STAT_TABLES)
    for name, file in first.items():
        assert file.name == f"{name}.tsv"
        assert file.read_bytes() == second[name].read_bytes()
        table = pd.read_csv(file, sep="\t")
        assert len(table) > 0 and "\t" not in "".join(table.columns)
    # named outputs, and no clinical table: response has its header only
    only = stats.write_stats(
        path,
        outputs={"response": tmp_path / "r.tsv", "summary": tmp_path / "s.tsv"},
        analysis=ANALYSIS,
    )
    assert sorted(only) == ["response", "summary"]
    header = only["response"].read_text().splitlines()
    assert len(header) == 1 and header[0].startswith("analysis\tarm\t")


def test_hodges_lehmann_intervals_invert_the_exact_tests():
    rng = np.random.default_rng(7)
    outcomes = set()
    for trial_no in range(60):
        n, m = int(rng.integers(6, 16)), int(rng.integers(4, 14))
        x = rng.normal(rng.uniform(-1.5, 1.5), 1.0, n)
        y = rng.normal(0.0, 1.0, m)
        _, low, high = stats.hodges_lehmann_ci(x, alpha=0.05)
        p = sps.wilcoxon(x, method="exact").pvalue
        assert (not low <= 0 <= high) == (p <= 0.05), (trial_no, p, low, high)
        _, low2, high2 = stats.hodges_lehmann_shift_ci(x, y, alpha=0.05)
        p2 = sps.mannwhitneyu(x, y, method="exact").pvalue
        assert (not low2 <= 0 <= high2) == (p2 <= 0.05), (trial_no, p2, low2, high2)
        outcomes.add(p <= 0.05)
    assert outcomes == {True, False}  # both sides of the threshold were exercised


def test_hodges_lehmann_estimates_and_small_samples():
    x = np.array([0.1, 0.4, -0.2, 0.9, 1.3, 0.5, 0.7])
    walsh = [(x[i] + x[j]) / 2 for i in range(len(x)) for j in range(i, len(x))]
    assert stats.hodges_lehmann_ci(x)[0] == pytest.approx(np.median(walsh))
    y = np.array([0.0, -0.3, 0.2])
    assert stats.hodges_lehmann_shift_ci(x, y)[0] == pytest.approx(
        np.median(np.subtract.outer(x, y))
    )
    # 5 values cannot give a 95% signed-rank interval (smallest two-sided p is 1/16)
    assert np.isnan(stats.hodges_lehmann_ci(x[:5])[1:]).all()
    # large samples use the normal approximation: HL variance is pi/3 sigma^2 / n for normal data
    big = np.random.default_rng(3).normal(0.0, 1.0, 400)
    est, low, high = stats.hodges_lehmann_ci(big)
    expected = 2 * 1.96 * math.sqrt(math.pi / 3 / 400)
    assert low < est < high and (high - low) == pytest.approx(expected, rel=0.15)
    a, b = np.random.default_rng(4).normal(0.5, 1.0, (2, 250))
    est, low, high = stats.hodges_lehmann_shift_ci(a, b)
    assert (high - low) == pytest.approx(2 * 1.96 * math.sqrt(math.pi / 3 * 2 / 250), rel=0.15)


def test_signed_rank_with_zero_differences():
    # an unchanged value (log2 fold change exactly 0) among fewer than 10: scipy < 1.15 switches to
    # the normal approximation with a warning; the p-value is scipy's, and no warning escapes
    d = np.array([0.0, 0.4, 0.7, -0.2, 0.9, 0.0, 1.1])
    log2fc = pd.DataFrame(
        dict(
            population="cd8", compartment="blood", arm=ARM_A, visit="C1D8", measure="count",
            cycle=1, day=8, log2fc=d,
        )
    )  # fmt: skip
    row = stats.within_arm_changes(log2fc, baseline_visit="C1D1", alpha=0.05).iloc[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sample size too small for normal approximation")
        expected = sps.wilcoxon(d).pvalue
    assert row["n"] == 7 and row["p_value"] == pytest.approx(expected)


def test_t_interval_matches_scipy():
    x = np.array([0.3, 1.2, -0.4, 0.8, 0.5])
    low, high = sps.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert stats.t_interval(x, alpha=0.1) == pytest.approx((x.mean(), low, high))
    assert np.isnan(stats.t_interval([1.0])[1])


# --------------------------------------------------------------------------------------------
# errors a user can cause
# --------------------------------------------------------------------------------------------
def _without_obs_column(adata: ad.AnnData, column: str) -> ad.AnnData:
    adata = adata.copy()
    adata.obs = adata.obs.drop(columns=[column])
    return adata


def _with_obs_value(adata: ad.AnnData, sample: str, column: str, value) -> ad.AnnData:
    adata = adata.copy()
    obs = adata.obs.copy()
    obs[column] = obs[column].astype(object)
    obs.loc[sample, column] = value
    adata.obs = obs
    return adata


def _without_population(adata: ad.AnnData, population: str) -> ad.AnnData:
    return adata[:, [p for p in adata.var_names if p != population]].copy()


# (change of the trial, analysis values, error, texts the one-line message must name)
BAD_INPUTS = {
    # checked by the config schema: the message names the key
    "unknown population": (
        lambda a: a,
        {"populations": ["cd8", "cd99"]},
        ConfigError,
        ("analysis.populations", "cd99"),
    ),
    "unknown MFI": (
        lambda a: a,
        {"populations": ["cd8", "cd8:CD99"]},
        ConfigError,
        ("analysis.populations", "cd8:CD99"),
    ),
    "unknown measure": (
        lambda a: a,
        {"measure": {"blood": "median"}},
        ConfigError,
        ("config analysis.measure.blood", "median"),
    ),
    "measure not a mapping": (
        lambda a: a,
        {"measure": "per_ul"},
        ConfigError,
        ("config analysis.measure",),
    ),
    "bad alpha": (lambda a: a, {"alpha": 5}, ConfigError, ("config analysis.alpha",)),
    "alpha as text": (lambda a: a, {"alpha": "0.05"}, ConfigError, ("config analysis.alpha",)),
    "zero pseudocount": (
        lambda a: a,
        {"pseudocount": 0},
        ConfigError,
        ("config analysis.pseudocount",),
    ),
    "unknown key": (lambda a: a, {"alpah": 0.1}, ConfigError, ("config analysis", "alpah")),
    # checked against the data
    "population not in the data": (
        lambda a: _without_population(a, "treg"),
        {"populations": ["cd8", "treg"]},
        ConfigError,
        ("analysis.populations", "treg"),
    ),
    "baseline absent": (
        lambda a: a,
        {"baseline_visit": "C9D9"},
        ConfigError,
        ("analysis.baseline_visit", "C9D9", "no sample's visit"),
    ),
    "baseline absent from a compartment": (
        lambda a: a,
        {"baseline_visit": "C1D1"},
        ConfigError,
        ("analysis.baseline_visit", "'C1D1' is no bone marrow sample's visit", "SCREEN"),
    ),
    "compartment baseline absent": (
        lambda a: a,
        {"baseline_visit": {MARROW: "C1D8"}},
        ConfigError,
        (f"analysis.baseline_visit.{MARROW}", "C1D8", "SCREEN, C2D1"),
    ),
    "reference arm absent": (
        lambda a: a,
        {"reference_arm": "PLACEBO"},
        ConfigError,
        ("analysis.reference_arm", "PLACEBO"),
    ),
    "measure the data lacks": (
        lambda a: a,
        {"measure": {"tumor": "freq_cd3"}},
        ConfigError,
        ("analysis.measure.tumor", "freq_cd3"),
    ),
    "missing obs column": (
        lambda a: _without_obs_column(a, "cycle"),
        {},
        SampleSheetError,
        ("cycle",),
    ),
    "non-integer day": (
        lambda a: _with_obs_value(a, "P02_blood_C1D8", "day", "eight"),
        {},
        SampleSheetError,
        ("P02_blood_C1D8",),
    ),
    "visit with two days": (
        lambda a: _with_obs_value(a, "P02_blood_C1D8", "day", 9),
        {},
        SampleSheetError,
        ("C1D8",),
    ),
    "patient in two arms": (
        lambda a: _with_obs_value(a, "P02_tumor_C2D1", "arm", ARM_B),
        {},
        SampleSheetError,
        ("P02",),
    ),
    "two samples one visit": (
        lambda a: _with_obs_value(a, "P02_tumor_C2D1", "visit", "C1D1"),
        {},
        SampleSheetError,
        ("P02",),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_error(trial, case):
    change, analysis, error, named = BAD_INPUTS[case]
    with pytest.raises(error) as caught:
        stats.compute_tables(change(trial), analysis={**ANALYSIS, **analysis}, tables=["summary"])
    message = str(caught.value)
    assert "\n" not in message and all(text in message for text in named), message


def test_resolve_analysis_is_the_schema_section():
    assert not hasattr(stats, "DEFAULT_ANALYSIS")  # the schema holds the defaults
    assert stats.resolve_analysis() == defaults("analysis")
    assert stats.resolve_analysis(None) == defaults("analysis")
    cfg = stats.resolve_analysis({"measure": {"blood": "count"}, "alpha": 0.1})
    assert cfg["measure"] == {"blood": "count"}  # other compartments: freq_parent, in the plan
    assert cfg["alpha"] == 0.1 and cfg["pseudocount"] == defaults("analysis")["pseudocount"]
    with pytest.raises(ConfigError, match="config analysis: must be a mapping"):
        stats.resolve_analysis(["alpha", 0.1])


def test_every_bad_analysis_value_is_one_line_naming_its_key():
    with pytest.raises(ConfigError) as caught:
        stats.resolve_analysis({"alpha": 0, "pseudocount": -1})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("config analysis.alpha: ")
    assert lines[1].startswith("config analysis.pseudocount: ")


def test_per_ul_without_lymphocyte_counts_is_a_config_error(trial):
    adata = trial.copy()
    adata.layers["per_ul"][:] = np.nan
    with pytest.raises(ConfigError, match="lymphocytes_per_ul"):
        stats.compute_tables(adata, analysis=ANALYSIS, tables=["log2fc"])


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda t: t.assign(best_response=t["best_response"].replace("PD", "progressive")),
            "progressive",
        ),
        (lambda t: t.drop(columns=["best_response"]), "best_response"),
        (lambda t: pd.concat([t, t.iloc[[0]]]), "P01"),
    ],
)
def test_bad_patients_table_gives_one_line_per_problem(tmp_path, edit, named):
    path = tmp_path / "patients.tsv"
    edit(patients_table()).to_csv(path, sep="\t", index=False)
    with pytest.raises(SampleSheetError) as caught:
        stats.read_patients(path)
    # one line per problem (here: per bad row), each naming what is wrong
    lines = str(caught.value).splitlines()
    assert lines and all(named in line and str(path) in line for line in lines)


def test_patient_arm_must_agree_with_the_samples(trial, tmp_path):
    table = patients_table()
    table.loc[table["patient_id"] == "P01", "arm"] = ARM_B
    with pytest.raises(SampleSheetError, match="P01"):
        stats.compute_tables(trial, analysis=ANALYSIS, patients=table, tables=["response"])
