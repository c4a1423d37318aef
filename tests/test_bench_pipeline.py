"""``cytotrial bench-pipeline``: its memory sampling and its one-gate edit measure what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cytotrial.cli._bench_pipeline import _Monitor, shift_polygon
from cytotrial.errors import CytotrialError
from cytotrial.io import load_strategy

ROOT = Path(__file__).resolve().parents[1]
BLOOD = ROOT / "resources" / "gating" / "blood.xml"


def _vertices(strategy, name):
    gate = next(g for g in strategy.gates if g.name == name)
    return np.asarray(gate.fk_gate.vertices, dtype=float)


def test_shift_polygon_moves_that_gate_only(tmp_path):
    edited = tmp_path / "blood.xml"
    edited.write_bytes(BLOOD.read_bytes())
    shift_polygon(edited, "singlets", 1.01)
    before, after = load_strategy(BLOOD), load_strategy(edited)
    moved = _vertices(after, "singlets")
    original = _vertices(before, "singlets")
    assert np.allclose(moved[:, 0], original[:, 0] * 1.01)
    assert np.array_equal(moved[:, 1], original[:, 1])
    assert np.array_equal(_vertices(after, "lymphocytes"), _vertices(before, "lymphocytes"))
    assert [g.path for g in after.gates] == [g.path for g in before.gates]


def test_shift_polygon_names_a_missing_gate(tmp_path):
    edited = tmp_path / "blood.xml"
    edited.write_bytes(BLOOD.read_bytes())
    with pytest.raises(CytotrialError, match="no polygon gate 'cd3'"):
        shift_polygon(edited, "cd3")  # a rectangle


def test_monitor_records_the_peak_of_a_child_process():
    """A child holding 300 MB for a moment: the sampled peak is at least that, under its label."""
    code = "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(1.5)"
    process = subprocess.Popen([sys.executable, "-c", code])
    monitor = _Monitor(process.pid, interval=0.05)
    monitor.start()
    process.wait()
    peaks = monitor.stop()
    assert max(peaks.values()) >= 300, peaks
    assert max(peaks.values()) < 600, peaks


def test_monitor_names_a_rule_by_its_script():
    script = "/run/.snakemake/scripts/tmpab12cd.events.py"
    assert _Monitor._label(["/usr/bin/python3", script]) == "events"
    assert _Monitor._label(["python", "-m", "snakemake", "--cores", "2"]) == "snakemake"
