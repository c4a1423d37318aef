"""Gate shapes: rectangles, quadrants, polygons, ellipsoids and Boolean gates, as FlowKit decides them.

Each shape returns membership already intersected with its parent. Polygons are decided on a grid:
each axis is cut into cells whose corners are transformed exactly, every cell is classified once
as inside, outside or touching the polygon's edge, and each event takes its cell's class. Only
events in edge cells are transformed and tested exactly (FlowUtils' ``points_in_polygon``).
Ellipsoids, polygons on a log axis (``flog``, FlowJo log), with non-finite values or on fewer than
4,096 events (200,000 when their exact values are cheap) are tested exactly on every event of the
parent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StrategyError
from ._transforms import GRID_TRANSFORMS, INVERTIBLE, asinh_scale, kind_of, non_decreasing

if TYPE_CHECKING:
    from ..io import Gate
    from ._dims import Dim
    from ._values import Values

__all__ = ["boolean", "ellipsoid", "polygon", "quadrant", "rectangle"]

_GRID_CELLS = 256  # cells per polygon axis, at most
_GRID_MIN_EVENTS = 4096  # below this a polygon is tested exactly on every event of its parent
_GRID_MIN_EVENTS_CHEAP = 200_000  # the same, when its exact values are cheap (raw, linear, asinh)


def rectangle(
    values: Values,
    gate: Gate,
    dims: list[Dim],
    parent: np.ndarray,
    *,
    bounds: Sequence[tuple[float | None, float | None]] | None = None,
) -> np.ndarray:
    """A rectangle (or range): every bound of every dimension, or its complement.

    ``bounds``: ``(min, max)`` per dimension placed for this sample (default: the gate's own).
    """
    result = parent.copy()
    if bounds is None:
        bounds = [
            (getattr(d, "min", None), getattr(d, "max", None)) for d in gate.fk_gate.dimensions
        ]
    for (low, high), dim in zip(bounds, dims):
        if low is not None:
            result &= values.condition(dim, ">=", low)
        if high is not None:
            result &= values.condition(dim, "<", high)
    if gate.fk_gate.use_complement:
        result = parent & ~result
    return result


def quadrant(
    values: Values,
    gate: Gate,
    dims: list[Dim],
    parent: np.ndarray,
    *,
    dividers: Mapping[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """One quadrant of a quadrant gate: the divider ranges of its position.

    ``dividers``: divider id -> ``(template value, value placed for this sample)``.
    """
    fk_gate = gate.fk_gate
    by_divider = {div.id: dim for div, dim in zip(fk_gate.dimensions, dims)}
    fk_quadrant = fk_gate.quadrants[gate.quadrant]
    result = parent.copy()
    for ref in fk_quadrant.divider_refs:
        low, high = fk_quadrant.get_divider_range(ref)
        if dividers and ref in dividers:
            template, placed = dividers[ref]
            low = placed if low is not None and low == template else low
            high = placed if high is not None and high == template else high
        dim = by_divider[ref]
        if low is not None:
            result &= values.condition(dim, ">=", low)
        if high is not None:
            result &= values.condition(dim, "<", high)
    return result


def polygon(
    values: Values,
    gate: Gate,
    dims: list[Dim],
    parent: np.ndarray,
    *,
    everyone: bool,
    vertices: np.ndarray | None = None,
) -> np.ndarray:
    """A polygon, on a grid where it pays (``everyone``: the parent is every event).

    ``vertices``: the polygon placed for this sample (default: the gate's own).
    """
    from flowutils.gating import points_in_polygon

    if vertices is None:
        vertices = gate.fk_gate.vertices
    vertices = np.asarray(vertices, dtype=np.float64)
    rows = None if everyone else np.flatnonzero(parent)
    size = values.n if everyone else rows.size
    inside = None
    cheap = all(values.cheap_exact(dim) for dim in dims)
    if size >= (_GRID_MIN_EVENTS_CHEAP if cheap else _GRID_MIN_EVENTS):
        inside = _polygon_grid(values, vertices, dims, rows, size)
    if inside is None:
        if rows is None:
            rows = np.arange(values.n)
        if size:
            points = np.column_stack([values.exact(dim, rows) for dim in dims])
            inside = points_in_polygon(vertices, points)
        else:
            inside = np.zeros(0, dtype=bool)
    if gate.fk_gate.use_complement:
        np.logical_not(inside, out=inside)
    if rows is None:
        return inside
    result = np.zeros(values.n, dtype=bool)
    result[rows] = inside
    return result


def ellipsoid(
    values: Values,
    gate: Gate,
    dims: list[Dim],
    parent: np.ndarray,
    *,
    coordinates: np.ndarray | None = None,
    covariance: np.ndarray | None = None,
) -> np.ndarray:
    """An ellipsoid, tested exactly on every event of the parent.

    ``coordinates``, ``covariance``: its centre and shape placed for this sample (default: the
    gate's own).
    """
    from flowutils.gating import points_in_ellipsoid

    fk_gate = gate.fk_gate
    rows = np.flatnonzero(parent)
    result = np.zeros(values.n, dtype=bool)
    if rows.size:
        points = np.column_stack([values.exact(dim, rows) for dim in dims])
        result[rows] = points_in_ellipsoid(
            fk_gate.covariance_matrix if covariance is None else covariance,
            fk_gate.coordinates if coordinates is None else coordinates,
            fk_gate.distance_square,
            points,
        )
    return result


def boolean(
    gate: Gate, results: Mapping[str, np.ndarray], parent: np.ndarray, strategy_name: str
) -> np.ndarray:
    """A Boolean gate (and / or / not) of gates already decided."""
    members = []
    for ref, complement in gate.references:
        if ref not in results:
            raise StrategyError(
                f"{strategy_name}: Boolean gate {gate.path!r} refers to unknown gate {ref!r}"
            )
        members.append(~results[ref] if complement else results[ref])
    op = gate.fk_gate.type
    if op == "and":
        combined = np.logical_and.reduce(members)
    elif op == "or":
        combined = np.logical_or.reduce(members)
    else:
        combined = ~members[0]
    return parent & combined


# ----------------------------------------------------------------------------- polygon grid
def _polygon_grid(
    values: Values, vertices: np.ndarray, dims: list[Dim], rows: np.ndarray | None, size: int
) -> np.ndarray | None:
    """Polygon membership of ``rows`` (``None``: every event) by grid cell; edge cells exactly."""
    from flowutils.gating import points_in_polygon

    if len(dims) != 2 or vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
        return None
    # about sqrt(events)/2 cells per axis: the table costs no more than the events it serves
    cells = int(min(_GRID_CELLS, max(32, math.sqrt(size) / 2)))
    axes = []
    for d, dim in enumerate(dims):
        axis = _axis(
            values, dim, float(vertices[:, d].min()), float(vertices[:, d].max()), rows, cells
        )
        if axis is None:
            return None
        axes.append(axis)
    (cell_x, lo_x, hi_x), (cell_y, lo_y, hi_y) = axes
    table = _classify_cells(vertices, lo_x, hi_x, lo_y, hi_y, points_in_polygon)
    cell_x *= float(table.shape[1])
    cell_x += cell_y
    cls = table.ravel().take(cell_x.astype(np.intp))
    inside = cls == 1
    unsure = np.flatnonzero(cls == 2)
    if unsure.size:
        sub = unsure if rows is None else rows[unsure]
        points = np.column_stack([values.exact(dim, sub) for dim in dims])
        inside[unsure] = points_in_polygon(vertices, points)
    return inside


def _grid_nodes(
    xform: Any, low: float, high: float, cells: int
) -> tuple[bool, float, float, float, np.ndarray] | None:
    """Cell corners of one axis: ``(linear, scale, u_a, step, corners)`` in untransformed values.

    Cells are uniform in ``u`` (the raw value, or ``asinh(raw / scale)`` for log-like transforms)
    over the vertices' range widened by 5% on each side. ``None``: the axis has no usable grid.
    """
    kind = kind_of(xform)
    if kind not in GRID_TRANSFORMS:
        return None
    if kind is not None and kind not in INVERTIBLE and not non_decreasing(xform):
        return None
    extent = (high - low) or max(1.0, abs(high))
    t_low, t_high = low - 0.05 * extent, high + 0.05 * extent
    if xform is None:
        a, b = t_low, t_high
    else:
        with np.errstate(all="ignore"):
            ends = np.asarray(
                xform.inverse(np.array([[t_low], [t_high]])), dtype=np.float64
            ).reshape(-1)
        a, b = float(ends[0]), float(ends[1])
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        return None
    linear = xform is None or kind == "LinearTransform"
    scale = 1.0 if linear else asinh_scale(xform, a, b)
    u_a, u_b = (a, b) if linear else (math.asinh(a / scale), math.asinh(b / scale))
    step = (u_b - u_a) / cells
    if not step > 1e-9 * max(abs(u_a), abs(u_b), 1e-300):
        return None
    nodes_u = u_a + step * np.arange(cells + 1)
    nodes_x = nodes_u if linear else scale * np.sinh(nodes_u)
    return linear, scale, u_a, step, nodes_x


def _axis(
    values: Values, dim: Dim, low: float, high: float, rows: np.ndarray | None, cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One polygon axis on a grid: each event's cell (as float) and each cell's exact bounds.

    An event computed to lie in cell ``c`` lies, allowing for rounding and the compensation bound
    (both far below a cell), in cells ``c-1 .. c+1``, so its exact transformed value is within the
    corners of those three cells: the returned bounds of cell ``c`` span them (open-ended at the
    grid's ends).
    """
    grid = _grid_nodes(values.xform(dim), low, high, cells)
    if grid is None:
        return None
    linear, scale, u_a, step, nodes_x = grid
    nodes_t = values.apply(dim, nodes_x)
    if not (
        np.all(np.isfinite(nodes_t))
        and np.all(np.diff(nodes_t) >= 0)
        and np.all(np.diff(nodes_x) > 0)
    ):
        return None
    raw, err = values.raw_fast(dim)
    if err > 0.25 * float(np.min(np.diff(nodes_x))):
        return None
    x = raw if rows is None else raw[rows]
    if not math.isfinite(float(np.add.reduce(x))):
        return None  # non-finite values: decide every event exactly
    if linear:
        q = x - u_a
    else:
        q = np.divide(x, scale)
        np.arcsinh(q, out=q)
        q -= u_a
    q *= 1.0 / step
    np.fmax(q, 0.0, out=q)
    np.fmin(q, float(cells - 1), out=q)
    np.floor(q, out=q)
    idx = np.arange(cells)
    lo = np.where(idx >= 1, nodes_t[np.maximum(idx - 1, 0)], -np.inf)
    hi = np.where(idx + 2 <= cells, nodes_t[np.minimum(idx + 2, cells)], np.inf)
    return q, lo, hi


def _classify_cells(
    vertices: np.ndarray,
    lo_x: np.ndarray,
    hi_x: np.ndarray,
    lo_y: np.ndarray,
    hi_y: np.ndarray,
    points_in_polygon: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Class of every grid cell: 0 outside, 1 inside, 2 within reach of an edge (decide exactly)."""
    vmin = vertices.min(axis=0)
    vmax = vertices.max(axis=0)
    extent = np.maximum(vmax - vmin, 1e-300)
    far_lo = vmin - extent
    far_hi = vmax + extent
    tol = 1e-9 * (np.abs(vmin) + np.abs(vmax) + extent)
    bx_lo = np.clip(lo_x, far_lo[0], far_hi[0]) - tol[0]
    bx_hi = np.clip(hi_x, far_lo[0], far_hi[0]) + tol[0]
    by_lo = np.clip(lo_y, far_lo[1], far_hi[1]) - tol[1]
    by_hi = np.clip(hi_y, far_lo[1], far_hi[1]) + tol[1]
    boundary = np.zeros((bx_lo.size, by_lo.size), dtype=bool)
    n_vert = len(vertices)
    for k in range(n_vert):
        px, py = vertices[k]
        qx, qy = vertices[(k + 1) % n_vert]
        ix = np.flatnonzero((bx_hi >= min(px, qx)) & (bx_lo <= max(px, qx)))
        iy = np.flatnonzero((by_hi >= min(py, qy)) & (by_lo <= max(py, qy)))
        if ix.size == 0 or iy.size == 0:
            continue
        i0, i1 = ix[0], ix[-1] + 1
        j0, j1 = iy[0], iy[-1] + 1
        a = qx - px
        b = qy - py
        t1 = a * (by_lo[j0:j1] - py)
        t2 = a * (by_hi[j0:j1] - py)
        u1 = b * (bx_lo[i0:i1] - px)
        u2 = b * (bx_hi[i0:i1] - px)
        s_min = np.minimum(t1, t2)[None, :] - np.maximum(u1, u2)[:, None]
        s_max = np.maximum(t1, t2)[None, :] - np.minimum(u1, u2)[:, None]
        slack = 1e-9 * (abs(a) * extent[1] + abs(b) * extent[0])
        boundary[i0:i1, j0:j1] |= (s_min <= slack) & (s_max >= -slack)
    cx = 0.5 * (bx_lo + bx_hi)
    cy = 0.5 * (by_lo + by_hi)
    gx, gy = np.meshgrid(cx, cy, indexing="ij")
    free = ~boundary
    table = np.full(boundary.shape, 2, dtype=np.int8)
    if free.any():
        centers = np.column_stack([gx[free], gy[free]])
        table[free] = points_in_polygon(vertices, centers).astype(np.int8)
    return table
