"""Gate QC figure: where each adaptive gate went, sample by sample, in acquisition order.

Drawn from the gate positions table (``results/gating/gate_positions.tsv``, see
:func:`cytotrial.tl.build_populations`): one panel per adaptive boundary (a threshold, or one
coordinate of a 2-D gate's population peak), samples in acquisition order coloured by batch (and
marked by site where the sheet has one), the template's position dashed, the range the boundary
may take shaded, samples that kept the template hollow and outliers ringed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._style import save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_gate_positions", "write_gate_positions"]

_KEYS = ["panel", "gate", "dimension", "bound"]
_COLUMNS = 3  # panels per row
_OUTLIER = "#C8102E"


def _boundaries(table: pd.DataFrame) -> list[tuple]:
    keys = [k for k in _KEYS if k in table.columns]
    return list(table[keys].drop_duplicates().itertuples(index=False, name=None))


def _draw_boundary(ax: Axes, rows: pd.DataFrame, palette: dict[str, tuple]) -> None:
    import seaborn as sns

    ax.axhspan(float(rows["lo"].min()), float(rows["hi"].max()), color="0.93", zorder=0)
    ax.axhline(float(rows["template"].iloc[0]), color="0.35", lw=0.9, ls="--", zorder=1)
    adapted = rows[rows["status"] == "adapted"]
    style = "site" if "site" in rows.columns and rows["site"].nunique() > 1 else None
    if not adapted.empty:
        sns.scatterplot(
            data=adapted,
            x="acquisition_order",
            y="position",
            hue="batch",
            palette=palette,
            style=style,
            s=14,
            linewidth=0,
            legend=False,
            ax=ax,
            zorder=2,
        )
    kept = rows[rows["status"] != "adapted"]
    if not kept.empty:
        colours = [palette[b] for b in kept["batch"]]
        ax.scatter(
            kept["acquisition_order"], kept["position"], s=16, facecolors="none",
            edgecolors=colours, linewidths=0.9, zorder=2,
        )  # fmt: skip
    outliers = rows[rows["outlier"].astype(bool)]
    if not outliers.empty:
        ax.scatter(
            outliers["acquisition_order"], outliers["position"], s=60, facecolors="none",
            edgecolors=_OUTLIER, linewidths=1.0, zorder=3,
        )  # fmt: skip
    first = rows.iloc[0]
    ax.set_title(
        f"{first['panel']}: {first['gate']} · {first['dimension']} ({first['bound']})"
        if "panel" in rows.columns
        else f"{first['gate']} · {first['dimension']} ({first['bound']})",
        fontsize=8,
    )
    ax.set_xlabel("acquisition order", fontsize=7)
    ax.set_ylabel("position (gate units)", fontsize=7)
    ax.tick_params(labelsize=7)
    sns.despine(ax=ax)


def plot_gate_positions(table: pd.DataFrame) -> Figure:
    """Every adaptive boundary's position per sample in acquisition order, coloured by batch.

    Parameters
    ----------
    table
        The gate positions table (``sample_id``, ``panel``, ``batch``, optional ``site``,
        ``acquisition_order``, ``gate``, ``dimension``, ``bound``, ``template``, ``position``,
        ``lo``, ``hi``, ``status``, ``outlier``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per boundary; a single panel saying so when no gate is adaptive.
    """
    boundaries = _boundaries(table)
    if not boundaries:
        fig = Figure(figsize=(6, 2), layout="constrained")
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no adaptive gates declared (strategies.<panel>.adaptive)",
                ha="center", va="center", transform=ax.transAxes, color="0.4")  # fmt: skip
        ax.set_axis_off()
        return fig
    import seaborn as sns

    batches = sorted(table["batch"].astype(str).unique())
    colours = sns.color_palette("husl", max(len(batches), 1))
    palette = {batch: colours[i] for i, batch in enumerate(batches)}
    n_cols = min(_COLUMNS, len(boundaries))
    n_rows = math.ceil(len(boundaries) / n_cols)
    fig = Figure(figsize=(3.6 * n_cols + 0.4, 2.5 * n_rows + 0.8), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    keys = [k for k in _KEYS if k in table.columns]
    table = table.assign(batch=table["batch"].astype(str))
    for ax, key in zip(axes, boundaries):
        mask = np.logical_and.reduce([table[k] == v for k, v in zip(keys, key)])
        rows = table[mask].sort_values("acquisition_order", kind="stable")
        _draw_boundary(ax, rows, palette)
    for ax in axes[len(boundaries) :]:
        ax.set_axis_off()
    fig.suptitle(
        "Adaptive gate positions by batch (colour), in acquisition order; dashed: template, "
        "shaded: allowed range, hollow: template kept, red ring: outlier",
        fontsize=8,
    )
    return fig


def write_gate_positions(table: pd.DataFrame | str | Path, path: str | Path) -> tuple[Path, Path]:
    """Draw :func:`plot_gate_positions` and write it as ``<path>.png`` and ``.pdf``.

    ``table`` may be the table or its TSV file.
    """
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table, sep="\t", dtype={"sample_id": str, "batch": str})
    return save_figure(plot_gate_positions(table), path)
