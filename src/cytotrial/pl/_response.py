"""Change from baseline by best overall response: spider plots and a waterfall of the early change.

Drawn with :mod:`seaborn.objects` from the ``log2fc`` table and the patients table (best overall
response, RECIST: CR, PR, SD, PD, NE): one block per compartment; in it one facet per key feature
and arm, the arms of a feature side by side on one y scale; each patient coloured by best response.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..tl import RESPONSE_CATEGORIES
from ._layout import (
    LINE_CODES,
    RESPONSE_COLOURS,
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
    placeholder,
    unique_titles,
    visit_ticks,
    with_line_codes,
    wrap_columns,
)
from ._style import _arms_order, _visit_order, feature_label

if TYPE_CHECKING:
    import seaborn.objects as so
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_spider", "plot_waterfall"]

_NO_RESPONSE = "NE"  # a patient missing from the patients table is not evaluable
#: A waterfall panel names its patients under their bars up to this many patients.
_NAMED_BARS = 40


def _with_response(log2fc: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """``log2fc`` rows with a change, each with its patient's best response (NE when unknown)."""
    response = dict(zip(patients["patient_id"].astype(str), patients["best_response"].astype(str)))
    table = log2fc[np.isfinite(log2fc["log2fc"].to_numpy(dtype=float))]
    best = table["patient_id"].astype(str).map(response).fillna(_NO_RESPONSE)
    return table.assign(best_response=best.where(best.isin(RESPONSE_CATEGORIES), _NO_RESPONSE))


def _pair_titles(
    block: pd.DataFrame,
    features: Sequence[str],
    arms: Sequence[str],
    text: Mapping[str, Mapping | None],
) -> dict[tuple[str, str], str]:
    """(feature, arm) -> facet title: the feature's label, the arm and its number of patients."""
    names = unique_titles(
        {f: feature_label(f, labels=text["labels"], ratios=text["ratios"]) for f in features}
    )
    titles = {}
    for feature in features:
        for arm in arms:
            own = block[(block["population"] == feature) & (block["arm"] == arm)]
            titles[(feature, arm)] = f"{names[feature]}\n{arm} (n={own['patient_id'].nunique()})"
    return titles


def _paired_blocks(
    table: pd.DataFrame,
    comps: Sequence[str],
    features: Sequence[str],
    arms: Sequence[str],
    text: Mapping[str, Mapping | None],
    draw: Callable[[pd.DataFrame, list[str], int], so.Plot],
) -> tuple[Figure, list[tuple[str, pd.DataFrame, dict[tuple[str, str], Axes]]]]:
    """One block per compartment, a facet per (feature, arm), features' arms side by side.

    ``draw(block, order, columns)`` makes the seaborn Plot of a block (facets ``_facet``).
    Returns the figure and, per block, its compartment, rows and (feature, arm) -> axes; the
    arms of a feature share their y limits.
    """
    n = len(features) * len(arms)
    columns = wrap_columns([n] * len(comps), step=len(arms))  # a feature's arms in one row
    fig, subs = block_figure([n] * len(comps), columns)
    drawn = []
    for sub, compartment in zip(subs, comps):
        block = table[(table["compartment"] == compartment) & table["arm"].isin(arms)]
        titles = _pair_titles(block, features, arms, text)
        block = block.assign(
            _facet=[titles.get(key, "") for key in zip(block["population"], block["arm"])]
        )
        order = facet_order(list(titles.values()), columns)
        draw_on(draw(block, order, columns), sub)
        named = drop_pads(sub, order)
        axes = {key: named[title] for key, title in titles.items()}
        for feature in features:
            pair = [axes[(feature, arm)] for arm in arms]
            low = min(ax.get_ylim()[0] for ax in pair)
            high = max(ax.get_ylim()[1] for ax in pair)
            for ax in pair:
                ax.set_ylim(low, high)
        drawn.append((compartment, block, axes))
    return fig, drawn


def _responses_present(table: pd.DataFrame) -> dict[str, str]:
    present = set(table["best_response"])
    return {r: RESPONSE_COLOURS[r] for r in RESPONSE_CATEGORIES if r in present}


def plot_spider(
    log2fc: pd.DataFrame,
    patients: pd.DataFrame | None,
    *,
    features: Sequence[str],
    arms: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> Figure:
    """Each patient's change from baseline over the visits, coloured by best overall response.

    One block per compartment with a change after baseline; in it one facet per feature and
    arm (the arms of a feature side by side, one y scale); one line per patient.

    Parameters
    ----------
    log2fc
        The ``log2fc`` table (:func:`cytotrial.tl.log2_fold_changes`).
    patients
        The patients table (:func:`cytotrial.tl.read_patients`) with ``best_response``; None: a
        placeholder figure saying so.
    features
        The features drawn (e.g. the primary family's), in this order.
    arms
        Arm order (the config's arms; others after, sorted).
    labels, ratios
        The config's population labels and ratios (facet titles).
    """
    import seaborn.objects as so

    if patients is None:
        return placeholder("no patients table: spider plots colour each patient by best response")
    table = _with_response(log2fc[log2fc["population"].isin(features)], patients)
    after = table[table["sample_id"] != table["baseline_sample_id"]]
    comps = sorted(set(after["compartment"]))
    if not comps:
        return placeholder("no change from baseline to draw")
    order = _arms_order(table["arm"], None, arms)
    feats = [f for f in features if f in set(table["population"])]
    colours = _responses_present(table)
    visits = {c: _visit_order(table[table["compartment"] == c]) for c in comps}

    def draw(block: pd.DataFrame, facets: list[str], columns: int) -> so.Plot:
        position = {v: i for i, v in enumerate(_visit_order(block))}
        return (
            so.Plot(
                with_line_codes(block.assign(_x=block["visit"].map(position)), "patient_id"),
                x="_x",
                y="log2fc",
            )
            # one collection of lines and one of points per facet, not an artist per patient,
            # split per patient by the mark: a phase 3 trial has hundreds of patients per facet
            .add(
                lines_by(linewidth=1.1, alpha=0.85),
                color="best_response",
                line=LINE_CODES,
                legend=False,
            )
            .add(so.Dots(pointsize=3, alpha=0.85), color="best_response", legend=False)
            .facet(col="_facet", order=facets, wrap=columns)
            .share(x=True, y=False)
            .scale(color=so.Nominal(colours, order=list(colours)))
            .label(x="visit", y="log2 fold change\nfrom baseline")
        )

    text = {"labels": labels, "ratios": ratios}
    fig, drawn = _paired_blocks(table, comps, feats, order, text, draw)
    for (compartment, block, axes), sub in zip(drawn, fig.subfigs):
        for (feature, arm), ax in axes.items():
            visit_ticks(ax, visits[compartment], rotate=len(visits[compartment]) > 6)
            own = block[(block["population"] == feature) & (block["arm"] == arm)]
            if own.empty:
                no_data(ax)
            else:
                mark_zero(ax)
        heading(sub, compartment)
    legend_below(fig, colours, marker="o", lw=1.5, title="best overall response")
    figure_title(
        fig,
        "Each patient's change from baseline over the visits, coloured by best overall response",
        size=11,
    )
    return fig


def plot_waterfall(
    log2fc: pd.DataFrame,
    patients: pd.DataFrame | None,
    *,
    response_visit: str,
    features: Sequence[str],
    arms: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    ratios: Mapping[str, Sequence[str]] | None = None,
) -> Figure:
    """The early change of each patient (a bar, sorted), coloured by best overall response.

    One block per compartment sampled at ``response_visit``; one facet per feature and arm (the
    arms of a feature side by side, one y scale); bars from the largest rise to the largest
    fall, labelled by patient.

    Parameters
    ----------
    log2fc, patients, features, arms, labels, ratios
        As in :func:`plot_spider`.
    response_visit
        The visit of the early change (the analysis' ``response_visit``, resolved).
    """
    import seaborn.objects as so

    if patients is None:
        return placeholder("no patients table: the waterfall colours each patient by best response")
    table = _with_response(log2fc[log2fc["population"].isin(features)], patients)
    table = table[table["visit"] == response_visit]
    comps = sorted(set(table["compartment"]))
    if not response_visit or not comps:
        return placeholder(f"no early change at {response_visit or 'a response visit'}")
    order = _arms_order(table["arm"], None, arms)
    feats = [f for f in features if f in set(table["population"])]
    colours = _responses_present(table)
    # each facet's bars from the largest rise to the largest fall (ties by patient)
    table = table.sort_values(
        ["population", "arm", "log2fc", "patient_id"], ascending=[True, True, False, True]
    )
    table = table.assign(_x=table.groupby(["compartment", "population", "arm"]).cumcount())

    def draw(block: pd.DataFrame, facets: list[str], columns: int) -> so.Plot:
        return (
            so.Plot(block, x="_x", y="log2fc", color="best_response")
            .add(so.Bar(width=0.8, edgewidth=0, alpha=1), legend=False)
            .facet(col="_facet", order=facets, wrap=columns)
            .share(x=False, y=False)
            .scale(color=so.Nominal(colours, order=list(colours)))
            .label(x="patient", y=f"log2 fold change\nat {response_visit}")
        )

    text = {"labels": labels, "ratios": ratios}
    fig, drawn = _paired_blocks(table, comps, feats, order, text, draw)
    for (compartment, block, axes), sub in zip(drawn, fig.subfigs):
        for (feature, arm), ax in axes.items():
            own = block[(block["population"] == feature) & (block["arm"] == arm)]
            if len(own) <= _NAMED_BARS:
                ax.set_xticks(range(len(own)), list(own["patient_id"]), rotation=90, fontsize=6)
                ax.tick_params(axis="x", labelbottom=True)
            else:  # hundreds of patients: their ranks, not names no one could read
                ax.set_xlabel("patients, ranked")
            ax.set_xlim(-0.6, max(len(own), 1) - 0.4)
            if own.empty:
                no_data(ax)
            else:
                mark_zero(ax)
        heading(sub, f"{compartment}: early change at {response_visit}")
    legend_below(fig, colours, marker="s", lw=0, title="best overall response")
    figure_title(
        fig,
        f"Waterfall of the early change at {response_visit}: each patient's log2 fold change "
        "from baseline, sorted, coloured by best overall response",
        size=11,
    )
    return fig
