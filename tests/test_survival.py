"""Survival against the early change (cytotrial.tl survival tables, cytotrial.pl KM figure).

Planted data: patients whose PFS hazard is ``exp(beta * early CD8 change + gamma * arm)``,
exponential times, independent exponential censoring (about 30%), 60 per arm. The Cox hazard ratio
per log2 unit must recover ``exp(beta)``; with ``beta = 0`` its interval must cover 1 in at least
90 of 100 trials. Log-rank p-values and Kaplan-Meier medians are checked against scipy and hand
computation; patients without the early change are listed, never dropped.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from scipy import stats as sps

from cytotrial import pl as plots
from cytotrial import tl as stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ANALYSIS, ARM_A, ARM_B, LABELS, planted_trial

COMBO, CONTROL = "COMBO", "CONTROL"
VISIT = "C1D8"


def _log2fc_rows(patients: pd.DataFrame, change: np.ndarray) -> pd.DataFrame:
    """A ``log2fc`` table of one feature in blood: a C1D1 (baseline) and a C1D8 row per patient."""
    rows = []
    for patient, arm, x in zip(patients["patient_id"], patients["arm"], change):
        for visit, value in (("C1D1", 0.0), (VISIT, x)):
            if not np.isfinite(value):
                continue
            rows.append(
                dict(
                    patient_id=patient,
                    arm=arm,
                    compartment="blood",
                    population="cd8",
                    measure="per_ul",
                    visit=visit,
                    sample_id=f"{patient}_{visit}",
                    baseline_sample_id=f"{patient}_C1D1",
                    log2fc=value,
                )
            )
    return pd.DataFrame(rows)


def planted_survival(
    *,
    beta: float,
    seed: int,
    n_per_arm: int = 60,
    gamma: float = -0.5,
    censor_rate: float = 0.045,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log2fc, patients) with PFS hazard ``0.1 * exp(beta * change + gamma * [COMBO])`` /month."""
    rng = np.random.default_rng(seed)
    arm = np.repeat([COMBO, CONTROL], n_per_arm)
    combo = (arm == COMBO).astype(float)
    change = rng.normal(1.0 * combo, 1.0)  # the combination raises CD8 early, with spread
    event_time = rng.exponential(1.0 / (0.1 * np.exp(beta * change + gamma * combo)))
    censor_time = rng.exponential(1.0 / censor_rate, len(arm))
    patients = pd.DataFrame(
        {
            "patient_id": [f"P{i + 1:03d}" for i in range(len(arm))],
            "arm": arm,
            "best_response": "SD",
            "pfs_months": np.minimum(event_time, censor_time),
            "pfs_event": (event_time <= censor_time).astype(int),
        }
    )
    return _log2fc_rows(patients, change), patients


def _cox(tables: dict, term: str, endpoint: str = "pfs") -> pd.Series:
    cox = tables["cox"]
    found = cox[(cox["term"] == term) & (cox["endpoint"] == endpoint)]
    assert len(found) == 1, cox
    return found.iloc[0]


# --------------------------------------------------------------------------------------------
# Cox: planted hazard ratio and null coverage
# --------------------------------------------------------------------------------------------
def test_cox_recovers_planted_hazard_ratio():
    fc, patients = planted_survival(beta=0.7, seed=11)
    assert 0.2 <= 1 - patients["pfs_event"].mean() <= 0.4  # about 30% censored
    tables = stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)
    row = _cox(tables, "log2fc")
    assert row["ci_low"] <= math.exp(0.7) <= row["ci_high"], row
    assert row["ci_low"] > 1.0 and row["p_value"] < 0.001, row
    assert row["n_patients"] == 120 and row["n_missing"] == 0 and row["note"] == ""
    assert row["n_events"] == patients["pfs_event"].sum()
    arm = _cox(tables, f"arm[{COMBO}]")
    assert arm["ci_low"] <= math.exp(-0.5) <= arm["ci_high"], arm
    # one model per feature and endpoint: os has no columns in this patients table, so no rows
    assert set(tables["cox"]["endpoint"]) == {"pfs"}
    assert list(tables["cox"]["term"]) == ["log2fc", f"arm[{COMBO}]"]


def test_cox_interval_covers_one_without_link():
    """With beta = 0 the 95% interval of the HR per log2 unit covers 1 in >= 90 of 100 trials."""
    covered = 0
    for seed in range(100):
        fc, patients = planted_survival(beta=0.0, seed=seed, censor_rate=0.035)
        tables = stats.survival_tables(
            fc, patients, response_visit=VISIT, reference_arm=CONTROL, tables=["cox"]
        )
        row = _cox(tables, "log2fc")
        covered += bool(row["ci_low"] <= 1.0 <= row["ci_high"])
    assert covered >= 90, covered


def test_cox_interval_follows_alpha():
    fc, patients = planted_survival(beta=0.7, seed=3)
    wide = _cox(
        stats.survival_tables(
            fc, patients, response_visit=VISIT, reference_arm=CONTROL, alpha=0.01
        ),
        "log2fc",
    )
    narrow = _cox(
        stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL),
        "log2fc",
    )
    assert wide["hazard_ratio"] == pytest.approx(narrow["hazard_ratio"])
    assert wide["ci_low"] < narrow["ci_low"] and wide["ci_high"] > narrow["ci_high"]


# --------------------------------------------------------------------------------------------
# Kaplan-Meier by the median split
# --------------------------------------------------------------------------------------------
def test_km_median_split_within_each_arm():
    fc, patients = planted_survival(beta=0.7, seed=5, n_per_arm=20)
    tables = stats.survival_tables(
        fc, patients, response_visit=VISIT, reference_arm=CONTROL, arms=[COMBO, CONTROL]
    )
    km = tables["km"]
    assert list(km["arm"]) == [COMBO, COMBO, CONTROL, CONTROL]
    assert list(km["group"]) == ["high", "low", "high", "low"]
    assert list(km["n_patients"]) == [10, 10, 10, 10]  # 20 per arm: halves at the arm's median
    data = stats.survival_data(fc, patients, response_visit=VISIT)
    for arm in (COMBO, CONTROL):
        own = data[data["arm"] == arm]
        median = float(np.median(own["log2fc"]))
        assert (own["arm_median"] == median).all()
        assert (own.loc[own["group"] == "high", "log2fc"] > median).all()
        assert (own.loc[own["group"] == "low", "log2fc"] <= median).all()
        # the log-rank p of high against low: the exact test of the two groups (10 against 10)
        groups = [own[own["group"] == g] for g in ("high", "low")]
        high, low = ((g["pfs_months"].to_numpy(), g["pfs_event"].to_numpy()) for g in groups)
        expected = stats.logrank_p(*high, *low)
        rows = km[km["arm"] == arm]
        assert rows["logrank_p"].to_numpy() == pytest.approx([expected, expected], rel=1e-12)
        for group, g in zip(("high", "low"), groups):
            row = rows[rows["group"] == group].iloc[0]
            assert row["n_events"] == g["pfs_event"].sum()
            assert row["ci_low"] <= row["median_months"] <= row["ci_high"]


def test_km_median_by_hand():
    """Five events at 1..5 months and one censored at 2.5: S drops to 0.8, 0.6, 0.4 (at 3)."""
    patients = pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(12)],
            "arm": [COMBO] * 6 + [CONTROL] * 6,
            "best_response": "SD",
            "pfs_months": [1.0, 2.0, 2.5, 3.0, 4.0, 5.0] * 2,
            "pfs_event": [1, 1, 0, 1, 1, 1] * 2,
        }
    )
    # everybody at the arm's median is "low": one group holds every patient of the arm
    fc = _log2fc_rows(patients, np.zeros(12))
    km = stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)["km"]
    low = km[km["group"] == "low"]
    # S: 1 -> 5/6 (1) -> 4/6 (2) -> censored at 2.5 -> 4/6 * 2/3 = 4/9 (3): median 3
    assert list(low["median_months"]) == [3.0, 3.0]
    assert list(low["n_patients"]) == [6, 6] and list(low["n_events"]) == [5, 5]
    high = km[km["group"] == "high"]
    assert list(high["n_patients"]) == [0, 0] and high["median_months"].isna().all()
    assert km["logrank_p"].isna().all()  # no test with an empty group
    curve = stats.kaplan_meier_curve(patients["pfs_months"][:6], patients["pfs_event"][:6])
    assert curve["survival"].to_numpy() == pytest.approx([1, 5 / 6, 4 / 6, 4 / 6, 4 / 9, 2 / 9, 0])
    assert list(curve["censored"]) == [0, 0, 0, 1, 0, 0, 0]
    cox = stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)["cox"]
    assert cox["hazard_ratio"].isna().all()
    assert (cox["note"] == "not fitted: the early change does not vary").all()


def test_median_not_reached_is_inf():
    patients = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4"],
            "arm": [COMBO] * 4,
            "best_response": "SD",
            "pfs_months": [1.0, 5.0, 6.0, 7.0],
            "pfs_event": [1, 0, 0, 0],
        }
    )
    fc = _log2fc_rows(patients, np.array([0.1, 0.2, 0.3, 0.4]))
    tables = stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)
    km = tables["km"].set_index("group")
    assert math.isinf(km.loc["high", "median_months"]) and km.loc["high", "n_events"] == 0
    # the median is the first time with S <= 1/2 (lifelines, as R's survfit): S(1) = 1/2
    assert km.loc["low", "median_months"] == 1.0
    row = _cox(tables, "log2fc")
    assert math.isnan(row["hazard_ratio"]) and row["note"] == "not fitted: 1 events for 1 terms"
    assert "no CONTROL patients" not in row["note"]  # one arm: no arm term, nothing to say


# --------------------------------------------------------------------------------------------
# nobody is dropped silently
# --------------------------------------------------------------------------------------------
def test_patients_without_biomarker_or_survival_are_listed():
    fc, patients = planted_survival(beta=0.7, seed=2, n_per_arm=15)
    fc = fc[~((fc["patient_id"] == "P001") & (fc["visit"] == VISIT))]  # no C1D8 change
    patients.loc[patients["patient_id"] == "P002", "pfs_months"] = np.nan  # no PFS time
    extra = fc[fc["patient_id"] == "P003"].assign(patient_id="X99")  # samples, not in patients
    fc = pd.concat([fc, extra], ignore_index=True)
    patients["os_months"] = patients["pfs_months"] + 2.0
    patients["os_event"] = 0
    tables = stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)
    missing = tables["survival_missing"]
    assert list(missing.columns) == [
        "patient_id", "arm", "population", "compartment", "endpoint", "reason",
    ]  # fmt: skip
    pfs = missing[missing["endpoint"] == "pfs"].set_index("patient_id")["reason"].to_dict()
    assert pfs == {
        "P001": "no log2 fold change at C1D8",
        "P002": "no pfs_months or pfs_event",
        "X99": "not in the patients table",
    }
    os_ = missing[missing["endpoint"] == "os"].set_index("patient_id")["reason"].to_dict()
    assert os_ == {
        "P001": "no log2 fold change at C1D8",
        "P002": "no os_months or os_event",
        "X99": "not in the patients table",
    }
    everyone = set(patients["patient_id"]) | {"X99"}
    for endpoint in ("pfs", "os"):
        row = _cox(tables, "log2fc", endpoint)
        assert row["n_patients"] + row["n_missing"] == len(everyone)
        assert row["n_missing"] == 3
        km = tables["km"][tables["km"]["endpoint"] == endpoint]
        assert km["n_patients"].sum() == row["n_patients"]
    assert (_cox(tables, "log2fc", "os")["note"]) == "not fitted: 0 events for 2 terms"


def test_planted_trial_tables_and_reasons():
    """The conftest trial through measure_table and log2_fold_changes, with our own outcomes."""
    trial = planted_trial()
    values = stats.measure_table(trial, analysis=ANALYSIS)
    fc = stats.log2_fold_changes(values, baseline_visit=ANALYSIS["baseline_visit"])
    rng = np.random.default_rng(0)
    ids = sorted(set(trial.obs["patient_id"]))
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "arm": [ARM_A if int(p[1:]) <= 10 else ARM_B for p in ids],
            "best_response": "SD",
            "pfs_months": rng.exponential(6.0, len(ids)).round(2),
            "pfs_event": (rng.random(len(ids)) < 0.7).astype(int),
            "os_months": rng.exponential(12.0, len(ids)).round(2),
            "os_event": (rng.random(len(ids)) < 0.5).astype(int),
        }
    )
    tables = stats.survival_tables(
        fc, patients, response_visit="C1D8", reference_arm=ARM_B, values=values
    )
    cox, km, missing = tables["cox"], tables["km"], tables["survival_missing"]
    assert list(cox.columns) == [
        "population", "compartment", "endpoint", "term", "hazard_ratio", "ci_low", "ci_high",
        "p_value", "n_patients", "n_events", "n_missing", "note",
    ]  # fmt: skip
    assert list(km.columns) == [
        "population", "compartment", "endpoint", "arm", "group", "n_patients", "n_events",
        "median_months", "ci_low", "ci_high", "logrank_p",
    ]  # fmt: skip
    # only blood has a C1D8 visit; features in the analysis order
    assert set(cox["compartment"]) == {"blood"}
    assert list(dict.fromkeys(cox["population"])) == ANALYSIS["populations"]
    # P03 has no blood baseline sample (dropped in conftest): listed, for every feature and endpoint
    assert set(missing["patient_id"]) == {"P03"}
    assert set(missing["reason"]) == {"no blood sample at C1D1"}
    assert len(missing) == 4 * 2
    cd8 = cox[(cox["population"] == "cd8") & (cox["endpoint"] == "pfs")].iloc[0]
    assert cd8["term"] == "log2fc"
    assert np.isfinite(cd8["hazard_ratio"]) and cd8["ci_low"] < cd8["hazard_ratio"] < cd8["ci_high"]
    assert cd8["n_patients"] == 19 and cd8["n_missing"] == 1
    # cd4 does not change at C1D8 (noise-free); the ratio and MFI change by arm only
    notes = cox.drop_duplicates("population").set_index("population")["note"]
    assert notes["cd4"] == "not fitted: the early change does not vary"
    assert notes["cd4_treg"].startswith("not fitted: the early change is constant within each arm")


def test_arms_must_agree():
    from cytotrial.errors import SampleSheetError

    fc, patients = planted_survival(beta=0.0, seed=0, n_per_arm=3)
    patients.loc[0, "arm"] = CONTROL
    with pytest.raises(SampleSheetError, match=r"patient P001 is arm 'CONTROL' in patients\.tsv"):
        stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)


def test_lifelines_is_imported_lazily():
    code = "import sys, cytotrial.tl, cytotrial.pl; print('lifelines' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# the figure
# --------------------------------------------------------------------------------------------
def test_kaplan_meier_figure(tmp_path):
    fc, patients = planted_survival(beta=0.7, seed=5, n_per_arm=20)
    data = stats.survival_data(fc, patients, response_visit=VISIT)
    km = stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL)["km"]
    colours = {COMBO: "#C8102E", CONTROL: "#1F77B4"}
    fig = plots.plot_kaplan_meier(
        data,
        population="cd8",
        compartment="blood",
        km=km,
        arm_colors=colours,
        arms=[COMBO, CONTROL],
        labels=LABELS,
    )
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == [COMBO, CONTROL]
    assert "CD8+ T cells, blood" in fig.get_suptitle()
    for ax, arm in zip(axes, (COMBO, CONTROL)):
        own = data[data["arm"] == arm]
        for group in ("high", "low"):
            (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"km:{group}"]
            sub = own[own["group"] == group]
            curve = stats.kaplan_meier_curve(sub["pfs_months"], sub["pfs_event"])
            assert line.get_xdata() == pytest.approx(curve["time"].to_numpy())
            assert line.get_ydata() == pytest.approx(curve["survival"].to_numpy())
            assert to_hex(line.get_color()) == colours[arm].lower()
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        p = km.loc[km["arm"] == arm, "logrank_p"].iloc[0]
        assert f"log-rank p = {p:.3g}" in texts
    first = plots.save_figure(fig, tmp_path / "a" / "km")
    second = plots.save_figure(fig, tmp_path / "b" / "km")
    for one, two in zip(first, second):
        assert one.read_bytes() == two.read_bytes()
    assert first[0].suffix == ".png" and first[1].suffix == ".pdf"


def test_kaplan_meier_figure_without_data():
    fc, patients = planted_survival(beta=0.0, seed=0, n_per_arm=3)
    data = stats.survival_data(fc, patients, response_visit=VISIT)
    fig = plots.plot_kaplan_meier(data, population="nothing", compartment="blood")
    assert any(t.get_text() == "no data" for ax in fig.axes for t in ax.texts)
    with pytest.raises(ValueError, match="unknown endpoint"):
        plots.plot_kaplan_meier(data, population="cd8", compartment="blood", endpoint="dfs")


def test_hard_fit_is_noted():
    """A change that orders the event times perfectly: lifelines' warning goes into the note."""
    patients = pd.DataFrame(
        {
            "patient_id": ["A", "B", "C", "D", "E", "F"],
            "arm": [COMBO] * 3 + [CONTROL] * 3,
            "best_response": "SD",
            "pfs_months": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "pfs_event": 1,
        }
    )
    fc = _log2fc_rows(patients, np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1]))
    row = _cox(
        stats.survival_tables(fc, patients, response_visit=VISIT, reference_arm=CONTROL), "log2fc"
    )
    assert "This may harm convergence." in row["note"], row["note"]


def _observed_minus_expected(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> float:
    """The log-rank statistic of ``group`` by its definition, event time by event time."""
    total = 0.0
    for t in np.unique(time[event == 1]):
        at_risk = time >= t
        deaths = (time == t) & (event == 1)
        total += np.sum(deaths & group) - deaths.sum() * np.sum(at_risk & group) / at_risk.sum()
    return total


def test_exact_logrank_is_the_permutation_distribution_of_the_statistic():
    """6 against 6 (as the demo's median split): every relabelling enumerated independently."""
    import itertools

    rng = np.random.default_rng(5)
    for _ in range(4):
        time = np.round(rng.exponential(6.0, 12)) + 1.0  # ties, as months rounded
        event = (rng.random(12) < 0.75).astype(int)
        own = np.arange(12) < 6
        scores = stats.logrank_scores(time, event)
        assert scores.sum() == pytest.approx(0.0, abs=1e-12)
        observed = _observed_minus_expected(time, event, own)
        assert scores[own].sum() == pytest.approx(observed, abs=1e-12)
        as_extreme = []
        for chosen in itertools.combinations(range(12), 6):
            group = np.isin(np.arange(12), chosen)
            statistic = _observed_minus_expected(time, event, group)
            as_extreme.append(abs(statistic) >= abs(observed) - 1e-9)
        p = stats.logrank_p(time[own], event[own], time[~own], event[~own])
        assert p == pytest.approx(np.mean(as_extreme), abs=1e-12)


def test_large_groups_use_the_asymptotic_logrank_test():
    rng = np.random.default_rng(6)
    time, event = rng.exponential(6.0, 40), (rng.random(40) < 0.7).astype(int)
    p = stats.logrank_p(time[:20], event[:20], time[20:], event[20:])
    censored = [
        sps.CensoredData(uncensored=t[e == 1], right=t[e == 0])
        for t, e in ((time[:20], event[:20]), (time[20:], event[20:]))
    ]
    assert p == pytest.approx(sps.logrank(*censored).pvalue, rel=1e-6)


def test_exact_logrank_keeps_its_level_where_the_asymptotic_test_does_not():
    """Null trials of 6 against 6: the exact test rejects at most 5%, the asymptotic more often."""
    rng = np.random.default_rng(7)
    exact, asymptotic = [], []
    for _ in range(1500):
        time, event = rng.exponential(6.0, 12), (rng.random(12) < 0.8).astype(int)
        exact.append(stats.logrank_p(time[:6], event[:6], time[6:], event[6:]) < 0.05)
        asymptotic.append(
            stats.logrank_p(time[:6], event[:6], time[6:], event[6:], exact_limit=0) < 0.05
        )
    assert 0.03 <= np.mean(exact) <= 0.05 + 0.011  # 2 standard errors over the level at most
    assert np.mean(asymptotic) > np.mean(exact)


def test_cox_p_of_the_early_change_is_its_score_permuted_within_arms():
    """The statistic is the Cox score of the change given the arm (Breslow), by its definition."""
    from lifelines import CoxPHFitter

    from cytotrial.tl._survival import _null_martingale_residuals

    rng = np.random.default_rng(8)
    arm = np.repeat(["A", "B"], 12)
    time = np.round(rng.exponential(np.where(arm == "A", 12.0, 5.0)), 1) + 0.1
    event = (rng.random(24) < 0.8).astype(int)
    x = rng.standard_normal(24)
    fit = CoxPHFitter().fit(
        pd.DataFrame({"t": time, "e": event, "a": (arm == "B").astype(float)}), "t", "e"
    )
    risk = np.exp(fit.params_["a"] * (arm == "B"))
    score = sum(
        x[i] - np.sum(x[time >= time[i]] * risk[time >= time[i]]) / np.sum(risk[time >= time[i]])
        for i in np.flatnonzero(event == 1)
    )
    assert x @ _null_martingale_residuals(time, event, arm) == pytest.approx(score, abs=1e-9)
    # the permutation distribution: x far in the tail of its own within-arm permutations
    strong = -time  # high values where survival is short
    assert stats.cox_permutation_p(time, event, strong, arm) < 0.01
    p = stats.cox_permutation_p(time, event, x, arm)
    assert p == stats.cox_permutation_p(time, event, x, arm)  # deterministic
    assert 1 / 10_001 <= p <= 1


@pytest.mark.filterwarnings("ignore::lifelines.exceptions.ConvergenceWarning")
def test_cox_p_of_a_skewed_early_change_keeps_its_level():
    """Null trials (12 per arm, response rates differ by arm, skewed unrelated early change)."""
    rng = np.random.default_rng(9)
    arm = np.repeat(["A", "B"], 12)
    rejected = []
    for _ in range(600):
        x = 2.0 * np.exp(0.5 * rng.standard_normal(24)) + 0.3 * rng.standard_normal(24)
        responder = rng.random(24) < np.where(arm == "A", 0.5, 0.2)
        survival, follow_up = rng.exponential(np.where(responder, 14, 4)), rng.uniform(12, 36, 24)
        time, event = np.minimum(survival, follow_up), (survival <= follow_up).astype(int)
        p = stats.cox_permutation_p(time, event, x, arm, permutations=500)
        rejected.append(p < 0.05)
    assert 0.03 <= np.mean(rejected) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 600)
