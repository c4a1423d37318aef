"""FlowKit transforms as the engine uses them: applied, inverted at a threshold, known monotone.

Only the transforms' public API is used (``apply``, ``inverse`` and their parameters).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "CHEAP_MONOTONE",
    "GRID_TRANSFORMS",
    "INVERTIBLE",
    "apply_transform",
    "asinh_scale",
    "kind_of",
    "non_decreasing",
    "raw_threshold",
]

# Transforms compared in untransformed space (strictly increasing, exact inverse available).
INVERTIBLE = {"LogicleTransform", "HyperlogTransform"}
# Transforms cheap enough to apply to every event, non-decreasing on their domain.
CHEAP_MONOTONE = {
    "LinearTransform",
    "AsinhTransform",
    "LogTransform",
    "WSPLogTransform",
    "WSPBiexTransform",
}
# Transforms for which polygons can be decided on a grid.
GRID_TRANSFORMS = {
    None,
    "LinearTransform",
    "LogicleTransform",
    "HyperlogTransform",
    "AsinhTransform",
    "WSPBiexTransform",
}

THRESHOLD_BAND = 1e-9  # half-width, on the transformed axis, of the band re-done exactly

# FlowKit transform objects (``flowkit.transforms.*``) have no public common base class: ``Any``.


def kind_of(xform: Any) -> str | None:
    """The class name of a FlowKit transform (``None`` for no transform)."""
    return type(xform).__name__ if xform is not None else None


def apply_transform(xform: Any, raw: np.ndarray) -> np.ndarray:
    """FlowKit's ``apply`` of ``xform`` (``None``: identity) to a 1-D array, as a 1-D float64 array."""
    if xform is None:
        return raw
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = xform.apply(np.ascontiguousarray(raw, dtype=np.float64).reshape(-1, 1))
    return np.asarray(out, dtype=np.float64).reshape(-1)


def raw_threshold(xform: Any, threshold: float) -> tuple[float, float] | None:
    """Untransformed cut of an increasing transform, and the half-width of its guard band."""
    probe = np.array([[threshold - THRESHOLD_BAND], [threshold], [threshold + THRESHOLD_BAND]])
    with np.errstate(all="ignore"):
        lo, x0, hi = (
            float(v) for v in np.asarray(xform.inverse(probe), dtype=np.float64).reshape(-1)
        )
    if not (math.isfinite(lo) and math.isfinite(x0) and math.isfinite(hi)) or not lo <= x0 <= hi:
        return None
    return x0, (hi - lo) + 1e-12 * abs(x0)


def non_decreasing(xform: Any) -> bool:
    """Whether ``xform.apply`` is non-decreasing (decided from its parameters or public behaviour)."""
    kind = type(xform).__name__
    if kind == "LinearTransform":
        return (xform.param_t + xform.param_a) > 0
    if kind == "AsinhTransform":
        return xform.param_m > 0 and xform.param_t > 0 and (xform.param_m + xform.param_a) > 0
    if kind == "LogTransform":
        return xform.param_m > 0 and xform.param_t > 0
    if kind == "WSPLogTransform":
        return xform.decades > 0 and xform.offset > 0
    if kind == "WSPBiexTransform":
        return _biex_non_decreasing(xform)
    return False


def _biex_non_decreasing(xform: Any) -> bool:
    """FlowJo's biex: a lookup table interpolated linearly, increasing if its nodes are.

    The table has one node per output channel (the integers ``0 .. 4096``, FlowJo's channel range),
    at untransformed values that the public ``inverse`` returns exactly at those channels (it
    interpolates the same table the other way round). ``apply`` is non-decreasing exactly when
    those values are strictly increasing. The channel range is read from ``apply`` itself: values
    beyond the table map to its first and last channel.
    """
    big = np.finfo(np.float64).max
    with np.errstate(all="ignore"):
        ends = np.asarray(xform.apply(np.array([[-big], [big]])), dtype=np.float64).reshape(-1)
    first, last = float(ends[0]), float(ends[1])
    if not (math.isfinite(first) and math.isfinite(last) and first < last):
        return False
    channels = np.arange(math.ceil(first), math.floor(last) + 1, dtype=np.float64)
    with np.errstate(all="ignore"):
        nodes = np.asarray(xform.inverse(channels.reshape(-1, 1)), dtype=np.float64).reshape(-1)
    return bool(nodes.size > 1 and np.all(np.diff(nodes) > 0))


def asinh_scale(xform: Any, a: float, b: float) -> float:
    """Scale ``s`` such that ``asinh(x / s)`` spreads the transform's axis about evenly (for grids)."""
    kind = type(xform).__name__
    try:
        if kind in ("LogicleTransform", "HyperlogTransform"):
            scale = xform.param_t * 10.0 ** -(xform.param_m - xform.param_w)
        elif kind == "AsinhTransform":
            scale = xform.param_t / math.sinh(xform.param_m * math.log(10))
        elif kind == "WSPBiexTransform":
            scale = xform.max_value * 10.0**-xform.positive * max(1.0, abs(xform.width)) / 10.0
        else:
            scale = 0.0
    except (AttributeError, OverflowError, ZeroDivisionError):
        scale = 0.0
    if not (math.isfinite(scale) and scale > 0):
        scale = max(abs(a), abs(b), 1.0) / 1000.0
    return float(scale)
