"""GatingML 2.0 documents of exported gates (``_export_tree`` records).

Numbers are written as Python writes a float (the shortest text that reads back as the same
float), so a reader that parses them as doubles gates with exactly the positions the workflow
used. Gate ids are the gates' names where the schema takes them as XML ids and no other gate has
the name; otherwise the name escaped as ``cytotrial._flowkit.internal_name`` escapes it, made
unique with ``_2``, ``_3``. The document is deterministic: the same gates give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._flowkit import internal_name

if TYPE_CHECKING:
    import pandas as pd
    from lxml import etree

    from ._export_tree import XDim, XGate

__all__ = ["gatingml_document", "unique_ids"]

GATING = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATA_TYPE = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
NSMAP = {"gating": GATING, "transforms": TRANSFORMS, "data-type": DATA_TYPE}

_G = f"{{{GATING}}}"
_T = f"{{{TRANSFORMS}}}"
_D = f"{{{DATA_TYPE}}}"

# FlowKit transformation class -> (GatingML element, its parameters: attribute -> FlowKit attribute)
_GML_TRANSFORMS = {
    "LogicleTransform": ("logicle", {"T": "param_t", "W": "param_w", "M": "param_m", "A": "param_a"}),
    "HyperlogTransform": ("hyperlog", {"T": "param_t", "W": "param_w", "M": "param_m", "A": "param_a"}),
    "LinearTransform": ("flin", {"T": "param_t", "A": "param_a"}),
    "LogTransform": ("flog", {"T": "param_t", "M": "param_m"}),
    "AsinhTransform": ("fasinh", {"T": "param_t", "M": "param_m", "A": "param_a"}),
    "RatioTransform": ("fratio", {"A": "param_a", "B": "param_b", "C": "param_c"}),
}  # fmt: skip


def number(value: float) -> str:
    """A float as the shortest text that reads back as the same float (``repr``)."""
    return repr(float(value))


def unique_ids(names: Iterable[tuple[str, str]], *, xml_id: bool = True) -> dict[str, str]:
    """Key -> an id unique in the document, from each ``(key, name)`` (first come keeps the name)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for key, name in names:
        base = internal_name(name, xml_id=xml_id)
        candidate, k = base, 1
        while candidate in taken:
            k += 1
            candidate = f"{base}_{k}"
        ids[key] = candidate
        taken.add(candidate)
    return ids


def _sub(parent: etree._Element, tag: str, attributes: Mapping[str, str] | None = None) -> Any:
    from lxml import etree

    element = etree.SubElement(parent, tag)
    for key, value in (attributes or {}).items():
        element.set(key, value)
    return element


def _transform(
    root: etree._Element, xform_id: str, xform: Any, channels: Mapping[str, str]
) -> None:
    kind = type(xform).__name__
    tag, parameters = _GML_TRANSFORMS[kind]
    holder = _sub(root, f"{_T}transformation", {f"{_T}id": xform_id})
    element = _sub(
        holder, f"{_T}{tag}", {f"{_T}{k}": number(getattr(xform, v)) for k, v in parameters.items()}
    )
    if kind == "RatioTransform":
        for name in xform.dimensions:
            _sub(element, f"{_D}fcs-dimension", {f"{_D}name": channels.get(name, name)})


def _matrix(
    root: etree._Element, matrix_id: str, detectors: Sequence[str], rows: Any, fluorochromes=None
) -> None:
    element = _sub(root, f"{_T}spectrumMatrix", {f"{_T}id": matrix_id})
    for tag, names in (("fluorochromes", fluorochromes or detectors), ("detectors", detectors)):
        holder = _sub(element, f"{_T}{tag}")
        for name in names:
            _sub(holder, f"{_D}fcs-dimension", {f"{_D}name": str(name)})
    for row in rows:
        spectrum = _sub(element, f"{_T}spectrum")
        for value in row:
            _sub(spectrum, f"{_T}coefficient", {f"{_T}value": number(value)})


def _dimension(gate_el: etree._Element, dim: XDim, tag: str, xform_ids: Mapping[str, str]) -> Any:
    attributes = {f"{_G}compensation-ref": dim.compensation}
    if dim.transform is not None:
        attributes[f"{_G}transformation-ref"] = xform_ids[dim.transform]
    if dim.divider is not None:
        attributes[f"{_G}id"] = dim.divider
    else:
        if dim.min is not None:
            attributes[f"{_G}min"] = number(dim.min)
        if dim.max is not None:
            attributes[f"{_G}max"] = number(dim.max)
    element = _sub(gate_el, f"{_G}{tag}", attributes)
    if dim.ratio:
        _sub(element, f"{_D}new-dimension", {f"{_D}transformation-ref": xform_ids[dim.channel]})
    else:
        _sub(element, f"{_D}fcs-dimension", {f"{_D}name": dim.channel})
    for value in dim.values:
        _sub(element, f"{_G}value").text = number(value)
    return element


def _location(low: float | None, high: float | None) -> float:
    """A point inside ``[low, high)`` (either end open) that names the quadrant."""
    if low is not None and high is not None:
        return (low + high) / 2.0
    if low is not None:
        return low + max(1.0, abs(low))
    if high is not None:
        return high - max(1.0, abs(high))
    return 0.0


def _gate(
    root: etree._Element, gate: XGate, ids: Mapping[str, str], xform_ids: Mapping[str, str]
) -> None:
    tag = {
        "rectangle": "RectangleGate",
        "polygon": "PolygonGate",
        "ellipsoid": "EllipsoidGate",
        "quadrant": "QuadrantGate",
        "boolean": "BooleanGate",
    }[gate.kind]
    attributes = {f"{_G}id": ids[gate.key]}
    if gate.parent is not None:
        attributes[f"{_G}parent_id"] = ids[gate.parent]
    element = _sub(root, f"{_G}{tag}", attributes)
    if gate.kind == "boolean":
        operation = _sub(element, f"{_G}{gate.bool_type}")
        for ref, complement in gate.refs:
            reference = {f"{_G}ref": ids[ref]}
            if complement:
                reference[f"{_G}use-as-complement"] = "true"
            _sub(operation, f"{_G}gateReference", reference)
        return
    dim_tag = "divider" if gate.kind == "quadrant" else "dimension"
    for dim in gate.dims:
        _dimension(element, dim, dim_tag, xform_ids)
    if gate.kind == "polygon":
        for vertex in gate.vertices:
            holder = _sub(element, f"{_G}vertex")
            for value in vertex:
                _sub(holder, f"{_G}coordinate", {f"{_D}value": number(value)})
    elif gate.kind == "ellipsoid":
        mean = _sub(element, f"{_G}mean")
        for value in gate.mean:
            _sub(mean, f"{_G}coordinate", {f"{_D}value": number(value)})
        covariance = _sub(element, f"{_G}covarianceMatrix")
        for row in gate.covariance:
            row_el = _sub(covariance, f"{_G}row")
            for value in row:
                _sub(row_el, f"{_G}entry", {f"{_D}value": number(value)})
        _sub(element, f"{_G}distanceSquare", {f"{_D}value": number(gate.distance_square)})
    elif gate.kind == "quadrant":
        for quadrant in gate.quadrants:
            holder = _sub(element, f"{_G}Quadrant", {f"{_G}id": ids[quadrant.key]})
            for divider, (low, high) in quadrant.ranges.items():
                _sub(
                    holder,
                    f"{_G}position",
                    {f"{_G}divider_ref": divider, f"{_G}location": number(_location(low, high))},
                )


def left_out(gates: Sequence[XGate], transforms: Mapping[str, Any]) -> dict[str, str]:
    """Key -> why GatingML 2.0 cannot hold the gate (a gate left out leaves its subtree)."""
    dropped: dict[str, str] = {}
    for gate in gates:
        reason = None
        used = [d.transform for d in gate.dims if d.transform is not None]
        used += [d.channel for d in gate.dims if d.ratio]
        kinds = [type(transforms[t]).__name__ for t in used]
        if gate.parent in dropped:
            reason = "its parent is left out"
        elif any(ref in dropped for ref, _ in gate.refs):
            reason = "a population it combines is left out"
        elif gate.complement:
            reason = "GatingML 2.0 has no gate of the events outside a shape"
        elif any(kind not in _GML_TRANSFORMS for kind in kinds):
            bad = next(kind for kind in kinds if kind not in _GML_TRANSFORMS)
            reason = f"GatingML 2.0 has no form of FlowJo's {bad} scale"
        if reason is not None:
            for key in (gate.key, *(q.key for q in gate.quadrants)):
                dropped[key] = reason
    return dropped


def gatingml_document(
    gates: Sequence[XGate],
    *,
    transforms: Mapping[str, Any],
    matrices: Mapping[str, Any],
    channels: Mapping[str, str],
    extra_matrix: tuple[str, pd.DataFrame] | None = None,
    comment: str = "",
) -> tuple[etree._ElementTree, dict[str, str]]:
    """A GatingML 2.0 document of the gates (``_export_tree`` records, parents first).

    A gate GatingML 2.0 cannot hold (FlowJo's biex or log scale, a gate of the events outside a
    shape) is left out with its subtree.

    Parameters
    ----------
    gates
        The records.
    transforms, matrices
        The strategy's transformations and spillover matrices by id (FlowKit objects); those the
        gates use are written.
    channels
        Strategy channel -> the file's channel (a matrix's detectors, a ratio's channels).
    extra_matrix
        ``(id, matrix)`` of a spillover matrix the gates name that the strategy does not hold
        (``gating.compensation``'s matrix file), rows and columns named by detector.
    comment
        Written as an XML comment at the top.

    Returns
    -------
    tuple
        The document, and the gates left out (name -> why).
    """
    from lxml import etree

    dropped = left_out(gates, transforms)
    kept = [gate for gate in gates if gate.key not in dropped]
    root = etree.Element(f"{_G}Gating-ML", nsmap=NSMAP)
    if comment:
        root.addprevious(etree.Comment(f" {comment} "))
    used_transforms = [d.transform for g in kept for d in g.dims if d.transform is not None]
    used_transforms += [d.channel for g in kept for d in g.dims if d.ratio]
    xform_ids = unique_ids((t, t) for t in dict.fromkeys(used_transforms))
    for xform_id, new_id in xform_ids.items():
        _transform(root, new_id, transforms[xform_id], channels)
    used_matrices = dict.fromkeys(
        d.compensation for g in kept for d in g.dims
        if d.compensation not in ("uncompensated", "FCS")
    )  # fmt: skip
    for matrix_id in used_matrices:
        if extra_matrix is not None and matrix_id == extra_matrix[0]:
            spill = extra_matrix[1]
            _matrix(root, matrix_id, [str(c) for c in spill.columns], spill.to_numpy())
            continue
        matrix = matrices[matrix_id]
        detectors = [channels.get(d, d) for d in matrix.detectors]
        fluorochromes = [
            channels.get(f, f) if f else d for f, d in zip(matrix.fluorochromes, detectors)
        ]
        _matrix(root, matrix_id, detectors, matrix.matrix, fluorochromes)
    ids = unique_ids(_id_pairs(kept))
    for gate in kept:
        _gate(root, gate, ids, xform_ids)
    names = {gate.name: dropped[gate.key] for gate in gates if gate.key in dropped}
    return etree.ElementTree(root), names


def _id_pairs(gates: Sequence[XGate]) -> list[tuple[str, str]]:
    """``(key, name)`` of every gate, quadrant gate and quadrant: what needs a document id."""
    pairs = []
    for gate in gates:
        pairs.append((gate.key, gate.name))
        if gate.kind == "quadrant":
            pairs += [(q.key, q.name) for q in gate.quadrants]
    return pairs
