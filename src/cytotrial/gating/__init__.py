"""Gating: every gate of a strategy applied to a file's events, and a batch's populations counted."""

from ._acquisition import (
    ACQUISITION_BIN_COLUMNS,
    REMOVED_STRETCH_COLUMNS,
    AcquisitionQC,
    acquisition_qc,
)
from ._adaptive import (
    ADAPTIVE_METHODS,
    AdaptivePlan,
    Boundary,
    adaptive_plan,
    adaptive_problems,
    check_adaptive,
)
from ._engine import COUNT_TABLE_COLUMNS, count_events, gate_events, transformed_events
from ._export import (
    SampleGates,
    export_flowjo_workspace,
    export_gatingml,
    export_panel_gates,
    read_gate_positions,
    read_removed_stretches,
    read_sample_gates,
    sample_placements,
)
from ._mfi import MFI_COLUMNS, marker_channels
from ._placed import placed_gating_strategy
from ._placement import GATE_POSITION_COLUMNS, Position
from ._populations import (
    PanelGating,
    gate_population_model,
    load_panel_gating,
    panel_gating,
    population_masks,
)
from ._reference import benchmark_gating, flowkit_session_counts
from ._samples import (
    COUNT_COLUMNS,
    QC_COLUMNS,
    GatedBatch,
    compensation_matrix,
    gate_samples,
    gated_engine,
    read_and_gate,
    read_for_gating,
)

__all__ = [
    "ACQUISITION_BIN_COLUMNS",
    "ADAPTIVE_METHODS",
    "COUNT_COLUMNS",
    "COUNT_TABLE_COLUMNS",
    "GATE_POSITION_COLUMNS",
    "MFI_COLUMNS",
    "QC_COLUMNS",
    "REMOVED_STRETCH_COLUMNS",
    "AcquisitionQC",
    "AdaptivePlan",
    "Boundary",
    "GatedBatch",
    "PanelGating",
    "Position",
    "SampleGates",
    "acquisition_qc",
    "adaptive_plan",
    "adaptive_problems",
    "benchmark_gating",
    "check_adaptive",
    "compensation_matrix",
    "count_events",
    "export_flowjo_workspace",
    "export_gatingml",
    "export_panel_gates",
    "flowkit_session_counts",
    "gate_events",
    "gate_population_model",
    "gate_samples",
    "gated_engine",
    "load_panel_gating",
    "marker_channels",
    "panel_gating",
    "placed_gating_strategy",
    "population_masks",
    "read_and_gate",
    "read_for_gating",
    "read_gate_positions",
    "read_removed_stretches",
    "read_sample_gates",
    "sample_placements",
    "transformed_events",
]
