"""Figures of the event-level cross-check: UMAPs of the subsampled events.

The events come from :func:`cytotrial.tl.subsample_events` and :func:`cytotrial.tl.cluster_events`
(``obsm['X_umap']``, ``obs['leiden']``, ``obs['population']``, ``obs['arm']``,
``obs['compartment']``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ._style import _save_tight, arm_palette

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes

__all__ = ["plot_umaps"]


def _umap_axes(ax: Axes) -> None:
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])


def _umap_by_population(events: AnnData, ari: float | None) -> Figure:
    """Events coloured by gated population, beside the Leiden clusters."""
    coords = events.obsm["X_umap"]
    fig = Figure(figsize=(12, 5.2))
    axes = fig.subplots(1, 2)
    names = sorted(events.obs["population"].astype(str).unique())
    colours = colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    palette = {name: colours[i % len(colours)] for i, name in enumerate(names)}
    for label, color in palette.items():
        mask = (events.obs["population"].astype(str) == label).to_numpy()
        axes[0].scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=2,
            color=color,
            label=f"{label} ({mask.sum()})",
            rasterized=True,
        )
    axes[0].legend(markerscale=5, fontsize=8, title="gated population", loc="best")
    axes[0].set_title("Events coloured by gated population")
    clusters = events.obs["leiden"].astype(int).to_numpy()
    cmap = colormaps["tab20"]
    axes[1].scatter(
        coords[:, 0], coords[:, 1], s=2, c=[cmap(c % 20) for c in clusters], rasterized=True
    )
    for c in np.unique(clusters):
        centre = np.median(coords[clusters == c], axis=0)
        axes[1].text(centre[0], centre[1], str(c), fontsize=9, weight="bold", ha="center")
    title = "Leiden clusters"
    if ari is not None:
        title += f" (adjusted Rand index vs gates: {ari:.2f})"
    axes[1].set_title(title)
    for ax in axes:
        _umap_axes(ax)
    return fig


def _umap_by_arm(events: AnnData, arm_colors: Mapping[str, str]) -> Figure:
    """Events coloured by arm, one panel per compartment, the other compartments in grey behind."""
    coords = events.obsm["X_umap"]
    compartments = sorted(events.obs["compartment"].astype(str).unique())
    arms = [str(a) for a in arm_colors] + sorted(
        set(events.obs["arm"].astype(str)) - {str(a) for a in arm_colors}
    )
    colours = arm_palette(arms, arm_colors)
    fig = Figure(figsize=(6 * len(compartments), 5.2))
    axes = np.atleast_1d(fig.subplots(1, len(compartments), sharex=True, sharey=True))
    for ax, compartment in zip(axes, compartments):
        inside = (events.obs["compartment"].astype(str) == compartment).to_numpy()
        ax.scatter(coords[~inside, 0], coords[~inside, 1], s=1, color="0.9", rasterized=True)
        for arm in arms:
            mask = inside & (events.obs["arm"].astype(str) == arm).to_numpy()
            ax.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=2,
                color=colours[arm],
                alpha=0.5,
                label=f"{arm} ({mask.sum()})",
                rasterized=True,
            )
        ax.set_title(f"{compartment}: events coloured by arm")
        ax.legend(markerscale=5, fontsize=8)
        _umap_axes(ax)
    return fig


def plot_umaps(
    events: AnnData,
    *,
    arm_colors: Mapping[str, str],
    out_png: Sequence[str | Path],
    out_pdf: Sequence[str | Path],
    ari: float | None = None,
) -> None:
    """Two UMAP figures: coloured by gated label (with Leiden clusters beside), and by arm per compartment.

    Parameters
    ----------
    events
        Clustered events (:func:`cytotrial.tl.cluster_events`).
    arm_colors
        Colour of each arm (the config's ``arms:``; other arms get a palette colour).
    out_png, out_pdf
        Paths of the population figure, then of the arm figure.
    ari
        Adjusted Rand index of clusters vs gates, shown in the cluster panel's title.
    """
    _save_tight(_umap_by_population(events, ari), out_png[0], out_pdf[0])
    _save_tight(_umap_by_arm(events, arm_colors), out_png[1], out_pdf[1])
