"""The sample sheet and the patients table, each on its own and against the config and each other."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..errors import SampleSheetError
from ._figures import figure_problems
from ._strategies import located

__all__ = ["input_findings"]


def _lines(error: BaseException) -> list[str]:
    return [line for line in str(error).splitlines() if line.strip()]


def _sheet(config: Mapping, path: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """The typed sheet (for the checks against it) and its problems.

    A sheet whose only problems are arms, panels or files is still typed, so the checks against
    it run as well.
    """
    from ..io import read_sample_sheet

    try:
        return read_sample_sheet(
            path, arms=list(config["arms"]), panels=list(config["strategies"])
        ), []
    except SampleSheetError as error:
        problems = _lines(error)
    try:
        return read_sample_sheet(path, check_files=False), problems
    except SampleSheetError:
        return None, problems


def _visit_orders(sheet: pd.DataFrame) -> dict[str, list[str]]:
    """Compartment -> its visits in clinical order (cycle, day)."""
    pairs = sheet[["compartment", "visit", "cycle", "day"]].drop_duplicates()
    pairs = pairs.sort_values(["compartment", "cycle", "day", "visit"])
    return {
        str(compartment): list(dict.fromkeys(rows["visit"]))
        for compartment, rows in pairs.groupby("compartment", sort=True)
    }


def _baseline_problems(analysis: Mapping, orders: Mapping[str, list[str]]) -> list[str]:
    """The baseline visit of each compartment is one of its visits; keys name compartments."""
    given = analysis["baseline_visit"]
    compartments = ", ".join(orders)
    problems = []
    if isinstance(given, Mapping):
        for compartment, visit in given.items():
            if compartment not in orders:
                problems.append(
                    f"config analysis.baseline_visit.{compartment}: {compartment!r} is no "
                    f"compartment of the sample sheet (compartments: {compartments})"
                )
            elif visit not in orders[compartment]:
                problems.append(
                    f"config analysis.baseline_visit.{compartment}: {visit!r} is no {compartment} "
                    f"sample's visit ({compartment} visits: {', '.join(orders[compartment])})"
                )
        return problems
    for compartment, visits in orders.items():
        if given and given not in visits:
            problems.append(
                f"config analysis.baseline_visit: {given!r} is no {compartment} sample's visit "
                f"({compartment} visits: {', '.join(visits)}); give {compartment} its own "
                f"baseline, e.g. baseline_visit: {{{compartment}: {visits[0]}}}"
            )
    return problems


def _baselines(analysis: Mapping, orders: Mapping[str, list[str]]) -> dict[str, str]:
    given = analysis["baseline_visit"]
    out = {}
    for compartment, visits in orders.items():
        chosen = given.get(compartment, "") if isinstance(given, Mapping) else given
        out[compartment] = chosen or visits[0]
    return out


def _analysis_problems(config: Mapping, sheet: pd.DataFrame) -> list[str]:
    """Compartments, visits and arms the ``analysis:`` section names, against the sheet."""
    analysis = config["analysis"]
    orders = _visit_orders(sheet)
    problems = _baseline_problems(analysis, orders)
    for compartment, measure in analysis["measure"].items():
        if compartment not in orders:
            problems.append(
                f"config analysis.measure.{compartment}: {compartment!r} is no compartment of "
                f"the sample sheet (compartments: {', '.join(orders)})"
            )
            continue
        rows = sheet[sheet["compartment"] == compartment]
        if measure == "per_ul" and rows["lymphocytes_per_ul"].isna().all():
            problems.append(
                f"config analysis.measure.{compartment}: per_ul needs lymphocytes_per_ul, which "
                f"no {compartment} sample of the sheet has; add the column or use another measure"
            )
    response = analysis["response_visit"]
    baselines = _baselines(analysis, orders)
    if response and not any(response in visits for visits in orders.values()):
        problems.append(
            f"config analysis.response_visit: {response!r} is no sample's visit (visits: "
            f"{', '.join(dict.fromkeys(v for vs in orders.values() for v in vs))})"
        )
    for compartment, visits in orders.items():
        base = baselines[compartment]
        if response in visits and base in visits and visits.index(response) <= visits.index(base):
            problems.append(
                f"config analysis.response_visit: {response!r} is not after the {compartment} "
                f"baseline {base!r}; the response visit is an on-treatment visit"
            )
    arms = list(config["arms"])
    present = sorted(set(sheet["arm"]) & set(arms))
    chosen = analysis["reference_arm"] or arms[-1]
    if len(present) > 1 and chosen in arms and chosen not in present:
        key = "analysis.reference_arm" if analysis["reference_arm"] else "arms (its last arm)"
        problems.append(
            f"config {key}: the reference arm {chosen!r} has no samples in the sheet (arms with "
            f"samples: {', '.join(present)}); set analysis.reference_arm to one of them"
        )
    return problems


def _patient_findings(
    patients: pd.DataFrame, sheet: pd.DataFrame, *, label: str, sheet_label: str
) -> tuple[list[str], list[str]]:
    """Arms that disagree (errors); patients on one side only (warnings), in both directions."""
    sampled = sheet.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    rows = {p: i + 2 for i, p in enumerate(patients["patient_id"])}
    clinical = patients.set_index("patient_id")["arm"]
    errors = [
        f"{label} row {rows[p]}: patient {p!r} is arm {clinical[p]!r} here but {sampled[p]!r} in "
        f"{sheet_label}; make them agree"
        for p in sorted(set(sampled.index) & set(clinical.index))
        if clinical[p] != sampled[p]
    ]
    warnings = [
        f"{label}: patient {p!r} has samples in {sheet_label} but no row here: left out of the "
        "response rate and the responder and survival tables; add a row (an empty best_response "
        "counts as NE, not evaluable)"
        for p in sorted(set(sampled.index) - set(clinical.index))
    ]
    warnings += [
        f"{label} row {rows[p]}: patient {p!r} has no samples in {sheet_label}: counted in the "
        "response rate, absent from every table of samples"
        for p in sorted(set(clinical.index) - set(sampled.index), key=rows.get)
    ]
    return errors, warnings


def input_findings(
    config: Mapping, *, base: Path
) -> tuple[list[str], list[str], pd.DataFrame | None]:
    """Every problem of the sample sheet and the patients table, the warnings, the typed sheet.

    Parameters
    ----------
    config
        The resolved config (:func:`cytotrial.config.diagnose_config`).
    base
        Folder relative paths in config are relative to.

    Returns
    -------
    tuple
        Errors and warnings, one line each; the sheet as read (typed), or ``None`` when it could
        not be read.
    """
    from ..io import read_patients

    sheet_label = str(config["samples"])
    sheet, errors = _sheet(config, located(config["samples"], base))
    if sheet is not None:
        errors += _analysis_problems(config, sheet)
        errors += figure_problems(config, sheet)
    warnings: list[str] = []
    if not config["patients"]:
        return errors, warnings, sheet
    label = str(config["patients"])
    try:
        patients = read_patients(located(label, base), arms=list(config["arms"]))
    except SampleSheetError as error:
        return errors + _lines(error), warnings, sheet
    if sheet is not None:
        found, warnings = _patient_findings(patients, sheet, label=label, sheet_label=sheet_label)
        errors += found
    return errors, warnings, sheet
