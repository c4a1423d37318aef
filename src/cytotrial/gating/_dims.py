"""Where each gate dimension's values come from: the file column, compensation and transformation.

Channels are found as FlowKit finds them: by ``$PnN``, then ``$PnS``, then FlowJo's ``/`` -> ``_``
spelling, then through a named matrix's fluorochromes. A gate takes one compensation for all its
dimensions (the matrix any of them names); ratio dimensions read uncompensated data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MissingMarkerError, StrategyError

if TYPE_CHECKING:
    from flowkit import Dimension, QuadrantDivider, RatioDimension

    from ..io import FCSData, Gate, Strategy
    from ._compensation import Compensations

__all__ = ["ChannelIndex", "Dim", "plan_gates"]


@dataclass(frozen=True)
class Dim:
    """Where a gate dimension's values come from, as FlowKit computes them."""

    column: int | None  # file column of a channel dimension
    comp: str | None  # compensation actually changing this column (None: raw values)
    xform: str | None  # transformation id
    ratio: str | None = None  # ratio transformation id (ratio dimension)
    ratio_columns: tuple[int, int] | None = None


class ChannelIndex:
    """The file's columns by channel name, marker label and FlowJo spelling, through a channel map."""

    def __init__(self, data: FCSData, channel_map: Mapping[str, str] | None) -> None:
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

    def lookup(self, name: str) -> int | None:
        """File column of a strategy channel name (``None``: not found)."""
        mapped = self.channel_map.get(name, name)
        for table in (self._by_channel, self._by_marker, self._by_flowjo):
            if mapped in table:
                return table[mapped]
        return None


def plan_gates(
    strategy: Strategy,
    file: str,
    channels: ChannelIndex,
    transforms: Mapping[str, Any],
    compensations: Compensations,
) -> dict[str, list[Dim]]:
    """Gate path -> its dimensions' sources (empty for Boolean gates), in strategy order.

    Raises
    ------
    MissingMarkerError
        The file lacks channels the strategy needs (all of them named, one line).
    StrategyError
        Undefined transformation or matrix, mixed compensations in one gate.
    """
    planner = _Planner(strategy, channels, transforms, compensations)
    plans: dict[str, list[Dim]] = {}
    for gate in strategy.gates:
        if gate.kind == "boolean":
            plans[gate.path] = []
            continue
        dims = list(gate.fk_gate.dimensions)
        comp_ref = planner.gate_comp(gate, dims)
        plans[gate.path] = [planner.dim(gate, dim, comp_ref) for dim in dims]
    if planner.missing:
        raise MissingMarkerError(
            f"{file}: lacks channel(s) {', '.join(planner.missing)} needed by gating strategy "
            f"{strategy.path.name}; map them to the file's channels (channel_map / config panels:)"
        )
    return plans


class _Planner:
    """Resolves gate dimensions one by one, collecting the names of missing channels."""

    def __init__(
        self,
        strategy: Strategy,
        channels: ChannelIndex,
        transforms: Mapping[str, Any],
        compensations: Compensations,
    ) -> None:
        self.name = strategy.path.name
        self.channels = channels
        self.transforms = transforms
        self.matrices = compensations.matrices
        self.compensations = compensations
        self.missing: list[str] = []

    def _column(self, name: str, comp_ref: str | None) -> int | None:
        column = self.channels.lookup(name)
        if column is not None:
            return column
        matrix = self.matrices.get(comp_ref) if comp_ref else None
        if matrix is not None:
            fluorochromes = list(getattr(matrix, "fluorochromes", []) or [])
            detectors = list(getattr(matrix, "detectors", []) or [])
            if name in fluorochromes and len(fluorochromes) == len(detectors):
                detector = detectors[fluorochromes.index(name)]
                column = self.channels.lookup(detector)
                if column is not None:
                    return column
                name = detector
        if name not in self.missing:
            self.missing.append(name)
        return None

    def gate_comp(
        self, gate: Gate, dims: Sequence[Dimension | RatioDimension | QuadrantDivider]
    ) -> str | None:
        """The one compensation of a gate (``None``: uncompensated)."""
        refs = []
        for dim in dims:
            ref = getattr(dim, "compensation_ref", None)
            if ref not in (None, "uncompensated") and ref not in refs:
                refs.append(ref)
        if len(refs) > 1:
            raise StrategyError(
                f"{self.name}: gate {gate.path!r} mixes compensations {', '.join(refs)}; "
                "a gate must use one compensation for all its dimensions"
            )
        if refs and refs[0] != "FCS" and refs[0] not in self.matrices:
            raise StrategyError(
                f"{self.name}: gate {gate.path!r} refers to compensation {refs[0]!r}, "
                "which the strategy does not define"
            )
        return refs[0] if refs else None

    def _ratio_dim(self, gate: Gate, dim: RatioDimension, xform: str | None) -> Dim:
        ratio = self.transforms.get(dim.ratio_ref)
        if ratio is None or type(ratio).__name__ != "RatioTransform":
            raise StrategyError(
                f"{self.name}: gate {gate.path!r} uses ratio {dim.ratio_ref!r}, "
                "which the strategy does not define"
            )
        cols = []
        for name in ratio.dimensions:
            column = self.channels.lookup(name)
            if column is None and name not in self.missing:
                self.missing.append(name)
            cols.append(column)
        pair = (cols[0], cols[1]) if None not in cols else None
        return Dim(column=None, comp=None, xform=xform, ratio=dim.ratio_ref, ratio_columns=pair)

    def dim(
        self,
        gate: Gate,
        dim: Dimension | RatioDimension | QuadrantDivider,
        comp_ref: str | None,
    ) -> Dim:
        """The source of one FlowKit dimension (``Dimension``, ``RatioDimension``, ``QuadrantDivider``)."""
        kind = type(dim).__name__
        xform = getattr(dim, "transformation_ref", None)
        if xform is not None and xform not in self.transforms:
            raise StrategyError(
                f"{self.name}: gate {gate.path!r} refers to transformation {xform!r}, "
                "which the strategy does not define"
            )
        if kind == "RatioDimension":
            return self._ratio_dim(gate, dim, xform)
        name = dim.dimension_ref if kind == "QuadrantDivider" else dim.id
        # FlowKit looks fluorochromes up in the dimension's own matrix
        own_ref = getattr(dim, "compensation_ref", None)
        column = self._column(name, own_ref if own_ref in self.matrices else None)
        comp = None
        if column is not None and comp_ref is not None:
            compensation = self.compensations.get(comp_ref, self.missing)
            if compensation is not None and column in compensation.position:
                comp = comp_ref
                self.compensations.need(comp_ref, column)
        if xform is not None and type(self.transforms[xform]).__name__ == "RatioTransform":
            raise StrategyError(
                f"{self.name}: gate {gate.path!r} uses ratio {xform!r} as a transformation of {name!r}"
            )
        return Dim(column=column, comp=comp, xform=xform)
