"""Kaplan-Meier curves of one feature's early change: per arm, high against low (median split)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..tl import SPLIT_GROUPS, SURVIVAL_ENDPOINTS, kaplan_meier_curve
from ._style import _PANEL_H, _PANEL_W, _arms_order, _no_data, arm_palette, feature_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_kaplan_meier"]

_ENDPOINT_NAMES = {"pfs": "progression-free survival", "os": "overall survival"}
_LINESTYLES = {"high": "-", "low": "--"}


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
    """Kaplan-Meier curves by the median split of the early change, one panel per arm.

    In each arm's panel the ``high`` group (early change above the arm's median; solid) and the
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
        The ``km`` table of :func:`cytotrial.tl.survival_tables`: each panel then states the
        log-rank p and each group's median (months); None: no statistics written.
    arm_colors
        Fixed arm colours, arm -> colour (see :func:`arm_palette`).
    arms
        Panel order (the config's arms; others after, sorted).
    labels, ratios
        The config's population labels and ratios (the title, see :func:`feature_label`).
    alpha
        Level of the bands.
    """
    import seaborn as sns

    if endpoint not in SURVIVAL_ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; choose from {list(SURVIVAL_ENDPOINTS)}")
    time, event = SURVIVAL_ENDPOINTS[endpoint]
    cell = data[(data["population"] == population) & (data["compartment"] == compartment)]
    if {time, event} <= set(cell.columns):
        cell = cell[cell["group"].isin(SPLIT_GROUPS) & cell[time].notna() & cell[event].notna()]
    else:
        cell = cell.iloc[:0]
    order = _arms_order(cell["arm"], None, arms) or ["no data"]
    colours = arm_palette(order, arm_colors)
    fig = Figure(figsize=(_PANEL_W * len(order) + 0.6, _PANEL_H + 1.4), layout="constrained")
    with sns.axes_style("ticks"):
        axes = np.asarray(fig.subplots(1, len(order), squeeze=False, sharex=True, sharey=True))[0]
    for ax, arm in zip(axes, order):
        own = cell[cell["arm"] == arm]
        if own.empty:
            _no_data(ax)
            continue
        stats = None if km is None else _km_rows(km, population, compartment, endpoint, arm)
        _draw_arm(ax, own, time, event, colour=colours[arm], alpha=alpha, stats=stats)
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("months", fontsize=8)
    axes[0].set_ylabel(_ENDPOINT_NAMES.get(endpoint, endpoint), fontsize=8)
    sns.despine(fig=fig)
    label = feature_label(population, labels=labels, ratios=ratios)
    fig.suptitle(
        f"{label}, {compartment}: early change above (high) or at/below (low) the arm's median",
        fontsize=9,
    )
    return fig


def _km_rows(
    km: pd.DataFrame, population: str, compartment: str, endpoint: str, arm: str
) -> pd.DataFrame:
    """The ``km`` rows of one panel, indexed by group."""
    rows = km[
        (km["population"] == population)
        & (km["compartment"] == compartment)
        & (km["endpoint"] == endpoint)
        & (km["arm"] == arm)
    ]
    return rows.set_index("group")


def _draw_arm(
    ax: Axes,
    own: pd.DataFrame,
    time: str,
    event: str,
    *,
    colour: str,
    alpha: float,
    stats: pd.DataFrame | None,
) -> None:
    """One arm's panel: each group's step curve, band and censoring ticks, and a legend."""
    handles = []
    for group in SPLIT_GROUPS:
        sub = own[own["group"] == group]
        text = f"{group} (n={len(sub)})"
        if stats is not None and group in stats.index:
            median = float(stats.loc[group, "median_months"])
            text += f", median {median:.1f}" if np.isfinite(median) else ", median not reached"
        handles.append(Line2D([], [], color=colour, ls=_LINESTYLES[group], lw=1.6, label=text))
        if sub.empty:
            continue
        curve = kaplan_meier_curve(
            sub[time].to_numpy(dtype=float), sub[event].to_numpy(dtype=int), alpha=alpha
        )
        x, y = curve["time"].to_numpy(), curve["survival"].to_numpy()
        (line,) = ax.step(x, y, where="post", color=colour, ls=_LINESTYLES[group], lw=1.6)
        line.set_gid(f"km:{group}")
        ax.fill_between(
            x,
            curve["ci_low"].to_numpy(),
            curve["ci_high"].to_numpy(),
            step="post",
            color=colour,
            alpha=0.12 if group == "high" else 0.06,
            lw=0,
        )
        censored = curve["censored"].to_numpy() > 0
        ax.plot(x[censored], y[censored], ls="", marker="|", ms=6, color=colour)
    if stats is not None and len(stats):
        p = float(stats["logrank_p"].iloc[0])
        handles.append(
            Line2D([], [], ls="", label=f"log-rank p = {p:.3g}" if np.isfinite(p) else "no test")
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.tick_params(labelsize=8)
    ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=False)
