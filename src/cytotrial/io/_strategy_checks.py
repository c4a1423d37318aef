"""What a gating strategy refers to, checked when it is loaded: one line naming every dangling reference.

FlowKit stops at the first unknown ``parent_id`` or Boolean ``gateReference`` with the bare id as
its message, and a gate that refers to a transformation, spillover matrix or ratio the file does not
define would exclude every sample at gating. Both are said here, once, naming each gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StrategyError

if TYPE_CHECKING:
    import flowkit as fk
    from lxml import etree

    from ._strategy import Gate

__all__ = ["check_gate_references", "check_gatingml_references"]

_GATE_TAGS = {"RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate"}


def check_gatingml_references(path: Path, document: etree._ElementTree) -> None:
    """StrategyError naming every ``parent_id`` and Boolean ``gateReference`` that is no gate.

    FlowKit would stop at the first with the bare id as its message.
    """
    from lxml import etree

    def attribute(element: etree._Element, name: str) -> str | None:
        for key, value in element.attrib.items():
            if etree.QName(key).localname == name:
                return value
        return None

    elements = [e for e in document.getroot().iter() if isinstance(e.tag, str)]
    ids = {
        attribute(e, "id")
        for e in elements
        if etree.QName(e).localname in _GATE_TAGS | {"Quadrant"}
    } - {None}
    problems = []
    for element in elements:
        tag = etree.QName(element).localname
        if tag in _GATE_TAGS:
            parent = attribute(element, "parent_id")
            if parent is not None and parent not in ids:
                problems.append(
                    f"gate {attribute(element, 'id')!r} has parent_id {parent!r}, which is no gate of the file"
                )
        elif tag == "gateReference":
            ref = attribute(element, "ref")
            if ref not in ids:
                owner = next(
                    (
                        a
                        for a in element.iterancestors()
                        if etree.QName(a).localname == "BooleanGate"
                    ),
                    None,
                )
                name = attribute(owner, "id") if owner is not None else "?"
                problems.append(
                    f"Boolean gate {name!r} refers to {ref!r}, which is no gate of the file"
                )
    if problems:
        raise StrategyError(f"{path}: not a valid GatingML 2.0 file: {'; '.join(problems)}")


def _dimension_problems(gate: Gate, transforms: dict, matrices: dict) -> list[str]:
    """What one gate's dimensions refer to that the file does not define (as gating reads them)."""
    problems = []
    comps = []
    for dim in getattr(gate.fk_gate, "dimensions", None) or []:
        ref = getattr(dim, "compensation_ref", None)
        if ref not in (None, "uncompensated", "FCS") and ref not in matrices:
            problems.append(f"compensation {ref!r}, which the file does not define")
        if ref not in (None, "uncompensated") and ref not in comps:
            comps.append(ref)
        xform = getattr(dim, "transformation_ref", None)
        if xform is not None and xform not in transforms:
            problems.append(f"transformation {xform!r}, which the file does not define")
        elif xform is not None and type(transforms[xform]).__name__ == "RatioTransform":
            problems.append(f"ratio {xform!r} as a transformation")
        if type(dim).__name__ == "RatioDimension":
            ratio = transforms.get(dim.ratio_ref)
            if ratio is None or type(ratio).__name__ != "RatioTransform":
                problems.append(f"ratio {dim.ratio_ref!r}, which the file does not define")
    if len(comps) > 1:
        problems.append(f"compensations {', '.join(comps)} at once (a gate uses one)")
    return problems


def check_gate_references(
    path: Path, gating_strategy: fk.GatingStrategy, gates: list[Gate]
) -> None:
    """StrategyError naming every transformation, matrix or ratio a gate refers to and the file lacks.

    The gating would exclude every sample for it; this says it once, when the strategy is loaded,
    each missing thing with the gates that use it.
    """
    transforms = dict(getattr(gating_strategy, "transformations", {}) or {})
    matrices = dict(getattr(gating_strategy, "comp_matrices", {}) or {})
    users: dict[str, list[str]] = {}
    for gate in gates:
        for problem in _dimension_problems(gate, transforms, matrices):
            if gate.path not in users.setdefault(problem, []):
                users[problem].append(gate.path)
    if users:
        said = "; ".join(
            f"gate{'s' if len(paths) > 1 else ''} {', '.join(map(repr, paths))} use{'' if len(paths) > 1 else 's'} {problem}"
            for problem, paths in users.items()
        )
        raise StrategyError(f"{path}: {said}")
