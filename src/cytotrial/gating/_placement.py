"""Adaptive gates placed in one sample: each boundary from its parent's events, or the template's.

The engine calls :func:`place_gate` for a gate with adaptive boundaries once its parent is known
(parents are gated, and placed, first). The parent's events are read as the gate sees them
(compensated, transformed) but binned, not transformed one by one: the values are cut on a fine
grid that is uniform in ``asinh(x / s)`` (a cheap stand-in for logicle, hyperlog, asinh and
FlowJo's biex), each fine cell knowing its bin of the gate's own uniform grid from its exactly
transformed centre. At most :data:`MAX_EVENTS` parent events are read (every k-th: files are in
acquisition order; a 2-D peak reads :data:`MAX_EVENTS_2D`), which keeps a boundary to about a
millisecond per file.

The placed geometry goes to the gate's shape as keyword arguments (``bounds`` of a range,
``dividers`` of a quadrant gate, ``vertices`` of a polygon, ``coordinates`` / ``covariance`` of an
ellipsoid), and one record per boundary says where it went: :data:`POSITION_FIELDS`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._adaptive import axis_range
from ._density import peak_2d, profile, reference_threshold, valley
from ._transforms import apply_transform, asinh_scale, kind_of

if TYPE_CHECKING:
    from ..io import Gate
    from ._adaptive import Boundary
    from ._dims import Dim
    from ._values import Values

__all__ = [
    "GATE_POSITION_COLUMNS",
    "MAX_EVENTS",
    "MAX_EVENTS_2D",
    "POSITION_FIELDS",
    "Position",
    "place_gate",
]

#: At most this many parent events are read per boundary (every k-th event); a 2-D peak reads
#: more (:data:`MAX_EVENTS_2D`).
MAX_EVENTS = 10_000
MAX_EVENTS_2D = 40_000
_BINS = 256  # bins of a 1-D density grid
_BINS_2D = 96  # bins per axis of a 2-D search box
_FINE = 16  # fine cells per bin on log-like axes
_ASINH_LIKE = {"LogicleTransform", "HyperlogTransform", "AsinhTransform", "WSPBiexTransform"}
_FINE_TABLES: dict[tuple, tuple[Any, Any]] = {}  # fine tables by (transform, grid), across files
_FINE_TABLES_KEPT = 256
_SEARCH_MARGIN = 1.25  # a follow's search box reaches this many max_shifts from the anchor
_MIN_BOX_EVENTS = 50  # read events a follow's search box must hold

#: Fields of a :class:`Position` (a row of the gate positions table, without ``sample_id``).
POSITION_FIELDS = (
    "gate",
    "gate_path",
    "dimension",
    "bound",
    "method",
    "template",
    "position",
    "lo",
    "hi",
    "status",
    "reason",
    "parent_events",
)


#: Columns of a gating batch's gate positions table: one row per sample and adaptive boundary
#: coordinate (a ``follow`` gate has two: its peak on each dimension).
GATE_POSITION_COLUMNS = ["sample_id", *POSITION_FIELDS]


class Position(NamedTuple):
    """Where one adaptive boundary went in one sample (one coordinate of it)."""

    gate: str
    gate_path: str
    dimension: str
    bound: str
    method: str
    template: float
    position: float
    lo: float  # the range the boundary may take: its window, or anchor -/+ max_shift
    hi: float
    status: str  # "adapted" or "fallback"
    reason: str
    parent_events: int


def _sampled(parent: np.ndarray, cap: int) -> tuple[np.ndarray, int]:
    """Rows of the parent's events among every k-th event (about ``cap``), and the parent's size."""
    size = int(np.count_nonzero(parent))
    step = max(1, -(-size // cap))
    if step == 1:
        return np.flatnonzero(parent), size
    return np.flatnonzero(parent[::step]) * step, size


class _Axis:
    """Bins of one dimension's values on a uniform grid of the gate's (transformed) units."""

    def __init__(self, values: Values, dim: Dim, lo: float, hi: float, bins: int) -> None:
        self.values, self.dim = values, dim
        self.lo, self.bins = float(lo), int(bins)
        self.step = (float(hi) - self.lo) / self.bins
        self.edges = self.lo + self.step * np.arange(self.bins + 1)
        xform = values.xform(dim)
        self._lut = None
        if kind_of(xform) in _ASINH_LIKE:
            key = (id(xform), self.lo, float(hi), self.bins)
            if key not in _FINE_TABLES:
                if len(_FINE_TABLES) >= _FINE_TABLES_KEPT:
                    _FINE_TABLES.pop(next(iter(_FINE_TABLES)))
                # the transform is kept with its table: its id cannot be reused while cached
                _FINE_TABLES[key] = (xform, _fine_table(xform, self.lo, float(hi), self.bins))
            self._lut = _FINE_TABLES[key][1]

    def index(self, raw: np.ndarray) -> np.ndarray:
        """Bin of each value: ``-1`` below the grid, ``bins`` above it."""
        if self._lut is not None:
            scale, u0, du, table = self._lut
            q = np.arcsinh(raw / scale)
            q -= u0
            q *= 1.0 / du
            cell = np.floor(q, out=q)
            inside = (cell >= 0) & (cell < table.size)
            out = np.where(cell < 0, -1, self.bins)
            out[inside] = table[cell[inside].astype(np.intp)]
            return out
        t = self.values.apply(self.dim, raw)
        q = np.floor((t - self.lo) / self.step)
        return np.clip(q, -1, self.bins).astype(np.intp)


def _fine_table(
    xform: Any, lo: float, hi: float, bins: int
) -> tuple[float, float, float, np.ndarray] | None:
    """``(scale, u0, du, bin of each fine cell)`` of an asinh-like axis (``None``: unusable).

    Fine cells are uniform in ``asinh(x / scale)``; each takes the bin of its exactly
    transformed centre on the uniform grid ``lo .. hi`` of ``bins`` bins.
    """
    with np.errstate(all="ignore"):
        ends = np.asarray(xform.inverse(np.array([[lo], [hi]])), dtype=np.float64)
    a, b = (float(v) for v in ends.reshape(-1))
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        return None
    scale = asinh_scale(xform, a, b)
    u0, u1 = math.asinh(a / scale), math.asinh(b / scale)
    cells = bins * _FINE
    du = (u1 - u0) / cells
    centres = scale * np.sinh(u0 + du * (np.arange(cells) + 0.5))
    t = apply_transform(xform, centres)
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        return None
    step = (hi - lo) / bins
    table = np.clip(np.floor((t - lo) / step), 0, bins - 1).astype(np.intp)
    return scale, u0, du, table


def _raw(values: Values, dim: Dim, rows: np.ndarray) -> np.ndarray:
    """The finite untransformed values of ``dim`` at ``rows``."""
    raw = values.raw_fast(dim)[0][rows]
    return raw[np.isfinite(raw)]


def _grid(
    values: Values, dim: Dim, raw: np.ndarray, spans: list[tuple[float, float]]
) -> tuple[float, float]:
    """The 1-D grid, holding every given span, padded by 2%.

    On a bounded transform's axis the grid is the axis (the same in every file, so its fine
    table is computed once); elsewhere the parent's central 99.8%.
    """
    axis = axis_range(values.xform(dim))
    if math.isfinite(axis[0]) and math.isfinite(axis[1]):
        points = list(axis)
    else:
        ends = values.apply(dim, np.quantile(raw, [0.001, 0.999]))
        points = [float(v) for v in ends if math.isfinite(v)]
    points += [v for span in spans for v in span]
    lo, hi = min(points), max(points)
    pad = 0.02 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def _one_d(
    values: Values, dim: Dim, boundary: Boundary, rows: np.ndarray
) -> tuple[float | None, str]:
    """A threshold from the parent's events (``None`` with the reason where it cannot)."""
    raw = _raw(values, dim, rows)
    if raw.size < 2:
        return None, "too few events"
    options = boundary.options
    window = boundary.window
    reference = options.get("reference_range")
    lo, hi = _grid(values, dim, raw, [window] + ([tuple(reference)] if reference else []))
    axis = _Axis(values, dim, lo, hi, _BINS)
    counts = np.bincount(axis.index(raw) + 1, minlength=_BINS + 2).astype(np.float64)
    prof = profile(
        counts[1:-1], lo, axis.step, below=counts[0], above=counts[-1],
        bandwidth=options.get("bandwidth"),
    )  # fmt: skip
    if boundary.method == "valley":
        return valley(prof, window, prefer=boundary.template[0])
    side = str(options["reference"])
    if reference is None:
        reference = (lo, window[0]) if side == "below" else (window[1], hi)
    if boundary.method == "tail":
        return reference_threshold(prof, window, tuple(reference), side=side, sds=options["sds"])
    return reference_threshold(
        prof, window, tuple(reference), side=side, quantile=options["quantile"]
    )


def _follow(
    values: Values, dims: list[Dim], boundary: Boundary, rows: np.ndarray
) -> tuple[tuple[float, float] | None, str]:
    """The population's density peak near the anchor (``None`` with the reason where none)."""
    anchor = boundary.template
    shift = boundary.options["max_shift"]
    axes, indices = [], []
    for d in range(2):
        half = _SEARCH_MARGIN * float(shift[d])
        axis = _Axis(values, dims[d], anchor[d] - half, anchor[d] + half, _BINS_2D)
        raw = values.raw_fast(dims[d])[0][rows]
        axes.append(axis)
        indices.append(axis.index(raw))
    ix, iy = indices
    inside = (ix >= 0) & (ix < _BINS_2D) & (iy >= 0) & (iy < _BINS_2D)
    flat = ix[inside] * _BINS_2D + iy[inside]
    counts = np.bincount(flat, minlength=_BINS_2D * _BINS_2D).reshape(_BINS_2D, _BINS_2D)
    peak, reason = peak_2d(counts, axes[0].edges, axes[1].edges, min_events=_MIN_BOX_EVENTS)
    if peak is None:
        return None, reason
    for d in range(2):
        if abs(peak[d] - anchor[d]) > float(shift[d]):
            return None, f"the density peak lies beyond max_shift on {boundary.dimension[d]}"
    return peak, ""


def _records(
    gate: Gate, boundary: Boundary, found: tuple[float, ...] | None, reason: str, n_parent: int
) -> list[Position]:
    status = "adapted" if found is not None else "fallback"
    placed = found if found is not None else boundary.template
    if boundary.window is not None:
        ranges = [boundary.window]
    else:
        shift = boundary.options["max_shift"]
        ranges = [(t - float(d), t + float(d)) for t, d in zip(boundary.template, shift)]
    return [
        Position(
            gate.name,
            gate.path,
            boundary.dimension[k],
            boundary.bound,
            boundary.method,
            float(boundary.template[k]),
            float(placed[k]),
            float(ranges[k][0]),
            float(ranges[k][1]),
            status,
            reason,
            n_parent,
        )
        for k in range(len(boundary.template))
    ]


def _memo_key(dim: Dim, parent: np.ndarray, boundary: Boundary) -> tuple:
    """What a 1-D threshold depends on: the dimension, the parent's events, the settings."""
    options = tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in boundary.options.items())
    )
    return (dim, id(parent), boundary.method, boundary.window, boundary.template, options)


def place_gate(
    values: Values,
    gate: Gate,
    dims: list[Dim],
    boundaries: list[Boundary],
    parent: np.ndarray,
    *,
    memo: dict | None = None,
) -> tuple[dict[str, Any], list[Position]]:
    """The gate's geometry in this sample (keyword arguments of its shape) and where it went.

    Parameters
    ----------
    values
        The engine's values (compensated, transformable) of the sample.
    gate, dims
        The gate and its dimensions' sources.
    boundaries
        The gate's adaptive boundaries (:class:`~cytotrial.gating._adaptive.Boundary`).
    parent
        Membership of the gate's parent population (boolean over events).
    memo
        Thresholds already found in this file (the engine's), shared by gates that read the
        same dimension of the same parent with the same settings (``cd3`` and ``cd3_neg``).
    """
    rows, n_parent = _sampled(parent, MAX_EVENTS)
    geometry = _Geometry(gate)
    records: list[Position] = []
    for boundary in boundaries:
        if boundary.method != "follow":
            found, reason = _threshold(
                values, dims, boundary, parent, rows, n_parent, geometry, memo
            )
        elif n_parent < boundary.min_events:
            found, reason = None, f"too few parent events ({n_parent} < {boundary.min_events})"
        else:
            found, reason = _follow(values, dims, boundary, _sampled(parent, MAX_EVENTS_2D)[0])
        if found is not None:
            geometry.move(boundary, found)
        records += _records(gate, boundary, found, reason, n_parent)
    return geometry.shape_arguments(), records


def _threshold(
    values: Values,
    dims: list[Dim],
    boundary: Boundary,
    parent: np.ndarray,
    rows: np.ndarray,
    n_parent: int,
    geometry: _Geometry,
    memo: dict | None,
) -> tuple[tuple[float] | None, str]:
    """A 1-D boundary's threshold (``None`` with the reason where the data give none)."""
    dim = dims[boundary.dims[0]]
    within = parent
    if boundary.options.get("conditional") and geometry.bounds is not None:
        within = geometry.inside_others(values, dims, boundary.dims[0], parent)
        rows, n_parent = _sampled(within, MAX_EVENTS)
    if n_parent < boundary.min_events:
        return None, f"too few parent events ({n_parent} < {boundary.min_events})"
    key = _memo_key(dim, parent, boundary)
    if within is not parent:
        key += (tuple(geometry.bounds),)
    if memo is None or key not in memo:
        result = _one_d(values, dim, boundary, rows)
        if memo is None:
            memo = {}
        memo[key] = result
    position, reason = memo[key]
    return (None if position is None else (position,)), reason


class _Geometry:
    """A gate's template geometry, moved boundary by boundary."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        fk = gate.fk_gate
        self.bounds: list[tuple[float | None, float | None]] | None = None
        self.dividers: dict[str, tuple[float, float]] = {}
        self.vertices: np.ndarray | None = None
        self.coordinates: np.ndarray | None = None
        self.covariance: np.ndarray | None = None
        if gate.kind == "rectangle":
            self.bounds = [(d.min, d.max) for d in fk.dimensions]

    def move(self, boundary: Boundary, found: tuple[float, ...]) -> None:
        gate, fk = self.gate, self.gate.fk_gate
        if boundary.method != "follow":
            (position,) = found
            if gate.kind == "quadrant":
                divider = fk.dimensions[boundary.dims[0]]
                self.dividers[divider.id] = (boundary.template[0], position)
            else:
                low, high = self.bounds[boundary.dims[0]]
                pair = (position, high) if boundary.bound == "min" else (low, position)
                self.bounds[boundary.dims[0]] = pair
            return
        anchor = np.asarray(boundary.template)
        peak = np.asarray(found)
        scale = boundary.options.get("move") == "scale"
        ratio = peak / anchor if scale else np.ones(2)
        delta = np.zeros(2) if scale else peak - anchor

        def moved(point: np.ndarray) -> np.ndarray:
            return point * ratio + delta

        if gate.kind == "polygon":
            self.vertices = moved(np.asarray(fk.vertices, dtype=np.float64))
        elif gate.kind == "ellipsoid":
            self.coordinates = moved(np.asarray(fk.coordinates, dtype=np.float64))
            covariance = np.asarray(fk.covariance_matrix, dtype=np.float64)
            self.covariance = covariance * np.outer(ratio, ratio)
        else:
            self.bounds = [
                tuple(None if v is None else float(v * ratio[d] + delta[d]) for v in pair)
                for d, pair in enumerate(self.bounds)
            ]

    def inside_others(
        self, values: Values, dims: list[Dim], index: int, parent: np.ndarray
    ) -> np.ndarray:
        """The parent's events inside the other dimensions' bounds (placed, else the template's)."""
        inside = parent.copy()
        for d, (low, high) in enumerate(self.bounds):
            if d == index:
                continue
            if low is not None:
                inside &= values.condition(dims[d], ">=", low)
            if high is not None:
                inside &= values.condition(dims[d], "<", high)
        return inside

    def shape_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if self.gate.kind == "rectangle":
            arguments["bounds"] = self.bounds
        elif self.gate.kind == "quadrant" and self.dividers:
            arguments["dividers"] = self.dividers
        elif self.vertices is not None:
            arguments["vertices"] = self.vertices
        elif self.coordinates is not None:
            arguments["coordinates"] = self.coordinates
            arguments["covariance"] = self.covariance
        return arguments
