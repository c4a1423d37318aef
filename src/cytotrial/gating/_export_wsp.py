"""FlowJo 10 workspaces of exported gates (``_export_tree`` records), one sample node per file.

FlowJo keeps gates in untransformed data units and each sample's transformations per parameter
(``<Transformations>``); a compensated parameter is named with the prefix of the sample's spillover
matrix (``Comp-``), which is stored in the sample (``<transforms:spilloverMatrix>``). A gate drawn
in transformed units is written at the untransformed value that the same transformation maps back
onto it exactly where a float does (the neighbours of the inverse are tried), so FlowJo and FlowKit
read the position the workflow gated with. Quadrant gates are written as FlowJo writes them: one
rectangle per quadrant. Boolean gates become FlowJo's ``AndNode``/``OrNode``/``NotNode``, whose
``Dependent`` paths name populations from the top of the tree.

The group node (``All Samples``) holds the template: the strategy as drawn. A sample's gate that
equals the template's is owned by the group; one placed for the sample (adaptive, acquisition QC)
is a sample-specific gate (``owningGroup=""``), as FlowJo marks a gate edited on one sample.

The data file of each sample is a ``DataSet`` URI relative to the workspace's folder
(percent-encoded, ``/``-separated; FlowJo keeps the relative path to its files), so that the
workspace and the files can move together.

A gate the workspace cannot hold exactly is left out with its subtree, and :func:`left_out` says
why: an ellipse (FlowJo and FlowKit read one back only as a polygon), a ratio dimension, a
transformation FlowJo lacks (GatingML's hyperlog and log), a channel the gates read on two scales
(FlowJo keeps one transformation per parameter), a Boolean gate combining complements beyond
FlowJo's AND/OR/NOT nodes, and a gate reading uncompensated a detector of the sample's matrix
(FlowKit compensates every detector of a sample's matrix, whatever the parameter's name).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._export_gml import DATA_TYPE, GATING, NSMAP, TRANSFORMS, number

if TYPE_CHECKING:
    from lxml import etree

    from ._export_tree import XDim, XGate

__all__ = ["COMP_PREFIX", "WspSample", "workspace_document", "write_workspace"]

COMP_PREFIX = "Comp-"
_G = f"{{{GATING}}}"
_T = f"{{{TRANSFORMS}}}"
_D = f"{{{DATA_TYPE}}}"
_NEIGHBOURS = 64  # floats either side of an inverse tried for one the transformation maps exactly

# FlowKit transformation class -> (FlowJo element, attributes: name -> FlowKit attribute or constant)
_WSP_TRANSFORMS = {
    "LinearTransform": ("linear", {"minRange": "param_a", "maxRange": "param_t"}),
    "LogicleTransform": ("logicle", {"length": 256, "T": "param_t", "W": "param_w", "M": "param_m", "A": "param_a"}),
    "AsinhTransform": ("fasinh", {"length": 256, "maxRange": "param_t", "T": "param_t", "M": "param_m", "A": "param_a", "W": 0}),
    "WSPBiexTransform": ("biex", {"length": 256, "maxRange": "max_value", "neg": "negative", "width": "width", "pos": "positive"}),
    "WSPLogTransform": ("log", {"offset": "offset", "decades": "decades"}),
}  # fmt: skip


@dataclass
class WspSample:
    """One sample node: its gates, data file and spillover matrix.

    ``matrix``: ``(name, detectors, rows)`` of the spillover matrix its compensated gates use
    (``None``: none, its gates read uncompensated values); ``matrix_ref``: the compensation its
    gates name for it (``FCS``, ``compensation`` or a matrix id of the strategy);
    ``transforms``: the transformations its gates name (``None``: the template's; a sample of a
    FlowJo workspace has its own).
    """

    sample_id: str
    uri: str
    gates: list[XGate]
    matrix: tuple[str, list[str], np.ndarray] | None = None
    matrix_ref: str | None = None
    transforms: Mapping[str, Any] | None = None

    @property
    def comp_refs(self) -> set[str]:
        """The compensations whose parameters carry the ``Comp-`` prefix in this sample."""
        return {self.matrix_ref} if self.matrix is not None and self.matrix_ref else set()


def data_uri(fcs: str | Path, workspace: str | Path) -> str:
    """The ``DataSet`` URI of a data file: its path relative to the workspace's folder."""
    try:
        relative = os.path.relpath(os.path.abspath(fcs), os.path.abspath(Path(workspace).parent))
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(fcs).resolve().as_uri()
    return urllib.parse.quote(Path(relative).as_posix())


def _transform_element(parent: etree._Element, parameter: str, xform: Any) -> None:
    from lxml import etree

    tag, attributes = _WSP_TRANSFORMS[type(xform).__name__]
    element = etree.SubElement(parent, f"{_T}{tag}")
    for name, source in attributes.items():
        value = getattr(xform, source) if isinstance(source, str) else source
        element.set(f"{_T}{name}", number(value) if isinstance(source, str) else str(value))
    if tag == "linear":
        element.set("gain", "1")
    etree.SubElement(element, f"{_D}parameter").set(f"{_D}name", parameter)


def raw_value(xform: Any, value: float) -> float:
    """The untransformed value FlowJo stores for a transformed one: mapped back onto it exactly.

    The inverse, or the nearest of its float neighbours that the transformation (as FlowKit
    applies it reading a workspace) maps onto ``value`` exactly; else the inverse.
    """
    with np.errstate(all="ignore"):
        guess = float(np.asarray(xform.inverse(np.array([[value]])), dtype=float).reshape(-1)[0])
        if not np.isfinite(guess):
            return guess
        steps = np.arange(-_NEIGHBOURS, _NEIGHBOURS + 1)
        candidates = guess + steps * np.spacing(abs(guess) or np.finfo(float).tiny)
        mapped = np.asarray(xform.apply(candidates.reshape(-1, 1)), dtype=float).reshape(-1)
    exact = np.flatnonzero(mapped == value)
    if exact.size:
        return float(candidates[exact[np.argmin(np.abs(steps[exact]))]])
    return guess


class _Writer:
    """Writes gates of one sample (or of the template) into a FlowJo gate tree."""

    def __init__(
        self,
        gates: Sequence[XGate],
        transforms: Mapping[str, Any],
        comp_refs: set[str] | None,
        prefix: str,
    ) -> None:
        self.gates = list(gates)
        self.transforms = transforms
        self.comp_refs = comp_refs  # None: every compensated parameter (the template)
        self.prefix = prefix
        self.paths = _paths(self.gates)
        self.next_id = 0

    def parameter(self, dim: XDim) -> str:
        return f"{COMP_PREFIX}{dim.channel}" if _prefixed(dim, self.comp_refs) else dim.channel

    def raw(self, dim: XDim, value: float) -> float:
        if dim.transform is None:
            return float(value)
        return raw_value(self.transforms[dim.transform], value)

    def gate_id(self) -> str:
        self.next_id += 1
        return f"ID{self.prefix}{self.next_id}"

    def dimension(self, parent: Any, dim: XDim, low: float | None, high: float | None) -> None:
        from lxml import etree

        element = etree.SubElement(parent, f"{_G}dimension")
        if low is not None:
            element.set(f"{_G}min", number(self.raw(dim, low)))
        if high is not None:
            element.set(f"{_G}max", number(self.raw(dim, high)))
        fcs = etree.SubElement(element, f"{_D}fcs-dimension")
        fcs.set(f"{_D}name", self.parameter(dim))

    def shape(self, gate: XGate, ranges: Sequence[tuple[float | None, float | None]] | None) -> Any:
        """The ``<Gate>`` element of a population (``ranges``: a quadrant's, per divider)."""
        from lxml import etree

        holder = etree.Element("Gate")
        identifier = self.gate_id()
        holder.set(f"{_G}id", identifier)
        tag = "PolygonGate" if gate.kind == "polygon" else "RectangleGate"
        element = etree.SubElement(holder, f"{_G}{tag}")
        element.set("eventsInside", "0" if gate.complement else "1")
        if gate.kind == "polygon":
            element.set("quadID", "-1")
            element.set("gateResolution", "256")
        element.set(f"{_G}id", identifier)
        if gate.kind == "polygon":
            for dim in gate.dims:
                self.dimension(element, dim, None, None)
            for vertex in gate.vertices:
                vertex_el = etree.SubElement(element, f"{_G}vertex")
                for dim, value in zip(gate.dims, vertex):
                    etree.SubElement(vertex_el, f"{_G}coordinate").set(
                        f"{_D}value", number(self.raw(dim, value))
                    )
            return holder
        pairs = ranges if ranges is not None else [(d.min, d.max) for d in gate.dims]
        for dim, (low, high) in zip(gate.dims, pairs):
            if low is not None or high is not None:  # a quadrant open on this divider
                self.dimension(element, dim, low, high)
        return holder


def _prefixed(dim: XDim, comp_refs: set[str] | None) -> bool:
    """Whether a dimension is a compensated (``Comp-``) parameter of the sample."""
    if comp_refs is None:
        return dim.compensation != "uncompensated"
    return dim.compensation in comp_refs


def _boolean_form(gate: XGate) -> tuple[str, list[str]] | None:
    """FlowJo's node type and dependents of a Boolean gate (``None``: no FlowJo form)."""
    negated = [key for key, complement in gate.refs if complement]
    positive = [key for key, complement in gate.refs if not complement]
    if not negated:
        tag = {"and": "AndNode", "or": "OrNode", "not": "NotNode"}[gate.bool_type]
        return tag, positive
    if gate.bool_type == "and" and len(negated) == 1 and positive in ([], [gate.parent]):
        return "NotNode", negated  # "p and not q" under p: FlowJo's NOT within the parent
    return None


def _paths(gates: Sequence[XGate]) -> dict[str, str]:
    """Population key -> its FlowJo path (names from the top joined by ``/``)."""
    paths: dict[str, str] = {}

    def below(parent: str | None, name: str) -> str:
        return f"{paths[parent]}/{name}" if parent is not None and parent in paths else name

    for gate in gates:
        if gate.kind == "quadrant":
            for quadrant in gate.quadrants:
                paths[quadrant.key] = below(gate.parent, quadrant.name)
        else:
            paths[gate.key] = below(gate.parent, gate.name)
    return paths


def _scales(gates: Sequence[XGate], transforms: Mapping[str, Any]) -> tuple[dict, dict]:
    """Channel -> its one transformation id (``None``: raw), and channel -> why it has none."""
    by_channel: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    for gate in gates:
        for dim in gate.dims:
            if dim.ratio:
                continue
            known = by_channel.setdefault(dim.channel, dim.transform)
            if known != dim.transform and (
                known is None
                or dim.transform is None
                or not _same(transforms[known], transforms[dim.transform])
            ):
                problems[dim.channel] = (
                    f"the gates read {dim.channel} on two scales and a FlowJo workspace holds one "
                    "transformation per parameter"
                )
            xform = transforms.get(dim.transform) if dim.transform is not None else None
            if xform is not None and type(xform).__name__ not in _WSP_TRANSFORMS:
                problems[dim.channel] = (
                    f"the {type(xform).__name__} of {dim.channel} has no form in a FlowJo "
                    "workspace (FlowJo: linear, log, logicle, biex, arcsinh)"
                )
    return by_channel, problems


def left_out(
    gates: Sequence[XGate],
    transforms: Mapping[str, Any],
    comp_refs: set[str] | None = None,
    detectors: Sequence[str] = (),
) -> dict[str, str]:
    """Gate name -> why a FlowJo workspace cannot hold it (a gate left out leaves its subtree).

    ``comp_refs``: the compensations of the sample's matrix (``None``: any, the template);
    ``detectors``: its detectors. FlowKit reads a detector of the sample's matrix compensated
    whatever its name, so a gate reading one uncompensated is left out.
    """
    return _left_out(gates, transforms, comp_refs, detectors)[1]


def _left_out(
    gates: Sequence[XGate],
    transforms: Mapping[str, Any],
    comp_refs: set[str] | None = None,
    detectors: Sequence[str] = (),
) -> tuple[dict, dict]:
    """Keys (gates, quadrants) and names of the gates left out, each with why."""
    _, channel_problems = _scales(gates, transforms)
    for gate in gates:
        for dim in gate.dims:
            if dim.channel in detectors and not _prefixed(dim, comp_refs):
                channel_problems.setdefault(
                    dim.channel,
                    f"FlowKit reads {dim.channel} compensated with the sample's spillover matrix, "
                    "which this gate does not apply",
                )
    dropped: dict[str, str] = {}  # key -> reason
    names: dict[str, str] = {}
    for gate in gates:
        keys = [gate.key, *(q.key for q in gate.quadrants)]
        reason = None
        if gate.parent in dropped:
            reason = "its parent is left out"
        elif gate.kind == "boolean":
            form = _boolean_form(gate)
            if form is None:
                reason = "FlowJo's AND, OR and NOT nodes cannot combine these complements"
            elif any(ref in dropped for ref, _ in gate.refs):
                reason = "a population it combines is left out"
        elif gate.kind == "ellipsoid":
            reason = "FlowJo and FlowKit read an ellipse back only as an approximate polygon"
        elif any(d.ratio for d in gate.dims):
            reason = "a ratio dimension has no form in a FlowJo workspace"
        else:
            reason = next((channel_problems[d.channel] for d in gate.dims
                           if d.channel in channel_problems), None)  # fmt: skip
        if reason is not None:
            for key in keys:
                dropped[key] = reason
            names[gate.name] = reason
    return dropped, names


def _dropped_keys(
    gates: Sequence[XGate],
    transforms: Mapping[str, Any],
    comp_refs: set[str] | None = None,
    detectors: Sequence[str] = (),
) -> set[str]:
    return set(_left_out(gates, transforms, comp_refs, detectors)[0])


def _children(gates: Sequence[XGate]) -> dict[str | None, list[XGate]]:
    """Parent key (``None``: the top) -> its child gates; a quadrant's children under its key."""
    children: dict[str | None, list[XGate]] = {}
    for gate in gates:
        children.setdefault(gate.parent, []).append(gate)
    return children


def _write_tree(
    writer: _Writer,
    holder: Any,
    parent: str | None,
    children: Mapping[str | None, list[XGate]],
    owner: Any,
    dropped: set[str],
) -> None:
    """Populations under ``parent`` into ``holder``'s ``<Subpopulations>``."""
    from lxml import etree

    kids = [gate for gate in children.get(parent, []) if gate.key not in dropped]
    if not kids:
        return
    subpopulations = etree.SubElement(holder, "Subpopulations")
    for gate in kids:
        units: list[tuple[str, str, Any]] = []  # (key, name, element)
        if gate.kind == "boolean":
            tag, dependents = _boolean_form(gate)
            element = etree.Element(tag)
            deps = etree.SubElement(element, "Dependents")
            for key in dependents:
                etree.SubElement(deps, "Dependent").set("name", writer.paths[key])
            units.append((gate.key, gate.name, element))
        elif gate.kind == "quadrant":
            for quadrant in gate.quadrants:
                element = etree.Element("Population")
                ranges = [quadrant.ranges.get(d.divider, (None, None)) for d in gate.dims]
                element.append(writer.shape(gate, ranges))
                units.append((quadrant.key, quadrant.name, element))
        else:
            element = etree.Element("Population")
            element.append(writer.shape(gate, None))
            units.append((gate.key, gate.name, element))
        for key, name, element in units:
            element.set("name", name)
            element.set("annotation", "")
            element.set("owningGroup", owner(gate))
            element.set("count", "-1")
            subpopulations.append(element)
            _write_tree(writer, element, key, children, owner, dropped)


def _matrix_element(sample_el: Any, matrix: tuple[str, list[str], np.ndarray]) -> None:
    from lxml import etree

    name, detectors, rows = matrix
    element = etree.SubElement(sample_el, f"{_T}spilloverMatrix")
    for key, value in (
        ("spectral", "0"), ("prefix", COMP_PREFIX), ("name", name), ("version", "FlowJo-10.6.2"),
        ("id", name), ("suffix", ""),
    ):  # fmt: skip
        element.set(key, value)
    parameters = etree.SubElement(element, f"{_D}parameters")
    for detector in detectors:
        parameter = etree.SubElement(parameters, f"{_D}parameter")
        parameter.set(f"{_D}name", detector)
        parameter.set("userProvidedCompInfix", f"{COMP_PREFIX}{detector}")
    for detector, row in zip(detectors, np.asarray(rows, dtype=float)):
        spillover = etree.SubElement(element, f"{_T}spillover")
        spillover.set(f"{_D}parameter", detector)
        spillover.set("userProvidedCompInfix", f"{COMP_PREFIX}{detector}")
        for other, value in zip(detectors, row):
            coefficient = etree.SubElement(spillover, f"{_T}coefficient")
            coefficient.set(f"{_D}parameter", other)
            coefficient.set(f"{_T}value", number(value))


def _transformations(
    sample_el: Any, gates: Sequence[XGate], transforms: Mapping[str, Any], comp_refs: set[str]
) -> None:
    """One transformation per parameter (FlowJo's rule), for both its raw and ``Comp-`` names."""
    from lxml import etree

    by_channel, problems = _scales(gates, transforms)
    comp_channels = {d.channel for g in gates for d in g.dims if _prefixed(d, comp_refs)}
    holder = etree.SubElement(sample_el, "Transformations")
    for channel, xform_id in by_channel.items():
        if xform_id is None or channel in problems:
            continue
        _transform_element(holder, channel, transforms[xform_id])
        if channel in comp_channels:
            _transform_element(holder, f"{COMP_PREFIX}{channel}", transforms[xform_id])


def _same(a: Any, b: Any) -> bool:
    return (
        type(a) is type(b)
        and vars(a).keys() == vars(b).keys()
        and all(not isinstance(v, (int, float)) or v == getattr(b, k) for k, v in vars(a).items())
    )


def workspace_document(
    samples: Sequence[WspSample],
    template: Sequence[XGate],
    *,
    transforms: Mapping[str, Any],
    group: str = "All Samples",
    comment: str = "",
) -> tuple[etree._ElementTree, dict[str, dict[str, str]]]:
    """A FlowJo 10 workspace: the group's template and one sample node per sample.

    A gate the workspace cannot hold (:func:`left_out`) is left out with its subtree.

    Returns
    -------
    tuple
        The document, and per sample the gates left out (name -> why).
    """
    root, sample_list, template_shapes = _skeleton(template, transforms, group, comment, samples)
    dropped_names: dict[str, dict[str, str]] = {}
    for index, sample in enumerate(samples, start=1):
        _, dropped_names[sample.sample_id] = _sample_element(
            sample_list, sample, index, transforms, group, template_shapes
        )
    return root.getroottree(), dropped_names


def write_workspace(
    path: str | Path,
    samples: Sequence[WspSample],
    template: Sequence[XGate],
    *,
    transforms: Mapping[str, Any],
    group: str = "All Samples",
    comment: str = "",
) -> dict[str, dict[str, str]]:
    """Write :func:`workspace_document`'s workspace to ``path``, one sample node at a time.

    The file is the one the whole document pretty-printed would be, but only one sample's node
    is held in memory at once (a trial's workspace holds thousands of them: built whole, its tree
    takes several times the file's size).

    Returns
    -------
    dict
        Per sample the gates left out (name -> why).
    """
    from lxml import etree

    root, sample_list, template_shapes = _skeleton(template, transforms, group, comment, samples)
    marker = etree.Comment(_MARKER)
    sample_list.append(marker)
    text = etree.tostring(
        root.getroottree(), encoding="UTF-8", xml_declaration=True, pretty_print=True
    ).decode("utf-8")
    head, tail = text.split(f"<!--{_MARKER}-->\n", 1)
    sample_list.remove(marker)
    # a node serialized alone declares the namespaces the workspace element declares: left out
    declared = etree.tostring(etree.Element("x", nsmap=NSMAP), encoding="unicode")[2:-2]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dropped_names: dict[str, dict[str, str]] = {}
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(head.rstrip(" "))
        for index, sample in enumerate(samples, start=1):
            element, dropped_names[sample.sample_id] = _sample_element(
                sample_list, sample, index, transforms, group, template_shapes
            )
            etree.indent(element, space="  ", level=2)
            node = etree.tostring(element, encoding="unicode")
            start = f"<Sample{declared}"
            if node.startswith(start):
                node = "<Sample" + node[len(start) :]
            out.write(f"    {node.rstrip()}\n")
            sample_list.remove(element)  # written: its memory goes
        out.write(tail)
    return dropped_names


_MARKER = "cytotrial: the samples' nodes"


def _skeleton(
    template: Sequence[XGate],
    transforms: Mapping[str, Any],
    group: str,
    comment: str,
    samples: Sequence[WspSample],
) -> tuple[etree._Element, etree._Element, dict[str, bytes]]:
    """The workspace without sample nodes: the root, its ``SampleList``, the template's shapes."""
    from lxml import etree

    root = etree.Element("Workspace", nsmap=NSMAP)
    if comment:
        root.addprevious(etree.Comment(f" {comment} "))
    for key, value in (("version", "20.0"), ("flowJoVersion", "10.6.2"), ("curGroup", group)):
        root.set(key, value)
    etree.SubElement(root, "Matrices")
    group_node = etree.SubElement(etree.SubElement(root, "Groups"), "GroupNode")
    for key, value in (("name", group), ("annotation", ""), ("owningGroup", group)):
        group_node.set(key, value)
    refs = etree.SubElement(etree.SubElement(group_node, "Group", name=group), "SampleRefs")
    for index in range(1, len(samples) + 1):
        etree.SubElement(refs, "SampleRef", sampleID=str(index))
    template_dropped = _dropped_keys(template, transforms)
    template_writer = _Writer(template, transforms, None, "0_")
    _write_tree(
        template_writer, group_node, None, _children(template), lambda g: group, template_dropped
    )
    sample_list = etree.SubElement(root, "SampleList")
    return root, sample_list, _shapes_of(template, transforms, template_dropped)


def _sample_element(
    sample_list: etree._Element,
    sample: WspSample,
    index: int,
    transforms: Mapping[str, Any],
    group: str,
    template_shapes: Mapping[str, bytes],
) -> tuple[etree._Element, dict[str, str]]:
    """A ``<Sample>`` added to ``sample_list`` (its file, matrix, transforms, gates); what it leaves out."""
    from lxml import etree

    sample_number = str(index)
    sample_el = etree.SubElement(sample_list, "Sample")
    etree.SubElement(sample_el, "DataSet", uri=sample.uri, sampleID=sample_number)
    if sample.matrix is not None:
        _matrix_element(sample_el, sample.matrix)
    detectors = sample.matrix[1] if sample.matrix is not None else ()
    own = sample.transforms if sample.transforms is not None else transforms
    dropped = _dropped_keys(sample.gates, own, sample.comp_refs, detectors)
    _transformations(
        sample_el, [g for g in sample.gates if g.key not in dropped], own, sample.comp_refs
    )
    etree.SubElement(sample_el, "Keywords")
    node = etree.SubElement(sample_el, "SampleNode")
    for key, value in (
        ("name", sample.sample_id), ("annotation", ""), ("owningGroup", ""),
        ("sampleID", sample_number),
    ):  # fmt: skip
        node.set(key, value)
    writer = _Writer(sample.gates, own, sample.comp_refs, f"{sample_number}_")

    def owner(gate: XGate) -> str:
        return group if template_shapes.get(gate.key) == _shape_text(writer, gate) else ""

    _write_tree(writer, node, None, _children(sample.gates), owner, dropped)
    return sample_el, left_out(sample.gates, own, sample.comp_refs, detectors)


def _shape_text(writer: _Writer, gate: XGate) -> bytes:
    """What tells a sample's gate from the group's: its element without ids, its parent."""
    from lxml import etree

    shape = _Writer(writer.gates, writer.transforms, writer.comp_refs, "")
    head = repr((gate.parent, gate.name)).encode()
    if gate.kind == "boolean":
        return head + repr((gate.bool_type, gate.refs)).encode()
    if gate.kind == "quadrant":
        parts = [
            shape.shape(gate, [q.ranges.get(d.divider, (None, None)) for d in gate.dims])
            for q in gate.quadrants
        ]
        return head + b"".join(etree.tostring(p) for p in parts)
    return head + etree.tostring(shape.shape(gate, None))


def _shapes_of(
    gates: Sequence[XGate], transforms: Mapping[str, Any], dropped: set[str]
) -> dict[str, bytes]:
    writer = _Writer(gates, transforms, None, "")
    return {g.key: _shape_text(writer, g) for g in gates if g.key not in dropped}
