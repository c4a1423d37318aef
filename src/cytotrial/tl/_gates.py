"""Gate QC: where each adaptive gate went in every sample, and which positions are outliers.

Every adaptive boundary has one position per sample (the gating's gate positions tables). Within
an acquisition batch, samples share instrument and reagents, so their positions should agree: a
sample whose position lies far from its batch's median is an outlier. Between batches, positions
drift with instruments and reagent lots (which is why the gates adapt): a batch whose median lies
far from the other batches' is an outlier batch, and every sample of it is flagged. "Far" is
robust: more than :data:`OUTLIER_MADS` scaled median absolute deviations (MAD x 1.4826) of the
deviations of the boundary, and at least :data:`MIN_SPREAD` of the range the boundary may take
(so a boundary that barely moves does not flag tiny differences).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..gating import GATE_POSITION_COLUMNS

__all__ = [
    "GATE_COLUMNS",
    "MIN_SPREAD",
    "OUTLIER_MADS",
    "gate_flags",
    "gate_positions_table",
    "gate_positions_wide",
]

#: A position this many robust standard deviations from its reference is an outlier.
OUTLIER_MADS = 5.0
#: The robust standard deviation is at least this fraction of the boundary's range (lo .. hi).
MIN_SPREAD = 0.05
_MIN_BATCH = 5  # a batch needs this many adapted samples for within-batch outliers
_MIN_BATCHES = 3  # and a boundary this many batches for outlier batches
_MAD_SCALE = 1.4826
_KEYS = ["panel", "gate_path", "dimension", "bound"]
#: The columns of the gating's gate positions tables (one row per sample and boundary).
GATE_COLUMNS = list(GATE_POSITION_COLUMNS)


def _flag_name(name: str) -> str:
    """A gate name fit for comma-separated ``qc_flags`` (as the gating writes its flags)."""
    return " ".join(str(name).replace(",", " ").split())


def _robust_sd(deviations: np.ndarray, floor: float) -> float:
    deviations = deviations[np.isfinite(deviations)]
    mad = float(np.median(np.abs(deviations))) if deviations.size else 0.0
    return max(_MAD_SCALE * mad, floor, 1e-300)


def _boundary_outliers(group: pd.DataFrame) -> pd.DataFrame:
    """Robust z within batch and of the batch, for one boundary's rows."""
    floor = MIN_SPREAD * float((group["hi"] - group["lo"]).abs().max())
    is_adapted = group["status"] == "adapted"
    adapted = group[is_adapted]
    sizes = group["batch"].map(adapted.groupby("batch").size()).fillna(0)
    medians = adapted.groupby("batch")["position"].median()
    batch_median = group["batch"].map(medians)
    deviation = group["position"] - batch_median
    enough = sizes >= _MIN_BATCH
    sd = _robust_sd(deviation[enough & is_adapted].to_numpy(), floor)
    batch_z = pd.Series(np.nan, index=group.index)
    if medians.size >= _MIN_BATCHES:
        spread = medians - float(medians.median())
        batch_z = group["batch"].map(spread / _robust_sd(spread.to_numpy(), floor))
    return pd.DataFrame(
        {
            "batch_median": batch_median,
            "robust_z": (deviation / sd).where(enough),
            "batch_robust_z": batch_z,
        },
        index=group.index,
    )


def gate_positions_table(
    positions: pd.DataFrame, sheet: pd.DataFrame, *, by: Sequence[str] = ("site",)
) -> pd.DataFrame:
    """Every sample's adaptive gate positions with their batch, robust scores and outlier flag.

    Parameters
    ----------
    positions
        The gating's gate positions tables, concatenated (``cytotrial.gating.GATE_POSITION_COLUMNS``).
    sheet
        The checked sample sheet (index = sample_id) with ``panel`` and ``batch``; samples not
        in it are dropped.
    by
        Further sheet columns copied into the table where the sheet has them (e.g. ``site``).

    Returns
    -------
    pandas.DataFrame
        The positions with ``panel``, ``batch`` (and ``by`` columns), ``acquisition_order`` (the
        sample's rank by batch, then sheet order: batches are acquired in their name's order),
        ``batch_median`` (of the batch's adapted positions), ``robust_z`` (distance from it in
        robust standard deviations; NA where the batch has too few samples), ``batch_robust_z``
        (the batch median's, among the boundary's batches; NA with fewer than three batches) and
        ``outlier`` (either beyond :data:`OUTLIER_MADS`), sorted by boundary then order.
    """
    table = positions.copy()
    table = table[table["sample_id"].astype(str).isin(set(sheet.index.astype(str)))]
    sheet = sheet.copy()
    sheet.index = sheet.index.astype(str)
    batches = sheet["batch"].astype(str).to_numpy()
    order = sheet.index[np.argsort(batches, kind="stable")]
    rank = pd.Series(np.arange(1, len(order) + 1), index=order)
    table["sample_id"] = table["sample_id"].astype(str)
    extra = [c for c in ("panel", "batch", *by) if c in sheet.columns]
    for column in extra:
        table[column] = table["sample_id"].map(sheet[column].astype(str))
    table["acquisition_order"] = table["sample_id"].map(rank).astype("int64")
    scores = [_boundary_outliers(group) for _, group in table.groupby(_KEYS, sort=False)]
    if scores:
        table = table.join(pd.concat(scores))
    else:
        table = table.assign(batch_median=np.nan, robust_z=np.nan, batch_robust_z=np.nan)
    beyond = (table["robust_z"].abs() > OUTLIER_MADS) | (
        table["batch_robust_z"].abs() > OUTLIER_MADS
    )
    table["outlier"] = beyond.fillna(False).astype(bool)
    columns = ["sample_id", *extra, "acquisition_order"]
    columns += [c for c in positions.columns if c != "sample_id"]
    columns += ["batch_median", "robust_z", "batch_robust_z", "outlier"]
    table = table[columns].sort_values([*_KEYS, "acquisition_order"], kind="stable")
    return table.reset_index(drop=True)


def gate_flags(table: pd.DataFrame, samples: Sequence[str]) -> pd.Series:
    """Per sample, its comma-joined flags from :func:`gate_positions_table`'s ``table``.

    ``adaptive_fallback:<gate>`` where a gate kept its template position, ``gate_outlier:<gate>``
    where a position is an outlier (each gate once).
    """
    flags = pd.Series("", index=pd.Index([str(s) for s in samples]), dtype=object)
    chosen = table[(table["status"] == "fallback") | table["outlier"]]
    for sample_id, group in chosen.groupby("sample_id", sort=False):
        if sample_id not in flags.index:
            continue
        names = [
            f"adaptive_fallback:{_flag_name(row.gate)}"
            for row in group.itertuples()
            if row.status == "fallback"
        ]
        names += [
            f"gate_outlier:{_flag_name(row.gate)}" for row in group.itertuples() if row.outlier
        ]
        flags[sample_id] = ",".join(dict.fromkeys(names))
    return flags


def gate_positions_wide(table: pd.DataFrame, samples: Sequence[str]) -> pd.DataFrame:
    """Samples x boundaries of positions, NA where absent.

    Columns ``<gate path>|<dimension>|<bound>`` with the path's ``/`` written ``>`` (an h5ad
    key cannot hold ``/``): ``lymphocytes>singlets>live|BV510-A|max``.
    """
    if table.empty:
        return pd.DataFrame(index=pd.Index([str(s) for s in samples]))
    key = table["gate_path"] + "|" + table["dimension"] + "|" + table["bound"]
    key = key.str.replace("/", ">", regex=False)
    wide = table.assign(boundary=key).pivot_table(
        index="sample_id", columns="boundary", values="position", aggfunc="first", sort=False
    )
    wide = wide.reindex(index=[str(s) for s in samples])
    wide.columns = wide.columns.astype(str)
    return wide.rename_axis(index=None, columns=None)
