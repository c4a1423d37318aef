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

    FlowIO emits no warning when it reads only TEXT (its warnings are about DATA), so none is
    filtered.

FlowKit: :func:`gatingml_schema`
    The GatingML 2.0 XSD FlowKit validates against, ``flowkit._resources.gml_schema`` (a private
    module; FlowKit has no public accessor). cytotrial validates against it first to report the
    line and reason of the first violation; FlowKit itself only says a file is "neither GatingML
    2.0 compliant nor a FlowJo workspace".

FlowKit: :func:`parse_strategy` (``parse_gating_xml``, ``parse_wsp``)
    FlowKit does not document what its parsers raise for a bad file, and it does not validate a
    FlowJo workspace before reading it: a missing element or attribute surfaces as whatever its code
    trips over. :func:`flowkit_input_errors` names the types it raises for bad files (FlowKit's own
    exceptions, ``ValueError``, ``KeyError``, networkx and lxml errors, ...); an ``AttributeError``
    or ``TypeError`` counts as a bad file only when it is raised inside FlowKit's own code, so one
    from cytotrial's code still propagates. :func:`parse_strategy` turns these into
    :class:`UnreadableStrategy`.

Importing this module imports FlowIO (light) but not FlowKit, which each FlowKit helper imports
when called.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import flowio
from flowio.exceptions import FCSParsingError, FlowIOException

if TYPE_CHECKING:
    from types import TracebackType

    from lxml import etree

__all__ = [
    "FLOWIO_TEXT_ERRORS",
    "FCSText",
    "TextChannel",
    "UnreadableStrategy",
    "UnreadableText",
    "flowkit_input_errors",
    "gatingml_schema",
    "parse_strategy",
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
    """FlowIO could not parse the HEADER or TEXT of a data set; :attr:`cause` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause

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
                handle,
                only_text=True,
                nextdata_offset=offset,
                ignore_offset_discrepancy=True,
                use_header_offsets=use_header_offsets,
            )
        except FLOWIO_TEXT_ERRORS as error:
            raise UnreadableText(error) from error
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


def gatingml_schema() -> etree.XMLSchema | None:
    """The GatingML 2.0 XSD FlowKit validates against; ``None`` if FlowKit no longer has it there."""
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


def parse_strategy(parse: Callable[[str], T], path: Path) -> T:
    """``parse(str(path))`` for a FlowKit parser, a bad file raising :class:`UnreadableStrategy`.

    Parameters
    ----------
    parse
        ``flowkit.parse_gating_xml`` or ``flowkit.parse_wsp``.
    path
        The GatingML file or FlowJo workspace.

    Raises
    ------
    UnreadableStrategy
        FlowKit raised one of the types it raises for a bad file (see the module docstring).
    """
    try:
        return parse(str(path))
    except _TRIPS as error:
        if not _raised_inside_flowkit(error):
            raise
        raise UnreadableStrategy(error) from error
    except flowkit_input_errors() as error:
        raise UnreadableStrategy(error) from error
