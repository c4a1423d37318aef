"""Exact, fast gating: FlowKit's counts, event for event, at a fraction of its cost.

FlowKit's ``Session`` compensates every fluorescence channel of a file with ``numpy.linalg.solve``,
runs the logicle transform (a root finder per value) on every event of every channel a gate reads,
and gates every event for every gate. Here the same decisions are taken with cheaper arithmetic,
and FlowKit's own arithmetic is used only for the events whose decision the cheaper arithmetic
cannot guarantee:

* Compensation is a product with the inverse spillover matrix, one pass over the events that also
  copies the raw channels the strategy reads. It differs from ``solve`` by rounding only; a bound per
  channel (from the matrix condition number and the largest detector values) marks the events
  whose decision that rounding could change.
* A threshold on a logicle or hyperlog axis (rectangles, ranges, quadrants) is compared in the
  untransformed space, against the exact inverse transform of the threshold: both transforms are
  strictly increasing. Events within a guard band around that value (the image of +/-1e-9 on the
  transformed axis, plus the compensation bound) are re-done exactly.
* Polygons are decided on a grid: each axis is cut into cells whose corners are transformed exactly,
  every cell is classified once as inside, outside or touching the polygon's edge, and each event
  takes its cell's class. Only events in edge cells are transformed and tested exactly.
* The exact path is FlowKit's: ``numpy.linalg.solve`` on the same matrix (rows in the same order,
  so identical to the last bit), the FlowKit transform object itself, FlowUtils' polygon and
  ellipsoid tests. Gates are evaluated only where their parent holds.

Taken on the exact path for the events of the parent (no fast path): ellipsoids; polygons on a log
(``flog``, FlowJo log) axis, with non-finite values, on fewer than 4,096 events (200,000 when no
axis is compensated or logicle/hyperlog: there the exact path is as fast). A threshold on
a transform of unknown kind is decided exactly for every event, and a spectral (OLS) matrix or a
matrix whose condition number exceeds 1e6 is applied exactly to every event. NaN and infinite
values take FlowKit's decisions too (FlowUtils' logicle maps them to -1).

The semantics are FlowKit's, including its quirks: one compensation per gate (the matrix any of its
dimensions names applies to all of them), ratio dimensions computed from uncompensated data,
channels found by ``$PnN``, then ``$PnS``, then FlowJo's ``/`` -> ``_`` spelling, then through a
named matrix's fluorochromes.

Importing this module does not import FlowKit; :func:`flowkit_session_counts` and
:func:`benchmark_gating` import it when called (the strategy, loaded by FlowKit, carries its objects).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FCSReadError, MissingMarkerError, StrategyError

__all__ = [
    "COUNT_TABLE_COLUMNS",
    "benchmark_gating",
    "count_events",
    "flowkit_session_counts",
    "gate_events",
    "transformed_events",
]

COUNT_TABLE_COLUMNS = ["gate_path", "gate_name", "parent_path", "count", "parent_count"]

# Transforms compared in untransformed space (strictly increasing, exact inverse available).
_INVERTIBLE = {"LogicleTransform", "HyperlogTransform"}
# Transforms cheap enough to apply to every event, non-decreasing on their domain.
_CHEAP_MONOTONE = {
    "LinearTransform",
    "AsinhTransform",
    "LogTransform",
    "WSPLogTransform",
    "WSPBiexTransform",
}
# Transforms for which polygons can be decided on a grid.
_GRID_TRANSFORMS = {
    None,
    "LinearTransform",
    "LogicleTransform",
    "HyperlogTransform",
    "AsinhTransform",
    "WSPBiexTransform",
}

_THRESHOLD_BAND = 1e-9  # half-width, on the transformed axis, of the band re-done exactly
_COMP_ERROR = 1e-11  # relative bound on |inverse product - solve|, times the condition number
_MAX_CONDITION = 1e6  # beyond this a spillover matrix is applied exactly (solve) to every event
_GRID_CELLS = 256  # cells per polygon axis, at most
_GRID_MIN_EVENTS = 4096  # below this a polygon is tested exactly on every event of its parent
_GRID_MIN_EVENTS_CHEAP = 200_000  # the same, when its exact values are cheap (raw, linear, asinh)


@dataclass(frozen=True)
class _Dim:
    """Where a gate dimension's values come from, as FlowKit computes them."""

    column: int | None  # file column of a channel dimension
    comp: str | None  # compensation actually changing this column (None: raw values)
    xform: str | None  # transformation id
    ratio: str | None = None  # ratio transformation id (ratio dimension)
    ratio_columns: tuple[int, int] | None = None


@dataclass
class _Compensation:
    ref: str
    columns: np.ndarray  # file columns of the detectors, in the matrix's order
    matrix: np.ndarray
    inverse: np.ndarray | None
    spectral: bool
    position: dict[int, int]
    condition: float


class _Engine:
    """Gates one data set with one strategy; caches compensated and transformed values."""

    def __init__(self, data: Any, strategy: Any, channel_map: Mapping[str, str] | None) -> None:
        self.data = data
        self.strategy = strategy
        self.file = Path(getattr(data, "path", "") or "").name or "data"
        self.events = np.asarray(data.events, dtype=np.float64)
        self.n = int(self.events.shape[0])
        gs = strategy.gating_strategy
        self.transforms: dict[str, Any] = dict(getattr(gs, "transformations", {}) or {})
        self.matrices: dict[str, Any] = dict(getattr(gs, "comp_matrices", {}) or {})
        self.channel_map = dict(channel_map or {})
        channels = list(data.channels)
        markers = list(getattr(data, "markers", []) or [""] * len(channels))
        self._by_channel: dict[str, int] = {}
        self._by_marker: dict[str, int] = {}
        self._by_flowjo: dict[str, int] = {}
        for i, name in enumerate(channels):
            self._by_channel.setdefault(name, i)
            self._by_flowjo.setdefault(name.replace("/", "_"), i)
        for i, label in enumerate(markers):
            if label:
                self._by_marker.setdefault(label, i)
        self._compensations: dict[str, _Compensation | None] = {}
        self._approx: dict[tuple[str, int], tuple[np.ndarray, float]] = {}
        self._exact_comp: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._exact_values: dict[_Dim, tuple[np.ndarray, np.ndarray]] = {}
        self._full_values: dict[_Dim, np.ndarray] = {}  # transformed, every event
        self._ratio_values: dict[_Dim, np.ndarray] = {}  # ratio before its transformation
        self._conditions: dict[tuple[_Dim, str, float], np.ndarray] = {}
        self._finite_flags: dict[_Dim, bool] = {}
        self._comp_needs: dict[str, set[int]] = {}
        self._raw_columns: dict[int, np.ndarray] = {}
        self._prepared = False
        self._all = np.ones(self.n, dtype=bool)
        self.plans: dict[str, list[_Dim]] = {}
        self._plan()

    # ----------------------------------------------------------------------------- resolution
    def _lookup(self, name: str) -> int | None:
        mapped = self.channel_map.get(name, name)
        for table in (self._by_channel, self._by_marker, self._by_flowjo):
            if mapped in table:
                return table[mapped]
        return None

    def _column(self, name: str, comp_ref: str | None, missing: list[str]) -> int | None:
        column = self._lookup(name)
        if column is not None:
            return column
        matrix = self.matrices.get(comp_ref) if comp_ref else None
        if matrix is not None:
            fluorochromes = list(getattr(matrix, "fluorochromes", []) or [])
            detectors = list(getattr(matrix, "detectors", []) or [])
            if name in fluorochromes and len(fluorochromes) == len(detectors):
                detector = detectors[fluorochromes.index(name)]
                column = self._lookup(detector)
                if column is not None:
                    return column
                name = detector
        if name not in missing:
            missing.append(name)
        return None

    def _gate_comp(self, gate: Any, dims: Sequence[Any]) -> str | None:
        refs = []
        for dim in dims:
            ref = getattr(dim, "compensation_ref", None)
            if ref not in (None, "uncompensated") and ref not in refs:
                refs.append(ref)
        if len(refs) > 1:
            raise StrategyError(
                f"{self.strategy.path.name}: gate {gate.path!r} mixes compensations {', '.join(refs)}; "
                "a gate must use one compensation for all its dimensions"
            )
        if refs and refs[0] != "FCS" and refs[0] not in self.matrices:
            raise StrategyError(
                f"{self.strategy.path.name}: gate {gate.path!r} refers to compensation {refs[0]!r}, "
                "which the strategy does not define"
            )
        return refs[0] if refs else None

    def _dim(self, gate: Any, dim: Any, comp_ref: str | None, missing: list[str]) -> _Dim:
        kind = type(dim).__name__
        xform = getattr(dim, "transformation_ref", None)
        if xform is not None and xform not in self.transforms:
            raise StrategyError(
                f"{self.strategy.path.name}: gate {gate.path!r} refers to transformation {xform!r}, "
                "which the strategy does not define"
            )
        if kind == "RatioDimension":
            ratio = self.transforms.get(dim.ratio_ref)
            if ratio is None or type(ratio).__name__ != "RatioTransform":
                raise StrategyError(
                    f"{self.strategy.path.name}: gate {gate.path!r} uses ratio {dim.ratio_ref!r}, "
                    "which the strategy does not define"
                )
            cols = []
            for name in ratio.dimensions:
                column = self._lookup(name)
                if column is None and name not in missing:
                    missing.append(name)
                cols.append(column)
            pair = (cols[0], cols[1]) if None not in cols else None
            return _Dim(
                column=None, comp=None, xform=xform, ratio=dim.ratio_ref, ratio_columns=pair
            )
        name = dim.dimension_ref if kind == "QuadrantDivider" else dim.id
        own_ref = getattr(
            dim, "compensation_ref", None
        )  # FlowKit looks fluorochromes up in the dimension's own matrix
        column = self._column(name, own_ref if own_ref in self.matrices else None, missing)
        comp = None
        if column is not None and comp_ref is not None:
            compensation = self._compensation(comp_ref, missing)
            if compensation is not None and column in compensation.position:
                comp = comp_ref
                self._comp_needs.setdefault(comp_ref, set()).add(column)
        if xform is not None and type(self.transforms[xform]).__name__ == "RatioTransform":
            raise StrategyError(
                f"{self.strategy.path.name}: gate {gate.path!r} uses ratio {xform!r} as a transformation of {name!r}"
            )
        return _Dim(column=column, comp=comp, xform=xform)

    def _plan(self) -> None:
        missing: list[str] = []
        for gate in self.strategy.gates:
            if gate.kind == "boolean":
                self.plans[gate.path] = []
                continue
            dims = list(gate.fk_gate.dimensions)
            comp_ref = self._gate_comp(gate, dims)
            self.plans[gate.path] = [self._dim(gate, dim, comp_ref, missing) for dim in dims]
        if missing:
            raise MissingMarkerError(
                f"{self.file}: lacks channel(s) {', '.join(missing)} needed by gating strategy "
                f"{self.strategy.path.name}; map them to the file's channels (channel_map / config panels:)"
            )

    # ---------------------------------------------------------------------------- compensation
    def _compensation(self, ref: str, missing: list[str] | None = None) -> _Compensation | None:
        if ref in self._compensations:
            return self._compensations[ref]
        spectral = False
        if ref == "FCS":
            spill = getattr(self.data, "spill", None)
            if spill is None:
                self._compensations[ref] = (
                    None  # GatingML 2.0: no spillover in the file -> uncompensated
                )
                return None
            names = [str(c) for c in spill.columns]
            located = [(self._lookup(name), name) for name in names]
            lost = [name for column, name in located if column is None]
            if lost:
                raise MissingMarkerError(
                    f"{self.file}: the spillover matrix names channel(s) {', '.join(lost)} that the file lacks; "
                    "give a matrix over the file's detector channels"
                )
            order = sorted(
                range(len(names)), key=lambda i: located[i][0]
            )  # FlowKit: file channel order
            ordered = [names[i] for i in order]
            matrix = spill.loc[ordered, ordered].to_numpy(dtype=np.float64)
            columns = np.array([located[i][0] for i in order], dtype=np.int64)
        else:
            fk_matrix = self.matrices[ref]
            spectral = type(fk_matrix).__name__ == "SpectralMatrix"
            detectors = list(fk_matrix.detectors)
            columns_list = []
            for name in detectors:
                column = self._lookup(name)
                if column is None:
                    if missing is not None:
                        if name not in missing:
                            missing.append(name)
                        self._compensations[ref] = None
                        return None
                    raise MissingMarkerError(
                        f"{self.file}: lacks detector channel {name} of spillover matrix {ref!r}"
                    )
                columns_list.append(column)
            columns = np.array(columns_list, dtype=np.int64)
            matrix = np.asarray(fk_matrix.matrix, dtype=np.float64)
        inverse = None
        condition = 1.0
        if not spectral:
            try:
                inverse = np.linalg.inv(matrix)
                condition = float(np.linalg.cond(matrix))
            except np.linalg.LinAlgError:
                raise StrategyError(
                    f"{self.file}: spillover matrix {ref!r} is singular; it cannot compensate"
                ) from None
            if not math.isfinite(condition):
                raise StrategyError(
                    f"{self.file}: spillover matrix {ref!r} is singular; it cannot compensate"
                )
        position = {int(c): i for i, c in enumerate(columns)}
        if spectral:
            n_true = matrix.shape[0]
            position = {int(c): i for i, c in enumerate(columns[:n_true])}
        compensation = _Compensation(ref, columns, matrix, inverse, spectral, position, condition)
        self._compensations[ref] = compensation
        return compensation

    def _prepare(self) -> None:
        """Contiguous fast columns in one pass over the events: raw channels and compensated ones.

        A single matrix product reads the events once and writes, per needed raw channel, an exact
        copy (unit weight; checked finite) and, per detector of each matrix, its compensated values
        from the inverse matrix with an error bound against ``solve``.
        """
        if self._prepared:
            return
        self._prepared = True
        raw_columns = sorted(
            {
                d.column
                for plan in self.plans.values()
                for d in plan
                if d.column is not None and d.comp is None
            }
        )
        blocks: list[
            tuple[str | None, list[int], np.ndarray]
        ] = []  # (ref, output columns, weights over all channels)
        p = self.events.shape[1]
        if raw_columns:
            unit = np.zeros((p, len(raw_columns)))
            unit[raw_columns, np.arange(len(raw_columns))] = 1.0
            blocks.append((None, raw_columns, unit))
        for ref in sorted(self._comp_needs):
            comp = self._compensations[ref]
            if comp.spectral:
                self._spectral_all(comp)
                continue
            weights = np.zeros((p, len(comp.columns)))
            weights[comp.columns] = comp.inverse
            blocks.append((ref, [int(c) for c in comp.columns], weights))
        if not blocks:
            return
        weights = np.concatenate([w for _, _, w in blocks], axis=1)
        used = np.flatnonzero(np.any(weights != 0, axis=1))
        lo, hi = int(used.min()), int(used.max()) + 1
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite values are caught below
            out = (
                weights[lo:hi].T @ self.events[:, lo:hi].T
            )  # (outputs, events), each row contiguous
            sums = out.sum(axis=1)
        offset = 0
        for ref, columns, _ in blocks:
            part = out[offset : offset + len(columns)]
            finite = np.isfinite(sums[offset : offset + len(columns)])
            offset += len(columns)
            if ref is None:
                for j, column in enumerate(columns):
                    self._raw_columns[column] = (
                        part[j] if finite[j] else np.ascontiguousarray(self.events[:, column])
                    )
                continue
            comp = self._compensations[ref]
            if not finite.all() or comp.condition > _MAX_CONDITION:
                rows = np.arange(self.n)
                exact = self._exact_comp_rows(comp, rows)
                for j, column in enumerate(columns):
                    self._approx[(ref, column)] = (exact[:, j].copy(), 0.0)
                continue
            # Largest |detector value| from the compensated values: d = x S exactly for the true x,
            # and x differs from these by far less than their size (the factor 2 covers it).
            peak_out = np.maximum(part.max(axis=1), -part.min(axis=1))
            peaks = 2.0 * (peak_out @ np.abs(comp.matrix))
            scale = _COMP_ERROR * max(1.0, comp.condition)
            bounds = scale * (peaks @ np.abs(comp.inverse))
            for j, column in enumerate(columns):
                self._approx[(ref, column)] = (part[j], float(bounds[j]))

    def _spectral_all(self, comp: _Compensation) -> None:
        """A spectral (OLS) matrix: FlowKit's own unmixing of every event (no fast path)."""
        from flowutils.compensate import compensate_spectral_ols

        full = compensate_spectral_ols(self.events, comp.matrix, [int(c) for c in comp.columns])
        for column in comp.position:
            self._approx[(comp.ref, column)] = (np.ascontiguousarray(full[:, column]), 0.0)

    def _exact_comp_rows(self, comp: _Compensation, rows: np.ndarray) -> np.ndarray:
        """FlowKit's compensation (``numpy.linalg.solve``, same matrix and order) for ``rows``."""
        if comp.ref not in self._exact_comp:
            self._exact_comp[comp.ref] = (
                np.empty((self.n, len(comp.columns))),
                np.zeros(self.n, dtype=bool),
            )
        store, done = self._exact_comp[comp.ref]
        todo = rows[~done[rows]]
        if todo.size:
            block = self.events[np.ix_(todo, comp.columns)]
            if todo.size == 1:  # one right-hand side takes another LAPACK path; keep FlowKit's
                solved = np.linalg.solve(comp.matrix.T, np.vstack([block, block]).T).T[:1]
            else:
                solved = np.linalg.solve(comp.matrix.T, block.T).T
            store[todo] = solved
            done[todo] = True
        return store[rows]

    # ----------------------------------------------------------------------------- values
    def _raw_fast(self, dim: _Dim) -> tuple[np.ndarray, float]:
        """Untransformed values for all events (contiguous) and the bound of their error."""
        if dim.ratio is not None:
            if dim not in self._ratio_values:
                self._ratio_values[dim] = self._ratio(dim, None)
            return self._ratio_values[dim], 0.0
        self._prepare()
        if dim.comp is None:
            return self._raw_columns[dim.column], 0.0
        return self._approx[(dim.comp, dim.column)]

    def _ratio(self, dim: _Dim, rows: np.ndarray | None) -> np.ndarray:
        ratio = self.transforms[dim.ratio]
        cx, cy = dim.ratio_columns
        x = self.events[:, cx] if rows is None else self.events[rows, cx]
        y = self.events[:, cy] if rows is None else self.events[rows, cy]
        with np.errstate(divide="ignore", invalid="ignore"):
            return ratio.param_a * ((x - ratio.param_b) / (y - ratio.param_c))

    def _apply(self, xform_ref: str | None, raw: np.ndarray) -> np.ndarray:
        if xform_ref is None:
            return raw
        xform = self.transforms[xform_ref]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = xform.apply(np.ascontiguousarray(raw, dtype=np.float64).reshape(-1, 1))
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def exact(self, dim: _Dim, rows: np.ndarray) -> np.ndarray:
        """Values of ``dim`` for ``rows`` exactly as FlowKit computes them (compensated, transformed)."""
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
                comp = self._compensations[dim.comp]
                if comp.spectral:
                    self._prepare()
                    raw = self._approx[(dim.comp, dim.column)][0][todo]
                else:
                    raw = self._exact_comp_rows(comp, todo)[:, comp.position[dim.column]]
            store[todo] = self._apply(dim.xform, raw)
            done[todo] = True
        return store[rows]

    def _finite(self, dim: _Dim, raw: np.ndarray) -> bool:
        """Whether every untransformed value of ``dim`` is finite (cached per dimension)."""
        if dim not in self._finite_flags:
            self._finite_flags[dim] = math.isfinite(float(np.add.reduce(raw)))
        return self._finite_flags[dim]

    # ----------------------------------------------------------------------------- 1-D decisions
    def condition(self, dim: _Dim, op: str, threshold: float) -> np.ndarray:
        """``value >= threshold`` (``op`` ``">="``) or ``value < threshold`` (``"<"``) for every event."""
        key = (dim, op, float(threshold))
        if key not in self._conditions:
            self._conditions[key] = self._condition(dim, op, float(threshold))
        return self._conditions[key]

    @staticmethod
    def _compare(values: np.ndarray, op: str, threshold: float) -> np.ndarray:
        return values >= threshold if op == ">=" else values < threshold

    def _condition(self, dim: _Dim, op: str, threshold: float) -> np.ndarray:
        raw, err = self._raw_fast(dim)
        xform = self.transforms[dim.xform] if dim.xform else None
        kind = type(xform).__name__ if xform is not None else None
        if xform is None:
            result = self._compare(raw, op, threshold)
            if err > 0:
                self._settle(
                    result, (raw >= threshold - err) & (raw <= threshold + err), dim, op, threshold
                )
            return result
        if kind in _INVERTIBLE:
            cut = self._raw_threshold(xform, threshold)
            if cut is not None:
                x0, band = cut
                band += err
                result = self._compare(raw, op, x0)
                unsure = (raw >= x0 - band) & (raw <= x0 + band)
                if not self._finite(dim, raw):
                    unsure |= ~np.isfinite(raw)  # FlowUtils maps NaN and +/-inf to -1
                self._settle(result, unsure, dim, op, threshold)
                return result
        elif kind in _CHEAP_MONOTONE and self._non_decreasing(xform):
            if err == 0:
                if dim not in self._full_values:
                    self._full_values[dim] = self._apply(dim.xform, raw)
                return self._compare(self._full_values[dim], op, threshold)
            low = self._apply(dim.xform, raw - err)
            high = self._apply(dim.xform, raw + err)
            if op == ">=":
                result = low >= threshold
                sure = result | (high < threshold)
            else:
                result = high < threshold
                sure = result | (low >= threshold)
            self._settle(result, ~sure, dim, op, threshold)
            return result
        rows = np.arange(self.n)
        return self._compare(self.exact(dim, rows), op, threshold)

    def _settle(
        self, result: np.ndarray, unsure: np.ndarray, dim: _Dim, op: str, threshold: float
    ) -> None:
        rows = np.flatnonzero(unsure)
        if rows.size:
            result[rows] = self._compare(self.exact(dim, rows), op, threshold)

    def _raw_threshold(self, xform: Any, threshold: float) -> tuple[float, float] | None:
        """Untransformed cut of an increasing transform, and the half-width of its guard band."""
        probe = np.array(
            [[threshold - _THRESHOLD_BAND], [threshold], [threshold + _THRESHOLD_BAND]]
        )
        with np.errstate(all="ignore"):
            lo, x0, hi = (
                float(v) for v in np.asarray(xform.inverse(probe), dtype=np.float64).reshape(-1)
            )
        if (
            not (math.isfinite(lo) and math.isfinite(x0) and math.isfinite(hi))
            or not lo <= x0 <= hi
        ):
            return None
        return x0, (hi - lo) + 1e-12 * abs(x0)

    @staticmethod
    def _non_decreasing(xform: Any) -> bool:
        kind = type(xform).__name__
        if kind == "LinearTransform":
            return (xform.param_t + xform.param_a) > 0
        if kind == "AsinhTransform":
            return xform.param_m > 0 and xform.param_t > 0 and (xform.param_m + xform.param_a) > 0
        if kind == "LogTransform":
            return xform.param_m > 0 and xform.param_t > 0
        if kind == "WSPLogTransform":
            return xform.decades > 0 and xform.offset > 0
        if kind == "WSPBiexTransform":
            lut_x = np.asarray(xform._lut_func.x)
            lut_y = np.asarray(xform._lut_func.y)
            return bool(np.all(np.diff(lut_x) > 0) and np.all(np.diff(lut_y) >= 0))
        return False

    # ----------------------------------------------------------------------------- gates
    def rectangle(self, gate: Any, dims: list[_Dim], parent: np.ndarray) -> np.ndarray:
        result = parent.copy()
        for fk_dim, dim in zip(gate.fk_gate.dimensions, dims):
            low = getattr(fk_dim, "min", None)
            high = getattr(fk_dim, "max", None)
            if low is not None:
                result &= self.condition(dim, ">=", low)
            if high is not None:
                result &= self.condition(dim, "<", high)
        if gate.fk_gate.use_complement:
            result = parent & ~result
        return result

    def quadrant(self, gate: Any, dims: list[_Dim], parent: np.ndarray) -> np.ndarray:
        fk_gate = gate.fk_gate
        by_divider = {div.id: dim for div, dim in zip(fk_gate.dimensions, dims)}
        quadrant = fk_gate.quadrants[gate.quadrant]
        result = parent.copy()
        for ref in quadrant.divider_refs:
            low, high = quadrant.get_divider_range(ref)
            dim = by_divider[ref]
            if low is not None:
                result &= self.condition(dim, ">=", low)
            if high is not None:
                result &= self.condition(dim, "<", high)
        return result

    def polygon(self, gate: Any, dims: list[_Dim], parent: np.ndarray) -> np.ndarray:
        from flowutils.gating import points_in_polygon

        vertices = np.asarray(gate.fk_gate.vertices, dtype=np.float64)
        everyone = parent is self._all
        rows = None if everyone else np.flatnonzero(parent)
        size = self.n if everyone else rows.size
        inside = None
        cheap = all(self._cheap_exact(dim) for dim in dims)
        if size >= (_GRID_MIN_EVENTS_CHEAP if cheap else _GRID_MIN_EVENTS):
            inside = self._polygon_grid(vertices, dims, rows, size)
        if inside is None:
            if rows is None:
                rows = np.arange(self.n)
            if size:
                points = np.column_stack([self.exact(dim, rows) for dim in dims])
                inside = points_in_polygon(vertices, points)
            else:
                inside = np.zeros(0, dtype=bool)
        if gate.fk_gate.use_complement:
            np.logical_not(inside, out=inside)
        if rows is None:
            return inside
        result = np.zeros(self.n, dtype=bool)
        result[rows] = inside
        return result

    def ellipsoid(self, gate: Any, dims: list[_Dim], parent: np.ndarray) -> np.ndarray:
        from flowutils.gating import points_in_ellipsoid

        fk_gate = gate.fk_gate
        rows = np.flatnonzero(parent)
        result = np.zeros(self.n, dtype=bool)
        if rows.size:
            points = np.column_stack([self.exact(dim, rows) for dim in dims])
            result[rows] = points_in_ellipsoid(
                fk_gate.covariance_matrix, fk_gate.coordinates, fk_gate.distance_square, points
            )
        return result

    # ----------------------------------------------------------------------------- polygon grid
    def _axis(self, dim: _Dim, low: float, high: float, rows: np.ndarray | None, cells: int):
        """One polygon axis on a grid: each event's cell (as float) and each cell's exact bounds.

        Cells are uniform in ``u`` (the raw value, or ``asinh(raw / scale)`` for log-like
        transforms); their corners are transformed exactly. An event computed to lie in cell ``c``
        lies, allowing for rounding and the compensation bound (both far below a cell), in cells
        ``c-1 .. c+1``, so its exact transformed value is within the corners of those three cells:
        the returned bounds of cell ``c`` span them (open-ended at the grid's ends).
        """
        xform = self.transforms[dim.xform] if dim.xform else None
        kind = type(xform).__name__ if xform is not None else None
        if kind not in _GRID_TRANSFORMS:
            return None
        if kind is not None and kind not in _INVERTIBLE and not self._non_decreasing(xform):
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
        scale = 1.0 if linear else self._asinh_scale(xform, a, b)
        u_a, u_b = (a, b) if linear else (math.asinh(a / scale), math.asinh(b / scale))
        step = (u_b - u_a) / cells
        if not step > 1e-9 * max(abs(u_a), abs(u_b), 1e-300):
            return None
        nodes_u = u_a + step * np.arange(cells + 1)
        nodes_x = nodes_u if linear else scale * np.sinh(nodes_u)
        nodes_t = self._apply(dim.xform, nodes_x)
        if not (
            np.all(np.isfinite(nodes_t))
            and np.all(np.diff(nodes_t) >= 0)
            and np.all(np.diff(nodes_x) > 0)
        ):
            return None
        raw, err = self._raw_fast(dim)
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

    @staticmethod
    def _asinh_scale(xform: Any, a: float, b: float) -> float:
        kind = type(xform).__name__
        try:
            if kind in ("LogicleTransform", "HyperlogTransform"):
                scale = xform.param_t * 10.0 ** -(xform.param_m - xform.param_w)
            elif kind == "AsinhTransform":
                scale = xform.param_t / math.sinh(xform.param_m * math.log(10))
            elif kind == "WSPBiexTransform":
                scale = xform.max_value * 10.0**-xform.positive * max(1.0, abs(xform.width)) / 10.0
            else:
                scale = 0.0
        except (AttributeError, OverflowError, ZeroDivisionError):
            scale = 0.0
        if not (math.isfinite(scale) and scale > 0):
            scale = max(abs(a), abs(b), 1.0) / 1000.0
        return float(scale)

    def _cheap_exact(self, dim: _Dim) -> bool:
        """Exact values of ``dim`` cost no more than reading them (raw, no root-finding transform)."""
        if dim.comp is not None and not self._compensations[dim.comp].spectral:
            return False
        return dim.xform is None or type(self.transforms[dim.xform]).__name__ not in _INVERTIBLE

    def _polygon_grid(
        self, vertices: np.ndarray, dims: list[_Dim], rows: np.ndarray | None, size: int
    ) -> np.ndarray | None:
        """Polygon membership of ``rows`` (``None``: every event) by grid cell; edge cells exactly."""
        from flowutils.gating import points_in_polygon

        if len(dims) != 2 or vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
            return None
        # about sqrt(events)/2 cells per axis: the table costs no more than the events it serves
        cells = int(min(_GRID_CELLS, max(32, math.sqrt(size) / 2)))
        axes = []
        for d, dim in enumerate(dims):
            axis = self._axis(
                dim, float(vertices[:, d].min()), float(vertices[:, d].max()), rows, cells
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
            points = np.column_stack([self.exact(dim, sub) for dim in dims])
            inside[unsure] = points_in_polygon(vertices, points)
        return inside

    # ----------------------------------------------------------------------------- driver
    def run(self) -> dict[str, np.ndarray]:
        results: dict[str, np.ndarray] = {}
        for gate in self.strategy.gates:
            parent = results[gate.parent_path] if gate.parent_path is not None else self._all
            dims = self.plans[gate.path]
            if gate.kind == "boolean":
                results[gate.path] = self.boolean(gate, results, parent)
            elif gate.kind == "rectangle":
                results[gate.path] = self.rectangle(gate, dims, parent)
            elif gate.kind == "quadrant":
                results[gate.path] = self.quadrant(gate, dims, parent)
            elif gate.kind == "polygon":
                results[gate.path] = self.polygon(gate, dims, parent)
            elif gate.kind == "ellipsoid":
                results[gate.path] = self.ellipsoid(gate, dims, parent)
            else:
                raise StrategyError(
                    f"{self.strategy.path.name}: gate {gate.path!r} has unsupported type {gate.kind!r}"
                )
        return results

    def boolean(
        self, gate: Any, results: Mapping[str, np.ndarray], parent: np.ndarray
    ) -> np.ndarray:
        members = []
        for ref, complement in gate.references:
            if ref not in results:
                raise StrategyError(
                    f"{self.strategy.path.name}: Boolean gate {gate.path!r} refers to unknown gate {ref!r}"
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


def _classify_cells(vertices, lo_x, hi_x, lo_y, hi_y, points_in_polygon) -> np.ndarray:
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


def _check_data(data: Any) -> None:
    events = getattr(data, "events", None)
    if (
        events is None
        or np.ndim(events) != 2
        or np.shape(events)[1] != len(getattr(data, "channels", []))
    ):
        raise FCSReadError(
            f"{getattr(data, 'path', 'data')}: events must be an (events x channels) array matching the channel list"
        )


def gate_events(
    data: Any, strategy: Any, *, channel_map: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Membership of every event in every population of the strategy.

    Parameters
    ----------
    data
        A :class:`cytotrial.fcs.FCSData` (events preprocessed per the FCS standard).
    strategy
        A :class:`cytotrial.strategy.Strategy`.
    channel_map
        Strategy dimension name -> the file's channel name, for files that name channels differently
        (``None``: names are identical). Compensation happens in the file's channel space.

    Returns
    -------
    dict
        Gate path -> boolean array over events, already intersected with the parent population,
        in :attr:`Strategy.gates` order.

    Raises
    ------
    MissingMarkerError
        The file lacks channels the strategy needs (all of them named, one line).
    StrategyError
        The strategy cannot be applied (undefined transformation or matrix, mixed compensations).
    """
    _check_data(data)
    return _Engine(data, strategy, channel_map).run()


def count_events(
    data: Any, strategy: Any, *, channel_map: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Event count of every population and of its parent.

    Returns
    -------
    pandas.DataFrame
        Columns ``gate_path``, ``gate_name``, ``parent_path`` (``""`` for a top-level gate),
        ``count`` and ``parent_count`` (all events for a top-level gate), one row per gate in
        :attr:`Strategy.gates` order.
    """
    memberships = gate_events(data, strategy, channel_map=channel_map)
    n = int(np.shape(data.events)[0])
    rows = []
    for gate in strategy.gates:
        parent_count = (
            n if gate.parent_path is None else int(np.count_nonzero(memberships[gate.parent_path]))
        )
        rows.append(
            (
                gate.path,
                gate.name,
                gate.parent_path or "",
                int(np.count_nonzero(memberships[gate.path])),
                parent_count,
            )
        )
    table = pd.DataFrame(rows, columns=COUNT_TABLE_COLUMNS)
    return table.astype({"count": "int64", "parent_count": "int64"})


def _dimension_key(dim: Any) -> str:
    kind = type(dim).__name__
    if kind == "RatioDimension":
        return str(dim.ratio_ref)
    if kind == "QuadrantDivider":
        return str(dim.dimension_ref)
    return str(getattr(dim, "id", dim))


def transformed_events(
    data: Any,
    strategy: Any,
    dimensions: Sequence[Any],
    *,
    channel_map: Mapping[str, str] | None = None,
    events: np.ndarray | None = None,
) -> np.ndarray:
    """Values of some dimensions as the gates see them (compensated, transformed), for plotting.

    Parameters
    ----------
    dimensions
        Dimension names (as in :attr:`Gate.dimensions`) or FlowKit dimension objects (``Dimension``,
        ``RatioDimension``, ``QuadrantDivider``). A name takes the compensation and transformation of
        the first gate that reads it; a FlowKit object, those of the gate it belongs to.
    events
        Optional boolean mask or index array of the events wanted (default: all).

    Returns
    -------
    numpy.ndarray
        ``(events, len(dimensions))`` float64, equal to FlowKit's values for the same gate.
    """
    _check_data(data)
    engine = _Engine(data, strategy, channel_map)
    found: dict[int, _Dim] = {}
    by_name: dict[str, _Dim] = {}
    for gate in strategy.gates:
        for fk_dim, dim in zip(
            getattr(gate.fk_gate, "dimensions", None) or [], engine.plans[gate.path]
        ):
            found.setdefault(id(fk_dim), dim)
            by_name.setdefault(_dimension_key(fk_dim), dim)
    if events is None:
        rows = np.arange(engine.n)
    else:
        selector = np.asarray(events)
        rows = (
            np.flatnonzero(selector)
            if selector.dtype == bool
            else np.asarray(selector, dtype=np.int64)
        )
    columns = []
    for item in dimensions:
        dim = found.get(id(item)) if not isinstance(item, str) else None
        if dim is None:
            dim = by_name.get(item if isinstance(item, str) else _dimension_key(item))
        if dim is None:
            raise StrategyError(
                f"{strategy.path.name}: no gate reads dimension {item if isinstance(item, str) else _dimension_key(item)!r}; "
                f"gated dimensions: {', '.join(by_name) or '(none)'}"
            )
        columns.append(engine.exact(dim, rows))
    if not columns:
        return np.empty((rows.size, 0))
    return np.column_stack(columns)


def flowkit_session_counts(path: str | Path, strategy: Any) -> pd.DataFrame:
    """The same table as :func:`count_events`, computed by ``flowkit.Session`` (the reference).

    The file is read by FlowKit itself; channel names must match the strategy as they are.
    """
    import copy
    import warnings

    import flowkit as fk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = fk.Sample(str(path), sample_id="sample")
        session = fk.Session(copy.deepcopy(strategy.gating_strategy), fcs_samples=[sample])
        session.analyze_samples(use_mp=False)
        results = session.get_gating_results("sample")
    raw = results._raw_results  # {(gate name, ancestor path): result or {quadrant id: result}}
    counts: dict[str, int] = {}
    for (name, ancestors), res in raw.items():
        base = [p for p in ancestors.split("/") if p and p != "root"]
        if "events" in res:
            counts["/".join(base + [name])] = int(res["count"])
        else:
            for quadrant, sub in res.items():
                counts["/".join(base + [name, quadrant])] = int(sub["count"])
    n = int(sample.event_count)
    rows = []
    for gate in strategy.gates:
        parent_count = n if gate.parent_path is None else counts[gate.parent_path]
        rows.append((gate.path, gate.name, gate.parent_path or "", counts[gate.path], parent_count))
    table = pd.DataFrame(rows, columns=COUNT_TABLE_COLUMNS)
    return table.astype({"count": "int64", "parent_count": "int64"})


def _timed(function, repeats: int) -> tuple[float, Any]:
    best = math.inf
    value = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def benchmark_gating(path: str | Path, strategy: Any, *, repeats: int = 3) -> dict:
    """Time cytotrial's gating against FlowKit's ``Session`` on one file, side by side.

    Each step is run ``repeats`` times in this process and its best time kept.

    Returns
    -------
    dict
        ``events``, ``gates``, ``read_fcs_s`` (reading), ``compensate_s`` (reading + compensating the
        strategy's channels with the inverse matrix), ``cytotrial_s`` (reading + gating, end to end),
        ``flowkit_s`` (FlowKit: loading the sample + ``Session.analyze_samples``), ``speedup``
        (flowkit_s / cytotrial_s), ``cytotrial_over_compensate`` (cytotrial_s / compensate_s) and
        ``identical_counts`` (bool).
    """
    import warnings

    import flowkit as fk

    from ..io._fcs import read_fcs

    path = Path(path)
    read_s, data = _timed(lambda: read_fcs(path), repeats)

    def read_and_compensate():
        fresh = read_fcs(path)
        engine = _Engine(fresh, strategy, None)
        engine._prepare()
        return engine

    compensate_s, _ = _timed(read_and_compensate, repeats)
    ours_s, ours = _timed(lambda: count_events(read_fcs(path), strategy), repeats)

    def flowkit_run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sample = fk.Sample(str(path), sample_id="sample")
            session = fk.Session(strategy.gating_strategy, fcs_samples=[sample])
            session.analyze_samples(use_mp=False)
            return session

    flowkit_s, _ = _timed(flowkit_run, repeats)
    reference = flowkit_session_counts(path, strategy)
    identical = bool(
        list(reference["gate_path"]) == list(ours["gate_path"])
        and np.array_equal(reference["count"].to_numpy(), ours["count"].to_numpy())
    )
    return {
        "events": int(data.n_events),
        "gates": len(strategy.gates),
        "read_fcs_s": read_s,
        "compensate_s": compensate_s,
        "cytotrial_s": ours_s,
        "flowkit_s": flowkit_s,
        "speedup": flowkit_s / ours_s if ours_s > 0 else math.inf,
        "cytotrial_over_compensate": ours_s / compensate_s if compensate_s > 0 else math.inf,
        "identical_counts": identical,
    }
