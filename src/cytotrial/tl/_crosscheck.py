"""Event-level cross-check of the gates: an unsupervised view of the same events with scanpy.

Counting trusts the gates; this lets a reviewer check them. ``subsample_events`` +
``cluster_events`` put a subsample of every sample's events (of a reference population such as
live cells) into an AnnData (events x markers; arm, visit, compartment and gated label in
``obs``), embed it with UMAP and cluster it with Leiden; ``cluster_gate_agreement`` says how well
clusters and gates agree (adjusted Rand index and the contingency table). The figures are in :mod:`cytotrial.pl` (``plot_umaps``, ``plot_gating_qc``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData
    from flowkit import Dimension

    from ..gating import PanelGating
    from ..io import FCSData, Strategy

__all__ = [
    "cluster_events",
    "cluster_gate_agreement",
    "event_labels",
    "subsample_events",
]

_SCATTER = ("fsc", "ssc", "time")


def _depth(name: str, parents: Mapping[str, str]) -> int:
    """How many populations deep ``name`` sits (its chain of parents, guarded against cycles)."""
    seen: set[str] = set()
    while name and name not in seen:
        seen.add(name)
        name = parents.get(name, "")
    return len(seen)


def _below(name: str, ancestor: str, parents: Mapping[str, str]) -> bool:
    """Whether ``name`` is strictly below ``ancestor`` through its chain of parents."""
    seen: set[str] = set()
    name = parents.get(name, "")
    while name and name not in seen:
        if name == ancestor:
            return True
        seen.add(name)
        name = parents.get(name, "")
    return False


def event_labels(
    masks: Mapping[str, np.ndarray],
    parents: Mapping[str, str],
    n: int,
    *,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Each event's gated label: the deepest population of ``labels`` holding it (else ``other``).

    Parameters
    ----------
    masks
        Population -> boolean array over the ``n`` events (the panel's reported populations,
        :func:`cytotrial.gating.population_masks`).
    parents
        Population -> its parent population in the panel (``PanelGating.parents``): the depth of a
        population is the length of its chain of parents.
    n
        Number of events.
    reading
        Options of :func:`cytotrial.gating.read_and_gate` (``unreadable_compensation``,
        ``acquisition``): the events drawn are those the gating counted.
    labels
        The populations an event may be labelled with, in order of preference between equally
        deep ones (default: every population of ``masks``). Names the panel lacks are skipped.
    """
    names = [name for name in (labels if labels is not None else masks) if name in masks]
    ranked = sorted(names, key=lambda name: -_depth(name, parents))  # stable: ties keep order
    out = np.full(n, "other", dtype=object)
    assigned = np.zeros(n, dtype=bool)
    for name in ranked:
        take = np.asarray(masks[name], dtype=bool) & ~assigned
        out[take] = name
        assigned |= take
    return out


def _panel_labels(
    gating: PanelGating, within: str | None, labels: Sequence[str] | None
) -> list[str]:
    """The labels of one panel: ``labels`` it reports, or every population below ``within``."""
    order = list(gating.order)
    if labels:
        return [name for name in labels if name in order]
    if within and within in order:
        return [name for name in order if _below(name, within, gating.parents)]
    return order


def _marker_dimensions(
    strategy: Strategy, data: FCSData, channel_map: Mapping[str, str]
) -> list[tuple[Dimension, str]]:
    """(flowkit dimension, marker label) of each fluorescence channel the strategy gates on, once."""
    markers = dict(zip(data.channels, data.markers))
    seen: dict[str, tuple[Dimension, str]] = {}
    for gate in strategy.gates:
        for dim in getattr(gate.fk_gate, "dimensions", []) or []:
            name = getattr(dim, "id", None)
            if name is None or name in seen or name.casefold().startswith(_SCATTER):
                continue
            channel = channel_map.get(name, name)
            label = markers.get(channel) or channel
            if "viab" in label.casefold() or "live" in label.casefold():
                continue
            seen[name] = (dim, label)
    return list(seen.values())


def subsample_events(
    samples: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    per_sample: int = 300,
    seed: int = 0,
    within: str | None = None,
    labels: Sequence[str] | None = None,
    reading: Mapping[str, Any] | None = None,
    obs_columns: Sequence[str] = (
        "sample_id",
        "patient_id",
        "arm",
        "visit",
        "compartment",
        "batch",
    ),
) -> AnnData:
    """Events x markers AnnData from a random subsample of each sample's events in ``within``.

    Values are as the gates see them (compensated, transformed). Markers shared by every sample are
    kept (a marker of one panel only drops out when several panels are included).
    ``obs['population']`` holds each event's gated label (:func:`event_labels`). Samples that
    cannot be read are skipped.

    Parameters
    ----------
    samples
        One row per sample: ``sample_id``, ``panel``, ``fcs`` and the ``obs_columns``.
    gatings
        Panel -> its :class:`cytotrial.gating.PanelGating`.
    panels, compensation
        Channel harmonisation and compensation matrix, as for gating.
    per_sample, seed
        Events drawn per sample, and the seed of the draw.
    within
        The population whose events are drawn (e.g. the first ``frequencies.of`` reference);
        None, or a population the panel lacks: all events of the file.
    labels
        The populations an event may be labelled with (e.g. the analysed populations); None or
        empty: every population of the panel below ``within``.
    obs_columns
        Columns of ``samples`` copied to each event's ``obs``.
    """
    import anndata as ad

    from ..errors import CytotrialError
    from ..gating import population_masks, read_and_gate

    rng = np.random.default_rng(seed)
    parts = []
    for row in samples.sort_values("sample_id").itertuples(index=False):
        gating = gatings[row.panel]
        try:
            data, channel_map, memberships = read_and_gate(
                row.fcs, gating, panels=panels, compensation=compensation, **(reading or {})
            )
        except CytotrialError:
            continue
        masks = population_masks(gating, memberships)
        index = np.flatnonzero(masks.get(within or "", np.ones(data.n_events, dtype=bool)))
        if index.size == 0:
            continue
        pick = np.sort(rng.choice(index, size=min(per_sample, index.size), replace=False))
        obs = pd.DataFrame(
            {c: getattr(row, c) for c in obs_columns if hasattr(row, c)}, index=range(pick.size)
        )
        obs["population"] = event_labels(
            {name: mask[pick] for name, mask in masks.items()},
            gating.parents,
            pick.size,
            labels=_panel_labels(gating, within, labels),
        )
        obs.index = [f"{row.sample_id}:{i}" for i in pick]
        parts.append(_events_adata(data, gating.strategy, channel_map, pick, obs))
    if not parts:
        raise ValueError("no sample could be read for the event-level cross-check")
    events = ad.concat(parts, join="inner", merge="same")
    for column in events.obs.columns:
        events.obs[column] = events.obs[column].astype(str).astype("category")
    return events


def _events_adata(
    data: FCSData,
    strategy: Strategy,
    channel_map: Mapping[str, str],
    pick: np.ndarray,
    obs: pd.DataFrame,
) -> AnnData:
    """The picked events x the strategy's markers, as the gates see them."""
    import anndata as ad

    from ..gating import transformed_events

    dims = _marker_dimensions(strategy, data, channel_map)
    values = transformed_events(
        data, strategy, [d for d, _ in dims], channel_map=channel_map, events=pick
    )
    return ad.AnnData(
        X=values.astype(np.float32), obs=obs, var=pd.DataFrame(index=[m for _, m in dims])
    )


def cluster_events(
    events: AnnData, *, resolution: float = 0.6, seed: int = 0, n_neighbors: int = 15
) -> AnnData:
    """Scale, neighbours, UMAP and Leiden clustering (in place); returns the AnnData."""
    import scanpy as sc

    events.layers["gated_scale"] = events.X.copy()
    sc.pp.scale(events, max_value=10)
    # Exact neighbours (scikit-learn): deterministic, and fast enough at the capped event count.
    sc.pp.neighbors(
        events, n_neighbors=n_neighbors, use_rep="X", random_state=seed, transformer="sklearn"
    )
    sc.tl.umap(events, random_state=seed)
    sc.tl.leiden(
        events,
        resolution=resolution,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    return events


def cluster_gate_agreement(events: AnnData) -> tuple[float, pd.DataFrame]:
    """Adjusted Rand index of Leiden clusters vs gated populations, and the tidy contingency table.

    The table has one row per cluster and population: events, fraction of the cluster, fraction of
    the population, and the index repeated in ``adjusted_rand_index``.
    """
    from sklearn.metrics import adjusted_rand_score

    clusters = events.obs["leiden"].astype(str)
    gates = events.obs["population"].astype(str)
    ari = float(adjusted_rand_score(gates, clusters))
    table = pd.crosstab(clusters, gates).stack().rename("events").reset_index()
    table.columns = ["cluster", "population", "events"]
    table = table[table["events"] > 0].copy()
    table["fraction_of_cluster"] = table["events"] / table.groupby("cluster")["events"].transform(
        "sum"
    )
    table["fraction_of_population"] = table["events"] / table.groupby("population")[
        "events"
    ].transform("sum")
    table["adjusted_rand_index"] = ari
    table["cluster"] = table["cluster"].astype(int)
    return ari, table.sort_values(["cluster", "events"], ascending=[True, False]).reset_index(
        drop=True
    )
