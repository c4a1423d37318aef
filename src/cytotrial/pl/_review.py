"""The gating review: one page per sample, each gate drawn on its parent's events as placed for it.

A page (A4 landscape) shows a sample's gates in strategy order (parent before child), up to 16
panels in a 4 x 4 grid (a larger strategy continues on further pages): each panel the parent's
events on the gate's channels, compensated and transformed as the gating read them (a 2-D density,
dots where there are few events, a histogram for a 1-D gate), on FlowJo-style axes (decades of the
raw scale on logicle/log/asinh dimensions, scatter in thousands; see ``_decades``) zoomed to the
data, with the gate where this sample was gated with it (an adaptive gate's own position, the
template's position dashed grey beneath; a boundary that kept the template in orange) and the
percentage of the parent inside it in the panel's title. Gates of one parent on the same channels
(``cd4`` and ``cd8`` on CD4 x CD8; ``cd3`` and ``cd3_neg`` on CD3) share a panel. The page's
heading names the sample, panel, acquisition batch, QC status and flags; a panel whose gate a flag
names is framed in red. The events are exactly those counted: read and gated by
:func:`cytotrial.gating.gated_engine` with the gating's reading options (compensation, acquisition
QC, unreadable spillover); they are drawn from the compensated values that engine computed, on
the transformed scale within 1e-6 of FlowKit's values (a table of each logicle or hyperlog
transform rather than a root found per event).
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._decades import axis_scale, data_limits
from ._review_gates import (
    FALLBACK_COLOUR,
    GATE_COLOUR,
    TEMPLATE_COLOUR,
    draw_shape,
    gate_shape,
    shape_extent,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..gating import PanelGating
    from ..io import FCSData, Gate, Strategy

__all__ = [
    "DRAWING_VERSION",
    "ReviewCanvas",
    "ReviewHeader",
    "ReviewPanel",
    "draw_review_pages",
    "draw_sample_review",
    "message_page",
    "review_panels",
    "save_review_page",
]

#: Changes whenever a page would be drawn differently from the same inputs (cached pages of an
#: older drawing are drawn again).
DRAWING_VERSION = "7"
#: The pages' font: Helvetica, one of the standard fonts every PDF reader has (not embedded, and
#: written at a fifth of the cost of an embedded font's text), where all of a page's text can be
#: written in it; else DejaVu Sans, embedded (:func:`save_review_page`).
REVIEW_FONTS = {"font.family": ["sans-serif"], "font.sans-serif": ["Helvetica", "DejaVu Sans"]}
PAGE_SIZE = (11.69, 8.27)  # inches: A4 landscape
MAX_COLUMNS = MAX_ROWS = 4
_FLAGGED = "#C8102E"
_STATUS_COLOURS = {"ok": "black", "flagged": "#B35806", "excluded": _FLAGGED}
_DOTS_BELOW = 1500  # fewer parent events than this are drawn as dots, not as a density
_BINS_2D, _BINS_1D = 128, 128
_HEAD_LINE = 0.2  # inches per line of the page's heading
_WRAP = 160  # characters per line of the heading's flags
_GAP_W, _GAP_H = 0.7, 0.85  # inches between panels: y tick labels and label; x labels and title


@dataclass(frozen=True)
class ReviewHeader:
    """What a page's heading says about its sample."""

    sample_id: str
    panel: str
    batch: str
    status: str
    flags: tuple[str, ...] = ()
    message: str = ""

    def lines(self) -> list[str]:
        """The heading: the sample on the first line, then its flags (wrapped) and message."""
        first = f"{self.sample_id}  ·  panel {self.panel}  ·  batch {self.batch}  ·  {self.status}"
        rest = []
        if self.flags:
            rest += textwrap.wrap("flags: " + ", ".join(self.flags), _WRAP)
        if self.message:
            rest += textwrap.wrap(self.message, _WRAP)
        return [first, *rest]


@dataclass
class ReviewPanel:
    """One panel of a page: gates of one parent drawn on the same dimensions.

    Attributes
    ----------
    gates
        The gates, in strategy order.
    dimensions
        The first gate's FlowKit dimensions: the panel's x (and y) axis.
    orders
        Per gate, its dimension shown on each axis (``[1, 0]``: transposed).
    """

    gates: list[Gate]
    dimensions: list[Any]
    orders: list[list[int]] = field(default_factory=list)

    @property
    def parent_path(self) -> str | None:
        return self.gates[0].parent_path


def _dimension_key(dim: Any) -> tuple:
    """What makes two gates' dimensions the same axis: channel, compensation and transform."""
    name = (
        getattr(dim, "ratio_ref", None)
        or getattr(dim, "dimension_ref", None)
        or getattr(dim, "id", None)
    )
    return (
        str(name),
        getattr(dim, "compensation_ref", None),
        getattr(dim, "transformation_ref", None),
    )


def review_panels(strategy: Strategy) -> list[ReviewPanel]:
    """The panels of a strategy's page, in strategy order: drawable gates grouped by axes.

    A gate on one or two dimensions is drawn (a Boolean gate has none); gates with the same parent
    and the same dimensions (in either order) share the first one's panel.
    """
    panels: list[ReviewPanel] = []
    found: dict[tuple, ReviewPanel] = {}
    for gate in strategy.gates:
        dims = list(getattr(gate.fk_gate, "dimensions", None) or [])
        if gate.kind == "boolean" or not 1 <= len(dims) <= 2:
            continue
        keys = [_dimension_key(d) for d in dims]
        group = (gate.parent_path, frozenset(keys), len(keys))
        panel = found.get(group)
        if panel is None:
            panel = found[group] = ReviewPanel([], dims)
            panels.append(panel)
        axes = [_dimension_key(d) for d in panel.dimensions]
        panel.gates.append(gate)
        panel.orders.append([keys.index(k) for k in axes])
    return panels


def _flagged_gates(flags: Sequence[str]) -> set[str]:
    """Gate names the flags name (``adaptive_fallback:treg``, ``too_few_events:cd3<200``)."""
    named = set()
    for flag in flags:
        _, colon, rest = flag.partition(":")
        if colon:
            named.add(re.split(r"[:<>=]", rest)[0].strip())
    return named


def _flag_name(name: str) -> str:
    return " ".join(str(name).replace(",", " ").split())


def _axis_label(
    dim: Any,
    channel_map: Mapping[str, str],
    labels: Mapping[str, str],
    panels: Mapping[str, Sequence[str]] | None,
) -> str:
    """``marker (channel)``, the marker as ``panels:`` names it, or the channel alone.

    A file's own ``$PnS`` label is never written (:func:`cytotrial.io.panel_marker`).
    """
    from ..io import panel_marker

    name = _dimension_key(dim)[0]
    channel = channel_map.get(name, name)
    marker = panel_marker(channel, labels.get(channel, ""), panels=panels)
    return f"{marker} ({channel})" if marker and marker != channel else channel


def _transform(strategy: Strategy, dim: Any) -> Any:
    ref = getattr(dim, "transformation_ref", None)
    transforms = getattr(strategy.gating_strategy, "transformations", None) or {}
    return transforms.get(ref) if ref else None


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


@dataclass
class _Sample:
    """One sample as gated: what every panel of its page reads."""

    header: ReviewHeader
    gating: PanelGating
    data: FCSData
    channel_map: Mapping[str, str]
    memberships: Mapping[str, np.ndarray]
    placements: Mapping[str, Mapping[str, Any]]
    fallbacks: set[str]
    gated_by: Any = None  # the Engine that gated the sample, if given
    panels: Mapping[str, Sequence[str]] | None = None  # the config's panels: (axis labels)

    def parent(self, panel: ReviewPanel) -> np.ndarray:
        if panel.parent_path is None:
            return np.ones(self.data.n_events, dtype=bool)
        return self.memberships[panel.parent_path]

    @cached_property
    def engine(self) -> Any:
        """One engine for every panel (the gating's own, if given): each event compensated once."""
        if self.gated_by is not None:
            return self.gated_by
        from ..gating._engine import Engine

        return Engine(self.data, self.gating.strategy, self.channel_map)


def _title(ax: Axes, sample: _Sample, panel: ReviewPanel, parent: np.ndarray) -> bool:
    """The gates' names and % of parent; whether a flag names one of them."""
    whole = int(np.count_nonzero(parent))
    parts = [
        f"{g.name} {_percent(int(np.count_nonzero(sample.memberships[g.path])), whole)}"
        for g in panel.gates
    ]
    parent_name = panel.parent_path.rsplit("/", 1)[-1] if panel.parent_path else "all events"
    named = _flagged_gates(sample.header.flags)
    flagged = any(_flag_name(g.name) in named for g in panel.gates)
    text = "  ·  ".join(parts) + f"\nof {parent_name} ({whole:,} events)"
    # y given: the title sits just above the axes (no x tick labels there) without matplotlib
    # measuring every tick label of the axes to place it, a third of a page's drawing time
    ax.set_title(text, fontsize=7.5, color=_FLAGGED if flagged else "black", loc="left", y=1.0)
    return flagged


def _counts_2d(values: np.ndarray, limits: Sequence[tuple[float, float]]) -> np.ndarray:
    """Events per cell of a :data:`_BINS_2D` square grid over ``limits`` (those outside left out).

    ``numpy.histogram2d``'s counts, each event's cell found by arithmetic rather than a search
    (an event on a cell's edge may fall in its neighbour: the image is the same).
    """
    inside = np.ones(values.shape[0], dtype=bool)
    cells = []
    for axis, (low, high) in enumerate(limits):
        column = values[:, axis]
        inside &= (column >= low) & (column <= high)  # NaN: outside
        cells.append(column)
    index = np.zeros(int(np.count_nonzero(inside)), dtype=np.int64)
    for column, (low, high) in zip(cells, limits):
        scaled = (
            (column[inside] - low) * (_BINS_2D / (high - low))
            if high > low
            else 0.0 * column[inside]
        )
        index = index * _BINS_2D + np.minimum(scaled.astype(np.int64), _BINS_2D - 1)
    return np.bincount(index, minlength=_BINS_2D * _BINS_2D).reshape(_BINS_2D, _BINS_2D)


def _draw_events(ax: Axes, values: np.ndarray, limits: list[tuple[float, float]]) -> None:
    """A 2-D density (dots when there are few events) or a 1-D histogram of the parent."""
    from matplotlib.colors import LogNorm
    from matplotlib.patches import StepPatch

    if values.shape[1] == 1:
        counts, edges = np.histogram(values[:, 0], bins=_BINS_1D, range=limits[0])
        # added as artists: the limits are set below, not measured from the steps' vertices
        for kind in (
            {"fill": True, "color": "0.6", "linewidth": 0},
            {"fill": False, "color": "0.3", "linewidth": 0.6},
        ):
            ax.add_artist(StepPatch(counts, edges, **kind))
        top = max(1, counts.max()) * 1.08
        ax.set_ylim(0, top)
        axis_scale("events", None, (0.0, top)).apply(ax, "y")
        return
    if values.shape[0] < _DOTS_BELOW:
        ax.scatter(values[:, 0], values[:, 1], s=2, color="#3B528B", linewidths=0, rasterized=True)
    else:
        counts = _counts_2d(values, limits)
        ax.imshow(
            np.ma.masked_equal(counts.T, 0),
            extent=(*limits[0], *limits[1]),
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            norm=LogNorm(vmin=1),
            cmap="viridis",
        )
    ax.set_ylim(*limits[1])


def _draw_panel(ax: Axes, sample: _Sample, panel: ReviewPanel) -> None:
    """One panel: the parent's events on the panel's axes, the gates, the % of parent."""
    from ..gating import transformed_events

    strategy = sample.gating.strategy
    parent = sample.parent(panel)
    values = transformed_events(
        sample.data,
        strategy,
        panel.dimensions,
        channel_map=sample.channel_map,
        events=parent,
        engine=sample.engine,
        exact=False,  # within 1e-6 of FlowKit's values on the drawn scale, at a fraction of the cost
    )
    shapes = [
        gate_shape(g, sample.placements.get(g.path), order)
        for g, order in zip(panel.gates, panel.orders)
    ]
    templates = [
        gate_shape(g, None, order) if g.path in sample.placements else None
        for g, order in zip(panel.gates, panel.orders)
    ]
    limits = []
    for axis in range(values.shape[1]):
        extra = [shape_extent(s)[axis] for s in shapes]
        limits.append(data_limits(values[:, axis], extra=np.concatenate(extra)))
    _draw_events(ax, values, limits)
    ax.set_xlim(*limits[0])
    labels = dict(zip(sample.data.channels, sample.data.markers))
    for axis, (which, dim) in enumerate(zip("xy", panel.dimensions)):
        label = _axis_label(dim, sample.channel_map, labels, sample.panels)
        axis_scale(label, _transform(strategy, dim), limits[axis]).apply(ax, which)
    drawn: set[int] = set()
    for gate, shape, template in zip(panel.gates, shapes, templates):
        if gate.kind == "quadrant" and id(gate.fk_gate) in drawn:
            continue  # a quadrant gate's quadrants share its dividers
        drawn.add(id(gate.fk_gate))
        if template is not None:
            draw_shape(ax, template, colour=TEMPLATE_COLOUR, dashed=True, width=0.8)
        fell_back = gate.path in sample.fallbacks
        colour = FALLBACK_COLOUR if fell_back else GATE_COLOUR
        draw_shape(ax, shape, colour=colour, shade=len(panel.gates) == 1)
    if _title(ax, sample, panel, parent):
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color(_FLAGGED)
            spine.set_linewidth(1.4)


def _grid(n: int) -> tuple[int, int]:
    """Columns and rows of a page of ``n`` panels (at most 4 x 4)."""
    columns = min(MAX_COLUMNS, max(1, n if n <= 3 else (3 if n <= 6 else 4)))
    return columns, max(1, -(-n // columns))


def _heading(fig: Figure, header: ReviewHeader, page: int, pages: int) -> float:
    """Write the page's heading; the inches it takes, with room for the first row's titles."""
    lines = header.lines()
    if pages > 1:
        lines[0] += f"  ·  page {page} of {pages}"
    top = 0.18
    colour = _STATUS_COLOURS.get(header.status, "black")
    fig.text(0.012, 1 - top / PAGE_SIZE[1], lines[0], fontsize=11, weight="bold", color=colour,
             va="top", ha="left")  # fmt: skip
    for i, line in enumerate(lines[1:], start=1):
        y = 1 - (top + 0.06 + i * _HEAD_LINE) / PAGE_SIZE[1]
        fig.text(0.012, y, line, fontsize=8, va="top", ha="left", color=colour)
    # the heading, then room for the first row's two-line panel titles
    return top + 0.72 + (len(lines) - 1) * _HEAD_LINE


def _grid_axes(fig: Figure, head: float, n_panels: int) -> list:
    """An empty grid of ``n_panels`` axes below a heading of ``head`` inches."""
    columns, rows = _grid(n_panels)
    left, right, bottom, top = 0.065, 0.985, 0.07, 1 - head / PAGE_SIZE[1]
    # gaps between panels in inches, whatever the grid: tick labels and axis label of one row
    # (or column), then the next row's two-line title
    width = (right - left) * PAGE_SIZE[0]
    height = (top - bottom) * PAGE_SIZE[1]
    panel_w = (width - (columns - 1) * _GAP_W) / columns
    panel_h = (height - (rows - 1) * _GAP_H) / rows
    grid = fig.add_gridspec(
        rows, columns, left=left, right=right, bottom=bottom, top=top,
        wspace=_GAP_W / panel_w, hspace=_GAP_H / panel_h,
    )  # fmt: skip
    return [fig.add_subplot(grid[i // columns, i % columns]) for i in range(n_panels)]


def _page(
    header: ReviewHeader,
    n_panels: int,
    page: int,
    pages: int,
    canvas: ReviewCanvas | None = None,
) -> tuple[Figure, list]:
    """A page with its heading and an empty grid of ``n_panels`` axes below it."""
    if canvas is not None:
        return canvas.page(header, n_panels, page, pages)
    fig = Figure(figsize=PAGE_SIZE)
    head = _heading(fig, header, page, pages)
    return fig, _grid_axes(fig, head, n_panels)


class ReviewCanvas:
    """Page figures kept for reuse by one process that draws many review pages.

    Building a page's grid of axes is a fifth of the page's drawing time. A canvas builds one
    figure per layout (lines of heading, panels, page of the sample) and, for each later page of
    that layout, removes what the last page drew instead: the heading, and each panel's events,
    gates, ticks and title, its spines back as the theme drew them. The page is the one a new
    figure would give, to the byte of its PDF. A page drawn on a canvas is valid until the next
    page of the same layout is drawn on it: write it first.
    """

    def __init__(self) -> None:
        self._figures: dict[tuple[int, int, int], tuple[Figure, list, list]] = {}

    def page(
        self, header: ReviewHeader, n_panels: int, page: int, pages: int
    ) -> tuple[Figure, list]:
        """An empty page of this layout with ``header``'s heading (the theme's rc in force)."""
        key = (len(header.lines()), n_panels, page)
        if key not in self._figures:
            fig = Figure(figsize=PAGE_SIZE)
            head = _heading(fig, header, page, pages)
            axes = _grid_axes(fig, head, n_panels)
            spines = [
                {
                    n: (s.get_visible(), s.get_edgecolor(), s.get_linewidth())
                    for n, s in ax.spines.items()
                }
                for ax in axes
            ]
            self._figures[key] = (fig, axes, spines)
            return fig, axes
        fig, axes, spines = self._figures[key]
        for text in list(fig.texts):
            text.remove()
        _heading(fig, header, page, pages)
        for ax, state in zip(axes, spines):
            for artist in (*ax.images, *ax.collections, *ax.patches, *ax.lines, *ax.texts,
                           *ax.artists):  # fmt: skip
                artist.remove()
            for name, (visible, colour, width) in state.items():
                spine = ax.spines[name]
                spine.set_visible(visible)
                spine.set_edgecolor(colour)
                spine.set_linewidth(width)
        return fig, axes


def message_page(header: ReviewHeader, text: str) -> Figure:
    """A page without panels: a sample that was not gated (excluded, unreadable), and why."""
    import matplotlib as mpl

    with mpl.rc_context(REVIEW_FONTS):
        fig, _ = _page(header, 0, 1, 1)
        fig.text(0.5, 0.5, text, fontsize=11, ha="center", va="center", wrap=True)
    return fig


class _AfmWeight(logging.Filter):
    """Drops matplotlib's note that the standard Helvetica is of weight "medium", not "normal"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("findfont: Failed to find font weight")


def save_review_page(document: Any, fig: Figure) -> None:
    """Write ``fig`` as the next page of ``document`` (a ``PdfPages``).

    Its text is written in Helvetica, a standard PDF font, when every character of it is one of
    that font's (the Windows-1252 set: Latin letters, digits, ``·``, ``µ``, ``¹²³``...): the font
    is not embedded and each text costs a fifth as much. A page with any other character (a
    marker named ``TCRγδ``) is written whole in DejaVu Sans, embedded, as every other figure is.
    """
    import matplotlib as mpl
    from matplotlib.text import Text

    standard = True
    for text in fig.findobj(Text):
        try:
            text.get_text().encode("cp1252")
        except UnicodeEncodeError:
            standard = False
            break
    log = logging.getLogger("matplotlib.font_manager")
    quiet = _AfmWeight()
    log.addFilter(quiet)
    try:
        with mpl.rc_context({"pdf.use14corefonts": standard}):
            document.savefig(fig)
    finally:
        log.removeFilter(quiet)


def draw_review_pages(
    header: ReviewHeader,
    gating: PanelGating,
    data: FCSData,
    channel_map: Mapping[str, str],
    memberships: Mapping[str, np.ndarray],
    *,
    placements: Mapping[str, Mapping[str, Any]] | None = None,
    fallbacks: Sequence[str] = (),
    canvas: ReviewCanvas | None = None,
    engine: Any = None,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> list[Figure]:
    """The pages of one gated sample (one, unless the strategy has more than 16 panels).

    Parameters
    ----------
    header
        The sample, its panel, batch, QC status and flags.
    gating
        The panel's gating.
    data, channel_map, memberships
        The sample as :func:`cytotrial.gating.read_and_gate` read and gated it.
    placements
        Gate path -> where the sample's adaptive boundaries placed the gate
        (:func:`cytotrial.gating.sample_placements`); other gates are drawn as the strategy
        draws them.
    fallbacks
        Paths of gates with a boundary that kept the template's position (drawn in orange).
    canvas
        Draw on this canvas's figures (:class:`ReviewCanvas`; write the pages before the next
        sample's); ``None``: new figures.
    engine
        The :class:`cytotrial.gating.Engine` that gated ``data`` (:func:`cytotrial.gating.gated_engine`):
        its compensated values are drawn; ``None``: compensated again.
    panels
        The config's ``panels:``: an axis names a channel's marker as they name it (never the
        file's own ``$PnS`` label, which may hold anything a site typed).
    """
    from ._layout import theme

    sample = _Sample(
        header, gating, data, channel_map, memberships, dict(placements or {}), set(fallbacks),
        gated_by=engine, panels=panels,
    )  # fmt: skip
    panels = review_panels(gating.strategy)
    per_page = MAX_COLUMNS * MAX_ROWS
    chunks = [panels[i : i + per_page] for i in range(0, len(panels), per_page)] or [[]]
    figures = []
    import matplotlib as mpl

    with mpl.rc_context({**theme(), **REVIEW_FONTS}):
        for page, chunk in enumerate(chunks, start=1):
            fig, axes = _page(header, len(chunk), page, len(chunks), canvas)
            for ax, panel in zip(axes, chunk):
                _draw_panel(ax, sample, panel)
            figures.append(fig)
    return figures


def draw_sample_review(
    fcs: str,
    gating: PanelGating,
    header: ReviewHeader,
    *,
    positions: pd.DataFrame | None = None,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    reading: Mapping[str, Any] | None = None,
    canvas: ReviewCanvas | None = None,
) -> list[Figure]:
    """Read and gate one sample as the gating did, and draw its review pages.

    Parameters
    ----------
    fcs
        The sample's FCS file.
    gating
        Its panel's gating (a FlowJo sample group's: the file's own sample's tree is drawn).
    header
        The page heading's facts (:class:`ReviewHeader`).
    positions
        The sample's rows of the gate positions table (``results/gating/batch_*.gates.tsv``):
        each adaptive gate is drawn where they placed it.
    panels, compensation
        The config's ``panels:`` and the spillover matrix (``None``: each file's own).
    reading
        The gating's other reading options: ``unreadable_compensation`` and ``acquisition`` (the
        config's ``qc.acquisition``), so that the events drawn are those counted.
    canvas
        As for :func:`draw_review_pages`.

    Returns
    -------
    list of Figure
        The sample's pages; one page saying why, where the file cannot be read as it was gated.
    """
    from ..errors import CytotrialError
    from ..gating import gated_engine, sample_placements

    try:
        gating = gating.for_file(fcs)  # a FlowJo sample group: the file's own sample's tree
        placements = sample_placements(gating, positions, sample_id=header.sample_id)
        data, channel_map, memberships, engine = gated_engine(
            fcs, gating, panels=panels, compensation=compensation, **dict(reading or {})
        )
    except CytotrialError as error:
        text = " ".join(str(error).split())
        return [message_page(header, "\n".join(textwrap.wrap(f"Not drawn: {text}", 90)))]
    table = positions if positions is not None else pd.DataFrame(columns=["gate_path", "status"])
    fallbacks = set(table.loc[table["status"] != "adapted", "gate_path"].astype(str))
    return draw_review_pages(
        header,
        gating,
        data,
        channel_map,
        memberships,
        placements=placements,
        fallbacks=fallbacks,
        canvas=canvas,
        engine=engine,
        panels=panels,
    )
