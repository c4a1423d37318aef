"""A run ends when its last job does: Snakemake's scheduler timers do not hold the process.

The profiles set ``max-jobs-per-timespan`` to a minute, and Snakemake's scheduler starts a timer of
that length, not a daemon thread, each time it looks at the waiting jobs: without the workflow's
``onsuccess``/``onerror`` (``workflow/rules/run_end.smk``), Python waits for the last timer before
the process exits.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cytotrial.rules import cancel_pending_timers

ROOT = Path(__file__).resolve().parents[1]
RUN_END = ROOT / "workflow" / "rules" / "run_end.smk"
# Ten minutes: a run held by a timer would take at least this long.
TIMESPAN = "1000/10m"


def test_pending_timers_are_cancelled_and_counted() -> None:
    fired = threading.Event()
    timers = [threading.Timer(600, fired.set) for _ in range(2)]
    for timer in timers:
        timer.start()
    done = threading.Timer(0, lambda: None)
    done.start()
    done.join()
    assert cancel_pending_timers() == 2
    for timer in timers:
        timer.join(timeout=5)
        assert not timer.is_alive()
    assert not fired.is_set()
    assert cancel_pending_timers() == 0


def _workflow(folder: Path, *, fail: bool) -> Path:
    """Two jobs, one after the other (two looks of the scheduler), the second failing if asked."""
    second = "exit 1" if fail else "touch {output}"
    (folder / "Snakefile").write_text(
        f"include: {str(RUN_END)!r}\n\n"
        + "rule all:\n    input: 'b'\n\n"
        + "rule a:\n    output: 'a'\n    shell: 'touch {output}'\n\n"
        + f"rule b:\n    input: 'a'\n    output: 'b'\n    shell: '{second}'\n",
        encoding="utf-8",
    )
    return folder


def _run(folder: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--max-jobs-per-timespan", TIMESPAN,
         "--quiet", "all"],
        cwd=folder, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return result, time.perf_counter() - start


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
def test_the_workflow_ends_with_its_last_job_not_a_scheduler_timer(
    tmp_path: Path, fail: bool
) -> None:
    result, seconds = _run(_workflow(tmp_path, fail=fail))
    assert (result.returncode != 0) == fail, result.stderr[-2000:]
    # the timers wait ten minutes; a run's own start-up takes seconds
    assert seconds < 300, f"the run took {seconds:.0f} s: a scheduler timer held it"
