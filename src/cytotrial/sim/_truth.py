"""The simulator's truth populations: their gate paths, their cell types and their true counts.

These are the simulator's own: the canonical populations of the demo, each at its gate path in
the demo gating strategies ``resources/gating/blood.xml`` and ``tumor.xml`` (``gating:id`` of the
gates from the top of the tree down). A population's true count is the number of events whose
labels satisfy every criterion on that path.
"""

from __future__ import annotations

import numpy as np

from ._panel import _LYMPHOID, CELL_TYPES, _panel_model

#: Gate path of each truth population in the demo strategies, parents before children.
_GATE_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "blood": {
        "lymphocytes": ("lymphocytes",),
        "singlets": ("lymphocytes", "singlets"),
        "live": ("lymphocytes", "singlets", "live"),
        "cd3": ("lymphocytes", "singlets", "live", "cd3"),
        "cd4": ("lymphocytes", "singlets", "live", "cd3", "cd4"),
        "cd8": ("lymphocytes", "singlets", "live", "cd3", "cd8"),
        "treg": ("lymphocytes", "singlets", "live", "cd3", "cd4", "treg"),
        "nk": ("lymphocytes", "singlets", "live", "cd3_neg", "nk"),
        "cd8_ki67": ("lymphocytes", "singlets", "live", "cd3", "cd8", "cd8_ki67"),
    },
    "tumor": {
        "lymphocytes": ("lymphocytes",),
        "singlets": ("lymphocytes", "singlets"),
        "live": ("lymphocytes", "singlets", "live"),
        "leukocytes": ("lymphocytes", "singlets", "live", "leukocytes"),
        "cd3": ("lymphocytes", "singlets", "live", "leukocytes", "cd3"),
        "cd4": ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd4"),
        "cd8": ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd8"),
        "treg": ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd4", "treg"),
        "nk": ("lymphocytes", "singlets", "live", "leukocytes", "cd3_neg", "nk"),
        "cd8_ki67": ("lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd8", "cd8_ki67"),
    },
}

#: Truth populations per panel, parents before children.
POPULATIONS: dict[str, tuple[str, ...]] = {
    panel: tuple(paths) for panel, paths in _GATE_PATHS.items()
}

#: Parent gate of each population in the demo trees (None: top level, parent = all events).
_PARENT: dict[str, dict[str, str | None]] = {
    panel: {p: path[-2] if len(path) > 1 else None for p, path in paths.items()}
    for panel, paths in _GATE_PATHS.items()
}

#: Cell types making up each population (among live singlets of lymphocyte scatter);
#: ``cd3_neg`` is a gate of the trees, not a truth population.
_POPULATION_TYPES: dict[str, tuple[str, ...]] = {
    "leukocytes": _LYMPHOID,
    "cd3_neg": ("nk", "b"),
    "cd3": ("cd4_conv", "treg", "cd8_ki67neg", "cd8_ki67pos", "t_other"),
    "cd4": ("cd4_conv", "treg"),
    "cd8": ("cd8_ki67neg", "cd8_ki67pos"),
    "treg": ("treg",),
    "nk": ("nk",),
    "cd8_ki67": ("cd8_ki67pos",),
}


def _truth_membership(
    panel: str, cell_type: np.ndarray, dead: np.ndarray, doublet: np.ndarray
) -> dict[str, np.ndarray]:
    """Boolean true membership of every event in each truth population of the panel."""
    lymph = _panel_model(panel).lymph_scatter[cell_type]
    singlets = lymph & ~doublet
    live = singlets & ~dead
    membership = {"lymphocytes": lymph, "singlets": singlets, "live": live}
    for population in POPULATIONS[panel][3:]:
        codes = [CELL_TYPES.index(t) for t in _POPULATION_TYPES[population]]
        membership[population] = live & np.isin(cell_type, codes)
    return membership


def _truth_counts(
    panel: str, cell_type: np.ndarray, dead: np.ndarray, doublet: np.ndarray
) -> dict[str, int]:
    """True event count of each truth population of the panel."""
    n_types = len(CELL_TYPES)
    # one bincount over (type, dead, doublet) gives every population as a sum of cells
    table = np.bincount(
        cell_type.astype(np.int64) * 4 + dead * 2 + doublet, minlength=n_types * 4
    ).reshape(n_types, 4)
    all_events = table.sum(axis=1)
    live_singlets = table[:, 0]
    lymph = _panel_model(panel).lymph_scatter
    counts = {
        "lymphocytes": int(all_events[lymph].sum()),
        "singlets": int(table[lymph][:, [0, 2]].sum()),
        "live": int(live_singlets[lymph].sum()),
    }
    for population in POPULATIONS[panel][3:]:
        codes = [CELL_TYPES.index(t) for t in _POPULATION_TYPES[population]]
        counts[population] = int(live_singlets[codes].sum())
    return counts
