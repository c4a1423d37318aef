"""Cache keys and keyed files: what a cache was computed from, and reading it back.

:func:`code_stamp` is the package's own source files as part of a key (an edit to any of them
changes it); :func:`read_keyed` and :func:`write_keyed` keep one JSON value under a key in a file,
written whole or not at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["code_stamp", "read_keyed", "write_keyed"]

_PACKAGE = Path(__file__).resolve().parent


def code_stamp() -> list[tuple[str, int, int]]:
    """Each source file of the package: its path in the package, size and modification time."""
    stamp = []
    for path in sorted(_PACKAGE.rglob("*.py")):
        info = path.stat()
        stamp.append((str(path.relative_to(_PACKAGE)), info.st_size, info.st_mtime_ns))
    return stamp


def read_keyed(path: Path, key: str | None) -> Any | None:
    """The value kept in ``path`` under ``key``; ``None``: no key, none kept, another key, unreadable."""
    if key is None:
        return None
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("key") != key:
        return None
    return kept.get("value")


def write_keyed(path: Path, key: str | None, value: Any) -> None:
    """Keep ``value`` in ``path`` under ``key`` (nothing without a key), replacing what was kept.

    A file that cannot be written is left alone: the next run computes the value again.
    """
    if key is None:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"key": key, "value": value}, sort_keys=True), "utf-8")
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
