"""Sample availability: expected, sampled and missing (and why) per compartment, visit and arm."""

from __future__ import annotations

import pandas as pd
import pytest

from cytotrial import tl as stats

COMBO, CONTROL = "COMBO", "CONTROL"
BLOOD = [("C1D1", 1, 1), ("C1D8", 1, 8), ("C2D1", 2, 1), ("C5D1", 5, 1)]  # days 1, 8, 22, 85
TUMOR = [("C1D1", 1, 1), ("C2D1", 2, 1)]
ARM = {"P1": COMBO, "P2": COMBO, "P3": COMBO, "P4": CONTROL, "P5": CONTROL, "P6": CONTROL}
ARM |= {"P7": CONTROL}


def _sheet(taken: dict[str, list[str]]) -> pd.DataFrame:
    """Sample sheet: patient -> the blood visits sampled; a C1D1 tumor biopsy each, P2 a C2D1 one.

    A compartment's schedule is its visits in the sheet: someone must have the C2D1 biopsy.
    """
    rows = []
    for patient, visits in taken.items():
        for compartment, schedule, chosen in (
            ("blood", BLOOD, visits),
            ("tumor", TUMOR, ["C1D1", "C2D1"] if patient == "P2" else ["C1D1"]),
        ):
            for visit, cycle, day in schedule:
                if visit in chosen:
                    rows.append(
                        dict(
                            sample_id=f"{patient}_{compartment}_{visit}",
                            patient_id=patient,
                            arm=ARM[patient],
                            compartment=compartment,
                            visit=visit,
                            cycle=cycle,
                            day=day,
                        )
                    )
    return pd.DataFrame(rows)


ALL = ["C1D1", "C1D8", "C2D1", "C5D1"]
SHEET = _sheet(
    {
        "P1": ["C1D1", "C1D8"],  # progressed at 0.5 months (day 15.2): C2D1, C5D1 dropout
        "P2": ["C1D1", "C2D1", "C5D1"],  # on study, C1D8 missed
        "P3": ALL,  # C2D1 excluded at gating
        "P4": ["C1D1"],  # censored (no progression) at 0.2 months: later visits not expected
        # P5: enrolled (patients table), never sampled
        "P6": ["C1D1", "C1D8", "C2D1"],  # not in the patients table: C5D1 missed (unknown PFS)
        "P7": ["C1D1", "C1D8", "C2D1", "C5D1"],  # progressed at 2 months but sampled at C5D1
    }
)
PATIENTS = pd.DataFrame(
    {
        "patient_id": ["P1", "P2", "P3", "P4", "P5", "P7"],
        "arm": [COMBO, COMBO, COMBO, CONTROL, CONTROL, CONTROL],
        "best_response": ["PD", "PR", "SD", "SD", "PD", "PD"],
        "pfs_months": [0.5, 10.0, 8.0, 0.2, 12.0, 2.0],
        "pfs_event": [1, 0, 1, 0, 1, 1],
    }
)
QC = pd.DataFrame(
    {
        "sample_id": list(SHEET["sample_id"]),
        "status": [
            "excluded" if s == "P3_blood_C2D1" else ("flagged" if s == "P2_blood_C1D1" else "ok")
            for s in SHEET["sample_id"]
        ],
        "message": [
            "file has no CD8 channel" if s == "P3_blood_C2D1" else "" for s in SHEET["sample_id"]
        ],
    }
)


def _row(table: pd.DataFrame, compartment: str, visit: str, arm: str) -> dict:
    found = table[
        (table["compartment"] == compartment) & (table["visit"] == visit) & (table["arm"] == arm)
    ]
    assert len(found) == 1
    return found.drop(columns=["compartment", "visit", "arm"]).iloc[0].to_dict()


def test_counts_per_visit_and_arm():
    table = stats.sample_availability(SHEET, PATIENTS, qc=QC, arms=[COMBO, CONTROL])
    assert list(table.columns) == [
        "compartment", "visit", "arm", "expected", "sampled", "missing_progression",
        "missing_other", "excluded",
    ]  # fmt: skip
    # compartments sorted, visits in clinical order, arms in the given order
    assert list(zip(table["compartment"], table["visit"], table["arm"]))[:4] == [
        ("blood", "C1D1", COMBO), ("blood", "C1D1", CONTROL),
        ("blood", "C1D8", COMBO), ("blood", "C1D8", CONTROL),
    ]  # fmt: skip
    assert list(dict.fromkeys(table["visit"])) == ["C1D1", "C1D8", "C2D1", "C5D1"]
    assert table["compartment"].tolist()[-4:] == ["tumor"] * 4
    columns = ["expected", "sampled", "missing_progression", "missing_other", "excluded"]
    assert (table["expected"] == table[columns[1:]].sum(axis=1)).all()

    def counts(compartment, visit, arm):
        return tuple(_row(table, compartment, visit, arm)[c] for c in columns)

    # COMBO: P1, P2, P3; CONTROL: P4, P5 (never sampled), P6 (no PFS data), P7
    assert counts("blood", "C1D1", COMBO) == (3, 3, 0, 0, 0)  # a flagged sample is sampled
    assert counts("blood", "C1D1", CONTROL) == (4, 3, 0, 1, 0)  # P5 missed
    assert counts("blood", "C1D8", COMBO) == (3, 2, 0, 1, 0)  # P2 missed
    assert counts("blood", "C1D8", CONTROL) == (3, 2, 0, 1, 0)  # P4 not expected; P5 missed
    assert counts("blood", "C2D1", COMBO) == (3, 1, 1, 0, 1)  # P1 progressed; P3 excluded
    assert counts("blood", "C2D1", CONTROL) == (3, 2, 0, 1, 0)
    assert counts("blood", "C5D1", COMBO) == (3, 2, 1, 0, 0)
    # P7 progressed (day 61) but was sampled at C5D1 (day 85); P5 missed; P6 missed (no PFS)
    assert counts("blood", "C5D1", CONTROL) == (3, 1, 0, 2, 0)
    assert counts("tumor", "C2D1", COMBO) == (3, 1, 1, 1, 0)  # P1 progressed, P3 missed


def test_listing_gives_each_missing_sample_and_why():
    listing = stats.missing_samples(SHEET, PATIENTS, qc=QC, arms=[COMBO, CONTROL])
    assert list(listing.columns) == [
        "compartment", "visit", "arm", "patient_id", "reason", "sample_id", "message",
    ]  # fmt: skip
    blood = listing[listing["compartment"] == "blood"]
    rows = list(zip(blood["visit"], blood["patient_id"], blood["reason"]))
    assert rows == [
        ("C1D1", "P5", "missed sample"),
        ("C1D8", "P2", "missed sample"),
        ("C1D8", "P5", "missed sample"),
        ("C2D1", "P1", "dropout at progression"),
        ("C2D1", "P3", "excluded sample"),
        ("C2D1", "P5", "missed sample"),
        ("C5D1", "P1", "dropout at progression"),
        ("C5D1", "P5", "missed sample"),
        ("C5D1", "P6", "missed sample"),
    ]
    excluded = blood[blood["reason"] == "excluded sample"].iloc[0]
    assert excluded["sample_id"] == "P3_blood_C2D1"
    assert excluded["message"] == "file has no CD8 channel"
    assert (
        (blood.loc[blood["reason"] != "excluded sample", ["sample_id", "message"]] == "")
        .all()
        .all()
    )
    # counts and listing agree
    table = stats.sample_availability(SHEET, PATIENTS, qc=QC)
    assert len(listing) == table[["missing_progression", "missing_other", "excluded"]].sum().sum()


def test_cycle_length_is_a_setting():
    """With 7-day cycles C2D1 is day 8 and C5D1 day 29: P1 (progressed day 15.2) misses C2D1."""
    listing = stats.missing_samples(SHEET, PATIENTS, qc=QC, cycle_days=7)
    p1 = listing[(listing["patient_id"] == "P1") & (listing["compartment"] == "blood")]
    assert list(zip(p1["visit"], p1["reason"])) == [
        ("C2D1", "missed sample"),
        ("C5D1", "dropout at progression"),
    ]
    assert round(stats.DAYS_PER_MONTH, 4) == 30.4375


def test_without_patients_or_qc():
    """No patients table: the sheet's patients, every absence a missed sample; no QC: sampled."""
    table = stats.sample_availability(SHEET)
    c2d1 = _row(table, "blood", "C2D1", COMBO)
    assert c2d1 == dict(expected=3, sampled=2, missing_progression=0, missing_other=1, excluded=0)
    assert set(table["arm"]) == {COMBO, CONTROL}
    assert table["missing_progression"].sum() == 0 and table["excluded"].sum() == 0


def test_arms_must_agree():
    from cytotrial.errors import SampleSheetError

    patients = PATIENTS.assign(arm=[CONTROL] + list(PATIENTS["arm"][1:]))
    with pytest.raises(SampleSheetError, match="patient P1 is arm 'CONTROL'"):
        stats.sample_availability(SHEET, patients)
