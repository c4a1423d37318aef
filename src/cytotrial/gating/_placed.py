"""One sample's placed gates as FlowKit's gating strategy: for FlowKit itself, or to export them.

The engine places adaptive gates per sample (:attr:`Engine.placements`: gate path -> the shape's
keyword arguments). :func:`placed_gating_strategy` writes them into a copy of the strategy's FlowKit
``GatingStrategy`` through the gates' public attributes (a range's ``min``/``max``, a polygon's
``vertices``, an ellipsoid's ``coordinates`` and ``covariance_matrix``), so FlowKit's ``Session``
gates the sample exactly as the engine did, and the gates can be exported as drawn for it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StrategyError

if TYPE_CHECKING:
    from flowkit import GatingStrategy

    from ..io import Strategy

__all__ = ["placed_gating_strategy"]


def placed_gating_strategy(
    strategy: Strategy, placements: Mapping[str, Mapping[str, Any]]
) -> GatingStrategy:
    """A copy of the strategy's FlowKit ``GatingStrategy`` with one sample's placed gates.

    Parameters
    ----------
    strategy
        The loaded strategy.
    placements
        Gate path -> placed geometry, as :attr:`Engine.placements` holds it after a run.

    Raises
    ------
    StrategyError
        A placed quadrant divider (FlowKit fixes its quadrants' ranges when it reads the file).
    """
    original = strategy.gating_strategy
    placed = copy.deepcopy(original)
    ids = {
        id(original.get_gate(name, gate_path=ancestors)): (name, ancestors)
        for name, ancestors in original.get_gate_ids()
    }
    for gate in strategy.gates:
        geometry = placements.get(gate.path)
        if not geometry:
            continue
        if "dividers" in geometry:
            raise StrategyError(
                f"{strategy.path.name}: gate {gate.path!r}: a placed quadrant divider cannot be "
                "written into FlowKit's strategy"
            )
        name, ancestors = ids[id(gate.fk_gate)]
        target = placed.get_gate(name, gate_path=ancestors)
        for dimension, (low, high) in zip(target.dimensions, geometry.get("bounds") or []):
            dimension.min, dimension.max = low, high
        if geometry.get("vertices") is not None:
            target.vertices = np.asarray(geometry["vertices"], dtype=np.float64).tolist()
        if geometry.get("coordinates") is not None:
            target.coordinates = np.asarray(geometry["coordinates"], dtype=np.float64).tolist()
            target.covariance_matrix = np.asarray(geometry["covariance"], dtype=np.float64)
    return placed
