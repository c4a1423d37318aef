"""Event-level cross-check of the gates: an unsupervised view of the same events with scanpy.

Counting trusts the gates; this lets a reviewer check them. :func:`subsample_events` reads the
gated samples one file at a time (spread evenly over compartment, visit and arm when there are
more than ``max_samples``) and keeps a capped, seeded draw of each one's events of a reference
population (such as live cells) as an AnnData (events x markers; sample, arm, visit and gated
label in ``obs``); :func:`cluster_events` embeds it with UMAP and clusters it with Leiden;
:func:`cluster_gate_agreement` says how well clusters and gates agree (adjusted Rand index and
the contingency table). What the figures draw from it is :mod:`._crosscheck_maps`; the figures
are in :mod:`cytotrial.pl`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io import ReadAhead

if TYPE_CHECKING:
    from anndata import AnnData
    from flowkit import Dimension

    from ..gating import PanelGating
    from ..io import FCSData, Strategy

__all__ = [
    "cluster_events",
    "cluster_gate_agreement",
    "crosscheck_samples",
    "event_labels",
    "event_quotas",
    "subsample_events",
    "umap_graph",
]

_SCATTER = ("fsc", "ssc", "time")
#: Columns of the samples table copied to each event's ``obs`` (those the table has).
OBS_COLUMNS = ("sample_id", "patient_id", "arm", "visit", "cycle", "day", "compartment", "batch")
#: The samples are spread evenly over these (the density figure compares arms within visits).
_STRATA = ("compartment", "visit", "arm")
#: Neighbours are found on the scaled markers, or on this many principal components beyond it.
_MAX_DIMENSIONS = 20


def _stable_key(seed: int, sample_id: str) -> int:
    """A number of ``sample_id`` and ``seed`` that no sheet order or Python run changes."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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
    strategy: Strategy,
    data: FCSData,
    channel_map: Mapping[str, str],
    panels: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[Dimension, str]]:
    """(flowkit dimension, marker label) of each fluorescence channel the strategy gates on, once.

    The label is the marker as ``panels:`` names it, else the channel: never the file's own
    ``$PnS``, which may hold anything a site typed (:func:`cytotrial.io.panel_marker`).
    """
    from ..io import panel_marker

    labels = dict(zip(data.channels, data.markers))
    seen: dict[str, tuple[Dimension, str]] = {}
    for gate in strategy.gates:
        for dim in getattr(gate.fk_gate, "dimensions", []) or []:
            name = getattr(dim, "id", None)
            if name is None or name in seen or name.casefold().startswith(_SCATTER):
                continue
            channel = channel_map.get(name, name)
            own = labels.get(channel, "")
            label = panel_marker(channel, own, panels=panels) or channel
            # a viability dye is no marker: by its shown name or, unshown, the file's own label
            if any(word in f"{label} {own}".casefold() for word in ("viab", "live")):
                continue
            seen[name] = (dim, label)
    return list(seen.values())


def crosscheck_samples(samples: pd.DataFrame, *, max_samples: int, seed: int = 0) -> pd.DataFrame:
    """The samples the cross-check reads: all of them, or ``max_samples`` spread over the strata.

    With more samples than ``max_samples``, each compartment, visit and arm (the columns the table
    has) gives samples in turn, in a seeded order of their ids, so that every stratum keeps about
    the same number. The choice depends on the sample ids and ``seed`` only, not on row order.

    Parameters
    ----------
    samples
        One row per sample: ``sample_id`` and the strata columns.
    max_samples
        At most this many samples.
    seed
        Seed of the order within a stratum.

    Returns
    -------
    pandas.DataFrame
        The rows chosen, sorted by ``sample_id``.
    """
    table = samples.reset_index(drop=True)
    if len(table) > max_samples:
        keys = [column for column in _STRATA if column in table.columns]
        order = table["sample_id"].astype(str).map(lambda s: _stable_key(seed, s))
        strata = table[keys].astype(str) if keys else pd.DataFrame(index=table.index)
        ranked = strata.assign(_order=order).sort_values("_order", kind="mergesort")
        turn = ranked.groupby(keys, sort=False).cumcount() if keys else 0
        chosen = pd.DataFrame({"turn": turn, "order": ranked["_order"]}).sort_values(
            ["turn", "order"], kind="mergesort"
        )
        table = table.loc[chosen.index[:max_samples]]
    return table.sort_values("sample_id", kind="mergesort").reset_index(drop=True)


def event_quotas(n_samples: int, *, per_sample: int, max_events: int) -> np.ndarray:
    """Events to draw from each of ``n_samples`` samples (an array of ``n_samples`` counts).

    ``per_sample`` each, or fewer to stay within ``max_events`` in all, shared out evenly: no two
    quotas differ by more than one event.
    """
    if n_samples <= 0:
        return np.zeros(0, dtype=np.int64)
    total = min(int(per_sample) * n_samples, int(max_events))
    return np.diff(np.arange(n_samples + 1, dtype=np.int64) * total // n_samples)


def _draw(index: np.ndarray, size: int, *, seed: int, sample_id: str) -> np.ndarray:
    """``size`` of ``index`` (sorted), drawn with a generator of the seed and the sample's id.

    A sample's draw does not depend on which other samples are read, nor on their order.
    """
    rng = np.random.default_rng([int(seed), _stable_key(seed, sample_id)])
    if size >= index.size:
        return index
    return np.sort(rng.choice(index, size=size, replace=False))


def subsample_events(
    samples: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    per_sample: int = 300,
    max_events: int | None = None,
    seed: int = 0,
    within: str | None = None,
    labels: Sequence[str] | None = None,
    reading: Mapping[str, Any] | None = None,
    obs_columns: Sequence[str] = OBS_COLUMNS,
) -> AnnData:
    """Events x markers AnnData from a seeded draw of each sample's events in ``within``.

    Files are read one at a time and only the drawn events' marker values are kept, so memory
    holds one file and the draw, whatever the number of samples. Values are as the gates see them
    (compensated, transformed). Markers shared by every sample are kept (a marker of one panel
    only drops out when several panels are included). ``obs['population']`` holds each event's
    gated label (:func:`event_labels`). Samples that cannot be read are skipped and named in
    ``uns['skipped_samples']``.

    Parameters
    ----------
    samples
        One row per sample: ``sample_id``, ``panel``, ``fcs`` and the ``obs_columns``.
    gatings
        Panel -> its :class:`cytotrial.gating.PanelGating`.
    panels, compensation
        Channel harmonisation and compensation matrix, as for gating.
    per_sample, max_events, seed
        Events drawn per sample, at most ``max_events`` in all (:func:`event_quotas`; None: no
        cap), and the seed of the draw (each sample's draw depends on the seed and its id only).
    within
        The population whose events are drawn (e.g. the first ``frequencies.of`` reference);
        None, or a population the panel lacks: all events of the file.
    labels
        The populations an event may be labelled with; None or empty: every population of the
        panel below ``within``.
    reading
        Options of :func:`cytotrial.gating.read_and_gate` (``unreadable_compensation``,
        ``acquisition``): the events drawn are those the gating counted.
    obs_columns
        Columns of ``samples`` copied to each event's ``obs``.
    """
    table = samples.sort_values("sample_id", kind="mergesort").reset_index(drop=True)
    cap = max_events if max_events is not None else int(per_sample) * max(1, len(table))
    quotas = event_quotas(len(table), per_sample=per_sample, max_events=cap)
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
    skipped: list[str] = []
    with ReadAhead(list(table["fcs"])) as ahead:  # the next files load while one is gated
        for position, row in enumerate(table.itertuples(index=False)):
            part = _sample_draw(
                row,
                gatings[row.panel],
                size=int(quotas[position]),
                panels=panels,
                compensation=compensation,
                seed=seed,
                within=within,
                labels=labels,
                reading=reading,
            )
            ahead.used()
            if part is None:
                skipped.append(str(row.sample_id))
            elif part[0].size:
                parts.append((position, *part))
    if not parts:
        raise ValueError("no sample could be read for the event-level cross-check")
    events = _assemble(table, parts, [c for c in obs_columns if c in table.columns])
    events.uns["skipped_samples"] = skipped
    return events


def _sample_draw(
    row: Any,
    gating: PanelGating,
    *,
    size: int,
    panels: Mapping[str, Sequence[str]] | None,
    compensation: pd.DataFrame | None,
    seed: int,
    within: str | None,
    labels: Sequence[str] | None,
    reading: Mapping[str, Any] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """One sample's drawn events: (event indices, labels, marker values, marker names).

    None when the file cannot be read or gated (a user's file: the others go on).
    """
    from ..errors import CytotrialError
    from ..gating import population_masks, read_and_gate

    try:
        gating = gating.for_file(row.fcs)
        data, channel_map, memberships = read_and_gate(
            row.fcs, gating, panels=panels, compensation=compensation, **(reading or {})
        )
    except CytotrialError:
        return None
    masks = population_masks(gating, memberships)
    inside = masks.get(within or "")
    index = np.flatnonzero(inside) if inside is not None else np.arange(data.n_events)
    pick = _draw(index, size, seed=seed, sample_id=str(row.sample_id))
    names = event_labels(
        {name: mask[pick] for name, mask in masks.items()},
        gating.parents,
        pick.size,
        labels=_panel_labels(gating, within, labels),
    )
    dims = _marker_dimensions(gating.strategy, data, channel_map, panels)
    values = _marker_values(data, gating.strategy, channel_map, dims, pick)
    return pick, names, values, [marker for _, marker in dims]


def _marker_values(
    data: FCSData,
    strategy: Strategy,
    channel_map: Mapping[str, str],
    dims: Sequence[tuple[Dimension, str]],
    pick: np.ndarray,
) -> np.ndarray:
    """The picked events x the strategy's markers, as the gates see them (float32)."""
    from ..gating import transformed_events

    if not pick.size or not dims:
        return np.empty((pick.size, len(dims)), dtype=np.float32)
    values = transformed_events(
        data, strategy, [d for d, _ in dims], channel_map=channel_map, events=pick
    )
    return values.astype(np.float32)


def _assemble(
    table: pd.DataFrame,
    parts: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray, list[str]]],
    obs_columns: Sequence[str],
) -> AnnData:
    """One AnnData of every sample's draw: the markers all of them share, in the first's order."""
    import anndata as ad

    shared = [m for m in parts[0][4] if all(m in part[4] for part in parts[1:])]
    rows = np.concatenate([np.full(part[1].size, part[0]) for part in parts])
    X = np.concatenate([part[3][:, [part[4].index(m) for m in shared]] for part in parts]).astype(
        np.float32
    )
    obs = table.iloc[rows][list(obs_columns)].reset_index(drop=True)
    for column in obs.columns:
        obs[column] = obs[column].astype(str).astype("category")
    population = np.concatenate([part[2] for part in parts])
    obs["population"] = pd.Categorical(population.astype(str))
    ids = table["sample_id"].astype(str).to_numpy()
    obs.index = pd.Index([f"{ids[part[0]]}:{i}" for part in parts for i in part[1]], dtype="object")
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(shared, dtype="object")))


def _sigmas(distances: np.ndarray, rho: np.ndarray, k: int) -> np.ndarray:
    """Each event's kernel width: its neighbours' memberships sum to log2(k) (UMAP's search)."""
    excess = np.maximum(distances - rho[:, None], 0.0)
    target = np.log2(k)
    lo, hi, mid = np.zeros(len(rho)), np.full(len(rho), np.inf), np.ones(len(rho))
    for _ in range(64):
        total = np.exp(-excess / mid[:, None]).sum(axis=1)
        open_ = np.abs(total - target) >= 1e-5
        if not open_.any():
            break
        above = open_ & (total > target)
        below = open_ & ~above
        hi = np.where(above, mid, hi)
        lo = np.where(below, mid, lo)
        mid = np.where(above, (lo + mid) / 2, mid)
        mid = np.where(below, np.where(np.isinf(hi), mid * 2, (mid + hi) / 2), mid)
    # UMAP's floor: a thousandth of the mean distance (the event's own, else everyone's)
    own = distances.sum(axis=1) / k
    floor = np.where(rho > 0, own, distances.sum() / (k * len(rho))) * 1e-3
    return np.maximum(mid, floor)


def umap_graph(events: AnnData, *, n_neighbors: int = 15, use_rep: str = "X") -> None:
    """Exact nearest neighbours and UMAP's fuzzy graph of them, as ``sc.pp.neighbors`` stores it.

    The graph is UMAP's fuzzy simplicial set (local connectivity 1, fuzzy union) of the exact
    (scikit-learn) neighbours, computed with NumPy: the same graph ``sc.pp.neighbors`` makes,
    without compiling UMAP's graph functions in every process (which costs more than the graph
    of tens of thousands of events). Writes ``obsp['distances']``, ``obsp['connectivities']`` and
    ``uns['neighbors']``, which ``sc.tl.umap`` and ``sc.tl.leiden`` read.

    Parameters
    ----------
    events
        Events x markers.
    n_neighbors
        Neighbours of each event, itself included (as in scanpy).
    use_rep
        ``X`` or a key of ``obsm``: the values the neighbours are found on.
    """
    from scipy import sparse
    from sklearn.neighbors import NearestNeighbors

    values = events.X if use_rep == "X" else events.obsm[use_rep]
    n = events.n_obs
    k = max(2, min(n_neighbors, n))
    distances, indices = NearestNeighbors(n_neighbors=k - 1).fit(values).kneighbors()
    positive = np.where(distances > 0, distances, np.inf).min(axis=1)
    rho = np.where(np.isfinite(positive), positive, 0.0)
    sigma = _sigmas(distances, rho, k)
    excess = distances - rho[:, None]
    weights = np.where(excess <= 0, 1.0, np.exp(-np.maximum(excess, 0.0) / sigma[:, None]))
    rows = np.repeat(np.arange(n), k - 1)
    local = sparse.csr_matrix((weights.ravel(), (rows, indices.ravel())), shape=(n, n))
    local.eliminate_zeros()
    connectivities = (local + local.T - local.multiply(local.T)).tocsr()
    events.obsp["distances"] = sparse.csr_matrix(
        (distances.ravel(), (rows, indices.ravel())), shape=(n, n)
    )
    events.obsp["connectivities"] = connectivities
    events.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {"n_neighbors": k, "method": "umap", "metric": "euclidean", "use_rep": use_rep},
    }


def _keep_umap_compiled() -> None:
    """Keep UMAP's compiled layout functions on disk between processes (numba's cache).

    umap-learn compiles its layout functions with numba without numba's cache, so every process
    that runs UMAP compiles them again: over a second of each cross-check job. Numba's own
    ``enable_caching`` on those functions writes the compiled code once (beside umap's sources,
    else in the user's numba cache folder, or ``NUMBA_CACHE_DIR``) and loads it in later
    processes: the same code, the same embedding. Where numba cannot cache, UMAP compiles as
    before.
    """
    import warnings

    try:
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher

        with warnings.catch_warnings():  # as scanpy imports umap: its optional parametric UMAP
            warnings.filterwarnings("ignore", message=r"Tensorflow not installed")
            from umap import layouts
    except ImportError:  # pragma: no cover - umap-learn and numba are dependencies
        return
    for function in vars(layouts).values():
        if isinstance(function, CPUDispatcher) and isinstance(function._cache, NullCache):
            try:
                function.enable_caching()
            except RuntimeError:  # no folder numba can write its cache to
                return


def cluster_events(
    events: AnnData,
    *,
    resolution: float = 0.6,
    seed: int = 0,
    n_neighbors: int = 15,
    n_epochs: int | None = 60,
) -> AnnData:
    """Scale, PCA, neighbours, Leiden clustering and UMAP (in place); returns the AnnData.

    The markers are scaled (``layers['gated_scale']`` keeps the values as gated); the neighbour
    graph (:func:`umap_graph`) is built on the scaled markers, or on the first 20 principal
    components of a larger panel; UMAP starts from the first two principal components
    (deterministic and cheap, where a spectral start of tens of thousands of events takes longer
    than the layout) and runs ``n_epochs`` epochs (None: UMAP's own number).

    Parameters
    ----------
    events
        Events x markers (:func:`subsample_events`).
    resolution
        Resolution of the Leiden clustering.
    seed
        Seed of PCA, UMAP and Leiden: the same events give the same embedding and clusters.
    n_neighbors
        Neighbours of each event in the graph UMAP and Leiden share.
    n_epochs
        Epochs of the UMAP layout.
    """
    import scanpy as sc

    events.layers["gated_scale"] = events.X.copy()
    sc.pp.scale(events, max_value=10)
    n_comps = max(1, min(events.n_vars - 1, _MAX_DIMENSIONS, events.n_obs - 1))
    sc.pp.pca(events, n_comps=n_comps, random_state=seed, svd_solver="arpack")
    umap_graph(
        events,
        n_neighbors=n_neighbors,
        use_rep="X" if events.n_vars <= _MAX_DIMENSIONS else "X_pca",
    )
    # clusters first, and UMAP given a copy: it prunes the graph's weakest edges in place (how
    # many depends on its epochs), which would change the clusters and the stored graph
    sc.tl.leiden(
        events,
        resolution=resolution,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    start = np.asarray(events.obsm["X_pca"][:, :2], dtype=np.float64)
    if start.shape[1] < 2:  # one marker: its component and a constant
        start = np.column_stack([start[:, 0], np.zeros(len(start))])
    graph = events.obsp["connectivities"].copy()
    _keep_umap_compiled()
    sc.tl.umap(events, random_state=seed, init_pos=start, maxiter=n_epochs)
    events.obsp["connectivities"] = graph
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
