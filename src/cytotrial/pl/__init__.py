"""Figures, drawn with seaborn: what treatment did, patients and response, samples and QC.

From the statistics tables: trajectories, patient lines, the arm effect heatmap, Kaplan-Meier
curves, absolute values, spider plots and the waterfall; from the sheet and QC tables: sample
availability and the QC overview; from the gate positions: where adaptive gates went; from the
FCS files: the gating review (a page per sample, its gates as placed for it) and the UMAPs.

Each name is imported from its module when first used (the review's job draws no trial figure).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._availability import AVAILABILITY_STATUSES, availability_status, plot_sample_availability
    from ._crosscheck import (
        CROSSCHECK_FIGURES,
        plot_cluster_markers,
        plot_density_difference,
        plot_umap_population,
        write_crosscheck_figures,
    )
    from ._figures import FIGURE_TABLES, FIGURES, draw_figures, read_stat_tables, write_figures
    from ._gates import plot_gate_positions, write_gate_positions
    from ._heatmap import plot_effect_heatmap
    from ._lines import plot_patient_lines, plot_trajectories
    from ._qc import acquisition_table, batch_drift, drift_table, gate_chain, plot_qc_overview
    from ._response import plot_spider, plot_waterfall
    from ._review import (
        DRAWING_VERSION,
        ReviewCanvas,
        ReviewHeader,
        ReviewPanel,
        draw_review_pages,
        draw_sample_review,
        message_page,
        review_panels,
        save_review_page,
    )
    from ._style import (
        arm_palette,
        feature_label,
        feature_labels,
        fold_change_label,
        save_figure,
    )
    from ._survival import plot_kaplan_meier
    from ._values import plot_values
    from ._write import (
        PATIENT_FIGURES,
        QC_FIGURES,
        key_features,
        write_patient_figures,
        write_qc_figures,
    )

#: Public name -> the module that defines it.
_EXPORTS = {
    "AVAILABILITY_STATUSES": "._availability",
    "CROSSCHECK_FIGURES": "._crosscheck",
    "DRAWING_VERSION": "._review",
    "FIGURES": "._figures",
    "FIGURE_TABLES": "._figures",
    "PATIENT_FIGURES": "._write",
    "QC_FIGURES": "._write",
    "ReviewCanvas": "._review",
    "ReviewHeader": "._review",
    "ReviewPanel": "._review",
    "acquisition_table": "._qc",
    "arm_palette": "._style",
    "availability_status": "._availability",
    "batch_drift": "._qc",
    "draw_figures": "._figures",
    "draw_review_pages": "._review",
    "draw_sample_review": "._review",
    "drift_table": "._qc",
    "feature_label": "._style",
    "feature_labels": "._style",
    "fold_change_label": "._style",
    "gate_chain": "._qc",
    "key_features": "._write",
    "message_page": "._review",
    "plot_cluster_markers": "._crosscheck",
    "plot_density_difference": "._crosscheck",
    "plot_effect_heatmap": "._heatmap",
    "plot_gate_positions": "._gates",
    "plot_kaplan_meier": "._survival",
    "plot_patient_lines": "._lines",
    "plot_qc_overview": "._qc",
    "plot_sample_availability": "._availability",
    "plot_spider": "._response",
    "plot_trajectories": "._lines",
    "plot_umap_population": "._crosscheck",
    "plot_values": "._values",
    "plot_waterfall": "._response",
    "read_stat_tables": "._figures",
    "review_panels": "._review",
    "save_review_page": "._review",
    "save_figure": "._style",
    "write_crosscheck_figures": "._crosscheck",
    "write_figures": "._figures",
    "write_gate_positions": "._gates",
    "write_patient_figures": "._write",
    "write_qc_figures": "._write",
}

__all__ = [
    "AVAILABILITY_STATUSES",
    "CROSSCHECK_FIGURES",
    "DRAWING_VERSION",
    "FIGURES",
    "FIGURE_TABLES",
    "PATIENT_FIGURES",
    "QC_FIGURES",
    "ReviewCanvas",
    "ReviewHeader",
    "ReviewPanel",
    "acquisition_table",
    "arm_palette",
    "availability_status",
    "batch_drift",
    "draw_figures",
    "draw_review_pages",
    "draw_sample_review",
    "drift_table",
    "feature_label",
    "feature_labels",
    "fold_change_label",
    "gate_chain",
    "key_features",
    "message_page",
    "plot_cluster_markers",
    "plot_density_difference",
    "plot_effect_heatmap",
    "plot_gate_positions",
    "plot_kaplan_meier",
    "plot_patient_lines",
    "plot_qc_overview",
    "plot_sample_availability",
    "plot_spider",
    "plot_trajectories",
    "plot_umap_population",
    "plot_values",
    "plot_waterfall",
    "read_stat_tables",
    "review_panels",
    "save_figure",
    "save_review_page",
    "write_crosscheck_figures",
    "write_figures",
    "write_gate_positions",
    "write_patient_figures",
    "write_qc_figures",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
