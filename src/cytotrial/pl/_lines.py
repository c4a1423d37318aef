"""Change from baseline over visits: arm means with their interval, and each patient's line.

Drawn with :mod:`seaborn.objects`: one block of facets per compartment (its own visits, in
clinical order), one facet per analysed feature (populations, ratios, MFIs) in the same place in
every block, titled with the feature's label and the unit of the compartment's measure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D

from ..tl import measure_unit
from ._layout import (
    LINE_CODES,
    block_figure,
    draw_on,
    drop_pads,
    facet_order,
    figure_title,
    heading,
    legend_below,
    lines_by,
    mark_zero,
    no_data,
    unique_titles,
    visit_ticks,
    with_line_codes,
    wrap_columns,
)
from ._style import _arms_order, _panel_layout, _visit_order, arm_palette, feature_label

if TYPE_CHECKING:
    import seaborn.objects as so
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_patient_lines", "plot_trajectories"]

_Y_LABEL = "log2 fold change\nfrom baseline"


def _titles(
    block: pd.DataFrame,
    pops: Sequence[str],
    labels: Mapping[str, str] | None,
    ratios: Mapping[str, Sequence[str]] | None,
) -> dict[str, str]:
    """Feature -> facet title: its label and, below, the unit of its measure in the block."""
    measures = block.drop_duplicates("population").set_index("population")["measure"]
    titles = {}
    for population in pops:
        label = feature_label(population, labels=labels, ratios=ratios)
        unit = measure_unit(str(measures[population])) if population in measures.index else ""
        titles[population] = f"{label}\n{unit}" if unit else label
    return unique_titles(titles)


def _draw_blocks(
    table: pd.DataFrame,
    *,
    pops: Sequence[str],
    comps: Sequence[str],
    text: Mapping[str, Mapping | None],
    layers: Callable[[so.Plot], so.Plot],
    x_offset: Mapping[str, float] | None = None,
) -> tuple[Figure, dict[tuple[str, str], Axes]]:
    """One block per compartment, one facet per feature, drawn by ``layers`` on a seaborn Plot.

    Returns the figure and (compartment, feature) -> its axes.
    """
    import seaborn.objects as so

    columns = wrap_columns([len(pops)] * len(comps))
    fig, blocks = block_figure([len(pops)] * len(comps), columns)
    found: dict[tuple[str, str], Axes] = {}
    for sub, compartment in zip(blocks, comps):
        block = table[table["compartment"] == compartment]
        titles = _titles(block, pops, text["labels"], text["ratios"])
        visits = _visit_order(block)
        position = {visit: i for i, visit in enumerate(visits)}
        shift = block["arm"].map(x_offset or {}).fillna(0.0)
        data = block.assign(
            _x=block["visit"].map(position).astype(float) + shift,
            _facet=block["population"].map(titles),
        )
        if "patient_id" in data:  # a line per patient (lines_by)
            data = with_line_codes(data, "patient_id")
        order = facet_order([titles[p] for p in pops], columns)
        plot = layers(so.Plot(data, x="_x", color="arm"))
        plot = plot.facet(col="_facet", order=order, wrap=columns).share(x=True, y=False)
        draw_on(plot.label(x="visit", y=_Y_LABEL), sub)
        axes = drop_pads(sub, order)
        for population in pops:
            ax = axes[titles[population]]
            found[(compartment, population)] = ax
            visit_ticks(ax, visits, rotate=len(visits) > 6)
            if block[block["population"] == population].empty:
                no_data(ax)
            else:
                mark_zero(ax)
        heading(sub, compartment)
    return fig, found


def _name_lines(
    axes: Mapping[tuple[str, str], Axes], colours: Mapping[str, str], kind: str
) -> None:
    """Give each arm's line its id ``<kind>:<arm>`` (the lines are told apart by colour)."""
    arm_of = {to_hex(colour): arm for arm, colour in colours.items()}
    for ax in axes.values():
        for line in ax.lines:
            arm = arm_of.get(to_hex(line.get_color()))
            if arm is not None and line.get_gid() is None:
                line.set_gid(f"{kind}:{arm}")


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

    One block per compartment (every compartment of the table, sorted), one facet per feature.

    Parameters
    ----------
    summary
        The ``summary`` table (:func:`cytotrial.tl.summary_table`).
    arm_colors
        Fixed arm colours, arm -> colour (the config's ``arms:``; see :func:`arm_palette`); their
        order is the legend's.
    labels, ratios
        The config's population labels and ratios: facet titles (see :func:`feature_label`).
    populations, compartments
        The features (facets) and compartments (blocks) drawn, in this order (others of the table
        are left out); default: every one of the table, features in its order, compartments
        sorted.
    reference_arm
        Drawn last in the legend.
    alpha
        Only for the title: the intervals are the table's ``1 - alpha`` t-intervals.
    """
    import seaborn.objects as so

    summary = summary[summary["n_log2fc"] > 0]
    pops, comps = _panel_layout(summary, populations, compartments)
    arms = _arms_order(summary["arm"], reference_arm, list(arm_colors or {}))
    colours = {arm: arm_palette(arms, arm_colors)[arm] for arm in arms}
    offsets = {a: (i - (len(arms) - 1) / 2) * 0.08 for i, a in enumerate(arms)}

    def layers(plot: so.Plot) -> so.Plot:
        return (
            plot.add(so.Range(linewidth=1.3), ymin="ci_low", ymax="ci_high", legend=False)
            .add(so.Line(marker="o", pointsize=4.5, linewidth=1.8), y="mean_log2fc", legend=False)
            .scale(color=so.Nominal(colours, order=arms))
        )

    fig, axes = _draw_blocks(
        summary,
        pops=pops,
        comps=comps,
        text={"labels": labels, "ratios": ratios},
        layers=layers,
        x_offset=offsets,
    )
    _name_lines(axes, colours, "mean")
    legend_below(fig, colours)
    level = round(100 * (1 - alpha))
    figure_title(
        fig,
        f"Change from baseline by arm: mean log2 fold change with its {level}% t-interval",
        size=11,
    )
    return fig


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
    import seaborn.objects as so

    pops, comps = _panel_layout(log2fc, populations, compartments)
    arms = _arms_order(log2fc["arm"], reference_arm, list(arm_colors or {}))
    colours = {arm: arm_palette(arms, arm_colors)[arm] for arm in arms}

    def layers(plot: so.Plot) -> so.Plot:
        return (
            plot.add(lines_by(alpha=0.3, linewidth=0.8), y="log2fc", line=LINE_CODES, legend=False)
            .add(
                so.Line(marker="o", pointsize=5, linewidth=2.4),
                so.Agg("median"),
                y="log2fc",
                legend=False,
            )
            .scale(color=so.Nominal(colours, order=arms))
        )

    table = log2fc[log2fc["log2fc"].notna()]
    fig, axes = _draw_blocks(
        table,
        pops=pops,
        comps=comps,
        text={"labels": labels, "ratios": ratios},
        layers=layers,
    )
    _name_lines(axes, colours, "median")
    faint = Line2D([], [], color="0.4", alpha=0.4, lw=0.8, label="one patient")
    legend_below(fig, colours, extra=[faint])
    figure_title(fig, "Change from baseline per patient (faint) and arm median (bold)", size=11)
    return fig
