"""The gating QC figure: each gate drawn on its parent's events, for a few samples per batch.

Counting trusts the gates; this figure lets a reviewer check them. For a few samples per
acquisition batch, each gate's channels are drawn as a 2D density of its parent's events (a
histogram for a 1D gate), as compensated and transformed for gating, with the gate on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ._style import _save_tight

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..gating import PanelGating
    from ..io import FCSData, Gate

__all__ = ["plot_gating_qc"]


class _GatedSample(NamedTuple):
    """A sample read and gated for the figure."""

    row: tuple  # the sample's row of the samples table (itertuples)
    gating: PanelGating
    data: FCSData
    channel_map: dict[str, str]
    memberships: dict[str, np.ndarray]


def _draw_gate(ax: Axes, gate: Gate, dims: Sequence[str]) -> None:
    """Draw a gate's outline on axes whose x (and y) are the gate's dimensions."""
    from matplotlib.patches import Ellipse, Polygon, Rectangle

    fk_gate = gate.fk_gate
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


def _drawable(gate: Gate) -> bool:
    """A gate on one or two dimensions (a Boolean gate has no channels to draw)."""
    return type(gate.fk_gate).__name__ != "BooleanGate" and 1 <= len(gate.dimensions) <= 2


def _choose_samples(samples: pd.DataFrame, *, per_batch: int, max_samples: int) -> pd.DataFrame:
    """``per_batch`` samples per (panel, batch), at most ``max_samples`` spread over the groups."""
    chosen = (
        samples.sort_values(["panel", "batch", "sample_id"])
        .groupby(["panel", "batch"], sort=True, observed=True)
        .head(per_batch)
    )
    if len(chosen) > max_samples:
        chosen = chosen.iloc[np.linspace(0, len(chosen) - 1, max_samples).round().astype(int)]
    return chosen


def _read_and_gate(
    chosen: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None,
    compensation: pd.DataFrame | None,
    reading: Mapping[str, Any] | None = None,
) -> list[_GatedSample]:
    """Read and gate each chosen sample; a sample that cannot be read is left out."""
    from ..errors import CytotrialError
    from ..gating import read_and_gate

    rows = []
    for row in chosen.itertuples(index=False):
        gating = gatings[row.panel]
        try:
            data, channel_map, memberships = read_and_gate(
                row.fcs, gating, panels=panels, compensation=compensation, **(reading or {})
            )
        except CytotrialError:
            continue
        rows.append(_GatedSample(row, gating, data, channel_map, memberships))
    return rows


def _axis_labels(
    names: Sequence[str], channel_map: Mapping[str, str], markers: Mapping[str, str]
) -> list[str]:
    """``marker (channel)`` of each dimension, or the channel when it has no marker name."""
    labels = []
    for name in names:
        channel = channel_map.get(name, name)
        labels.append(
            f"{markers.get(channel) or channel} ({channel})" if markers.get(channel) else channel
        )
    return labels


def _draw_gate_panel(ax: Axes, sample: _GatedSample, gate: Gate) -> None:
    """One panel: the gate's channels on its parent's events, the outline, % of parent inside."""
    from ..gating import transformed_events

    data, memberships = sample.data, sample.memberships
    parent = (
        memberships[gate.parent_path] if gate.parent_path else np.ones(data.n_events, dtype=bool)
    )
    fk_dims = list(gate.fk_gate.dimensions)
    values = transformed_events(
        data, sample.gating.strategy, fk_dims, channel_map=sample.channel_map, events=parent
    )
    names = [getattr(d, "id", None) or getattr(d, "dimension_ref", "?") for d in fk_dims]
    labels = _axis_labels(names, sample.channel_map, dict(zip(data.channels, data.markers)))
    inside = memberships[gate.path][parent].mean() * 100 if parent.any() else 0.0
    if values.shape[0] == 0:
        ax.set_axis_off()
        return
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
    _draw_gate(ax, gate, names)
    ax.set_title(f"{gate.name}: {inside:.1f}% of parent", fontsize=8)
    ax.tick_params(labelsize=6)


def plot_gating_qc(
    samples: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    per_batch: int = 1,
    max_samples: int = 8,
    reading: Mapping[str, Any] | None = None,
    out_png: str | Path,
    out_pdf: str | Path,
) -> list[str]:
    """Each gate drawn on its parent's events for ``per_batch`` samples per (panel, batch).

    One row per sample, one panel per gate: a log-scaled 2D density (a histogram for 1D gates) of the
    gate's channels, as compensated and transformed for gating, with the gate outline and the
    percentage of the parent inside. At most ``max_samples`` samples are drawn, spread evenly over
    the (panel, batch) groups.

    Parameters
    ----------
    samples
        One row per sample with ``sample_id``, ``panel``, ``batch`` and ``fcs``.
    gatings
        Panel -> its loaded strategy (:func:`cytotrial.gating.load_panel_gating`).
    panels
        The config's marker -> channel names mapping.
    compensation
        A spillover matrix, or None for each file's own ``$SPILLOVER``.
    per_batch, max_samples
        Samples drawn per (panel, batch), and in all.
    reading
        Options of :func:`cytotrial.gating.read_and_gate` (``unreadable_compensation``,
        ``acquisition``): the events drawn are those the gating counted.
    out_png, out_pdf
        Where the figure is written.

    Returns
    -------
    list of str
        The sample ids drawn.

    Raises
    ------
    ValueError
        No chosen sample could be read.
    """
    chosen = _choose_samples(samples, per_batch=per_batch, max_samples=max_samples)
    rows = _read_and_gate(
        chosen, gatings, panels=panels, compensation=compensation, reading=reading
    )
    if not rows:
        raise ValueError("no sample could be read for the gating QC figure")
    n_cols = max(sum(_drawable(g) for g in r.gating.strategy.gates) for r in rows)
    fig = Figure(figsize=(2.6 * n_cols, 2.6 * len(rows)))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for i, sample in enumerate(rows):
        gates = [g for g in sample.gating.strategy.gates if _drawable(g)]
        for j, gate in enumerate(gates):
            _draw_gate_panel(axes[i, j], sample, gate)
        for j in range(len(gates), n_cols):
            axes[i, j].set_axis_off()
        axes[i, 0].annotate(
            f"{sample.row.sample_id}\n{sample.row.panel}, batch {sample.row.batch}",
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
    _save_tight(fig, out_png, out_pdf)
    return [r.row.sample_id for r in rows]
