"""The sample sheet check: one clear line per problem, naming row, column and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cytotrial.errors import SampleSheetError
from cytotrial.io import SAMPLE_COLUMNS, read_patients, read_sample_sheet, schema_path

ARMS = ["BEMPEG+NIVO", "NIVO"]
PANELS = ["blood", "tumor"]


def _sheet(tmp_path, rows, *, drop=None, files=True):
    (tmp_path / "fcs").mkdir(exist_ok=True)
    table = pd.DataFrame(rows)
    if files:
        for name in table["fcs"]:
            (tmp_path / name).write_bytes(b"FCS3.1")
    if drop:
        table = table.drop(columns=drop)
    path = tmp_path / "samples.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


def _row(sample_id="P001_C1D1_blood", **kw):
    row = {
        "sample_id": sample_id,
        "patient_id": "P001",
        "arm": "NIVO",
        "visit": "C1D1",
        "cycle": 1,
        "day": 1,
        "compartment": "blood",
        "panel": "blood",
        "batch": "B1",
        "fcs": f"fcs/{sample_id}.fcs",
        "lymphocytes_per_ul": 1500,
    }
    row.update(kw)
    return row


def test_good_sheet_is_typed_with_absolute_paths(tmp_path):
    path = _sheet(tmp_path, [_row(), _row("P001_C1D8_blood", visit="C1D8", day=8)])
    table = read_sample_sheet(path, arms=ARMS, panels=PANELS)
    assert list(table.columns[: len(SAMPLE_COLUMNS)]) == SAMPLE_COLUMNS
    assert table["cycle"].dtype.kind == "i" and table["day"].tolist() == [1, 8]
    assert table["lymphocytes_per_ul"].tolist() == [1500.0, 1500.0]
    assert all(p.startswith(str(tmp_path.resolve())) for p in table["fcs"])


def test_missing_column_is_named(tmp_path):
    path = _sheet(tmp_path, [_row()], drop=["arm"])
    with pytest.raises(SampleSheetError) as info:
        read_sample_sheet(path, arms=ARMS, panels=PANELS)
    message = str(info.value)
    assert "missing column(s) arm" in message and "samples.tsv" in message
    assert len(message.splitlines()) == 1


def test_unknown_arm_names_row_and_allowed(tmp_path):
    path = _sheet(tmp_path, [_row(), _row("P002_C1D1_blood", patient_id="P002", arm="PLACEBO")])
    with pytest.raises(SampleSheetError) as info:
        read_sample_sheet(path, arms=ARMS, panels=PANELS)
    (line,) = str(info.value).splitlines()
    assert "row 3" in line and "'PLACEBO'" in line and "BEMPEG+NIVO, NIVO" in line


def test_duplicate_sample_id(tmp_path):
    path = _sheet(tmp_path, [_row(), _row(visit="C1D8", day=8)])
    with pytest.raises(SampleSheetError) as info:
        read_sample_sheet(path, arms=ARMS, panels=PANELS)
    assert "row 3: sample_id 'P001_C1D1_blood' repeats row 2" in str(info.value)


def test_missing_file(tmp_path):
    path = _sheet(tmp_path, [_row()], files=False)
    with pytest.raises(SampleSheetError) as info:
        read_sample_sheet(path, arms=ARMS, panels=PANELS)
    assert "row 2: fcs file 'fcs/P001_C1D1_blood.fcs' not found" in str(info.value)


def test_bad_values_each_get_a_line(tmp_path):
    rows = [
        _row(cycle="one"),
        _row("P002_C1D1_blood", patient_id="P002", compartment="", panel="bone"),
        _row("P003_C1D1_blood", patient_id="P003", lymphocytes_per_ul=-5),
    ]
    path = _sheet(tmp_path, rows)
    with pytest.raises(SampleSheetError) as info:
        read_sample_sheet(path, arms=ARMS, panels=PANELS)
    lines = str(info.value).splitlines()
    assert any("row 2" in l and "'cycle'" in l for l in lines)
    assert any("row 3" in l and "'compartment'" in l for l in lines)
    assert any("row 3" in l and "panel 'bone' has no gating strategy" in l for l in lines)
    assert any("row 4" in l and "'lymphocytes_per_ul'" in l for l in lines)


def test_patient_in_two_arms_and_repeated_visit(tmp_path):
    rows = [_row(), _row("P001_C1D1_blood_b", arm="BEMPEG+NIVO")]
    path = _sheet(tmp_path, rows)
    with pytest.raises(SampleSheetError) as info:
        read_sample_sheet(path, arms=ARMS, panels=PANELS)
    message = str(info.value)
    assert "more than one arm" in message and "two blood samples at visit 'C1D1'" in message


def test_patients_table_checks_response(tmp_path):
    path = tmp_path / "patients.tsv"
    pd.DataFrame(
        {"patient_id": ["P001", "P002"], "arm": ["NIVO", "NIVO"], "best_response": ["PR", "XR"]}
    ).to_csv(path, sep="\t", index=False)
    with pytest.raises(SampleSheetError) as info:
        read_patients(path, arms=ARMS)
    assert "row 3" in str(info.value) and "'best_response'" in str(info.value)


def test_schemas_are_package_data():
    from importlib.resources import files

    for name in ("samples", "patients", "config"):
        path = schema_path(name)
        assert path.is_file() and path.name == f"{name}.schema.yaml"
        assert path == Path(str(files("cytotrial") / "schemas" / f"{name}.schema.yaml"))


def test_compartments_are_free_labels(tmp_path):
    rows = [
        _row(compartment="bone marrow"),
        _row("P002_C1D1_ln", patient_id="P002", compartment="lymph node"),
    ]
    table = read_sample_sheet(_sheet(tmp_path, rows), arms=ARMS, panels=PANELS)
    assert set(table["compartment"]) == {"bone marrow", "lymph node"}
