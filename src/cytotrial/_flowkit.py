"""The one place where cytotrial relies on FlowKit or FlowIO beyond their public API.

Everywhere else cytotrial uses FlowKit and FlowIO through their public API only
(``tests/test_flowkit_adapter.py`` scans ``src/`` for private attributes of theirs). Each workaround
below says what it is for. All were checked on FlowKit 1.3.2 and FlowIO 1.4.0 (the versions
``pyproject.toml`` allows: FlowKit 1.3.x, FlowIO 1.4.x); ``tests/test_flowkit_adapter.py`` tests the
upstream behaviour each one relies on, so an upgrade that changes it fails there first.

FlowIO: :func:`read_text` (HEADER and TEXT of one data set)
    FlowIO's ``FlowData(only_text=True)`` parses HEADER and TEXT; the FCS reader decodes DATA itself.

    1. *File handle.* Given a path, FlowIO 1.4 leaves the file it opened unclosed when it raises on
       a damaged file (a ``ResourceWarning`` later). :func:`read_text` opens the file itself and hands
       FlowIO the handle, which is closed whatever happens.
    2. *Doubled delimiters.* FlowIO escapes a ``|``, ``*`` or backslash delimiter for its regular
       expression and then looks for the escaped pair when it un-doubles, so a ``$P1N`` of ``A||B``
       (meaning ``A|B``) stays ``A||B``. :func:`read_text` un-doubles them in its own copy of the
       keywords and channel labels (FlowIO's object is not changed).
    3. *Errors.* FlowIO raises whatever its parsing trips over on a damaged file:
       :data:`FLOWIO_TEXT_ERRORS` lists those types (found by cutting files at every offset and
       corrupting their HEADER and TEXT at random). :func:`read_text` turns exactly these into
       :class:`UnreadableText`, which keeps FlowIO's exception and recognises the two cases the
       reader acts on: a missing required keyword (FlowIO's ``KeyError``, whose argument is the
       keyword) and a DATA segment said to end beyond the file (FlowIO's ``FCSParsingError`` whose
       message says "greater than file size"; FlowIO has no type of its own for it).

    4. *Blank DATA offsets in HEADER.* FCS 3.x lets a writer leave the HEADER's DATA offsets blank
       (spaces) or zero when DATA lies past byte 99,999,999; the offsets are then only in TEXT
       (``$BEGINDATA``/``$ENDDATA``). FlowIO 1.4 reads zeros but fails on blanks (``int`` of spaces).
       :func:`read_text` hands FlowIO a view of the file whose blank DATA offset fields read as
       ``0`` (the file is not changed); a file without blanks is handed over as it is.
    5. *Numbers that are not numbers.* FlowIO converts ``$PAR``, ``$TOT``, ``$NEXTDATA``, the
       segment offsets and each channel's ``$PnE``, ``$PnG`` and ``$PnR`` with ``int``/``float``;
       the ``ValueError`` it raises quotes the value (which must not reach a message: it may be
       anything the instrument operator typed). :attr:`UnreadableText.bad_number` names the keyword
       instead, found by converting the same keywords of the same TEXT again.

    FlowIO emits no warning when it reads only TEXT (its warnings are about DATA), so none is
    filtered.

FlowKit: :func:`gatingml_schema`
    The GatingML 2.0 XSD FlowKit validates against, ``flowkit._resources.gml_schema`` (a private
    module; FlowKit has no public accessor). cytotrial validates against it first to report the
    line and reason of the first violation; FlowKit itself only says a file is "neither GatingML
    2.0 compliant nor a FlowJo workspace".

FlowKit: :func:`prepare_gatingml`, :func:`prepare_workspace` (strategies as FlowJo writes them)
    FlowKit reads a strategy only as the GatingML 2.0 schema and its own gate tree allow; FlowJo
    writes what these refuse. Both functions rewrite the parsed XML in memory (the file is never
    changed) and leave a document they need not change untouched, so a strategy FlowKit already
    reads is read exactly as before.

    1. *Dimensions without* ``compensation-ref`` (GatingML). The schema requires the attribute
       (``uncompensated``, ``FCS`` or a matrix id); FlowJo's "Export GatingML" omits it and says
       what it means the way FlowJo's gate XML does everywhere (its workspaces hold the same
       ``gating:dimension`` elements, also without the attribute): a compensated parameter is
       named with the prefix of the sample's spillover matrix, ``Comp-`` (FlowJo's
       ``<transforms:spilloverMatrix prefix="Comp-" ...>``; FlowKit's ``parse_wsp`` strips that
       prefix and assigns the sample's matrix the same way). So a missing ``compensation-ref``
       reads as ``FCS`` for a ``Comp-<channel>`` dimension, which becomes ``<channel>``
       compensated with the FCS file's own spillover (``$SPILLOVER``/``$SPILL``; GatingML:
       uncompensated when the file has none), and as ``uncompensated`` for any other name
       (``FSC-A``, ``Time``, and FlowJo's ``FJComp-`` channels of files FlowJo already
       compensated). A ``compensation-ref`` that is present is kept as it is.
    2. *Gate ids that are not XML ids* (GatingML). A gate, quadrant or divider id must be an XML
       NCName; FlowJo's population names (``CD4+``, ``CD3+ CD8+``, ``Q1: CD4- , CD8+``) are not.
       Each id the schema refuses becomes an internal id by :func:`internal_name` (every character
       an XML id cannot hold, as ``_xHHHH_``, its code point in hex; a ``_`` before ``x`` as
       ``_x005F_``: the XML name escape of ISO/IEC 9075 and .NET ``XmlConvert.EncodeName``);
       ``parent_id``, Boolean ``gateReference`` and quadrant ``divider_ref`` references follow.
    3. *Population names FlowKit cannot address* (FlowJo workspaces). FlowKit's gate tree resolves
       gates by ``/``-joined paths, so a name with ``/`` (or ``.``, ``..``) cannot be found again;
       such names become internal names the same way (only ``/`` escaped), Boolean
       ``Dependent`` paths follow. Names with ``+``, spaces, ``:`` or ``,`` are FlowKit-safe and
       kept.

    Only what is refused changes: an id is refused when libxml2's XSD check (the one FlowKit's
    schema validation runs) refuses it as an NCName. :attr:`PreparedStrategy.names` maps every
    internal name back to the file's own; :func:`original_name` decodes one as well. An internal
    name that another gate of the file already has is refused (``ValueError``), so the mapping
    stays one to one.

FlowKit: :func:`parse_strategy` (``parse_gating_xml``, ``parse_wsp``)
    FlowKit does not document what its parsers raise for a bad file, and it does not validate a
    FlowJo workspace before reading it: a missing element or attribute surfaces as whatever its code
    trips over. :func:`flowkit_input_errors` names the types it raises for bad files (FlowKit's own
    exceptions, ``ValueError``, ``KeyError``, networkx and lxml errors, ...); an ``AttributeError``
    or ``TypeError`` counts as a bad file only when it is raised inside FlowKit's own code, so one
    from cytotrial's code still propagates. :func:`parse_strategy` turns these into
    :class:`UnreadableStrategy`.

FlowKit: :func:`import_flowkit` (FlowKit without its plotting libraries)
    Importing FlowKit 1.3 imports Bokeh (``bokeh.layouts``, ``bokeh.models``, ``bokeh.plotting``)
    and SciPy's statistics (``gaussian_kde``) for its plotting methods, which cytotrial never calls:
    0.6 s of the 1.0 s its import takes, paid by every job that reads a strategy. FlowKit's modules
    import from these only callables (classes and functions) with ``from ... import``.
    :func:`import_flowkit` imports FlowKit with those modules stood in for by stubs
    (:data:`DEFERRED_BY_FLOWKIT`) whose names are placeholders: calling one (or reading one of its
    attributes) imports the real module and hands the call on, so FlowKit's plotting still works
    the first time it is used. The stubs are in ``sys.modules`` only while FlowKit is imported and
    only for modules not imported yet; a later ``import bokeh`` or ``import scipy.stats`` imports
    the real module. Another package imported with FlowKit that took a stub or one of its names
    gets the real ones instead. Every import of FlowKit in cytotrial goes through it.

Importing this module imports FlowIO (light) but not FlowKit, which each FlowKit helper imports
when called.
"""

from __future__ import annotations

import importlib
import io
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import flowio
from flowio.exceptions import FCSParsingError, FlowIOException

from ._flowio_input import bad_number, blank_offsets_as_zero

if TYPE_CHECKING:
    from types import TracebackType

    from lxml import etree

__all__ = [
    "DEFERRED_BY_FLOWKIT",
    "FLOWIO_TEXT_ERRORS",
    "FLOWJO_COMP_PREFIX",
    "FCSText",
    "PreparedStrategy",
    "TextChannel",
    "UnreadableStrategy",
    "UnreadableText",
    "flowkit_input_errors",
    "gatingml_schema",
    "import_flowkit",
    "internal_name",
    "original_name",
    "parse_strategy",
    "prepare_gatingml",
    "prepare_workspace",
    "read_text",
]

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------
# FlowIO

FLOWIO_TEXT_ERRORS: tuple[type[BaseException], ...] = (
    FlowIOException,  # FCSParsingError: DATA end beyond the file, offsets that cannot be right
    KeyError,  # a required keyword ($PAR, $TOT, $DATATYPE, $BEGINDATA, $PnR, ...) is missing
    ValueError,  # a number keyword or HEADER offset that is not a number; $PnE not "f1,f2"
    IndexError,  # an empty TEXT segment (no delimiter)
    EOFError,  # TEXT or ANALYSIS said to extend beyond the end of the file
    OSError,  # a negative offset (seek before the start of the file)
    OverflowError,  # an offset too large for a seek or a read
    MemoryError,  # a damaged $ENDANALYSIS: FlowIO allocates the whole stated segment to read it
    re.error,  # a delimiter FlowIO's regular expression cannot take: ( ) [ + ? ...
)
"""What FlowIO 1.4's ``FlowData(only_text=True)`` raises on a damaged or truncated file."""

_REGEX_DELIMITERS = ("|", "*", "\\")  # the delimiters FlowIO escapes and then fails to un-double


@dataclass(frozen=True)
class TextChannel:
    """One channel as FlowIO describes it (``FlowData.channels``).

    Attributes
    ----------
    pnn, pns
        ``$PnN`` and ``$PnS`` (``""`` when absent).
    pne
        ``$PnE`` as ``(decades, log0)``; FlowIO sets ``log0`` to 1 where it is 0 with decades > 0.
    png
        ``$PnG`` (1.0 when absent; FlowIO sets it to 1.0 for the ``Time`` channel).
    pnr
        ``$PnR``.
    """

    pnn: str
    pns: str
    pne: tuple[float, float]
    png: float
    pnr: float


@dataclass(frozen=True)
class FCSText:
    """HEADER and TEXT of one data set, as FlowIO parses them (delimiters un-doubled).

    Attributes
    ----------
    text
        Every TEXT keyword: keys lower-cased without the ``$`` (``"tot"``, ``"p1n"``).
    pnn_labels, pns_labels
        ``$PnN`` and ``$PnS`` of each channel, in channel-number order.
    channels
        Channel number (from 1) -> :class:`TextChannel`, in the order of the ``$PnN`` keywords.
    time_index
        Column of the channel FlowIO takes for time (``$PnN`` ``Time``, any case), or ``None``.
    """

    text: dict[str, str]
    pnn_labels: list[str]
    pns_labels: list[str]
    channels: dict[int, TextChannel]
    time_index: int | None


class UnreadableText(Exception):
    """FlowIO could not parse the HEADER or TEXT of a data set; :attr:`cause` is what it raised.

    :attr:`bad_number` is ``(keyword, what it must be)`` when a keyword FlowIO converts to a
    number is not one (``("$P3E", "two numbers f1,f2")``), else ``None``.
    """

    def __init__(self, cause: BaseException, bad_number: tuple[str, str] | None = None) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
        self.bad_number = bad_number

    @property
    def missing_keyword(self) -> str | None:
        """The required keyword TEXT lacks (lower case, no ``$``; ``""`` if unnamed), or ``None``."""
        if not isinstance(self.cause, KeyError):
            return None
        return str(self.cause.args[0]) if self.cause.args else ""

    @property
    def data_past_end(self) -> bool:
        """Whether FlowIO refused the data set because its DATA offsets end beyond the file."""
        return isinstance(self.cause, FCSParsingError) and "greater than file size" in str(
            self.cause
        )


def read_text(path: Path, *, offset: int = 0, use_header_offsets: bool = False) -> FCSText:
    """HEADER and TEXT of the data set at byte ``offset`` of an FCS file, parsed by FlowIO.

    Parameters
    ----------
    path
        The FCS file.
    offset
        Byte where the data set starts (0 for the first; ``$NEXTDATA`` leads to the others).
    use_header_offsets
        Check the DATA offsets of HEADER rather than TEXT against the file size (FCS 3.x).
        FlowIO never checks HEADER against TEXT here (``ignore_offset_discrepancy``).

    Returns
    -------
    FCSText

    Raises
    ------
    UnreadableText
        FlowIO raised one of :data:`FLOWIO_TEXT_ERRORS`: the file is damaged or truncated.
    OSError
        The file cannot be opened.
    """
    with open(path, "rb") as handle:
        try:
            flow_data = flowio.FlowData(
                blank_offsets_as_zero(handle, offset),
                only_text=True,
                nextdata_offset=offset,
                ignore_offset_discrepancy=True,
                use_header_offsets=use_header_offsets,
            )
        except FLOWIO_TEXT_ERRORS as error:
            bad = bad_number(handle, offset) if isinstance(error, ValueError) else None
            raise UnreadableText(error, bad) from error
    with open(path, "rb") as handle:
        handle.seek(offset + flow_data.header["text_start"])
        delimiter = handle.read(1).decode("latin-1")
    return _text_of(flow_data, delimiter=delimiter)


def _text_of(flow_data: flowio.FlowData, *, delimiter: str) -> FCSText:
    """Copy what the reader uses out of FlowIO's object, un-doubling FlowIO's leftover pairs."""
    doubled = delimiter * 2
    text = flow_data.text
    if delimiter in _REGEX_DELIMITERS and any(
        doubled in key or doubled in value for key, value in text.items()
    ):

        def fix(value: str) -> str:
            return value.replace(doubled, delimiter)

    else:

        def fix(value: str) -> str:
            return value

    channels = {
        number: TextChannel(
            pnn=fix(channel["pnn"]),
            pns=fix(channel["pns"]),
            pne=channel["pne"],
            png=channel["png"],
            pnr=channel["pnr"],
        )
        for number, channel in flow_data.channels.items()
    }
    return FCSText(
        text={fix(key): fix(value) for key, value in text.items()},
        pnn_labels=[fix(label) for label in flow_data.pnn_labels],
        pns_labels=[fix(label) for label in flow_data.pns_labels],
        channels=channels,
        time_index=flow_data.time_index,
    )


# --------------------------------------------------------------------------------------------------
# FlowKit

#: The modules FlowKit imports for its plotting only, imported when FlowKit first plots.
DEFERRED_BY_FLOWKIT = ("bokeh", "bokeh.layouts", "bokeh.models", "bokeh.plotting", "scipy.stats")


class _Deferred:
    """A name FlowKit imported from a deferred module: the real one when it is first used."""

    def __init__(self, module: str, name: str) -> None:
        self._where = (module, name)

    def _real(self) -> Any:
        module, name = self._where
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._real(), attribute)

    def __repr__(self) -> str:
        return "<deferred {}.{}>".format(*self._where)


def _stub(module: str) -> types.ModuleType:
    stub = types.ModuleType(module, "stands in for the module while FlowKit is imported")
    stub.__path__ = []  # a package: its submodules' stubs can be imported from it
    stub.__getattr__ = lambda name: _Deferred(module, name)  # type: ignore[method-assign]
    return stub


def import_flowkit() -> types.ModuleType:
    """FlowKit, imported without Bokeh and SciPy's statistics (see the module's notes)."""
    if "flowkit" in sys.modules:
        return sys.modules["flowkit"]
    stubs = {name: _stub(name) for name in DEFERRED_BY_FLOWKIT if name not in sys.modules}
    before = set(sys.modules)
    sys.modules.update(stubs)
    flowkit: types.ModuleType | None
    try:
        import flowkit
    except ImportError:
        # a FlowKit that imports more of these modules than the stubs stand in for: forget what
        # was imported with the stubs and import FlowKit as it is
        for name in [m for m in sys.modules if m == "flowkit" or m.startswith("flowkit.")]:
            del sys.modules[name]
        flowkit = None
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
    _give_others_the_real_modules(set(sys.modules) - before, stubs)
    if flowkit is None:
        import flowkit
    return flowkit


def _give_others_the_real_modules(names: set[str], stubs: dict[str, types.ModuleType]) -> None:
    """A module other than FlowKit's, imported with the stubs, gets the real modules and names.

    FlowKit's own dependencies are not known to import these modules as they are imported; one
    that did took a stub or a placeholder, which only calls and attributes pass on. Its module
    globals are set to the real ones (imported for it).
    """
    stand_ins = {id(stub) for stub in stubs.values()}
    for name in sorted(names):
        module = sys.modules.get(name)
        if module is None or name == "flowkit" or name.startswith("flowkit."):
            continue
        for key, value in list(vars(module).items()):
            if isinstance(value, _Deferred):
                setattr(module, key, value._real())
            elif id(value) in stand_ins:
                setattr(module, key, importlib.import_module(value.__name__))


def gatingml_schema() -> etree.XMLSchema | None:
    """The GatingML 2.0 XSD FlowKit validates against; ``None`` if FlowKit no longer has it there."""
    import_flowkit()
    try:
        from flowkit._resources import gml_schema
    except ImportError:  # FlowKit's layout changed: FlowKit's own (terser) check still applies
        return None
    return gml_schema


def flowkit_input_errors() -> tuple[type[BaseException], ...]:
    """What FlowKit 1.3's ``parse_gating_xml``/``parse_wsp`` raise for a bad file.

    Besides these, an ``AttributeError`` or ``TypeError`` raised inside FlowKit's code means a bad
    file too (see :func:`parse_strategy`). A function, not a constant, so that importing this module
    does not import FlowKit.
    """
    import_flowkit()
    from flowkit.exceptions import FlowKitException
    from lxml.etree import LxmlError
    from networkx import NetworkXException

    return (
        FlowKitException,  # GateTreeError, GateReferenceError, FlowJoWSPParsingError, ...
        ValueError,  # most of FlowKit's own checks; numbers that are not numbers
        LookupError,  # KeyError/IndexError: a missing attribute, gate or transform reference
        ArithmeticError,  # transform parameters that overflow (e.g. int(inf))
        NotImplementedError,  # FlowJo features FlowKit does not support
        NetworkXException,  # a gate reference FlowKit's gate graph cannot place
        LxmlError,  # XML FlowKit cannot parse or query
    )


_TRIPS = (AttributeError, TypeError)  # FlowKit reading a workspace that lacks an element


class UnreadableStrategy(Exception):
    """FlowKit could not read a gating strategy; :attr:`cause` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _raised_inside_flowkit(error: BaseException) -> bool:
    """Whether the innermost Python frame of ``error``'s traceback is FlowKit's code."""
    tb: TracebackType | None = error.__traceback__
    module = ""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module == "flowkit" or module.startswith("flowkit.")


def parse_strategy(parse: Callable[[str], T], path: Path | bytes) -> T:
    """``parse(str(path))`` for a FlowKit parser, a bad file raising :class:`UnreadableStrategy`.

    Parameters
    ----------
    parse
        ``flowkit.parse_gating_xml`` or ``flowkit.parse_wsp``.
    path
        The GatingML file or FlowJo workspace, or the bytes of a rewritten one
        (:attr:`PreparedStrategy.source`; FlowKit's parsers take a file object as well).

    Raises
    ------
    UnreadableStrategy
        FlowKit raised one of the types it raises for a bad file (see the module docstring).
    """
    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    try:
        return parse(source)
    except _TRIPS as error:
        if not _raised_inside_flowkit(error):
            raise
        raise UnreadableStrategy(error) from error
    except flowkit_input_errors() as error:
        raise UnreadableStrategy(error) from error


# --------------------------------------------------------------------------------------------------
# FlowKit: strategies as FlowJo writes them

_GATING = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
_DATA_TYPE = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"
_TRANSFORMS = "{http://www.isac-net.org/std/Gating-ML/v2.0/transformations}"
_GATE_TAGS = tuple(
    f"{_GATING}{tag}"
    for tag in ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")
)
_POPULATION_TAGS = ("Population", "AndNode", "OrNode", "NotNode")  # FlowJo's gate tree nodes

FLOWJO_COMP_PREFIX = "Comp-"
"""FlowJo's prefix of a parameter compensated with the sample's spillover matrix."""

_ESCAPE = re.compile(r"_x([0-9A-F]{8}|[0-9A-F]{4})_")


@dataclass(frozen=True)
class PreparedStrategy:
    """A strategy document as FlowKit can read it.

    Attributes
    ----------
    source
        What :func:`parse_strategy` hands FlowKit: the file itself when nothing was rewritten, else
        the rewritten document's bytes.
    document
        The (rewritten) XML document, for schema validation.
    names
        Internal gate name -> the file's own name, for every name that was replaced.
    """

    source: Path | bytes
    document: etree._ElementTree = field(repr=False)
    names: dict[str, str] = field(default_factory=dict)


@cache
def _ncname_schema() -> etree.XMLSchema:
    from lxml import etree

    return etree.XMLSchema(
        etree.XML(
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            '<xs:element name="n" type="xs:NCName"/></xs:schema>'
        )
    )


@cache
def _is_xml_id(value: str) -> bool:
    """Whether the GatingML schema (libxml2's XSD ``ID``, an NCName) takes ``value`` as an id."""
    from lxml import etree

    element = etree.Element("n")
    element.text = value
    return bool(_ncname_schema().validate(element))


def _id_char(char: str, first: bool) -> bool:
    return not char.isspace() and _is_xml_id(char if first else f"a{char}")


def _path_char(char: str, first: bool) -> bool:
    return char != "/"


def internal_name(name: str, *, xml_id: bool = True) -> str:
    """The internal name for a gate name: kept where allowed, else each refused character escaped.

    Parameters
    ----------
    name
        The gate name as the file writes it.
    xml_id
        Escape what an XML id (NCName) cannot hold (GatingML); ``False``: only ``/`` (FlowJo,
        where FlowKit's gate paths are ``/``-joined).

    Returns
    -------
    str
        ``name`` itself where nothing needs escaping; else ``name`` with every character that
        cannot stand where it stands written ``_xHHHH_`` (its code point, upper-case hex; 8 digits
        beyond U+FFFF) and every ``_`` followed by ``x`` written ``_x005F_``, so that
        :func:`original_name` gives ``name`` back.
    """
    allowed = _id_char if xml_id else _path_char
    whole = name not in ("", ".", "..")  # FlowKit's gate tree takes "." and ".." as navigation
    if whole and all(allowed(char, i == 0) for i, char in enumerate(name)):
        return name
    out = []
    for i, char in enumerate(name):
        keep = whole and allowed(char, i == 0)
        if char == "_" and name.startswith("_x", i):
            keep = False
        if keep:
            out.append(char)
        else:
            code = ord(char)
            out.append(f"_x{code:04X}_" if code <= 0xFFFF else f"_x{code:08X}_")
    return "".join(out)


def original_name(internal: str) -> str:
    """The gate name :func:`internal_name` changed into ``internal`` (``_xHHHH_`` decoded).

    Only for a name :func:`internal_name` changed: a name kept as it is may hold ``_xHHHH_`` itself.
    """
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), internal)


def _renamer(names: Iterator[str], taken: set[str], *, xml_id: bool) -> dict[str, str]:
    """Original -> internal name for every name that needs one; ValueError if one is taken."""
    mapping: dict[str, str] = {}
    for name in names:
        if name in mapping or (xml_id and _is_xml_id(name)):  # the schema takes it: kept
            continue
        internal = internal_name(name, xml_id=xml_id)
        if internal == name:
            continue
        if internal in taken:
            raise ValueError(
                f"gate name {name!r} becomes {internal!r} internally, which another gate "
                "already is; rename one of them"
            )
        mapping[name] = internal
    return mapping


def _fill_compensation(root: etree._Element) -> bool:
    """``compensation-ref`` where a dimension or divider lacks it (module docstring, 1)."""
    changed = False
    attribute = f"{_GATING}compensation-ref"
    for element in root.iter(f"{_GATING}dimension", f"{_GATING}divider"):
        if attribute in element.attrib:
            continue
        ref = "uncompensated"
        dimension = element.find(f"{_DATA_TYPE}fcs-dimension")
        name = dimension.get(f"{_DATA_TYPE}name") if dimension is not None else None
        if name and name.startswith(FLOWJO_COMP_PREFIX) and len(name) > len(FLOWJO_COMP_PREFIX):
            dimension.set(f"{_DATA_TYPE}name", name[len(FLOWJO_COMP_PREFIX) :])
            ref = "FCS"
        element.set(attribute, ref)
        changed = True
    return changed


def _map_gatingml_ids(root: etree._Element) -> dict[str, str]:
    """Replace the gate, quadrant and divider ids that are not XML ids (module docstring, 2)."""
    id_attr = f"{_GATING}id"
    owners = [
        element
        for element in root.iter(*_GATE_TAGS, f"{_GATING}Quadrant", f"{_GATING}divider")
        if element.get(id_attr) is not None
    ]
    taken = {
        value
        for element in root.iter()
        for key, value in element.attrib.items()
        if key in (id_attr, f"{_TRANSFORMS}id")
    }
    mapping = _renamer((e.get(id_attr) for e in owners), taken, xml_id=True)
    if not mapping:
        return {}
    references = [(element, id_attr) for element in owners]
    references += [(element, f"{_GATING}parent_id") for element in root.iter(*_GATE_TAGS)]
    references += [(element, f"{_GATING}ref") for element in root.iter(f"{_GATING}gateReference")]
    references += [
        (element, f"{_GATING}divider_ref") for element in root.iter(f"{_GATING}position")
    ]
    for element, attribute in references:
        value = element.get(attribute)
        if value in mapping:
            element.set(attribute, mapping[value])
    return {internal: name for name, internal in mapping.items()}


def prepare_gatingml(path: Path, document: etree._ElementTree) -> PreparedStrategy:
    """A GatingML document as FlowKit can read it (module docstring, 1 and 2).

    Parameters
    ----------
    path
        The file (:attr:`PreparedStrategy.source` when nothing needs rewriting).
    document
        The file parsed by lxml; rewritten in place where needed.

    Raises
    ------
    ValueError
        An internal id would be the id of another element of the file.
    """
    root = document.getroot()
    filled = _fill_compensation(root)
    names = _map_gatingml_ids(root)
    if not (filled or names):
        return PreparedStrategy(source=path, document=document)
    return PreparedStrategy(source=_serialized(document), document=document, names=names)


def _serialized(document: etree._ElementTree) -> bytes:
    from lxml import etree

    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


def _populations(
    node: etree._Element, path: tuple[str, ...]
) -> Iterator[tuple[etree._Element, tuple[str, ...]]]:
    """(element, names from the tree's top) of every gate node under ``node``, in tree order."""
    for sub in node.findall("Subpopulations"):
        for element in sub:
            if element.tag in _POPULATION_TAGS and element.get("name") is not None:
                names = (*path, element.get("name"))
                yield element, names
                yield from _populations(element, names)


def prepare_workspace(path: Path, document: etree._ElementTree) -> PreparedStrategy:
    """A FlowJo workspace as FlowKit can read it (module docstring, 3).

    Raises
    ------
    ValueError
        An internal name would be the name of another population of the workspace.
    """
    root = document.getroot()
    trees = [
        list(_populations(node, ()))
        for node in root.iter("SampleNode", "GroupNode")
        if node.find("Subpopulations") is not None
    ]
    taken = {names[-1] for tree in trees for _, names in tree}
    mapping = _renamer((names[-1] for tree in trees for _, names in tree), taken, xml_id=False)
    if not mapping:
        return PreparedStrategy(source=path, document=document)
    for tree in trees:
        paths: dict[str, list[str]] = {}  # FlowJo's "/"-joined path -> internal path
        for _, names in tree:
            internal = "/".join(mapping.get(name, name) for name in names)
            paths.setdefault("/".join(names), []).append(internal)
        for element, _ in tree:
            for dependent in element.findall("Dependents/Dependent"):
                found = paths.get(dependent.get("name", ""), [])
                if len(found) == 1:  # ambiguous or unknown: left as FlowJo wrote it
                    dependent.set("name", found[0])
        for element, names in tree:
            element.set("name", mapping.get(names[-1], names[-1]))
    names = {internal: name for name, internal in mapping.items()}
    return PreparedStrategy(source=_serialized(document), document=document, names=names)
