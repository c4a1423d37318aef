"""The sample sheet and the patients table: read, check every row, say every problem at once.

Each problem becomes one line naming the file, the row (as numbered in a spreadsheet: the header is
row 1), the column and what is allowed, so a user can fix the sheet in one pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ..config import load_schema
from ..errors import SampleSheetError

__all__ = [
    "SAMPLE_COLUMNS",
    "read_patients",
    "read_sample_sheet",
    "sheet_problems",
]

SAMPLE_COLUMNS = [
    "sample_id",
    "patient_id",
    "arm",
    "visit",
    "cycle",
    "day",
    "compartment",
    "panel",
    "batch",
    "fcs",
]
_OPTIONAL = ["lymphocytes_per_ul"]
_ROWS_SHOWN = 10  # rows named in one line, at most
# A visit label that says its cycle and day: C1D1, c2d15 (cycle 1 day 1, cycle 2 day 15).
_CYCLE_DAY = re.compile(r"^[Cc](\d+)[Dd](\d+)$")


def _coerce(value: str, types: list[str]) -> str | int | float | None:
    """Turn a TSV cell into the JSON type the schema expects, leaving bad values as text."""
    if value == "":
        return None
    if "integer" in types:
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise SampleSheetError(f"{path}: {what} not found; check the path in config")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    except pd.errors.EmptyDataError:
        raise SampleSheetError(
            f"{path}: {what} is empty; it needs a header row and one row per entry"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise SampleSheetError(
            f"{path}: {what} is not a readable tab-separated table ({reason})"
        ) from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda col: col.str.strip())


def _row_problems(table: pd.DataFrame, schema: dict, label: str) -> tuple[list[str], list[dict]]:
    from jsonschema import Draft202012Validator

    properties = schema["properties"]
    validator = Draft202012Validator({**schema, "required": []})
    problems: list[str] = []
    records: list[dict] = []
    for position, row in enumerate(table.to_dict(orient="records")):
        record = {}
        for column, value in row.items():
            spec = properties.get(column)
            if spec is None:
                record[column] = value
                continue
            types = spec.get("type", "string")
            types = [types] if isinstance(types, str) else list(types)
            record[column] = _coerce(value, types)
        records.append(record)
        for column in schema.get("required", []):
            if column in table.columns and record.get(column) in (None, ""):
                problems.append(
                    f"{label} row {position + 2}: column {column!r} is empty; it is required"
                )
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = error.path[0] if error.path else "?"
            if record.get(column) is None and column in schema.get("required", []):
                continue  # already said: required but empty
            allowed = properties.get(column, {}).get("description", "")
            problems.append(
                f"{label} row {position + 2}: column {column!r} value {row.get(column)!r} is not "
                f"allowed ({error.message}); expected {allowed}".rstrip()
            )
    return problems, records


def sheet_problems(
    table: pd.DataFrame,
    *,
    sheet: Path,
    arms: Iterable[str] | None = None,
    panels: Iterable[str] | None = None,
    check_files: bool = True,
) -> tuple[list[str], pd.DataFrame]:
    """Every problem of a sample sheet (one line each) and the typed table.

    Parameters
    ----------
    table
        The sheet as read (all text).
    sheet
        Its path (for messages and for resolving relative ``fcs`` paths).
    arms, panels
        The allowed arm names and panel names (from the config); ``None`` allows any.
    check_files
        Whether each ``fcs`` file must exist.
    """
    label = str(sheet)
    missing = [c for c in SAMPLE_COLUMNS if c not in table.columns]
    if missing:
        return [
            f"{label}: missing column(s) {', '.join(missing)}; a sample sheet needs "
            f"{', '.join(SAMPLE_COLUMNS)} (+ optional {', '.join(_OPTIONAL)})"
        ], table
    if table.empty:
        return [f"{label}: has a header but no samples"], table
    problems, records = _row_problems(table, load_schema("samples"), label)
    typed = pd.DataFrame.from_records(records, columns=list(table.columns))

    arms = list(arms) if arms is not None else None
    panels = list(panels) if panels is not None else None
    seen: dict[str, int] = {}
    seen_visit: dict[tuple, int] = {}
    for position, row in typed.iterrows():
        line = position + 2
        sid = row["sample_id"]
        if sid in seen:
            problems.append(
                f"{label} row {line}: sample_id {sid!r} repeats row {seen[sid]}; sample_id must be unique"
            )
        else:
            seen[sid] = line
        if arms is not None and row["arm"] and row["arm"] not in arms:
            problems.append(
                f"{label} row {line}: arm {row['arm']!r} is unknown; the arms of config arms: are {', '.join(arms)}"
            )
        if panels is not None and row["panel"] and row["panel"] not in panels:
            problems.append(
                f"{label} row {line}: panel {row['panel']!r} has no gating strategy; config strategies: has {', '.join(panels)}"
            )
        key = (row["patient_id"], row["visit"], row["compartment"], row["panel"])
        if key in seen_visit:
            problems.append(
                f"{label} row {line}: patient {row['patient_id']!r} has two {row['compartment']} samples at "
                f"visit {row['visit']!r} with panel {row['panel']!r} (rows {seen_visit[key]} and {line}); keep one"
            )
        else:
            seen_visit[key] = line
        if check_files and row["fcs"]:
            path = resolve_fcs(row["fcs"], sheet)
            if not path.is_file():
                problems.append(
                    f"{label} row {line}: fcs file {row['fcs']!r} not found (looked at {path})"
                )
    known = typed if arms is None else typed[typed["arm"].isin(arms)]  # unknown arms: said
    patient_arms = known.groupby("patient_id")["arm"].nunique()
    for patient in patient_arms[patient_arms > 1].index:
        problems.append(
            f"{label}: patient {patient!r} appears in more than one arm; a patient belongs to one arm"
        )
    problems += _shared_file_problems(typed, sheet=sheet, label=label)
    problems += _visit_problems(typed, label=label)
    return problems, typed


def _rows(lines: list[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:_ROWS_SHOWN])
    more = f" and {len(lines) - _ROWS_SHOWN} more" if len(lines) > _ROWS_SHOWN else ""
    return f"row{'s' if len(lines) > 1 else ''} {shown}{more}"


def _shared_file_problems(typed: pd.DataFrame, *, sheet: Path, label: str) -> list[str]:
    """Two rows naming one FCS file (the same path once made absolute; links are not followed)."""
    first: dict[str, int] = {}
    problems = []
    for position, value in enumerate(typed["fcs"]):
        if not value:
            continue
        key = os.path.normpath(os.path.abspath(resolve_fcs(str(value), sheet)))
        if key in first:
            problems.append(
                f"{label} row {position + 2}: fcs {value!r} is the file of row {first[key]} too; "
                "each sample has its own FCS file"
            )
        else:
            first[key] = position + 2
    return problems


def _whole(value: object, minimum: int) -> int | None:
    """A cycle or day the schema allows (``minimum``), else ``None`` (its problem is said already)."""
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    return value if valid else None


def _visit_problems(typed: pd.DataFrame, *, label: str) -> list[str]:
    """Visits against their cycle and day.

    One (cycle, day) per visit label, one label per (cycle, day) in a compartment, and a label of
    the form C<n>D<m> with the cycle and day it says.
    """
    pairs: dict[str, dict[tuple[int, int], list[int]]] = {}
    times: dict[tuple[str, int, int], dict[str, list[int]]] = {}
    columns = load_schema("samples")["properties"]
    least = {column: columns[column].get("minimum", 0) for column in ("cycle", "day")}
    for position, row in enumerate(typed[["visit", "cycle", "day", "compartment"]].itertuples()):
        cycle, day = _whole(row.cycle, least["cycle"]), _whole(row.day, least["day"])
        if not row.visit or cycle is None or day is None:
            continue  # said already
        pairs.setdefault(row.visit, {}).setdefault((cycle, day), []).append(position + 2)
        times.setdefault((row.compartment, cycle, day), {}).setdefault(row.visit, []).append(
            position + 2
        )
    problems = []
    contradicted: set[tuple[str, int, int]] = set()
    for visit, found in pairs.items():
        match = _CYCLE_DAY.match(visit)
        if match is None:
            if len(found) > 1:
                said = "; ".join(
                    f"cycle {c} day {d} in {_rows(ln)}" for (c, d), ln in found.items()
                )
                problems.append(
                    f"{label}: visit {visit!r} has more than one cycle and day ({said}); give "
                    "each visit label one cycle and day"
                )
            continue
        named = (int(match.group(1)), int(match.group(2)))
        for (cycle, day), lines in found.items():
            if (cycle, day) != named:
                contradicted.add((visit, cycle, day))
                problems.append(
                    f"{label} {_rows(lines)}: visit {visit!r} says cycle {named[0]} day "
                    f"{named[1]} but the row has cycle {cycle} day {day}; fix cycle and day "
                    "or the visit label"
                )
    for (compartment, cycle, day), labels in times.items():
        labels = {v: ln for v, ln in labels.items() if (v, cycle, day) not in contradicted}
        if len(labels) > 1:
            said = ", ".join(f"{v!r} ({_rows(lines)})" for v, lines in labels.items())
            problems.append(
                f"{label}: visits {said} of compartment {compartment!r} are all cycle {cycle} day "
                f"{day}; the visit order needs each visit at its own cycle and day"
            )
    return problems


def resolve_fcs(value: str, sheet: Path) -> Path:
    """The FCS path of a sheet row: absolute, or relative to the sheet's folder."""
    path = Path(value)
    return path if path.is_absolute() else Path(sheet).parent / path


def read_sample_sheet(
    path: str | Path,
    *,
    arms: Iterable[str] | None = None,
    panels: Iterable[str] | None = None,
    check_files: bool = True,
) -> pd.DataFrame:
    """Read and check a sample sheet; the returned table has typed columns and absolute ``fcs`` paths.

    Raises
    ------
    SampleSheetError
        With every problem found, one per line.
    """
    path = Path(path)
    table = _read_table(path, "sample sheet")
    problems, typed = sheet_problems(
        table, sheet=path, arms=arms, panels=panels, check_files=check_files
    )
    if problems:
        raise SampleSheetError("\n".join(problems))
    typed["cycle"] = typed["cycle"].astype(int)
    typed["day"] = typed["day"].astype(int)
    if "lymphocytes_per_ul" not in typed.columns:
        typed["lymphocytes_per_ul"] = float("nan")
    typed["lymphocytes_per_ul"] = pd.to_numeric(
        typed["lymphocytes_per_ul"], errors="coerce"
    ).astype(float)
    typed["fcs"] = [str(resolve_fcs(v, path).resolve()) for v in typed["fcs"]]
    return typed.set_index("sample_id", drop=False).rename_axis(None)


def read_patients(path: str | Path, *, arms: Mapping | Iterable[str] | None = None) -> pd.DataFrame:
    """Read and check the optional patients table (clinical outcome)."""
    path = Path(path)
    table = _read_table(path, "patients table")
    schema = load_schema("patients")
    missing = [c for c in schema["required"] if c not in table.columns]
    if missing:
        raise SampleSheetError(
            f"{path}: missing column(s) {', '.join(missing)}; needs {', '.join(schema['required'])}"
        )
    problems, records = _row_problems(table, schema, str(path))
    typed = pd.DataFrame.from_records(records, columns=list(table.columns))
    dup = typed["patient_id"][typed["patient_id"].duplicated()]
    problems += [f"{path}: patient_id {p!r} appears more than once" for p in dup]
    if arms is not None:
        allowed = list(arms)
        problems += [
            f"{path} row {i + 2}: arm {a!r} is unknown; the arms of config arms: are {', '.join(allowed)}"
            for i, a in enumerate(typed["arm"])
            if a not in allowed
        ]
    if problems:
        raise SampleSheetError("\n".join(problems))
    return typed
