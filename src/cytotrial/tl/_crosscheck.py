"""Event-level cross-check of the gates: an unsupervised view of the same events with scanpy.

Counting trusts the gates; this lets a reviewer check them. ``subsample_events`` +
``cluster_events`` put a subsample of every sample's live events into an AnnData (events x markers,
arm/visit/compartment/gated population in ``obs``), embed it with UMAP and cluster it with Leiden;
``cluster_gate_agreement`` says how well clusters and gates agree (adjusted Rand index and the
contingency table). The figures are in :mod:`cytotrial.pl` (``plot_umaps``, ``plot_gating_qc``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData
    from flowkit import Dimension

    from ..gating import PanelGating
    from ..io import FCSData, Strategy

__all__ = [
    "EVENT_LABELS",
    "cluster_events",
    "cluster_gate_agreement",
    "event_labels",
    "subsample_events",
]

#: Gated label of an event, most specific first (an event takes the first population it is in).
EVENT_LABELS = ["treg", "cd4", "cd8_ki67", "cd8", "nk", "cd3"]
_SCATTER = ("fsc", "ssc", "time")


def event_labels(
    memberships: Mapping[str, np.ndarray], populations: Mapping[str, str], n: int
) -> np.ndarray:
    """The most specific canonical population of each event (``other`` when in none of them)."""
    labels = np.full(n, "other", dtype=object)
    assigned = np.zeros(n, dtype=bool)
    for name in EVENT_LABELS:
        path = populations.get(name)
        if path is None or path not in memberships:
            continue
        take = memberships[path] & ~assigned
        labels[take] = name
        assigned |= take
    return labels


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
    obs_columns: Sequence[str] = (
        "sample_id",
        "patient_id",
        "arm",
        "visit",
        "compartment",
        "batch",
    ),
) -> AnnData:
    """Events x markers AnnData from a random subsample of each sample's live events.

    Values are as the gates see them (compensated, transformed). Markers shared by every sample are
    kept (the tumor panel's CD45 drops out when blood is included). ``obs['population']`` holds each
    event's gated population (see ``EVENT_LABELS``). Samples that cannot be read are skipped.
    """
    import anndata as ad

    from ..errors import CytotrialError
    from ..gating import gate_events, read_for_gating, transformed_events

    rng = np.random.default_rng(seed)
    parts = []
    for row in samples.sort_values("sample_id").itertuples(index=False):
        gating = gatings[row.panel]
        try:
            data, channel_map = read_for_gating(
                row.fcs, gating, panels=panels, compensation=compensation
            )
            memberships = gate_events(data, gating.strategy, channel_map=channel_map)
        except CytotrialError:
            continue
        live = memberships.get(
            gating.populations.get("live", ""), np.ones(data.n_events, dtype=bool)
        )
        index = np.flatnonzero(live)
        if index.size == 0:
            continue
        pick = np.sort(rng.choice(index, size=min(per_sample, index.size), replace=False))
        dims = _marker_dimensions(gating.strategy, data, channel_map)
        values = transformed_events(
            data, gating.strategy, [d for d, _ in dims], channel_map=channel_map, events=pick
        )
        obs = pd.DataFrame(
            {c: getattr(row, c) for c in obs_columns if hasattr(row, c)}, index=range(pick.size)
        )
        obs["population"] = event_labels(
            {k: v[pick] for k, v in memberships.items()}, gating.populations, pick.size
        )
        obs.index = [f"{row.sample_id}:{i}" for i in pick]
        parts.append(
            ad.AnnData(
                X=values.astype(np.float32), obs=obs, var=pd.DataFrame(index=[m for _, m in dims])
            )
        )
    if not parts:
        raise ValueError("no sample could be read for the event-level cross-check")
    events = ad.concat(parts, join="inner", merge="same")
    for column in events.obs.columns:
        events.obs[column] = events.obs[column].astype(str).astype("category")
    return events


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
