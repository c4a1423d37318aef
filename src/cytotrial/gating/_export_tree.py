"""The gates one sample was gated with, as plain records both exports write (GatingML, FlowJo).

:func:`export_tree` turns a panel's strategy into :class:`XGate` records: each gate with the
geometry placed for the sample (adaptive boundaries, ``_placement``), its dimensions named as the
sample's file names its channels, the compensation the gating applied, the events acquisition QC
removed as gates on ``Time``, and the config's Boolean populations as Boolean gates. Coordinates
are in the gate's transformed units (as the strategy holds them); the FlowJo writer converts them
to FlowJo's untransformed ones.

Acquisition QC removes stretches of events in acquisition order; exported, they are the Time gate
``acquisition_removed`` (a range on ``Time``; ``[0, 0)``, which holds no event, where nothing
was removed; several stretches: the ``or`` of ranges ``acquisition_removed_<k>``) and the Boolean
gate ``acquisition_qc`` (``not acquisition_removed``), the parent of the strategy's top gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StrategyError

if TYPE_CHECKING:
    import pandas as pd

    from ..io import Gate
    from ._populations import PanelGating

__all__ = [
    "ACQUISITION_GATE",
    "ACQUISITION_REMOVED",
    "CONFIG_MATRIX",
    "SampleGates",
    "XDim",
    "XGate",
    "XQuadrant",
    "export_tree",
]

#: The Boolean gate holding the events acquisition QC kept (parent of the strategy's top gates).
ACQUISITION_GATE = "acquisition_qc"
#: The gate on ``Time`` holding the events acquisition QC removed.
ACQUISITION_REMOVED = "acquisition_removed"
#: Id of the spillover matrix of ``gating.compensation`` (a matrix file) in an exported GatingML.
CONFIG_MATRIX = "compensation"


@dataclass
class SampleGates:
    """What one sample was gated with, beyond the strategy: enough to export its gates.

    Attributes
    ----------
    sample_id
        The sample sheet's id.
    fcs
        The FCS file, as the workflow names it (relative to the working directory).
    placements
        Gate path -> the geometry placed for the sample (keyword arguments of its shape; see
        :func:`sample_placements`); gates not listed keep the strategy's.
    channel_map
        Strategy dimension -> the file's channel (``$PnN``).
    spill
        The spillover matrix applied where a gate says ``FCS`` (``None``: uncompensated).
    spill_source
        Where the ``FCS`` compensation came from: ``file`` (the file's own spillover), ``config``
        (``gating.compensation``'s matrix), ``absent`` (the file has none: uncompensated) or
        ``dropped`` (the file's could not be used; ``gating.unreadable_compensation``).
    time_channel
        The file's ``Time`` channel (``""``: none).
    removed
        The stretches acquisition QC removed, as ``[lo, hi)`` ranges of ``Time`` (``None``: open).
    inexact
        Why FlowJo or FlowKit, given the exported gates, would count this file differently from
        the workflow (empty: they count the same), one short sentence each.
    """

    sample_id: str
    fcs: str
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)
    channel_map: dict[str, str] = field(default_factory=dict)
    spill: pd.DataFrame | None = None
    spill_source: str = "absent"
    time_channel: str = ""
    removed: list[tuple[float | None, float | None]] = field(default_factory=list)
    inexact: list[str] = field(default_factory=list)


@dataclass
class XDim:
    """One dimension of an exported gate.

    ``channel``: the file's channel (or, for a ratio dimension, the ratio transformation's id);
    ``compensation``: ``uncompensated``, ``FCS`` or a matrix id; ``transform``: the strategy's
    transformation id or ``None``; ``min``/``max``: a range's bounds (transformed units);
    ``divider``/``values``: a quadrant divider's id and values; ``ratio``: a ratio dimension.
    """

    channel: str
    compensation: str
    transform: str | None = None
    min: float | None = None
    max: float | None = None
    divider: str | None = None
    values: tuple[float, ...] = ()
    ratio: bool = False


@dataclass
class XQuadrant:
    """One quadrant: its gate path (``key``), id and divider ranges ``{divider: (lo, hi)}``."""

    key: str
    name: str
    ranges: dict[str, tuple[float | None, float | None]]


@dataclass
class XGate:
    """One exported gate (a quadrant gate holds its quadrants, each a population).

    ``key`` is the gate's path in the strategy (or a name of its own for the acquisition and
    Boolean population gates); ``parent`` the key of its parent; ``refs`` a Boolean gate's
    ``(key, complement)``; ``placed``: moved for this sample (a sample-specific gate in FlowJo).
    """

    key: str
    name: str
    parent: str | None
    kind: str
    dims: list[XDim] = field(default_factory=list)
    vertices: list[tuple[float, ...]] = field(default_factory=list)
    mean: tuple[float, ...] = ()
    covariance: list[tuple[float, ...]] = field(default_factory=list)
    distance_square: float = 1.0
    quadrants: list[XQuadrant] = field(default_factory=list)
    bool_type: str = ""
    refs: list[tuple[str, bool]] = field(default_factory=list)
    complement: bool = False
    placed: bool = False


def _compensation(ref: str | None, sample: SampleGates | None) -> str:
    """The compensation an exported dimension names: as the gating applied it to this sample."""
    if ref in (None, "uncompensated"):
        return "uncompensated"
    if ref != "FCS" or sample is None:
        return str(ref)
    return {"config": CONFIG_MATRIX, "dropped": "uncompensated"}.get(sample.spill_source, "FCS")


def _level(name: str, level: int) -> str:
    """An acquisition gate's name at a level of nesting (1: the name itself)."""
    return name if level == 1 else f"{name}_{level}"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


class _Builder:
    """Builds the records of one sample (``sample`` ``None``: the strategy's template)."""

    def __init__(self, gating: PanelGating, sample: SampleGates | None) -> None:
        self.gating = gating
        self.strategy = gating.strategy
        self.sample = sample
        self.placements = sample.placements if sample is not None else {}
        self.channels = sample.channel_map if sample is not None else {}
        self.gates: list[XGate] = []
        self.skipped: list[str] = []

    def channel(self, name: str) -> str:
        return self.channels.get(name, name)

    def dim(self, fk_dim: Any, bounds: tuple[float | None, float | None] | None = None) -> XDim:
        kind = type(fk_dim).__name__
        comp = _compensation(getattr(fk_dim, "compensation_ref", None), self.sample)
        transform = getattr(fk_dim, "transformation_ref", None)
        if kind == "QuadrantDivider":
            return XDim(
                self.channel(str(fk_dim.dimension_ref)),
                comp,
                transform,
                divider=str(fk_dim.id),
                values=tuple(float(v) for v in fk_dim.values),
            )
        low, high = bounds if bounds is not None else (fk_dim.min, fk_dim.max)
        if kind == "RatioDimension":
            return XDim(
                str(fk_dim.ratio_ref), comp, transform, _float(low), _float(high), ratio=True
            )
        return XDim(self.channel(str(fk_dim.id)), comp, transform, _float(low), _float(high))

    def add_strategy_gates(self, top_parent: str | None) -> None:
        """Every gate of the strategy, in its order; a quadrant gate once, with its quadrants."""
        quadrant_gates: dict[int, XGate] = {}
        for gate in self.strategy.gates:
            parent = gate.parent_path if gate.parent_path is not None else top_parent
            placed = self.placements.get(gate.path, {})
            if gate.kind == "quadrant":
                record = quadrant_gates.get(id(gate.fk_gate))
                if record is None:
                    record = self.quadrant_gate(gate, parent, placed)
                    quadrant_gates[id(gate.fk_gate)] = record
                    self.gates.append(record)
                record.quadrants.append(self.quadrant(gate, placed))
                continue
            self.gates.append(self.gate(gate, parent, placed))

    def gate(self, gate: Gate, parent: str | None, placed: Mapping[str, Any]) -> XGate:
        fk = gate.fk_gate
        record = XGate(gate.path, gate.name, parent, gate.kind, placed=bool(placed))
        record.complement = bool(getattr(fk, "use_complement", False))
        if gate.kind == "boolean":
            record.bool_type = str(fk.type)
            record.refs = [(path, bool(complement)) for path, complement in gate.references]
            return record
        if gate.kind == "rectangle":
            bounds = placed.get("bounds") or [(d.min, d.max) for d in fk.dimensions]
            record.dims = [self.dim(d, tuple(b)) for d, b in zip(fk.dimensions, bounds)]
            return record
        record.dims = [self.dim(d) for d in fk.dimensions]
        if gate.kind == "polygon":
            vertices = placed.get("vertices")
            vertices = fk.vertices if vertices is None else vertices
            record.vertices = [
                tuple(float(c) for c in v) for v in np.asarray(vertices, dtype=float)
            ]
        elif gate.kind == "ellipsoid":
            mean = placed.get("coordinates")
            covariance = placed.get("covariance")
            mean = fk.coordinates if mean is None else mean
            covariance = fk.covariance_matrix if covariance is None else covariance
            record.mean = tuple(float(c) for c in np.asarray(mean, dtype=float))
            record.covariance = [
                tuple(float(c) for c in row) for row in np.asarray(covariance, dtype=float)
            ]
            record.distance_square = float(fk.distance_square)
        else:
            raise StrategyError(
                f"{self.strategy.path.name}: gate {gate.path!r} of type {gate.kind!r} cannot be exported"
            )
        return record

    def quadrant_gate(self, gate: Gate, parent: str | None, placed: Mapping[str, Any]) -> XGate:
        from ..io import join_gate_path, split_gate_path

        names = split_gate_path(gate.path)
        moved = dict(placed.get("dividers") or {})
        dims = []
        for divider in gate.fk_gate.dimensions:
            dim = self.dim(divider)
            if divider.id in moved:
                template, position = moved[divider.id]
                dim.values = tuple(position if v == template else v for v in dim.values)
            dims.append(dim)
        return XGate(
            join_gate_path(names[:-1]), names[-2], parent, "quadrant", dims=dims, placed=bool(moved)
        )

    def quadrant(self, gate: Gate, placed: Mapping[str, Any]) -> XQuadrant:
        """A quadrant's divider ranges, with the dividers placed for the sample (as ``_shapes``)."""
        moved = dict(placed.get("dividers") or {})
        fk_quadrant = gate.fk_gate.quadrants[gate.quadrant]
        ranges = {}
        for ref in fk_quadrant.divider_refs:
            low, high = fk_quadrant.get_divider_range(ref)
            if ref in moved:
                template, position = moved[ref]
                low = position if low is not None and low == template else low
                high = position if high is not None and high == template else high
            ranges[str(ref)] = (_float(low), _float(high))
        return XQuadrant(gate.path, str(gate.quadrant), ranges)

    def add_acquisition(self, time_channel: str) -> str:
        """The acquisition QC gates; returns the key of the gate holding the kept events.

        A strategy that holds acquisition gates already (an exported workspace fed back: each
        sample's tree has the Time gates of the run it came from) keeps them under this run's,
        which take the first free suffix (``acquisition_qc_2``, ...): what this run removed,
        then what the tree removes, as the gating applied them.
        """
        removed = self.sample.removed if self.sample is not None else []
        ranges = removed or [(0.0, 0.0)]  # [0, 0): a range that holds no event
        channel = self.sample.time_channel if self.sample is not None else time_channel
        taken = {gate.name for gate in self.strategy.gates} | set(self.strategy.paths)
        level = next(k for k in range(1, len(taken) + 2) if not {
            _level(ACQUISITION_GATE, k), _level(ACQUISITION_REMOVED, k)} & taken)  # fmt: skip
        removed_name, kept_name = (
            _level(ACQUISITION_REMOVED, level),
            _level(ACQUISITION_GATE, level),
        )
        names = [removed_name] if len(ranges) == 1 else [
            f"{removed_name}_{k}" for k in range(1, len(ranges) + 1)
        ]  # fmt: skip
        for name, (low, high) in zip(names, ranges):
            dim = XDim(channel or "Time", "uncompensated", None, _float(low), _float(high))
            self.gates.append(
                XGate(name, name, None, "rectangle", dims=[dim], placed=bool(removed))
            )
        if len(ranges) > 1:
            refs = [(name, False) for name in names]
            self.gates.append(
                XGate(removed_name, removed_name, None, "boolean",
                      bool_type="or", refs=refs, placed=True)
            )  # fmt: skip
        self.gates.append(
            XGate(kept_name, kept_name, None, "boolean", bool_type="not",
                  refs=[(removed_name, False)], placed=bool(removed))
        )  # fmt: skip
        return kept_name

    def add_populations(self, top_parent: str | None) -> None:
        """The config's Boolean populations as Boolean gates (operands: the populations' gates)."""
        keys = dict(self.gating.populations)
        for name, tree in self.gating.booleans.items():
            parent_name = self.gating.parents.get(name, "")
            parent = keys.get(parent_name, top_parent) if parent_name else top_parent
            record = _boolean_population(name, tree, parent, keys)
            if record is None:
                self.skipped.append(name)
                continue
            self.place_boolean(record)
            keys[name] = record.key
            self.gates.append(record)

    def place_boolean(self, record: XGate) -> None:
        """A Boolean population's gate, never below a gate it combines.

        FlowKit does not read a GatingML Boolean gate whose parent it also refers to. ``p and not
        q`` under ``p`` becomes ``not q`` under ``p`` (the parent's events and not ``q``'s); any
        other such gate moves up to the nearest ancestor it does not refer to, which changes
        nothing: a Boolean population lies within its parent, hence within every ancestor.
        """
        parents = {gate.key: gate.parent for gate in self.gates}
        for gate in self.gates:
            for quadrant in gate.quadrants:
                parents[quadrant.key] = gate.parent
        refs = dict(record.refs)
        if record.parent is None or record.parent not in refs:
            return
        others = [(key, complement) for key, complement in record.refs if key != record.parent]
        if (
            record.bool_type == "and"
            and not refs[record.parent]
            and len(others) == 1
            and others[0][1]
        ):
            record.bool_type, record.refs = "not", [(others[0][0], False)]
            return
        while record.parent is not None and record.parent in refs:
            record.parent = parents.get(record.parent)


def _boolean_population(
    name: str, tree: tuple, parent: str | None, keys: Mapping[str, str]
) -> XGate | None:
    """A Boolean population as one Boolean gate, where its expression is one level deep."""

    def operand(node: tuple) -> tuple[str, bool] | None:
        if node[0] == "name" and node[1] in keys:
            return keys[node[1]], False
        if node[0] == "not" and node[1][0] == "name" and node[1][1] in keys:
            return keys[node[1][1]], True
        return None

    if tree[0] in ("and", "or"):
        refs = [operand(node) for node in tree[1:]]
        bool_type = tree[0]
    else:
        refs = [operand(tree)]
        bool_type = "and"
        if refs[0] is not None and refs[0][1]:
            refs, bool_type = [(refs[0][0], False)], "not"
    if any(ref is None for ref in refs):
        return None
    key = f"population:{name}"
    return XGate(key, name, parent, "boolean", bool_type=bool_type, refs=list(refs))


def export_tree(
    gating: PanelGating,
    sample: SampleGates | None = None,
    *,
    acquisition: bool = False,
    populations: bool = True,
    time_channel: str = "Time",
) -> tuple[list[XGate], list[str]]:
    """The gates a sample was gated with, as records (parents before children).

    Parameters
    ----------
    gating
        The panel's strategy and populations.
    sample
        The sample's placements, channels, compensation and removed stretches; ``None``: the
        strategy as drawn (the template), channels named as the strategy names them.
    acquisition
        Add the acquisition QC gates (``acquisition_removed``, ``acquisition_qc``) at the top.
    populations
        Add the config's Boolean populations as Boolean gates.
    time_channel
        The ``Time`` channel of the template's acquisition gates (a sample's: its own).

    Returns
    -------
    tuple
        The records, and the Boolean populations left out (an expression more than one level
        deep has no single Boolean gate).
    """
    builder = _Builder(gating, sample)
    top = builder.add_acquisition(time_channel) if acquisition else None
    builder.add_strategy_gates(top)
    if populations:
        builder.add_populations(top)
    return builder.gates, builder.skipped
