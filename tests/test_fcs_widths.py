"""Integer DATA of every bit width the FCS standard allows, and DATA offsets only in TEXT.

Each file is written here byte by byte (a bit packer of its own, independent of the reader), and
the decoded events are compared with the values written; where FlowIO/FlowKit can read a file (or
the same values written at a width they know), with theirs too.

FCS 2.0 and 3.0 describe DATA as a continuous bit stream and ``$PnB`` as the bits a value takes
(``$PnB/10/`` packs 10-bit values without padding); FCS 3.1 keeps whole-byte widths, 24 bits
among them. The stream follows ``$BYTEORD``: little-endian files fill each byte from its least
significant bit, big-endian ones from its most significant bit, so whole-byte values read as
little- or big-endian integers. A HEADER may leave its DATA offsets blank or zero (FCS 3.x, for
DATA past byte 99,999,999): the offsets are then in TEXT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytotrial.errors import FCSReadError
from cytotrial.io import inspect_fcs, read_fcs


def pack(values: np.ndarray, widths: list[int], *, order: str) -> bytes:
    """Events (rows) as one bit stream: ``order`` ``"<"`` fills bytes from bit 0, ``">"`` from bit 7."""
    bits: list[int] = []
    for row in np.asarray(values, dtype=object):
        for value, width in zip(row, widths):
            value = int(value)
            positions = range(width) if order == "<" else reversed(range(width))
            bits += [(value >> b) & 1 for b in positions]
    bits += [0] * (-len(bits) % 8)
    out = bytearray()
    for i in range(0, len(bits), 8):
        chunk = bits[i : i + 8]
        if order == "<":
            out.append(sum(bit << j for j, bit in enumerate(chunk)))
        else:
            out.append(sum(bit << (7 - j) for j, bit in enumerate(chunk)))
    return bytes(out)


def fcs_file(
    path: Path,
    data: bytes,
    *,
    n_events: int,
    widths: list[int],
    ranges: list[int] | None = None,
    order: str = "<",
    byteord: str | None = None,
    version: str = "2.0",
    header_offsets: str = "numbers",
    text_offsets: bool = True,
    gap: int = 0,
    keywords: dict[str, str | None] | None = None,
) -> Path:
    """An FCS file with integer DATA ``data``; ``header_offsets``: ``numbers``, ``zero``, ``blank``.

    ``keywords`` are set as given (``None``: left out).

    ``gap`` bytes lie between TEXT and DATA (written sparse: a file past 99,999,999 bytes costs
    nothing on disk).
    """
    p = len(widths)
    pairs = {
        "$BYTEORD": byteord or ("1,2,3,4" if order == "<" else "4,3,2,1"),
        "$DATATYPE": "I",
        "$MODE": "L",
        "$NEXTDATA": "0",
        "$PAR": str(p),
        "$TOT": str(n_events),
    }
    for k, width in enumerate(widths, start=1):
        pairs[f"$P{k}N"] = f"CH{k}"
        pairs[f"$P{k}B"] = str(width)
        pairs[f"$P{k}E"] = "0,0"
        pairs[f"$P{k}R"] = str(ranges[k - 1] if ranges else 2**width)
    for key, value in (keywords or {}).items():
        if value is None:
            del pairs[key]
        else:
            pairs[key] = value
    if text_offsets:
        pairs["$BEGINDATA"] = pairs["$ENDDATA"] = "0" * 12

    def encode() -> bytes:
        return ("/" + "".join(f"{k}/{v}/" for k, v in pairs.items())).encode("ascii")

    text_stop = 58 + len(encode()) - 1
    data_start = text_stop + 1 + gap
    data_stop = data_start + len(data) - 1
    if text_offsets:
        pairs["$BEGINDATA"], pairs["$ENDDATA"] = f"{data_start:012d}", f"{data_stop:012d}"
    text = encode()
    assert len(text) == text_stop - 58 + 1
    fields = [58, text_stop, data_start, data_stop, 0, 0]
    offsets = "".join(f"{v:>8d}" for v in fields[:2])
    if header_offsets == "numbers":
        offsets += "".join(f"{v:>8d}" for v in fields[2:4])
    elif header_offsets == "zero":
        offsets += f"{0:>8d}" * 2
    else:
        offsets += " " * 16
    offsets += f"{0:>8d}" * 2
    with open(path, "wb") as handle:
        handle.write(f"FCS{version}    {offsets}".encode("ascii") + text)
        handle.seek(data_start)
        handle.write(data)
    return path


def random_values(rng: np.random.Generator, n: int, widths: list[int]) -> np.ndarray:
    """``n`` events whose values use every bit of their width (extremes included)."""
    columns = []
    for width in widths:
        top = 2**width - 1
        column = [int(v) for v in rng.integers(0, 2 ** min(width, 62), n)]
        if width > 62:
            column = [v | (int(rng.integers(0, 2 ** (width - 62))) << 62) for v in column]
        column[0], column[-1] = top, 0
        columns.append(column)
    return np.array(columns, dtype=object).T


def as_float(values: np.ndarray) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in values])


# --------------------------------------------------------------------------------------------------
# any bit width


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(
    ("version", "widths"),
    [
        ("3.1", [24, 24, 24]),  # whole bytes, as some instruments write
        ("3.0", [24, 16, 8, 40]),  # whole bytes of mixed widths
        ("2.0", [10, 10, 10, 10]),  # packed 10-bit values
        ("2.0", [12, 12, 12]),  # packed 12-bit values
        ("2.0", [1, 7, 9, 13, 31, 3]),  # any widths, values across byte boundaries
        ("3.0", [5, 64, 11, 56, 48, 63]),  # up to 64 bits at an odd bit offset
    ],
)
def test_integers_of_any_width_are_the_values_written(
    tmp_path: Path, order: str, version: str, widths: list[int]
) -> None:
    rng = np.random.default_rng(sum(widths))
    n = 37  # odd: the last event ends inside a byte for packed widths
    values = random_values(rng, n, widths)
    path = fcs_file(
        tmp_path / "widths.fcs",
        pack(values, widths, order=order),
        n_events=n,
        widths=widths,
        order=order,
        version=version,
    )
    data = read_fcs(path)
    assert data.n_events == n and data.notes == []
    if max(widths) <= 53:
        np.testing.assert_array_equal(data.events, values.astype(np.float64))
    else:  # float64 holds 53 bits: each value is the nearest float of the integer written
        np.testing.assert_array_equal(data.events, as_float(values))
    assert inspect_fcs(path)["status"] == "ok"


@pytest.mark.parametrize("order", ["<", ">"])
def test_24_bit_events_equal_flowkit_reading_the_same_values_at_32_bits(
    tmp_path: Path, order: str
) -> None:
    """FlowIO and FlowKit read integers of 8, 16 and 32 bits only: the same events at 32 bits."""
    flowkit = pytest.importorskip("flowkit")
    rng = np.random.default_rng(24)
    values = random_values(rng, 200, [24, 24, 24, 24])
    ranges = [2**24, 2**20, 1000, 2**24]  # $PnR masks bits above the range's power of 2
    wide = fcs_file(
        tmp_path / "32 bit.fcs",
        pack(values, [32] * 4, order=order),
        n_events=200,
        widths=[32] * 4,
        ranges=ranges,
        order=order,
        version="3.1",
    )
    narrow = fcs_file(
        tmp_path / "24 bit.fcs",
        pack(values, [24] * 4, order=order),
        n_events=200,
        widths=[24] * 4,
        ranges=ranges,
        order=order,
        byteord="1,2,3" if order == "<" else "3,2,1",
        version="3.1",
    )
    events = read_fcs(narrow).events
    reference = flowkit.Sample(wide).get_events(source="raw")
    np.testing.assert_array_equal(events, reference)
    np.testing.assert_array_equal(events, read_fcs(wide).events)
    masks = np.array([2**24 - 1, 2**20 - 1, 1023, 2**24 - 1], dtype=np.int64)
    np.testing.assert_array_equal(events, values.astype(np.int64) & masks)
    assert (events[:, 2] <= 1023).all() and events[:, 2].max() > 0


def test_packed_values_are_masked_to_their_range(tmp_path: Path) -> None:
    """$PnB/12/ with $PnR/1024/: the 2 bits above 10 are not part of the value (FCS 3.0, 3.4)."""
    values = np.array([[4095, 1024], [1023, 3000], [2048, 5]], dtype=object)
    path = fcs_file(
        tmp_path / "masked.fcs",
        pack(values, [12, 12], order=">"),
        n_events=3,
        widths=[12, 12],
        ranges=[1024, 4096],
        order=">",
    )
    np.testing.assert_array_equal(read_fcs(path).events, [[1023, 1024], [1023, 3000], [0, 5]])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "$P2B is 0; integer channels can be 1 to 64 bits"),
        ("65", "$P2B is 65; integer channels can be 1 to 64 bits"),
        ("sixteen bits of J. Doe", "$P2B is not a whole number of bits"),
        ("", "lacks the required keyword $P2B"),
    ],
)
def test_a_width_the_standard_does_not_allow_is_one_line_without_the_value(
    tmp_path: Path, value: str, says: str
) -> None:
    path = fcs_file(
        tmp_path / "bad width.fcs",
        bytes(8),
        n_events=2,
        widths=[16, 16],
        version="3.1",
        keywords={"$P2B": value or None},
    )
    with pytest.raises(FCSReadError) as caught:
        read_fcs(path)
    message = str(caught.value)
    assert says in message and path.name in message and "\n" not in message
    assert "Doe" not in message


def test_packed_data_cut_short_is_truncated(tmp_path: Path) -> None:
    values = np.arange(30, dtype=object).reshape(10, 3)
    path = fcs_file(
        tmp_path / "cut.fcs", pack(values, [10] * 3, order="<"), n_events=10, widths=[10] * 3
    )
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    with pytest.raises(FCSReadError, match="truncated"):
        read_fcs(path)


def test_byte_orders_of_any_length_and_a_mixed_one(tmp_path: Path) -> None:
    values = np.array([[1, 2**20], [3, 4]], dtype=object)
    for byteord, order in [("1,2,3", "<"), ("3,2,1", ">"), ("1,2", "<"), ("2,1", ">")]:
        path = fcs_file(
            tmp_path / "order.fcs",
            pack(values, [24, 24], order=order),
            n_events=2,
            widths=[24, 24],
            byteord=byteord,
        )
        np.testing.assert_array_equal(read_fcs(path).events, values.astype(float))
    path = fcs_file(tmp_path / "pdp.fcs", bytes(16), n_events=2, widths=[32, 32], byteord="3,4,1,2")
    with pytest.raises(FCSReadError, match=r"\$BYTEORD 3,4,1,2 is a mixed byte order"):
        read_fcs(path)
    path = fcs_file(
        tmp_path / "words.fcs", bytes(16), n_events=2, widths=[32, 32], byteord="Dr. Smith"
    )
    with pytest.raises(FCSReadError, match=r"\$BYTEORD is not a byte order") as caught:
        read_fcs(path)
    assert "Smith" not in str(caught.value)


# --------------------------------------------------------------------------------------------------
# DATA offsets only in TEXT


@pytest.mark.parametrize("version", ["3.0", "3.1", "2.0"])
@pytest.mark.parametrize("header_offsets", ["zero", "blank"])
def test_data_offsets_only_in_text(tmp_path: Path, version: str, header_offsets: str) -> None:
    values = np.array([[1, 2, 3], [400, 500, 600], [65535, 0, 7]], dtype=object)
    path = fcs_file(
        tmp_path / f"{header_offsets}.fcs",
        pack(values, [16] * 3, order="<"),
        n_events=3,
        widths=[16] * 3,
        version=version,
        header_offsets=header_offsets,
    )
    data = read_fcs(path)
    np.testing.assert_array_equal(data.events, values.astype(float))
    assert data.notes == [] and inspect_fcs(path)["status"] == "ok"


def test_zero_header_offsets_read_as_flowkit_reads_them(tmp_path: Path) -> None:
    flowkit = pytest.importorskip("flowkit")
    rng = np.random.default_rng(5)
    values = random_values(rng, 50, [16, 16, 32])
    path = fcs_file(
        tmp_path / "zero.fcs",
        pack(values, [16, 16, 32], order=">"),
        n_events=50,
        widths=[16, 16, 32],
        order=">",
        version="3.1",
        header_offsets="zero",
    )
    np.testing.assert_array_equal(
        read_fcs(path).events,
        flowkit.Sample(path, ignore_offset_discrepancy=True).get_events("raw"),
    )


def test_flowio_itself_refuses_blank_header_offsets(tmp_path: Path) -> None:
    """Why the reader hands FlowIO blank DATA offsets as zeros. If this fails, FlowIO reads them."""
    import flowio

    path = fcs_file(
        tmp_path / "blank.fcs",
        bytes(4),
        n_events=2,
        widths=[8],
        version="3.1",
        header_offsets="blank",
    )
    with open(path, "rb") as handle, pytest.raises(ValueError, match="invalid literal for int"):
        flowio.FlowData(handle, only_text=True, nextdata_offset=0)
    np.testing.assert_array_equal(read_fcs(path).events, [[0], [0]])


@pytest.mark.parametrize("header_offsets", ["zero", "blank"])
def test_data_past_byte_99_999_999(tmp_path: Path, header_offsets: str) -> None:
    """A file over 100 MB as FCS 3.x writes it: DATA beyond byte 99,999,999, HEADER offsets 0."""
    import flowio

    rng = np.random.default_rng(99)
    values = random_values(rng, 1000, [16, 16, 32, 24])
    path = fcs_file(
        tmp_path / "large.fcs",
        pack(values, [16, 16, 32, 24], order="<"),
        n_events=1000,
        widths=[16, 16, 32, 24],
        version="3.1",
        header_offsets=header_offsets,
        gap=100_000_000,
    )
    assert path.stat().st_size > 100_000_000
    data = read_fcs(path)
    np.testing.assert_array_equal(data.events, values.astype(float))
    assert data.notes == []
    if header_offsets == "zero":  # FlowIO accepts zeros (not blanks) and reads 8-32 bit widths
        three = fcs_file(
            tmp_path / "large 3.fcs",
            pack(values[:, :3], [16, 16, 32], order="<"),
            n_events=1000,
            widths=[16, 16, 32],
            version="3.1",
            header_offsets="zero",
            gap=100_000_000,
        )
        reference = flowio.FlowData(three).as_array()
        np.testing.assert_array_equal(read_fcs(three).events, reference)
        np.testing.assert_array_equal(reference, data.events[:, :3])


def test_no_data_offsets_anywhere_is_one_line(tmp_path: Path) -> None:
    path = fcs_file(
        tmp_path / "nowhere.fcs",
        bytes(6),
        n_events=3,
        widths=[16],
        version="2.0",
        header_offsets="blank",
        text_offsets=False,
    )
    with pytest.raises(FCSReadError, match="neither HEADER nor TEXT gives the DATA offsets"):
        read_fcs(path)
