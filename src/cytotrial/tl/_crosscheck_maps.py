"""What the cross-check's figures draw from the clustered events: arm densities and cluster markers.

:func:`arm_density_differences` compares the arms where the events lie in the UMAP embedding,
within each compartment and visit (baseline and on-treatment never pooled), each arm's density
the mean of its samples' own densities (an arm with more samples or more events per sample does
not weigh more). :func:`cluster_markers` gives each Leiden cluster's median scaled intensity of
every marker, its size and the gated population most of its events belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._analysis import visit_order

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["DensityDifference", "arm_density_differences", "cluster_markers"]


@dataclass(frozen=True)
class DensityDifference:
    """One arm against the reference arm at one compartment and visit, on a grid of the embedding.

    Attributes
    ----------
    compartment, visit
        Where the samples were taken.
    arm, reference
        The arm compared, and the arm it is compared with.
    n_arm, n_reference
        Samples of each arm at this compartment and visit.
    difference
        ``(bins, bins)`` array, rows from the bottom of the embedding up: the arm's density minus
        the reference's, in percent of a sample's events per grid cell (smoothed); None when one
        of the arms has no sample here.
    occupied
        ``(bins, bins)`` density of both arms' samples together (same unit): where events lie.
    """

    compartment: str
    visit: str
    arm: str
    reference: str
    n_arm: int
    n_reference: int
    difference: np.ndarray | None
    occupied: np.ndarray


def _ordered_arms(present: Sequence[str], arms: Sequence[str] | None) -> list[str]:
    """The arms present: in ``arms`` order first, the others sorted after."""
    found = set(present)
    ordered = [a for a in (arms or []) if a in found]
    return ordered + sorted(found - set(ordered))


def _grid_cells(coords: np.ndarray, bins: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """Each event's flat grid cell (row from the bottom, column from the left) and the extent."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    pad = 0.05 * np.where(high > low, high - low, 1.0)
    low, high = low - pad, high + pad
    scaled = (coords - low) / (high - low) * bins
    cells = np.clip(np.floor(scaled).astype(np.int64), 0, bins - 1)
    extent = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
    return cells[:, 1] * bins + cells[:, 0], extent


def _mean_density(
    cells: np.ndarray, samples: np.ndarray, bins: int, smooth: float
) -> tuple[np.ndarray, int]:
    """The mean over samples of each sample's share of its events per cell (percent), smoothed."""
    from scipy.ndimage import gaussian_filter

    if cells.size == 0:
        return np.zeros((bins, bins)), 0
    ids, inverse, sizes = np.unique(samples, return_inverse=True, return_counts=True)
    weights = 100.0 / sizes[inverse] / len(ids)
    grid = np.bincount(cells, weights=weights, minlength=bins * bins).reshape(bins, bins)
    return gaussian_filter(grid, sigma=smooth, mode="constant"), len(ids)


def arm_density_differences(
    events: AnnData,
    *,
    arms: Sequence[str] | None = None,
    bins: int = 80,
    smooth: float = 1.5,
) -> tuple[tuple[float, ...], list[DensityDifference]]:
    """Each arm's density minus the reference arm's in the embedding, per compartment and visit.

    The reference arm is the last of ``arms`` present (the config's ``arms:``, e.g. the control
    arm listed last); every other arm is compared with it. A sample's density is the share of its
    events in each grid cell; an arm's, the mean over its samples (normalised by its number of
    samples); both are smoothed by a Gaussian of ``smooth`` cells.

    Parameters
    ----------
    events
        Clustered events (``obsm['X_umap']``; ``obs`` with ``sample_id``, ``arm``,
        ``compartment``, ``visit``, ``cycle`` and ``day``).
    arms
        Arms in the config's order (None: sorted).
    bins
        Grid cells along each axis of the embedding.
    smooth
        Standard deviation of the smoothing, in cells.

    Returns
    -------
    tuple
        The grid's extent ``(x0, x1, y0, y1)`` in embedding units, shared by every panel, and one
        :class:`DensityDifference` per compartment (sorted), visit (clinical order) and arm
        compared.
    """
    obs = events.obs
    cells, extent = _grid_cells(np.asarray(events.obsm["X_umap"], dtype=np.float64), bins)
    arm = obs["arm"].astype(str).to_numpy()
    sample = obs["sample_id"].astype(str).to_numpy()
    ordered = _ordered_arms(arm, arms)
    reference, compared = ordered[-1], ordered[:-1]
    out = []
    for compartment in sorted(obs["compartment"].astype(str).unique()):
        inside = (obs["compartment"].astype(str) == compartment).to_numpy()
        table = obs.loc[inside, ["visit", "cycle", "day"]].astype(str)
        for visit in visit_order(table):
            here = inside & (obs["visit"].astype(str) == visit).to_numpy()
            occupied, _ = _mean_density(cells[here], sample[here], bins, smooth)
            ref, n_ref = _mean_density(
                cells[here & (arm == reference)], sample[here & (arm == reference)], bins, smooth
            )
            for name in compared:
                mask = here & (arm == name)
                density, n_arm = _mean_density(cells[mask], sample[mask], bins, smooth)
                difference = density - ref if n_arm and n_ref else None
                out.append(
                    DensityDifference(
                        compartment, visit, name, reference, n_arm, n_ref, difference, occupied
                    )
                )
    return extent, out


def cluster_markers(events: AnnData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each Leiden cluster's median scaled intensity per marker, size and majority population.

    Parameters
    ----------
    events
        Clustered events (:func:`cluster_events`): ``X`` scaled markers, ``obs['leiden']`` and
        ``obs['population']``.

    Returns
    -------
    tuple
        ``medians`` (clusters x markers, clusters in numeric order) and ``clusters`` (one row per
        cluster, same order: ``cluster``, ``events``, ``population`` most of its events were gated
        into and ``fraction`` of its events that population holds).
    """
    clusters = events.obs["leiden"].astype(str).to_numpy()
    names = sorted(set(clusters), key=int)
    X = np.asarray(events.X, dtype=np.float64)
    medians = pd.DataFrame(
        [np.median(X[clusters == c], axis=0) for c in names],
        index=pd.Index(names, name="cluster"),
        columns=list(events.var_names),
    )
    counts = pd.crosstab(clusters, events.obs["population"].astype(str).to_numpy())
    counts = counts.loc[names]
    sizes = counts.sum(axis=1)
    majority = counts.idxmax(axis=1)  # ties: the first population in sorted order
    summary = pd.DataFrame(
        {
            "cluster": names,
            "events": sizes.to_numpy(),
            "population": majority.to_numpy(),
            "fraction": (counts.max(axis=1) / sizes).to_numpy(),
        }
    )
    return medians, summary
