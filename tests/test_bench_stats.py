"""``cytotrial bench-stats``: a fast smoke test (the calibration itself is run by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from cytotrial.cli import main
from cytotrial.cli._bench_stats import bench_stats, simulate_counts
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
    second = bench_stats(**{**kwargs, "echo": lambda line: None})
    assert first.equals(second)
    text = "\n".join(lines)
    for name in ("arm_comparison", "mmrm", "mixed_model", "change_from_baseline"):
        assert name in text
    assert "scenario null" in text and "scenario variable" in text and "scenario effect x2" in text
    assert lines[-1].strip().startswith("bench-stats: 1 trials per scenario in ")
    assert set(first["scenario"]) == {"null", "variable", "effect x2"}
    planted = first[(first["scenario"] == "effect x2") & (first["table"] == "mmrm")]
    assert (planted.loc[planted["compartment"] == "blood", "n_alt"] > 0).all()


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
