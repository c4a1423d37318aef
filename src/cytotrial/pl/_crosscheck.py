"""Figures of the event-level cross-check, drawn with seaborn from the clustered events.

The events come from :func:`cytotrial.tl.subsample_events` and :func:`cytotrial.tl.cluster_events`
(``obsm['X_umap']``, ``obs['leiden']``, ``obs['population']``, ``obs['arm']``, ``obs['visit']``,
``obs['compartment']``). Three figures, each a question of its own:

- ``umap_population``: do the gated populations form the islands the clusters find? The
  embedding coloured by gated population, beside the Leiden clusters.
- ``umap_density_difference``: where in the embedding do the arms differ at each visit? Each
  arm's density minus the reference arm's (:func:`cytotrial.tl.arm_density_differences`), one
  panel per compartment and visit in clinical order, a diverging scale between the arms' colours.
- ``cluster_markers``: what is each cluster? Its median scaled intensity of every marker, named by
  the gated population most of its events belong to, with its size.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._layout import figure_title, heading, no_data, theme
from ._style import arm_palette, save_figure

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import SubFigure

    from ..tl import DensityDifference

__all__ = [
    "CROSSCHECK_FIGURES",
    "plot_cluster_markers",
    "plot_density_difference",
    "plot_umap_population",
    "write_crosscheck_figures",
]

#: The figures of the cross-check, in the order :func:`write_crosscheck_figures` writes them.
CROSSCHECK_FIGURES = ("umap_population", "umap_density_difference", "cluster_markers")
_OTHER = "other"
_PANEL = 2.6  # inches: one square density panel
_MIDDLE = "#f7f7f7"  # the diverging scale's centre: no difference
_MARKER_LIMIT = 3.0  # SD: where the marker heatmap's colours end


def _label(name: str, labels: Mapping[str, str] | None) -> str:
    return str((labels or {}).get(name, name))


def _population_order(present: Sequence[str], populations: Sequence[str] | None) -> list[str]:
    """Gated labels present: in ``populations`` order, the others sorted, ``other`` last."""
    found = set(present)
    ordered = [p for p in (populations or []) if p in found and p != _OTHER]
    ordered += sorted(found - set(ordered) - {_OTHER})
    return ordered + ([_OTHER] if _OTHER in found else [])


def _population_palette(order: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A colour per gated label (in legend order), the same in every figure of the cross-check."""
    import seaborn as sns

    colours = sns.color_palette("tab10" if len(order) <= 10 else "tab20", len(order))
    return {name: colours[i] for i, name in enumerate(order)}


def _population_handles(
    order: Sequence[str], palette: Mapping, labels: Mapping[str, str] | None, counts: Mapping
) -> list[Line2D]:
    return [
        Line2D([], [], ls="", marker="o", markersize=6, color=palette[name],
               label=f"{_label(name, labels)} ({counts[name]:,})")
        for name in order
    ]  # fmt: skip


def _umap_axes(ax: Axes) -> None:
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_umap_population(
    events: AnnData,
    *,
    labels: Mapping[str, str] | None = None,
    populations: Sequence[str] | None = None,
    ari: float | None = None,
) -> Figure:
    """Events coloured by gated population (legend at the right), beside the Leiden clusters.

    Parameters
    ----------
    events
        Clustered events.
    labels
        Population name -> its label (the config's); names without one are shown as they are.
    populations
        Order of the populations in the legend (the config's; the others sorted, ``other`` last).
    ari
        Adjusted Rand index of clusters vs gates, in the cluster panel's title.
    """
    with rc_context(theme()):
        return _umap_population(events, labels=labels, populations=populations, ari=ari)


def _umap_population(
    events: AnnData,
    *,
    labels: Mapping[str, str] | None,
    populations: Sequence[str] | None,
    ari: float | None,
) -> Figure:
    import seaborn as sns

    coords = np.asarray(events.obsm["X_umap"])
    gated = events.obs["population"].astype(str).to_numpy()
    order = _population_order(gated, populations)
    counts = pd.Series(gated).value_counts()
    palette = _population_palette(order)
    clusters = events.obs["leiden"].astype(int).to_numpy()
    n = int(clusters.max()) + 1
    fig = Figure(figsize=(13.5, 5.6), layout="constrained")
    axes = fig.subplots(1, 2)
    sns.scatterplot(
        x=coords[:, 0], y=coords[:, 1], hue=gated, hue_order=order, palette=palette,
        s=3, linewidth=0, legend=False, rasterized=True, ax=axes[0],
    )  # fmt: skip
    sns.scatterplot(
        x=coords[:, 0], y=coords[:, 1], hue=clusters,
        palette=sns.color_palette("tab20" if n <= 20 else "husl", n),
        s=3, linewidth=0, legend=False, rasterized=True, ax=axes[1],
    )  # fmt: skip
    for c in np.unique(clusters):
        centre = np.median(coords[clusters == c], axis=0)
        axes[1].text(centre[0], centre[1], str(c), fontsize=8, weight="bold", ha="center")
    axes[0].set_title("Events coloured by gated population")
    # the share of events whose cluster is mostly of their own gated population
    crossed = pd.crosstab(clusters, gated)
    purity = crossed.max(axis=1).sum() / max(1, len(gated))
    title = (
        f"Leiden clusters, found without the gates\n{purity:.1%} of events in a cluster made "
        "mostly of their own gated population"
    )
    if ari is not None:
        title += f"\nadjusted Rand index of clusters vs gates {ari:.2f}"
    axes[1].set_title(title)
    for ax in axes:
        _umap_axes(ax)
    fig.legend(
        handles=_population_handles(order, palette, labels, counts), loc="outside right upper", title="gated population (events)",
        frameon=False, fontsize=8, title_fontsize=8.5,
    )  # fmt: skip
    return fig


def _arm_scale(reference: str, arm: str, colours: Mapping[str, str]) -> LinearSegmentedColormap:
    """Diverging colours from the reference arm's colour through near-white to the arm's."""
    return LinearSegmentedColormap.from_list(
        f"{reference}-{arm}", [colours[reference], _MIDDLE, colours[arm]]
    )


def _density_panel(
    ax: Axes, panel: DensityDifference, *, cmap: LinearSegmentedColormap, limit: float
) -> None:
    """One compartment, visit and arm: the difference as a seaborn heatmap, the events outlined."""
    import seaborn as sns

    ax.set_title(
        f"{panel.visit}\n{panel.arm}: {panel.n_arm} vs {panel.reference}: {panel.n_reference} samples",
        fontsize=8.5,
    )
    if panel.difference is None:
        missing = panel.arm if not panel.n_arm else panel.reference
        no_data(ax, f"no {missing} sample")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    sns.heatmap(
        panel.difference[::-1], cmap=cmap, vmin=-limit, vmax=limit, cbar=False, square=True,
        xticklabels=False, yticklabels=False, rasterized=True, ax=ax,
    )  # fmt: skip
    occupied = panel.occupied[::-1]
    if occupied.max() > 0:
        centres = np.arange(occupied.shape[0]) + 0.5
        ax.contour(
            centres, centres, occupied, levels=[0.05 * occupied.max()], colors="0.45",
            linewidths=0.5,
        )  # fmt: skip
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(True)
        ax.spines[side].set_color("0.75")


def _colour_bars(
    target: SubFigure,
    pairs: Sequence[tuple[str, str]],
    colours: Mapping[str, str],
    limit: float,
) -> None:
    """One horizontal scale per arm compared, its ends named by the arms."""
    axes = np.atleast_1d(target.subplots(1, len(pairs) + 2, width_ratios=[1, *[2] * len(pairs), 1]))
    axes[0].remove()
    axes[-1].remove()
    for ax, (arm, reference) in zip(axes[1:-1], pairs):
        scale = ScalarMappable(Normalize(-limit, limit), _arm_scale(reference, arm, colours))
        bar = target.colorbar(scale, cax=ax, orientation="horizontal")
        ax.set_label("<colorbar>")  # as matplotlib names the axes of a colour bar it makes
        bar.set_ticks([-limit, 0.0, limit])
        bar.set_ticklabels(
            [f"more {reference}\n\u2212{limit:.2g}", "0", f"more {arm}\n+{limit:.2g}"]
        )
        bar.ax.tick_params(labelsize=8)
        bar.set_label(
            f"density of {arm} minus {reference} (% of a sample's events per cell)", fontsize=8
        )


def _key_panel(
    ax: Axes,
    cells: np.ndarray,
    gated: np.ndarray,
    *,
    palette: Mapping,
    order: Sequence[str],
    bins: int,
) -> None:
    """The compartment's events coloured by gated population, on the density panels' grid."""
    import seaborn as sns

    sns.scatterplot(
        x=cells[:, 0], y=cells[:, 1], hue=gated, hue_order=[o for o in order if o in set(gated)],
        palette=palette, s=1.5, linewidth=0, legend=False, rasterized=True, ax=ax,
    )  # fmt: skip
    ax.set_xlim(0, bins)
    ax.set_ylim(bins, 0)  # as the heatmaps: rows from the top
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title("gated populations\n(every visit)", fontsize=8.5)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(True)
        ax.spines[side].set_color("0.75")


def _grid_coordinates(coords: np.ndarray, extent: Sequence[float], bins: int) -> np.ndarray:
    """Embedding coordinates in the heatmaps' cell units (x from the left, y from the top)."""
    x0, x1, y0, y1 = extent
    x = (coords[:, 0] - x0) / (x1 - x0) * bins
    y = bins - (coords[:, 1] - y0) / (y1 - y0) * bins
    return np.column_stack([x, y])


def plot_density_difference(
    extent: Sequence[float],
    panels: Sequence[DensityDifference],
    *,
    arm_colors: Mapping[str, str] | None = None,
    events: AnnData | None = None,
    labels: Mapping[str, str] | None = None,
    populations: Sequence[str] | None = None,
) -> Figure:
    """The arms' difference of density in the embedding, per compartment (blocks) and visit.

    Each block is a compartment: with ``events``, its first panel shows its events coloured by
    gated population (the key to the regions), then one panel per visit in clinical order and
    arm compared: the arm's density minus the reference arm's on a diverging scale between their
    colours (limits symmetric and shared by every panel), the outline of where the visit's events
    lie in grey.

    Parameters
    ----------
    extent
        The grid's extent in embedding units (:func:`cytotrial.tl.arm_density_differences`).
    panels
        One :class:`cytotrial.tl.DensityDifference` per compartment, visit and arm compared.
    arm_colors
        Colour of each arm (the config's ``arms:``): each scale runs from the reference arm's
        colour to the compared arm's.
    events
        The clustered events (``obsm['X_umap']``, ``obs['population']``, ``obs['compartment']``)
        for the key panels; None: no key.
    labels, populations
        Population labels and their order (the config's), for the key's legend.
    """
    with rc_context(theme()):
        if not panels:
            fig = Figure(figsize=(6, 3), layout="constrained")
            no_data(fig.subplots(), "no events to compare")
            return fig
        fig = _density_difference(panels, arm_colors=arm_colors, keyed=events is not None)
        if events is not None:
            bins = panels[0].occupied.shape[0]
            _draw_keys(fig, events, extent, bins, labels=labels, populations=populations)
        return fig


def _density_difference(
    panels: Sequence[DensityDifference], *, arm_colors: Mapping[str, str] | None, keyed: bool
) -> Figure:
    compartments = list(dict.fromkeys(p.compartment for p in panels))
    pairs = list(dict.fromkeys((p.arm, p.reference) for p in panels))
    colours = arm_palette([a for pair in pairs for a in pair], arm_colors)
    finite = [np.abs(p.difference).max() for p in panels if p.difference is not None]
    limit = float(max(finite)) if finite and max(finite) > 0 else 1.0
    visits = {
        c: list(dict.fromkeys(p.visit for p in panels if p.compartment == c)) for c in compartments
    }
    first = int(keyed)  # the key's column
    columns = first + max(len(v) for v in visits.values())
    block_h = [len(pairs) * (_PANEL + 0.45) + 0.4 for _ in compartments]
    height = sum(block_h) + 1.2 + 0.6
    width = max(columns * _PANEL + 0.6 + 2.6 * keyed, height)
    fig = Figure(figsize=(width, height), layout="constrained")
    subfigures = fig.subfigures(len(compartments) + 1, 1, height_ratios=[*block_h, 1.2])
    for sub, compartment in zip(subfigures[:-1], compartments):
        heading(sub, compartment)
        axes = np.asarray(sub.subplots(len(pairs), columns, squeeze=False))
        for r, (arm, reference) in enumerate(pairs):
            cmap = _arm_scale(reference, arm, colours)
            for c in range(first, columns):
                visit = (
                    visits[compartment][c - first] if c - first < len(visits[compartment]) else None
                )
                found = [
                    p for p in panels
                    if p.compartment == compartment and p.arm == arm and p.visit == visit
                ]  # fmt: skip
                if found:
                    _density_panel(axes[r, c], found[0], cmap=cmap, limit=limit)
                else:
                    axes[r, c].remove()
            if keyed and r > 0:
                axes[r, 0].remove()
        if keyed:
            axes[0, 0].set_gid(f"key:{compartment}")
    _colour_bars(subfigures[-1], pairs, colours, limit)
    figure_title(
        fig,
        "Where the arms differ in the embedding, within each visit (each arm's density the mean "
        "of its samples'; grey: outline of where the visit's events lie)",
    )
    return fig


def _draw_keys(
    fig: Figure,
    events: AnnData,
    extent: Sequence[float],
    bins: int,
    *,
    labels: Mapping[str, str] | None,
    populations: Sequence[str] | None,
) -> None:
    """Each compartment's key panel and one legend of the gated populations."""
    coords = np.asarray(events.obsm["X_umap"], dtype=np.float64)
    gated = events.obs["population"].astype(str).to_numpy()
    compartment = events.obs["compartment"].astype(str).to_numpy()
    order = _population_order(gated, populations)
    palette = _population_palette(order)
    for ax in [ax for ax in fig.get_axes() if str(ax.get_gid()).startswith("key:")]:
        inside = compartment == str(ax.get_gid())[4:]
        cells = _grid_coordinates(coords[inside], extent, bins)
        _key_panel(ax, cells, gated[inside], palette=palette, order=order, bins=bins)
    counts = pd.Series(gated).value_counts()
    fig.legend(
        handles=_population_handles(order, palette, labels, counts), loc="outside right upper",
        title="gated population (events)", frameon=False, fontsize=8, title_fontsize=8.5,
    )  # fmt: skip


def _cluster_order(summary: pd.DataFrame, populations: Sequence[str] | None) -> list[str]:
    """Clusters grouped by their majority population (legend order), the largest first."""
    order = _population_order(summary["population"].tolist(), populations)
    rank = {name: i for i, name in enumerate(order)}
    ranked = summary.assign(
        _rank=summary["population"].map(rank), _size=-summary["events"]
    ).sort_values(["_rank", "_size", "cluster"], kind="mergesort")
    return ranked["cluster"].tolist()


def plot_cluster_markers(
    medians: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    populations: Sequence[str] | None = None,
) -> Figure:
    """Median scaled intensity of every marker per Leiden cluster, with each cluster's size.

    Rows are clusters, grouped by the gated population most of their events are in (in
    ``populations`` order), the largest first, named ``<cluster> · <population> (<share>)``;
    columns are markers; a bar per cluster gives its events.

    Parameters
    ----------
    medians, summary
        :func:`cytotrial.tl.cluster_markers`: clusters x markers, and each cluster's events,
        majority population and its fraction.
    labels
        Population name -> its label (the config's).
    populations
        Order of the populations (clusters are grouped by their majority population in it).
    """
    with rc_context(theme()):
        return _cluster_markers(medians, summary, labels=labels, populations=populations)


def _cluster_markers(
    medians: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None,
    populations: Sequence[str] | None,
) -> Figure:
    import seaborn as sns

    order = _cluster_order(summary, populations)
    info = summary.set_index("cluster").loc[order]
    grid = medians.loc[order]
    names = [
        f"{c} \u00b7 {_label(row.population, labels)} ({row.fraction:.0%})"
        for c, row in zip(order, info.itertuples())
    ]
    values = grid.to_numpy(dtype=float)
    # colours end at 3 SD (a marker far above the rest would pale every other cell); the cells
    # say their values
    limit = min(_MARKER_LIMIT, float(np.nanmax(np.abs(values)))) if values.size else 1.0
    limit = limit if limit > 0 else 1.0
    height = 0.3 * len(order) + 2.6
    width = max(3.6 + 0.6 * grid.shape[1] + 2.8, height)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[max(1.5, 0.6 * grid.shape[1]), 2.2])
    sns.heatmap(
        pd.DataFrame(values, index=names, columns=grid.columns), cmap="vlag",
        vmin=-limit, vmax=limit, annot=True, fmt=".1f", annot_kws={"fontsize": 7},
        linewidths=0.4, linecolor="white", ax=axes[0],
        cbar_kws={"label": "median intensity, scaled per marker (SD from its mean; colours end at "
                           f"\u00b1{limit:g})",
                  "orientation": "horizontal", "location": "bottom", "shrink": 0.8},
    )  # fmt: skip
    axes[0].set_ylabel("")
    axes[0].xaxis.tick_top()
    axes[0].tick_params(axis="both", length=0, labelsize=8)
    axes[0].tick_params(axis="x", rotation=90)
    sns.barplot(x=info["events"].to_numpy(), y=names, order=names, orient="h", color="0.65",
                errorbar=None, ax=axes[1])  # fmt: skip
    axes[1].bar_label(axes[1].containers[0], fmt="{:,.0f}", fontsize=7, padding=2)
    axes[1].set_yticks([])
    axes[1].set_ylim(len(order) - 0.5, -0.5)
    axes[1].set_xlabel("events in the cluster")
    axes[1].set_ylabel("")
    axes[1].margins(x=0.2)
    sns.despine(ax=axes[1], left=True)
    figure_title(
        fig,
        "Leiden clusters: each marker's median intensity (scaled per marker), the gated "
        "population most of the cluster's events are in, and the cluster's size",
        size=10,
    )
    return fig


def write_crosscheck_figures(
    events: AnnData,
    outputs: Mapping[str, str | Path],
    *,
    arm_colors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ari: float | None = None,
) -> None:
    """Draw and write the cross-check's figures (PNG and PDF beside each other).

    Parameters
    ----------
    events
        Clustered events (:func:`cytotrial.tl.cluster_events`).
    outputs
        Figure name (:data:`CROSSCHECK_FIGURES`) -> its path (``.png``; the PDF beside it).
    arm_colors
        Each arm's colour, in the config's order (the last arm is the reference of the density
        difference).
    labels
        Population name -> its label, in the config's order (legend and cluster names).
    ari
        Adjusted Rand index of clusters vs gates.
    """
    from ..tl import arm_density_differences, cluster_markers

    unknown = set(outputs) - set(CROSSCHECK_FIGURES)
    if unknown:
        raise ValueError(f"unknown cross-check figure(s): {', '.join(sorted(unknown))}")
    order = list(labels or {})
    for name in [name for name in CROSSCHECK_FIGURES if name in outputs]:
        if name == "umap_population":
            fig = plot_umap_population(events, labels=labels, populations=order, ari=ari)
        elif name == "umap_density_difference":
            extent, panels = arm_density_differences(events, arms=list(arm_colors or {}))
            fig = plot_density_difference(
                extent, panels, arm_colors=arm_colors, events=events, labels=labels,
                populations=order,
            )  # fmt: skip
        else:
            medians, summary = cluster_markers(events)
            fig = plot_cluster_markers(medians, summary, labels=labels, populations=order)
        save_figure(fig, outputs[name])
        del fig
        gc.collect()  # a figure's artists refer to each other: free one before the next
