r"""Gating strategies: GatingML 2.0 files and FlowJo 10 workspaces as one gate tree.

A :class:`Strategy` wraps FlowKit's ``GatingStrategy`` (FlowKit parses both formats) and lists its
populations as :class:`Gate` records with stable, human-readable paths: gate names joined by ``/``
from the top of the tree, without FlowKit's ``root``. A path tells apart gates that share a name under
different parents (FlowJo quadrants ``Q1`` ... ``Q4`` under several parents, for instance).

A quadrant gate is not itself a population: each of its quadrants is, with the path
``<quadrant gate path>/<quadrant id>`` and, as parent, the population the quadrant gate was drawn on.

Gate names are the file's own, as the user sees them in FlowJo: ``CD4+``, ``CD3+ CD8+``,
``Q1: CD4- , CD8+``. Where FlowKit cannot take a name as it is (a GatingML id that is not an XML id;
a FlowJo name with ``/``), FlowKit works with an internal name (see ``cytotrial._flowkit``) and each
:class:`Gate` still carries the original name; :meth:`Strategy.flowkit_path` translates back.

A ``/`` inside a gate name is written ``\/`` in a path, and a backslash of a name ``\\``
(:func:`join_gate_path`, :func:`split_gate_path`): ``Lymphocytes/CD45RA+\/CCR7-`` is the gate
``CD45RA+/CCR7-`` under ``Lymphocytes``. :meth:`Strategy.resolve` takes such paths, and a gate name
with ``/`` written as it is where no path reads the same.

FlowJo's "Export GatingML" files (GatingML 2.0 whose dimensions lack the ``compensation-ref`` the
standard requires) read as FlowJo means them: a dimension named ``Comp-<channel>`` is ``<channel>``
compensated with the FCS file's own spillover (``compensation-ref="FCS"``: uncompensated where the
file has none), any other dimension is uncompensated. A ``compensation-ref`` that is present is kept.

A FlowJo workspace keeps a gate tree per sample: read with ``sample_group``, each data file is
gated with its own sample's tree (:attr:`Strategy.sample_trees`; see ``_workspace``).

Importing this module is cheap; :func:`load_strategy` imports FlowKit (about 1-4 s, once per process).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from .._flowkit import (
    PreparedStrategy,
    UnreadableStrategy,
    gatingml_schema,
    import_flowkit,
    parse_strategy,
    prepare_gatingml,
    prepare_workspace,
)
from ..errors import StrategyError
from ._files import file_sha256
from ._strategy_checks import check_gate_references, check_gatingml_references

if TYPE_CHECKING:
    import flowkit as fk
    from lxml import etree

    from ._workspace import SampleTrees

    FlowKitGate: TypeAlias = (
        fk.gates.RectangleGate
        | fk.gates.PolygonGate
        | fk.gates.EllipsoidGate
        | fk.gates.QuadrantGate
        | fk.gates.BooleanGate
    )
    FlowKitDimension: TypeAlias = fk.Dimension | fk.RatioDimension | fk.QuadrantDivider

__all__ = ["Gate", "Strategy", "join_gate_path", "load_strategy", "split_gate_path"]


@dataclass(frozen=True)
class Gate:
    """One population of a gating strategy.

    Attributes
    ----------
    name
        The gate's own name as the file writes it (GatingML gate or quadrant id, FlowJo population
        name), even where FlowKit works with an internal one.
    path
        Gate names from the top of the tree to this gate, joined by ``/`` (no ``root``; a ``/`` or
        backslash inside a name escaped, see :func:`join_gate_path`).
    parent_path
        Path of the population this gate is applied to; ``None`` for a top-level gate.
    dimensions
        Dimension names the gate reads, in the gate's order (for a ratio dimension, the id of its
        ratio transformation; for a quadrant, the dividers' dimensions; empty for a Boolean gate).
    fk_gate
        The FlowKit gate object (for a quadrant: the whole ``QuadrantGate``).
    kind
        ``"rectangle"``, ``"polygon"``, ``"ellipsoid"``, ``"quadrant"`` or ``"boolean"``.
    quadrant
        The quadrant id within ``fk_gate`` (FlowKit's, possibly internal) for a quadrant, else
        ``None``.
    references
        For a Boolean gate: ``(gate path, use complement)`` of each referenced gate.
    """

    name: str
    path: str
    parent_path: str | None
    dimensions: tuple[str, ...]
    fk_gate: FlowKitGate = field(compare=False, repr=False)
    kind: str = ""
    quadrant: str | None = None
    references: tuple[tuple[str, bool], ...] = ()


@dataclass
class Strategy:
    """A loaded gating strategy.

    Attributes
    ----------
    path
        The GatingML (``.xml``) or FlowJo workspace (``.wsp``) file.
    kind
        ``"gatingml"`` or ``"flowjo"``.
    sha256
        SHA-256 of the file's bytes (provenance).
    gating_strategy
        FlowKit's ``GatingStrategy`` (compensation matrices, transformations, gate tree).
    gates
        Every population, each after its parent and after the gates a Boolean gate refers to.
    sample_id
        For a FlowJo workspace: the sample whose gate tree was taken.
    flowkit_names
        FlowKit's internal gate name -> the file's own name, for each name FlowKit could not take
        as it is (empty for most strategies).
    sample_trees
        A FlowJo workspace read with ``sample_group``: each data file's own sample's gate tree
        (:meth:`SampleTrees.strategy_for`); this strategy is then the group's first sample's tree,
        the panel's template. ``None``: this one tree gates every file.
    """

    path: Path
    kind: str
    sha256: str
    gating_strategy: fk.GatingStrategy = field(repr=False)
    gates: list[Gate] = field(default_factory=list)
    sample_id: str | None = None
    flowkit_names: dict[str, str] = field(default_factory=dict, repr=False)
    sample_trees: SampleTrees | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_path = {gate.path: gate for gate in self.gates}

    def __iter__(self) -> Iterator[Gate]:
        return iter(self.gates)

    def __len__(self) -> int:
        return len(self.gates)

    @property
    def paths(self) -> list[str]:
        """Every gate path, in :attr:`gates` order."""
        return [gate.path for gate in self.gates]

    def dimensions(self) -> list[str]:
        """Channel names the strategy reads, each once, in order of first use.

        A ratio dimension contributes the two channels of its ratio; a fluorochrome that a named
        spillover matrix of the strategy maps to a detector contributes that detector; the detectors
        of every named matrix a gate uses are included (compensation reads them all).
        """
        matrices = getattr(self.gating_strategy, "comp_matrices", {}) or {}
        transforms = getattr(self.gating_strategy, "transformations", {}) or {}
        names: list[str] = []

        def add(name: str) -> None:
            if name and name not in names:
                names.append(name)

        used_matrices: list[str] = []
        for gate in self.gates:
            for dim in _fk_dimensions(gate):
                ref = getattr(dim, "compensation_ref", None)
                if ref in matrices and ref not in used_matrices:
                    used_matrices.append(ref)
                if type(dim).__name__ == "RatioDimension":
                    ratio = transforms.get(dim.ratio_ref)
                    for channel in getattr(ratio, "dimensions", []) or []:
                        add(channel)
                    continue
                name = _dimension_name(dim)
                matrix = matrices.get(ref)
                if matrix is not None:
                    fluorochromes = list(getattr(matrix, "fluorochromes", []) or [])
                    detectors = list(getattr(matrix, "detectors", []) or [])
                    if (
                        name not in detectors
                        and name in fluorochromes
                        and len(fluorochromes) == len(detectors)
                    ):
                        name = detectors[fluorochromes.index(name)]
                add(name)
        for ref in used_matrices:
            for detector in getattr(matrices[ref], "detectors", []) or []:
                add(detector)
        return names

    def resolve(self, name_or_path: str) -> Gate:
        r"""The gate with this full path, or the only gate with this name.

        A path may start with ``root/`` or ``/``; a ``/`` inside a gate name is written ``\/``
        (``"Lymphocytes/CD45RA+\/CCR7-"``). A name is matched as the file writes it (``"CD4+"``,
        ``"Q1: CD4- , CD8+"``, ``"CD45RA+/CCR7-"``).

        Raises
        ------
        StrategyError
            When no gate has this path or name, or several gates share the name.
        """
        key = _strip_path(str(name_or_path))
        if key.startswith("root/"):
            key = key[len("root/") :]
        if key in self._by_path:
            return self._by_path[key]
        names = split_gate_path(key)
        canonical = join_gate_path(names)
        if canonical in self._by_path:
            return self._by_path[canonical]
        wanted = {key, names[0]} if len(names) == 1 else {key}
        matches = [gate for gate in self.gates if gate.name in wanted]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise StrategyError(
                f"{self.path.name}: gate name {key!r} is ambiguous; use one of the paths "
                f"{', '.join(repr(g.path) for g in matches)}"
            )
        close = difflib.get_close_matches(key, [g.name for g in self.gates] + self.paths, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise StrategyError(
            f"{self.path.name}: no gate named {key!r}; {hint}available gate paths: "
            f"{', '.join(repr(p) for p in self.paths) or '(none)'}"
        )

    def flowkit_path(self, flowkit_names: Sequence[str]) -> str:
        """The :attr:`Gate.path` of the population FlowKit names by these gate names.

        Parameters
        ----------
        flowkit_names
            FlowKit's gate names from the top of its tree to the population (``root`` first or
            not; a quadrant: its quadrant gate, then the quadrant id), e.g. a row of FlowKit's
            results report.
        """
        names = list(flowkit_names)
        if names and names[0] == "root":
            names = names[1:]
        return join_gate_path(self.flowkit_names.get(name, name) for name in names)

    def children(self, path: str | None) -> list[Gate]:
        """Gates applied directly to the population ``path`` (``None``: top-level gates)."""
        return [gate for gate in self.gates if gate.parent_path == path]


def join_gate_path(names: Iterable[str]) -> str:
    r"""Gate names joined by ``/`` into a path, each ``\`` and ``/`` of a name escaped by ``\``."""
    return "/".join(str(name).replace("\\", "\\\\").replace("/", "\\/") for name in names)


def split_gate_path(path: str) -> list[str]:
    r"""The gate names of a path, ``\/`` and ``\\`` read as ``/`` and ``\`` of a name.

    A backslash before any other character is kept as it is; :func:`join_gate_path` inverts it.
    """
    names: list[str] = []
    name: list[str] = []
    chars = iter(path)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            if following in ("/", "\\"):
                name.append(following)
                continue
            name.append(char)
            char = following
            if not char:
                break
        if char == "/":
            names.append("".join(name))
            name = []
        else:
            name.append(char)
    names.append("".join(name))
    return names


def _strip_path(key: str) -> str:
    """``key`` without surrounding space, leading ``/`` and trailing unescaped ``/``."""
    key = key.strip().lstrip("/")
    while key.endswith("/") and (len(key) - len(key[:-1].rstrip("\\")) - 1) % 2 == 0:
        key = key[:-1]
    return key


def _dimension_name(dim: FlowKitDimension) -> str:
    if type(dim).__name__ == "RatioDimension":
        return str(dim.ratio_ref)
    if type(dim).__name__ == "QuadrantDivider":
        return str(dim.dimension_ref)
    return str(dim.id)


def _fk_dimensions(gate: Gate) -> list[FlowKitDimension]:
    return list(getattr(gate.fk_gate, "dimensions", None) or [])


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _read_document(path: Path) -> tuple[str, etree._ElementTree]:
    """``"gatingml"`` or ``"flowjo"`` from the XML root element, and the parsed document.

    Raises
    ------
    StrategyError
        Not XML, or XML of another kind.
    """
    from lxml import etree

    try:
        document = etree.parse(str(path))
    except (etree.XMLSyntaxError, OSError, ValueError) as error:
        raise StrategyError(
            f"{path}: not a readable XML file ({_one_line(error)}); give a GatingML 2.0 file or a FlowJo 10 workspace"
        ) from None
    root = document.getroot()
    tag = etree.QName(root).localname
    if tag == "Workspace" or "flowJoVersion" in root.attrib:
        return "flowjo", document
    if tag == "Gating-ML":
        return "gatingml", document
    raise StrategyError(
        f"{path}: XML root element <{tag}> is neither GatingML 2.0 (<Gating-ML>) nor a FlowJo workspace (<Workspace>)"
    )


def _check_gatingml_schema(path: Path, prepared: PreparedStrategy) -> None:
    """StrategyError with the first schema violation (line and reason) of a GatingML 2.0 file."""
    schema = gatingml_schema()
    if schema is None:  # FlowKit moved its schema: FlowKit's own (terser) check still applies
        return
    if schema.validate(prepared.document):
        return
    error = schema.error_log.last_error
    errors = list(schema.error_log)
    if errors:
        error = errors[0]
    where = f"line {error.line}: " if error is not None else ""
    reason = (
        _as_written(Exception(error.message), prepared)
        if error is not None
        else "schema validation failed"
    )
    raise StrategyError(f"{path}: not a valid GatingML 2.0 file ({where}{reason})")


def _prepared(path: Path, kind: str, document: etree._ElementTree) -> PreparedStrategy:
    """The document as FlowKit can read it (``cytotrial._flowkit``); StrategyError on a name clash."""
    prepare = prepare_gatingml if kind == "gatingml" else prepare_workspace
    try:
        return prepare(path, document)
    except ValueError as error:  # an internal gate name that another gate of the file has
        raise StrategyError(f"{path}: {_one_line(error)}") from None


def _as_written(error: BaseException, prepared: PreparedStrategy) -> str:
    """FlowKit's message in one line, with the file's gate names for FlowKit's internal ones."""
    text = _one_line(error)
    for internal in sorted(prepared.names, key=len, reverse=True):
        text = text.replace(internal, prepared.names[internal])
    return text


def _gatingml_gating_strategy(path: Path, prepared: PreparedStrategy) -> fk.GatingStrategy:
    fk = import_flowkit()

    _check_gatingml_schema(path, prepared)
    try:
        return parse_strategy(fk.parse_gating_xml, prepared.source)
    except UnreadableStrategy as error:
        raise StrategyError(
            f"{path}: not a valid GatingML 2.0 file: {_as_written(error.cause, prepared)}"
        ) from None


class _Names:
    """FlowKit's gate names -> the file's names, paths (``root`` dropped, names escaped)."""

    def __init__(self, originals: dict[str, str]) -> None:
        self.originals = originals

    def name(self, name: str) -> str:
        return self.originals.get(str(name), str(name))

    def path(self, names: Sequence[str]) -> str | None:
        """The path of FlowKit's names from ``root``; ``None`` for ``root`` alone."""
        return join_gate_path(self.name(n) for n in names[1:]) if len(names) > 1 else None


def _gates_of(
    gating_strategy: fk.GatingStrategy, originals: dict[str, str] | None = None
) -> list[Gate]:
    """Gate records from FlowKit's gate tree: tree order, then Boolean references first.

    FlowKit's gate ids (name, ancestor names from ``root``) come in tree pre-order. A quadrant gate
    is not itself a population: its quadrants, the nodes under it, are. ``originals`` maps FlowKit's
    internal gate names to the file's own.
    """
    names = _Names(originals or {})
    records: list[Gate] = []
    quadrant_gates: dict[tuple[str, ...], fk.gates.QuadrantGate] = {}  # node path -> gate
    for name, ancestors in gating_strategy.get_gate_ids():
        node, parent_node = (*ancestors, name), tuple(ancestors)
        if parent_node in quadrant_gates:
            records.append(_quadrant_record(name, ancestors, quadrant_gates[parent_node], names))
            continue
        gate = gating_strategy.get_gate(name, gate_path=parent_node)
        if type(gate).__name__ == "QuadrantGate":
            quadrant_gates[node] = gate
            continue
        records.append(_gate_record(name, ancestors, gate, names))
    return _dependency_order(records)


def _quadrant_record(
    name: str, ancestors: tuple[str, ...], quad_gate: fk.gates.QuadrantGate, names: _Names
) -> Gate:
    """A quadrant: its parent is the population the quadrant gate (``ancestors[-1]``) was drawn on."""
    return Gate(
        name=names.name(name),
        path=names.path((*ancestors, name)),
        parent_path=names.path(ancestors[:-1]),
        dimensions=tuple(_dimension_name(d) for d in quad_gate.dimensions),
        fk_gate=quad_gate,
        kind="quadrant",
        quadrant=str(name),
    )


def _gate_record(name: str, ancestors: tuple[str, ...], gate: FlowKitGate, names: _Names) -> Gate:
    path = names.path((*ancestors, name))
    parent_path = names.path(ancestors)
    gate_type = type(gate).__name__
    if gate_type == "BooleanGate":
        refs = []
        for ref in gate.gate_refs:
            ref_names = ["root", *(p for p in ref["path"] if p != "root"), ref["ref"]]
            refs.append((names.path(ref_names), bool(ref.get("complement", False))))
        return Gate(
            name=names.name(name),
            path=path,
            parent_path=parent_path,
            dimensions=(),
            fk_gate=gate,
            kind="boolean",
            references=tuple(refs),
        )
    kind = {
        "RectangleGate": "rectangle",
        "PolygonGate": "polygon",
        "EllipsoidGate": "ellipsoid",
    }.get(gate_type, gate_type)
    return Gate(
        name=names.name(name),
        path=path,
        parent_path=parent_path,
        dimensions=tuple(_dimension_name(d) for d in gate.dimensions),
        fk_gate=gate,
        kind=kind,
    )


def _dependency_order(records: list[Gate]) -> list[Gate]:
    """Tree order, moved only where a Boolean gate refers to a gate that comes later."""
    by_path = {g.path: g for g in records}
    done: set[str] = set()
    ordered: list[Gate] = []
    visiting: set[str] = set()

    def visit(gate: Gate) -> None:
        if gate.path in done:
            return
        if gate.path in visiting:
            raise StrategyError(f"gate {gate.path!r} depends on itself through Boolean references")
        visiting.add(gate.path)
        deps = [gate.parent_path] + [ref for ref, _ in gate.references]
        for dep in deps:
            if dep is not None and dep in by_path:
                visit(by_path[dep])
        visiting.discard(gate.path)
        done.add(gate.path)
        ordered.append(gate)

    for gate in records:
        visit(gate)
    return ordered


def load_strategy(
    path: str | Path, *, sample_group: str | None = None, sample_id: str | None = None
) -> Strategy:
    """Load a GatingML 2.0 file or a FlowJo 10 workspace as a :class:`Strategy`.

    Parameters
    ----------
    path
        ``.xml`` (GatingML 2.0) or ``.wsp`` (FlowJo 10); the format is read from the XML itself.
    sample_group
        FlowJo only: gate each data file with the tree of its own sample of this group
        (:attr:`Strategy.sample_trees`; the returned tree, the group's first sample's, is the
        panel's template). Neither key: the samples of ``All Samples`` must share one tree.
    sample_id
        FlowJo only: gate every data file with the tree of this sample (its name in the
        workspace); overrides ``sample_group``.

    Raises
    ------
    StrategyError
        One line naming the file: missing, not XML, not GatingML/FlowJo, invalid, unknown sample or group.
    """
    path = Path(path)
    if not path.is_file():
        raise StrategyError(f"{path}: gating strategy file not found")
    kind, document = _read_document(path)
    if kind == "flowjo":
        from ._workspace import load_workspace

        return load_workspace(path, document, sample_group=sample_group, sample_id=sample_id)
    if sample_group is not None or sample_id is not None:
        raise StrategyError(
            f"{path}: sample_group/sample_id apply to FlowJo workspaces only, not to GatingML files"
        )
    check_gatingml_references(path, document)
    prepared = _prepared(path, kind, document)
    gating_strategy = _gatingml_gating_strategy(path, prepared)
    try:
        gates = _gates_of(gating_strategy, prepared.names)
    except StrategyError as error:
        raise StrategyError(f"{path}: {error}") from None
    if not gates:
        raise StrategyError(f"{path}: the strategy has no gates")
    check_gate_references(path, gating_strategy, gates)
    return Strategy(
        path=path,
        kind=kind,
        sha256=file_sha256(path),
        gating_strategy=gating_strategy,
        gates=gates,
        flowkit_names=dict(prepared.names),
    )
