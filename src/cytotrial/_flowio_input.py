"""What :func:`cytotrial._flowkit.read_text` hands FlowIO, and how it explains what FlowIO refuses.

Two of the FlowIO workarounds described in :mod:`cytotrial._flowkit` (4 and 5) need no private
attribute of FlowIO; their plain-Python parts live here: a view of an open FCS file whose blank
HEADER DATA offsets read as ``0``, and the search for the keyword whose value FlowIO could not
convert to a number (so that no message quotes the value).
"""

from __future__ import annotations

import re
from typing import BinaryIO

__all__ = ["bad_number", "blank_offsets_as_zero"]

_DATA_OFFSET_FIELDS = ((26, 34), (34, 42))  # HEADER bytes of the DATA begin and end offsets


class _PatchedFile:
    """A read-only view of an open file with some bytes replaced (:func:`blank_offsets_as_zero`)."""

    def __init__(self, handle: BinaryIO, patches: dict[int, bytes]) -> None:
        self._handle = handle
        self._patches = patches  # file position -> bytes read there instead
        self.name = getattr(handle, "name", "")

    def seek(self, position: int, whence: int = 0) -> int:
        return self._handle.seek(position, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def read(self, size: int = -1) -> bytes:
        at = self._handle.tell()
        data = bytearray(self._handle.read(size))
        for start, patch in self._patches.items():
            lo, hi = max(at, start), min(at + len(data), start + len(patch))
            if lo < hi:
                data[lo - at : hi - at] = patch[lo - start : hi - start]
        return bytes(data)

    def close(self) -> None:
        """The caller closes the file it opened."""


def blank_offsets_as_zero(handle: BinaryIO, offset: int) -> BinaryIO | _PatchedFile:
    """``handle``, or a view of it where blank HEADER DATA offset fields read as ``0``."""
    handle.seek(offset)
    header = handle.read(_DATA_OFFSET_FIELDS[-1][1])
    handle.seek(offset)
    patches = {
        offset + lo: b"0".rjust(hi - lo)
        for lo, hi in _DATA_OFFSET_FIELDS
        if len(header) >= hi and not header[lo:hi].strip()
    }
    return _PatchedFile(handle, patches) if patches else handle


def _text_pairs(raw: str) -> dict[str, str]:
    """TEXT keywords (lower case, no ``$``) split on the delimiter, doubled delimiters kept once."""
    if not raw:
        return {}
    delimiter, tokens, current, i = raw[0], [], [], 1
    while i < len(raw):
        char = raw[i]
        if char == delimiter and raw[i + 1 : i + 2] == delimiter:
            current.append(delimiter)
            i += 2
            continue
        if char == delimiter:
            tokens.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    return {key.lstrip("$").lower(): value for key, value in zip(tokens[::2], tokens[1::2])}


def _converts(value: str, kind: type, count: int = 1) -> bool:
    parts = value.split(",") if count > 1 else [value]
    if len(parts) != count:
        return False
    try:
        for part in parts:
            kind(part)
    except ValueError:
        return False
    return True


def bad_number(handle: BinaryIO, offset: int) -> tuple[str, str] | None:
    """``(keyword, what it must be)`` of the first keyword FlowIO converts that is not a number.

    ``None`` when TEXT cannot be found or every such keyword converts (the ``ValueError`` had
    another cause).
    """
    handle.seek(offset)
    header = handle.read(26)
    try:
        start, stop = int(header[10:18]), int(header[18:26])
    except ValueError:
        return None
    if not 0 <= start <= stop:
        return None
    handle.seek(offset + start)
    text = _text_pairs(handle.read(stop - start + 1).decode("latin-1"))
    checks: list[tuple[str, type, int, str]] = [
        (key, int, 1, "a whole number")
        for key in (
            "par",
            "tot",
            "nextdata",
            "beginanalysis",
            "endanalysis",
            "begindata",
            "enddata",
        )
    ]
    numbers = sorted(int(key[1:-1]) for key in text if re.fullmatch(r"p\d+n", key))
    for n in numbers:
        checks += [
            (f"p{n}e", float, 2, "two numbers f1,f2"),
            (f"p{n}g", float, 1, "a number"),
            (f"p{n}r", float, 1, "a number"),
        ]
    for key, kind, count, what in checks:
        if key in text and not _converts(text[key], kind, count):
            return f"${key.upper()}", what
    return None
