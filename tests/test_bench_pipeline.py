"""``cytotrial bench-pipeline``: its memory sampling and its one-gate edit measure what they say."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cytotrial.cli._bench_pipeline import (
    RULE_LIBRARIES,
    _Monitor,
    executed_jobs,
    floor_workflow,
    shift_polygon,
)
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


def _rules_with_scripts() -> set[str]:
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        current = None
        for line in smk.read_text(encoding="utf-8").splitlines():
            if line.startswith(("rule ", "checkpoint ")):
                current = line.split()[1].rstrip(":")
            elif line.strip() == "script:" and current:
                rules.add(current)
    return rules


def test_every_rule_with_a_script_has_its_libraries_and_they_import():
    """The floor's jobs load what the real jobs load: a rule missing here would load nothing."""
    import importlib.util

    assert _rules_with_scripts() == set(RULE_LIBRARIES)
    for rule, libraries in RULE_LIBRARIES.items():
        for library in libraries:
            assert importlib.util.find_spec(library) is not None, (rule, library)


def test_the_floor_reruns_the_jobs_snakemake_ran_with_their_dependencies(tmp_path):
    """A three-job run read back from Snakemake's records, then its floor run by Snakemake."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "old.txt").write_text("before")
    (run / "Snakefile").write_text(
        "rule all:\n    input: 'c.txt'\n"
        "rule a:\n    input: 'old.txt'\n    output: 'a1.txt', 'a2.txt'\n"
        "    shell: 'touch {output}'\n"
        "rule b:\n    output: 'b.txt'\n    shell: 'touch {output}'\n"
        "rule c:\n    input: 'a2.txt', 'b.txt'\n    output: 'c.txt'\n    shell: 'touch {output}'\n"
    )
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1", "--quiet=all"]
    subprocess.run([*snakemake, "b.txt"], cwd=run, check=True, capture_output=True)
    since = time.time()
    subprocess.run(snakemake, cwd=run, check=True, capture_output=True)
    jobs = executed_jobs(run, since=since)
    # b ran before `since`: not part of the run; a's two outputs are one job
    assert [job["rule"] for job in jobs] == ["a", "c"]
    assert sorted(jobs[0]["outputs"]) == ["a1.txt", "a2.txt"]
    assert jobs[0]["inputs"] == ["old.txt"] and jobs[1]["inputs"] == ["a2.txt", "b.txt"]
    floor = floor_workflow(jobs, tmp_path / "floor")
    snakefile = (floor / "Snakefile").read_text()
    assert "rule job1:\n    input: ['done/job0']" in snakefile  # c after a; b is no job of it
    assert "rule job0:\n    input: []" in snakefile
    done = subprocess.run(snakemake, cwd=floor, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert sorted(p.name for p in (floor / "done").iterdir()) == ["job0", "job1"]


@pytest.mark.parametrize(
    ("sleep", "plugin", "waits"), [(1.5, True, True), (0, True, False), (1.5, False, False)]
)
def test_slurm_wait_is_reported_only_when_the_plugin_waits_for_scontrol(
    tmp_path, monkeypatch, sleep, plugin, waits
):
    import importlib.util

    from cytotrial.cli import _bench_pipeline

    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f"#!/bin/sh\nsleep {sleep}\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        _bench_pipeline.importlib.util,
        "find_spec",
        lambda name: (object() if plugin else None) if "slurm" in name else real(name),
    )
    seconds = _bench_pipeline.slurm_plugin_wait()
    assert (seconds is not None) == waits
    if waits:
        assert 1.4 < seconds < 5
