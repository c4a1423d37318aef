"""The outcome link: the patients table, objective response rates and the early change in responders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import SampleSheetError
from ._families import ESTIMATE, interval_notes, secondary_families
from ._rank import _rank_sum_p, hodges_lehmann_shift_ci

__all__ = ["RESPONSE_CATEGORIES", "read_patients", "response_table"]

#: Allowed ``best_response`` values (RECIST); ``NE`` = not evaluable (also used for a blank cell).
RESPONSE_CATEGORIES: tuple[str, ...] = ("CR", "PR", "SD", "PD", "NE")
_RESPONDERS = ("CR", "PR")

_RESPONSE_COLUMNS = [
    "analysis", "arm", "compartment", "population", "visit", "n", "n_responders",
    "n_non_responders", "median_log2fc_responders", "median_log2fc_non_responders",
    "estimate", "ci_low", "ci_high", "p_value", "q_value", "family", "note",
]  # fmt: skip


def read_patients(path: str | Path) -> pd.DataFrame:
    """Read and check the clinical table ``patients.tsv`` (see :func:`cytotrial.io.read_patients`).

    ``best_response`` is one of CR, PR, SD, PD or NE; a blank cell counts as NE (not evaluable).

    Raises
    ------
    SampleSheetError
        Unreadable file, missing column, repeated patient or a bad value (names the row).
    """
    from ..io import read_patients as read_checked

    table = read_checked(path)
    table["best_response"] = table["best_response"].fillna("NE").astype(str)
    return table


def response_table(
    log2fc: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    response_visit: str,
    alpha: float,
    arms: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Objective response rate per arm and early change in responders versus non-responders.

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes`.
    patients
        Output of :func:`read_patients`.
    response_visit
        Visit whose change from baseline is compared between responders and non-responders.
    alpha
        Level of the intervals (``1 - alpha``).
    arms
        Arm order (default: sorted); arms not listed have no rows.

    Returns
    -------
    pandas.DataFrame
        One tidy table, ``analysis`` telling the row kind. Columns ``analysis, arm, compartment,
        population, visit, n, n_responders, n_non_responders, median_log2fc_responders,
        median_log2fc_non_responders, estimate, ci_low, ci_high, p_value, q_value, family,
        note``.

        ``objective_response_rate`` rows: per arm of ``patients``, responders (CR/PR) over all
        listed patients (NE counted as non-responder), Clopper-Pearson interval; no test
        (``family`` ``estimate``). ``early_change`` rows: within each arm (no pooled rows: the
        arms differ in response rate, so pooling confounds response with arm; the arm-adjusted
        analysis is the ``responders`` table), per compartment and feature (``population``), the
        log2 fold change at ``response_visit`` in responders (CR/PR) minus non-responders
        (SD/PD; NE left out): Hodges-Lehmann shift, exact interval, two-sided Mann-Whitney p;
        q-values Benjamini-Hochberg within the family ``secondary:response``. ``note`` says why
        a row with a p-value has no interval.

    Raises
    ------
    SampleSheetError
        A patient's arm in ``patients`` differs from the sample sheet.
    """
    clinical = patients.set_index("patient_id")
    _check_arms_agree(log2fc, clinical)
    arm_order = (
        list(arms) if arms is not None else sorted(set(patients["arm"]) | set(log2fc["arm"]))
    )
    orr_rows = _response_rate_rows(patients, arm_order, alpha=alpha)
    change_rows = _early_change_rows(
        log2fc, clinical, arm_order, response_visit=response_visit, alpha=alpha
    )
    change = pd.DataFrame(change_rows, columns=_RESPONSE_COLUMNS)
    change["note"] = interval_notes(change, change["n"].to_numpy(), alpha=alpha)
    change = secondary_families("response", change)
    rates = pd.DataFrame(orr_rows, columns=_RESPONSE_COLUMNS)
    rates["family"], rates["note"] = ESTIMATE, ""
    parts = [rates]
    if change_rows:  # pandas deprecates concatenating an empty frame (its dtypes would count)
        parts.append(change)
    table = pd.concat(parts, ignore_index=True)
    for col in ("compartment", "population", "visit"):
        table[col] = table[col].fillna("")
    for col in ("n", "n_responders", "n_non_responders"):
        table[col] = table[col].astype(int)
    return table[_RESPONSE_COLUMNS]


def _check_arms_agree(log2fc: pd.DataFrame, clinical: pd.DataFrame) -> None:
    """Each patient is in the same arm in the patients table as in the sample sheet."""
    sample_arms = log2fc.drop_duplicates("patient_id").set_index("patient_id")["arm"]
    both = sample_arms.index.intersection(clinical.index)
    differ = [p for p in both if clinical.loc[p, "arm"] != sample_arms.loc[p]]
    if differ:
        p = sorted(differ)[0]
        raise SampleSheetError(
            f"patient {p} is arm {clinical.loc[p, 'arm']!r} in patients.tsv but "
            f"{sample_arms.loc[p]!r} in samples.tsv; make them agree"
        )


def _response_rate_rows(
    patients: pd.DataFrame, arm_order: Sequence[str], *, alpha: float
) -> list[dict]:
    """Per arm: responders (CR/PR) over all listed patients, with a Clopper-Pearson interval."""
    rows = []
    for arm in arm_order:
        group = patients[patients["arm"] == arm]
        n = len(group)
        if n == 0:
            continue
        k = int(group["best_response"].isin(_RESPONDERS).sum())
        ci = sps.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
        rows.append(
            dict(
                analysis="objective_response_rate",
                arm=arm,
                n=n,
                n_responders=k,
                n_non_responders=n - k,
                estimate=k / n,
                ci_low=float(ci.low),
                ci_high=float(ci.high),
                p_value=math.nan,
                q_value=math.nan,
            )
        )
    return rows


def _early_change_rows(
    log2fc: pd.DataFrame,
    clinical: pd.DataFrame,
    arm_order: Sequence[str],
    *,
    response_visit: str,
    alpha: float,
) -> list[dict]:
    """Responders minus non-responders in the log2 fold change at the response visit."""
    status = clinical["best_response"].map(
        lambda r: (
            "responder" if r in _RESPONDERS else ("non_responder" if r in ("SD", "PD") else "")
        )
    )
    early = log2fc[log2fc["visit"] == response_visit].copy()
    early["status"] = early["patient_id"].map(status).fillna("")
    early = early[early["status"] != ""]
    rows = []
    for population in dict.fromkeys(log2fc["population"]):
        for compartment in sorted(set(early["compartment"])):
            cell = early[
                (early["population"] == population) & (early["compartment"] == compartment)
            ]
            if cell.empty:
                continue
            for arm in arm_order:
                group = cell[cell["arm"] == arm]
                r = group.loc[group["status"] == "responder", "log2fc"].to_numpy(dtype=float)
                nr = group.loc[group["status"] == "non_responder", "log2fc"].to_numpy(dtype=float)
                if len(r) + len(nr) == 0:
                    continue
                where = dict(arm=arm, compartment=compartment, population=population)
                rows.append(_early_change_row(r, nr, where, visit=response_visit, alpha=alpha))
    return rows


def _early_change_row(
    r: np.ndarray, nr: np.ndarray, where: dict, *, visit: str, alpha: float
) -> dict:
    """One ``early_change`` row: Hodges-Lehmann shift of responders ``r`` minus ``nr``, and p."""
    estimate, low, high = hodges_lehmann_shift_ci(r, nr, alpha=alpha)
    return dict(
        analysis="early_change",
        **where,
        visit=visit,
        n=len(r) + len(nr),
        n_responders=len(r),
        n_non_responders=len(nr),
        median_log2fc_responders=float(np.median(r)) if len(r) else math.nan,
        median_log2fc_non_responders=float(np.median(nr)) if len(nr) else math.nan,
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_value=_rank_sum_p(r, nr),
    )
