"""QC overview: acquisition by batch, and drift of key frequencies across batches.

Drawn with :mod:`seaborn.objects` from the sample QC table (``results/qc/samples.tsv``: events
acquired and events in each gate) and ``populations.h5ad`` (each population's fraction of its
parent). Batches are in acquisition order, which is their name's order (as in the gate
positions). The first block shows, per batch, the events acquired and each gate of the path to
the frequencies' reference population (e.g. lymphocytes, singlets, live) as a percentage of its
parent; the next blocks, one per compartment, chart each key population's fraction of its parent
per sample and batch in the manner of a Levey-Jennings chart: the batch medians, their centre
(the median of the batch medians) and a band of 2 robust standard deviations (1.4826 x the median
absolute deviation of the batch medians) around it; a batch median outside the band is a
purple diamond.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ._layout import (
    PANEL_H,
    PANEL_W,
    block_figure,
    draw_on,
    drop_pads,
    facet_order,
    figure_title,
    heading,
    legend_below,
    no_data,
    unique_titles,
    wrap_columns,
)
from ._style import _PALETTE, _arms_order, arm_palette

if TYPE_CHECKING:
    import seaborn.objects as so
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["acquisition_table", "batch_drift", "drift_table", "gate_chain", "plot_qc_overview"]

#: Robust standard deviation per median absolute deviation (normal data).
MAD_SD = 1.4826
_BAND_SDS = 2.0
_OUTSIDE = "#6A3D9A"  # a batch median outside the band (a colour no arm takes by default)
_EVENTS = "events acquired"


def gate_chain(adata: AnnData, reference: str) -> list[tuple[str, str]]:
    """(population, parent) from the root gate down to ``reference`` (parent ``""``: all events).

    Parents from ``var['parent']`` (the same in every panel); empty when ``reference`` is not a
    population of ``adata``.
    """
    parents = adata.var["parent"].astype(str).to_dict() if "parent" in adata.var else {}
    chain, name = [], reference
    while name in parents and name not in {p for p, _ in chain}:
        chain.append((name, parents[name]))
        name = parents[name]
        if not name:
            break
    return chain[::-1]


def acquisition_table(
    qc: pd.DataFrame,
    chain: Sequence[tuple[str, str]],
    *,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per sample and metric: the events acquired and each gate of ``chain`` as % of its parent.

    Parameters
    ----------
    qc
        The sample QC table (``sample_id, compartment, batch, events_in`` and ``n_<population>``).
    chain
        (population, parent) pairs (:func:`gate_chain`); a pair whose counts the table lacks is
        left out.
    labels
        The config's population labels.

    Returns
    -------
    pandas.DataFrame
        ``sample_id, compartment, batch, metric, value`` (rows without a value left out), metrics
        in order: ``events acquired``, then ``"<label>, % of <parent label>"``.
    """
    labels = labels or {}
    base = qc[["sample_id", "compartment", "batch"]].astype(str)
    frames = [base.assign(metric=_EVENTS, value=pd.to_numeric(qc["events_in"], errors="coerce"))]
    for population, parent in chain:
        top = f"n_{population}"
        bottom = f"n_{parent}" if parent else "events_in"
        if top not in qc.columns or bottom not in qc.columns:
            continue
        share = pd.to_numeric(qc[top], errors="coerce") / pd.to_numeric(qc[bottom], errors="coerce")
        name = labels.get(population, population)
        of = labels.get(parent, parent) if parent else "events"
        frames.append(base.assign(metric=f"{name}, % of {of}", value=100.0 * share))
    table = pd.concat(frames, ignore_index=True)
    return table[np.isfinite(table["value"].to_numpy(dtype=float))].reset_index(drop=True)


def drift_table(adata: AnnData, populations: Sequence[str]) -> pd.DataFrame:
    """Each sample's fraction of parent of ``populations`` with its batch, compartment and arm.

    Returns ``sample_id, compartment, arm, batch, population, value`` (finite values only).
    """
    present = [p for p in populations if p in adata.var_names]
    layer = adata.layers["freq_parent"]
    frames = []
    obs = adata.obs[["compartment", "arm", "batch"]].astype(str)
    for population in present:
        j = list(adata.var_names).index(population)
        values = np.asarray(layer[:, j], dtype=float).ravel()
        frames.append(obs.assign(sample_id=adata.obs_names, population=population, value=values))
    if not frames:
        return pd.DataFrame(
            columns=["sample_id", "compartment", "arm", "batch", "population", "value"]
        )
    table = pd.concat(frames, ignore_index=True)
    table = table[np.isfinite(table["value"].to_numpy(dtype=float))]
    return table[["sample_id", "compartment", "arm", "batch", "population", "value"]].reset_index(
        drop=True
    )


def batch_drift(
    table: pd.DataFrame, *, by: Sequence[str] = ("compartment", "population")
) -> pd.DataFrame:
    """Levey-Jennings summary: each batch's median, the centre and band of the batch medians.

    Parameters
    ----------
    table
        Rows with ``batch``, ``value`` and the ``by`` columns (:func:`drift_table`).
    by
        The columns of one chart.

    Returns
    -------
    pandas.DataFrame
        ``*by, batch, n, median, centre, sd, low, high, outside``: ``centre`` is the median of
        the chart's batch medians and ``sd`` 1.4826 x their median absolute deviation (NaN with
        fewer than three batches or no spread; then no batch is outside); ``low``/``high`` are centre -/+ 2 sd.
    """
    keys = [*by, "batch"]
    medians = table.groupby(keys, sort=True)["value"].agg(n="size", median="median").reset_index()
    rows = []
    for _, chart in medians.groupby(list(by), sort=False):
        centre = float(np.median(chart["median"]))
        sd = MAD_SD * float(np.median(np.abs(chart["median"] - centre)))
        # no band from fewer than three batches, nor from a zero spread
        rows.append(chart.assign(centre=centre, sd=sd if len(chart) >= 3 and sd > 0 else np.nan))
    out = pd.concat(rows, ignore_index=True) if rows else medians.assign(centre=np.nan, sd=np.nan)
    out["low"] = out["centre"] - _BAND_SDS * out["sd"]
    out["high"] = out["centre"] + _BAND_SDS * out["sd"]
    out["outside"] = ((out["median"] < out["low"]) | (out["median"] > out["high"])).fillna(False)
    return out


def _box_layers(plot: so.Plot, width: float) -> so.Plot:
    """Quartile bar, median dash and jittered points of each colour group at each x."""
    import seaborn.objects as so

    return (
        plot.add(so.Range(linewidth=8, alpha=0.3), so.Perc([25, 75]), group="_x", legend=False)
        .add(so.Dash(width=width, linewidth=2), so.Agg("median"), group="_x", legend=False)
        .add(so.Dots(pointsize=2.8, alpha=0.7), so.Jitter(x=width * 0.35, seed=0), legend=False)
    )


def _batch_axis(ax: Axes, batches: Sequence[str]) -> None:
    ax.set_xticks(range(len(batches)), list(batches), rotation=90 if len(batches) > 8 else 0)
    ax.tick_params(axis="x", labelbottom=True)
    ax.set_xlim(-0.6, len(batches) - 0.4)


def _acquisition_block(sub, table: pd.DataFrame, batches: Sequence[str], columns: int) -> None:
    """Events acquired and % of parent of each gate per batch, coloured by compartment."""
    import seaborn.objects as so

    comps = sorted(set(table["compartment"]))
    colours = dict(zip(comps, _PALETTE))
    step = 0.7 / max(1, len(comps))
    shift = {c: (i - (len(comps) - 1) / 2) * step for i, c in enumerate(comps)}
    position = {b: i for i, b in enumerate(batches)}
    data = table.assign(_x=table["batch"].map(position) + table["compartment"].map(shift))
    metrics = list(dict.fromkeys(table["metric"]))
    order = facet_order(metrics, columns)
    plot = _box_layers(so.Plot(data, x="_x", y="value", color="compartment"), 0.8 * step)
    plot = (
        plot.facet(col="metric", order=order, wrap=columns)
        .share(x=True, y=False)
        .scale(color=so.Nominal(colours, order=comps))
        .label(x="batch (acquisition order)", y="")
    )
    draw_on(plot, sub)
    for ax in drop_pads(sub, order).values():
        _batch_axis(ax, batches)
    heading(sub, "Acquisition by batch")
    handles = [Patch(color=colours[c], alpha=0.6, label=c) for c in comps]
    sub.legend(
        handles=handles, loc="outside right upper", frameon=False, fontsize=8, title="compartment"
    )


def _drift_rows(table: pd.DataFrame, batches: Sequence[str]) -> pd.DataFrame:
    """Samples, batch medians and bands of one block, one table with one index (per layer)."""
    position = {b: i for i, b in enumerate(batches)}
    drift = batch_drift(table)
    samples = table.assign(_kind="sample", _x=table["batch"].map(position), _y=100 * table["value"])
    medians = drift.assign(
        _kind="median", _x=drift["batch"].map(position), _y=100 * drift["median"]
    )
    bands = drift.drop_duplicates("population").dropna(subset=["sd"])
    bands = pd.concat(
        [bands.assign(_x=-0.6), bands.assign(_x=len(batches) - 0.4)], ignore_index=True
    ).assign(_kind="band", _low=lambda b: 100 * b["low"], _high=lambda b: 100 * b["high"])
    return pd.concat([samples, medians, bands], ignore_index=True)


def _drift_block(
    sub,
    table: pd.DataFrame,
    *,
    batches: Sequence[str],
    titles: Mapping[str, str],
    colours: Mapping[str, str],
    columns: int,
) -> None:
    """One compartment's Levey-Jennings charts, one facet per key population."""
    import seaborn.objects as so

    rows = _drift_rows(table, batches).assign(_facet=lambda r: r["population"].map(titles))
    kind = rows["_kind"]
    medians = rows[kind == "median"]
    order = facet_order(list(titles.values()), columns)
    plot = (
        so.Plot(rows, x="_x", y="_y")
        .add(
            so.Band(color="0.55", alpha=0.15, edgewidth=0),
            data=rows[kind == "band"],
            y=None,
            ymin="_low",
            ymax="_high",
            group="_facet",
        )
        .add(
            so.Dots(pointsize=2.6, alpha=0.6),
            so.Jitter(x=0.3, seed=0),
            data=rows[kind == "sample"],
            color="arm",
            legend=False,
        )
        .add(so.Line(color="0.15", linewidth=1.2, marker="o", pointsize=4), data=medians)
        .add(
            so.Dot(color=_OUTSIDE, marker="D", pointsize=7),
            data=medians[medians["outside"].astype(bool)],
        )
        .facet(col="_facet", order=order, wrap=columns)
        .share(x=True, y=False)
        .scale(color=so.Nominal(dict(colours), order=list(colours)))
        .label(x="batch (acquisition order)", y="% of parent")
    )
    draw_on(plot, sub)
    axes = drop_pads(sub, order)
    for population, title in titles.items():
        ax = axes[title]
        _batch_axis(ax, batches)
        chart = medians[medians["population"] == population]
        if chart.empty:
            no_data(ax)
        else:
            ax.axhline(100 * float(chart["centre"].iloc[0]), color="0.35", lw=0.9, ls="--")


def plot_qc_overview(
    acquisition: pd.DataFrame,
    drift: pd.DataFrame,
    *,
    arms: Sequence[str] | None = None,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Acquisition by batch, and drift of the key populations' frequencies across batches.

    Parameters
    ----------
    acquisition
        :func:`acquisition_table`.
    drift
        :func:`drift_table` (the key populations of each compartment).
    arms, arm_colors
        The config's arms in order and their colours (the samples of the drift charts).
    labels
        The config's population labels (facet titles).
    """
    batches = sorted(set(acquisition["batch"]) | set(drift["batch"]))
    features = list(dict.fromkeys(drift["population"]))
    comps = sorted(set(drift["compartment"]))
    metrics = list(dict.fromkeys(acquisition["metric"]))
    panel = (max(PANEL_W, 0.28 * len(batches) + 1.0), PANEL_H)
    counts = [max(1, len(metrics))] + [len(features)] * len(comps)
    columns = wrap_columns(counts, panel=panel)
    fig, subs = block_figure(counts, columns, panel=panel)
    _acquisition_block(subs[0], acquisition, batches, columns)
    order = _arms_order(drift["arm"], None, arms)
    colours = {arm: arm_palette(order, arm_colors)[arm] for arm in order}
    titles = unique_titles({p: (labels or {}).get(p, p) for p in features})
    for sub, compartment in zip(subs[1:], comps):
        own = drift[drift["compartment"] == compartment]
        _drift_block(sub, own, batches=batches, titles=titles, colours=colours, columns=columns)
        heading(sub, f"{compartment}: key populations across batches (Levey-Jennings)")
    extra = [
        Line2D([], [], color="0.15", marker="o", lw=1.2, label="batch median"),
        Line2D([], [], color=_OUTSIDE, marker="D", ls="", label="median outside the band"),
        Patch(color="0.55", alpha=0.3, label="centre ± 2 robust SD"),
    ]
    legend_below(fig, colours, marker="o", lw=0, extra=extra)
    figure_title(
        fig,
        "QC overview: acquisition by batch and drift of key frequencies across batches",
        size=11,
    )
    return fig
