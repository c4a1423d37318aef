"""Running a simulated trial: arguments, the parallel writing of its files and its tables."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._design import _design_trial, _SampleTask
from ._drift import Drift, as_drift
from ._effects import effect_model
from ._fcs_writer import write_fcs
from ._panel import CELL_TYPES, PANELS
from ._sample import SimulatedSample, simulate_sample

#: Columns of ``truth/acquisition.tsv``: one row per file.
ACQUISITION_COLUMNS = [
    "sample_id", "site", "instrument", "dead_rate", "debris_rate", "doublet_rate", "events",
    "anomaly", "anomaly_start_s", "anomaly_stop_s", "anomalous_events",
]  # fmt: skip
#: Columns of ``truth/drift.tsv``: one row per file and channel.
DRIFT_COLUMNS = ["sample_id", "channel", "marker", "gain", "offset", "spread"]

_TaskResult = tuple[str, dict[str, int], dict[str, object], list[tuple]]


@dataclass(frozen=True)
class TrialSummary:
    """What :func:`simulate_trial` wrote and how fast.

    Attributes
    ----------
    out
        The output folder.
    n_files
        Number of FCS files written (one per row of the sample sheet).
    n_events
        Events written over all files.
    seconds
        Wall time of the whole simulation.
    """

    out: Path
    n_files: int
    n_events: int
    seconds: float

    @property
    def files_per_second(self) -> float:
        """Files written per second of wall time."""
        return self.n_files / self.seconds if self.seconds > 0 else float("inf")

    @property
    def events_per_second(self) -> float:
        """Events written per second of wall time."""
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")


def _whole_number(label: str, value: object, *, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or a one-line ConfigError."""
    try:
        number = int(value)  # type: ignore[call-overload]
        ok = number == value and number >= minimum
    except (TypeError, ValueError):
        ok = False
    if not ok:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{label} must be {kind}, not {value!r}")
    return number


def _patients_per_arm(value: int | Sequence[int]) -> tuple[int, int]:
    """Patients in each arm from one number or a pair, or a one-line ConfigError."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        first, second = pair  # type: ignore[misc]
        return (
            _whole_number("patients_per_arm", first, minimum=1),
            _whole_number("patients_per_arm", second, minimum=1),
        )
    except (TypeError, ValueError, ConfigError):
        raise ConfigError(
            f"patients_per_arm must be a positive integer or a pair of them, not {value!r}"
        ) from None


def _run_task(task: _SampleTask) -> _TaskResult:
    """Simulate and write one file (and its event truth); its truth rows."""
    sample = simulate_sample(
        panel=task.panel,
        n_events=task.n_events,
        composition=dict(zip(CELL_TYPES, task.composition)),
        dead_rate=task.dead_rate,
        doublet_rate=task.doublet_rate,
        gains=dict(task.gains),
        drift=task.drift,
        seed=task.seed,
    )
    write_fcs(sample, task.path, keywords=dict(task.keywords))
    if task.truth_path:
        np.save(task.truth_path, sample.event_truth().packed(), allow_pickle=False)
    return (
        task.sample_id,
        sample.truth_counts(),
        _acquisition_row(task, sample),
        _drift_rows(task, sample),
    )


def _acquisition_row(task: _SampleTask, sample: SimulatedSample) -> dict[str, object]:
    """The file's row of ``truth/acquisition.tsv``."""
    anomaly = sample.drift.anomaly if sample.drift is not None else None
    start, stop = sample.anomaly_seconds or (math.nan, math.nan)
    return {
        "sample_id": task.sample_id,
        "site": task.site,
        "instrument": task.instrument,
        "dead_rate": task.dead_rate,
        "debris_rate": task.debris_rate,
        "doublet_rate": task.doublet_rate,
        "events": sample.n_events,
        "anomaly": "" if anomaly is None else anomaly.kind,
        "anomaly_start_s": start,
        "anomaly_stop_s": stop,
        "anomalous_events": int(np.count_nonzero(sample.anomalous)),
    }


def _drift_rows(task: _SampleTask, sample: SimulatedSample) -> list[tuple]:
    """The file's rows of ``truth/drift.tsv``: gain, offset and spread of every channel."""
    gains = dict(task.gains)
    drift = sample.drift
    rows = []
    for channel, marker in PANELS[task.panel]:
        if channel == "Time":
            continue
        detector = "FSC-A" if channel == "FSC-H" else channel
        gain, offset, spread = gains.get(detector, 1.0), 0.0, 1.0
        if drift is not None:
            gain *= drift.gain.get(detector, 1.0)
            offset = drift.offset.get(channel, 0.0)
            spread = drift.spread.get(detector, 1.0)
        rows.append((task.sample_id, channel, marker, gain, offset, spread))
    return rows


def simulate_trial(
    out: str | Path,
    *,
    patients_per_arm: int | Sequence[int] = 12,
    events: int = 20_000,
    tumor_events: int = 10_000,
    seed: int = 0,
    jobs: int = 1,
    drift: Drift | Mapping | bool | str | None = None,
    event_truth: bool = True,
) -> TrialSummary:
    """Write a simulated trial: FCS files, sample sheet, clinical table and the truth.

    Parameters
    ----------
    out
        Output folder (created); see the :mod:`cytotrial.sim` docstring for what is written.
    patients_per_arm
        Patients in each arm, or a pair ``(BEMPEG+NIVO, NIVO)``, e.g. ``(391, 392)``.
    events
        Events per blood file.
    tumor_events
        Events per tumor file.
    seed
        Seed of the whole trial: the same arguments and seed give byte-identical files.
    jobs
        Worker processes writing files (results do not depend on it).
    drift
        ``None`` (or ``False``, ``"clean"``): the clean mode (a few percent of batch shift).
        ``True`` (or ``"drift"``), a :class:`Drift` or a mapping of its sizes: the drift mode
        of a multi-site trial (see :mod:`cytotrial.sim`); the sheet gains ``site`` and
        ``instrument`` columns. The patients and samples are the same in both modes.
    event_truth
        Write every file's per-event truth to ``truth/events/<sample_id>.npy`` (one byte per
        event; read it with :func:`truth_events`).

    Returns
    -------
    TrialSummary
        Number of files and events written and the seconds it took.
    """
    start = time.perf_counter()
    counts = _patients_per_arm(patients_per_arm)
    events = _whole_number("events", events, minimum=1)
    tumor_events = _whole_number("tumor_events", tumor_events, minimum=1)
    jobs = _whole_number("jobs", jobs, minimum=1)
    seed = _whole_number("seed", seed, minimum=0)
    drift = as_drift(drift)
    out = Path(out)
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    if event_truth:
        (out / "truth" / "events").mkdir(exist_ok=True)
    sheet, patients, tasks = _design_trial(
        counts,
        events=events,
        tumor_events=tumor_events,
        seed=seed,
        out=out,
        drift=drift,
        event_truth=bool(event_truth),
    )
    results = _run_tasks(tasks, jobs)
    _write_tables(out, results, sheet, patients)
    return TrialSummary(
        out=out,
        n_files=len(tasks),
        n_events=int(sum(task.n_events for task in tasks)),
        seconds=time.perf_counter() - start,
    )


def _run_tasks(tasks: list[_SampleTask], jobs: int) -> list[_TaskResult]:
    """Run the tasks in ``jobs`` processes (in this one if 1); results in task order."""
    if jobs == 1:
        return [_run_task(task) for task in tasks]
    # fork where the platform has it: workers need nothing from the caller's __main__
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context(method)) as pool:
        return list(pool.map(_run_task, tasks, chunksize=max(1, len(tasks) // (8 * jobs))))


def _write_tables(
    out: Path,
    results: list[_TaskResult],
    sheet: pd.DataFrame,
    patients: pd.DataFrame,
) -> None:
    """Write the truth, the effect model, the sample sheet and the patients table under ``out``."""
    truth = [
        (sample_id, population, count)
        for sample_id, counts, _, _ in results
        for population, count in counts.items()
    ]
    pd.DataFrame(truth, columns=["sample_id", "population", "count"]).to_csv(
        out / "truth" / "populations.tsv", sep="\t", index=False
    )
    pd.DataFrame([row for _, _, row, _ in results], columns=ACQUISITION_COLUMNS).to_csv(
        out / "truth" / "acquisition.tsv", sep="\t", index=False, float_format="%.6g"
    )
    drift_rows = [row for _, _, _, rows in results for row in rows]
    pd.DataFrame(drift_rows, columns=DRIFT_COLUMNS).to_csv(
        out / "truth" / "drift.tsv", sep="\t", index=False, float_format="%.6g"
    )
    effect_model().to_csv(out / "truth" / "effects.tsv", sep="\t", index=False)
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False, na_rep="")
    patients.to_csv(out / "patients.tsv", sep="\t", index=False)
