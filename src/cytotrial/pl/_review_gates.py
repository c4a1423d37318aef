"""A gate's shape as placed in one sample, and how it is drawn on the review's panels.

A gate of the strategy is drawn where the sample was gated with it: an adaptive gate where it was
placed for the sample (its boundaries from the gate positions table, turned back into the shape's
geometry by :func:`cytotrial.gating.sample_placements`), any other gate as the strategy draws it.
:func:`gate_shape` gives that geometry on a panel's axes (a panel may show a gate's dimensions in
the other order, when it holds several gates of one parent on the same channels); :func:`draw_shape`
draws it: a range as lines at its finite bounds (1-D) or a rectangle, a polygon, an ellipse, or a
quadrant gate's dividers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..io import Gate

__all__ = ["GateShape", "draw_shape", "gate_shape", "shape_extent"]

#: Colour of a gate as placed, and of one that kept (some of) the template's position.
GATE_COLOUR = "black"
FALLBACK_COLOUR = "#D55E00"
TEMPLATE_COLOUR = "0.55"


@dataclass
class GateShape:
    """A gate's geometry on a panel's axes (x = the panel's first dimension, y its second).

    Attributes
    ----------
    kind
        ``"range"`` (a rectangle gate: one ``(low, high)`` per axis, ``None`` open),
        ``"polygon"``, ``"ellipse"`` or ``"dividers"`` (a quadrant gate).
    bounds
        A range's bounds per axis.
    vertices
        A polygon's vertices, ``(n, 2)``.
    centre, covariance, distance_square
        An ellipse (FlowKit's ellipsoid gate: the points within ``distance_square`` of the centre
        in the covariance's metric).
    dividers
        A quadrant gate's divider positions per axis.
    """

    kind: str
    bounds: list[tuple[float | None, float | None]] = field(default_factory=list)
    vertices: np.ndarray | None = None
    centre: np.ndarray | None = None
    covariance: np.ndarray | None = None
    distance_square: float = 1.0
    dividers: list[list[float]] = field(default_factory=list)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def gate_shape(
    gate: Gate, placement: Mapping[str, Any] | None, order: Sequence[int] = (0, 1)
) -> GateShape:
    """The gate's geometry in one sample, on axes showing its dimensions in ``order``.

    Parameters
    ----------
    gate
        The strategy's gate (its template geometry).
    placement
        Where the sample's adaptive boundaries put it (a value of
        :func:`cytotrial.gating.sample_placements`: ``bounds``, ``vertices``,
        ``coordinates``/``covariance`` or ``dividers``); ``None`` or empty: the template.
    order
        The gate's dimension shown on each axis of the panel (``(1, 0)``: its second dimension on
        x). Only the first ``len(gate.dimensions)`` entries are used.
    """
    placed = dict(placement or {})
    fk = gate.fk_gate
    order = list(order)[: len(gate.dimensions)]
    if gate.kind == "rectangle":
        bounds = placed.get("bounds") or [(d.min, d.max) for d in fk.dimensions]
        bounds = [(_float(lo), _float(hi)) for lo, hi in bounds]
        return GateShape("range", bounds=[bounds[i] for i in order])
    if gate.kind == "polygon":
        vertices = placed.get("vertices")
        vertices = np.asarray(fk.vertices if vertices is None else vertices, dtype=np.float64)
        return GateShape("polygon", vertices=vertices[:, order])
    if gate.kind == "ellipsoid":
        centre = placed.get("coordinates")
        centre = np.asarray(fk.coordinates if centre is None else centre, dtype=np.float64)
        covariance = placed.get("covariance")
        covariance = np.asarray(
            fk.covariance_matrix if covariance is None else covariance, dtype=np.float64
        )
        return GateShape(
            "ellipse",
            centre=centre[order],
            covariance=covariance[np.ix_(order, order)],
            distance_square=float(fk.distance_square),
        )
    if gate.kind == "quadrant":
        moved = placed.get("dividers") or {}
        per_dimension = []
        for divider in fk.dimensions:
            values = [float(v) for v in divider.values]
            if divider.id in moved:
                template, position = moved[divider.id]
                values = [float(position) if v == float(template) else v for v in values]
            per_dimension.append(values)
        return GateShape("dividers", dividers=[per_dimension[i] for i in order])
    raise ValueError(f"gate {gate.path!r} of kind {gate.kind!r} has no shape to draw")


def shape_extent(shape: GateShape) -> list[np.ndarray]:
    """The positions of the shape on each axis (finite bounds, vertices, the ellipse's box)."""
    if shape.kind == "range":
        return [np.array([v for v in pair if v is not None], dtype=float) for pair in shape.bounds]
    if shape.kind == "polygon":
        return [shape.vertices[:, i] for i in range(shape.vertices.shape[1])]
    if shape.kind == "ellipse":
        half = np.sqrt(np.diag(shape.covariance) * shape.distance_square)
        return [np.array([c - h, c + h]) for c, h in zip(shape.centre, half)]
    return [np.asarray(values, dtype=float) for values in shape.dividers]


def _ellipse(ax: Axes, shape: GateShape, style: Mapping[str, Any]) -> None:
    from matplotlib.patches import Ellipse

    values, vectors = np.linalg.eigh(shape.covariance)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    scale = np.sqrt(shape.distance_square)
    width, height = 2 * scale * np.sqrt(values[1]), 2 * scale * np.sqrt(values[0])
    ax.add_patch(Ellipse(tuple(shape.centre), width, height, angle=angle, fill=False, **style))


def _across(ax: Axes, which: str, value: float, style: Mapping[str, Any]) -> None:
    """A line across the panel at ``value`` on its ``x`` (vertical) or ``y`` axis.

    What ``axvline`` and ``axhline`` draw, without their update of the data limits (the panel's
    limits are set already).
    """
    from matplotlib.lines import Line2D

    if which == "x":
        line = Line2D([value, value], [0, 1], transform=ax.get_xaxis_transform(), **style)
    else:
        line = Line2D([0, 1], [value, value], transform=ax.get_yaxis_transform(), **style)
    ax.add_artist(line)


def _range(ax: Axes, shape: GateShape, style: Mapping[str, Any], *, shade: bool) -> None:
    """A 1-D range as lines at its finite bounds (the inside shaded); a 2-D one as a rectangle."""
    from matplotlib.patches import Rectangle

    x0, x1 = ax.get_xlim()
    if len(shape.bounds) == 1:
        low, high = shape.bounds[0]
        for value in (low, high):
            if value is not None:
                _across(ax, "x", value, style)
        if shade:
            left = x0 if low is None else max(low, x0)
            right = x1 if high is None else min(high, x1)
            if right > left:
                ax.axvspan(left, right, color=style["color"], alpha=0.07, linewidth=0)
        return
    y0, y1 = ax.get_ylim()
    (xl, xh), (yl, yh) = shape.bounds
    left, right = max(xl if xl is not None else x0, x0), min(xh if xh is not None else x1, x1)
    bottom, top = max(yl if yl is not None else y0, y0), min(yh if yh is not None else y1, y1)
    if right > left and top > bottom:
        ax.add_patch(Rectangle((left, bottom), right - left, top - bottom, fill=False, **style))


def draw_shape(
    ax: Axes,
    shape: GateShape,
    *,
    colour: str = GATE_COLOUR,
    dashed: bool = False,
    width: float = 1.3,
    shade: bool = False,
) -> None:
    """Draw a gate's shape on axes whose limits are set (open ranges end at the axes' edges).

    Parameters
    ----------
    ax
        The panel.
    shape
        From :func:`gate_shape`.
    colour, dashed, width
        Line style: black and solid for a gate as placed; a template drawn beneath is thinner,
        grey and dashed.
    shade
        Shade the inside of a 1-D range (where the panel holds that gate alone: two gates of
        one threshold would shade it all).
    """
    from matplotlib.patches import Polygon

    style = {"color": colour, "linewidth": width, "linestyle": "--" if dashed else "-"}
    if shape.kind == "range":
        _range(ax, shape, style, shade=shade)
    elif shape.kind == "polygon":
        if shape.vertices.shape[1] == 2:
            ax.add_patch(Polygon(shape.vertices, closed=True, fill=False, **style))
    elif shape.kind == "ellipse":
        _ellipse(ax, shape, style)
    elif shape.kind == "dividers":
        for value in shape.dividers[0]:
            _across(ax, "x", value, style)
        if len(shape.dividers) > 1:
            for value in shape.dividers[1]:
                _across(ax, "y", value, style)
