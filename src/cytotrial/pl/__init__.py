"""Figures: trajectories, per-patient lines, effect heatmap."""

from ._figures import (
    DEFAULT_ARM_COLORS,
    FIGURES,
    POPULATION_LABELS,
    arm_palette,
    fold_change_label,
    plot_effect_heatmap,
    plot_patient_lines,
    plot_trajectories,
    population_label,
    save_figure,
    write_figures,
)

__all__ = [
    "DEFAULT_ARM_COLORS",
    "FIGURES",
    "POPULATION_LABELS",
    "arm_palette",
    "fold_change_label",
    "plot_effect_heatmap",
    "plot_patient_lines",
    "plot_trajectories",
    "population_label",
    "save_figure",
    "write_figures",
]
