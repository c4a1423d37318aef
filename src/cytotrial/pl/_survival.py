"""Kaplan-Meier curves of one feature's early change: per arm, high against low (median split).

Drawn with :mod:`seaborn.objects`: one facet per arm (in the config's order, its colour), the
``high`` group solid and the ``low`` group dashed, each with its pointwise band (a step band) and
ticks where patients were censored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..tl import SPLIT_GROUPS, SURVIVAL_ENDPOINTS, kaplan_meier_curve
from ._layout import PANEL_H, draw_on, figure_title, no_data
from ._style import _arms_order, arm_palette, feature_label

if TYPE_CHECKING:
    import seaborn.objects as so
    from matplotlib.axes import Axes

__all__ = ["plot_kaplan_meier"]

_ENDPOINT_NAMES = {"pfs": "progression-free survival", "os": "overall survival"}
_LINESTYLES = {"high": "-", "low": "--"}
_PANEL_W = 4.6  # a Kaplan-Meier facet is wider than tall


def _curves(cell: pd.DataFrame, arms: Sequence[str], time: str, event: str, alpha: float):
    """Each arm's and group's curve (:func:`cytotrial.tl.kaplan_meier_curve`), as one long table.

    Returns the curves (``arm, group, time, survival, ci_low, ci_high, censored``) and their
    bands as steps (each interval's bounds repeated at the next time).
    """
    curves, bands = [], []
    for arm in arms:
        for group in SPLIT_GROUPS:
            sub = cell[(cell["arm"] == arm) & (cell["group"] == group)]
            if sub.empty:
                continue
            curve = kaplan_meier_curve(
                sub[time].to_numpy(dtype=float), sub[event].to_numpy(dtype=int), alpha=alpha
            ).assign(arm=arm, group=group)
            curves.append(curve)
            step = curve.iloc[:-1].assign(time=curve["time"].to_numpy()[1:])
            bands.append(pd.concat([step, curve]).sort_values("time", kind="mergesort"))
    if not curves:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(curves, ignore_index=True), pd.concat(bands, ignore_index=True)


def plot_kaplan_meier(
    data: pd.DataFrame,
    *,
    population: str,
    compartment: str,
    endpoint: str = "pfs",
    km: pd.DataFrame | None = None,
    arm_colors: Mapping[str, str] | None = None,
    arms: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
    alpha: float = 0.05,
) -> Figure:
    """Kaplan-Meier curves by the median split of the early change, one facet per arm.

    In each arm's facet the ``high`` group (early change above the arm's median; solid) and the
    ``low`` group (dashed), each with its pointwise ``1 - alpha`` band and censoring ticks.

    Parameters
    ----------
    data
        Output of :func:`cytotrial.tl.survival_data` (patients without an early change or
        without the endpoint are left out, as in the tables).
    population, compartment
        The feature and compartment drawn.
    endpoint
        A key of :data:`cytotrial.tl.SURVIVAL_ENDPOINTS` (``pfs`` or ``os``).
    km
        The ``km`` table of :func:`cytotrial.tl.survival_tables`: each facet then states the
        log-rank p and each group's median (months); None: no statistics written.
    arm_colors
        Fixed arm colours, arm -> colour (see :func:`arm_palette`).
    arms
        Facet order (the config's arms; others after, sorted).
    labels, ratios
        The config's population labels and ratios (the title, see :func:`feature_label`).
    alpha
        Level of the bands.
    """
    if endpoint not in SURVIVAL_ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; choose from {list(SURVIVAL_ENDPOINTS)}")
    time, event = SURVIVAL_ENDPOINTS[endpoint]
    cell = data[(data["population"] == population) & (data["compartment"] == compartment)]
    if {time, event} <= set(cell.columns):
        cell = cell[cell["group"].isin(SPLIT_GROUPS) & cell[time].notna() & cell[event].notna()]
    else:
        cell = cell.iloc[:0]
    order = _arms_order(cell["arm"], None, arms)
    curves, bands = _curves(cell, order, time, event, alpha)
    label = feature_label(population, labels=labels, ratios=ratios)
    title = f"{label}, {compartment}: early change above (high) or at/below (low) the arm's median"
    fig = Figure(figsize=(_PANEL_W * max(1, len(order)) + 0.6, PANEL_H + 1.6), layout="constrained")
    if curves.empty:
        no_data(fig.subplots())
        figure_title(fig, title, size=10)
        return fig
    colours = arm_palette(order, arm_colors)
    plot = _km_plot(curves, bands, order=order, colours=colours, endpoint=endpoint)
    draw_on(plot, fig)  # the groups are told apart in each facet's own legend
    for ax, arm in zip(fig.axes, order):
        _finish_facet(ax, cell[cell["arm"] == arm], curves[curves["arm"] == arm])
        stats = None if km is None else _km_rows(km, population, compartment, endpoint, arm)
        _facet_legend(ax, cell[cell["arm"] == arm], colours[arm], stats)
    figure_title(fig, title, size=10)
    return fig


def _km_plot(
    curves: pd.DataFrame,
    bands: pd.DataFrame,
    *,
    order: Sequence[str],
    colours: Mapping[str, str],
    endpoint: str,
) -> so.Plot:
    """The seaborn Plot: a band, a curve and censoring ticks per group, a facet per arm."""
    import seaborn.objects as so

    # one table with one index for every layer (a layer's rows are found by their index)
    rows = pd.concat([curves.assign(_band=False), bands.assign(_band=True)], ignore_index=True)
    lines = rows[~rows["_band"]]
    return (
        so.Plot(rows, x="time", y="survival", color="arm", linestyle="group")
        .add(
            so.Band(alpha=0.1, edgewidth=0),
            data=rows[rows["_band"]],
            ymin="ci_low",
            ymax="ci_high",
            group="group",
            legend=False,
        )
        .add(so.Line(linewidth=1.6), data=lines, legend=False)
        .add(
            so.Dot(marker="|", pointsize=8),
            data=lines[lines["censored"] > 0],
            group="group",
            legend=False,
        )
        .facet(col="arm", order=order)
        .scale(
            color=so.Nominal({a: colours[a] for a in order}, order=order),
            linestyle=so.Nominal(_LINESTYLES, order=list(SPLIT_GROUPS)),
        )
        .limit(y=(-0.02, 1.02))
        .label(x="months", y=_ENDPOINT_NAMES.get(endpoint, endpoint), title=str)
    )


def _finish_facet(ax: Axes, own: pd.DataFrame, curves: pd.DataFrame) -> None:
    """Steps for the curves (drawn post), each named ``km:<group>``; x from 0."""
    for line in ax.get_lines():
        x = np.asarray(line.get_xdata(), dtype=float)
        for group, curve in curves.groupby("group", sort=False):
            if len(curve) == len(x) and np.allclose(curve["time"].to_numpy(), x):
                line.set_drawstyle("steps-post")
                line.set_gid(f"km:{group}")
    ax.set_xlim(left=0)
    if own.empty:
        no_data(ax)


def _km_rows(
    km: pd.DataFrame, population: str, compartment: str, endpoint: str, arm: str
) -> pd.DataFrame:
    """The ``km`` rows of one facet, indexed by group."""
    rows = km[
        (km["population"] == population)
        & (km["compartment"] == compartment)
        & (km["endpoint"] == endpoint)
        & (km["arm"] == arm)
    ]
    return rows.set_index("group")


def _facet_legend(ax: Axes, own: pd.DataFrame, colour: str, stats: pd.DataFrame | None) -> None:
    """Each group's size and median, and the log-rank p, in the facet's corner."""
    handles = []
    for group in SPLIT_GROUPS:
        text = f"{group} (n={int((own['group'] == group).sum())})"
        if stats is not None and group in stats.index:
            median = float(stats.loc[group, "median_months"])
            text += f", median {median:.1f}" if np.isfinite(median) else ", median not reached"
        handles.append(Line2D([], [], color=colour, ls=_LINESTYLES[group], lw=1.6, label=text))
    if stats is not None and len(stats):
        p = float(stats["logrank_p"].iloc[0])
        handles.append(
            Line2D([], [], ls="", label=f"log-rank p = {p:.3g}" if np.isfinite(p) else "no test")
        )
    ax.legend(handles=handles, loc="lower left", fontsize=7.5, frameon=False)
