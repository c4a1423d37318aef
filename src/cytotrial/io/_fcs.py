"""Reading FCS files: robust to instruments and versions, fast, and honest about what it read.

HEADER and TEXT are parsed by FlowIO (so keywords look exactly as in FlowKit's ``Sample.metadata``);
the DATA segment is decoded here with NumPy in one pass, which keeps a million-event file at the
speed of the disk and handles mixed bit widths, either byte order and inconsistent offsets. Events
are preprocessed as FlowKit's ``Sample`` does for its ``'raw'`` events (the FCS standard, as
GatingML 2.0 requires): the time channel scaled by ``$TIMESTEP``, log-amplified channels decoded
with ``$PnE``, channels divided by ``$PnG``. The segments themselves are parsed in ``_fcs_parse``.

This module deliberately imports neither FlowKit nor anything heavy: one job per FCS file must
start in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._flowkit import FCSText, UnreadableText, read_text
from ..errors import FCSReadError, MissingMarkerError
from ._fcs_parse import (
    HEADER_BYTES,
    Header,
    choose_data_start,
    decode_records,
    file_size,
    int_keyword,
    offset_keyword,
    one_line,
    parse_header,
    parse_text,
    preprocess,
    row_layout,
    unpack_integers,
)

__all__ = ["FCSData", "channel_index", "inspect_fcs", "parse_spillover", "read_fcs"]

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
    spill_problem
        Why the file's spillover keyword cannot be used, in one line naming the keyword and the
        problem (never its value): it cannot be parsed (``spill`` is then ``None``) or it names
        detectors that are not channels of the file. ``None`` when there is no keyword or it is
        usable. A file gated with its own spillover needs it usable.
    n_events_stated
        ``$TOT`` as the file states it.
    n_datasets
        Number of data sets in the file (only the first is read).
    fcs_version
        ``"FCS3.1"`` etc.
    notes
        Human-readable remarks about what reading had to work around (one short sentence each).
        They name keywords and channels, never keyword values.
    flags
        Quality flags set on the data set before gating (e.g. ``non_finite:FL1-A``), reported as
        the sample's QC flags; empty after reading.
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
    spill_problem: str | None = None
    flags: list[str] = field(default_factory=list)

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
        channels = ", ".join(f"$P{i + 1}N" for i in hits)
        raise MissingMarkerError(
            f"{file}: marker {name!r} labels several channels ({channels}); name the channel instead"
        )
    raise MissingMarkerError(
        f"{file}: none of its {len(data.channels)} channels is named or labelled {name!r}; "
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
    except (IndexError, ValueError, OverflowError):
        raise FCSReadError(
            f"{source}: spillover does not start with the number of detectors"
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
    if not np.isfinite(values).all():
        raise FCSReadError(f"{source}: spillover holds a value that is not a finite number")
    if channels is not None and names and all(t.isdigit() for t in names):
        numbers = [int(t) for t in names]
        if not set(names) & set(channels) and all(1 <= k <= len(channels) for k in numbers):
            names = [channels[k - 1] for k in numbers]
    if len(set(names)) != len(names):
        raise FCSReadError(f"{source}: spillover names a detector twice")
    return pd.DataFrame(values, index=pd.Index(names), columns=pd.Index(names))


# --------------------------------------------------------------------------------------------------
# reading


def read_fcs(path: str | Path, *, events: bool = True) -> FCSData:
    """Read and preprocess the first data set of an FCS file.

    Handles FCS 2.0/3.0/3.1, integer (8/16/32/64-bit, mixed widths), float and double data in
    either byte order, HEADER/TEXT offset disagreements, a DATA end offset one byte off, repeated
    channel names and files with several data sets. Whatever had to be worked around is listed in
    ``notes``; the number of events read always equals ``$TOT``.

    Parameters
    ----------
    path
        The FCS file.
    events
        ``False``: read the HEADER and TEXT only (channels, markers, spillover, ``$TOT`` in
        ``n_events_stated``), with no event (``events`` has 0 rows): the layout is checked, the
        DATA segment is not read.

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
        return _read_first_data_set(path, events=events)
    except FCSReadError as error:
        message = one_line(str(error))
        if message == str(error):
            raise
        raise FCSReadError(message) from None


def _read_first_data_set(path: Path, *, events: bool = True) -> FCSData:
    name = path.name
    size = file_size(path)
    try:
        with open(path, "rb") as handle:
            raw_header = handle.read(HEADER_BYTES)
    except OSError as error:
        raise FCSReadError(f"{name}: cannot be opened ({error.strerror or error})") from None
    header = parse_header(raw_header, name=name, file_size=size)
    fcs_text = parse_text(path, header=header, file_size=size)
    text = fcs_text.text
    notes: list[str] = []

    n_channels, n_events = _check_layout(fcs_text, name=name)
    if not events:
        values = np.empty((0, n_channels), dtype=np.float64)
    else:
        values = _read_events(
            path,
            header=header,
            text=text,
            n_channels=n_channels,
            n_events=n_events,
            file_size=size,
            notes=notes,
        )
        preprocess(values, fcs_text=fcs_text, notes=notes)

    channels = _unique_names(fcs_text.pnn_labels, notes=notes)
    markers = [str(label).strip() for label in fcs_text.pns_labels]
    spill, spill_problem = _file_spill(text, channels=channels, notes=notes)
    _note_non_finite(values, notes=notes)
    n_datasets = _count_data_sets(path, text=text, file_size=size, notes=notes)
    if n_datasets > 1:
        notes.append(f"The file holds {n_datasets} data sets; only the first was read.")

    return FCSData(
        path=path,
        events=values,
        channels=channels,
        markers=markers,
        spill=spill,
        n_events_stated=n_events,
        n_datasets=n_datasets,
        fcs_version=header.version,
        notes=notes,
        keywords=dict(text),
        spill_problem=spill_problem,
    )


def _check_layout(fcs_text: FCSText, *, name: str) -> tuple[int, int]:
    """``($PAR, $TOT)`` of a list-mode data set whose channels are numbered 1..$PAR."""
    text = fcs_text.text
    n_channels = int_keyword(text, "par", name=name)
    if n_channels < 1:
        raise FCSReadError(f"{name}: $PAR is {n_channels}; the file declares no channels")
    numbers = sorted(int(k) for k in fcs_text.channels)
    if numbers != list(range(1, n_channels + 1)):
        raise FCSReadError(
            f"{name}: $PAR is {n_channels} but $PnN is given for {len(numbers)} channels; "
            "the TEXT segment is damaged"
        )
    n_events = int_keyword(text, "tot", name=name)
    if n_events == 0:
        raise FCSReadError(f"{name}: $TOT is 0, the file holds no events; remove it from the sheet")
    if n_events < 0:
        raise FCSReadError(f"{name}: $TOT is {n_events}; the TEXT segment is damaged")

    mode = text.get("mode", "L").strip().upper() or "L"
    if mode != "L":
        kind = f"{mode!r} (histogram data)" if mode in ("C", "U") else "not L"  # never free text
        raise FCSReadError(f"{name}: $MODE is {kind}; only list-mode (L) files hold events")
    return n_channels, n_events


def _read_events(
    path: Path,
    *,
    header: Header,
    text: dict[str, str],
    n_channels: int,
    n_events: int,
    file_size: int,
    notes: list[str],
) -> np.ndarray:
    """The ``$TOT`` events of DATA, decoded to float64 (not yet preprocessed)."""
    name = path.name
    layout = row_layout(text, n_channels=n_channels, name=name)
    needed = layout.nbytes(n_events)
    start = choose_data_start(
        header=header,
        text=text,
        n_events=n_events,
        layout=layout,
        file_size=file_size,
        name=name,
        notes=notes,
    )
    if start + needed > file_size:
        raise FCSReadError(
            f"{name}: the file ends inside DATA ({file_size - start} of the {needed} bytes that "
            f"$TOT={n_events} events need); the file is truncated, copy or export it again"
        )
    packed = layout.dtype is None  # integers of widths NumPy has no type for: from the bit stream
    dtype, count = (np.dtype(np.uint8), needed) if packed else (layout.dtype, n_events)
    try:
        records = np.fromfile(path, dtype=dtype, count=count, offset=start)
    except OSError as error:
        raise FCSReadError(f"{name}: DATA cannot be read ({error.strerror or error})") from None
    if records.shape[0] != count:  # the file changed under us
        raise FCSReadError(f"{name}: DATA could not be read in full; the file is truncated")
    if packed:
        return unpack_integers(records, layout=layout, text=text, n_events=n_events)
    return decode_records(records, text=text, n_channels=n_channels)


def inspect_fcs(path: str | Path) -> dict[str, str | int | None]:
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
    row: dict[str, str | int | None] = {
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
    except FCSReadError as error:  # the only error a bad file gives; a reader bug propagates
        row["message"] = one_line(str(error))
        return row
    row.update(
        events=data.n_events,
        channels=data.n_channels,
        markers=",".join(m for m in data.markers if m),
        spillover="yes" if data.spill is not None else "no",
        status="warning" if data.notes else "ok",
        message=one_line("; ".join(note.rstrip(".") for note in data.notes)),
    )
    return row


# --------------------------------------------------------------------------------------------------
# channels, spillover, data sets


def _unique_names(names: Sequence[str], *, notes: list[str]) -> list[str]:
    taken = set(names)
    seen: dict[str, int] = {}
    unique: list[str] = []
    renamed: dict[str, list[str]] = {}
    for number, raw in enumerate(names, start=1):
        if raw not in seen:
            seen[raw] = 1
            unique.append(raw)
            renamed[raw] = [f"$P{number}N"]
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
        renamed[raw].append(f"$P{number}N (now with _{count})")
    for keywords in renamed.values():  # the keywords, never the name itself
        if len(keywords) > 1:
            notes.append(f"{', '.join(keywords)} repeat one channel name; made unique.")
    return unique


def _file_spill(
    text: dict[str, str], *, channels: list[str], notes: list[str]
) -> tuple[pd.DataFrame | None, str | None]:
    """The file's spillover matrix and, if it cannot be used, why (keyword and problem, no value)."""
    key = next((k for k in _SPILL_KEYWORDS if text.get(k, "").strip()), None)
    if key is None:
        return None, None
    keyword = f"${key.upper()}"
    try:
        spill = parse_spillover(text[key], channels=channels, source=keyword)
    except FCSReadError as error:
        problem = str(error)
        notes.append(f"{problem}; the file's spillover was ignored.")
        return None, problem
    if spill.shape[0] == 0:
        return None, None
    missing = [d for d in spill.index if d not in channels]
    if not missing:
        return spill, None
    problem = (
        f"{keyword} names {len(missing)} of its {spill.shape[0]} detectors after no channel "
        "of the file"
    )
    notes.append(f"{problem}.")
    return spill, problem


def _note_non_finite(events: np.ndarray, *, notes: list[str]) -> None:
    """Note, per channel (``$PnN``), how many values are NaN, +inf or -inf (counts only)."""
    with np.errstate(over="ignore", invalid="ignore"):
        suspects = np.flatnonzero(~np.isfinite(events.sum(axis=0)))
    parts = []
    for column in suspects:
        values = events[:, column]
        counts = (
            (int(np.count_nonzero(np.isnan(values))), "NaN"),
            (int(np.count_nonzero(values == np.inf)), "+inf"),
            (int(np.count_nonzero(values == -np.inf)), "-inf"),
        )
        found = [f"{n} {label}" for n, label in counts if n]
        if found:
            parts.append(f"$P{column + 1}N ({', '.join(found)})")  # keyword: no TEXT value
    if parts:
        notes.append(f"Non-finite values in {', '.join(parts)}.")


def _count_data_sets(path: Path, *, text: dict[str, str], file_size: int, notes: list[str]) -> int:
    """Follow ``$NEXTDATA`` (relative to the current data set, per FCS 2.0) through the file."""
    count, offset, seen = 1, 0, {0}
    next_data = offset_keyword(text, "nextdata") or 0
    while next_data > 0 and count < _MAX_DATA_SETS:
        offset += next_data
        if offset in seen or offset + HEADER_BYTES > file_size:
            notes.append(f"$NEXTDATA points to byte {offset}, where no data set starts.")
            break
        seen.add(offset)
        try:
            following = read_text(path, offset=offset)
        except (UnreadableText, OSError):
            notes.append(f"A further data set announced at byte {offset} cannot be parsed.")
            break
        count += 1
        next_data = offset_keyword(following.text, "nextdata") or 0
    return count
