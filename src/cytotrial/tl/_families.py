"""Declared multiplicity: which family each q-value belongs to, and q computed within it.

Every table with p-values has a ``family`` column beside ``q_value``:

``primary:<compartment>``
    The MMRM arm difference (``<arm> - <reference>``) at each on-treatment visit of the primary
    features (``analysis.primary.populations``), corrected by ``analysis.primary.correction``
    (Holm by default) within each compartment.
``secondary:<table>[:<compartment>]``
    Every other test: Benjamini-Hochberg within the family only.
``estimate``
    Estimates with intervals that answer no declared question (within-arm changes, adjusted
    means, covariates of a model, Kaplan-Meier splits): ``q_value`` is empty and nothing is
    starred; the p-value, where there is one, is descriptive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "CORRECTIONS",
    "ESTIMATE",
    "adjust",
    "interval_notes",
    "mmrm_families",
    "secondary_families",
    "with_family_columns",
]

#: ``analysis.primary.correction`` values -> statsmodels ``multipletests`` method.
CORRECTIONS: dict[str, str] = {"holm": "holm", "bonferroni": "bonferroni", "bh": "fdr_bh"}
#: The ``family`` of a row reported as an estimate (no q-value).
ESTIMATE = "estimate"
#: The primary family's name prefix.
PRIMARY = "primary"


def adjust(p_values: Sequence[float] | np.ndarray, correction: str = "bh") -> np.ndarray:
    """Adjusted p-values (q-values) of one family; NaN p-values stay NaN and do not count.

    Parameters
    ----------
    p_values
        Raw p-values of one family.
    correction
        ``holm``, ``bonferroni`` or ``bh`` (Benjamini-Hochberg).
    """
    from statsmodels.stats.multitest import multipletests

    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose from {list(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method=CORRECTIONS[correction])[1]
    return q


def with_family_columns(columns: Sequence[str], *, p_column: str = "p_value") -> list[str]:
    """``columns`` with ``q_value`` (if absent) and ``family`` right after ``p_column``."""
    out = [c for c in columns if c not in ("q_value", "family")]
    at = out.index(p_column) + 1
    return out[:at] + ["q_value", "family"] + out[at:]


def _apply(
    table: pd.DataFrame,
    family: pd.Series,
    *,
    p_column: str = "p_value",
    corrections: dict[str, str] | None = None,
) -> pd.DataFrame:
    """``table`` with ``family`` and ``q_value`` computed within each family (none: estimate)."""
    corrections = corrections or {}
    out = table.copy()
    family = family.astype(object).to_numpy()
    q = np.full(len(out), np.nan)
    p = out[p_column].to_numpy(dtype=float) if len(out) else np.zeros(0)
    for name in dict.fromkeys(family):
        if name == ESTIMATE:
            continue
        rows = family == name
        q[rows] = adjust(p[rows], corrections.get(name, "bh"))
    out["q_value"] = q
    out["family"] = family
    return out[with_family_columns(list(table.columns), p_column=p_column)]


def secondary_families(
    name: str,
    table: pd.DataFrame,
    *,
    by_compartment: bool = False,
    estimate: pd.Series | np.ndarray | None = None,
    p_column: str = "p_value",
) -> pd.DataFrame:
    """Every tested row of table ``name`` in ``secondary:<name>[:<compartment>]`` (BH).

    Parameters
    ----------
    name
        The table's name (part of the family's name).
    table
        The table, with a ``p_value`` column (or ``p_column``).
    by_compartment
        One family per compartment.
    estimate
        Boolean mask of the rows reported as estimates (family ``estimate``, no q-value).
    p_column
        The p-value column.
    """
    family = pd.Series(f"secondary:{name}", index=table.index, dtype=object)
    if by_compartment and len(table):
        family = family + ":" + table["compartment"].astype(str)
    if estimate is not None:
        family[np.asarray(estimate, dtype=bool)] = ESTIMATE
    return _apply(table, family, p_column=p_column)


def mmrm_families(
    table: pd.DataFrame,
    *,
    reference_arm: str,
    primary_populations: Sequence[str],
    correction: str,
) -> pd.DataFrame:
    """The MMRM table's families: primary, secondary arm differences, adjusted means.

    Parameters
    ----------
    table
        Output of :func:`mmrm_models`.
    reference_arm
        Arm differences are the contrasts ``<arm> - <reference_arm>``.
    primary_populations
        The primary features.
    correction
        The primary family's correction (``holm``, ``bonferroni``, ``bh``).
    """
    difference = table["contrast"].astype(str).str.endswith(f" - {reference_arm}")
    primary = difference & table["population"].isin(list(primary_populations))
    compartment = table["compartment"].astype(str)
    family = pd.Series(ESTIMATE, index=table.index, dtype=object)
    family[difference] = "secondary:mmrm:" + compartment[difference]
    family[primary] = f"{PRIMARY}:" + compartment[primary]
    names = set(family[primary])
    return _apply(table, family, corrections=dict.fromkeys(names, correction))


def interval_notes(
    table: pd.DataFrame, n: pd.Series | np.ndarray, *, alpha: float, note: pd.Series | None = None
) -> pd.Series:
    """A ``note`` per row: why a row with a p-value has no interval (else the old note or "").

    Parameters
    ----------
    table
        With ``p_value``, ``ci_low`` and ``ci_high``.
    n
        The values behind each row's test (its size, said in the note).
    alpha
        The interval's level is ``1 - alpha``.
    note
        Existing notes, kept (the reason appended).
    """
    old = (
        pd.Series("", index=table.index, dtype=object)
        if note is None
        else note.fillna("").astype(str)
    )
    if table.empty:
        return old
    p = table["p_value"].to_numpy(dtype=float)
    ci = table[["ci_low", "ci_high"]].to_numpy(dtype=float)
    missing = np.isfinite(p) & ~np.isfinite(ci).all(axis=1)
    sizes = np.asarray(n)
    out = old.copy()
    for i in np.flatnonzero(missing):
        reason = (
            f"n = {sizes[i]}: too few values for an exact {1 - alpha:.0%} interval "
            "(the p-value is reported; no interval exists at this level)"
        )
        out.iloc[i] = "; ".join(filter(None, [old.iloc[i], reason]))
    return out
