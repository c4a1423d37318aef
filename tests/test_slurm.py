"""The demo through the project's SLURM profile on a real cluster.

`bash .ci/slurm/start_cluster.sh` (as root) stands up a single-node cluster; `.ci/run` does so and
runs this module as its own tier (`pytest -m slurm -s`; the end-to-end tier leaves it out). A small
demo runs through `profiles/slurm` while the same config runs locally; the first gating job is
cancelled with `scancel` once it runs. The SLURM run must notice the cancellation, run the job
again and end with tables byte-identical to the local run's; every job's memory use must fit its
request. The jobs seen in `sacct` and the time are printed (run with `-s`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

# A small demo: four patients per arm, few events; batches small enough for a few gating jobs.
DEMO = {"patients_per_arm": 4, "events": 4000, "tumor_events": 2000, "seed": 2024}
BATCH_SIZE = 32
EVENTS_PER_SAMPLE = 100
# What runs: on SLURM, every rule that is a SLURM job (simulate_demo, gate, qc_table, aggregate,
# stats, events; figures and report are local rules either way); locally, the tables compared.
SLURM_TARGETS = ["stats", "events"]
LOCAL_TARGETS = ["stats"]
# The runs may take this long (about 4 minutes on two idle cores): a job whose cancellation goes
# unnoticed fails the test here instead of leaving the run waiting.
TIMEOUT_S = 900
# Seconds before the executor's first status check (40 by default): a shorter wait keeps this test
# quick; the polling itself is the profile's.
FIRST_CHECK_S = 5
SACCT_FIELDS = ["JobIDRaw", "JobName", "Comment", "State", "Elapsed", "ReqMem", "MaxRSS", "WorkDir"]


def _answers(*command: str) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster() -> None:
    """A SLURM cluster whose controller and accounting answer (sacct: the executor polls it)."""
    missing = [tool for tool in ("sbatch", "squeue", "sacct", "scancel") if not shutil.which(tool)]
    if missing:
        message = f"no SLURM client tools ({', '.join(missing)})"
    elif not _answers("scontrol", "ping"):
        message = "the SLURM controller does not answer `scontrol ping`"
    elif not _answers("sacct", "-n", "-X", "-S", "now"):
        message = "SLURM accounting does not answer `sacct`"
    elif importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        message = 'no SLURM executor plugin: pip install -e ".[slurm]"'
    else:
        return
    if not message.startswith("no SLURM executor"):
        message += ": start a cluster with `bash .ci/slurm/start_cluster.sh` (as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _write_config(workdir: Path) -> None:
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    config["demo"].update(DEMO)
    config["gating"]["batch_size"] = BATCH_SIZE
    config["events"]["per_sample"] = EVENTS_PER_SAMPLE
    (workdir / "config").mkdir(parents=True)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """`snakemake ARGS` on ``workdir`` in a session of its own, its output in ``<workdir>.log``."""
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    with (workdir.parent / f"{workdir.name}.log").open("w") as log:
        return subprocess.Popen(
            command + list(args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _queue(workdir: Path) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of the queued and running jobs of the run in ``workdir``."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%T|%k|%Z"], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 3]
    return [(job, state, comment) for job, state, comment, where in rows if where == str(workdir)]


class _CancelFirstGate(threading.Thread):
    """Cancel the run's first gating job as soon as SLURM runs it, once."""

    def __init__(self, workdir: Path):
        super().__init__(daemon=True)
        self.workdir, self.job, self.comment = workdir, None, None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for job, state, comment in _queue(self.workdir):
                if comment.startswith("rule_gate") and state == "RUNNING":
                    subprocess.run(["scancel", job], check=True)
                    self.job, self.comment = job, comment
                    return
            time.sleep(0.3)


def _sacct(workdir: Path, since: str) -> list[dict[str, str]]:
    """The jobs and job steps SLURM accounted for the run in ``workdir`` (accounting may lag)."""
    for _ in range(30):
        out = subprocess.run(
            ["sacct", "-n", "-P", "-S", since, "-o", ",".join(SACCT_FIELDS)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = [dict(zip(SACCT_FIELDS, line.split("|"))) for line in out.splitlines()]
        jobs = {r["JobIDRaw"] for r in rows if r["WorkDir"] == str(workdir)}
        rows = [r for r in rows if r["JobIDRaw"].split(".")[0] in jobs]
        if rows and all(r["State"] not in {"RUNNING", "PENDING"} for r in rows):
            return rows
        time.sleep(1)
    return rows


def _megabytes(value: str) -> float:
    """A size as sacct gives it (123456K, 3000M, 2G) in MB; an empty field is 0."""
    if not value:
        return 0.0
    value = value.rstrip("nc")  # older SLURM marks a request per node or per CPU
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}
    if value[-1] in scale:
        return float(value[:-1]) * scale[value[-1]]
    return float(value) / 1024**2


def _jobs(rows: list[dict[str, str]]) -> list[dict[str, str | float]]:
    """One row per job: its rule, state, request and peak (its steps' peaks added up)."""
    jobs = {}
    for row in rows:
        job, _, step = row["JobIDRaw"].partition(".")
        if not step:
            jobs[job] = dict(row, peak_mb=0.0)
    for row in rows:
        job, _, step = row["JobIDRaw"].partition(".")
        if step and job in jobs:
            jobs[job]["peak_mb"] += _megabytes(row["MaxRSS"])
    return [jobs[job] for job in sorted(jobs, key=int)]


def _tables(workdir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(workdir)): path.read_bytes()
        for folder in ("results/counts", "results/stats")
        for path in sorted((workdir / folder).glob("*.tsv"))
    }


def _stop(process: subprocess.Popen, workdir: Path) -> None:
    """End a run that is still going: snakemake's session, then its jobs left in the queue."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    jobs = [job for job, _, _ in _queue(workdir)]
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)


def _tail(workdir: Path) -> str:
    return (workdir.parent / f"{workdir.name}.log").read_text()[-4000:]


def test_demo_on_slurm_equals_local_and_survives_a_cancelled_job(cluster, tmp_path):
    local, remote = (tmp_path / "local").resolve(), (tmp_path / "slurm").resolve()
    for workdir in (local, remote):
        _write_config(workdir)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    start = time.perf_counter()
    canceller = _CancelFirstGate(remote)
    canceller.start()
    on_slurm = _snakemake(
        remote,
        *SLURM_TARGETS,
        "--workflow-profile",
        str(ROOT / "profiles/slurm"),
        "--slurm-init-seconds-before-status-checks",
        str(FIRST_CHECK_S),
    )
    on_workstation = _snakemake(local, *LOCAL_TARGETS, "--cores", "2")
    try:
        on_slurm.wait(timeout=TIMEOUT_S)
        seconds = time.perf_counter() - start
        on_workstation.wait(timeout=max(TIMEOUT_S - seconds, 60))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the runs did not end in {TIMEOUT_S} s:\n{_tail(remote)}")
    finally:
        canceller.done.set()
        _stop(on_slurm, remote)
        _stop(on_workstation, local)
    assert on_workstation.returncode == 0, _tail(local)
    assert on_slurm.returncode == 0, _tail(remote)

    jobs = _jobs(_sacct(remote, since))
    print(f"\nSLURM run: {seconds:.0f} s, {len(jobs)} jobs (sacct):")
    print("job\trule\tstate\telapsed\treq_mem\tpeak_mb")
    for job in jobs:
        print(
            f"{job['JobIDRaw']}\t{job['Comment']}\t{job['State']}\t{job['Elapsed']}\t"
            f"{job['ReqMem']}\t{job['peak_mb']:.0f}"
        )

    # the cancelled job: cancelled while it ran, noticed, and its rule and wildcards run again
    assert canceller.job is not None, "no gating job was seen running"
    by_id = {job["JobIDRaw"]: job for job in jobs}
    assert by_id[canceller.job]["State"].startswith("CANCELLED"), by_id[canceller.job]
    retried = [
        job
        for job in jobs
        if job["Comment"] == canceller.comment and int(job["JobIDRaw"]) > int(canceller.job)
    ]
    assert [job["State"] for job in retried] == ["COMPLETED"], retried
    log = (remote.parent / f"{remote.name}.log").read_text()
    assert f"'{canceller.job}'" in log and "CANCELLED" in log
    # every other job completed, within the memory it asked for
    rules = {str(job["Comment"]).split("_wildcards")[0] for job in jobs}
    assert {
        "rule_simulate_demo",
        "rule_gate",
        "rule_aggregate",
        "rule_stats",
        "rule_events",
    } <= rules
    for job in jobs:
        if job["JobIDRaw"] != canceller.job:
            assert job["State"] == "COMPLETED", job
            assert job["peak_mb"] <= _megabytes(str(job["ReqMem"])), job

    # the same tables, byte for byte
    ours, theirs = _tables(remote), _tables(local)
    assert "results/counts/populations.tsv" in theirs and "results/stats/mmrm.tsv" in theirs
    assert list(ours) == list(theirs)
    differ = [name for name in theirs if ours[name] != theirs[name]]
    assert not differ, f"SLURM and local tables differ: {', '.join(differ)}"
