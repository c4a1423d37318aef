"""Tools: counts to AnnData, change from baseline, arm comparisons, models, event-level cross-check."""

from ._aggregate import POPULATIONS, build_populations, populations_long, qc_flags
from ._compare import arm_comparison, summary_table, within_arm_changes
from ._crosscheck import (
    EVENT_LABELS,
    cluster_events,
    cluster_gate_agreement,
    event_labels,
    subsample_events,
)
from ._measures import (
    MEASURE_UNITS,
    MEASURES,
    log2_fold_changes,
    measure_table,
    missing_baselines,
    resolve_analysis,
    visit_order,
)
from ._mixed import mixed_models
from ._rank import bh_qvalues, hodges_lehmann_ci, hodges_lehmann_shift_ci, t_interval
from ._response import RESPONSE_CATEGORIES, read_patients, response_table
from ._tables import STAT_TABLES, compute_tables, write_stats, write_tsv

__all__ = [
    "EVENT_LABELS",
    "MEASURES",
    "MEASURE_UNITS",
    "POPULATIONS",
    "RESPONSE_CATEGORIES",
    "STAT_TABLES",
    "arm_comparison",
    "bh_qvalues",
    "build_populations",
    "cluster_events",
    "cluster_gate_agreement",
    "compute_tables",
    "event_labels",
    "hodges_lehmann_ci",
    "hodges_lehmann_shift_ci",
    "log2_fold_changes",
    "measure_table",
    "missing_baselines",
    "mixed_models",
    "populations_long",
    "qc_flags",
    "read_patients",
    "resolve_analysis",
    "response_table",
    "subsample_events",
    "summary_table",
    "t_interval",
    "visit_order",
    "within_arm_changes",
    "write_stats",
    "write_tsv",
]
