"""Absolute values per visit and arm: quartile box, median and every sample, per feature.

Drawn with :mod:`seaborn.objects` from the values the statistics analyse
(:func:`cytotrial.tl.measure_table`: each sample's value in its compartment's measure): one block
per compartment, one facet per analysed feature, arms side by side at each visit (clinical order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..tl import measure_unit
from ._layout import (
    block_figure,
    draw_on,
    drop_pads,
    facet_order,
    figure_title,
    heading,
    legend_below,
    no_data,
    unique_titles,
    visit_ticks,
    wrap_columns,
)
from ._style import _arms_order, _panel_layout, _visit_order, arm_palette, feature_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_values"]

_ARM_SPAN = 0.7  # the arms of one visit share this much of the x axis


def _offsets(arms: Sequence[str]) -> dict[str, float]:
    """Each arm's shift from its visit's position (arms side by side)."""
    step = _ARM_SPAN / max(1, len(arms))
    return {arm: (i - (len(arms) - 1) / 2) * step for i, arm in enumerate(arms)}


def _log_scale(block: pd.DataFrame) -> bool:
    """Draw a block on a log scale: every value positive and spanning over a decade somewhere."""
    values = block["value"].to_numpy(dtype=float)
    if len(values) == 0 or (values <= 0).any():
        return False
    spans = block.groupby("population")["value"].agg(lambda v: v.max() / v.min())
    return bool((spans > 10).any())


def _with_quartiles(block: pd.DataFrame, *, log: bool) -> pd.DataFrame:
    """The samples and, as rows of their own, each facet's, visit's and arm's quartiles.

    Quartiles are of the values themselves; on a log scale every y (``_y``, ``_q1``,
    ``_median``, ``_q3``) is then its log10. One table with one index, so that each layer takes
    its rows by index.
    """
    keys = ["_facet", "_x", "arm"]
    grouped = block.groupby(keys, sort=False)["value"]
    summary = pd.concat(
        [grouped.quantile(0.25).rename("_q1"), grouped.median().rename("_median")], axis=1
    )
    summary["_q3"] = grouped.quantile(0.75)
    summary = summary.reset_index().assign(_summary=True)
    rows = pd.concat([block.assign(_summary=False, _y=block["value"]), summary], ignore_index=True)
    if log:
        for column in ("_y", "_q1", "_median", "_q3"):
            rows[column] = np.log10(rows[column].to_numpy(dtype=float))
    return rows


def _block_plot(rows: pd.DataFrame, order: list[str], columns: int, arms, colours, log: bool):
    """The seaborn Plot of one compartment: quartile bar, median dash and points per arm."""
    import seaborn.objects as so

    width = 0.8 * _ARM_SPAN / max(1, len(arms))
    summary, samples = rows[rows["_summary"]], rows[~rows["_summary"]]
    return (
        so.Plot(rows, x="_x", color="arm")
        .add(
            so.Range(linewidth=9, alpha=0.3),
            data=summary,
            y="_median",
            ymin="_q1",
            ymax="_q3",
            legend=False,
        )
        .add(so.Dash(width=width, linewidth=2.2), data=summary, y="_median", legend=False)
        .add(
            so.Dots(pointsize=3.2, alpha=0.8),
            so.Jitter(x=width * 0.35, seed=0),
            data=samples,
            y="_y",
            legend=False,
        )
        .facet(col="_facet", order=order, wrap=columns)
        .share(x=True, y=False)
        .scale(color=so.Nominal(colours, order=arms))
        .label(x="visit", y="value (log scale)" if log else "value")
    )


def _log_ticks(ax: Axes) -> None:
    """Ticks of a log10 axis at 1, 2 and 5 of each decade, written as the values (100, 200).

    A range too narrow for two of them gets every digit of the decade (100, 200, ... 900), and a
    narrower one evenly spaced round values: every panel has labelled ticks.
    """
    low, high = ax.get_ylim()

    def at(mantissas: tuple[int, ...]) -> list[float]:
        return [
            math.log10(m) + e
            for e in range(math.floor(low) - 1, math.ceil(high) + 1)
            for m in mantissas
            if low <= math.log10(m) + e <= high
        ]

    ticks = at((1, 2, 5))
    if len(ticks) < 2:
        ticks = at(tuple(range(1, 10)))
    if len(ticks) < 2:
        from matplotlib.ticker import MaxNLocator

        values = MaxNLocator(4).tick_values(10**low, 10**high)
        ticks = [math.log10(v) for v in values if v > 0 and low <= math.log10(v) <= high]
    ax.set_yticks(ticks, [f"{10**t:.6g}" for t in ticks])


def plot_values(
    values: pd.DataFrame,
    *,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    reference_arm: str | None = None,
) -> Figure:
    """Each sample's value per visit and arm: the quartiles (bar), the median (dash), the samples.

    One block per compartment, one facet per feature (its label and unit in the title); a block
    whose values are all positive and span more than a decade is drawn on a log scale.

    Parameters
    ----------
    values
        :func:`cytotrial.tl.measure_table` (``compartment, population, arm, visit, cycle, day,
        measure, value``); rows without a value are left out.
    arm_colors, labels, ratios, populations, compartments, reference_arm
        As in :func:`plot_trajectories`.
    """
    values = values[np.isfinite(values["value"].to_numpy(dtype=float))]
    pops, comps = _panel_layout(values, populations, compartments)
    arms = _arms_order(values["arm"], reference_arm, list(arm_colors or {}))
    colours = {arm: arm_palette(arms, arm_colors)[arm] for arm in arms}
    offsets = _offsets(arms)
    columns = wrap_columns([len(pops)] * len(comps))
    fig, blocks = block_figure([len(pops)] * len(comps), columns)
    for sub, compartment in zip(blocks, comps):
        block = values[(values["compartment"] == compartment) & values["population"].isin(pops)]
        measures = block.drop_duplicates("population").set_index("population")["measure"]
        titles = unique_titles(
            {
                p: feature_label(p, labels=labels, ratios=ratios)
                + (f"\n{measure_unit(str(measures[p]))}" if p in measures.index else "")
                for p in pops
            }
        )
        visits = _visit_order(block)
        position = {visit: i for i, visit in enumerate(visits)}
        block = block.assign(
            _x=block["visit"].map(position).astype(float) + block["arm"].map(offsets),
            _facet=block["population"].map(titles),
        )
        order = facet_order([titles[p] for p in pops], columns)
        log = _log_scale(block)
        rows = _with_quartiles(block, log=log)
        draw_on(_block_plot(rows, order, columns, arms, colours, log), sub)
        axes = drop_pads(sub, order)
        for population in pops:
            ax = axes[titles[population]]
            visit_ticks(ax, visits, rotate=len(visits) > 6)
            if block[block["population"] == population].empty:
                no_data(ax)
            elif log:
                _log_ticks(ax)
        heading(sub, compartment + ("  (log scale)" if log else ""))
    box = Line2D([], [], color="0.5", lw=7, alpha=0.35, label="quartiles")
    median = Line2D([], [], color="0.2", lw=2.2, label="median")
    legend_below(fig, colours, marker="o", lw=0, extra=[box, median])
    figure_title(
        fig,
        "Values per visit and arm: quartiles (bar), median (dash) and each sample (point)",
        size=11,
    )
    return fig
