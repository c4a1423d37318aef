"""Library steps behind the rules: compensation from config, QC flags (batching: test_batches.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytotrial.errors import ConfigError
from cytotrial.io import read_compensation
from cytotrial.rules import run_gate_batch
from cytotrial.sim import simulate_sample, spillover_matrix, write_fcs
from cytotrial.tl import qc_flags

ROOT = Path(__file__).resolve().parents[1]
STRATEGY = {
    "strategy": str(ROOT / "resources/gating/blood.xml"),
    "populations": {"cd8": "cd8", "treg": "treg"},
}


def _gate(tmp_path, fcs, compensation):
    result = run_gate_batch(
        [{"sample_id": "s", "panel": "blood", "fcs": str(fcs)}],
        strategies={"blood": STRATEGY},
        panels=None,
        compensation=compensation,
        counts_out=tmp_path / "c.tsv",
        qc_out=tmp_path / "q.tsv",
        mfi_out=tmp_path / "m.tsv",
    )
    assert result.qc["status"].tolist() == ["ok"], result.qc["message"].tolist()
    return result.counts.set_index("population")["count"]


def test_compensation_matrix_from_config_replaces_the_files_own(tmp_path):
    sample = simulate_sample(panel="blood", n_events=6000, seed=3)
    fcs = write_fcs(sample, tmp_path / "s.fcs")
    own = _gate(tmp_path, fcs, "fcs")
    matrix = spillover_matrix("blood")
    matrix.to_csv(tmp_path / "same.csv")  # first column = detector names, as FlowJo exports
    assert read_compensation(tmp_path / "same.csv").equals(matrix.rename_axis(None))
    assert _gate(tmp_path, fcs, str(tmp_path / "same.csv")).equals(own)
    identity = pd.DataFrame(np.eye(len(matrix)), index=matrix.index, columns=matrix.columns)
    identity.to_csv(tmp_path / "identity.csv", index=False)  # header only, no names column
    uncompensated = _gate(tmp_path, fcs, str(tmp_path / "identity.csv"))
    assert not uncompensated.equals(own)
    truth = sample.truth_counts()
    assert abs(own["treg"] - truth["treg"]) < abs(uncompensated["treg"] - truth["treg"])


def test_bad_compensation_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_compensation(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    with pytest.raises(ConfigError, match="square"):
        read_compensation(tmp_path / "bad.csv")


def test_qc_flags_name_population_and_minimum():
    counts = pd.DataFrame({"cd3": [50, 500, np.nan], "cd8": [10, 400, 5]}, index=["a", "b", "c"])
    flags = qc_flags(counts, min_events={"cd3": 100, "cd8": 20})
    assert flags.to_dict() == {
        "a": "too_few_events:cd3<100,too_few_events:cd8<20",
        "b": "",
        "c": "too_few_events:cd8<20",
    }
