"""Figures, drawn with seaborn: what treatment did, patients and response, samples and QC.

From the statistics tables: trajectories, patient lines, the arm effect heatmap, Kaplan-Meier
curves, absolute values, spider plots and the waterfall; from the sheet and QC tables: sample
availability and the QC overview; from the FCS files: gating QC, gate positions, UMAPs.
"""

from ._availability import AVAILABILITY_STATUSES, availability_status, plot_sample_availability
from ._crosscheck import plot_umaps
from ._figures import FIGURE_TABLES, FIGURES, draw_figures, read_stat_tables, write_figures
from ._gates import plot_gate_positions, write_gate_positions
from ._gating import plot_gating_qc
from ._heatmap import plot_effect_heatmap
from ._lines import plot_patient_lines, plot_trajectories
from ._qc import acquisition_table, batch_drift, drift_table, gate_chain, plot_qc_overview
from ._response import plot_spider, plot_waterfall
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

__all__ = [
    "AVAILABILITY_STATUSES",
    "FIGURES",
    "FIGURE_TABLES",
    "PATIENT_FIGURES",
    "QC_FIGURES",
    "acquisition_table",
    "arm_palette",
    "availability_status",
    "batch_drift",
    "draw_figures",
    "drift_table",
    "feature_label",
    "feature_labels",
    "fold_change_label",
    "gate_chain",
    "key_features",
    "plot_effect_heatmap",
    "plot_gate_positions",
    "plot_gating_qc",
    "plot_kaplan_meier",
    "plot_patient_lines",
    "plot_qc_overview",
    "plot_sample_availability",
    "plot_spider",
    "plot_trajectories",
    "plot_umaps",
    "plot_values",
    "plot_waterfall",
    "read_stat_tables",
    "save_figure",
    "write_figures",
    "write_gate_positions",
    "write_patient_figures",
    "write_qc_figures",
]
