"""The sample sheet and the patients table: read, check every row, say every problem at once.

Each problem becomes one line naming the file, the row (as numbered in a spreadsheet: the header is
row 1), the column and what is allowed, so a user can fix the sheet in one pass.
"""

from __future__ import annotations

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
                f"{label} row {line}: arm {row['arm']!r} is unknown; config arms: are {', '.join(arms)}"
            )
        if panels is not None and row["panel"] and row["panel"] not in panels:
            problems.append(
                f"{label} row {line}: panel {row['panel']!r} has no gating strategy; config gating: has {', '.join(panels)}"
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
    patient_arms = typed.groupby("patient_id")["arm"].nunique()
    for patient in patient_arms[patient_arms > 1].index:
        problems.append(
            f"{label}: patient {patient!r} appears in more than one arm; a patient belongs to one arm"
        )
    return problems, typed


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
            f"{path} row {i + 2}: arm {a!r} is unknown; config arms: are {', '.join(allowed)}"
            for i, a in enumerate(typed["arm"])
            if a not in allowed
        ]
    if problems:
        raise SampleSheetError("\n".join(problems))
    return typed
