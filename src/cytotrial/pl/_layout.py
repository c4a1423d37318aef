"""Layout shared by the seaborn figures: blocks of facets, one block per compartment (or topic).

Every figure of treatment and patients is a :class:`matplotlib.figure.Figure` (no pyplot, no global
state) holding one :class:`~matplotlib.figure.SubFigure` per block, each drawn by a
:class:`seaborn.objects.Plot` whose facets wrap into the same number of columns in every block, so
that a feature sits in the same column in every compartment. The number of columns is the
fewest that make the whole figure at least as wide as it is tall (landscape, readable at a
screen's width; nothing is cut off).
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    import pandas as pd
    import seaborn.objects as so
    from matplotlib.axes import Axes
    from matplotlib.figure import SubFigure

# inches: one facet, a block's heading, the figure's title and its legend below
PANEL_W, PANEL_H = 2.9, 2.3
_HEADER_H, _TITLE_H, _LEGEND_H, _MARGIN_W = 0.45, 0.5, 0.55, 0.5
# colours of the best overall response (RECIST): responders green, stable amber, progression red
RESPONSE_COLOURS = {
    "CR": "#006D2C",
    "PR": "#41AB5D",
    "SD": "#E69F00",
    "PD": "#B2182B",
    "NE": "#969696",
}
# a facet name that no data holds: fills a block's last row so that every facet has one width
_PAD = "\u2060pad"


def theme() -> dict[str, Any]:
    """The seaborn theme of every figure (white, ticks, no top/right spines, paper-sized text).

    A new mapping each call (callers may change it); seaborn builds it once per process.
    """
    return dict(_theme())


@functools.cache
def _theme() -> dict[str, Any]:
    import seaborn as sns

    return {
        **sns.axes_style("ticks"),
        **sns.plotting_context("paper"),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 9,
        "axes.labelsize": 8.5,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "font.family": ["sans-serif"],
        "font.sans-serif": ["DejaVu Sans"],
    }


def wrap_columns(
    counts: Sequence[int],
    *,
    panel: tuple[float, float] = (PANEL_W, PANEL_H),
    extra: float = 0.0,
    step: int = 1,
) -> int:
    """Facets per row: the fewest that make the figure at least as wide as tall.

    Only counts that fill the rows of the largest block evenly are taken (8 facets: 8, 4, 2 or
    1 per row, not 6 and 2).

    Parameters
    ----------
    counts
        Number of facets of each block.
    panel
        One facet's width and height (inches).
    extra
        Height of anything else stacked with the blocks (inches).
    step
        Only multiples of this many columns (facets that go together stay in one row).
    """
    counts = [max(1, int(n)) for n in counts] or [1]
    most = max(counts)
    # balanced rows only: the fewest columns that hold the largest block in r rows, for each r
    candidates = sorted(
        {min(most, step * math.ceil(math.ceil(most / r) / step)) for r in range(1, most + 1)}
    )
    for columns in candidates:
        width, height = _size(counts, columns, panel=panel, extra=extra)
        if width >= height:
            return columns
    return most


def _size(
    counts: Sequence[int], columns: int, *, panel: tuple[float, float], extra: float
) -> tuple[float, float]:
    rows = sum(math.ceil(n / columns) for n in counts)
    width = columns * panel[0] + _MARGIN_W
    height = rows * panel[1] + len(counts) * _HEADER_H + _TITLE_H + _LEGEND_H + extra
    return width, height


def block_figure(
    counts: Sequence[int],
    columns: int,
    *,
    panel: tuple[float, float] = (PANEL_W, PANEL_H),
    extra: float = 0.0,
) -> tuple[Figure, list[SubFigure]]:
    """A figure of stacked blocks, each ``ceil(n / columns)`` rows of facets high.

    Returns
    -------
    tuple
        The :class:`~matplotlib.figure.Figure` (constrained layout) and one subfigure per block.
    """
    counts = [max(1, int(n)) for n in counts]
    width, height = _size(counts, columns, panel=panel, extra=extra)
    fig = Figure(figsize=(width, height), layout="constrained")
    heights = [math.ceil(n / columns) * panel[1] + _HEADER_H for n in counts]
    subfigures = fig.subfigures(len(counts), 1, height_ratios=heights, squeeze=False)
    return fig, list(subfigures[:, 0])


def facet_order(names: Sequence[str], columns: int) -> list[str]:
    """``names`` padded with blank facets to fill their last row (removed by :func:`drop_pads`)."""
    missing = (-len(names)) % columns
    return list(names) + [f"{_PAD}{i}" for i in range(missing)]


def drop_pads(target: SubFigure | Figure, order: Sequence[str]) -> dict[str, Axes]:
    """Remove the padding facets; return facet name -> its axes (in facet order).

    The axes of a :class:`seaborn.objects.Plot` drawn on ``target`` are its axes in facet order.
    """
    axes = list(target.axes)
    if len(axes) != len(order):
        raise RuntimeError(f"{len(axes)} axes drawn for {len(order)} facets")
    named = {}
    for name, ax in zip(order, axes):
        if name.startswith(_PAD):
            ax.remove()
        else:
            named[name] = ax
    return named


#: The column of line codes a :func:`lines_by` layer reads (:func:`with_line_codes`).
LINE_CODES = "_line"


@functools.cache
def _lines_by_class() -> type:
    import numpy as np
    import seaborn.objects as so
    from seaborn._marks.base import Mappable

    @dataclass
    class LinesBy(so.Lines):
        """``so.Lines`` with one line per value of the layer's ``line`` variable.

        ``so.Lines`` with ``group=`` splits a facet's rows per group level: with hundreds of
        patients that is most of a figure's drawing time. Here the rows are split per facet and
        colour only, and each such split's rows into one line per code with numpy. ``line`` is
        not a grouping property, so the lines, their order and their colours are those of
        ``so.Lines`` with ``group=`` the same codes (the figures test it to the byte).
        """

        line: Any = Mappable(0, grouping=False)  # noqa: RUF009 (how seaborn declares a property)

        def _setup_segments(self, data, orient):  # type: ignore[no-untyped-def]
            data = data.sort_values(["line", orient], kind="mergesort")
            xy = np.column_stack([data["x"], data["y"]])
            codes = data["line"].to_numpy()
            return np.split(xy, np.flatnonzero(codes[1:] != codes[:-1]) + 1)

    return LinesBy


def lines_by(**style: Any) -> so.Lines:
    """A seaborn ``Lines`` mark drawing one line per code of the layer's ``line`` variable.

    Add it with ``line=LINE_CODES`` on data from :func:`with_line_codes`: the same figure as
    ``so.Lines(**style)`` with ``group=`` the coded column, at a fraction of the cost when there
    are many lines (a phase 3 trial's patients).
    """
    return _lines_by_class()(**style)


def with_line_codes(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``frame`` with :data:`LINE_CODES`: ``column``'s values coded in seaborn's order of levels.

    The order in which seaborn orders a group variable's levels (:func:`categorical_order`), so
    that the lines are drawn in the order ``group=column`` draws them.
    """
    import pandas as pd
    from seaborn._core.rules import categorical_order

    levels = categorical_order(frame[column])
    return frame.assign(**{LINE_CODES: pd.Categorical(frame[column], categories=levels).codes})


def draw_on(plot: so.Plot, target: SubFigure | Figure) -> None:
    """Draw ``plot`` on ``target`` with the figures' theme."""
    plot.theme(theme()).on(target).plot()


def heading(target: SubFigure | Figure, text: str, *, size: float = 10.5) -> None:
    """A block's heading (left-aligned, bold) or a figure's title."""
    target.suptitle(text, x=0.01, ha="left", fontsize=size, fontweight="bold")


def figure_title(fig: Figure, text: str, *, size: float = 11) -> None:
    """The figure's title, wrapped to its width (a long title never runs off the figure)."""
    width = fig.get_size_inches()[0]
    chars = max(20, int(width * 72 / (0.6 * size)))  # a character is about 0.6 em wide
    fig.suptitle("\n".join(textwrap.wrap(text, chars)), fontsize=size)


def mark_zero(ax: Axes) -> None:
    """A dashed reference line at zero change."""
    ax.axhline(0.0, color="0.6", lw=0.8, ls="--", zorder=0, gid="zero")


def no_data(ax: Axes, text: str = "no data") -> None:
    """Mark a facet that has nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.5")


def visit_ticks(ax: Axes, visits: Sequence[str], *, rotate: bool = False) -> None:
    """Visits (clinical order) as the x ticks of a facet drawn at positions 0, 1, ..."""
    ax.set_xticks(range(len(visits)), list(visits), rotation=90 if rotate else 0)
    ax.tick_params(axis="x", labelbottom=True)  # also above a short last row
    ax.set_xlim(-0.5, len(visits) - 0.5)


def legend_below(
    fig: Figure,
    colours: Mapping[str, str],
    *,
    title: str | None = None,
    marker: str = "o",
    lw: float = 2.0,
    extra: Sequence[Line2D] = (),
) -> None:
    """One legend for the whole figure, centred below it: a key per colour (in its order)."""
    handles = [
        Line2D([], [], color=colour, marker=marker, lw=lw, label=name)
        for name, colour in colours.items()
    ]
    fig.legend(
        handles=[*handles, *extra],
        loc="outside lower center",
        ncol=min(8, len(handles) + len(extra)),
        frameon=False,
        fontsize=9,
        title=title,
        title_fontsize=9,
    )


def placeholder(text: str, *, size: tuple[float, float] = (6.0, 2.5)) -> Figure:
    """A figure saying why there is nothing to draw (the workflow's outputs stay the same)."""
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="0.35", wrap=True)
    return fig


def unique_titles(titles: Mapping[str, str]) -> dict[str, str]:
    """Key -> title, where a title given twice gets its key appended (facet names must differ)."""
    seen: dict[str, int] = {}
    for title in titles.values():
        seen[title] = seen.get(title, 0) + 1
    return {key: (f"{t} [{key}]" if seen[t] > 1 else t) for key, t in titles.items()}
