"""The trial design: patients, their clinical course, which samples exist and one task per file.

Everything here draws from the design's one generator, in a fixed order (patients, clinical
table, patient factors, enrolment, names, sites, then sample by sample in sheet order, then the
batch gains); each file's events draw from their own child :class:`numpy.random.SeedSequence`.
The drift mode draws instruments, reagent lots, runs and anomalies from a third child, so the
design (patients, samples, sheet rows) is the same in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._drift import Drift, SampleDrift, _trial_drift, _TrialDrift, site_name
from ._effects import (
    _BLOOD_BASELINE,
    _CYCLE_DAYS,
    _RATES,
    _TUMOR_BASELINE,
    ARMS,
    BLOOD_EFFECTS,
    TUMOR_EFFECTS,
    VISITS,
    _composition,
)
from ._identifiers import _SITES, _names, _site_keywords
from ._panel import _LYMPHOID, CELL_TYPES, PANELS

_RESPONSES = ("CR", "PR", "SD", "PD")
_RESPONSE_PROBABILITY = (0.08, 0.25, 0.27, 0.40)  # objective response rate 0.33
_DAYS_PER_MONTH = 30.4375
_BATCH_DAYS = 42  # samples are acquired in six-weekly batches
_PATIENT_COLUMNS = [
    "patient_id", "arm", "best_response", "pfs_months", "pfs_event", "os_months", "os_event",
]  # fmt: skip


@dataclass(frozen=True)
class _SampleTask:
    """Everything one worker needs to write one file (small and picklable)."""

    sample_id: str
    panel: str
    n_events: int
    composition: tuple[float, ...]
    dead_rate: float
    doublet_rate: float
    gains: tuple[tuple[str, float], ...]
    keywords: tuple[tuple[str, str], ...]
    path: str
    seed: np.random.SeedSequence
    debris_rate: float = 0.0
    site: str = ""
    instrument: str = ""
    drift: SampleDrift | None = None
    truth_path: str = ""  # where the per-event truth goes ("": not written)


@dataclass(frozen=True)
class _Cohort:
    """The enrolled patients and what each one's samples draw on."""

    patients: pd.DataFrame  # patient_id, arm, clinical outcome and off_study_day
    log_factors: dict[str, dict[str, np.ndarray]]  # compartment -> cell type -> per patient
    responsiveness: np.ndarray
    enrolment: np.ndarray  # day of enrolment
    names: list[tuple[str, str, int]]
    operators: list[tuple[str, str, int]]
    site: np.ndarray
    first_day: int


def _clinical(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Best response, progression-free and overall survival, and the day each patient stops."""
    response = rng.choice(len(_RESPONSES), size=n, p=_RESPONSE_PROBABILITY)
    u = rng.random(n)
    pfs_true = np.select(
        [response == 0, response == 1, response == 2],
        [
            8.0 + rng.exponential(40.0, n),
            4.0 + rng.exponential(16.0, n),
            2.8 + rng.exponential(5.0, n),
        ],
        default=0.6 + 2.0 * u,  # progression at or before the first scans
    )
    os_true = pfs_true + np.choose(response, [
        rng.exponential(80.0, n), rng.exponential(30.0, n), rng.exponential(14.0, n),
        rng.exponential(8.0, n),
    ])  # fmt: skip
    follow_up = rng.uniform(12.0, 36.0, n)
    toxicity_stop = np.where(rng.random(n) < 0.08, rng.uniform(10.0, 150.0, n), np.inf)
    off_study = np.minimum(np.minimum(pfs_true, follow_up) * _DAYS_PER_MONTH, toxicity_stop)
    return pd.DataFrame(
        {
            "best_response": np.array(_RESPONSES)[response],
            "pfs_months": np.round(np.minimum(pfs_true, follow_up), 2),
            "pfs_event": (pfs_true <= follow_up).astype(int),
            "os_months": np.round(np.minimum(os_true, follow_up), 2),
            "os_event": (os_true <= follow_up).astype(int),
            "off_study_day": off_study,
        }
    )


def _patient_factors(
    rng: np.random.Generator, n: int
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Between-patient log-factors per compartment and cell type, and responsiveness."""
    blood_shared = 0.25 * rng.standard_normal(n)
    tumor_shared = 0.6 * rng.standard_normal(n)
    blood, tumor = {}, {}
    for cell_type in CELL_TYPES[1:]:
        individual = rng.standard_normal((2, n))
        if cell_type in _LYMPHOID:
            blood[cell_type] = blood_shared + 0.25 * individual[0]
            tumor[cell_type] = tumor_shared + 0.40 * individual[1]
        elif cell_type in ("monocyte", "granulocyte"):
            blood[cell_type] = (0.3 if cell_type == "monocyte" else 0.5) * individual[0]
            tumor[cell_type] = tumor_shared + 0.40 * individual[1]
        else:
            tumor[cell_type] = 0.2 * individual[1]
    return {"blood": blood, "tumor": tumor}, np.exp(0.3 * rng.standard_normal(n))


def _sample_abundance(
    rng: np.random.Generator,
    compartment: str,
    arm: str,
    visit: str,
    patient_log_factor: Mapping[str, float],
    responsiveness: float,
) -> dict[str, float]:
    """One sample's abundances: typical baseline x effect ** responsiveness x patient x visit noise."""
    if compartment == "blood":
        baseline, effect = _BLOOD_BASELINE, BLOOD_EFFECTS[arm].get(visit, {})
    else:
        baseline, effect = _TUMOR_BASELINE, TUMOR_EFFECTS.get(visit, {})
    visit_sd = 0.15 if compartment == "blood" else 0.25
    abundance = {}
    for cell_type, value in baseline.items():
        noise = (0.4 if cell_type == "granulocyte" else visit_sd) * rng.standard_normal()
        fold = effect.get(cell_type, 1.0) ** responsiveness
        abundance[cell_type] = value * fold * np.exp(patient_log_factor[cell_type] + noise)
    return abundance


def _attends(
    rng: np.random.Generator, compartment: str, v: int, study_day: int, off: float
) -> bool:
    """Whether a sample exists: on study at the visit and not missed (biopsies often are)."""
    draw = rng.random()
    if v > 0 and study_day >= off:
        return False
    if compartment == "blood":
        return v == 0 or draw >= 0.04
    return draw >= (0.08 if v == 0 else 0.25)


def _batch_gains(rng: np.random.Generator, batches: Sequence[str]) -> dict[str, dict[str, float]]:
    """Intensity factor per acquisition batch and channel: a few percent, scatter less."""
    channels = [c for c, _ in PANELS["tumor"] if c not in ("FSC-H", "Time")]
    sd = np.array([0.02 if c.startswith(("FSC", "SSC")) else 0.04 for c in channels])
    return {
        batch: dict(zip(channels, np.exp(sd * rng.standard_normal(len(sd))).tolist()))
        for batch in sorted(batches)
    }


def _enrol(rng: np.random.Generator, counts: tuple[int, int]) -> _Cohort:
    """Randomize ``counts`` patients to the arms and draw everything fixed per patient."""
    n = sum(counts)
    width = max(3, len(str(n)))
    patients = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": [f"P{i + 1:0{width}d}" for i in range(n)],
                    "arm": rng.permutation(np.repeat(np.array(ARMS), counts)),
                }
            ),
            _clinical(rng, n),
        ],
        axis=1,
    )
    log_factors, responsiveness = _patient_factors(rng, n)
    enrolment = np.sort(rng.uniform(0.0, max(180.0, float(n)), n)).astype(int)
    names, operators = _names(rng, n), _names(rng, 4)
    site = rng.integers(0, len(_SITES), n)
    first_day = int(rng.integers(0, 365))
    return _Cohort(
        patients=patients,
        log_factors=log_factors,
        responsiveness=responsiveness,
        enrolment=enrolment,
        names=names,
        operators=operators,
        site=site,
        first_day=first_day,
    )


_SampleDraw = tuple[int, dict[str, float], dict[str, float], dict[str, str]]
"""One sample's n_events, composition, rates (debris, dead, doublet) and TEXT keywords."""


def _draw_sample(
    rng: np.random.Generator,
    cohort: _Cohort,
    i: int,
    *,
    patient_id: str,
    arm: str,
    compartment: str,
    visit: tuple[str, int, int],
    n_events: int,
    rate_range: float = 1.0,
) -> tuple[dict[str, object], _SampleDraw]:
    """The sheet row of patient ``i``'s sample at ``visit`` and what its file is drawn from.

    ``rate_range`` (the drift mode's ``dead_debris_range``) stretches the dead and debris rates'
    ranges upwards: the same draw, mapped onto the wider range.
    """
    name, cycle, day = visit
    study_day = (cycle - 1) * _CYCLE_DAYS + day
    abundance = _sample_abundance(
        rng,
        compartment,
        arm,
        name,
        {t: f[i] for t, f in cohort.log_factors[compartment].items()},
        cohort.responsiveness[i],
    )
    rates = {k: float(rng.uniform(*r)) for k, r in _RATES[compartment].items()}
    if rate_range != 1.0:
        for key in ("dead", "debris"):
            low, high = _RATES[compartment][key]
            rates[key] = low + (rates[key] - low) * (high * rate_range - low) / (high - low)
    acquisition_day = int(cohort.enrolment[i]) + study_day - 1
    sample_id = f"{patient_id}_{name}_{compartment}"
    keywords = _site_keywords(
        rng,
        name=cohort.names[i],
        operator=cohort.operators[int(rng.integers(0, len(cohort.operators)))],
        site=_SITES[cohort.site[i]],
        visit=name,
        compartment=compartment,
        date_number=cohort.first_day + acquisition_day,
        n_events=n_events,
    )
    row = {
        "sample_id": sample_id,
        "patient_id": patient_id,
        "arm": arm,
        "visit": name,
        "cycle": cycle,
        "day": day,
        "compartment": compartment,
        "panel": compartment,
        "batch": f"B{1 + acquisition_day // _BATCH_DAYS:02d}",
        "fcs": f"fcs/{sample_id}.fcs",
        "lymphocytes_per_ul": (
            round(sum(abundance[t] for t in _LYMPHOID), 1) if compartment == "blood" else np.nan
        ),
    }
    return row, (n_events, _composition(abundance, rates["debris"]), rates, keywords)


def _tasks(
    rows: list[dict[str, object]],
    draws: list[_SampleDraw],
    gains: Mapping[str, dict[str, float]],
    seeds: list[np.random.SeedSequence],
    out: Path,
    *,
    sites: list[int],
    drift: _TrialDrift | None,
    event_truth: bool,
) -> list[_SampleTask]:
    """One task per sheet row: its file's parameters, gains or drift, keywords, path and seed."""
    tasks = []
    for k, (row, (n_events, composition, rates, keywords), sample_seed) in enumerate(
        zip(rows, draws, seeds)
    ):
        instrument, sample_drift = "", None
        if drift is not None:
            instrument, sample_drift = drift.instruments[k], drift.drifts[k]
            keywords = {**keywords, "$CYTSN": drift.serials[k]}
        sample_id = str(row["sample_id"])
        tasks.append(
            _SampleTask(
                sample_id=sample_id,
                panel=str(row["panel"]),
                n_events=n_events,
                composition=tuple(composition[t] for t in CELL_TYPES),
                dead_rate=rates["dead"],
                doublet_rate=rates["doublet"],
                gains=() if drift is not None else tuple(gains[row["batch"]].items()),
                keywords=tuple(keywords.items()),
                path=str(out / str(row["fcs"])),
                seed=sample_seed,
                debris_rate=rates["debris"],
                site=site_name(sites[k]),
                instrument=instrument,
                drift=sample_drift,
                truth_path=str(out / "truth" / "events" / f"{sample_id}.npy")
                if event_truth
                else "",
            )
        )
    return tasks


def _design_trial(
    counts: tuple[int, int],
    *,
    events: int,
    tumor_events: int,
    seed: int,
    out: Path,
    drift: Drift | None = None,
    event_truth: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, list[_SampleTask]]:
    """Patients, their samples (in sheet order: patient, compartment, visit) and one task each.

    Returns
    -------
    tuple of pandas.DataFrame, pandas.DataFrame, list of _SampleTask
        The sample sheet (in the drift mode with ``site`` and ``instrument`` after ``batch``),
        the patients table and the task of each sheet row.
    """
    # spawn(3)'s first two children are spawn(2)'s: the clean mode's streams are unchanged
    design_seed, samples_seed, drift_seed = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(design_seed)
    cohort = _enrol(rng, counts)
    rows, draws, sites = [], [], []
    for i, (patient_id, arm, off_day) in enumerate(
        zip(cohort.patients["patient_id"], cohort.patients["arm"], cohort.patients["off_study_day"])
    ):
        for compartment in ("blood", "tumor"):
            for v, visit in enumerate(VISITS[compartment]):
                study_day = (visit[1] - 1) * _CYCLE_DAYS + visit[2]
                if not _attends(rng, compartment, v, study_day, off_day):
                    continue
                row, draw = _draw_sample(
                    rng,
                    cohort,
                    i,
                    patient_id=patient_id,
                    arm=arm,
                    compartment=compartment,
                    visit=visit,
                    n_events=events if compartment == "blood" else tumor_events,
                    rate_range=1.0 if drift is None else drift.dead_debris_range,
                )
                rows.append(row)
                draws.append(draw)
                sites.append(int(cohort.site[i]))

    sheet = pd.DataFrame(rows)
    gains = _batch_gains(rng, sheet["batch"].unique())
    trial_drift = None
    if drift is not None:
        trial_drift = _trial_drift(
            np.random.default_rng(drift_seed), drift, sites, sheet["batch"].tolist()
        )
        at = sheet.columns.get_loc("batch") + 1
        sheet.insert(at, "site", [site_name(s) for s in sites])
        sheet.insert(at + 1, "instrument", trial_drift.instruments)
    seeds = samples_seed.spawn(len(rows))
    tasks = _tasks(
        rows, draws, gains, seeds, out, sites=sites, drift=trial_drift, event_truth=event_truth
    )
    return sheet, cohort.patients[_PATIENT_COLUMNS], tasks
