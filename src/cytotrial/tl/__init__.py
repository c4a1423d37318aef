"""Tools: counts to AnnData, change from baseline, arm comparisons, models, event-level cross-check.

Each name is imported from its module when first used (a rule's job loads only what it calls).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
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

#: Public name -> the module that defines it.
_EXPORTS = {
    "COUNT_INPUT_COLUMNS": "._aggregate",
    "DAYS_PER_MONTH": "._availability",
    "DensityDifference": "._crosscheck_maps",
    "FEATURE_OBSM": "._analysis",
    "MEASURES": "._measures",
    "MEASURE_UNITS": "._measures",
    "MFI_COLUMNS": "._features",
    "MFI_OBSM": "._features",
    "MMRM_COLUMNS": "._mmrm",
    "MMRM_COVARIANCES": "._mmrm",
    "RATIO_COLUMNS": "._features",
    "RESPONSE_CATEGORIES": "._response",
    "SPLIT_GROUPS": "._survival",
    "STAT_TABLES": "._tables",
    "SURVIVAL_ENDPOINTS": "._survival",
    "SURVIVAL_TABLES": "._survival",
    "analysis_plan": "._analysis",
    "arm_comparison": "._compare",
    "arm_density_differences": "._crosscheck_maps",
    "baseline_visits": "._analysis",
    "bh_qvalues": "._rank",
    "build_populations": "._aggregate",
    "cluster_events": "._crosscheck",
    "cluster_gate_agreement": "._crosscheck",
    "cluster_markers": "._crosscheck_maps",
    "compute_tables": "._tables",
    "cox_permutation_p": "._survival",
    "crosscheck_samples": "._crosscheck",
    "event_labels": "._crosscheck",
    "event_quotas": "._crosscheck",
    "feature_kinds": "._analysis",
    "hodges_lehmann_ci": "._rank",
    "hodges_lehmann_shift_ci": "._rank",
    "kaplan_meier_curve": "._survival",
    "log2_fold_changes": "._measures",
    "logrank_p": "._survival",
    "logrank_scores": "._survival",
    "measure_table": "._measures",
    "measure_unit": "._measures",
    "mfi_table": "._features",
    "missing_baselines": "._measures",
    "missing_samples": "._availability",
    "mmrm": "._mmrm",
    "mmrm_models": "._mmrm",
    "populations_long": "._aggregate",
    "qc_flags": "._aggregate",
    "ratios_long": "._features",
    "read_patients": "._response",
    "resolve_analysis": "._analysis",
    "responder_analysis": "._responders",
    "response_table": "._response",
    "sample_availability": "._availability",
    "stratified_shift_test": "._responders",
    "subsample_events": "._crosscheck",
    "summary_table": "._compare",
    "survival_data": "._survival",
    "survival_tables": "._survival",
    "t_interval": "._rank",
    "umap_graph": "._crosscheck",
    "visit_order": "._analysis",
    "within_arm_changes": "._compare",
    "write_stats": "._tables",
    "write_tsv": "._tables",
}

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

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
