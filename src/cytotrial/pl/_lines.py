"""Change from baseline over visits: arm means with their interval, and each patient's line.

One panel per analysed feature (rows: populations, ratios, MFIs) and compartment present (columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ._style import (
    _arms_order,
    _grid,
    _legend,
    _no_data,
    _panel_layout,
    _style,
    _visit_order,
    arm_palette,
    feature_label,
    fold_change_label,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_patient_lines", "plot_trajectories"]


def _cell(table: pd.DataFrame, population: str, compartment: str) -> pd.DataFrame:
    """The rows of one panel: one feature in one compartment."""
    return table[(table["population"] == population) & (table["compartment"] == compartment)]


def _visit_axis(
    ax: Axes, visits: Sequence[str], measure: str, *, xlim: tuple[float, float]
) -> None:
    """Visits as x ticks (clinical order) and the fold change of ``measure`` as y label.

    The x axis runs from ``-xlim[0]`` to ``len(visits) - xlim[1]``.
    """
    ax.set_xticks(range(len(visits)), visits)
    ax.set_xlim(-xlim[0], len(visits) - xlim[1])
    ax.set_xlabel("visit", fontsize=8)
    ax.set_ylabel(fold_change_label(measure, wrap=True), fontsize=8)


def _draw_arm_means(
    ax: Axes,
    cell: pd.DataFrame,
    arms: Sequence[str],
    colours: Mapping[str, str],
    offsets: Mapping[str, float],
) -> None:
    """One panel of :func:`plot_trajectories`: each arm's mean with its interval, by visit."""
    visits = _visit_order(cell)
    pos = {v: i for i, v in enumerate(visits)}
    for arm in arms:
        sub = cell[cell["arm"] == arm]
        if sub.empty:
            continue
        sub = sub.assign(_x=sub["visit"].map(pos)).sort_values("_x")
        x = sub["_x"].to_numpy(dtype=float) + offsets[arm]
        y = sub["mean_log2fc"].to_numpy(dtype=float)
        low = sub["ci_low"].to_numpy(dtype=float)
        high = sub["ci_high"].to_numpy(dtype=float)
        err = np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])
        bars = ax.errorbar(
            x,
            y,
            yerr=err,
            color=colours[arm],
            marker="o",
            ms=4,
            lw=1.6,
            capsize=2.5,
            label=arm,
        )
        bars.lines[0].set_gid(f"mean:{arm}")
    _visit_axis(ax, visits, cell["measure"].iloc[0], xlim=(0.4, 0.6))


def plot_trajectories(
    summary: pd.DataFrame,
    *,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    reference_arm: str | None = None,
    alpha: float = 0.05,
) -> Figure:
    """Mean log2 fold change from baseline with its interval by visit, one line per arm.

    One panel per feature (rows) and compartment (columns, every compartment of the table).

    Parameters
    ----------
    summary
        The ``summary`` table (:func:`cytotrial.tl.summary_table`).
    arm_colors
        Fixed arm colours, arm -> colour (the config's ``arms:``; see :func:`arm_palette`); their
        order is the legend's.
    labels, ratios
        The config's population labels and ratios: panel titles (see :func:`feature_label`).
    populations, compartments
        The features (rows) and compartments (columns) drawn, in this order (others of the table
        are left out); default: every one of the table, features in its order, compartments
        sorted.
    reference_arm
        Drawn last in the legend.
    alpha
        Only for the legend text: the intervals are the table's ``1 - alpha`` t-intervals.
    """
    pops, comps = _panel_layout(summary, populations, compartments)
    arms = _arms_order(summary["arm"], reference_arm, list(arm_colors or {}))
    colours = arm_palette(arms, arm_colors)
    fig, axes = _grid(len(pops), len(comps))
    offsets = {a: (i - (len(arms) - 1) / 2) * 0.08 for i, a in enumerate(arms)}
    for r, population in enumerate(pops):
        for c, compartment in enumerate(comps):
            ax = axes[r, c]
            cell = _cell(summary, population, compartment)
            cell = cell[cell["n_log2fc"] > 0]
            _style(ax)
            title = feature_label(population, labels=labels, ratios=ratios)
            ax.set_title(f"{title} · {compartment}", fontsize=9)
            if cell.empty:
                _no_data(ax)
                continue
            _draw_arm_means(ax, cell, arms, colours, offsets)
    _legend(fig, colours, arms)
    level = round(100 * (1 - alpha))
    fig.suptitle(
        f"Change from baseline: mean log2 fold change with {level}% t-interval", fontsize=10
    )
    return fig


def _draw_patient_lines(
    ax: Axes, cell: pd.DataFrame, arms: Sequence[str], colours: Mapping[str, str]
) -> None:
    """One panel of :func:`plot_patient_lines`: faint line per patient, bold arm median."""
    visits = _visit_order(cell)
    pos = {v: i for i, v in enumerate(visits)}
    for arm in arms:
        sub = cell[cell["arm"] == arm]
        for patient, lines in sub.groupby("patient_id", sort=True):
            lines = lines.assign(_x=lines["visit"].map(pos)).sort_values("_x")
            ax.plot(
                lines["_x"],
                lines["log2fc"],
                color=colours[arm],
                alpha=0.25,
                lw=0.8,
                gid=f"patient:{arm}:{patient}",
            )
        if sub.empty:
            continue
        med = sub.groupby("visit")["log2fc"].median()
        xs = [v for v in visits if v in med.index]
        ax.plot(
            [pos[v] for v in xs],
            [med[v] for v in xs],
            color=colours[arm],
            lw=2.4,
            marker="o",
            ms=4.5,
            gid=f"median:{arm}",
        )
    _visit_axis(ax, visits, cell["measure"].iloc[0], xlim=(0.3, 0.7))


def plot_patient_lines(
    log2fc: pd.DataFrame,
    *,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
    populations: Sequence[str] | None = None,
    compartments: Sequence[str] | None = None,
    reference_arm: str | None = None,
) -> Figure:
    """Each patient's log2 fold change from baseline (faint lines) with the arm median on top.

    Parameters
    ----------
    log2fc
        The ``log2fc`` table (:func:`cytotrial.tl.log2_fold_changes`).
    arm_colors, labels, ratios, populations, compartments, reference_arm
        As in :func:`plot_trajectories`.
    """
    pops, comps = _panel_layout(log2fc, populations, compartments)
    arms = _arms_order(log2fc["arm"], reference_arm, list(arm_colors or {}))
    colours = arm_palette(arms, arm_colors)
    fig, axes = _grid(len(pops), len(comps))
    for r, population in enumerate(pops):
        for c, compartment in enumerate(comps):
            ax = axes[r, c]
            cell = _cell(log2fc, population, compartment)
            _style(ax)
            title = feature_label(population, labels=labels, ratios=ratios)
            ax.set_title(f"{title} · {compartment}", fontsize=9)
            if cell.empty:
                _no_data(ax)
                continue
            _draw_patient_lines(ax, cell, arms, colours)
    faint = Line2D([], [], color="0.4", alpha=0.35, lw=0.8, label="one patient")
    _legend(fig, colours, arms, extra=[faint])
    fig.suptitle("Change from baseline per patient (faint) and arm median (bold)", fontsize=10)
    return fig
