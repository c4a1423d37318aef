"""Per-sample features beside the populations: ratios of two populations' counts, and MFIs.

Ratio = count(numerator) / count(denominator) of the same sample: a zero denominator gives NA and
the flag ``ratio_zero_denominator:<ratio>``; a population missing from the sample's panel gives NA
without a flag. An MFI (population, marker) with fewer than ``mfi.min_events`` events has no median,
transformed median or robust CV, and the sample is flagged ``mfi_too_few_events:<population>:<marker>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..gating import MFI_COLUMNS  # a gating batch's MFI table is results/counts/mfi.tsv's layout

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "MFI_COLUMNS",
    "MFI_OBSM",
    "RATIO_COLUMNS",
    "mfi_matrices",
    "mfi_table",
    "ratio_values",
    "ratios_long",
]

#: ``results/counts/ratios.tsv``.
RATIO_COLUMNS = [
    "sample_id",
    "ratio",
    "numerator",
    "denominator",
    "n_numerator",
    "n_denominator",
    "value",
]
#: The AnnData's MFI matrices (obsm key -> column of the MFI table).
MFI_OBSM = {
    "mfi_median": "median",
    "mfi_median_transformed": "median_transformed",
    "mfi_rcv": "rcv",
    "mfi_n_events": "n_events",
}
_MFI_VALUES = ("median", "median_transformed", "rcv")


def ratio_values(
    count: pd.DataFrame, ratios: Mapping[str, Sequence[str]]
) -> tuple[pd.DataFrame, pd.Series]:
    """Each ratio per sample and the ``ratio_zero_denominator`` flags.

    Parameters
    ----------
    count
        Samples x populations event counts (NaN where the sample's panel lacks a population).
    ratios
        ``{name: [numerator, denominator]}`` in output order.

    Returns
    -------
    values, flags
        Samples x ratios (float, NaN where undefined); per sample its comma-joined flags.
    """
    values = pd.DataFrame(index=count.index)
    flags = pd.Series("", index=count.index, dtype=object)
    for name, (numerator, denominator) in ratios.items():
        top, bottom = count[str(numerator)], count[str(denominator)]
        with np.errstate(divide="ignore", invalid="ignore"):
            values[str(name)] = (top / bottom).where(bottom > 0).astype(float)
        zero = top.notna() & bottom.notna() & (bottom == 0)
        flag = f"ratio_zero_denominator:{name}"
        flags[zero] = [f"{f},{flag}" if f else flag for f in flags[zero]]
    return values, flags


def ratios_long(adata: AnnData) -> pd.DataFrame:
    """``results/counts/ratios.tsv``: one row per sample and ratio whose two populations it has.

    Columns :data:`RATIO_COLUMNS`; ``value`` is empty for a zero denominator. Sorted by sample,
    then ratio in config order.
    """
    pairs = {str(k): [str(p) for p in v] for k, v in dict(adata.uns.get("ratios", {})).items()}
    values = adata.obsm["ratios"]
    x = np.asarray(adata.X, dtype=float)
    column = {str(name): j for j, name in enumerate(adata.var_names)}
    frames = []
    for ratio in [str(c) for c in values.columns]:
        numerator, denominator = pairs[ratio]
        frame = pd.DataFrame(
            {
                "sample_id": np.asarray(adata.obs_names, dtype=object),
                "ratio": ratio,
                "numerator": numerator,
                "denominator": denominator,
                "n_numerator": x[:, column[numerator]],
                "n_denominator": x[:, column[denominator]],
                "value": values[ratio].to_numpy(dtype=float),
            }
        )
        frames.append(frame[frame["n_numerator"].notna() & frame["n_denominator"].notna()])
    if not frames:
        return pd.DataFrame(columns=RATIO_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    for name in ("n_numerator", "n_denominator"):
        table[name] = table[name].astype("int64")
    return table.sort_values("sample_id", kind="stable").reset_index(drop=True)[RATIO_COLUMNS]


def _features(table: pd.DataFrame, markers: Mapping[str, Sequence[str]] | None) -> list[tuple]:
    """(population, marker) pairs in output order: the config's, else the table's first appearance."""
    if markers is not None:
        return [(str(p), str(m)) for p, names in markers.items() for m in names]
    pairs = zip(table["population"], table["marker"], strict=True)
    return list(dict.fromkeys((str(p), str(m)) for p, m in pairs))


def mfi_table(
    mfi: pd.DataFrame | None,
    *,
    markers: Mapping[str, Sequence[str]] | None,
    min_events: int,
    samples: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``results/counts/mfi.tsv`` from the gating's MFI tables.

    Parameters
    ----------
    mfi
        The concatenated MFI tables of the gating (:data:`MFI_COLUMNS`), or None.
    markers
        ``mfi.markers`` (population -> markers): the pairs kept, in this order; None keeps every
        pair of the table in order of first appearance.
    min_events
        Below it, ``median``, ``median_transformed`` and ``rcv`` are blanked.
    samples
        The samples kept (all when None).

    Returns
    -------
    pandas.DataFrame
        :data:`MFI_COLUMNS`, sorted by sample, then population and marker in config order;
        ``n_events`` as a nullable integer.

    Raises
    ------
    ValueError
        A missing column, or two rows of one sample, population and marker.
    """
    if mfi is None or mfi.empty:
        mfi = pd.DataFrame(columns=MFI_COLUMNS)
    missing = [c for c in MFI_COLUMNS if c not in mfi.columns]
    if missing:
        raise ValueError(f"MFI table lacks column(s) {', '.join(missing)}")
    table = mfi[MFI_COLUMNS].copy()
    for name in ("sample_id", "population", "marker", "channel"):
        table[name] = table[name].fillna("").astype(str)
    for name in ("n_events", *_MFI_VALUES):
        table[name] = pd.to_numeric(table[name]).astype(float)  # an empty cell is NA
    order = {pair: i for i, pair in enumerate(_features(table, markers))}
    table["_order"] = [order.get(pair, -1) for pair in zip(table["population"], table["marker"])]
    table = table[table["_order"] >= 0]
    if samples is not None:
        table = table[table["sample_id"].isin(set(samples))]
    repeated = table.duplicated(["sample_id", "population", "marker"])
    if repeated.any():
        row = table[repeated].iloc[0]
        raise ValueError(
            f"MFI table: sample {row['sample_id']} has {row['population']}:{row['marker']} twice"
        )
    low = table["n_events"].notna() & (table["n_events"] < min_events)
    table.loc[low, list(_MFI_VALUES)] = np.nan
    table = table.sort_values(["sample_id", "_order"], kind="stable").drop(columns="_order")
    table["n_events"] = table["n_events"].round().astype("Int64")
    return table.reset_index(drop=True)


def mfi_matrices(
    table: pd.DataFrame,
    *,
    markers: Mapping[str, Sequence[str]] | None,
    min_events: int,
    samples: Sequence[str],
) -> tuple[dict[str, pd.DataFrame], pd.Series]:
    """The AnnData's MFI matrices (samples x ``<population>:<marker>``) and the MFI flags.

    Parameters
    ----------
    table
        :func:`mfi_table`'s result.
    markers
        As for :func:`mfi_table` (the columns, in order).
    min_events
        ``mfi.min_events``: samples below it are flagged ``mfi_too_few_events:<population>:<marker>``.
    samples
        The rows, in order.

    Returns
    -------
    matrices, flags
        :data:`MFI_OBSM` key -> float DataFrame (NaN where there is no value); per sample its
        comma-joined flags.

    Raises
    ------
    ConfigError
        A marker with a ``/`` (an .h5ad cannot store it as a column name).
    """
    features = _features(table, markers)
    for population, marker in features:
        if "/" in marker:
            raise ConfigError(
                f"config mfi.markers.{population}: {marker!r} has a '/', which "
                "populations.h5ad cannot store; use the marker's name in panels:"
            )
    columns = [f"{population}:{marker}" for population, marker in features]
    keyed = table.assign(feature=table["population"] + ":" + table["marker"])
    matrices = {}
    for key, value in MFI_OBSM.items():
        wide = keyed.pivot(index="sample_id", columns="feature", values=value)
        wide = wide.reindex(index=list(samples), columns=columns).astype(float)
        matrices[key] = wide.rename_axis(index=None, columns=None)
    events = matrices["mfi_n_events"]
    flags = pd.Series("", index=pd.Index(list(samples)), dtype=object)
    for column in columns:
        low = events[column].notna() & (events[column] < min_events)
        flag = f"mfi_too_few_events:{column}"
        flags[low] = [f"{f},{flag}" if f else flag for f in flags[low]]
    return matrices, flags
