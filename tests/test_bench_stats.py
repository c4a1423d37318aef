"""``cytotrial bench-stats``: a fast smoke test (the calibration itself is run by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from cytotrial.cli import main
from cytotrial.cli._bench_stats import TABLES, bench_stats, simulate_counts
from cytotrial.cli._bench_trials import simulate_patients
from cytotrial.sim import ARMS


def test_simulated_counts_are_a_populations_anndata():
    adata = simulate_counts(np.random.default_rng(0), 3, "effect", 2.0)
    assert set(adata.obs["arm"]) == set(ARMS)
    assert adata.obs["patient_id"].nunique() == 6
    assert {"freq_parent", "freq_live", "per_ul"} <= set(adata.layers)
    blood = (adata.obs["compartment"] == "blood").to_numpy()
    j = list(adata.var_names).index("live")
    assert np.allclose(adata.layers["per_ul"][blood, j], adata.obs["lymphocytes_per_ul"][blood])
    assert list(adata.obsm["ratios"].columns) == ["cd8_treg"]


def test_bench_prints_every_table_and_is_deterministic():
    lines: list[str] = []
    kwargs = dict(trials=1, per_arm=(4,), seed=7, effects=(2.0,), echo=lines.append)
    first = bench_stats(**kwargs)
    second = bench_stats(**{**kwargs, "echo": lambda line: None, "jobs": 2})
    assert first.equals(second)  # the same numbers on two processes
    text = "\n".join(lines)
    for name in TABLES:
        assert name in text
    for scenario in ("null", "variable", "effect x2", "dropout x2"):
        assert f"scenario {scenario}," in text
    assert lines[-1].strip().startswith("bench-stats: 1 trials per scenario in ")
    assert set(first["scenario"]) == {"null", "variable", "effect x2", "dropout x2"}
    planted = first[(first["scenario"] == "effect x2") & (first["table"] == "mmrm")]
    assert (planted.loc[planted["compartment"] == "blood", "n_alt"] > 0).all()
    # responder and survival tests are null in every scenario
    outcome = first[first["table"].isin(["responders", "cox", "km"])]
    assert (outcome["n_null"] > 0).all() and (outcome["n_alt"] == 0).all()


def test_dropout_removes_late_blood_samples_of_small_early_changes():
    """Dropout depends on the observed early change: who stops has a smaller one."""
    from cytotrial.tl import log2_fold_changes, measure_table

    rng = np.random.default_rng(3)
    adata = simulate_counts(rng, 40, "dropout", 2.0)
    obs = adata.obs
    blood = obs[obs["compartment"] == "blood"]
    late = set(blood.loc[blood["visit"] == "C5D1", "patient_id"])
    early = set(blood.loc[blood["visit"] == "C1D8", "patient_id"])
    assert late < early  # some stopped, none came back
    assert set(obs.loc[obs["compartment"] == "tumor", "patient_id"]) == early  # tumor untouched
    from cytotrial.cli._bench_stats import ANALYSIS

    values = measure_table(adata, analysis=ANALYSIS, frequencies_of=["live"])
    fc = log2_fold_changes(values, baseline_visit="C1D1")
    nk = fc[(fc["population"] == "nk") & (fc["visit"] == "C1D8") & (fc["compartment"] == "blood")]
    stopped = nk["patient_id"].isin(early - late)
    assert nk.loc[stopped, "log2fc"].mean() < 0.5 < nk.loc[~stopped, "log2fc"].mean()


def test_simulated_patients_respond_by_arm_only():
    patients = simulate_patients(np.random.default_rng(0), 400)
    responder = patients["best_response"].isin(["CR", "PR"])
    rates = responder.groupby(patients["arm"]).mean()
    assert abs(rates[ARMS[0]] - 0.5) < 0.06 and abs(rates[ARMS[1]] - 0.2) < 0.06
    assert (patients["pfs_months"] <= patients["os_months"]).all()
    assert set(patients["pfs_event"]) == {0, 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--per-arm", "2"], "--per-arm must be at least 3"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    assert main(["bench-stats", *args]) == 2
    assert capsys.readouterr().err.strip() == f"cytotrial: bench-stats: {message}, not " + args[1]
