"""The drift mode's cells: continuous, overlapping expression and wider lymphocyte scatter.

Real markers are continuous, not blobs: conventional CD4 T cells carry CD25 from none to dim,
Tregs are its bright tail; CD127 is continuous, with a CD127-low tail among conventional cells
and low on Tregs; NK cells are CD56 dim (most) or bright; Ki67, HLA-DR and CD38 are broad
positive clouds reaching down towards the negatives (CD38 dim on resting T cells). Each
marker of a cell type is a log-normal cloud on a fraction of the cells and a second cloud (or
nothing) on the rest: ``(median, log10 sd, fraction[, rest median, rest log10 sd])``. Valleys
between the labelled populations remain in every file, so each sample's own thresholds can
find them; fixed thresholds lose the dim tails as gains move them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ._panel import (
    _DEAD_VIABILITY,
    _EXPRESSION,
    _LYMPHOID,
    _SCATTER,
    CELL_TYPES,
    PANELS,
    _fluorescence_channels,
)

Expression = tuple[float, ...]

_T = {"CD38": (100.0, 0.25, 1.0), "CD4": (5500.0, 0.22, 1.0)}
_RESTING = {"CD38": (100.0, 0.25, 1.0), "CD127": (2000.0, 0.30, 0.7, 300.0, 0.35)}
_KI67 = {
    "Ki67": (2500.0, 0.28, 1.0),
    "CD25": (300.0, 0.35, 1.0),
    "CD127": (800.0, 0.35, 0.5, 200.0, 0.35),
}
_ACTIVATED = {
    "HLA-DR": (2500.0, 0.30, 1.0),
    "CD38": (4000.0, 0.25, 1.0),
    "CD127": (1200.0, 0.35, 0.4, 200.0, 0.35),
}
_CD8 = {"CD8": (8000.0, 0.25, 1.0)}

#: Per cell type, the markers whose expression differs from the clean mode's.
_CONTINUOUS: dict[str, dict[str, Expression]] = {
    "cd4_conv": {
        **_T,
        "CD25": (120.0, 0.35, 1.0),
        "CD127": (2500.0, 0.30, 0.95, 350.0, 0.35),
        "HLA-DR": (1500.0, 0.30, 0.04),
    },
    "treg": {
        **_T,
        "CD4": (5000.0, 0.22, 1.0),
        "CD25": (3500.0, 0.25, 1.0),
        "CD127": (110.0, 0.28, 1.0),
        "HLA-DR": (1800.0, 0.30, 0.3),
    },
    "cd8_ki67neg": {**_CD8, **_RESTING},
    "cd8_ki67pos": {**_CD8, **_RESTING, **_KI67},
    "cd8_act_ki67neg": {**_CD8, **_ACTIVATED},
    "cd8_act_ki67pos": {
        **_CD8,
        **_KI67,
        **_ACTIVATED,
        "CD127": (600.0, 0.35, 0.3, 150.0, 0.35),
    },
    "cd8_hladr_only": {**_CD8, **_RESTING, "HLA-DR": (2000.0, 0.30, 1.0)},
    "cd8_cd38_only": {**_CD8, **_RESTING, "CD38": (3000.0, 0.25, 1.0)},
    "nk": {"CD56": (3000.0, 0.25, 0.9, 20000.0, 0.20), "CD38": (6000.0, 0.25, 0.95)},
    "t_other": {"CD38": (100.0, 0.25, 1.0), "CD127": (2000.0, 0.30, 0.8, 300.0, 0.35)},
}
_LYMPH_SCATTER_SD = (0.12, 0.20)  # natural-log sd of FSC-A and SSC-A of lymphocytes
_CONTINUOUS_DEAD_VIABILITY = (15000.0, 0.30)  # median, log10 sd of the dye in dead cells


@dataclass(frozen=True)
class _ExpressionModel:
    """Channel-major ``(fluorescence channel, cell type)`` tables; log sds in natural log."""

    median: np.ndarray
    log_sd: np.ndarray
    fraction: np.ndarray
    rest_median: np.ndarray
    rest_log_sd: np.ndarray
    scatter: np.ndarray  # (cell type, 4): FSC-A median, log sd, SSC-A median, log sd
    dead_viability: tuple[float, float]


def _expression(cell_type: str, continuous: bool) -> dict[str, Expression]:
    table = dict(_EXPRESSION[cell_type])
    if continuous:
        table.update(_CONTINUOUS.get(cell_type, {}))
    return table


@cache
def _expression_model(panel: str, continuous: bool) -> _ExpressionModel:
    """The panel's expression tables for the drift mode's sampler (cached)."""
    markers = [dict(PANELS[panel])[channel] for channel in _fluorescence_channels(panel)]
    shape = (len(markers), len(CELL_TYPES))
    tables = {name: np.zeros(shape, dtype=np.float32) for name in ("m", "s", "f", "rm", "rs")}
    for t, cell_type in enumerate(CELL_TYPES):
        expression = _expression(cell_type, continuous)
        for j, marker in enumerate(markers):
            if marker in expression:
                median, sd, fraction, *rest = expression[marker]
                rest_median, rest_sd = rest or (0.0, 0.0)
                for name, value in zip(tables, (median, sd, fraction, rest_median, rest_sd)):
                    tables[name][j, t] = value
    ln10 = np.float32(np.log(10.0))
    scatter = np.array([_SCATTER[t] for t in CELL_TYPES], dtype=np.float32)
    if continuous:
        lymphoid = [CELL_TYPES.index(t) for t in (*_LYMPHOID, "tumor_small")]
        scatter[lymphoid, 1], scatter[lymphoid, 3] = _LYMPH_SCATTER_SD
    return _ExpressionModel(
        median=tables["m"],
        log_sd=tables["s"] * ln10,
        fraction=tables["f"],
        rest_median=tables["rm"],
        rest_log_sd=tables["rs"] * ln10,
        scatter=scatter,
        dead_viability=_CONTINUOUS_DEAD_VIABILITY if continuous else _DEAD_VIABILITY,
    )


def _drifted_stain(
    model: _ExpressionModel,
    rng: np.random.Generator,
    blocks: list[tuple[int, int, int]],
    n_events: int,
    spread: np.ndarray,
) -> np.ndarray:
    """Unmixed stain of the type-sorted events, channel-major, before dead cells and background.

    ``spread`` multiplies every population's log-scale sd per channel.
    """
    signal = np.zeros((model.median.shape[0], n_events), dtype=np.float32)
    for t, start, stop in blocks:
        expressed = np.flatnonzero((model.fraction[:, t] > 0) | (model.rest_median[:, t] > 0))
        if expressed.size == 0:
            continue
        size = stop - start
        z = rng.standard_normal((expressed.size, size), dtype=np.float32)
        for row, channel in enumerate(expressed):
            sd = model.log_sd[channel, t] * spread[channel]
            fraction = model.fraction[channel, t]
            if fraction >= 1.0:
                values = model.median[channel, t] * np.exp(sd * z[row])
            else:  # a fraction of the type in one cloud, the rest in another (or negative)
                rest = rng.random(size, dtype=np.float32) >= fraction
                median = np.where(rest, model.rest_median[channel, t], model.median[channel, t])
                rest_sd = model.rest_log_sd[channel, t] * spread[channel]
                values = median * np.exp(np.where(rest, rest_sd, sd) * z[row])
            signal[channel, start:stop] = values
    return signal
