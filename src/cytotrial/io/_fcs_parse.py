"""Parsing an FCS file's HEADER, TEXT and DATA segments for :func:`cytotrial.io.read_fcs`.

HEADER is checked here, TEXT is parsed by FlowIO (through :mod:`cytotrial._flowkit`, which works
around what FlowIO 1.4 gets wrong), DATA is located and decoded here with NumPy in one pass. Every
problem becomes an :class:`~cytotrial.errors.FCSReadError` naming the file; whatever had to be
worked around is appended to ``notes``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flowio.exceptions import FCSParsingError

from .._flowkit import FCSText, UnreadableText, read_text
from ..errors import FCSReadError

__all__ = [
    "HEADER_BYTES",
    "Header",
    "RowLayout",
    "byte_order",
    "choose_data_start",
    "decode_records",
    "file_size",
    "int_keyword",
    "offset_keyword",
    "one_line",
    "parse_header",
    "parse_text",
    "preprocess",
    "row_layout",
    "unpack_integers",
]

HEADER_BYTES = 58


# --------------------------------------------------------------------------------------------------
# HEADER and TEXT


@dataclass(frozen=True)
class Header:
    """The FCS HEADER: version and the byte offsets of TEXT and DATA (0 where not given)."""

    version: str
    text_start: int
    text_stop: int
    data_start: int
    data_stop: int


def one_line(message: str) -> str:
    """``message`` with every run of white space (newlines included) made one blank."""
    return " ".join(message.split())


def file_size(path: Path) -> int:
    """Size in bytes of a readable, non-empty file; FCSReadError otherwise."""
    name = path.name
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FCSReadError(f"{name}: file not found; check the path in the sample sheet") from None
    except OSError as error:
        raise FCSReadError(f"{name}: cannot be opened ({error.strerror or error})") from None
    if path.is_dir():
        raise FCSReadError(f"{name}: is a folder, not an FCS file")
    if not os.access(path, os.R_OK):
        raise FCSReadError(f"{name}: cannot be opened (permission denied)")
    if stat.st_size == 0:
        raise FCSReadError(f"{name}: the file is empty (0 bytes); copy or export it again")
    return int(stat.st_size)


def parse_header(raw: bytes, *, name: str, file_size: int) -> Header:
    """The HEADER from the file's first bytes; FCSReadError if it is not an FCS HEADER."""
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
    return Header(raw[:6].decode("ascii"), text_start, text_stop, data_start, data_stop)


def parse_text(path: Path, *, header: Header, file_size: int) -> FCSText:
    """HEADER and TEXT via FlowIO, without its DATA reader and without its offset checks.

    FlowIO refuses a file whose DATA end offset (TEXT for FCS 3.x, HEADER for 2.0) lies beyond the
    file, or an FCS 3.x TEXT without $BEGINDATA/$ENDDATA; the HEADER offsets are then tried. Which
    offsets hold the events is judged afterwards (:func:`choose_data_start`).
    """
    name = path.name
    for use_header_offsets in (False, True):
        try:
            return read_text(path, use_header_offsets=use_header_offsets)
        except OSError as error:  # the file went away or changed permissions since it was checked
            raise FCSReadError(f"{name}: cannot be opened ({error.strerror or error})") from None
        except UnreadableText as error:
            key = error.missing_keyword
            if key is not None:
                if key in ("begindata", "enddata") and not use_header_offsets:
                    continue  # FCS 3.x without $BEGINDATA/$ENDDATA: the HEADER offsets may serve
                keyword = f"${key.upper()}" if key else "a required keyword"
                raise FCSReadError(f"{name}: TEXT lacks the required keyword {keyword}") from None
            if error.data_past_end:
                continue
            raise _unreadable_text_error(error, name=name) from None
    stop = header.data_stop
    where = f"ends at byte {stop}" if stop else "ends"
    raise FCSReadError(
        f"{name}: DATA {where} past the end of the file ({file_size} bytes); "
        "the file is truncated, copy or export it again"
    )


def _unreadable_text_error(error: UnreadableText, *, name: str) -> FCSReadError:
    """The one-line error for a TEXT FlowIO refused: the keyword and the problem, never a value."""
    if error.bad_number is not None:
        keyword, what = error.bad_number
        return FCSReadError(f"{name}: {keyword} is not {what}; the TEXT segment is damaged")
    cause = error.cause
    if isinstance(cause, FCSParsingError):
        return FCSReadError(
            f"{name}: the HEADER and TEXT offsets of the segments cannot be right; "
            "the file is damaged, export it again"
        )
    return FCSReadError(
        f"{name}: the TEXT segment cannot be parsed ({type(cause).__name__}); "
        "the file is damaged, export it again"
    )


def int_keyword(text: dict[str, str], key: str, *, name: str) -> int:
    """A required whole-number keyword (``key`` as FlowIO has it: lower case, no ``$``)."""
    value = text.get(key)
    if value is None:
        raise FCSReadError(f"{name}: TEXT lacks the required keyword ${key.upper()}")
    try:
        return int(value.strip())
    except ValueError:
        raise FCSReadError(
            f"{name}: ${key.upper()} is not a whole number; the TEXT segment is damaged"
        ) from None


def offset_keyword(text: dict[str, str], key: str) -> int | None:
    """A byte offset keyword, or ``None`` when absent or not a number."""
    value = text.get(key, "").strip()
    return int(value) if value.isdigit() else None


# --------------------------------------------------------------------------------------------------
# DATA: layout and location


_ORDER_DIGITS = re.compile(r"^\d+(,\d+)*$")


def byte_order(text: dict[str, str], *, name: str) -> str:
    """NumPy byte order (``"<"`` or ``">"``) from ``$BYTEORD``.

    ``1,2,...,k`` is little-endian and ``k,...,2,1`` big-endian, for any ``k`` (``1,2,3,4`` and
    ``4,3,2,1`` are what FCS 3.1 allows; FCS 2.0 and 3.0 writers also use ``1,2``, ``2,1``, ...).
    """
    order = text.get("byteord", "").replace(" ", "")
    if _ORDER_DIGITS.match(order):
        digits = [int(d) for d in order.split(",")]
        ascending = list(range(1, len(digits) + 1))
        if digits == ascending:
            return "<"
        if digits == ascending[::-1]:
            return ">"
        shown = f" {order}" if len(order) <= 40 else ""  # digits and commas only: no free text
        raise FCSReadError(
            f"{name}: $BYTEORD{shown} is a mixed byte order, which is not supported "
            "(only little- or big-endian order)"
        )
    raise FCSReadError(
        f"{name}: $BYTEORD is not a byte order (comma-separated byte numbers such as 1,2,3,4)"
    )


_NUMPY_WIDTHS = (8, 16, 32, 64)
_MAX_BITS = 64


@dataclass(frozen=True)
class RowLayout:
    """How one event (one row of DATA) is stored.

    ``dtype`` is the NumPy dtype of a row when NumPy reads rows as they are (float and double data,
    integers of 8, 16, 32 and 64 bits: a sub-array for one width, else a structured dtype);
    ``None`` for integers of other widths, which are unpacked from the bit stream
    (:func:`unpack_integers`). ``widths`` are the bits of each channel (integer data).
    """

    dtype: np.dtype | None
    widths: tuple[int, ...]
    order: str

    @property
    def row_bits(self) -> int:
        """Bits of one event."""
        return self.dtype.itemsize * 8 if self.dtype is not None else sum(self.widths)

    def nbytes(self, n_events: int) -> int:
        """Bytes that ``n_events`` events take (the bit stream is not padded between events)."""
        return -(-n_events * self.row_bits // 8)

    def events_in(self, n_bytes: int) -> int:
        """Whole events that ``n_bytes`` bytes hold."""
        return max(n_bytes, 0) * 8 // self.row_bits


def _integer_widths(text: dict[str, str], *, n_channels: int, name: str) -> list[int]:
    """``$PnB`` of every channel of integer data: whole numbers of bits from 1 to 64."""
    widths = []
    for k in range(1, n_channels + 1):
        value = text.get(f"p{k}b", "").strip()
        if not value:
            raise FCSReadError(f"{name}: TEXT lacks the required keyword $P{k}B")
        if not value.isdigit():
            raise FCSReadError(
                f"{name}: $P{k}B is not a whole number of bits; the TEXT segment is damaged"
            )
        width = int(value)
        if not 1 <= width <= _MAX_BITS:
            raise FCSReadError(
                f"{name}: $P{k}B is {width}; integer channels can be 1 to {_MAX_BITS} bits"
            )
        widths.append(width)
    return widths


def row_layout(text: dict[str, str], *, n_channels: int, name: str) -> RowLayout:
    """The layout of one event from ``$DATATYPE``, ``$PnB`` and ``$BYTEORD``.

    Integer data may have any width from 1 to 64 bits per channel: FCS 2.0 and 3.0 describe DATA as
    a continuous bit stream and ``$PnB`` as the bits each value takes (``$PnB/10/`` packs 10-bit
    values without padding); FCS 3.1 keeps widths that are whole bytes (24-bit values, written by
    some instruments, included).
    """
    data_type = text.get("datatype", "").strip().upper()
    order = byte_order(text, name=name)
    if data_type == "F":
        return RowLayout(np.dtype((f"{order}f4", (n_channels,))), (32,) * n_channels, order)
    if data_type == "D":
        return RowLayout(np.dtype((f"{order}f8", (n_channels,))), (64,) * n_channels, order)
    if data_type == "A":
        raise FCSReadError(f"{name}: ASCII DATA ($DATATYPE A) is not supported; export as float")
    if data_type != "I":
        raise FCSReadError(f"{name}: $DATATYPE is not one of I, F, D")
    widths = _integer_widths(text, n_channels=n_channels, name=name)
    if any(w not in _NUMPY_WIDTHS for w in widths):
        return RowLayout(None, tuple(widths), order)
    if len(set(widths)) == 1:
        dtype = np.dtype((f"{order}u{widths[0] // 8}", (n_channels,)))
    else:
        dtype = np.dtype([(f"p{k}", f"{order}u{w // 8}") for k, w in enumerate(widths, start=1)])
    return RowLayout(dtype, tuple(widths), order)


_Span = tuple[int, int]


def _data_spans(header: Header, text: dict[str, str], *, name: str) -> list[tuple[str, _Span]]:
    """The DATA spans HEADER and TEXT give, the standard's choice first (TEXT for FCS 3.x)."""
    header_span = (header.data_start, header.data_stop)
    text_start, text_stop = offset_keyword(text, "begindata"), offset_keyword(text, "enddata")
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
    return candidates


def _fit(span: _Span, *, header: Header, needed: int, file_size: int) -> int | None:
    """How well a DATA span holds ``needed`` bytes, or ``None`` when it cannot hold them.

    0: exactly; 1: one byte off; 2: longer; 3: longer and past the end of the file. ``None`` also
    when the span starts inside HEADER or TEXT.
    """
    start, stop = span
    if start < HEADER_BYTES or header.text_start <= start <= header.text_stop:
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


def _no_fit_error(
    label: str, span: _Span, *, n_events: int, layout: RowLayout, file_size: int, name: str
) -> FCSReadError:
    """The error for a file whose DATA offsets (of ``label``, the standard's choice) fit nowhere."""
    needed = layout.nbytes(n_events)
    start, stop = span
    length = stop - start + 1
    if stop >= file_size or (length >= needed and start + needed > file_size):
        return FCSReadError(
            f"{name}: DATA ends at byte {max(stop, start + needed - 1)} but the file has "
            f"{file_size} bytes; the file is truncated, copy or export it again"
        )
    return FCSReadError(
        f"{name}: $TOT={n_events} events need {needed} bytes of DATA but the {label} offsets "
        f"give {max(length, 0)} ({layout.events_in(length)} events); the file is damaged, "
        "export it again"
    )


def _note_repairs(
    candidates: list[tuple[str, _Span]],
    *,
    label: str,
    span: _Span,
    fit: int,
    needed: int,
    notes: list[str],
) -> None:
    """Note a HEADER/TEXT disagreement and any fit but an exact one of the chosen ``span``."""
    start, stop = span
    length = stop - start + 1
    spans = dict(candidates)
    if len(spans) == 2 and spans["HEADER"] != spans["TEXT"]:
        (hs, he), (ts, te) = spans["HEADER"], spans["TEXT"]
        notes.append(
            f"HEADER and TEXT disagree on the DATA offsets (HEADER {hs}-{he}, TEXT {ts}-{te}); "
            f"read the {label} offsets, which hold the $TOT events."
        )
    if fit == 1:
        notes.append(
            f"The DATA end offset ({stop}) is one byte off the $TOT events "
            f"({needed} bytes); read exactly $TOT events."
        )
    elif fit == 2:
        notes.append(
            f"The DATA segment holds {length - needed} bytes more than the $TOT events need; "
            "read the first $TOT events."
        )
    elif fit == 3:
        notes.append(
            f"The DATA end offset ({stop}) lies past the end of the file; read the $TOT events, "
            "which the file holds."
        )


def choose_data_start(
    *,
    header: Header,
    text: dict[str, str],
    n_events: int,
    layout: RowLayout,
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
    needed = layout.nbytes(n_events)
    candidates = _data_spans(header, text, name=name)
    fits = [_fit(span, header=header, needed=needed, file_size=file_size) for _, span in candidates]
    ranked = [(fit, i) for i, fit in enumerate(fits) if fit is not None]
    if not ranked:
        label, span = candidates[0]
        raise _no_fit_error(
            label, span, n_events=n_events, layout=layout, file_size=file_size, name=name
        )
    best_fit, best = min(ranked)
    label, span = candidates[best]
    _note_repairs(candidates, label=label, span=span, fit=best_fit, needed=needed, notes=notes)
    return span[0]


# --------------------------------------------------------------------------------------------------
# DATA: decoding and preprocessing


def decode_records(records: np.ndarray, *, text: dict[str, str], n_channels: int) -> np.ndarray:
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


def unpack_integers(
    raw: np.ndarray, *, layout: RowLayout, text: dict[str, str], n_events: int
) -> np.ndarray:
    """Integers of any widths (``layout.widths``) from DATA's bytes -> float64 ``(n, p)``.

    DATA is one bit stream, events and values back to back. It follows ``$BYTEORD``: a
    little-endian file fills each byte from its least significant bit, a big-endian one from its
    most significant bit, so that values of whole bytes read as little- or big-endian integers
    (24 bits as 3 bytes in the file's byte order). Each value is masked to ``$PnR`` as the standard
    says.
    """
    widths = layout.widths
    if all(width % 8 == 0 for width in widths):
        rows = raw.reshape(n_events, sum(widths) // 8)
        columns = _whole_bytes(rows, widths, big=layout.order == ">")
    else:
        columns = _bit_stream(raw, widths, big=layout.order == ">", n_events=n_events)
    events = np.empty((n_events, len(widths)), dtype=np.float64)
    for k, (width, value) in enumerate(zip(widths, columns), start=1):
        range_mask = _range_mask(text, k, width)
        if range_mask is not None:
            value &= np.uint64(range_mask)
        events[:, k - 1] = value
    return events


def _whole_bytes(rows: np.ndarray, widths: tuple[int, ...], *, big: bool) -> Iterator[np.ndarray]:
    """Each channel's values from whole bytes (``rows``: one event of bytes per row)."""
    start = 0
    for width in widths:
        n_bytes = width // 8
        value = np.zeros(rows.shape[0], dtype=np.uint64)
        for j in range(n_bytes):
            shift = 8 * (n_bytes - 1 - j) if big else 8 * j
            value |= rows[:, start + j].astype(np.uint64) << np.uint64(shift)
        start += n_bytes
        yield value


def _bit_stream(
    raw: np.ndarray, widths: tuple[int, ...], *, big: bool, n_events: int
) -> Iterator[np.ndarray]:
    """Each channel's values from a bit stream whose values need not start on a byte."""
    reach = (max(widths) + 14) // 8  # bytes a value may touch, whatever bit it starts at
    padded = np.zeros(raw.size + reach, dtype=np.uint8)
    padded[: raw.size] = raw
    starts = np.arange(n_events, dtype=np.int64) * sum(widths)
    offset = 0
    for width in widths:
        bits = starts + offset
        first, shift = bits >> 3, (bits & 7).astype(np.uint64)
        n_bytes = (width + 14) // 8
        mask = np.uint64((1 << width) - 1)
        if n_bytes <= 8:  # the bytes holding the value fit one 64-bit window
            window = np.zeros(n_events, dtype=np.uint64)
            for j in range(n_bytes):
                place = 8 * (n_bytes - 1 - j) if big else 8 * j
                window |= padded[first + j].astype(np.uint64) << np.uint64(place)
            if big:
                yield (window >> (np.uint64(8 * n_bytes - width) - shift)) & mask
            else:
                yield (window >> shift) & mask
        else:
            yield _wide_values(padded, first, shift.astype(np.int64), width, big=big) & mask
        offset += width


def _wide_values(
    padded: np.ndarray, first: np.ndarray, shift: np.ndarray, width: int, *, big: bool
) -> np.ndarray:
    """Values of 58 to 64 bits that start inside a byte: byte by byte (9 bytes exceed 64 bits)."""
    value = np.zeros(first.size, dtype=np.uint64)
    for j in range((width + 14) // 8):
        byte = padded[first + j].astype(np.uint64)
        # where bit 0 of this byte lands in the value (negative: below the value's bit 0)
        place = width + shift - 8 - 8 * j if big else 8 * j - shift
        left = np.clip(place, 0, 63).astype(np.uint64)
        right = np.clip(-place, 0, 63).astype(np.uint64)
        part = np.where(place >= 0, byte << left, byte >> right)
        value |= np.where(place < 64, part, np.uint64(0))
    return value


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


def preprocess(events: np.ndarray, *, fcs_text: FCSText, notes: list[str]) -> None:
    """In place, the same arithmetic as FlowIO's ``as_array(preprocess=True)`` (FlowKit 'raw')."""
    text = fcs_text.text
    time_index = fcs_text.time_index
    if time_index is not None and "timestep" in text:
        raw_step = text["timestep"].strip()
        try:
            step = float(raw_step) if raw_step else 1.0
        except ValueError:
            step = None
            notes.append("$TIMESTEP is not a number; the Time channel was left in ticks.")
        if step is not None and step != 1.0:
            events[:, time_index] = events[:, time_index] * step
    float_data = text.get("datatype", "").strip().upper() in ("F", "D")
    gains = np.ones(events.shape[1], dtype=np.float64)
    log_float = []
    for number, channel in fcs_text.channels.items():
        index = number - 1
        decades, log0 = channel.pne
        if decades > 0:
            column = events[:, index]
            events[:, index] = (10 ** (decades * column / channel.pnr)) * log0
            if float_data:
                log_float.append(f"$P{number}E")
        gain = channel.png  # FlowIO already set the Time channel's gain to 1
        if gain != 1.0 and gain != 0:
            gains[index] = gain
    if np.any(gains != 1.0):
        np.divide(events, gains, out=events)  # x / 1.0 is exact, so one pass suits all channels
    if log_float:
        notes.append(f"Float data with log {', '.join(log_float)}; decoded as the standard says.")
