"""Which samples exist, per compartment, visit and arm, and why the others are missing.

A patient is expected at each visit of a compartment's schedule (the visits of that compartment
in the sample sheet, placed in time by cycle and day). At a visit a patient's sample is one of:

* sampled: a sample that was gated (QC status not ``excluded``);
* excluded: a sample excluded at gating (QC status ``excluded``, the reason in the QC table);
* missing, dropout at progression: no sample, and the patient progressed (``pfs_event`` 1) on or
  before the visit's study day, ``(cycle - 1) * cycle_days + day``, with ``pfs_months`` converted
  at 365.25 / 12 days a month;
* missing, missed sample: no sample although on study (also: no progression data);
* not expected: no sample and the patient's follow-up ended before the visit's day without
  progression (``pfs_event`` 0, ``pfs_months`` before it): neither counted nor listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._response import _check_arms_agree

__all__ = ["DAYS_PER_MONTH", "missing_samples", "sample_availability"]

#: Days per month of the patients table's times (``pfs_months``).
DAYS_PER_MONTH = 365.25 / 12

_AVAILABILITY_COLUMNS = [
    "compartment", "visit", "arm", "expected", "sampled", "missing_progression", "missing_other",
    "excluded",
]  # fmt: skip
_LISTING_COLUMNS = ["compartment", "visit", "arm", "patient_id", "reason", "sample_id", "message"]
_SAMPLED, _EXCLUDED = "sampled", "excluded sample"
_PROGRESSION, _MISSED, _NOT_EXPECTED = "dropout at progression", "missed sample", "not expected"


def sample_availability(
    samples: pd.DataFrame,
    patients: pd.DataFrame | None = None,
    *,
    qc: pd.DataFrame | None = None,
    cycle_days: int = 21,
    arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Patients expected, sampled and missing (and why) per compartment, visit and arm.

    Parameters
    ----------
    samples
        The sample sheet (:func:`cytotrial.io.read_sample_sheet`, every sample also those
        excluded at gating): ``sample_id, patient_id, arm, compartment, visit, cycle, day``.
    patients
        Output of :func:`read_patients` (enrolled patients, ``pfs_months`` and ``pfs_event``), or
        None: the patients of ``samples``, no progression known.
    qc
        The QC table (``results/qc/samples.tsv``: ``sample_id``, ``status``, ``message``), or
        None: every sample counts as sampled.
    cycle_days
        Length of a treatment cycle in days (the visits' study day).
    arms
        Arm order (default: sorted; arms not listed come after, sorted).

    Returns
    -------
    pandas.DataFrame
        Columns ``compartment, visit, arm, expected, sampled, missing_progression,
        missing_other, excluded`` (see the module description);
        ``expected = sampled + excluded + missing_progression + missing_other``. Compartments
        sorted, visits in clinical order, arms in ``arms`` order.

    Raises
    ------
    SampleSheetError
        A patient's arm in ``patients`` differs from the sample sheet.
    """
    status = _visit_status(samples, patients, qc=qc, cycle_days=cycle_days)
    order = _arm_order(status["arm"], arms)
    rows = []
    for (compartment, visit), cell in status.groupby(["compartment", "visit"], sort=False):
        for arm in order:
            own = cell.loc[cell["arm"] == arm, "status"]
            counts = {
                "sampled": int((own == _SAMPLED).sum()),
                "missing_progression": int((own == _PROGRESSION).sum()),
                "missing_other": int((own == _MISSED).sum()),
                "excluded": int((own == _EXCLUDED).sum()),
            }
            expected = sum(counts.values())
            rows.append(
                dict(compartment=compartment, visit=visit, arm=arm, expected=expected, **counts)
            )
    return pd.DataFrame(rows, columns=_AVAILABILITY_COLUMNS)


def missing_samples(
    samples: pd.DataFrame,
    patients: pd.DataFrame | None = None,
    *,
    qc: pd.DataFrame | None = None,
    cycle_days: int = 21,
    arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each expected sample that is not analysed, and why (the rows behind the counts).

    Parameters are those of :func:`sample_availability`.

    Returns
    -------
    pandas.DataFrame
        Columns ``compartment, visit, arm, patient_id, reason, sample_id, message``: ``reason``
        ``dropout at progression``, ``missed sample`` or ``excluded sample`` (then its
        ``sample_id`` and the QC ``message``). Ordered as :func:`sample_availability`, then by
        patient.
    """
    status = _visit_status(samples, patients, qc=qc, cycle_days=cycle_days)
    rank = {arm: i for i, arm in enumerate(_arm_order(status["arm"], arms))}
    listed = status[status["status"].isin([_PROGRESSION, _MISSED, _EXCLUDED])]
    listed = listed.assign(_arm=listed["arm"].map(rank), reason=listed["status"])
    listed = listed.sort_values(["_order", "_arm", "patient_id"], kind="mergesort")
    return listed[_LISTING_COLUMNS].reset_index(drop=True)


def _arm_order(present: pd.Series, arms: Sequence[str] | None) -> list[str]:
    """Arms of ``present`` in ``arms`` order, others after, sorted."""
    found = set(present)
    chosen = [a for a in (arms or []) if a in found]
    return chosen + sorted(found - set(chosen))


def _schedule(samples: pd.DataFrame, cycle_days: int) -> pd.DataFrame:
    """Each compartment's visits in clinical order, with their study day."""
    visits = samples[["compartment", "visit", "cycle", "day"]].drop_duplicates(
        ["compartment", "visit"]
    )
    visits = visits.sort_values(["compartment", "cycle", "day", "visit"], kind="mergesort")
    study_day = (visits["cycle"].astype(int) - 1) * cycle_days + visits["day"].astype(int)
    return visits.assign(study_day=study_day.astype(float), _order=np.arange(len(visits)))


def _visit_status(
    samples: pd.DataFrame,
    patients: pd.DataFrame | None,
    *,
    qc: pd.DataFrame | None,
    cycle_days: int,
) -> pd.DataFrame:
    """One row per patient and scheduled visit of each compartment, with its status."""
    if patients is None:
        patients = samples[["patient_id", "arm"]].drop_duplicates("patient_id")
    _check_arms_agree(samples, patients.set_index("patient_id"))
    arm_of = dict(zip(samples["patient_id"], samples["arm"]))
    arm_of.update(zip(patients["patient_id"], patients["arm"]))
    everyone = pd.DataFrame({"patient_id": sorted(arm_of)})
    everyone["arm"] = everyone["patient_id"].map(arm_of)
    progression = _progression_days(patients)
    grid = _schedule(samples, cycle_days).merge(everyone, how="cross")
    taken = _sample_status(samples, qc)
    grid = grid.merge(taken, on=["patient_id", "compartment", "visit"], how="left")
    progressed, ended = progression.reindex(grid["patient_id"]).to_numpy(dtype=float).T
    day = grid["study_day"].to_numpy(dtype=float)
    no_sample = grid["sample_id"].isna().to_numpy()
    status = np.where(grid["excluded"].eq(True).to_numpy(dtype=bool), _EXCLUDED, _SAMPLED)
    status = np.where(no_sample, _MISSED, status)
    status = np.where(no_sample & (ended < day), _NOT_EXPECTED, status)
    status = np.where(no_sample & (progressed <= day), _PROGRESSION, status)
    grid["status"] = status
    grid["sample_id"] = grid["sample_id"].where(grid["status"] == _EXCLUDED, "")
    grid["message"] = grid["message"].where(grid["status"] == _EXCLUDED, "").fillna("")
    return grid


def _progression_days(patients: pd.DataFrame) -> pd.DataFrame:
    """Per patient: study day of progression (NaN: none) and of the end of follow-up without it."""
    columns = {"progression": np.nan, "censored": np.nan}
    if not {"pfs_months", "pfs_event"} <= set(patients.columns):
        return pd.DataFrame(columns, index=patients["patient_id"])
    months = pd.to_numeric(patients["pfs_months"], errors="coerce").to_numpy(dtype=float)
    event = pd.to_numeric(patients["pfs_event"], errors="coerce").to_numpy(dtype=float)
    days = months * DAYS_PER_MONTH
    return pd.DataFrame(
        {
            "progression": np.where(event == 1, days, np.nan),
            "censored": np.where(event == 0, days, np.nan),
        },
        index=patients["patient_id"].to_numpy(),
    )


def _sample_status(samples: pd.DataFrame, qc: pd.DataFrame | None) -> pd.DataFrame:
    """Per patient, compartment and visit: one sample (a gated one first) and its QC outcome."""
    taken = samples[["sample_id", "patient_id", "compartment", "visit"]].copy()
    taken["excluded"] = False
    taken["message"] = ""
    if qc is not None:
        outcome = qc.drop_duplicates("sample_id").set_index("sample_id")
        status = taken["sample_id"].map(outcome["status"])
        taken["excluded"] = (status == "excluded").to_numpy()
        if "message" in outcome.columns:
            taken["message"] = taken["sample_id"].map(outcome["message"]).fillna("").astype(str)
    taken = taken.sort_values(["excluded", "sample_id"], kind="mergesort")
    return taken.drop_duplicates(["patient_id", "compartment", "visit"])
