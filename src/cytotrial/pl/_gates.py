"""Gate QC figure: where each adaptive gate went, sample by sample, in acquisition order.

Drawn from the gate positions table (``results/gating/gate_positions.tsv``, see
:func:`cytotrial.tl.build_populations`): one block per strategy panel, and in it one facet per
adaptive boundary (a threshold, or one coordinate of a 2-D gate's population peak), wrapped into
the same number of columns in every block. Each facet shows the samples in acquisition order,
coloured by batch (and marked by site where the sheet has several), the template's position
dashed, the range the boundary may take shaded, samples that kept the template hollow and
outliers ringed in red. Facets share the acquisition axis within a block; each boundary keeps
its own position axis (scatter in raw values, fluorescence in the gate's transformed units).
The figure stays landscape and at most :data:`MAX_WIDTH` inches wide for the demo's thirty
boundaries (more boundaries add rows).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ._layout import block_figure, figure_title, heading, placeholder, theme, wrap_columns
from ._style import save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

__all__ = ["plot_gate_positions", "write_gate_positions"]

#: Widest the figure gets (inches): 2400 px at the figures' 150 dpi.
MAX_WIDTH = 16.0
_KEYS = ["panel", "gate", "dimension", "bound"]
_FACET = (3.0, 1.8)  # inches: one boundary's facet
_MARGIN = 0.5  # inches beside the facets (as the shared layout reserves)
_LEGEND_ROW = 0.22  # inches per row of the legend below the figure
_LEGEND_SIZE = 8  # points
_PER_ROW = 10  # legend keys per row
_HEADING_SIZE = 9.5  # points
_OUTLIER = "#C8102E"
_RANGE = "0.93"
# colour-blind palette, reordered so that neighbouring batches differ most
_BATCH_ORDER = [0, 1, 2, 4, 3, 9, 5, 7, 8, 6]
_SITE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*"]
_TITLE = (
    "Adaptive gate positions per sample, in acquisition order: one facet per boundary, by "
    "batch and site"
)


def _boundaries(table: pd.DataFrame) -> list[tuple]:
    keys = [k for k in _KEYS if k in table.columns]
    return list(table[keys].drop_duplicates().itertuples(index=False, name=None))


def _channel_markers(markers: Mapping[str, Sequence[str]] | None) -> dict[str, str]:
    """Channel name -> the marker of the config's ``panels:`` that lists it (first one wins)."""
    found: dict[str, str] = {}
    for marker, channels in (markers or {}).items():
        found.setdefault(str(marker), str(marker))
        for channel in channels or []:
            found.setdefault(str(channel), str(marker))
    return found


def _facet_title(rows: pd.DataFrame, names: Mapping[str, str]) -> str:
    """``gate · marker channel (bound)``, wrapped to the facet's width."""
    first = rows.iloc[0]
    channel = str(first["dimension"])
    marker = names.get(channel, "")
    axis = f"{marker} {channel}" if marker and marker != channel else channel
    return "\n".join(textwrap.wrap(f"{first['gate']} · {axis} ({first['bound']})", 46))


def _draw_boundary(ax: Axes, rows: pd.DataFrame, style: _Style) -> None:
    """One boundary: the allowed range, the template, each sample's position and its marks."""
    import seaborn as sns

    lo, hi = float(rows["lo"].min()), float(rows["hi"].max())
    ax.axhspan(lo, hi, color=_RANGE, zorder=0, gid="allowed_range")
    ax.axhline(float(rows["template"].iloc[0]), color="0.3", lw=0.9, ls="--", zorder=1)
    adapted = rows[rows["status"] == "adapted"]
    if not adapted.empty:
        sns.scatterplot(
            data=adapted,
            x="acquisition_order",
            y="position",
            hue="batch",
            palette=style.palette,
            style="site" if style.markers else None,
            markers=style.markers or True,
            s=16,
            linewidth=0,
            legend=False,
            ax=ax,
            zorder=2,
        )
    kept = rows[rows["status"] != "adapted"]
    by_site = kept.groupby("site", sort=True) if style.markers else [("", kept)]
    for site, group in by_site:
        if group.empty:
            continue
        ax.scatter(
            group["acquisition_order"], group["position"], s=18, facecolors="none",
            edgecolors=[style.palette[b] for b in group["batch"]], linewidths=0.9,
            marker=style.markers.get(str(site), "o"), zorder=2, gid="template_kept",
        )  # fmt: skip
    outliers = rows[rows["outlier"].astype(bool)]
    if not outliers.empty:
        ax.scatter(
            outliers["acquisition_order"], outliers["position"], s=70, facecolors="none",
            edgecolors=_OUTLIER, linewidths=1.1, zorder=3, gid="outlier",
        )  # fmt: skip
    values = np.concatenate([[lo, hi], rows["position"].to_numpy(dtype=float)])
    values = values[np.isfinite(values)]
    pad = 0.06 * max(float(values.max() - values.min()), 1e-9)
    ax.set_ylim(float(values.min()) - pad, float(values.max()) + pad)
    ax.set_xlabel("")
    ax.set_ylabel("")
    sns.despine(ax=ax)


class _Style:
    """Colours of the batches and markers of the sites, shared by every facet and the legend."""

    def __init__(self, table: pd.DataFrame) -> None:
        import seaborn as sns

        batches = sorted(table["batch"].unique())
        if len(batches) <= len(_BATCH_ORDER):
            colours = [sns.color_palette("colorblind", 10)[i] for i in _BATCH_ORDER]
        else:
            colours = sns.color_palette("husl", len(batches))
        self.palette = dict(zip(batches, colours, strict=False))
        sites = sorted(table["site"].unique()) if "site" in table.columns else []
        self.markers = (
            {s: _SITE_MARKERS[i % len(_SITE_MARKERS)] for i, s in enumerate(sites)}
            if len(sites) > 1
            else {}
        )


def _legend_rows(style: _Style) -> list[list[tuple]]:
    """Rows of (handle, label): batches, sites, and what each mark means."""
    dot = {"linestyle": "none", "markersize": 5}
    rows = [
        [(Line2D([], [], marker="o", color=c, **dot), str(b)) for b, c in style.palette.items()]
    ]
    rows[0].insert(0, (Line2D([], [], linestyle="none"), "batch:"))
    if style.markers:
        sites = [
            (Line2D([], [], marker=m, color="0.35", **dot), str(s))
            for s, m in style.markers.items()
        ]
        rows.append([(Line2D([], [], linestyle="none"), "site:"), *sites])
    ring = Line2D([], [], marker="o", mfc="none", color=_OUTLIER, linestyle="none", markersize=9)
    rows.append(
        [
            (Line2D([], [], linestyle="none"), "marks:"),
            (Line2D([], [], marker="o", color="0.35", **dot), "position found"),
            (Line2D([], [], marker="o", mfc="none", color="0.35", **dot), "template kept"),
            (ring, "outlier"),
            (Line2D([], [], color="0.3", lw=0.9, ls="--"), "template position"),
            (Patch(color=_RANGE), "allowed range"),
        ]
    )
    wrapped = []
    for row in rows:  # a long row continues on the next one, under its first key
        for start in range(0, len(row), _PER_ROW):
            chunk = row[start : start + _PER_ROW]
            wrapped.append(
                chunk if start == 0 else [(Line2D([], [], linestyle="none"), "")] + chunk
            )
    return wrapped


def _legend_width(rows: list[list[tuple]]) -> float:
    """About how wide (inches) :func:`_legend` draws ``rows``: the widest label of each column."""
    em = _LEGEND_SIZE / 72
    columns = max(len(row) for row in rows)
    widest = [max(len(row[c][1]) for row in rows if c < len(row)) for c in range(columns)]
    return sum(0.6 * em * n + 3.5 * em for n in widest)  # text, handle, padding, spacing


def _legend(fig: Figure, rows: list[list[tuple]]) -> None:
    """One legend below the figure, a row per kind of key (a legend fills column by column)."""
    columns = max(len(row) for row in rows)
    blank = (Line2D([], [], linestyle="none"), "")
    grid = [row + [blank] * (columns - len(row)) for row in rows]
    ordered = [grid[r][c] for c in range(columns) for r in range(len(grid))]
    fig.legend(
        [h for h, _ in ordered],
        [label for _, label in ordered],
        loc="outside lower center",
        ncol=columns,
        frameon=False,
        fontsize=_LEGEND_SIZE,
        handlelength=2.0,
        handletextpad=0.4,
        columnspacing=1.1,
    )


def _draw_block(
    target: SubFigure,
    table: pd.DataFrame,
    boundaries: list[tuple],
    columns: int,
    style: _Style,
    names: Mapping[str, str],
) -> None:
    """One panel's facets: a boundary each, wrapped into ``columns``, sharing the acquisition axis."""
    n_rows = math.ceil(len(boundaries) / columns)
    axes = np.asarray(target.subplots(n_rows, columns, sharex=True, squeeze=False)).ravel()
    keys = [k for k in _KEYS if k in table.columns]
    for index, (ax, key) in enumerate(zip(axes, boundaries)):
        mask = np.logical_and.reduce([table[k] == v for k, v in zip(keys, key)])
        rows = table[mask].sort_values("acquisition_order", kind="stable")
        _draw_boundary(ax, rows, style)
        ax.set_title(_facet_title(rows, names), fontsize=8)
        ax.tick_params(labelsize=7)
        if index + columns >= len(boundaries):  # nothing below: the axis is labelled here
            ax.tick_params(axis="x", labelbottom=True)
            ax.set_xlabel("acquisition order", fontsize=7.5)
        if index % columns == 0:
            ax.set_ylabel("position", fontsize=7.5)
    for ax in axes[len(boundaries) :]:
        ax.remove()
    last = int(table["acquisition_order"].max()) if len(table) else 1
    axes[0].set_xlim(0, last + 1)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _block_heading(panel: str, rows: pd.DataFrame, n_boundaries: int, width: float) -> str:
    """The panel, its samples, boundaries, positions kept and outliers; wrapped to ``width``."""
    kept = int((rows["status"] != "adapted").sum())
    outliers = int(rows["outlier"].astype(bool).sum())
    name = f"{panel}: " if panel else ""
    text = (
        f"{name}{_count(rows['sample_id'].nunique(), 'sample')} · "
        f"{_count(n_boundaries, 'adaptive boundary', 'adaptive boundaries')} · "
        f"{_count(kept, 'position')} kept from the template · {_count(outliers, 'outlier')}"
    )
    chars = max(20, int(width * 72 / (0.65 * _HEADING_SIZE)))  # bold: a little wider
    return "\n".join(textwrap.wrap(text, chars))


def plot_gate_positions(
    table: pd.DataFrame, *, markers: Mapping[str, Sequence[str]] | None = None
) -> Figure:
    """Every adaptive boundary's position per sample in acquisition order, coloured by batch.

    Parameters
    ----------
    table
        The gate positions table (``sample_id``, ``panel``, ``batch``, optional ``site``,
        ``acquisition_order``, ``gate``, ``dimension``, ``bound``, ``template``, ``position``,
        ``lo``, ``hi``, ``status``, ``outlier``).
    markers
        The config's ``panels:`` (marker -> channel names): facets name each channel's marker.

    Returns
    -------
    matplotlib.figure.Figure
        One block per strategy panel (its heading counts samples, boundaries, positions kept
        from the template and outliers), one facet per boundary, one legend below (batches,
        sites, marks); a figure saying so when no gate is adaptive.
    """
    boundaries = _boundaries(table)
    if not boundaries:
        return placeholder("no adaptive gates declared (strategies.<panel>.adaptive)")
    import matplotlib as mpl

    table = table.assign(batch=table["batch"].astype(str))
    if "site" in table.columns:
        table = table.assign(site=table["site"].fillna("").astype(str))
    panels = list(dict.fromkeys(b[0] for b in boundaries)) if "panel" in table.columns else [""]
    blocks = {p: [b for b in boundaries if not p or b[0] == p] for p in panels}
    style = _Style(table)
    rows = _legend_rows(style)
    extra = len(rows) * _LEGEND_ROW
    counts = [len(b) for b in blocks.values()]
    fit = max(1, int((MAX_WIDTH - _MARGIN) // _FACET[0]))
    columns = min(wrap_columns(counts, panel=_FACET, extra=extra), fit)
    with mpl.rc_context(theme()):
        fig, subfigures = block_figure(counts, columns, panel=_FACET, extra=extra)
        width, height = fig.get_size_inches()
        width = max(width, _legend_width(rows) + _MARGIN)  # the legend never runs off
        fig.set_size_inches(width, height)
        for target, (panel, chosen) in zip(subfigures, blocks.items()):
            in_block = table[table["panel"] == panel] if panel else table
            _draw_block(target, in_block, chosen, columns, style, _channel_markers(markers))
            text = _block_heading(panel, in_block, len(chosen), width - _MARGIN)
            heading(target, text, size=_HEADING_SIZE)
        figure_title(fig, _TITLE, size=10.5)
        _legend(fig, rows)
    return fig


def write_gate_positions(
    table: pd.DataFrame | str | Path,
    path: str | Path,
    *,
    markers: Mapping[str, Sequence[str]] | None = None,
) -> tuple[Path, Path]:
    """Draw :func:`plot_gate_positions` and write it as ``<path>.png`` and ``.pdf``.

    ``table`` may be the table or its TSV file; ``markers`` the config's ``panels:``.
    """
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table, sep="\t", dtype={"sample_id": str, "batch": str, "site": str})
    return save_figure(plot_gate_positions(table, markers=markers), path)
