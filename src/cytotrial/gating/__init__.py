"""Gating: every gate of a strategy applied to a file's events, and the samples of a batch counted."""

from ._engine import COUNT_TABLE_COLUMNS, count_events, gate_events, transformed_events
from ._reference import benchmark_gating, flowkit_session_counts
from ._samples import (
    COUNT_COLUMNS,
    QC_COLUMNS,
    PanelGating,
    gate_samples,
    load_panel_gating,
    read_for_gating,
)

__all__ = [
    "COUNT_COLUMNS",
    "COUNT_TABLE_COLUMNS",
    "QC_COLUMNS",
    "PanelGating",
    "benchmark_gating",
    "count_events",
    "flowkit_session_counts",
    "gate_events",
    "gate_samples",
    "load_panel_gating",
    "read_for_gating",
    "transformed_events",
]
