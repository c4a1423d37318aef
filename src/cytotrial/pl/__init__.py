"""Figures: what treatment did (from the statistics tables), gating QC, gate positions, UMAPs."""

from ._crosscheck import plot_umaps
from ._figures import FIGURE_TABLES, FIGURES, draw_figures, read_stat_tables, write_figures
from ._gates import plot_gate_positions, write_gate_positions
from ._gating import plot_gating_qc
from ._heatmap import plot_effect_heatmap
from ._lines import plot_patient_lines, plot_trajectories
from ._style import (
    arm_palette,
    feature_label,
    feature_labels,
    fold_change_label,
    save_figure,
)
from ._survival import plot_kaplan_meier

__all__ = [
    "FIGURES",
    "FIGURE_TABLES",
    "arm_palette",
    "draw_figures",
    "feature_label",
    "feature_labels",
    "fold_change_label",
    "plot_effect_heatmap",
    "plot_gate_positions",
    "plot_gating_qc",
    "plot_kaplan_meier",
    "plot_patient_lines",
    "plot_trajectories",
    "plot_umaps",
    "read_stat_tables",
    "save_figure",
    "write_figures",
    "write_gate_positions",
]
