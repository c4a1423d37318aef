"""Adaptive gates: which gate boundaries follow each sample's data, declared in the config, checked.

A config declares, per panel, gates whose boundary is placed from each sample's own events
(``strategies.<panel>.adaptive``, see the schema). :func:`adaptive_plan` resolves the declarations
against the loaded strategy (GatingML or FlowJo alike) into :class:`Boundary` records the engine
places per sample (``_placement``); every problem is found before any file is read, one line
each naming the config key: a gate the strategy lacks, a dimension the gate does not have, a
method the gate's shape cannot take, a window off the axis or not holding the template's position.

The template's positions are the defaults and the bounds: a 1-D threshold is searched inside its
``window`` (which holds the template's threshold), a 2-D gate moves at most ``max_shift`` from its
``anchor``. Where a sample gives no position, the template's is kept and the sample flagged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, StrategyError
from ._transforms import apply_transform

if TYPE_CHECKING:
    from ..io import Gate, Strategy

__all__ = [
    "ADAPTIVE_METHODS",
    "AdaptivePlan",
    "Boundary",
    "adaptive_plan",
    "adaptive_problems",
    "axis_range",
    "check_adaptive",
    "flag_name",
]

#: The methods of ``strategies.<panel>.adaptive.<gate>.method``.
ADAPTIVE_METHODS = ("valley", "tail", "quantile", "follow")
_ONE_D = ("valley", "tail", "quantile")
_SHIFT_FRACTION = 0.25  # follow's default max_shift: this fraction of the gate's extent


@functools.cache
def _boundary_defaults() -> dict[str, Any]:
    """The schema's defaults of a boundary declaration (the schema is their one source)."""
    from ..config import load_schema

    spec = load_schema("config")["properties"]["strategies"]["additionalProperties"]
    boundary = spec["properties"]["adaptive"]["additionalProperties"]["items"]
    return {k: v["default"] for k, v in boundary["properties"].items() if "default" in v}


@dataclass(frozen=True)
class Boundary:
    """One adaptive boundary of one gate, resolved against the strategy.

    Attributes
    ----------
    key
        The config key that declares it (for messages): ``strategies.<panel>.adaptive.<gate>``.
    gate_path, gate_name
        The gate (:attr:`Gate.path`, :attr:`Gate.name`).
    method
        One of :data:`ADAPTIVE_METHODS`.
    dims
        Indices of the gate's dimensions it moves (one; two for ``follow``).
    dimension
        Names of those dimensions as the config gives them (else the gate's own).
    bound
        ``"min"``/``"max"`` (a range's side), ``"divider"`` (a quadrant divider) or ``"peak"``.
    template
        The template's position: the threshold (1-D) or the anchor (``follow``), gate units.
    window
        ``(lo, hi)`` where a 1-D threshold is searched and allowed (``None`` for ``follow``).
    options
        The rest of the declaration with the schema's defaults (``reference``, ``sds``, ...).
    """

    key: str
    gate_path: str
    gate_name: str
    method: str
    dims: tuple[int, ...]
    dimension: tuple[str, ...]
    bound: str
    template: tuple[float, ...]
    window: tuple[float, float] | None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def min_events(self) -> int:
        """Fewer parent events than this keep the template's position."""
        return int(self.options["min_events"])


@dataclass
class AdaptivePlan:
    """Every adaptive boundary of one panel's strategy, by gate path (strategy order)."""

    panel: str
    boundaries: dict[str, list[Boundary]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.boundaries)

    def of(self, gate_path: str) -> list[Boundary]:
        """The boundaries of a gate (empty: a fixed gate)."""
        return self.boundaries.get(gate_path, [])

    def flag_names(self) -> dict[str, str]:
        """Gate path -> the gate's name as flags write it (commas and spaces made safe)."""
        return {path: flag_name(b[0].gate_name) for path, b in self.boundaries.items()}


def flag_name(name: str) -> str:
    """A gate name fit for the comma-separated ``qc_flags`` (no commas, single spaces)."""
    return " ".join(str(name).replace(",", " ").split())


# ------------------------------------------------------------------------------ resolving


def _matches(declared: str, dimension: str, panels: Mapping[str, Sequence[str]]) -> bool:
    """Whether a declared dimension (channel or marker) names the gate's dimension."""
    names = {declared, *(panels.get(declared) or [])}
    bare = dimension.removeprefix("Comp-")
    return dimension in names or bare in names or f"Comp-{bare}" in names


def axis_range(xform: Any) -> tuple[float, float]:
    """The range of a transformed axis: the images of ``-T`` and ``T`` (``T``: its top).

    ``-inf`` / ``inf`` where the transform does not bound it, or for no transform.
    """
    if xform is None:
        return -math.inf, math.inf
    top = None
    for attribute in ("param_t", "max_value"):
        value = getattr(xform, attribute, None)
        if isinstance(value, (int, float)) and value > 0:
            top = float(value)
            break
    if top is None:
        return -math.inf, math.inf
    low, high = (float(v) for v in apply_transform(xform, np.array([-top, top])))
    return (low if math.isfinite(low) else -math.inf), (high if math.isfinite(high) else math.inf)


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


class _Resolver:
    """Resolves one panel's declarations, collecting one line per problem."""

    def __init__(
        self, panel: str, strategy: Strategy, panels: Mapping[str, Sequence[str]] | None
    ) -> None:
        self.panel = panel
        self.strategy = strategy
        self.panels = dict(panels or {})
        self.transforms = dict(getattr(strategy.gating_strategy, "transformations", {}) or {})
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"config {key}: {message}")

    def gate(self, key: str, name: str) -> Gate | None:
        try:
            return self.strategy.resolve(name)
        except StrategyError as error:
            self.fail(key, str(error))
            return None

    def xform(self, gate: Gate, index: int) -> Any:
        ref = getattr(gate.fk_gate.dimensions[index], "transformation_ref", None)
        return self.transforms.get(ref) if ref else None

    def dimension_index(self, key: str, gate: Gate, declared: str | None) -> int | None:
        names = list(gate.dimensions)
        if declared is None:
            if len(names) == 1:
                return 0
            self.fail(
                f"{key}.dimension",
                f"gate {gate.name!r} has dimensions {', '.join(names)}; name the one that moves",
            )
            return None
        found = [i for i, name in enumerate(names) if _matches(declared, name, self.panels)]
        if not found:
            self.fail(
                f"{key}.dimension",
                f"gate {gate.name!r} has no dimension {declared!r} (its dimensions: "
                f"{', '.join(names) or 'none'})",
            )
            return None
        return found[0]

    def one_d(self, key: str, gate: Gate, spec: Mapping[str, Any]) -> Boundary | None:
        """A threshold of a range (rectangle) or a quadrant divider."""
        if gate.kind not in ("rectangle", "quadrant"):
            self.fail(
                f"{key}.method",
                f"{spec['method']} moves a threshold of a range or quadrant gate; gate "
                f"{gate.name!r} is a {gate.kind} (use follow for 2-D gates)",
            )
            return None
        index = self.dimension_index(key, gate, spec.get("dimension"))
        if index is None:
            return None
        found = self.template_threshold(key, gate, index, spec.get("bound"))
        if found is None:
            return None
        bound, template = found
        window = _pair(spec.get("window"))
        if window is None:
            self.fail(f"{key}.window", f"{spec['method']} needs a search window [lo, hi]")
            return None
        if not self.window_ok(f"{key}.window", gate, index, window, template):
            return None
        reference = _pair(spec.get("reference_range"))
        if reference is not None and not self.window_ok(
            f"{key}.reference_range", gate, index, reference, None
        ):
            return None
        return self.boundary(key, gate, spec, (index,), bound, (template,), window)

    def template_threshold(
        self, key: str, gate: Gate, index: int, bound: str | None
    ) -> tuple[str, float] | None:
        fk_dim = gate.fk_gate.dimensions[index]
        if gate.kind == "quadrant":
            values = list(getattr(fk_dim, "values", []) or [])
            if len(values) != 1:
                self.fail(
                    key, f"quadrant divider {fk_dim.id!r} has {len(values)} values; one moves"
                )
                return None
            return "divider", float(values[0])
        sides = {s: getattr(fk_dim, s, None) for s in ("min", "max")}
        present = [s for s, v in sides.items() if v is not None]
        if bound is not None and bound not in present:
            self.fail(
                f"{key}.bound", f"gate {gate.name!r} has no {bound} on {gate.dimensions[index]}"
            )
            return None
        if bound is None and len(present) != 1:
            self.fail(
                f"{key}.bound",
                f"gate {gate.name!r} has both min and max on {gate.dimensions[index]}; "
                "say which moves (min or max)",
            )
            return None
        side = bound or present[0]
        return side, float(sides[side])

    def window_ok(
        self,
        key: str,
        gate: Gate,
        index: int,
        window: tuple[float, float],
        template: float | None,
    ) -> bool:
        lo, hi = window
        axis_lo, axis_hi = axis_range(self.xform(gate, index))
        slack = 1e-9 * max(
            1.0,
            abs(axis_lo) if math.isfinite(axis_lo) else 1.0,
            abs(axis_hi) if math.isfinite(axis_hi) else 1.0,
        )
        if not lo < hi:
            self.fail(key, f"[{lo:g}, {hi:g}] must have lo < hi")
        elif lo < axis_lo - slack or hi > axis_hi + slack:
            self.fail(
                key,
                f"[{lo:g}, {hi:g}] lies outside the axis of {gate.dimensions[index]} "
                f"([{axis_lo:.4g}, {axis_hi:.4g}] in the gate's transformed units)",
            )
        elif template is not None and not lo <= template <= hi:
            self.fail(key, f"[{lo:g}, {hi:g}] does not hold the template's position {template:.4g}")
        else:
            return True
        return False

    def follow(self, key: str, gate: Gate, spec: Mapping[str, Any]) -> Boundary | None:
        """A 2-D gate moved with its population's peak."""
        if gate.kind not in ("polygon", "ellipsoid", "rectangle") or len(gate.dimensions) != 2:
            self.fail(
                f"{key}.method",
                f"follow moves a 2-D polygon, ellipse or rectangle; gate {gate.name!r} is a "
                f"{len(gate.dimensions)}-D {gate.kind}",
            )
            return None
        if spec.get("dimension") is not None or spec.get("window") is not None:
            self.fail(
                key,
                "follow moves both dimensions: give anchor / max_shift, not dimension or window",
            )
            return None
        low, high = _extent(gate)
        anchor = _pair(spec.get("anchor"))
        if anchor is None:
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                self.fail(
                    f"{key}.anchor", f"gate {gate.name!r} is open-ended; give its anchor [x, y]"
                )
                return None
            anchor = _centre(gate)
        shift = _pair(spec.get("max_shift"))
        if shift is None:
            extent = np.where(np.isfinite(high - low), high - low, np.abs(anchor))
            shift = tuple(float(_SHIFT_FRACTION * e) for e in extent)
        if spec.get("move", "shift") == "scale" and 0.0 in anchor:
            self.fail(f"{key}.anchor", "move: scale needs an anchor away from 0 on both axes")
            return None
        options = {**spec, "max_shift": shift}
        return self.boundary(key, gate, options, (0, 1), "peak", anchor, None)

    def boundary(
        self,
        key: str,
        gate: Gate,
        spec: Mapping[str, Any],
        dims: tuple[int, ...],
        bound: str,
        template: tuple[float, ...],
        window: tuple[float, float] | None,
    ) -> Boundary:
        declared = spec.get("dimension")
        names = tuple(declared if declared and len(dims) == 1 else gate.dimensions[i] for i in dims)
        options = {**_boundary_defaults(), **{k: v for k, v in spec.items() if v is not None}}
        return Boundary(
            key=key,
            gate_path=gate.path,
            gate_name=gate.name,
            method=str(spec["method"]),
            dims=dims,
            dimension=names,
            bound=bound,
            template=tuple(float(t) for t in template),
            window=window,
            options=options,
        )


def _extent(gate: Gate) -> tuple[np.ndarray, np.ndarray]:
    """The gate's lowest and highest coordinate per dimension (inf where a range is open)."""
    fk = gate.fk_gate
    if gate.kind == "polygon":
        vertices = np.asarray(fk.vertices, dtype=np.float64)
        return vertices.min(axis=0), vertices.max(axis=0)
    if gate.kind == "ellipsoid":
        centre = np.asarray(fk.coordinates, dtype=np.float64)
        half = np.sqrt(np.diag(np.asarray(fk.covariance_matrix)) * float(fk.distance_square))
        return centre - half, centre + half
    low = np.array([d.min if d.min is not None else -np.inf for d in fk.dimensions], dtype=float)
    high = np.array([d.max if d.max is not None else np.inf for d in fk.dimensions], dtype=float)
    return low, high


def _centre(gate: Gate) -> tuple[float, float]:
    """The centre of a 2-D gate: a polygon's area centroid, an ellipse's centre, a box's middle."""
    if gate.kind == "polygon":
        v = np.asarray(gate.fk_gate.vertices, dtype=np.float64)
        x, y = v[:, 0], v[:, 1]
        xn, yn = np.roll(x, -1), np.roll(y, -1)
        cross = x * yn - xn * y
        area = cross.sum() / 2.0
        if area == 0:
            return float(x.mean()), float(y.mean())
        return float(((x + xn) * cross).sum() / (6 * area)), float(
            ((y + yn) * cross).sum() / (6 * area)
        )
    low, high = _extent(gate)
    middle = (low + high) / 2.0
    return float(middle[0]), float(middle[1])


def adaptive_problems(
    panel: str,
    strategy: Strategy,
    declarations: Mapping[str, Any] | None,
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> tuple[AdaptivePlan, list[str]]:
    """Resolve a panel's ``adaptive:`` declarations: the plan and every problem, one line each.

    Parameters
    ----------
    panel
        The panel (``strategies.<panel>``), for the keys of messages.
    strategy
        The panel's loaded strategy.
    declarations
        ``strategies.<panel>.adaptive`` as the config gives it (schema-checked).
    panels
        The config's ``panels:`` (marker -> channel names), so a dimension may be named by marker.
    """
    resolver = _Resolver(panel, strategy, panels)
    plan = AdaptivePlan(panel)
    for name, value in (declarations or {}).items():
        base = f"strategies.{panel}.adaptive.{name}"
        gate = resolver.gate(base, str(name))
        if gate is None:
            continue
        items = value if isinstance(value, list) else [value]
        for k, spec in enumerate(items):
            key = f"{base}.{k}" if isinstance(value, list) else base
            method = spec.get("method")
            if method not in ADAPTIVE_METHODS:
                resolver.fail(
                    f"{key}.method",
                    f"unknown method {method!r}; use one of {', '.join(ADAPTIVE_METHODS)}",
                )
                continue
            boundary = (
                resolver.follow(key, gate, spec)
                if method == "follow"
                else resolver.one_d(key, gate, spec)
            )
            if boundary is None:
                continue
            known = plan.boundaries.setdefault(gate.path, [])
            if any(set(b.dims) & set(boundary.dims) and b.bound == boundary.bound for b in known):
                resolver.fail(key, f"gate {gate.name!r}: that boundary is declared twice")
                continue
            known.append(boundary)
    plan.boundaries = _share_quadrants(strategy, plan.boundaries)
    return plan, resolver.problems


def _share_quadrants(strategy: Strategy, boundaries: Mapping[str, list[Boundary]]) -> dict:
    """The boundaries in strategy order; a quadrant's divider moves in all its gate's quadrants."""
    by_quadrant_gate = {
        id(g.fk_gate): boundaries[g.path]
        for g in strategy.gates
        if g.kind == "quadrant" and g.path in boundaries
    }
    shared = {}
    for gate in strategy.gates:
        if gate.path in boundaries:
            shared[gate.path] = boundaries[gate.path]
        elif gate.kind == "quadrant" and id(gate.fk_gate) in by_quadrant_gate:
            shared[gate.path] = by_quadrant_gate[id(gate.fk_gate)]
    return shared


def adaptive_plan(
    panel: str,
    strategy: Strategy,
    declarations: Mapping[str, Any] | None,
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> AdaptivePlan:
    """A panel's adaptive boundaries (:func:`adaptive_problems`), or a ConfigError listing the problems.

    Raises
    ------
    ConfigError
        One line per problem, each naming its key ``config strategies.<panel>.adaptive...``.
    """
    plan, problems = adaptive_problems(panel, strategy, declarations, panels=panels)
    if problems:
        raise ConfigError("\n".join(problems))
    return plan


def check_adaptive(config: Mapping[str, Any], *, base: Path | None = None) -> list[str]:
    """Every problem of a config's adaptive declarations, one line each (empty when fine).

    Loads each strategy that declares adaptive gates (FlowKit is imported; a strategy that cannot
    be loaded is reported once, naming its key). For a check of the whole config before any work.

    Parameters
    ----------
    config
        The config (schema-checked; ``strategies`` and ``panels`` are read).
    base
        Folder relative strategy paths are relative to (the working directory by default).
    """
    from ..io import load_strategy

    problems: list[str] = []
    for panel, spec in (config.get("strategies") or {}).items():
        if not spec.get("adaptive"):
            continue
        path = Path(spec["strategy"])
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        try:
            strategy = load_strategy(
                path, sample_group=spec.get("sample_group"), sample_id=spec.get("sample_id")
            )
        except StrategyError as error:
            problems.append(f"config strategies.{panel}.strategy: {error}")
            continue
        problems += adaptive_problems(
            panel, strategy, spec["adaptive"], panels=config.get("panels")
        )[1]
    return problems
