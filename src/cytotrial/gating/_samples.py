"""Gate the samples of a batch: read each file, find its channels, count every gate.

A sample that cannot be read or lacks a marker is excluded with its one-line reason; it never stops
the other samples of the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import ConfigError, CytotrialError, StrategyError
from ..tl import POPULATIONS
from ._engine import count_events

if TYPE_CHECKING:
    from ..io import FCSData, Strategy

__all__ = [
    "COUNT_COLUMNS",
    "QC_COLUMNS",
    "PanelGating",
    "gate_samples",
    "load_panel_gating",
    "read_for_gating",
]

COUNT_COLUMNS = ["sample_id", "population", "gate_path", "gate_name", "count", "parent_count"]
QC_COLUMNS = ["sample_id", "status", "events_in", "events_stated", "notes", "message"]


@dataclass
class PanelGating:
    """A panel's loaded strategy and its canonical population -> gate path mapping."""

    panel: str
    strategy: Strategy
    populations: dict[str, str]


def load_panel_gating(panel: str, spec: Mapping, *, base: Path | None = None) -> PanelGating:
    """Load a panel's strategy (GatingML or FlowJo) and resolve its population mapping.

    Parameters
    ----------
    panel
        The panel name (a value of the sample sheet's ``panel`` column).
    spec
        The config entry: ``strategy`` (path), optional ``sample_group`` / ``sample_id`` (FlowJo) and
        ``populations`` (canonical name -> gate name or gate path).
    base
        Folder that relative strategy paths are relative to (the working directory by default).
    """
    from ..io import load_strategy

    path = Path(spec["strategy"])
    if base is not None and not path.is_absolute():
        path = base / path
    strategy = load_strategy(
        path, sample_group=spec.get("sample_group"), sample_id=spec.get("sample_id")
    )
    populations = {}
    for name, gate in (spec.get("populations") or {}).items():
        if name not in POPULATIONS:
            raise ConfigError(
                f"config strategies.{panel}.populations: {name!r} is not a canonical population "
                f"({', '.join(POPULATIONS)})"
            )
        try:
            populations[name] = strategy.resolve(str(gate)).path
        except StrategyError as error:
            raise ConfigError(f"config strategies.{panel}.populations.{name}: {error}") from None
    return PanelGating(panel=panel, strategy=strategy, populations=populations)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_for_gating(
    fcs: str | Path,
    gating: PanelGating,
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
) -> tuple[FCSData, dict[str, str]]:
    """Read a file and find its channels for a panel's strategy: ``(FCSData, channel_map)``.

    Raises
    ------
    FCSReadError, MissingMarkerError
        The file cannot be read, or lacks a channel the strategy needs.
    """
    from ..io import read_fcs, resolve_channels

    data = read_fcs(fcs)
    if compensation is not None:
        data.spill = compensation
    channel_map = resolve_channels(
        data.channels,
        data.markers,
        gating.strategy.dimensions(),
        panels=panels,
        file=Path(fcs).name,
    )
    return data, channel_map


def gate_samples(
    samples: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gate every sample of a batch.

    Parameters
    ----------
    samples
        Rows with ``sample_id``, ``panel`` and ``fcs`` (absolute path).
    gatings
        Loaded strategy and population mapping per panel.
    panels
        The config's marker -> channel names mapping (harmonisation).
    compensation
        A spillover matrix to use instead of each file's own.

    Returns
    -------
    counts, qc
        ``counts``: one row per sample and gate (``COUNT_COLUMNS``; ``population`` is the canonical
        name or ""). ``qc``: one row per sample (``QC_COLUMNS``), ``status`` "ok" or "excluded"
        with the one-line reason in ``message``.
    """
    counts: list[pd.DataFrame] = []
    qc_rows: list[dict] = []
    for row in samples.sort_values("sample_id").itertuples(index=False):
        gating = gatings[row.panel]
        record = {
            "sample_id": row.sample_id,
            "status": "ok",
            "events_in": 0,
            "events_stated": 0,
            "notes": "",
            "message": "",
        }
        try:
            data, channel_map = read_for_gating(
                row.fcs, gating, panels=panels, compensation=compensation
            )
            record["events_in"] = data.n_events
            record["events_stated"] = data.n_events_stated
            record["notes"] = "; ".join(data.notes)
            table = count_events(data, gating.strategy, channel_map=channel_map)
        except CytotrialError as error:
            record["status"] = "excluded"
            record["message"] = _one_line(error)
            qc_rows.append(record)
            continue
        names = {path: name for name, path in gating.populations.items()}
        table = table.assign(
            sample_id=row.sample_id, population=table["gate_path"].map(names).fillna("")
        )
        counts.append(table[COUNT_COLUMNS])
        qc_rows.append(record)
    counts_df = (
        pd.concat(counts, ignore_index=True) if counts else pd.DataFrame(columns=COUNT_COLUMNS)
    )
    counts_df["count"] = counts_df["count"].astype("int64")
    counts_df["parent_count"] = counts_df["parent_count"].astype("int64")
    return counts_df, pd.DataFrame(qc_rows, columns=QC_COLUMNS)
