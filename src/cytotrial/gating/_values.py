"""Values of gate dimensions, fast for every event or exact for some, and thresholds on them.

A threshold on a logicle or hyperlog axis (rectangles, ranges, quadrants) is compared in the
untransformed space, against the exact inverse transform of the threshold: both transforms are
strictly increasing. Events within a guard band around that value (the image of +/-1e-9 on the
transformed axis, plus the compensation bound) are re-done exactly, as are NaN and infinite values
(FlowUtils' logicle maps them to -1). A threshold on a transform of unknown kind is decided
exactly for every event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._compensation import Compensations
from ._dims import Dim
from ._transforms import (
    CHEAP_MONOTONE,
    INVERTIBLE,
    apply_transform,
    kind_of,
    non_decreasing,
    raw_threshold,
)

__all__ = ["PLOT_TOLERANCE", "Values", "tabled_transform"]


#: Most a drawn value (:meth:`Values.plotted`) may differ from FlowKit's, in transformed units.
PLOT_TOLERANCE = 1e-6
_TABLE_SPAN = (-0.5, 1.5)  # the table's reach on the transformed scale (the axis is 0 to 1)
_TABLE_SIZE = 16_385  # nodes of a transform's table: linear between them, well within tolerance
_TABLE_FROM = 2_000  # fewer values than this are transformed exactly (as fast as a table)
# id of a transform -> (the transform, its table or None): made and checked once per transform
_TABLES: dict[int, tuple[Any, tuple[np.ndarray, np.ndarray] | None]] = {}


def _table(xform: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A transform's table (untransformed and transformed nodes), made and checked once.

    The nodes are evenly spaced on the transformed scale over :data:`_TABLE_SPAN`, at the
    untransformed values the exact inverse gives. Interpolating linearly between them errs most
    halfway between nodes: the table is used only if there it is within :data:`PLOT_TOLERANCE`
    of the exact transform (``None`` otherwise).
    """
    kept = _TABLES.get(id(xform))
    if kept is not None and kept[0] is xform:
        return kept[1]
    nodes_y = np.linspace(*_TABLE_SPAN, _TABLE_SIZE)
    with np.errstate(all="ignore"):
        nodes_x = np.asarray(xform.inverse(nodes_y.reshape(-1, 1)), dtype=np.float64).reshape(-1)
    table = None
    if np.all(np.isfinite(nodes_x)) and np.all(np.diff(nodes_x) > 0):
        middle = (nodes_x[:-1] + nodes_x[1:]) / 2
        error = np.abs(np.interp(middle, nodes_x, nodes_y) - apply_transform(xform, middle))
        # a table in the transform's own terms: the nodes themselves come back as they went
        ends = apply_transform(xform, nodes_x[[0, -1]])
        if float(np.max(error)) <= PLOT_TOLERANCE and np.allclose(
            ends, nodes_y[[0, -1]], rtol=0, atol=PLOT_TOLERANCE
        ):
            table = (nodes_x, nodes_y)
    _TABLES[id(xform)] = (xform, table)
    return table


def tabled_transform(xform: Any, raw: np.ndarray) -> np.ndarray:
    """A strictly increasing transform (logicle, hyperlog) of ``raw`` from a table of its values.

    Within :data:`PLOT_TOLERANCE` of the exact transform (:func:`_table`). Values beyond the
    table's reach, non-finite values, small arrays and a transform whose table would err more
    are transformed exactly.
    """
    raw = np.asarray(raw, dtype=np.float64)
    table = _table(xform) if raw.size >= _TABLE_FROM else None
    if table is None:
        return apply_transform(xform, raw)
    nodes_x, nodes_y = table
    out = np.interp(raw, nodes_x, nodes_y)
    beyond = ~((raw >= nodes_x[0]) & (raw <= nodes_x[-1]))  # NaN too
    if beyond.any():
        out[beyond] = apply_transform(xform, raw[beyond])
    return out


def _compare(values: np.ndarray, op: str, threshold: float) -> np.ndarray:
    return values >= threshold if op == ">=" else values < threshold


class Values:
    """The values gates read, computed once: fast for every event, exact (FlowKit's) by row."""

    def __init__(
        self,
        events: np.ndarray,
        transforms: Mapping[str, Any],
        compensations: Compensations,
        plans: Mapping[str, list[Dim]],
    ) -> None:
        self.events = events
        self.n = int(events.shape[0])
        self.transforms = transforms  # FlowKit transform objects by id
        self.compensations = compensations
        self.plans = plans
        self._exact_values: dict[Dim, tuple[np.ndarray, np.ndarray]] = {}
        self._full_values: dict[Dim, np.ndarray] = {}  # transformed, every event
        self._ratio_values: dict[Dim, np.ndarray] = {}  # ratio before its transformation
        self._conditions: dict[tuple[Dim, str, float], np.ndarray] = {}
        self._finite_flags: dict[Dim, bool] = {}

    def xform(self, dim: Dim) -> Any:
        """The FlowKit transform of ``dim`` (``None``: untransformed)."""
        return self.transforms[dim.xform] if dim.xform else None

    def apply(self, dim: Dim, raw: np.ndarray) -> np.ndarray:
        """``dim``'s transformation applied to untransformed values."""
        if dim.xform is None:
            return raw
        return apply_transform(self.transforms[dim.xform], raw)

    def prepare(self) -> None:
        """Fast raw and compensated columns of every dimension the gates read (one pass)."""
        self.compensations.prepare(self._raw_columns(self.plans.values()))

    @staticmethod
    def _raw_columns(plans: Iterable[list[Dim]]) -> set[int]:
        return {d.column for plan in plans for d in plan if d.column is not None and d.comp is None}

    # ----------------------------------------------------------------------------- values
    def raw_fast(self, dim: Dim) -> tuple[np.ndarray, float]:
        """Untransformed values for all events (contiguous) and the bound of their error."""
        if dim.ratio is not None:
            if dim not in self._ratio_values:
                self._ratio_values[dim] = self._ratio(dim, None)
            return self._ratio_values[dim], 0.0
        self.prepare()
        if dim.comp is None:
            return self.compensations.raw[dim.column], 0.0
        return self.compensations.approx[(dim.comp, dim.column)]

    def _ratio(self, dim: Dim, rows: np.ndarray | None) -> np.ndarray:
        ratio = self.transforms[dim.ratio]
        cx, cy = dim.ratio_columns
        x = self.events[:, cx] if rows is None else self.events[rows, cx]
        y = self.events[:, cy] if rows is None else self.events[rows, cy]
        with np.errstate(divide="ignore", invalid="ignore"):
            return ratio.param_a * ((x - ratio.param_b) / (y - ratio.param_c))

    def exact(self, dim: Dim, rows: np.ndarray) -> np.ndarray:
        """Values of ``dim`` for ``rows`` exactly as FlowKit computes them (compensated, transformed)."""
        if dim.ratio is None and dim.comp is None and dim.xform is None:
            return self.events[rows, dim.column]  # the file's value is FlowKit's: nothing to cache
        if dim not in self._exact_values:
            self._exact_values[dim] = (np.empty(self.n), np.zeros(self.n, dtype=bool))
        store, done = self._exact_values[dim]
        todo = rows[~done[rows]]
        if todo.size:
            if dim.ratio is not None:
                raw = self._ratio(dim, todo)
            elif dim.comp is None:
                raw = self.events[todo, dim.column]
            else:
                comp = self.compensations.by_ref[dim.comp]
                if comp.spectral:
                    self.prepare()
                    raw = self.compensations.approx[(dim.comp, dim.column)][0][todo]
                else:
                    raw = self.compensations.exact_rows(comp, todo)[:, comp.position[dim.column]]
            store[todo] = self.apply(dim, raw)
            done[todo] = True
        return store[rows]

    def plotted(self, dim: Dim, rows: np.ndarray) -> np.ndarray:
        """Values of ``dim`` for ``rows`` to draw: within :data:`PLOT_TOLERANCE` of :meth:`exact`.

        The compensated values the gating computed for every event (no row compensated again),
        and a logicle or hyperlog transform read from a table of its exact values
        (:func:`tabled_transform`) instead of finding each value's root.
        """
        if dim.ratio is None and dim.comp is None and dim.xform is None:
            return self.events[rows, dim.column]
        try:
            raw = self.raw_fast(dim)[0][rows]
        except KeyError:  # a detector no gate compensates fast
            return self.exact(dim, rows)
        xform = self.xform(dim)
        if kind_of(xform) in INVERTIBLE:
            return tabled_transform(xform, raw)
        return self.apply(dim, raw)

    def finite(self, dim: Dim, raw: np.ndarray) -> bool:
        """Whether every untransformed value of ``dim`` is finite (cached per dimension)."""
        if dim not in self._finite_flags:
            self._finite_flags[dim] = math.isfinite(float(np.add.reduce(raw)))
        return self._finite_flags[dim]

    def cheap_exact(self, dim: Dim) -> bool:
        """Exact values of ``dim`` cost no more than reading them (raw, no root-finding transform)."""
        if dim.comp is not None and not self.compensations.by_ref[dim.comp].spectral:
            return False
        return dim.xform is None or kind_of(self.transforms[dim.xform]) not in INVERTIBLE

    # ----------------------------------------------------------------------------- 1-D decisions
    def condition(self, dim: Dim, op: str, threshold: float) -> np.ndarray:
        """``value >= threshold`` (``op`` ``">="``) or ``value < threshold`` (``"<"``) for every event."""
        key = (dim, op, float(threshold))
        if key not in self._conditions:
            self._conditions[key] = self._condition(dim, op, float(threshold))
        return self._conditions[key]

    def _condition(self, dim: Dim, op: str, threshold: float) -> np.ndarray:
        raw, err = self.raw_fast(dim)
        xform = self.xform(dim)
        kind = kind_of(xform)
        if xform is None:
            result = _compare(raw, op, threshold)
            if err > 0:
                unsure = (raw >= threshold - err) & (raw <= threshold + err)
                self._settle(result, unsure, dim, op, threshold)
            return result
        if kind in INVERTIBLE:
            cut = raw_threshold(xform, threshold)
            if cut is not None:
                x0, band = cut
                band += err
                result = _compare(raw, op, x0)
                unsure = (raw >= x0 - band) & (raw <= x0 + band)
                if not self.finite(dim, raw):
                    unsure |= ~np.isfinite(raw)  # FlowUtils maps NaN and +/-inf to -1
                self._settle(result, unsure, dim, op, threshold)
                return result
        elif kind in CHEAP_MONOTONE and non_decreasing(xform):
            return self._monotone_condition(dim, op, threshold, raw, err)
        rows = np.arange(self.n)
        return _compare(self.exact(dim, rows), op, threshold)

    def _monotone_condition(
        self, dim: Dim, op: str, threshold: float, raw: np.ndarray, err: float
    ) -> np.ndarray:
        """A cheap non-decreasing transform: applied to every event (to both ends of its bound)."""
        if err == 0:
            if dim not in self._full_values:
                self._full_values[dim] = self.apply(dim, raw)
            return _compare(self._full_values[dim], op, threshold)
        low = self.apply(dim, raw - err)
        high = self.apply(dim, raw + err)
        if op == ">=":
            result = low >= threshold
            sure = result | (high < threshold)
        else:
            result = high < threshold
            sure = result | (low >= threshold)
        self._settle(result, ~sure, dim, op, threshold)
        return result

    def _settle(
        self, result: np.ndarray, unsure: np.ndarray, dim: Dim, op: str, threshold: float
    ) -> None:
        rows = np.flatnonzero(unsure)
        if rows.size:
            result[rows] = _compare(self.exact(dim, rows), op, threshold)
