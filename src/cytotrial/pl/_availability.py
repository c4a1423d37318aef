"""Sample availability: each patient's scheduled visits, what was analysed and why the rest is not.

Drawn with :mod:`seaborn.objects` from the sample sheet, the sample QC table
(``results/qc/samples.tsv``: ``status`` ok, flagged or excluded) and the statistics' missing
samples table (``results/stats/missing_samples.tsv``: dropout at progression or missed): one
facet per arm and compartment, a lane per patient across the compartment's visits (clinical
order), one mark per scheduled visit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.lines import Line2D

from ._layout import (
    LINE_CODES,
    block_figure,
    draw_on,
    drop_pads,
    facet_order,
    figure_title,
    lines_by,
    visit_ticks,
    with_line_codes,
    wrap_columns,
)
from ._style import _arms_order, _visit_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AVAILABILITY_STATUSES", "availability_status", "plot_sample_availability"]

#: Status of a scheduled visit -> (marker, colour, filled) in the figure, in legend order.
AVAILABILITY_STATUSES: dict[str, tuple[str, str, bool]] = {
    "analysed": ("o", "#252525", True),
    "analysed, flagged": ("o", "#E69F00", True),
    "excluded at QC": ("X", "#B2182B", True),
    "missed": ("o", "#7F7F7F", False),
    "after progression": (">", "#BDBDBD", True),
}
_QC_STATUS = {"ok": "analysed", "flagged": "analysed, flagged", "excluded": "excluded at QC"}
_REASONS = {"dropout at progression": "after progression", "missed sample": "missed"}
_ROW_H = 0.17  # inches per patient lane
_COLUMN_W = 0.5  # inches per visit


def availability_status(
    sheet: pd.DataFrame, qc: pd.DataFrame, missing: pd.DataFrame
) -> pd.DataFrame:
    """One row per patient, compartment and scheduled visit, with what became of it.

    Parameters
    ----------
    sheet
        The sample sheet (``sample_id, patient_id, arm, compartment, visit, cycle, day``).
    qc
        The sample QC table (``sample_id, status``).
    missing
        The missing samples table (``compartment, visit, arm, patient_id, reason``).

    Returns
    -------
    pandas.DataFrame
        ``patient_id, arm, compartment, visit, status`` with ``status`` a key of
        :data:`AVAILABILITY_STATUSES`: from the QC status of each sheet row (a row without one
        is ``excluded at QC``), and ``after progression`` or ``missed`` for the visits of the
        missing samples table that have no sample.
    """
    status = (
        sheet["sample_id"]
        .astype(str)
        .map(dict(zip(qc["sample_id"].astype(str), qc["status"].astype(str))))
    )
    taken = sheet.assign(status=status.map(_QC_STATUS).fillna("excluded at QC"))
    absent = missing[missing["reason"].isin(list(_REASONS))]
    absent = absent.assign(status=absent["reason"].map(_REASONS))
    columns = ["patient_id", "arm", "compartment", "visit", "status"]
    rows = pd.concat([taken[columns], absent[columns]], ignore_index=True)
    return rows.astype(dict.fromkeys(columns, str))


def plot_sample_availability(
    status: pd.DataFrame,
    visits: pd.DataFrame,
    *,
    arms: Sequence[str] | None = None,
) -> Figure:
    """Who has which visit: a lane per patient, a mark per scheduled visit, by arm and compartment.

    Parameters
    ----------
    status
        :func:`availability_status`.
    visits
        ``compartment, visit, cycle, day`` of the sheet (the visits' clinical order).
    arms
        Arm order (the config's arms; others after, sorted); each arm's compartments side by
        side.
    """
    order = _arms_order(status["arm"], None, arms)
    comps = sorted(set(status["compartment"]))
    schedule = {c: _visit_order(visits[visits["compartment"] == c]) for c in comps}
    patients = {
        arm: sorted(set(status.loc[status["arm"] == arm, "patient_id"]), reverse=True)
        for arm in order
    }
    table = status.assign(
        _x=[schedule[c].index(v) for c, v in zip(status["compartment"], status["visit"])],
        _y=[patients[a].index(p) for a, p in zip(status["arm"], status["patient_id"])],
        _facet=[f"{a}\n{c}" for a, c in zip(status["arm"], status["compartment"])],
    )
    facets = [f"{a}\n{c}" for a in order for c in comps]
    height = max(_ROW_H * max(len(p) for p in patients.values()) + 0.9, 1.8)
    width = max(_COLUMN_W * max(len(v) for v in schedule.values()) + 1.3, 2.4)
    columns = wrap_columns([len(facets)], panel=(width, height), step=len(comps))
    fig, (sub,) = block_figure([len(facets)], columns, panel=(width, height))
    shown = [s for s in AVAILABILITY_STATUSES if s in set(table["status"])]
    plot = _availability_plot(table, facet_order(facets, columns), columns, shown)
    draw_on(plot, sub)
    axes = drop_pads(sub, facet_order(facets, columns))
    for arm in order:
        for compartment in comps:
            ax = axes[f"{arm}\n{compartment}"]
            visit_ticks(ax, schedule[compartment], rotate=len(schedule[compartment]) > 6)
            ax.set_yticks(range(len(patients[arm])), patients[arm], fontsize=7)
            # an arm's compartments are side by side on the same lanes: its first names them
            # (at phase 3 the labels were half the figure's drawing time)
            ax.tick_params(axis="y", labelleft=compartment == comps[0])
            ax.set_ylim(-0.7, len(patients[arm]) - 0.3)
    counts = table["status"].value_counts()
    _status_legend(fig, counts, shown)
    analysed = counts.get("analysed", 0) + counts.get("analysed, flagged", 0)
    figure_title(
        fig,
        f"Sample availability: each patient's scheduled visits ({analysed} of {len(table)} "
        "analysed)",
        size=11,
    )
    return fig


def _availability_plot(table: pd.DataFrame, facets: list[str], columns: int, shown: list[str]):
    """The seaborn Plot: a grey lane per patient, a mark per scheduled visit by its status."""
    import seaborn.objects as so

    return (
        so.Plot(with_line_codes(table, "patient_id"), x="_x", y="_y")
        # the lanes under the marks
        .add(
            lines_by(color="0.85", linewidth=3, artist_kws={"zorder": 0.5}),
            line=LINE_CODES,
            legend=False,
        )
        .add(
            so.Dot(pointsize=6, edgewidth=1.2),
            marker="status",
            color="status",
            fill="status",
            legend=False,
        )
        .facet(col="_facet", order=facets, wrap=columns)
        .share(x=False, y=False)
        .scale(
            marker=so.Nominal({s: AVAILABILITY_STATUSES[s][0] for s in shown}, order=shown),
            color=so.Nominal({s: AVAILABILITY_STATUSES[s][1] for s in shown}, order=shown),
            fill=so.Nominal({s: AVAILABILITY_STATUSES[s][2] for s in shown}, order=shown),
        )
        .label(x="visit", y="patient")
    )


def _status_legend(fig: Figure, counts: pd.Series, shown: list[str]) -> None:
    """The statuses drawn, each with its mark and its number of visits, below the figure."""
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker=marker,
            color=colour,
            markerfacecolor=colour if filled else "none",
            ms=7,
            label=f"{status} ({counts.get(status, 0)})",
        )
        for status, (marker, colour, filled) in AVAILABILITY_STATUSES.items()
        if status in shown
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9
    )
