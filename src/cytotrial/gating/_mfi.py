"""Median fluorescence intensities of gated populations, from the values the gating already holds.

Per population and marker of ``mfi.markers``: the marker's channel in the file (found as the gating
finds channels: the config's ``panels:`` names, the marker as a channel name, or its ``$PnS``
label), that channel's values for the population's events compensated as the gating compensates
them (the matrix of the first gate dimension reading the channel compensated, else the file's
``$SPILLOVER`` or the config's matrix), on the linear scale and on the scale of the first gate
dimension reading the channel with that compensation (none: NA).

No pass over all events is added: where the gating compensated a detector for every event (it does
so for every detector of a matrix a gate reads, with the inverse matrix; FlowKit's ``solve`` differs
by rounding only), the population's values are taken from there; otherwise only the population's
events are compensated. Of a transform that keeps the order of values, only the middle values are
transformed for the median.

``rcv`` is FlowJo's robust CV: ``100 * (P84.13 - P15.87) / 2 / median`` (NA when the median is not
positive). A population with fewer than ``min_events`` events gets NA for every statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MissingMarkerError
from ._dims import Dim
from ._transforms import INVERTIBLE, kind_of, non_decreasing

if TYPE_CHECKING:
    from ..io import FCSData
    from ._engine import Engine

__all__ = ["MFI_COLUMNS", "marker_channels", "mfi_rows"]

#: Columns of a gating batch's MFI table.
MFI_COLUMNS = [
    "sample_id",
    "population",
    "marker",
    "channel",
    "n_events",
    "median",
    "median_transformed",
    "rcv",
]

_LOW, _HIGH = 15.87, 84.13  # percentiles one standard deviation either side of a normal median
# Monotone transforms finite on every finite value (so the middle values stay in the middle).
_FINITE_MONOTONE = {"LinearTransform", "AsinhTransform", "WSPBiexTransform"}


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def marker_channels(
    data: FCSData,
    pairs: Sequence[tuple[str, str]],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """The file's channel (``$PnN``) of every marker of ``pairs``.

    A marker is found as a strategy channel is (``panels:`` names, ``$PnN``), or else by its
    ``$PnS`` label.

    Raises
    ------
    MissingMarkerError
        The file has no channel for a marker (one line naming the file and the marker).
    """
    from ..io import resolve_channels

    file = Path(getattr(data, "path", "") or "").name or "data"
    channels = list(data.channels)
    labels = list(getattr(data, "markers", []) or [""] * len(channels))
    found: dict[str, str] = {}
    for population, marker in pairs:
        if marker in found:
            continue
        try:
            mapping = resolve_channels(channels, labels, [marker], panels=panels, file=file)
        except MissingMarkerError as error:
            if "matches several channels" in str(error):  # ambiguous, not missing
                raise
            by_label = [c for c, m in zip(channels, labels) if m and _norm(m) == _norm(marker)]
            if len(by_label) == 1:
                found[marker] = by_label[0]
                continue
        else:
            found[marker] = mapping[marker]
            continue
        # the file's channel names and labels are TEXT values, which no message quotes
        raise MissingMarkerError(
            f"{file}: lacks a channel for marker {marker} (config mfi.markers.{population}); "
            "add the file's name for it under config panels: (cytotrial inspect lists the "
            "file's markers)"
        )
    return found


def _sources(engine: Engine, column: int) -> tuple[Dim, Dim | None]:
    """The linear source of a channel's values, and the gate dimension giving their transform."""
    dims = [
        dim
        for gate in engine.strategy.gates
        for dim in engine.plans[gate.path]
        if dim.column == column and dim.ratio is None
    ]
    comp = next((dim.comp for dim in dims if dim.comp is not None), None)
    if comp is None:
        own = engine.compensations.get("FCS")
        if own is not None and column in own.position:
            comp = "FCS"
    scale = next((dim for dim in dims if dim.comp == comp), None)
    return Dim(column=column, comp=comp, xform=None), scale


def _linear(engine: Engine, dims: Sequence[Dim], events: np.ndarray) -> list[np.ndarray]:
    """Compensated values of ``events`` for each of ``dims``.

    Where the gating compensated the channel for every event (every detector of a matrix a gate
    reads), those values are taken; otherwise the events are compensated here (one solve per matrix).
    """
    compensations = engine.compensations
    solved: dict[str, np.ndarray] = {}
    values = []
    for dim in dims:
        comp = compensations.by_ref.get(dim.comp) if dim.comp is not None else None
        if comp is None:
            values.append(compensations.events[events, dim.column])
        elif (dim.comp, dim.column) in compensations.approx:
            values.append(compensations.approx[(dim.comp, dim.column)][0][events])
        elif comp.spectral:
            values.append(engine.values.exact(dim, events))
        else:
            if dim.comp not in solved:
                solved[dim.comp] = compensations.solve_rows(comp, events)
            values.append(solved[dim.comp][:, comp.position[dim.column]])
    return values


def _middle(values: np.ndarray) -> np.ndarray:
    """The one or two middle values of ``values`` in order (``numpy.median`` averages them)."""
    k = (values.size - 1) // 2
    if values.size % 2:
        return np.partition(values, k)[k : k + 1]
    return np.partition(values, [k, k + 1])[k : k + 2]


def _median_on_scale(engine: Engine, scale: Dim | None, linear: np.ndarray) -> float:
    """``numpy.median`` of the values on ``scale``'s transform (NA without a scale).

    A strictly monotone transform that is finite everywhere orders the values as they are ordered:
    only the middle ones are transformed. Any other transform is applied to every value.
    """
    if scale is None:
        return np.nan
    xform = engine.values.xform(scale)
    kind = kind_of(xform)
    monotone = kind in INVERTIBLE or (kind in _FINITE_MONOTONE and non_decreasing(xform))
    if xform is not None and monotone and np.isfinite(linear).all():
        return float(np.mean(engine.values.apply(scale, _middle(linear))))
    return float(np.median(engine.values.apply(scale, linear)))


def _statistics(linear: np.ndarray) -> tuple[float, float]:
    """Median and robust CV of linear values."""
    median = float(np.median(linear))
    rcv = np.nan
    if median > 0:
        low, high = np.percentile(linear, [_LOW, _HIGH])
        rcv = 100.0 * (float(high) - float(low)) / 2.0 / median
    return median, rcv


def mfi_rows(
    engine: Engine,
    masks: Mapping[str, np.ndarray],
    pairs: Sequence[tuple[str, str]],
    channels: Mapping[str, str],
    *,
    min_events: int,
) -> list[tuple]:
    """One row per ``(population, marker)`` pair (:data:`MFI_COLUMNS` without ``sample_id``).

    Parameters
    ----------
    engine
        The engine that gated the sample (its located matrices and transforms are reused).
    masks
        Population -> boolean array over events.
    pairs
        ``(population, marker)`` pairs, each population one of ``masks``.
    channels
        Marker -> the file's channel (:func:`marker_channels`).
    min_events
        Fewer events in the population: NA statistics.
    """
    file_channels = list(engine.compensations.data.channels)
    sources = {m: _sources(engine, file_channels.index(c)) for m, c in channels.items()}
    stats: dict[tuple[str, str], tuple[float, float, float]] = {}
    counts: dict[str, int] = {}
    for population in dict.fromkeys(p for p, _ in pairs):
        events = np.flatnonzero(masks[population])
        counts[population] = int(events.size)
        if not events.size or events.size < min_events:
            continue
        markers = [m for p, m in pairs if p == population]
        linear = _linear(engine, [sources[m][0] for m in markers], events)
        for marker, values in zip(markers, linear):
            median, rcv = _statistics(values)
            stats[(population, marker)] = (
                median,
                _median_on_scale(engine, sources[marker][1], values),
                rcv,
            )
    na = (np.nan, np.nan, np.nan)
    return [(p, m, channels[m], counts[p], *stats.get((p, m), na)) for p, m in pairs]
