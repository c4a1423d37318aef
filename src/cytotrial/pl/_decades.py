"""Axes of cytometry data as FlowJo draws them: decades of the raw scale, scatter in thousands.

A gate reads its dimensions compensated and transformed (logicle, log, asinh, ...), and the review
draws them on that transformed scale, where the gates are defined. The ticks, though, name values
of the raw scale, as FlowJo labels them: ``0``, ``10²``, ``10³``, ``10⁴``, ``10⁵`` (and ``-10³``
where a logicle scale shows negative values) placed at their transformed positions, with minor
ticks at 2-9 times each decade. An untransformed (linear) dimension such as forward scatter is
ticked in raw units, thousands written ``50K``. Where an axis starts and ends is the data's: the
robust range of the events drawn (:func:`data_limits`), not the whole range of the transform.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DECADE_TRANSFORMS",
    "AxisScale",
    "axis_scale",
    "data_limits",
    "decade_label",
    "draw_ticks",
    "place_label",
    "tick_labels",
    "tick_texts",
]

#: FlowKit transforms whose axis is labelled in decades of the raw scale (by class name).
DECADE_TRANSFORMS = frozenset(
    {
        "LogicleTransform",
        "HyperlogTransform",
        "AsinhTransform",
        "LogTransform",
        "WSPBiexTransform",
        "WSPLogTransform",
    }
)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_PLAIN = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
_POWER = re.compile(r"(-?10)([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
_EXPONENT_SIZE = 0.7  # an exponent's font size, of its tick label's
_EXPONENT_RISE = 0.36  # how far up from the tick an exponent's top is, in tick label font sizes
_MINOR_GAP = 0.02  # minor ticks closer than this fraction of the axis to the last are left out
_DECADES = range(0, 10)  # 10^0 .. 10^9: every decade a cytometer can record
_MIN_GAP = 0.07  # labelled ticks closer than this fraction of the axis are thinned
_LOW, _HIGH, _PAD = 0.5, 99.5, 0.06  # percentiles of the data range and padding on each side
_PERCENTILE_FROM = 20_000  # above this many values, the percentiles of an even subset of them


def decade_label(value: float) -> str:
    """FlowJo's label of a decade tick: ``0``, ``10³``, ``-10²``."""
    if value == 0:
        return "0"
    exponent = round(float(np.log10(abs(value))))
    sign = "-" if value < 0 else ""
    return f"{sign}10{str(exponent).translate(_SUPERSCRIPT)}"


def _thousands(value: float, span: float) -> str:
    if span >= 10_000 and value != 0:
        return f"{value / 1000:g}K"
    return f"{value:g}"


@dataclass
class AxisScale:
    """How one dimension's axis is ticked and labelled.

    Attributes
    ----------
    label
        The axis label (``marker (channel)``, or the channel).
    transform
        The FlowKit transform the gate applies (``None``: raw values).
    ticks
        Major tick positions on the drawn (transformed) scale and their labels.
    minor
        Minor tick positions.
    """

    label: str
    transform: Any = None
    ticks: list[tuple[float, str]] = field(default_factory=list)
    minor: list[float] = field(default_factory=list)

    @property
    def decades(self) -> bool:
        """Whether the axis is labelled in decades of the raw scale."""
        return type(self.transform).__name__ in DECADE_TRANSFORMS

    def apply(self, ax: Axes, which: str) -> None:
        """Draw these ticks and the label on ``ax``'s ``x`` or ``y`` axis (see :func:`draw_ticks`)."""
        axis = ax.xaxis if which == "x" else ax.yaxis
        axis.set_label_text(self.label)
        draw_ticks(ax, which, self.ticks, self.minor)


def draw_ticks(
    ax: Axes, which: str, ticks: Sequence[tuple[float, str]], minor: Sequence[float] = ()
) -> None:
    """Draw ``ax``'s ``x`` or ``y`` ticks as a few artists instead of matplotlib's tick objects.

    The major ticks (``(position, label)`` on the data scale) and the minor ones are two sets of
    short lines at the axis and the labels one text each, styled as the theme styles ticks (size,
    width, direction, pad, colour, font size): alike to matplotlib's own ticks, at a fraction of
    their cost (a review page draws some two hundred ticks, and matplotlib's tick objects took
    half of its time). Set the axis limits first: ticks outside them are left out. The labels
    carry the gid ``"<which>ticklabel"`` (:func:`tick_labels`); matplotlib's own ticks are
    switched off and the axis label is placed beside the labels (:func:`place_label`).

    A power of ten (``10⁴``, ``-10³``) is written as its base and a smaller, raised exponent in
    plain digits (gid ``"<which>tickexponent"``), set beside the base when the page is drawn: a
    PDF can then write every tick label in a standard font (superscript digits but ¹²³ are not
    in it), and :func:`tick_texts` reads the labels back as ``10⁴``. On the x axis the base is
    centred on its tick; on the y axis the exponent ends where the other labels end.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import NullLocator
    from matplotlib.transforms import offset_copy

    rc = mpl.rcParams
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(NullLocator())
    axis.set_minor_locator(NullLocator())
    box = ax.get_position()
    width, height = ax.figure.get_size_inches()
    inches = box.height * height if which == "x" else box.width * width
    direction = rc[f"{which}tick.direction"]
    reach = {"out": (-1.0, 0.0), "in": (0.0, 1.0)}.get(direction, (-0.5, 0.5))
    transform = ax.get_xaxis_transform() if which == "x" else ax.get_yaxis_transform()
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    tolerance = 1e-9 * max(high - low, 1e-300)
    ticks = [(t, text) for t, text in ticks if low - tolerance <= t <= high + tolerance]
    minor = [m for m in minor if low - tolerance <= m <= high + tolerance]
    colour = rc[f"{which}tick.color"]
    place_label(ax, which, [text for _, text in ticks])
    for kind, positions in (("major", [t for t, _ in ticks]), ("minor", list(minor))):
        if not positions:
            continue
        length = float(rc[f"{which}tick.{kind}.size"]) / 72 / inches  # axes fraction
        lo, hi = reach[0] * length, reach[1] * length
        segments = [[(m, lo), (m, hi)] if which == "x" else [(lo, m), (hi, m)] for m in positions]
        lines = LineCollection(
            segments,
            colors=colour,
            linewidths=float(rc[f"{which}tick.{kind}.width"]),
            transform=transform,
        )
        lines.set_clip_on(False)
        ax.add_collection(lines, autolim=False)
    outside = float(rc[f"{which}tick.major.size"]) if direction != "in" else 0.0
    if direction == "inout":
        outside /= 2
    pad = outside + float(rc[f"{which}tick.major.pad"])
    label_colour = rc[f"{which}tick.labelcolor"]
    label_colour = colour if label_colour == "inherit" else label_colour
    if which == "x":
        shifted = offset_copy(transform, fig=ax.figure, x=0.0, y=-pad, units="points")
        place = {"ha": "center", "va": "top"}
    else:
        shifted = offset_copy(transform, fig=ax.figure, x=-pad, y=0.0, units="points")
        place = {"ha": "right", "va": "center_baseline"}
    size = FontProperties(size=rc[f"{which}tick.labelsize"]).get_size_in_points()
    style = {"color": label_colour, "clip_on": False}
    for position, text in ticks:
        xy = (position, 0.0) if which == "x" else (0.0, position)
        power = _POWER.fullmatch(text)
        if power is None:
            ax.text(*xy, text, transform=shifted, fontsize=size, gid=f"{which}ticklabel",
                    **place, **style)  # fmt: skip
            continue
        base, exponent = power.group(1), power.group(2).translate(_PLAIN)
        small = {"fontsize": size * _EXPONENT_SIZE, "gid": f"{which}tickexponent", **style}
        if which == "x":  # the base centred on the tick, the exponent after it, tops level
            anchor = ax.text(*xy, base, transform=shifted, fontsize=size,
                             gid="xticklabel", **place, **style)  # fmt: skip
            ax.annotate(exponent, xy=(1.0, 0.0), xycoords=(anchor, shifted), ha="left",
                        va="top", **small)  # fmt: skip
        else:  # the exponent ends where the labels end, the base before it on the tick's line
            raised = offset_copy(
                transform, fig=ax.figure, x=-pad, y=_EXPONENT_RISE * size, units="points"
            )
            anchor = ax.text(*xy, exponent, transform=raised, ha="right", va="top", **small)
            ax.annotate(base, xy=(0.0, position), xycoords=(anchor, shifted), ha="right",
                        va="center_baseline", fontsize=size, gid="yticklabel",
                        **style)  # fmt: skip


def tick_labels(ax: Axes, which: str) -> list:
    """The tick labels :func:`draw_ticks` drew on ``ax``'s ``x`` or ``y`` axis (Text artists).

    A power of ten's label is its base (``10``); :func:`tick_texts` gives whole labels.
    """
    return [t for t in ax.texts if t.get_gid() == f"{which}ticklabel"]


def tick_texts(ax: Axes, which: str) -> list[str]:
    """The labels :func:`draw_ticks` wrote on ``ax``'s ``x`` or ``y`` axis, as ``10⁴`` is read."""
    exponents = {}
    for text in ax.texts:  # each exponent, by the base it is set beside (or the other way)
        if text.get_gid() == f"{which}tickexponent" and which == "x":
            exponents[id(text.xycoords[0])] = text.get_text()
        elif which == "y" and text.get_gid() == "yticklabel" and hasattr(text, "xycoords"):
            exponents[id(text)] = text.xycoords[0].get_text()
    return [
        t.get_text() + exponents.get(id(t), "").translate(_SUPERSCRIPT)
        for t in tick_labels(ax, which)
    ]


def place_label(ax: Axes, which: str, ticks: Sequence[str]) -> None:
    """Put ``ax``'s ``x`` or ``y`` axis label beside its tick labels ``ticks``.

    The distance is reckoned from the tick labels' text (one line high below the x axis, as wide
    as the longest on the y axis) instead of matplotlib measuring every tick label of the page at
    each drawing, which takes a fifth of a review page's time.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.transforms import offset_copy

    size = FontProperties(size=mpl.rcParams[f"{which}tick.labelsize"]).get_size_in_points()
    tick = float(mpl.rcParams[f"{which}tick.major.size"]) + float(
        mpl.rcParams[f"{which}tick.major.pad"]
    )
    # one line of text below the x axis; the longest label's width beside the y axis
    widest = max((len(t) for t in ticks), default=1)
    extent = 1.25 * size if which == "x" else 0.62 * size * widest
    offset = tick + extent + float(mpl.rcParams["axes.labelpad"])
    if which == "y":
        transform = offset_copy(ax.transAxes, fig=ax.figure, x=-offset, y=0.0, units="points")
        ax.yaxis.set_label_coords(0.0, 0.5, transform=transform)
    else:
        transform = offset_copy(ax.transAxes, fig=ax.figure, x=0.0, y=-offset, units="points")
        ax.xaxis.set_label_coords(0.5, 0.0, transform=transform)


def _transformed(transform: Any, raw: np.ndarray) -> np.ndarray:
    """Raw values on the transform's scale (non-finite where it has none, e.g. log of 0)."""
    with np.errstate(all="ignore"):
        values = np.asarray(transform.apply(np.asarray(raw, dtype=np.float64)), dtype=np.float64)
    return values.reshape(-1)


def _decade_ticks(transform: Any, lo: float, hi: float) -> tuple[list[tuple[float, str]], list]:
    """Decade ticks (0, +/-10^k) and minor ticks (m x 10^k) that fall within ``[lo, hi]``."""
    powers = np.array([10.0**k for k in _DECADES])
    majors_raw = np.concatenate([-powers[::-1], [0.0], powers])
    minors_raw = np.array([m * p for p in powers for m in range(2, 10)])
    minors_raw = np.concatenate([-minors_raw, minors_raw])
    majors = _transformed(transform, majors_raw)
    minors = _transformed(transform, minors_raw)
    span = hi - lo
    ticks: list[tuple[float, str]] = []
    # Largest magnitudes first, so that a crowded low end (logicle's linear zone near 0) loses
    # its small decades, never 0 nor the large ones.
    order = sorted(range(majors_raw.size), key=lambda i: (majors_raw[i] != 0, -abs(majors_raw[i])))
    for i in order:
        position = majors[i]
        if not np.isfinite(position) or not lo <= position <= hi:
            continue
        if all(abs(position - kept) >= _MIN_GAP * span for kept, _ in ticks):
            ticks.append((float(position), decade_label(majors_raw[i])))
    ticks.sort()
    minor: list[float] = []
    taken = sorted(t for t, _ in ticks)
    for m in sorted(float(m) for m in minors if np.isfinite(m) and lo <= m <= hi):
        # where decades crowd (logicle's linear zone), minor ticks would merge into a bar
        if all(abs(m - t) >= _MINOR_GAP * span for t in taken[-1:] + minor[-1:]):
            minor.append(m)
    return ticks, minor


def _linear_ticks(transform: Any, lo: float, hi: float) -> tuple[list[tuple[float, str]], list]:
    """Round raw values (thousands as ``K``) at their positions on a linear or raw axis."""
    from matplotlib.ticker import MaxNLocator

    if transform is None:
        raw_lo, raw_hi = lo, hi
    else:
        raw_lo, raw_hi = np.sort(np.asarray(transform.inverse(np.array([lo, hi])), dtype=float))
    raw = [v for v in MaxNLocator(nbins=5).tick_values(raw_lo, raw_hi) if raw_lo <= v <= raw_hi]
    raw_array = np.asarray(raw, dtype=np.float64)
    positions = raw_array if transform is None else _transformed(transform, raw_array)
    span = max(abs(raw_lo), abs(raw_hi))
    return [(float(p), _thousands(v, span)) for p, v in zip(positions, raw)], []


def axis_scale(label: str, transform: Any, limits: tuple[float, float]) -> AxisScale:
    """The ticks of a dimension drawn over ``limits`` (on its transformed scale).

    Parameters
    ----------
    label
        The axis label.
    transform
        The FlowKit transform the gate applies to the dimension (``None``: raw values). A log-like
        transform (:data:`DECADE_TRANSFORMS`) is ticked in decades of the raw scale; a linear one
        or none in round raw values.
    limits
        The axis range, on the transformed scale.
    """
    lo, hi = float(limits[0]), float(limits[1])
    scale = AxisScale(label=label, transform=transform)
    if scale.decades:
        scale.ticks, scale.minor = _decade_ticks(transform, lo, hi)
    elif transform is None or type(transform).__name__ == "LinearTransform":
        scale.ticks, scale.minor = _linear_ticks(transform, lo, hi)
    return scale


def data_limits(values: np.ndarray, *, extra: np.ndarray | None = None) -> tuple[float, float]:
    """An axis range zoomed to the data: its 0.5-99.5 percentiles, padded, widened to ``extra``.

    Parameters
    ----------
    values
        The events drawn on the axis (non-finite values are ignored).
    extra
        Positions that must show as well (a gate's thresholds and vertices); those far outside
        the data (more than the data's own span away) are left out rather than squashing the
        data into a corner.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    wanted = np.asarray(extra if extra is not None else [], dtype=np.float64).reshape(-1)
    wanted = wanted[np.isfinite(wanted)]
    if finite.size:
        # every k-th value of a large set: the same percentiles to a fraction of the axis
        step = max(1, finite.size // _PERCENTILE_FROM)
        lo, hi = (float(v) for v in np.percentile(finite[::step], [_LOW, _HIGH]))
    elif wanted.size:
        lo, hi = float(wanted.min()), float(wanted.max())
    else:
        lo, hi = 0.0, 1.0
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    near = wanted[(wanted >= lo - span) & (wanted <= hi + span)]
    if near.size:
        lo, hi = min(lo, float(near.min())), max(hi, float(near.max()))
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return lo - _PAD * span, hi + _PAD * span
