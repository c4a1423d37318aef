"""Reading FCS files: robust to instruments and versions, fast, and honest about what it read.

HEADER and TEXT are parsed by FlowIO (so keywords look exactly as in FlowKit's ``Sample.metadata``);
the DATA segment is decoded here with NumPy in one pass, which keeps a million-event file at the
speed of the disk and handles mixed bit widths, either byte order and inconsistent offsets. Events
are preprocessed as FlowKit's ``Sample`` does for its ``'raw'`` events (the FCS standard, as
GatingML 2.0 requires): the time channel scaled by ``$TIMESTEP``, log-amplified channels decoded
with ``$PnE``, channels divided by ``$PnG``.

This module deliberately imports neither FlowKit nor anything heavy: one job per FCS file must
start in well under a second.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import flowio
import numpy as np
import pandas as pd

from ..errors import FCSReadError, MissingMarkerError

__all__ = ["FCSData", "channel_index", "inspect_fcs", "parse_spillover", "read_fcs"]

_HEADER_BYTES = 58
_SPILL_KEYWORDS = ("spillover", "spill")  # FlowIO drops the leading "$": $SPILLOVER, $SPILL, SPILL
_MAX_DATA_SETS = 10_000


@dataclass
class FCSData:
    """One FCS data set, preprocessed per the FCS standard.

    Attributes
    ----------
    path
        The file read.
    events
        ``(n_events, n_channels)`` float64 array: log-amplified channels decoded with ``$PnE``,
        linear channels divided by ``$PnG`` (as the FCS and GatingML 2.0 standards say), the
        ``Time`` channel multiplied by ``$TIMESTEP``. Equal to FlowKit's ``Sample`` ``'raw'`` events.
    channels
        ``$PnN`` of each channel, made unique (repeats get a ``_2``, ``_3`` suffix; see ``notes``).
    markers
        ``$PnS`` of each channel, stripped of surrounding blanks, ``""`` where absent.
    spill
        The file's own spillover matrix (``$SPILLOVER``/``$SPILL``/``SPILL``), rows and columns named by
        detector channel, or ``None``.
    n_events_stated
        ``$TOT`` as the file states it.
    n_datasets
        Number of data sets in the file (only the first is read).
    fcs_version
        ``"FCS3.1"`` etc.
    notes
        Human-readable remarks about what reading had to work around (one short sentence each).
    keywords
        All TEXT keywords as FlowIO and FlowKit present them: keys lower-cased without the leading
        ``$`` (``"tot"``, ``"spillover"``). May hold patient identifiers: never write to outputs.
    """

    path: Path
    events: np.ndarray
    channels: list[str]
    markers: list[str]
    spill: pd.DataFrame | None
    n_events_stated: int
    n_datasets: int = 1
    fcs_version: str = ""
    notes: list[str] = field(default_factory=list)
    keywords: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def n_events(self) -> int:
        """Number of events read (rows of ``events``)."""
        return int(self.events.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels (columns of ``events``)."""
        return int(self.events.shape[1])

    def to_frame(self, *, label: str = "channel") -> pd.DataFrame:
        """Events as a DataFrame (no copy), columns named by ``label``: ``"channel"`` or ``"marker"``.

        With ``label="marker"`` a channel without a marker keeps its channel name.
        """
        if label == "channel":
            columns = list(self.channels)
        elif label == "marker":
            columns = [m or c for c, m in zip(self.channels, self.markers)]
        else:
            raise ValueError(f"label must be 'channel' or 'marker', not {label!r}")
        return pd.DataFrame(self.events, columns=columns, copy=False)


# --------------------------------------------------------------------------------------------------
# public helpers


def channel_index(data: FCSData, name: str) -> int:
    """Column of ``data.events`` for a channel (``$PnN``) or, failing that, a marker (``$PnS``).

    The channel name wins when a name is both; a marker must name exactly one channel.

    Parameters
    ----------
    data
        An FCS data set from :func:`read_fcs`.
    name
        Channel name (e.g. ``"FITC-A"``) or marker (e.g. ``"CD3"``), matched exactly.

    Returns
    -------
    int
        Zero-based column index.

    Raises
    ------
    MissingMarkerError
        No channel or marker has that name, or several markers do.
    """
    if name in data.channels:
        return data.channels.index(name)
    hits = [i for i, marker in enumerate(data.markers) if marker and marker == name]
    if len(hits) == 1:
        return hits[0]
    file = Path(data.path).name
    if hits:
        channels = ", ".join(data.channels[i] for i in hits)
        raise MissingMarkerError(
            f"{file}: marker {name!r} labels several channels ({channels}); name the channel instead"
        )
    raise MissingMarkerError(
        f"{file}: no channel or marker named {name!r} (channels: {', '.join(data.channels)}); "
        "check the panel or map the name in config"
    )


def parse_spillover(
    value: str, *, channels: Sequence[str] | None = None, source: str = "$SPILLOVER"
) -> pd.DataFrame:
    """Parse an FCS spillover keyword value (``n,name_1..name_n,v_11..v_nn``) into a matrix.

    Parameters
    ----------
    value
        The keyword value, e.g. ``"2,FL1-A,FL2-A,1,0.1,0.02,1"``.
    channels
        ``$PnN`` of the file, in order. When given and the matrix names its detectors by parameter
        number (``"3"`` for ``$P3N``), the numbers are replaced by those channel names.
    source
        What to call the value in an error message (e.g. ``"sample.fcs: $SPILL"``).

    Returns
    -------
    pandas.DataFrame
        ``n x n`` float64, rows the spilling detector, columns the receiving detector, both indexed
        by detector name. Empty when ``n`` is 0.

    Raises
    ------
    FCSReadError
        The value is not a well-formed spillover matrix.
    """
    tokens = [t.strip() for t in value.split(",")]
    while tokens and tokens[-1] == "":
        tokens.pop()
    try:
        n = int(float(tokens[0]))
    except (IndexError, ValueError):
        raise FCSReadError(
            f"{source}: spillover must start with the number of detectors, found {value[:20]!r}"
        ) from None
    if n < 0 or len(tokens) != 1 + n + n * n:
        raise FCSReadError(
            f"{source}: spillover for {n} detectors needs {1 + n + n * n} comma-separated "
            f"items, found {len(tokens)}"
        )
    names = tokens[1 : n + 1]
    try:
        values = np.array([float(t) for t in tokens[n + 1 :]], dtype=np.float64).reshape(n, n)
    except ValueError:
        raise FCSReadError(f"{source}: spillover holds a value that is not a number") from None
    if channels is not None and names and all(t.isdigit() for t in names):
        numbers = [int(t) for t in names]
        if not set(names) & set(channels) and all(1 <= k <= len(channels) for k in numbers):
            names = [channels[k - 1] for k in numbers]
    if len(set(names)) != len(names):
        raise FCSReadError(f"{source}: spillover names a detector twice")
    return pd.DataFrame(values, index=pd.Index(names), columns=pd.Index(names))


# --------------------------------------------------------------------------------------------------
# reading


def read_fcs(path: str | Path) -> FCSData:
    """Read and preprocess the first data set of an FCS file.

    Handles FCS 2.0/3.0/3.1, integer (8/16/32/64-bit, mixed widths), float and double data in
    either byte order, HEADER/TEXT offset disagreements, a DATA end offset one byte off, repeated
    channel names and files with several data sets. Whatever had to be worked around is listed in
    ``notes``; the number of events read always equals ``$TOT``.

    Parameters
    ----------
    path
        The FCS file.

    Returns
    -------
    FCSData

    Raises
    ------
    FCSReadError
        The file is missing, empty, not FCS, truncated, or inconsistent; the one-line message names
        the file and the problem.
    """
    path = Path(path)
    try:
        return _read_first_data_set(path)
    except FCSReadError as error:
        message = _one_line(str(error))
        if message == str(error):
            raise
        raise FCSReadError(message) from None
    except Exception as error:  # whatever a damaged file provokes, the user gets one line
        raise FCSReadError(
            _one_line(f"{path.name}: cannot be read ({type(error).__name__}: {error})")
        ) from error


def _read_first_data_set(path: Path) -> FCSData:
    name = path.name
    file_size = _file_size(path)
    try:
        with open(path, "rb") as handle:
            raw_header = handle.read(_HEADER_BYTES)
    except OSError as error:
        raise FCSReadError(f"{name}: cannot be opened ({error.strerror or error})") from None
    header = _parse_header(raw_header, name=name, file_size=file_size)
    flow_data = _parse_text(path, header=header, file_size=file_size)
    text = flow_data.text
    notes: list[str] = []

    n_channels = _int_keyword(text, "par", name=name)
    if n_channels < 1:
        raise FCSReadError(f"{name}: $PAR is {n_channels}; the file declares no channels")
    numbers = sorted(int(k) for k in flow_data.channels)
    if numbers != list(range(1, n_channels + 1)):
        raise FCSReadError(
            f"{name}: $PAR is {n_channels} but $PnN is given for {len(numbers)} channels; "
            "the TEXT segment is damaged"
        )
    n_events = _int_keyword(text, "tot", name=name)
    if n_events == 0:
        raise FCSReadError(f"{name}: $TOT is 0, the file holds no events; remove it from the sheet")
    if n_events < 0:
        raise FCSReadError(f"{name}: $TOT is {n_events}; the TEXT segment is damaged")

    mode = text.get("mode", "L").strip().upper() or "L"
    if mode != "L":
        raise FCSReadError(
            f"{name}: $MODE is {mode!r} (histogram data); only list-mode (L) files hold events"
        )
    row_dtype = _row_dtype(text, n_channels=n_channels, name=name)
    needed = n_events * row_dtype.itemsize
    start = _choose_data_start(
        header=header,
        text=text,
        n_events=n_events,
        row_bytes=row_dtype.itemsize,
        file_size=file_size,
        name=name,
        notes=notes,
    )
    if start + needed > file_size:
        raise FCSReadError(
            f"{name}: the file ends inside DATA ({file_size - start} of the {needed} bytes that "
            f"$TOT={n_events} events need); the file is truncated, copy or export it again"
        )
    try:
        records = np.fromfile(path, dtype=row_dtype, count=n_events, offset=start)
    except OSError as error:
        raise FCSReadError(f"{name}: DATA cannot be read ({error.strerror or error})") from None
    if records.shape[0] != n_events:  # the file changed under us
        raise FCSReadError(f"{name}: DATA could not be read in full; the file is truncated")

    events = _decode_records(records, text=text, n_channels=n_channels)
    _preprocess(events, flow_data=flow_data, notes=notes)

    channels = _unique_names(flow_data.pnn_labels, notes=notes)
    markers = [str(label).strip() for label in flow_data.pns_labels]
    spill = _file_spill(text, channels=channels, name=name, notes=notes)
    n_datasets = _count_data_sets(path, text=text, file_size=file_size, notes=notes)
    if n_datasets > 1:
        notes.append(f"The file holds {n_datasets} data sets; only the first was read.")

    return FCSData(
        path=path,
        events=events,
        channels=channels,
        markers=markers,
        spill=spill,
        n_events_stated=n_events,
        n_datasets=n_datasets,
        fcs_version=header.version,
        notes=notes,
        keywords=dict(text),
    )


def inspect_fcs(path: str | Path) -> dict:
    """One row for ``cytotrial inspect``: file, events, channels, markers, spillover, status, message.

    Never raises for a bad file: ``status`` is ``"ok"``, ``"warning"`` (read, but something had to be
    worked around; ``message`` joins the notes with ``"; "``) or ``"error"`` (``message`` is the
    one-line reason). No keyword value that could identify a patient is included.

    Parameters
    ----------
    path
        The FCS file.

    Returns
    -------
    dict
        Keys ``file`` (str), ``events`` (int, ``None`` on error), ``channels`` (int, ``None`` on
        error), ``markers`` (the ``$PnS`` that are set, comma-joined), ``spillover`` (``"yes"``/
        ``"no"``), ``status``, ``message``.
    """
    row: dict = {
        "file": str(path),
        "events": None,
        "channels": None,
        "markers": "",
        "spillover": "no",
        "status": "error",
        "message": "",
    }
    try:
        data = read_fcs(path)
    except FCSReadError as error:
        row["message"] = _one_line(str(error))
        return row
    except Exception as error:  # a reader bug must not stop an inspection of thousands of files
        row["message"] = _one_line(f"{Path(path).name}: cannot be read ({error})")
        return row
    row.update(
        events=data.n_events,
        channels=data.n_channels,
        markers=",".join(m for m in data.markers if m),
        spillover="yes" if data.spill is not None else "no",
        status="warning" if data.notes else "ok",
        message=_one_line("; ".join(note.rstrip(".") for note in data.notes)),
    )
    return row


# --------------------------------------------------------------------------------------------------
# HEADER and TEXT


@dataclass(frozen=True)
class _Header:
    version: str
    text_start: int
    text_stop: int
    data_start: int
    data_stop: int


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _file_size(path: Path) -> int:
    name = path.name
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FCSReadError(f"{path}: file not found; check the path in the sample sheet") from None
    except OSError as error:
        raise FCSReadError(f"{name}: cannot be opened ({error.strerror or error})") from None
    if path.is_dir():
        raise FCSReadError(f"{path}: is a folder, not an FCS file")
    if not os.access(path, os.R_OK):
        raise FCSReadError(f"{name}: cannot be opened (permission denied)")
    if stat.st_size == 0:
        raise FCSReadError(f"{name}: the file is empty (0 bytes); copy or export it again")
    return int(stat.st_size)


def _parse_header(raw: bytes, *, name: str, file_size: int) -> _Header:
    if not re.match(rb"FCS\d\.\d", raw[:6]):
        raise FCSReadError(
            f"{name}: not an FCS file (it does not begin with 'FCS2.0', 'FCS3.0' or 'FCS3.1')"
        )
    if len(raw) < 42:
        raise FCSReadError(f"{name}: the file ends inside the FCS HEADER; it is truncated")

    def offset(lo: int, hi: int) -> int:
        field_ = raw[lo:hi].strip()
        return int(field_) if field_ else 0

    try:
        text_start, text_stop = offset(10, 18), offset(18, 26)
        data_start, data_stop = offset(26, 34), offset(34, 42)
    except ValueError:
        raise FCSReadError(
            f"{name}: the FCS HEADER is damaged (byte offsets are not numbers)"
        ) from None
    if not 0 < text_start < text_stop:
        raise FCSReadError(
            f"{name}: the FCS HEADER gives no valid TEXT segment (bytes {text_start}-{text_stop})"
        )
    if text_stop >= file_size:
        raise FCSReadError(
            f"{name}: the file ends inside TEXT (it has {file_size} bytes, TEXT ends at byte "
            f"{text_stop}); the file is truncated"
        )
    return _Header(raw[:6].decode("ascii"), text_start, text_stop, data_start, data_stop)


def _parse_text(path: Path, *, header: _Header, file_size: int) -> flowio.FlowData:
    """HEADER and TEXT via FlowIO, without its DATA reader and without its offset checks.

    FlowIO refuses a file whose DATA end offset (TEXT for FCS 3.x, HEADER for 2.0) lies beyond the
    file, or an FCS 3.x TEXT without $BEGINDATA/$ENDDATA; the HEADER offsets are then tried. Which
    offsets hold the events is judged afterwards (``_choose_data_start``).
    """
    name = path.name
    for use_header_offsets in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flow_data = flowio.FlowData(
                    path,
                    only_text=True,
                    nextdata_offset=0,
                    ignore_offset_discrepancy=True,
                    use_header_offsets=use_header_offsets,
                )
            _undouble_regex_delimiter(flow_data, path=path, text_start=header.text_start)
            return flow_data
        except KeyError as error:
            key = str(error.args[0]) if error.args else ""
            if key in ("begindata", "enddata") and not use_header_offsets:
                continue  # FCS 3.x without $BEGINDATA/$ENDDATA: the HEADER offsets may serve
            keyword = f"${key.upper()}" if key else "a required keyword"
            raise FCSReadError(f"{name}: TEXT lacks the required keyword {keyword}") from None
        except flowio.exceptions.FCSParsingError as error:
            if "greater than file size" not in str(error):
                raise FCSReadError(_one_line(f"{name}: {error}")) from None
        except Exception as error:  # FlowIO raises ValueError/IndexError on damaged TEXT
            raise FCSReadError(
                _one_line(
                    f"{name}: the TEXT segment cannot be parsed ({type(error).__name__}: {error})"
                )
            ) from None
    stop = header.data_stop
    where = f"ends at byte {stop}" if stop else "ends"
    raise FCSReadError(
        f"{name}: DATA {where} past the end of the file ({file_size} bytes); "
        "the file is truncated, copy or export it again"
    )


def _undouble_regex_delimiter(flow_data: flowio.FlowData, *, path: Path, text_start: int) -> None:
    """Un-escape ``||``, ``**`` or ``\\\\`` in keywords, which FlowIO (1.4) leaves doubled.

    FlowIO escapes these delimiters for its regular expression and then looks for the escaped form
    when it un-doubles them, so a ``$P1N`` of ``A||B`` (meaning ``A|B``) stays ``A||B``.
    """
    with open(path, "rb") as handle:
        handle.seek(text_start)
        delimiter = handle.read(1).decode("latin-1")
    if delimiter not in ("|", "*", "\\"):
        return
    doubled = delimiter * 2
    if not any(doubled in key or doubled in value for key, value in flow_data.text.items()):
        return

    def fix(value: str) -> str:
        return value.replace(doubled, delimiter)

    flow_data.text = {fix(key): fix(value) for key, value in flow_data.text.items()}
    flow_data.pnn_labels = [fix(label) for label in flow_data.pnn_labels]
    flow_data.pns_labels = [fix(label) for label in flow_data.pns_labels]
    for channel in flow_data.channels.values():
        channel["pnn"], channel["pns"] = fix(channel["pnn"]), fix(channel["pns"])


def _int_keyword(text: dict[str, str], key: str, *, name: str) -> int:
    value = text.get(key)
    if value is None:
        raise FCSReadError(f"{name}: TEXT lacks the required keyword ${key.upper()}")
    try:
        return int(value.strip())
    except ValueError:
        raise FCSReadError(
            f"{name}: ${key.upper()} is not a whole number ({value[:20]!r})"
        ) from None


def _offset_keyword(text: dict[str, str], key: str) -> int | None:
    value = text.get(key, "").strip()
    return int(value) if value.isdigit() else None


# --------------------------------------------------------------------------------------------------
# DATA


def _byte_order(text: dict[str, str], *, name: str) -> str:
    order = text.get("byteord", "").replace(" ", "")
    if order in ("1,2,3,4", "1,2", "1", "1,2,3,4,5,6,7,8"):
        return "<"
    if order in ("4,3,2,1", "2,1", "8,7,6,5,4,3,2,1"):
        return ">"
    raise FCSReadError(
        f"{name}: $BYTEORD {order!r} is not supported (only little- or big-endian order)"
    )


def _row_dtype(text: dict[str, str], *, n_channels: int, name: str) -> np.dtype:
    """NumPy dtype of one event (one row of DATA): a sub-array for uniform widths, else structured."""
    data_type = text.get("datatype", "").strip().upper()
    order = _byte_order(text, name=name)
    if data_type == "F":
        return np.dtype((f"{order}f4", (n_channels,)))
    if data_type == "D":
        return np.dtype((f"{order}f8", (n_channels,)))
    if data_type == "A":
        raise FCSReadError(f"{name}: ASCII DATA ($DATATYPE A) is not supported; export as float")
    if data_type != "I":
        raise FCSReadError(f"{name}: $DATATYPE {data_type!r} is not one of I, F, D")
    widths = []
    for k in range(1, n_channels + 1):
        value = text.get(f"p{k}b", "").strip()
        if value not in ("8", "16", "32", "64"):
            raise FCSReadError(
                f"{name}: $P{k}B is {value!r}; integer channels must be 8, 16, 32 or 64 bits"
            )
        widths.append(int(value))
    if len(set(widths)) == 1:
        return np.dtype((f"{order}u{widths[0] // 8}", (n_channels,)))
    return np.dtype([(f"p{k}", f"{order}u{w // 8}") for k, w in enumerate(widths, start=1)])


def _choose_data_start(
    *,
    header: _Header,
    text: dict[str, str],
    n_events: int,
    row_bytes: int,
    file_size: int,
    name: str,
    notes: list[str],
) -> int:
    """Pick the DATA offsets (HEADER or TEXT) that hold ``$TOT`` events; note any repair.

    Each source is ranked by how well its segment fits ``$TOT`` events: exactly, one byte off (an
    end offset written exclusive instead of inclusive), longer, longer and past the end of the file;
    a segment that starts inside HEADER or TEXT, or cannot hold ``$TOT`` events, is out. The best
    fit wins, ties going to the standard's choice (TEXT for FCS 3.x, HEADER for 2.0). Anything but
    an exact fit from agreeing sources is noted.
    """
    needed = n_events * row_bytes
    header_span = (header.data_start, header.data_stop)
    text_start, text_stop = _offset_keyword(text, "begindata"), _offset_keyword(text, "enddata")
    text_span = (
        (text_start, text_stop) if text_start is not None and text_stop is not None else None
    )
    sources = [("HEADER", header_span), ("TEXT", text_span)]
    if header.version != "FCS2.0":
        sources.reverse()
    # HEADER offsets are 0 for files over 99,999,999 bytes, and FCS 2.0 TEXT rarely has any.
    candidates = [(label, span) for label, span in sources if span is not None and span[1] > 0]
    if not candidates:
        raise FCSReadError(f"{name}: neither HEADER nor TEXT gives the DATA offsets")

    def rank(span: tuple[int, int]) -> int | None:
        start, stop = span
        if start < _HEADER_BYTES or header.text_start <= start <= header.text_stop:
            return None
        if start + needed > file_size:
            return None
        length = stop - start + 1
        if length == needed:
            return 0
        if length in (needed + 1, needed - 1):
            return 1
        if length > needed:
            return 2 if stop < file_size else 3
        return None

    ranked = [(rank(span), i) for i, (_, span) in enumerate(candidates) if rank(span) is not None]
    if not ranked:
        label, (start, stop) = candidates[0]
        length = stop - start + 1
        if stop >= file_size or (length >= needed and start + needed > file_size):
            raise FCSReadError(
                f"{name}: DATA ends at byte {max(stop, start + needed - 1)} but the file has "
                f"{file_size} bytes; the file is truncated, copy or export it again"
            )
        raise FCSReadError(
            f"{name}: $TOT={n_events} events need {needed} bytes of DATA but the {label} offsets "
            f"give {max(length, 0)} ({max(length, 0) // row_bytes} events); the file is damaged, "
            "export it again"
        )
    best_rank, best = min(ranked)
    label, (start, stop) = candidates[best]
    length = stop - start + 1
    spans = dict(candidates)
    if len(spans) == 2 and spans["HEADER"] != spans["TEXT"]:
        (hs, he), (ts, te) = spans["HEADER"], spans["TEXT"]
        notes.append(
            f"HEADER and TEXT disagree on the DATA offsets (HEADER {hs}-{he}, TEXT {ts}-{te}); "
            f"read the {label} offsets, which hold the $TOT events."
        )
    if best_rank == 1:
        notes.append(
            f"The DATA end offset ({stop}) is one byte off the $TOT events "
            f"({needed} bytes); read exactly $TOT events."
        )
    elif best_rank == 2:
        notes.append(
            f"The DATA segment holds {length - needed} bytes more than the $TOT events need; "
            "read the first $TOT events."
        )
    elif best_rank == 3:
        notes.append(
            f"The DATA end offset ({stop}) lies past the end of the file; read the $TOT events, "
            "which the file holds."
        )
    return start


def _decode_records(records: np.ndarray, *, text: dict[str, str], n_channels: int) -> np.ndarray:
    """DATA records -> float64 ``(n, p)``; integer values masked to ``$PnR`` bits as the standard says."""
    n = records.shape[0]
    if records.dtype.names is None:
        values = records.reshape(n, n_channels)
        if values.dtype.kind != "u":
            return values.astype(np.float64)
        bits = values.dtype.itemsize * 8
        masks = [_range_mask(text, k, bits) for k in range(1, n_channels + 1)]
        if any(m is not None for m in masks):
            full = (1 << bits) - 1
            mask_row = np.array([full if m is None else m for m in masks], dtype=values.dtype)
            values = np.bitwise_and(values, mask_row)
        return values.astype(np.float64)
    events = np.empty((n, n_channels), dtype=np.float64)
    for k, field_name in enumerate(records.dtype.names, start=1):
        column = records[field_name]
        mask = _range_mask(text, k, column.dtype.itemsize * 8)
        if mask is not None:
            column = np.bitwise_and(column, column.dtype.type(mask))
        events[:, k - 1] = column
    return events


def _range_mask(text: dict[str, str], k: int, bits: int) -> int | None:
    """Bit mask for integer channel ``k`` when ``$PnR`` (rounded up to a power of 2) < 2**bits."""
    try:
        value = int(float(text.get(f"p{k}r", "0")))
    except ValueError:
        return None
    if value <= 0:
        return None
    power = 1 << (value - 1).bit_length()
    return power - 1 if power < (1 << bits) else None


def _preprocess(events: np.ndarray, *, flow_data: flowio.FlowData, notes: list[str]) -> None:
    """In place, the same arithmetic as FlowIO's ``as_array(preprocess=True)`` (FlowKit 'raw')."""
    text = flow_data.text
    time_index = flow_data.time_index
    if time_index is not None and "timestep" in text:
        raw_step = text["timestep"].strip()
        try:
            step = float(raw_step) if raw_step else 1.0
        except ValueError:
            step = None
            notes.append(
                f"$TIMESTEP {raw_step[:20]!r} is not a number; the Time channel was left in ticks."
            )
        if step is not None and step != 1.0:
            events[:, time_index] = events[:, time_index] * step
    float_data = text.get("datatype", "").strip().upper() in ("F", "D")
    gains = np.ones(events.shape[1], dtype=np.float64)
    log_float = []
    for number, channel in flow_data.channels.items():
        index = number - 1
        decades, log0 = channel["pne"]
        if decades > 0:
            column = events[:, index]
            events[:, index] = (10 ** (decades * column / channel["pnr"])) * log0
            if float_data:
                log_float.append(channel["pnn"])
        gain = channel["png"]  # FlowIO already set the Time channel's gain to 1
        if gain != 1.0 and gain != 0:
            gains[index] = gain
    if np.any(gains != 1.0):
        np.divide(events, gains, out=events)  # x / 1.0 is exact, so one pass suits all channels
    if log_float:
        notes.append(
            f"Float data with log $PnE on {', '.join(log_float)}; decoded as the standard says."
        )


# --------------------------------------------------------------------------------------------------
# channels, spillover, data sets


def _unique_names(names: Sequence[str], *, notes: list[str]) -> list[str]:
    taken = set(names)
    seen: dict[str, int] = {}
    unique: list[str] = []
    renamed: dict[str, list[str]] = {}
    for raw in names:
        if raw not in seen:
            seen[raw] = 1
            unique.append(raw)
            continue
        count = seen[raw]
        while True:
            count += 1
            candidate = f"{raw}_{count}"
            if candidate not in taken:
                break
        seen[raw] = count
        taken.add(candidate)
        unique.append(candidate)
        renamed.setdefault(raw, [raw]).append(candidate)
    for raw, new in renamed.items():
        notes.append(f"Channel name {raw!r} repeats; renamed to {', '.join(new)}.")
    return unique


def _file_spill(
    text: dict[str, str], *, channels: list[str], name: str, notes: list[str]
) -> pd.DataFrame | None:
    key = next((k for k in _SPILL_KEYWORDS if text.get(k, "").strip()), None)
    if key is None:
        return None
    try:
        spill = parse_spillover(text[key], channels=channels, source=f"${key.upper()}")
    except FCSReadError as error:
        notes.append(f"{error}; the file's spillover was ignored.")
        return None
    if spill.shape[0] == 0:
        return None
    missing = [d for d in spill.index if d not in channels]
    if missing:
        notes.append(f"${key.upper()} names detectors that are not channels: {', '.join(missing)}.")
    return spill


def _count_data_sets(path: Path, *, text: dict[str, str], file_size: int, notes: list[str]) -> int:
    """Follow ``$NEXTDATA`` (relative to the current data set, per FCS 2.0) through the file."""
    count, offset, seen = 1, 0, {0}
    next_data = _offset_keyword(text, "nextdata") or 0
    while next_data > 0 and count < _MAX_DATA_SETS:
        offset += next_data
        if offset in seen or offset + _HEADER_BYTES > file_size:
            notes.append(f"$NEXTDATA points to byte {offset}, where no data set starts.")
            break
        seen.add(offset)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                following = flowio.FlowData(
                    path, only_text=True, nextdata_offset=offset, ignore_offset_discrepancy=True
                )
        except Exception:
            notes.append(f"A further data set announced at byte {offset} cannot be parsed.")
            break
        count += 1
        next_data = _offset_keyword(following.text, "nextdata") or 0
    return count
