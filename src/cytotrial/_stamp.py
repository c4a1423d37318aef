"""The package's own source files as a key: an edit to any of them changes it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["code_stamp"]

_PACKAGE = Path(__file__).resolve().parent


def code_stamp() -> list[tuple[str, int, int]]:
    """Each source file of the package: its path in the package, size and modification time."""
    stamp = []
    for path in sorted(_PACKAGE.rglob("*.py")):
        info = path.stat()
        stamp.append((str(path.relative_to(_PACKAGE)), info.st_size, info.st_mtime_ns))
    return stamp
