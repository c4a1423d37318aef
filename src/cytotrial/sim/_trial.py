"""Running a simulated trial: arguments, the parallel writing of its files and its tables."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._design import _design_trial, _SampleTask
from ._effects import effect_model
from ._fcs_writer import write_fcs
from ._panel import CELL_TYPES
from ._sample import simulate_sample


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


def _run_task(task: _SampleTask) -> tuple[str, dict[str, int]]:
    """Simulate and write one file; its sample id and truth counts."""
    sample = simulate_sample(
        panel=task.panel,
        n_events=task.n_events,
        composition=dict(zip(CELL_TYPES, task.composition)),
        dead_rate=task.dead_rate,
        doublet_rate=task.doublet_rate,
        gains=dict(task.gains),
        seed=task.seed,
    )
    write_fcs(sample, task.path, keywords=dict(task.keywords))
    return task.sample_id, sample.truth_counts()


def simulate_trial(
    out: str | Path,
    *,
    patients_per_arm: int | Sequence[int] = 12,
    events: int = 20_000,
    tumor_events: int = 10_000,
    seed: int = 0,
    jobs: int = 1,
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
    out = Path(out)
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    sheet, patients, tasks = _design_trial(
        counts, events=events, tumor_events=tumor_events, seed=seed, out=out
    )
    results = _run_tasks(tasks, jobs)
    _write_tables(out, results, sheet, patients)
    return TrialSummary(
        out=out,
        n_files=len(tasks),
        n_events=int(sum(task.n_events for task in tasks)),
        seconds=time.perf_counter() - start,
    )


def _run_tasks(tasks: list[_SampleTask], jobs: int) -> list[tuple[str, dict[str, int]]]:
    """Run the tasks in ``jobs`` processes (in this one if 1); results in task order."""
    if jobs == 1:
        return [_run_task(task) for task in tasks]
    # fork where the platform has it: workers need nothing from the caller's __main__
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context(method)) as pool:
        return list(pool.map(_run_task, tasks, chunksize=max(1, len(tasks) // (8 * jobs))))


def _write_tables(
    out: Path,
    results: list[tuple[str, dict[str, int]]],
    sheet: pd.DataFrame,
    patients: pd.DataFrame,
) -> None:
    """Write the truth, the effect model, the sample sheet and the patients table under ``out``."""
    truth = [
        (sample_id, population, count)
        for sample_id, counts in results
        for population, count in counts.items()
    ]
    pd.DataFrame(truth, columns=["sample_id", "population", "count"]).to_csv(
        out / "truth" / "populations.tsv", sep="\t", index=False
    )
    effect_model().to_csv(out / "truth" / "effects.tsv", sep="\t", index=False)
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False, na_rep="")
    patients.to_csv(out / "patients.tsv", sep="\t", index=False)
