"""Exact, fast gating: FlowKit's counts, event for event, at a fraction of its cost.

FlowKit's ``Session`` compensates every fluorescence channel of a file with ``numpy.linalg.solve``,
runs the logicle transform (a root finder per value) on every event of every channel a gate reads,
and gates every event for every gate. Here the same decisions are taken with cheaper arithmetic,
and FlowKit's own arithmetic is used only for the events whose decision the cheaper arithmetic
cannot guarantee:

* Compensation is a product with the inverse spillover matrix, one pass over the events that also
  copies the raw channels the strategy reads. It differs from ``solve`` by rounding only; a bound per
  channel (from the matrix condition number and the largest detector values) marks the events
  whose decision that rounding could change (``_compensation``).
* A threshold on a logicle or hyperlog axis (rectangles, ranges, quadrants) is compared in the
  untransformed space, against the exact inverse transform of the threshold: both transforms are
  strictly increasing. Events within a guard band around that value (the image of +/-1e-9 on the
  transformed axis, plus the compensation bound) are re-done exactly (``_values``, ``_transforms``).
* Polygons are decided on a grid: each axis is cut into cells whose corners are transformed exactly,
  every cell is classified once as inside, outside or touching the polygon's edge, and each event
  takes its cell's class. Only events in edge cells are transformed and tested exactly (``_shapes``).
* The exact path is FlowKit's: ``numpy.linalg.solve`` on the same matrix (rows in the same order,
  so identical to the last bit), the FlowKit transform object itself, FlowUtils' polygon and
  ellipsoid tests. Gates are evaluated only where their parent holds.

Taken on the exact path for the events of the parent (no fast path): ellipsoids; polygons on a log
(``flog``, FlowJo log) axis, with non-finite values, on fewer than 4,096 events (200,000 when no
axis is compensated or logicle/hyperlog: there the exact path is as fast). A threshold on
a transform of unknown kind is decided exactly for every event, and a spectral (OLS) matrix or a
matrix whose condition number exceeds 1e6 is applied exactly to every event. NaN and infinite
values take FlowKit's decisions too (FlowUtils' logicle maps them to -1).

Adaptive gates (``adaptive``, see ``_adaptive``) are placed per file from their parent's events
(``_placement``) just before they are applied, and then decided exactly like the strategy's own.

The semantics are FlowKit's, including its quirks: one compensation per gate (the matrix any of its
dimensions names applies to all of them), ratio dimensions computed from uncompensated data,
channels found by ``$PnN``, then ``$PnS``, then FlowJo's ``/`` -> ``_`` spelling, then through a
named matrix's fluorochromes (``_dims``).

Importing this module does not import FlowKit; the reference comparison (``_reference``) imports it
when called (the strategy, loaded by FlowKit, carries its objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import FCSReadError, StrategyError
from . import _shapes
from ._compensation import Compensations
from ._dims import ChannelIndex, Dim, plan_gates
from ._placement import Position, place_gate
from ._values import Values

if TYPE_CHECKING:
    from flowkit import Dimension, QuadrantDivider, RatioDimension

    from ..io import FCSData, Gate, Strategy
    from ._adaptive import AdaptivePlan

__all__ = [
    "COUNT_TABLE_COLUMNS",
    "Engine",
    "count_events",
    "engine_for",
    "gate_events",
    "transformed_events",
]

COUNT_TABLE_COLUMNS = ["gate_path", "gate_name", "parent_path", "count", "parent_count"]


class Engine:
    """Gates one data set with one strategy; its parts cache compensated and transformed values.

    ``compensations`` locates and applies the spillover matrices, ``plans`` gives each gate's
    dimensions' sources and ``values`` computes (and caches) what the gates read.
    """

    def __init__(
        self,
        data: FCSData,
        strategy: Strategy,
        channel_map: Mapping[str, str] | None,
        adaptive: AdaptivePlan | None = None,
    ) -> None:
        self.strategy = strategy
        self.adaptive = adaptive
        #: Where each adaptive boundary went in the last :meth:`run` (strategy order).
        self.positions: list[Position] = []
        #: Gate path -> the geometry placed for this sample (keyword arguments of its shape).
        self.placements: dict[str, dict[str, Any]] = {}
        self.file = Path(getattr(data, "path", "") or "").name or "data"
        events = np.asarray(data.events, dtype=np.float64)
        self.n = int(events.shape[0])
        gs = strategy.gating_strategy
        transforms: dict[str, Any] = dict(getattr(gs, "transformations", {}) or {})
        matrices: dict[str, Any] = dict(getattr(gs, "comp_matrices", {}) or {})
        channels = ChannelIndex(data, channel_map)
        self.compensations = Compensations(data, events, channels, matrices, self.file)
        self.plans = plan_gates(strategy, self.file, channels, transforms, self.compensations)
        self.values = Values(events, transforms, self.compensations, self.plans)
        self._all = np.ones(self.n, dtype=bool)

    def run(self) -> dict[str, np.ndarray]:
        """Membership of every event in every gate, in strategy order.

        Gates with adaptive boundaries (``adaptive``) are placed from their parent's events first
        (:attr:`positions`, :attr:`placements`); the others keep the strategy's geometry.
        """
        results: dict[str, np.ndarray] = {}
        values = self.values
        self.positions = []
        self.placements = {}
        self._quadrant_gates: dict[int, dict[str, Any]] = {}
        self._memo: dict = {}  # thresholds found in this run, by dimension, parent and settings
        for gate in self.strategy.gates:
            parent = results[gate.parent_path] if gate.parent_path is not None else self._all
            dims = self.plans[gate.path]
            placed = self._place(gate, dims, parent)
            if gate.kind == "boolean":
                results[gate.path] = _shapes.boolean(gate, results, parent, self.strategy.path.name)
            elif gate.kind == "rectangle":
                results[gate.path] = _shapes.rectangle(values, gate, dims, parent, **placed)
            elif gate.kind == "quadrant":
                results[gate.path] = _shapes.quadrant(values, gate, dims, parent, **placed)
            elif gate.kind == "polygon":
                results[gate.path] = _shapes.polygon(
                    values, gate, dims, parent, everyone=parent is self._all, **placed
                )
            elif gate.kind == "ellipsoid":
                results[gate.path] = _shapes.ellipsoid(values, gate, dims, parent, **placed)
            else:
                raise StrategyError(
                    f"{self.strategy.path.name}: gate {gate.path!r} has unsupported type {gate.kind!r}"
                )
        return results

    def _place(self, gate: Gate, dims: list[Dim], parent: np.ndarray) -> dict[str, Any]:
        """The gate's geometry in this sample (``{}``: the strategy's own)."""
        boundaries = self.adaptive.of(gate.path) if self.adaptive else []
        if not boundaries:
            return {}
        shared = self._quadrant_gates.get(id(gate.fk_gate))
        if gate.kind == "quadrant" and shared is not None:  # quadrants share their dividers
            self.placements[gate.path] = shared
            return shared
        placed, positions = place_gate(self.values, gate, dims, boundaries, parent, memo=self._memo)
        self.placements[gate.path] = placed
        if gate.kind == "quadrant":
            self._quadrant_gates[id(gate.fk_gate)] = placed
        self.positions += positions
        return placed


def _check_data(data: FCSData) -> None:
    events = getattr(data, "events", None)
    if (
        events is None
        or np.ndim(events) != 2
        or np.shape(events)[1] != len(getattr(data, "channels", []))
    ):
        raise FCSReadError(
            f"{getattr(data, 'path', 'data')}: events must be an (events x channels) array matching the channel list"
        )


def engine_for(
    data: FCSData,
    strategy: Strategy,
    *,
    channel_map: Mapping[str, str] | None = None,
    adaptive: AdaptivePlan | None = None,
) -> Engine:
    """An :class:`Engine` for one data set, its events checked against its channel list first.

    Raises
    ------
    FCSReadError, MissingMarkerError, StrategyError
        As for :func:`gate_events`.
    """
    _check_data(data)
    return Engine(data, strategy, channel_map, adaptive)


def gate_events(
    data: FCSData,
    strategy: Strategy,
    *,
    channel_map: Mapping[str, str] | None = None,
    adaptive: AdaptivePlan | None = None,
) -> dict[str, np.ndarray]:
    """Membership of every event in every population of the strategy.

    Parameters
    ----------
    data
        A :class:`cytotrial.io.FCSData` (events preprocessed per the FCS standard).
    strategy
        A :class:`cytotrial.io.Strategy`.
    channel_map
        Strategy dimension name -> the file's channel name, for files that name channels differently
        (``None``: names are identical). Compensation happens in the file's channel space.
    adaptive
        The strategy's adaptive boundaries (:func:`adaptive_plan`), placed from this file's events;
        ``None``: every gate as the strategy draws it.

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
    return engine_for(data, strategy, channel_map=channel_map, adaptive=adaptive).run()


def count_events(
    data: FCSData,
    strategy: Strategy,
    *,
    channel_map: Mapping[str, str] | None = None,
    adaptive: AdaptivePlan | None = None,
) -> pd.DataFrame:
    """Event count of every population and of its parent.

    Returns
    -------
    pandas.DataFrame
        Columns ``gate_path``, ``gate_name``, ``parent_path`` (``""`` for a top-level gate),
        ``count`` and ``parent_count`` (all events for a top-level gate), one row per gate in
        :attr:`Strategy.gates` order.
    """
    memberships = gate_events(data, strategy, channel_map=channel_map, adaptive=adaptive)
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


def _dimension_key(dim: Dimension | RatioDimension | QuadrantDivider) -> str:
    kind = type(dim).__name__
    if kind == "RatioDimension":
        return str(dim.ratio_ref)
    if kind == "QuadrantDivider":
        return str(dim.dimension_ref)
    return str(getattr(dim, "id", dim))


def _rows(n: int, events: np.ndarray | None) -> np.ndarray:
    """Row indices from a boolean mask or an index array (``None``: every event)."""
    if events is None:
        return np.arange(n)
    selector = np.asarray(events)
    if selector.dtype == bool:
        return np.flatnonzero(selector)
    return np.asarray(selector, dtype=np.int64)


def transformed_events(
    data: FCSData,
    strategy: Strategy,
    dimensions: Sequence[str | Dimension | RatioDimension | QuadrantDivider],
    *,
    channel_map: Mapping[str, str] | None = None,
    events: np.ndarray | None = None,
    engine: Engine | None = None,
    exact: bool = True,
) -> np.ndarray:
    """Values of some dimensions as the gates see them (compensated, transformed), for plotting.

    Parameters
    ----------
    data
        A :class:`cytotrial.io.FCSData`.
    strategy
        A :class:`cytotrial.io.Strategy`.
    dimensions
        Dimension names (as in :attr:`Gate.dimensions`) or FlowKit dimension objects (``Dimension``,
        ``RatioDimension``, ``QuadrantDivider``). A name takes the compensation and transformation of
        the first gate that reads it; a FlowKit object, those of the gate it belongs to.
    channel_map
        As for :func:`gate_events`.
    events
        Optional boolean mask or index array of the events wanted (default: all).
    engine
        An :class:`Engine` of this data set and strategy to compute with (and cache in), so that
        several calls for one sample compensate each event once; ``None``: a new one.
    exact
        FlowKit's values to the last bit; ``False``: values to draw, within
        :data:`~cytotrial.gating._values.PLOT_TOLERANCE` of them on the transformed scale, from the
        engine's compensated values and a table of the transform (:meth:`Values.plotted`).

    Returns
    -------
    numpy.ndarray
        ``(events, len(dimensions))`` float64, equal to FlowKit's values for the same gate (or,
        not ``exact``, within the tolerance of them).
    """
    _check_data(data)
    if engine is None:
        engine = Engine(data, strategy, channel_map)
    elif engine.strategy is not strategy or engine.n != data.n_events:
        raise ValueError("transformed_events: the engine is of another data set or strategy")
    found: dict[int, Dim] = {}
    by_name: dict[str, Dim] = {}
    for gate in strategy.gates:
        for fk_dim, dim in zip(
            getattr(gate.fk_gate, "dimensions", None) or [], engine.plans[gate.path]
        ):
            found.setdefault(id(fk_dim), dim)
            by_name.setdefault(_dimension_key(fk_dim), dim)
    rows = _rows(engine.n, events)
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
        columns.append(
            engine.values.exact(dim, rows) if exact else engine.values.plotted(dim, rows)
        )
    if not columns:
        return np.empty((rows.size, 0))
    return np.column_stack(columns)
