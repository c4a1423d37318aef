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
    "place_label",
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
_MINOR_GAP = 0.02  # minor ticks closer than this fraction of the axis to the last are left out
_DECADES = range(0, 10)  # 10^0 .. 10^9: every decade a cytometer can record
_MIN_GAP = 0.07  # labelled ticks closer than this fraction of the axis are thinned
_LOW, _HIGH, _PAD = 0.5, 99.5, 0.06  # percentiles of the data range and padding on each side


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
        """Set these ticks and the label on ``ax``'s ``x`` or ``y`` axis.

        Minor ticks are drawn as one set of short lines at the axis (as long as the theme's minor
        ticks): a page holds dozens of them per axis, which matplotlib's own tick objects draw
        a hundred times slower.
        """
        from matplotlib.collections import LineCollection

        axis = ax.xaxis if which == "x" else ax.yaxis
        axis.set_ticks([t for t, _ in self.ticks], [text for _, text in self.ticks])
        axis.set_ticks([], minor=True)
        axis.set_label_text(self.label)
        place_label(ax, which, [text for _, text in self.ticks])
        if not self.minor:
            return
        box = ax.get_position()
        width, height = ax.figure.get_size_inches()
        size = float(mpl.rcParams[f"{which}tick.minor.size"]) / 72
        if which == "x":
            length = size / (box.height * height)
            segments = [[(m, 0.0), (m, -length)] for m in self.minor]
            transform = ax.get_xaxis_transform()
        else:
            length = size / (box.width * width)
            segments = [[(0.0, m), (-length, m)] for m in self.minor]
            transform = ax.get_yaxis_transform()
        colour = mpl.rcParams[f"{which}tick.color"]
        lines = LineCollection(segments, colors=colour, linewidths=0.6, transform=transform)
        lines.set_clip_on(False)
        ax.add_collection(lines, autolim=False)


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
        lo, hi = (float(v) for v in np.percentile(finite, [_LOW, _HIGH]))
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
