"""MMRM (cytotrial.tl.mmrm): agreement with R, known special cases, fallbacks, calibration.

Reference values come from R (tests/r/mmrm_reference.R: ``nlme::gls`` by REML with ``corSymm`` +
``varIdent`` and the other structures of the fallback order, ``emmeans`` Satterthwaite
contrasts) on the planted data sets and five features of the demo trial in tests/data/mmrm
(written by make_inputs.py there), or from independent computations (statsmodels OLS), never from
the code under test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from cytotrial.tl import MMRM_COLUMNS, MMRM_COVARIANCES, mmrm, mmrm_models

DATA = Path(__file__).parent / "data" / "mmrm"
R_SCRIPT = Path(__file__).parent / "r" / "mmrm_reference.R"
DATASETS = [
    "balanced_12",
    "missing_12",
    "unbalanced",
    "balanced_24",
    "missing_24",
    "three_arms",
    "one_visit",
    # features of the demo trial's change table (its real missing samples; a ratio, an MFI, and
    # tumor with one on-treatment visit)
    "demo_cd8_blood",
    "demo_treg_blood",
    "demo_cd8_treg_blood",
    "demo_cd8_ki67_mfi_blood",
    "demo_nk_tumor",
]
REFERENCE = "NIVO"


def _input(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}.tsv", sep="\t")


def _compare(name: str, reference: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """Python against R's rows of one data set; worst differences per covariance structure."""
    data = _input(name)
    worst = {}
    for covariance, expected in reference.groupby("covariance", sort=False):
        start = "unstructured" if covariance == "ancova" else covariance
        got = mmrm(data, reference_arm=REFERENCE, alpha=0.05, covariance=start)
        assert (got["covariance"] == covariance).all(), got["note"].iloc[0]
        both = expected.merge(got, on=["visit", "contrast"], suffixes=("_r", ""), validate="1:1")
        assert len(both) == len(expected) == len(got)
        est = float(np.max(np.abs(both["estimate"] - both["estimate_r"])))
        se = float(np.max(np.abs(both["se"] / both["se_r"] - 1)))
        df = float(np.max(np.abs(both["df"] / both["df_r"] - 1)))
        assert est <= 1e-4 and se <= 0.01 and df <= 0.01, (covariance, est, se, df)
        # nlme's own apVar (finite-difference Hessian) is less accurate: a few percent in the df
        stock = both["df_nlme"].notna()
        assert np.all(np.abs(both["df"][stock] / both["df_nlme"][stock] - 1) <= 0.05)
        worst[covariance] = (est, se, df)
    return worst


@pytest.mark.parametrize("name", DATASETS)
def test_agrees_with_stored_r_reference(name):
    reference = pd.read_csv(DATA / f"{name}_r.tsv", sep="\t")
    worst = _compare(name, reference)
    expected = {"ancova"} if name in ("one_visit", "demo_nk_tumor") else set(MMRM_COVARIANCES)
    assert set(worst) == expected


def _r_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    check = "for (p in c('nlme', 'emmeans', 'numDeriv')) library(p, character.only = TRUE)"
    return subprocess.run(["Rscript", "-e", check], capture_output=True).returncode == 0


@pytest.mark.skipif(not _r_available(), reason="R with nlme, emmeans and numDeriv not installed")
def test_agrees_with_r_rerun(tmp_path):
    """R's script re-run gives the stored outputs, and Python agrees with the fresh ones."""
    subprocess.run(
        ["Rscript", str(R_SCRIPT), str(DATA), str(tmp_path)], check=True, capture_output=True
    )
    for name in DATASETS:
        fresh = pd.read_csv(tmp_path / f"{name}_r.tsv", sep="\t")
        stored = pd.read_csv(DATA / f"{name}_r.tsv", sep="\t")
        assert list(fresh[["covariance", "visit", "contrast"]].itertuples(index=False)) == list(
            stored[["covariance", "visit", "contrast"]].itertuples(index=False)
        )
        np.testing.assert_allclose(fresh["estimate"], stored["estimate"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(fresh[["se", "df"]], stored[["se", "df"]], rtol=1e-4)
        _compare(name, fresh)


def _ols(frame: pd.DataFrame, reference: str) -> sm.regression.linear_model.RegressionResults:
    """Statsmodels OLS of change ~ baseline + arm (treatment coding)."""
    x = pd.DataFrame({"const": 1.0, "baseline": frame["baseline"]})
    for arm in sorted(set(frame["arm"]) - {reference}):
        x[arm] = (frame["arm"] == arm).astype(float)
    return sm.OLS(frame["change"], x).fit()


def test_one_visit_is_ancova():
    data = _input("one_visit")
    got = mmrm(data, reference_arm=REFERENCE, alpha=0.05)
    ols = _ols(data, REFERENCE)
    row = got.set_index("contrast").loc["BEMPEG+NIVO - NIVO"]
    assert row["covariance"] == "ancova"
    assert row["estimate"] == pytest.approx(ols.params["BEMPEG+NIVO"], abs=1e-10)
    assert row["se"] == pytest.approx(ols.bse["BEMPEG+NIVO"], rel=1e-6)
    assert row["df"] == pytest.approx(len(data) - 3, rel=1e-6)
    assert row["p_value"] == pytest.approx(ols.pvalues["BEMPEG+NIVO"], rel=1e-5)
    low, high = ols.conf_int(0.05).loc["BEMPEG+NIVO"]
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    mean = ols.params["const"] + ols.params["baseline"] * data["baseline"].mean()
    assert got.set_index("contrast").loc["NIVO adjusted mean", "estimate"] == pytest.approx(mean)


@pytest.mark.parametrize("name", ["balanced_12", "balanced_24"])
def test_complete_data_unstructured_is_ancova_per_visit(name):
    """Complete data, the same regressors at every visit: GLS = OLS per visit, df = n - p."""
    data = _input(name)
    got = mmrm(data, reference_arm=REFERENCE, alpha=0.05)
    assert (got["covariance"] == "unstructured").all()
    for visit, rows in data.groupby("visit"):
        ols = _ols(rows, REFERENCE)
        row = got[(got["visit"] == visit) & (got["contrast"] == "BEMPEG+NIVO - NIVO")].iloc[0]
        assert row["estimate"] == pytest.approx(ols.params["BEMPEG+NIVO"], abs=1e-8)
        assert row["se"] == pytest.approx(ols.bse["BEMPEG+NIVO"], rel=1e-5)
        assert row["df"] == pytest.approx(len(rows) - 3, rel=1e-5)
        assert row["n_patients"] == len(rows) and row["n_obs"] == len(data)


def test_output_table():
    got = mmrm(_input("three_arms"), reference_arm=REFERENCE, alpha=0.1)
    assert list(got.columns) == MMRM_COLUMNS
    assert got["q_value"].isna().all()
    assert got["visit"].unique().tolist() == ["C1D8", "C2D1", "C3D1"]
    assert got.loc[got["visit"] == "C1D8", "contrast"].tolist() == [
        "BEMPEG - NIVO",
        "BEMPEG+NIVO - NIVO",
        "NIVO adjusted mean",
        "BEMPEG adjusted mean",
        "BEMPEG+NIVO adjusted mean",
    ]
    assert np.all(got["ci_low"] < got["estimate"]) and np.all(got["estimate"] < got["ci_high"])
    from scipy import stats as sps

    half = sps.t.ppf(0.95, got["df"]) * got["se"]
    np.testing.assert_allclose(got["ci_high"] - got["estimate"], half, rtol=1e-10)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "arm", "visit", "baseline", "change"])


def _trial(rng: np.random.Generator, visits_of, n: int = 20) -> pd.DataFrame:
    rows = []
    for i in range(n):
        arm = "A" if i % 2 == 0 else "B"
        baseline = rng.normal(5, 1)
        for visit in visits_of(i):
            rows.append((f"p{i:02d}", arm, visit, baseline, rng.normal(0.5, 0.7)))
    return _frame(rows)


def test_fallback_when_two_visits_are_rarely_seen_together():
    rng = np.random.default_rng(3)
    pairs = {0: ["V1", "V2"], 1: ["V1", "V3"], 2: ["V1", "V2", "V3"]}
    data = _trial(rng, lambda i: pairs[0 if i < 9 else (1 if i < 18 else 2)])
    got = mmrm(data, reference_arm="A", alpha=0.05, visits=["V1", "V2", "V3"])
    assert (got["covariance"] == "heterogeneous_toeplitz").all()
    assert (got["note"] == "unstructured not fitted (2 patients seen at both V2 and V3)").all()
    assert got["estimate"].notna().all()


def test_fallback_on_a_singular_covariance():
    rng = np.random.default_rng(4)
    rows = []
    for i in range(20):
        arm, baseline, change = "AB"[i % 2], rng.normal(5, 1), rng.normal(0.5, 0.7)
        rows += [(f"p{i}", arm, "V1", baseline, change), (f"p{i}", arm, "V2", baseline, change + 1)]
        rows.append((f"p{i}", arm, "V3", baseline, rng.normal(0.2, 0.5)))
    got = mmrm(_frame(rows), reference_arm="A", alpha=0.05, visits=["V1", "V2", "V3"])
    assert got["covariance"].iloc[0] not in ("", "unstructured")
    assert (
        got["note"]
        .iloc[0]
        .startswith("unstructured not fitted (singular covariance, a correlation near 1 or -1)")
    )


def test_fallback_to_compound_symmetry_with_few_patients_at_a_visit():
    rng = np.random.default_rng(5)
    data = _trial(rng, lambda i: ["V1", "V2"] + (["V3"] if i < 4 else []))
    got = mmrm(data, reference_arm="A", alpha=0.05, visits=["V1", "V2", "V3"])
    assert (got["covariance"] == "compound_symmetry").all()
    assert "unstructured not fitted (V3: 4 observations for 3 fixed effects)" in got["note"][0]
    assert got.loc[got["visit"] == "V3", "n_patients"].tolist() == [4, 2, 2]


def test_not_fitted_rows_say_why():
    rows = [
        ("p1", "A", "V1", 5.0, 0.1),
        ("p2", "B", "V1", 5.5, 0.3),
        ("p3", "B", "V1", 4.5, 0.2),
        ("p1", "A", "V2", 5.0, 0.0),
    ]
    got = mmrm(_frame(rows), reference_arm="A", alpha=0.05)
    assert len(got) == 6 and (got["covariance"] == "").all()
    assert got[["estimate", "se", "df", "p_value"]].isna().all().all()
    assert got["note"][0].startswith(
        "not fitted: unstructured: 4 observations for 4 fixed effects and 3 covariance parameters"
    )
    flat = _frame([(f"p{i}", "AB"[i % 2], "V1", 5.0 + i, 0.25) for i in range(8)])
    assert mmrm(flat, reference_arm="A", alpha=0.05)["note"][0] == (
        "not fitted: the changes do not vary"
    )


def test_contrast_without_patients_is_not_estimable():
    rng = np.random.default_rng(6)
    data = _trial(rng, lambda i: ["V1", "V2"] + (["V3"] if i % 2 else []), n=16)
    got = mmrm(data, reference_arm="A", alpha=0.05).set_index(["visit", "contrast"])
    assert got.loc[("V3", "B - A"), "note"] == "not estimable: no A patients at V3"
    assert np.isnan(got.loc[("V3", "B - A"), "estimate"])
    assert np.isnan(got.loc[("V3", "A adjusted mean"), "estimate"])
    assert np.isfinite(got.loc[("V3", "B adjusted mean"), "estimate"])
    assert np.isfinite(got.loc[("V2", "B - A"), "estimate"])


def test_bad_input():
    data = _input("balanced_12")
    with pytest.raises(ValueError, match="lacks columns: change"):
        mmrm(data.drop(columns="change"), reference_arm=REFERENCE, alpha=0.05)
    with pytest.raises(ValueError, match="more than one row for a patient and visit"):
        mmrm(pd.concat([data, data.head(1)]), reference_arm=REFERENCE, alpha=0.05)
    with pytest.raises(ValueError, match="unknown covariance 'ar1'"):
        mmrm(data, reference_arm=REFERENCE, alpha=0.05, covariance="ar1")
    with pytest.raises(ValueError, match="visits not in the visit order: C3D1"):
        mmrm(data, reference_arm=REFERENCE, alpha=0.05, visits=["C1D8", "C2D1"])
    two_arms = data.assign(arm=np.where(data.index == 0, "BEMPEG", data["arm"]))
    with pytest.raises(ValueError, match="a patient in more than one arm"):
        mmrm(two_arms, reference_arm=REFERENCE, alpha=0.05)


def test_visit_order_and_missing_values():
    data = _input("missing_12")
    shuffled = data.sample(frac=1, random_state=1).reset_index(drop=True)
    order = ["C1D8", "C2D1", "C3D1", "C5D1"]
    shuffled["visit"] = pd.Categorical(shuffled["visit"], categories=order, ordered=True)
    expected = mmrm(data, reference_arm=REFERENCE, alpha=0.05)
    got = mmrm(shuffled, reference_arm=REFERENCE, alpha=0.05)
    assert got["visit"].tolist() == expected["visit"].tolist()
    np.testing.assert_allclose(got["estimate"], expected["estimate"], atol=1e-7)
    with_nan = pd.concat([data, data.head(2).assign(visit="C6D1", change=np.nan)])
    got = mmrm(with_nan, reference_arm=REFERENCE, alpha=0.05)
    np.testing.assert_allclose(got["estimate"], expected["estimate"], atol=1e-7)


def test_mmrm_models_on_a_change_table():
    """The change table of log2_fold_changes: baseline rows left out, one model per feature."""
    parts = []
    for population, name in [("CD8", "balanced_12"), ("NK", "missing_12")]:
        data = _input(name)
        base = data.drop_duplicates("patient_id").assign(visit="C1D1", visit_index=0, change=0.0)
        both = pd.concat([base, data])
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": both["patient_id"],
                    "arm": both["arm"],
                    "compartment": "blood",
                    "population": population,
                    "measure": "freq_parent",
                    "visit": both["visit"],
                    "cycle": np.where(both["visit"] == "C5D1", 5, both["visit_index"]),
                    "day": np.where(both["visit"] == "C1D8", 8, 1),
                    "baseline_log2_value": both["baseline"],
                    "log2fc": both["change"],
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    got = mmrm_models(table, reference_arm=REFERENCE, baseline_visit="C1D1", alpha=0.05)
    assert got["population"].unique().tolist() == ["CD8", "NK"]
    assert set(got["compartment"]) == {"blood"} and set(got["measure"]) == {"freq_parent"}
    assert "C1D1" not in set(got["visit"])
    for population, name in [("CD8", "balanced_12"), ("NK", "missing_12")]:
        alone = mmrm(_input(name), reference_arm=REFERENCE, alpha=0.05)
        mine = got[got["population"] == population].reset_index(drop=True)
        assert mine["visit"].tolist() == alone["visit"].tolist()
        np.testing.assert_allclose(mine["estimate"], alone["estimate"], atol=1e-7)


# the null scenario of the issue: a real, variable on-treatment change in both arms (largest
# spread at the first visit), no arm difference; 12 patients per arm, 10% missed later samples
_SD = np.array([1.0, 0.5, 0.4])
_CORR = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.6], [0.2, 0.6, 1.0]])
_CALIBRATION_TRIALS = 600
_CALIBRATION_SEED = 20240612


def _null_trial(rng: np.random.Generator, n: int = 12) -> pd.DataFrame:
    k = 2 * n
    baseline = rng.normal(5.0, 1.0, k)
    noise = rng.multivariate_normal(np.zeros(3), _CORR * np.outer(_SD, _SD), k)
    change = np.array([0.8, 0.4, 0.2]) - 0.3 * (baseline[:, None] - 5.0) + noise
    seen = rng.random((k, 3)) >= 0.1
    seen[:, 0] = True
    patient, visit = np.nonzero(seen)
    return pd.DataFrame(
        {
            "patient_id": patient,
            "arm": np.where(patient < n, "A", "B"),
            "visit": np.array(["V1", "V2", "V3"])[visit],
            "baseline": baseline[patient],
            "change": change[patient, visit],
        }
    )


def test_calibration_of_the_first_visit_arm_difference():
    """600 null trials (seed above): the V1 arm difference rejects at 0.05 in 3-7% of them."""
    rng = np.random.default_rng(_CALIBRATION_SEED)
    p_values = []
    for _ in range(_CALIBRATION_TRIALS):
        got = mmrm(_null_trial(rng), reference_arm="A", alpha=0.05, visits=["V1", "V2", "V3"])
        row = got[(got["visit"] == "V1") & (got["contrast"] == "B - A")].iloc[0]
        assert row["covariance"] == "unstructured"
        p_values.append(row["p_value"])
    rate = float(np.mean(np.array(p_values) < 0.05))
    assert 0.03 <= rate <= 0.07, rate
