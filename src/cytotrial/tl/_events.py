"""Event-level views: the gates drawn on the data, and an unsupervised cross-check with scanpy.

Counting trusts the gates; these views let a reviewer check them. ``plot_gating_qc`` draws, for a
few samples per acquisition batch, each gate's channels as a 2D density of its parent's events with
the gate on top. ``subsample_events`` + ``cluster_events`` put a subsample of every sample's live
events into an AnnData (events x markers, arm/visit/compartment/gated population in ``obs``), embed
it with UMAP and cluster it with Leiden; ``cluster_gate_agreement`` says how well clusters and gates
agree (adjusted Rand index and the contingency table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "EVENT_LABELS",
    "cluster_events",
    "cluster_gate_agreement",
    "event_labels",
    "plot_gating_qc",
    "plot_umaps",
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


def _marker_dimensions(strategy, data, channel_map: Mapping[str, str]) -> list[tuple[object, str]]:
    """(flowkit dimension, marker label) of each fluorescence channel the strategy gates on, once."""
    markers = dict(zip(data.channels, data.markers))
    seen: dict[str, tuple[object, str]] = {}
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
    gatings: Mapping[str, object],
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
):
    """Events x markers AnnData from a random subsample of each sample's live events.

    Values are as the gates see them (compensated, transformed). Markers shared by every sample are
    kept (the tumor panel's CD45 drops out when blood is included). ``obs['population']`` holds each
    event's gated population (see ``EVENT_LABELS``). Samples that cannot be read are skipped.
    """
    import anndata as ad

    from ..errors import CytotrialError
    from ..gating._engine import gate_events, transformed_events
    from ..gating._samples import read_for_gating

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


def cluster_events(events, *, resolution: float = 0.6, seed: int = 0, n_neighbors: int = 15):
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


def cluster_gate_agreement(events) -> tuple[float, pd.DataFrame]:
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


def _save(fig, png: str | Path, pdf: str | Path) -> None:
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")


def plot_umaps(
    events,
    *,
    arm_colors: Mapping[str, str],
    out_png: Sequence[str | Path],
    out_pdf: Sequence[str | Path],
    ari: float | None = None,
) -> None:
    """Two UMAP figures: coloured by gated population (with Leiden clusters beside), and by arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = events.obsm["X_umap"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    palette = dict(zip(sorted(events.obs["population"].unique()), plt.get_cmap("tab10").colors))
    for label, color in palette.items():
        mask = (events.obs["population"] == label).to_numpy()
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
    cmap = plt.get_cmap("tab20")
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
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out_png[0], out_pdf[0])
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharex=True, sharey=True)
    for ax, compartment in zip(axes, ["blood", "tumor"]):
        inside = (events.obs["compartment"] == compartment).to_numpy()
        ax.scatter(coords[~inside, 0], coords[~inside, 1], s=1, color="0.9", rasterized=True)
        for arm, color in arm_colors.items():
            mask = inside & (events.obs["arm"] == arm).to_numpy()
            ax.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=2,
                color=color,
                alpha=0.5,
                label=f"{arm} ({mask.sum()})",
                rasterized=True,
            )
        ax.set_title(f"{compartment}: events coloured by arm")
        ax.legend(markerscale=5, fontsize=8)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out_png[1], out_pdf[1])
    plt.close(fig)


def _draw_gate(ax, fk_gate, dims: Sequence[str]) -> None:
    """Draw a flowkit gate's outline on axes whose x (and y) are the gate's dimensions."""
    from matplotlib.patches import Ellipse, Polygon, Rectangle

    kind = type(fk_gate).__name__
    style = {"fill": False, "edgecolor": "black", "linewidth": 1.4}
    if kind == "PolygonGate":
        ax.add_patch(Polygon(np.asarray(fk_gate.vertices, dtype=float), closed=True, **style))
    elif kind == "EllipsoidGate":
        cov = np.asarray(fk_gate.covariance_matrix, dtype=float)
        values, vectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        scale = np.sqrt(fk_gate.distance_square)
        width, height = 2 * scale * np.sqrt(values[1]), 2 * scale * np.sqrt(values[0])
        ax.add_patch(Ellipse(fk_gate.coordinates, width, height, angle=angle, **style))
    elif kind == "RectangleGate":
        lows = [d.min if d.min is not None else -np.inf for d in fk_gate.dimensions]
        highs = [d.max if d.max is not None else np.inf for d in fk_gate.dimensions]
        if len(dims) == 1:
            for value in (lows[0], highs[0]):
                if np.isfinite(value):
                    ax.axvline(value, color="black", linewidth=1.4)
        else:
            x0, x1 = ax.get_xlim()
            y0, y1 = ax.get_ylim()
            lo = [max(lows[0], x0), max(lows[1], y0)]
            hi = [min(highs[0], x1), min(highs[1], y1)]
            ax.add_patch(Rectangle(lo, hi[0] - lo[0], hi[1] - lo[1], **style))
    elif kind == "QuadrantGate":
        for divider in fk_gate.dimensions:
            for value in divider.values:
                if divider.dimension_ref == dims[0]:
                    ax.axvline(value, color="black", linewidth=1.2)
                elif len(dims) > 1 and divider.dimension_ref == dims[1]:
                    ax.axhline(value, color="black", linewidth=1.2)


def plot_gating_qc(
    samples: pd.DataFrame,
    gatings: Mapping[str, object],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    per_batch: int = 1,
    max_samples: int = 8,
    out_png: str | Path,
    out_pdf: str | Path,
) -> list[str]:
    """Each gate drawn on its parent's events for ``per_batch`` samples per (panel, batch).

    One row per sample, one panel per gate: a log-scaled 2D density (a histogram for 1D gates) of the
    gate's channels, as compensated and transformed for gating, with the gate outline and the
    percentage of the parent inside. At most ``max_samples`` samples are drawn, spread evenly over
    the (panel, batch) groups. Returns the sample ids drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from ..errors import CytotrialError
    from ..gating._engine import gate_events, transformed_events
    from ..gating._samples import read_for_gating

    chosen = (
        samples.sort_values(["panel", "batch", "sample_id"])
        .groupby(["panel", "batch"], sort=True, observed=True)
        .head(per_batch)
    )
    if len(chosen) > max_samples:
        chosen = chosen.iloc[np.linspace(0, len(chosen) - 1, max_samples).round().astype(int)]
    rows = []
    for row in chosen.itertuples(index=False):
        gating = gatings[row.panel]
        try:
            data, channel_map = read_for_gating(
                row.fcs, gating, panels=panels, compensation=compensation
            )
            memberships = gate_events(data, gating.strategy, channel_map=channel_map)
        except CytotrialError:
            continue
        rows.append((row, gating, data, channel_map, memberships))
    if not rows:
        raise ValueError("no sample could be read for the gating QC figure")
    drawable = lambda g: type(g.fk_gate).__name__ != "BooleanGate" and 1 <= len(g.dimensions) <= 2  # noqa: E731
    n_cols = max(sum(drawable(g) for g in r[1].strategy.gates) for r in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(2.6 * n_cols, 2.6 * len(rows)), squeeze=False
    )
    for i, (row, gating, data, channel_map, memberships) in enumerate(rows):
        markers = dict(zip(data.channels, data.markers))
        gates = [g for g in gating.strategy.gates if drawable(g)]
        for j, gate in enumerate(gates):
            ax = axes[i, j]
            parent = (
                memberships[gate.parent_path]
                if gate.parent_path
                else np.ones(data.n_events, dtype=bool)
            )
            fk_dims = list(gate.fk_gate.dimensions)
            values = transformed_events(
                data, gating.strategy, fk_dims, channel_map=channel_map, events=parent
            )
            names = [getattr(d, "id", None) or getattr(d, "dimension_ref", "?") for d in fk_dims]
            labels = []
            for name in names:
                channel = channel_map.get(name, name)
                labels.append(
                    f"{markers.get(channel) or channel} ({channel})"
                    if markers.get(channel)
                    else channel
                )
            inside = memberships[gate.path][parent].mean() * 100 if parent.any() else 0.0
            if values.shape[0] == 0:
                ax.set_axis_off()
                continue
            if len(names) == 2:
                lo = np.nanpercentile(values, 0.5, axis=0)
                hi = np.nanpercentile(values, 99.5, axis=0)
                pad = (hi - lo) * 0.08
                ax.hist2d(
                    values[:, 0],
                    values[:, 1],
                    bins=90,
                    range=[[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]],
                    norm=LogNorm(),
                    cmap="viridis",
                    rasterized=True,
                )
                ax.set_ylabel(labels[1], fontsize=7)
            else:
                ax.hist(values[:, 0], bins=120, color="0.4", histtype="stepfilled")
                ax.set_ylabel("events", fontsize=7)
            ax.set_xlabel(labels[0], fontsize=7)
            _draw_gate(ax, gate.fk_gate, names)
            ax.set_title(f"{gate.name}: {inside:.1f}% of parent", fontsize=8)
            ax.tick_params(labelsize=6)
        for j in range(len(gates), n_cols):
            axes[i, j].set_axis_off()
        axes[i, 0].annotate(
            f"{row.sample_id}\n{row.panel}, batch {row.batch}",
            xy=(-0.45, 0.5),
            xycoords="axes fraction",
            rotation=90,
            va="center",
            ha="center",
            fontsize=8,
        )
    fig.suptitle(
        "Gating QC: each gate on its parent's events (compensated, transformed scales)", fontsize=10
    )
    fig.tight_layout()
    _save(fig, out_png, out_pdf)
    plt.close(fig)
    return [r[0].sample_id for r in rows]
