"""Tools: counts to AnnData, change from baseline, arm comparisons, models, event-level cross-check."""

from ._aggregate import COUNT_INPUT_COLUMNS, build_populations, populations_long, qc_flags
from ._analysis import (
    FEATURE_OBSM,
    analysis_plan,
    baseline_visits,
    feature_kinds,
    resolve_analysis,
    visit_order,
)
from ._availability import DAYS_PER_MONTH, missing_samples, sample_availability
from ._compare import arm_comparison, summary_table, within_arm_changes
from ._crosscheck import (
    cluster_events,
    cluster_gate_agreement,
    crosscheck_samples,
    event_labels,
    event_quotas,
    subsample_events,
    umap_graph,
)
from ._crosscheck_maps import DensityDifference, arm_density_differences, cluster_markers
from ._features import MFI_COLUMNS, MFI_OBSM, RATIO_COLUMNS, mfi_table, ratios_long
from ._measures import (
    MEASURE_UNITS,
    MEASURES,
    log2_fold_changes,
    measure_table,
    measure_unit,
    missing_baselines,
)
from ._mmrm import MMRM_COLUMNS, MMRM_COVARIANCES, mmrm, mmrm_models
from ._rank import bh_qvalues, hodges_lehmann_ci, hodges_lehmann_shift_ci, t_interval
from ._responders import responder_analysis, stratified_shift_test
from ._response import RESPONSE_CATEGORIES, read_patients, response_table
from ._survival import (
    SPLIT_GROUPS,
    SURVIVAL_ENDPOINTS,
    SURVIVAL_TABLES,
    cox_permutation_p,
    kaplan_meier_curve,
    logrank_p,
    logrank_scores,
    survival_data,
    survival_tables,
)
from ._tables import STAT_TABLES, compute_tables, write_stats, write_tsv

__all__ = [
    "COUNT_INPUT_COLUMNS",
    "DAYS_PER_MONTH",
    "FEATURE_OBSM",
    "MEASURES",
    "MEASURE_UNITS",
    "MFI_COLUMNS",
    "MFI_OBSM",
    "MMRM_COLUMNS",
    "MMRM_COVARIANCES",
    "RATIO_COLUMNS",
    "RESPONSE_CATEGORIES",
    "SPLIT_GROUPS",
    "STAT_TABLES",
    "SURVIVAL_ENDPOINTS",
    "SURVIVAL_TABLES",
    "DensityDifference",
    "analysis_plan",
    "arm_comparison",
    "arm_density_differences",
    "baseline_visits",
    "bh_qvalues",
    "build_populations",
    "cluster_events",
    "cluster_gate_agreement",
    "cluster_markers",
    "compute_tables",
    "cox_permutation_p",
    "crosscheck_samples",
    "event_labels",
    "event_quotas",
    "feature_kinds",
    "hodges_lehmann_ci",
    "hodges_lehmann_shift_ci",
    "kaplan_meier_curve",
    "log2_fold_changes",
    "logrank_p",
    "logrank_scores",
    "measure_table",
    "measure_unit",
    "mfi_table",
    "missing_baselines",
    "missing_samples",
    "mmrm",
    "mmrm_models",
    "populations_long",
    "qc_flags",
    "ratios_long",
    "read_patients",
    "resolve_analysis",
    "responder_analysis",
    "response_table",
    "sample_availability",
    "stratified_shift_test",
    "subsample_events",
    "summary_table",
    "survival_data",
    "survival_tables",
    "t_interval",
    "umap_graph",
    "visit_order",
    "within_arm_changes",
    "write_stats",
    "write_tsv",
]
