"""The demo panels and the signal model of every cell type: scatter, markers, detectors, spillover."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from ..errors import ConfigError

#: Demo panels: ``($PnN, $PnS)`` of every channel, in file order.
PANELS: dict[str, tuple[tuple[str, str], ...]] = {
    "blood": (
        ("FSC-A", ""),
        ("FSC-H", ""),
        ("SSC-A", ""),
        ("FITC-A", "CD3"),
        ("PE-A", "CD25"),
        ("PE-CF594-A", "CD38"),
        ("PerCP-Cy5-5-A", "CD4"),
        ("PE-Cy7-A", "CD56"),
        ("APC-A", "Ki67"),
        ("APC-H7-A", "CD8"),
        ("BV421-A", "CD127"),
        ("BV510-A", "Viability"),
        ("BV605-A", "CD16"),
        ("BV711-A", "HLA-DR"),
        ("Time", ""),
    ),
}
PANELS["tumor"] = PANELS["blood"][:-1] + (("BV786-A", "CD45"), ("Time", ""))

#: Every label an event can have (index = code in :attr:`SimulatedSample.cell_type`).
CELL_TYPES: tuple[str, ...] = (
    "debris",
    "cd4_conv",
    "treg",
    "cd8_ki67neg",
    "cd8_ki67pos",
    "cd8_act_ki67neg",
    "cd8_act_ki67pos",
    "cd8_hladr_only",
    "cd8_cd38_only",
    "nk",
    "b",
    "t_other",
    "monocyte",
    "granulocyte",
    "tumor_large",
    "tumor_small",
)
#: CD8 T cells: resting (HLA-DR-, CD38 dim) Ki67- and Ki67+, activated (HLA-DR+CD38+) Ki67- and
#: Ki67+, and the single positives HLA-DR+CD38- and CD38+HLA-DR- (both Ki67-).
_CD8 = (
    "cd8_ki67neg",
    "cd8_ki67pos",
    "cd8_act_ki67neg",
    "cd8_act_ki67pos",
    "cd8_hladr_only",
    "cd8_cd38_only",
)
_LYMPHOID = ("cd4_conv", "treg", *_CD8, "nk", "b", "t_other")
_LYMPH_SCATTER = _LYMPHOID + ("tumor_small",)

# Scatter per cell type: FSC-A median, natural-log sd, SSC-A median, natural-log sd.
_SCATTER: dict[str, tuple[float, float, float, float]] = {
    "debris": (7000.0, 0.45, 5000.0, 0.6),
    "cd4_conv": (52000.0, 0.10, 16000.0, 0.15),
    "treg": (53000.0, 0.10, 16500.0, 0.15),
    "cd8_ki67neg": (52000.0, 0.10, 16000.0, 0.15),
    "cd8_ki67pos": (56000.0, 0.10, 17500.0, 0.15),
    "cd8_act_ki67neg": (55000.0, 0.10, 17000.0, 0.15),
    "cd8_act_ki67pos": (58000.0, 0.10, 18000.0, 0.15),
    "cd8_hladr_only": (53000.0, 0.10, 16500.0, 0.15),
    "cd8_cd38_only": (52000.0, 0.10, 16000.0, 0.15),
    "nk": (57000.0, 0.10, 18000.0, 0.15),
    "b": (50000.0, 0.10, 14500.0, 0.15),
    "t_other": (52000.0, 0.10, 16000.0, 0.15),
    "monocyte": (90000.0, 0.12, 76000.0, 0.15),
    "granulocyte": (115000.0, 0.12, 150000.0, 0.15),
    "tumor_large": (175000.0, 0.18, 140000.0, 0.20),
    "tumor_small": (54000.0, 0.10, 17000.0, 0.15),
}
_SINGLET_HEIGHT_RATIO = 0.85  # FSC-H / FSC-A of single cells
_SINGLET_RATIO_SD = 0.035  # natural-log sd of that ratio
_SCATTER_MAX = 262143.0

# Marker expression per cell type: marker -> (median, log10 sd, fraction positive); a marker not
# listed is negative. HLA-DR is bright on B cells, monocytes and activated T cells; CD38 on NK
# cells, B cells, monocytes and activated T cells, dim on resting T cells (a dim cloud well below
# the CD38+ gate of the demo strategies).
_T_CELL = {"CD3": (4000.0, 0.18, 1.0), "CD38": (90.0, 0.20, 1.0), "CD45": (12000.0, 0.18, 1.0)}
_CD8_T = {
    **_T_CELL,
    "CD3": (4500.0, 0.18, 1.0),
    "CD8": (8000.0, 0.20, 1.0),
    "CD45": (13000.0, 0.18, 1.0),
}
_RESTING_CD8 = {**_CD8_T, "CD127": (2000.0, 0.25, 0.7), "CD56": (2500.0, 0.25, 0.05)}
_KI67 = {"Ki67": (3000.0, 0.22, 1.0), "CD25": (300.0, 0.30, 1.0), "CD127": (800.0, 0.30, 0.5)}
_ACTIVATED = {"HLA-DR": (3000.0, 0.20, 1.0), "CD38": (4500.0, 0.20, 1.0)}
_EXPRESSION: dict[str, dict[str, tuple[float, float, float]]] = {
    "debris": {"Viability": (6000.0, 0.35, 0.5)},
    "cd4_conv": {
        **_T_CELL,
        "CD4": (5500.0, 0.18, 1.0),
        "CD127": (3000.0, 0.20, 0.85),
        "CD25": (80.0, 0.30, 1.0),
        "HLA-DR": (1500.0, 0.25, 0.04),
    },
    "treg": {
        **_T_CELL,
        "CD4": (5000.0, 0.18, 1.0),
        "CD25": (5000.0, 0.20, 1.0),
        "CD127": (60.0, 0.25, 1.0),
        "HLA-DR": (1800.0, 0.25, 0.3),
    },
    "cd8_ki67neg": _RESTING_CD8,
    "cd8_ki67pos": {**_RESTING_CD8, **_KI67},
    "cd8_act_ki67neg": {**_CD8_T, **_ACTIVATED, "CD127": (1200.0, 0.30, 0.4)},
    "cd8_act_ki67pos": {**_CD8_T, **_KI67, **_ACTIVATED, "CD127": (600.0, 0.30, 0.3)},
    "cd8_hladr_only": {**_RESTING_CD8, "HLA-DR": (2500.0, 0.20, 1.0)},
    "cd8_cd38_only": {**_RESTING_CD8, "CD38": (3500.0, 0.20, 1.0)},
    "nk": {
        "CD56": (4000.0, 0.22, 1.0),
        "CD16": (6000.0, 0.25, 0.9),
        "CD8": (800.0, 0.30, 0.35),
        "CD38": (6000.0, 0.20, 0.95),
        "HLA-DR": (1000.0, 0.30, 0.1),
        "CD45": (11000.0, 0.18, 1.0),
    },
    "b": {
        "HLA-DR": (12000.0, 0.18, 1.0),
        "CD38": (2500.0, 0.30, 0.9),
        "CD45": (10000.0, 0.18, 1.0),
    },
    "t_other": {
        **_T_CELL,
        "CD56": (3000.0, 0.25, 0.2),
        "CD127": (2000.0, 0.25, 0.8),
        "HLA-DR": (1500.0, 0.25, 0.1),
    },
    "monocyte": {
        "CD4": (1200.0, 0.20, 1.0),
        "CD16": (3000.0, 0.30, 0.15),
        "HLA-DR": (8000.0, 0.25, 1.0),
        "CD38": (2500.0, 0.25, 1.0),
        "CD45": (9000.0, 0.18, 1.0),
    },
    "granulocyte": {"CD16": (20000.0, 0.25, 0.95), "CD45": (5000.0, 0.20, 1.0)},
    "tumor_large": {"CD56": (2500.0, 0.30, 0.3), "HLA-DR": (3000.0, 0.30, 0.25)},
    "tumor_small": {"CD56": (2500.0, 0.30, 0.3), "HLA-DR": (3000.0, 0.30, 0.25)},
}
_DEAD_VIABILITY = (15000.0, 0.22)  # median, log10 sd of the dye in dead cells
_DEAD_MARKER_DIMMING = 0.7
_DEAD_SCATTER = (0.9, 1.05)  # FSC, SSC factors
_AUTOFLUORESCENCE_SCALE: dict[str, float] = {
    "debris": 0.5,
    "monocyte": 3.0,
    "granulocyte": 5.0,
    "tumor_large": 5.0,
    "tumor_small": 3.0,
}  # lymphocytes 1

# Per fluorescence detector: electronic noise sd, lymphocyte autofluorescence.
_DETECTOR: dict[str, tuple[float, float]] = {
    "FITC-A": (35.0, 40.0),
    "PE-A": (45.0, 25.0),
    "PE-CF594-A": (45.0, 20.0),
    "PerCP-Cy5-5-A": (40.0, 20.0),
    "PE-Cy7-A": (45.0, 10.0),
    "APC-A": (25.0, 8.0),
    "APC-H7-A": (35.0, 6.0),
    "BV421-A": (30.0, 35.0),
    "BV510-A": (40.0, 45.0),
    "BV605-A": (40.0, 20.0),
    "BV711-A": (40.0, 15.0),
    "BV786-A": (50.0, 10.0),
}
_SPREADING = 1.5  # photon-counting variance per unit of spilled signal

# Spillover of each fluorochrome's detector into the others (diagonal 1), a four-laser analyser.
_SPILL: dict[str, dict[str, float]] = {
    "FITC-A": {"PE-A": 0.18, "PE-CF594-A": 0.06, "PerCP-Cy5-5-A": 0.03, "PE-Cy7-A": 0.005},
    "PE-A": {
        "FITC-A": 0.01,
        "PE-CF594-A": 0.30,
        "PerCP-Cy5-5-A": 0.12,
        "PE-Cy7-A": 0.02,
        "BV605-A": 0.03,
    },
    "PE-CF594-A": {
        "PE-A": 0.06,
        "PerCP-Cy5-5-A": 0.12,
        "PE-Cy7-A": 0.03,
        "APC-A": 0.01,
        "BV605-A": 0.08,
        "BV711-A": 0.02,
    },
    "PerCP-Cy5-5-A": {
        "PE-CF594-A": 0.01,
        "PE-Cy7-A": 0.15,
        "APC-A": 0.02,
        "APC-H7-A": 0.04,
        "BV711-A": 0.05,
        "BV786-A": 0.02,
    },
    "PE-Cy7-A": {"PerCP-Cy5-5-A": 0.03, "APC-H7-A": 0.05, "BV786-A": 0.08},
    "APC-A": {"PerCP-Cy5-5-A": 0.01, "APC-H7-A": 0.12},
    "APC-H7-A": {"APC-A": 0.03, "PE-Cy7-A": 0.08, "BV786-A": 0.04},
    "BV421-A": {"FITC-A": 0.02, "BV510-A": 0.25, "BV605-A": 0.03},
    "BV510-A": {"BV421-A": 0.01, "FITC-A": 0.05, "BV605-A": 0.10},
    "BV605-A": {
        "PE-A": 0.05,
        "PE-CF594-A": 0.04,
        "PerCP-Cy5-5-A": 0.02,
        "BV510-A": 0.01,
        "BV711-A": 0.15,
        "BV786-A": 0.06,
    },
    "BV711-A": {"PerCP-Cy5-5-A": 0.03, "PE-Cy7-A": 0.01, "BV605-A": 0.02, "BV786-A": 0.20},
    "BV786-A": {"PE-Cy7-A": 0.05, "APC-H7-A": 0.02, "BV605-A": 0.01, "BV711-A": 0.05},
}
_VOLTAGES: dict[str, int] = {
    "FSC-A": 350,
    "FSC-H": 350,
    "SSC-A": 260,
    "FITC-A": 480,
    "PE-A": 520,
    "PE-CF594-A": 540,
    "PerCP-Cy5-5-A": 600,
    "PE-Cy7-A": 560,
    "APC-A": 610,
    "APC-H7-A": 580,
    "BV421-A": 420,
    "BV510-A": 440,
    "BV605-A": 470,
    "BV711-A": 500,
    "BV786-A": 520,
}
_EVENT_RATE = 2500.0  # events per second
_TIMESTEP = 0.01  # seconds per unit of the Time channel


def _check_panel(panel: str) -> None:
    """Raise a one-line ConfigError unless ``panel`` is one of :data:`PANELS`."""
    if panel not in PANELS:
        raise ConfigError(f"unknown panel {panel!r}: use one of {', '.join(PANELS)}")


def _fluorescence_channels(panel: str) -> list[str]:
    """``$PnN`` of the panel's fluorescence detectors (channels with a marker), in file order."""
    _check_panel(panel)
    return [name for name, marker in PANELS[panel] if marker]


def spillover_matrix(panel: str = "blood") -> pd.DataFrame:
    """The panel's spillover matrix, as written to ``$SPILLOVER``.

    Parameters
    ----------
    panel
        ``"blood"`` or ``"tumor"``.

    Returns
    -------
    pandas.DataFrame
        Square, over the fluorescence detectors (``$PnN``); row ``i`` is how the fluorochrome
        read in detector ``i`` spills into every detector (``observed = unmixed @ S``).

    Raises
    ------
    ConfigError
        For an unknown panel.
    """
    detectors = _fluorescence_channels(panel)
    return pd.DataFrame(_spill_array(panel), index=detectors, columns=detectors)


@cache
def _spill_array(panel: str) -> np.ndarray:
    """The spillover matrix as a read-only array (cached)."""
    detectors = _fluorescence_channels(panel)
    matrix = np.eye(len(detectors))
    for i, source in enumerate(detectors):
        for target, value in _SPILL[source].items():
            if target in detectors:
                matrix[i, detectors.index(target)] = value
    matrix.flags.writeable = False
    return matrix


@dataclass(frozen=True)
class _PanelModel:
    """Per-panel parameters; fluorescence tables are (channel, cell type code)."""

    channels: tuple[str, ...]
    markers: tuple[str, ...]
    fluorescence: tuple[str, ...]
    fluorescence_rows: slice
    spill: np.ndarray
    spill_off_diagonal: np.ndarray
    median: np.ndarray
    log_sd: np.ndarray
    fraction_positive: np.ndarray
    autofluorescence_base: np.ndarray
    autofluorescence_scale: np.ndarray
    noise_var: np.ndarray
    scatter: np.ndarray
    lymph_scatter: np.ndarray
    viability: int


@cache
def _panel_model(panel: str) -> _PanelModel:
    """The panel's parameters as float32 arrays for the vectorized sampler (cached)."""
    _check_panel(panel)
    fluorescence = _fluorescence_channels(panel)
    markers = [dict(PANELS[panel])[channel] for channel in fluorescence]
    first = [name for name, _ in PANELS[panel]].index(fluorescence[0])
    rows = slice(first, first + len(fluorescence))  # fluorescence channels are consecutive
    assert [name for name, _ in PANELS[panel]][rows] == fluorescence
    spill = _spill_array(panel).astype(np.float32)
    n_types, n_fluor = len(CELL_TYPES), len(fluorescence)
    median = np.zeros((n_types, n_fluor), dtype=np.float32)
    log_sd = np.zeros((n_types, n_fluor), dtype=np.float32)
    fraction = np.zeros((n_types, n_fluor), dtype=np.float32)
    for t, cell_type in enumerate(CELL_TYPES):
        for j, marker in enumerate(markers):
            if marker in _EXPRESSION[cell_type]:
                median[t, j], log_sd[t, j], fraction[t, j] = _EXPRESSION[cell_type][marker]
    base_af = np.array([_DETECTOR[c][1] for c in fluorescence], dtype=np.float32)
    scale = np.array([_AUTOFLUORESCENCE_SCALE.get(t, 1.0) for t in CELL_TYPES], dtype=np.float32)
    off_diagonal = spill.copy()
    np.fill_diagonal(off_diagonal, 0.0)
    return _PanelModel(
        channels=tuple(name for name, _ in PANELS[panel]),
        markers=tuple(marker for _, marker in PANELS[panel]),
        fluorescence=tuple(fluorescence),
        fluorescence_rows=rows,
        spill=spill,
        spill_off_diagonal=off_diagonal * _SPREADING,
        median=np.ascontiguousarray(median.T),
        log_sd=np.ascontiguousarray(log_sd.T) * np.float32(np.log(10.0)),
        fraction_positive=np.ascontiguousarray(fraction.T),
        autofluorescence_base=base_af[:, None],
        autofluorescence_scale=scale,
        noise_var=np.array([[_DETECTOR[c][0] ** 2] for c in fluorescence], dtype=np.float32),
        scatter=np.array([_SCATTER[t] for t in CELL_TYPES], dtype=np.float32),
        lymph_scatter=np.array([t in _LYMPH_SCATTER for t in CELL_TYPES]),
        viability=markers.index("Viability"),
    )
