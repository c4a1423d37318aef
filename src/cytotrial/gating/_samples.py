"""Gate the samples of a batch: read each file, find its channels, count its populations, MFIs.

Acquisition QC first removes the events of stretches of ``Time`` whose flow rate or signal
depart from the rest of the file (``qc.acquisition``). Each file is then gated once (every gate of
its panel's strategy); each population the panel reports is counted (a gate's events, or a Boolean
combination of populations' events) with its parent's count, and the median intensities of
``mfi.markers`` are taken from the same gated, compensated values. A sample that cannot be read,
lacks a marker or loses too many events to acquisition QC is excluded with its one-line reason;
it never stops the other samples of the batch. The workflow's ``gate`` rule and ``cytotrial gate``
both call :func:`gate_samples`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import CytotrialError
from ._acquisition import REMOVED_STRETCH_COLUMNS, acquisition_qc, removed_stretches, time_channel
from ._checks import check_file_spill, leave_out_non_finite
from ._engine import Engine, engine_for
from ._mfi import MFI_COLUMNS, marker_channels, mfi_rows
from ._placement import GATE_POSITION_COLUMNS, Position
from ._populations import PanelGating, population_masks

if TYPE_CHECKING:
    from ..io import FCSData

__all__ = [
    "COUNT_COLUMNS",
    "QC_COLUMNS",
    "GatedBatch",
    "compensation_matrix",
    "gate_samples",
    "gated_engine",
    "read_and_gate",
    "read_for_gating",
]

#: Columns of a gating batch's counts table: one row per sample and reported population.
COUNT_COLUMNS = ["sample_id", "population", "gate_path", "parent", "count", "parent_count"]
#: Columns of a gating batch's QC table: one row per sample. ``flags``: comma-joined flags the
#: gating raised (the aggregation adds them to ``qc_flags``).
QC_COLUMNS = [
    "sample_id",
    "status",
    "events_in",
    "events_stated",
    "events_removed",
    "fraction_removed",
    "flags",
    "notes",
    "message",
]


class GatedBatch(NamedTuple):
    """The tables of a gated batch: counts, QC, MFIs, adaptive gate positions, removed stretches.

    Columns: :data:`COUNT_COLUMNS`, :data:`QC_COLUMNS`, :data:`MFI_COLUMNS`,
    :data:`GATE_POSITION_COLUMNS` (where each adaptive gate went in each sample) and
    :data:`REMOVED_STRETCH_COLUMNS` (the stretches of Time acquisition QC removed).
    """

    counts: pd.DataFrame
    qc: pd.DataFrame
    mfi: pd.DataFrame
    gates: pd.DataFrame = pd.DataFrame(columns=GATE_POSITION_COLUMNS)
    acquisition: pd.DataFrame = pd.DataFrame(columns=REMOVED_STRETCH_COLUMNS)


def compensation_matrix(value: str | Path) -> pd.DataFrame | None:
    """The config's ``gating.compensation``: ``None`` for ``fcs`` (each file's own), else the matrix.

    Raises
    ------
    ConfigError
        The matrix file is missing or not a square numeric matrix.
    """
    from ..io import read_compensation

    return None if str(value).lower() == "fcs" else read_compensation(value)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_for_gating(
    fcs: str | Path,
    gating: PanelGating,
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    unreadable_compensation: str = "exclude",
    events: bool = True,
) -> tuple[FCSData, dict[str, str]]:
    """Read a file and find its channels for a panel's strategy: ``(FCSData, channel_map)``.

    ``events=False`` reads the file's TEXT alone (its channels, markers and spillover, no event):
    what the file's channels and compensation are, without the cost of its events.

    The file's own spillover, when the gating needs it and it cannot be used, excludes the file
    (``unreadable_compensation`` ``exclude``) or is dropped (``uncompensated``); events with
    non-finite values where the gating reads are left out (see ``_checks``). ``notes`` and
    ``flags`` of the data set say what was done.

    Raises
    ------
    FCSReadError, MissingMarkerError
        The file cannot be read, lacks a channel the strategy needs, its spillover cannot be used,
        or a channel the gating reads holds no finite value.
    """
    from ..io import read_fcs, resolve_channels

    data = read_fcs(fcs, events=events)
    if compensation is not None:
        data.spill = compensation
    else:
        check_file_spill(data, gating, policy=unreadable_compensation)
    channel_map = resolve_channels(
        data.channels,
        data.markers,
        gating.strategy.dimensions(),
        panels=panels,
        file=Path(fcs).name,
    )
    leave_out_non_finite(data, gating, channel_map, panels=panels)
    return data, channel_map


def read_and_gate(
    fcs: str | Path,
    gating: PanelGating,
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    unreadable_compensation: str = "exclude",
    acquisition: Mapping[str, Any] | None = None,
) -> tuple[FCSData, dict[str, str], dict[str, np.ndarray]]:
    """Read a file and apply every gate of its panel: ``(FCSData, channel_map, memberships)``.

    The events are those :func:`gate_samples` counts: after acquisition QC (``acquisition``, the
    config's ``qc.acquisition``; None: none) and with the same gates, adaptive ones placed on
    this file.

    Raises
    ------
    FCSReadError, MissingMarkerError, CytotrialError
        As :func:`read_for_gating`, or acquisition QC removed too much of the file; or (a
        FlowJo sample group) the file's own tree cannot gate it (:meth:`PanelGating.for_file`).
    """
    data, channel_map, memberships, _ = gated_engine(
        fcs,
        gating,
        panels=panels,
        compensation=compensation,
        unreadable_compensation=unreadable_compensation,
        acquisition=acquisition,
    )
    return data, channel_map, memberships


def gated_engine(
    fcs: str | Path,
    gating: PanelGating,
    *,
    acquisition: Mapping[str, Any] | None = None,
    **reading: Any,
) -> tuple[FCSData, dict[str, str], dict[str, np.ndarray], Engine]:
    """:func:`read_and_gate` (the same arguments), and the :class:`Engine` that gated the file.

    The engine holds the compensated (and some transformed) values the gates read: drawing the
    sample's events from it (:func:`transformed_events`) compensates no event again.
    """
    gating = gating.for_file(fcs)
    data, channel_map = read_for_gating(fcs, gating, **reading)
    data = _acquisition_checked(data, acquisition, {"notes": "", "flags": ""})
    engine = engine_for(data, gating.strategy, channel_map=channel_map, adaptive=gating.adaptive)
    return data, channel_map, engine.run(), engine


def _acquisition_checked(
    data: FCSData,
    settings: Mapping[str, Any] | None,
    record: dict[str, Any],
    stretches: list[tuple] | None = None,
) -> FCSData:
    """The file without the events acquisition QC removes; ``record`` gets what it removed.

    ``stretches`` (when given) gets a row per removed stretch of Time
    (:data:`REMOVED_STRETCH_COLUMNS` without the sample id).

    Raises
    ------
    CytotrialError
        More than ``exclude_above`` of the events were removed.
    """
    if not settings or not settings["enabled"]:
        return data
    qc = acquisition_qc(data, settings)
    fraction = qc.fraction_removed
    record["events_removed"] = qc.n_removed
    record["fraction_removed"] = round(fraction, 6)
    record["notes"] = "; ".join(note for note in (record["notes"], qc.note) if note)
    if fraction > settings["exclude_above"]:
        raise CytotrialError(
            f"{Path(data.path).name}: acquisition QC removed {fraction:.3f} of the events "
            f"({', '.join(qc.reasons)}), more than qc.acquisition.exclude_above "
            f"({settings['exclude_above']:g}); check how the file was acquired"
        )
    if fraction > settings["max_removed"]:
        record["flags"] = f"acquisition_removed>{settings['max_removed']:g}"
    if not qc.n_removed:
        return data
    if stretches is not None:
        column = time_channel(data)
        times = np.asarray(data.events[:, column], dtype=np.float64)
        ranges, misplaced = removed_stretches(times, qc.keep)
        name = str(data.channels[column])
        stretches += [(name, lo, hi, misplaced) for lo, hi in ranges]
    return replace(data, events=data.events[qc.keep])


def _gate_one(
    data: FCSData,
    gating: PanelGating,
    channel_map: Mapping[str, str],
    *,
    panels: Mapping[str, Sequence[str]] | None,
    mfi_min_events: int,
) -> tuple[list[tuple], list[tuple], list[Position]]:
    """Count rows (population, gate path, parent, count, parent count), MFI rows, gate positions."""
    channels = marker_channels(data, gating.mfi, panels=panels)  # before gating: may exclude
    engine = engine_for(data, gating.strategy, channel_map=channel_map, adaptive=gating.adaptive)
    masks = population_masks(gating, engine.run())
    counts = {name: int(np.count_nonzero(mask)) for name, mask in masks.items()}
    rows = [
        (
            name,
            gating.gate_path(name),
            gating.parents[name],
            counts[name],
            counts[gating.parents[name]] if gating.parents[name] else engine.n,
        )
        for name in gating.order
    ]
    intensities = mfi_rows(engine, masks, gating.mfi, channels, min_events=mfi_min_events)
    return rows, intensities, engine.positions


def gate_samples(
    samples: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    mfi_min_events: int = 0,
    acquisition: Mapping[str, Any] | None = None,
    unreadable_compensation: str = "exclude",
) -> GatedBatch:
    """Gate every sample of a batch into its panel's populations, their parents and MFIs.

    Parameters
    ----------
    samples
        Rows with ``sample_id``, ``panel`` and ``fcs`` (gated in ``sample_id`` order).
    gatings
        Per panel, its loaded strategy and reported populations (:func:`load_panel_gating`); a
        FlowJo workspace read with ``sample_group`` gates each file with its own sample's tree
        (:meth:`PanelGating.for_file`; a file it cannot gate is excluded with the reason).
    panels
        The config's marker -> channel names mapping (harmonisation).
    compensation
        A spillover matrix to use instead of each file's own (:func:`compensation_matrix`).
    mfi_min_events
        The config's ``mfi.min_events``: a population with fewer events gets NA intensities
        (``0``: no minimum).
    acquisition
        The config's resolved ``qc.acquisition``: the events of anomalous stretches of ``Time``
        are removed before gating (:func:`acquisition_qc`); ``None`` or ``enabled: false``: none.
    unreadable_compensation
        The config's ``gating.unreadable_compensation``: a file whose own spillover the gating
        needs but cannot use is ``exclude``-d, or gated ``uncompensated`` and flagged.

    Returns
    -------
    GatedBatch
        ``counts``: one row per sample and population its panel reports (:data:`COUNT_COLUMNS`;
        ``gate_path`` ``""`` for a Boolean population, ``parent`` ``""`` and ``parent_count`` the
        events acquisition QC kept at the top). ``qc``: one row per sample (:data:`QC_COLUMNS`),
        ``status`` "ok" or "excluded" with the one-line reason in ``message``. ``mfi``: one row
        per sample and ``(population, marker)`` pair of its panel (:data:`MFI_COLUMNS`).
        ``gates``: one row per sample and adaptive boundary (:data:`GATE_POSITION_COLUMNS`): its
        template and placed position, ``status`` "adapted" or "fallback" (the template's kept,
        ``reason`` why). ``acquisition``: one row per stretch of Time that acquisition QC removed
        from a gated sample (:data:`REMOVED_STRETCH_COLUMNS`).
    """
    count_rows: list[tuple] = []
    mfi_table: list[tuple] = []
    gate_rows: list[tuple] = []
    stretch_rows: list[tuple] = []
    qc_rows: list[dict] = []
    for row in samples.sort_values("sample_id").itertuples(index=False):
        gating = gatings[row.panel]
        record = {
            "sample_id": row.sample_id,
            "status": "ok",
            "events_in": 0,
            "events_stated": 0,
            "events_removed": 0,
            "fraction_removed": 0.0,
            "flags": "",
            "notes": "",
            "message": "",
        }
        try:
            gating = gating.for_file(row.fcs)  # a FlowJo sample group: the file's own tree
            data, channel_map = read_for_gating(
                row.fcs,
                gating,
                panels=panels,
                compensation=compensation,
                unreadable_compensation=unreadable_compensation,
            )
            record["events_in"] = data.n_events
            record["events_stated"] = data.n_events_stated
            record["notes"] = "; ".join(data.notes)
            removed: list[tuple] = []
            data = _acquisition_checked(data, acquisition, record, removed)
            record["flags"] = ",".join(f for f in (*data.flags, record["flags"]) if f)
            counted, intensities, positions = _gate_one(
                data, gating, channel_map, panels=panels, mfi_min_events=mfi_min_events
            )
        except CytotrialError as error:
            record["status"] = "excluded"
            record["message"] = _one_line(error)
            qc_rows.append(record)
            continue
        count_rows += [(row.sample_id, *r) for r in counted]
        mfi_table += [(row.sample_id, *r) for r in intensities]
        gate_rows += [(row.sample_id, *p) for p in positions]
        stretch_rows += [(row.sample_id, *r) for r in removed]
        qc_rows.append(record)
    counts = pd.DataFrame(count_rows, columns=COUNT_COLUMNS).astype(
        {"count": "int64", "parent_count": "int64"}
    )
    mfi = pd.DataFrame(mfi_table, columns=MFI_COLUMNS).astype(
        {
            "n_events": "int64",
            "median": "float64",
            "median_transformed": "float64",
            "rcv": "float64",
        }
    )
    gates = pd.DataFrame(gate_rows, columns=GATE_POSITION_COLUMNS).astype(
        {"template": float, "position": float, "lo": float, "hi": float, "parent_events": int}
    )
    stretches = pd.DataFrame(stretch_rows, columns=REMOVED_STRETCH_COLUMNS).astype(
        {"lo": float, "hi": float, "misplaced": int}
    )
    return GatedBatch(counts, pd.DataFrame(qc_rows, columns=QC_COLUMNS), mfi, gates, stretches)
