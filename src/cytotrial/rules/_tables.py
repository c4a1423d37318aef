"""Reading and writing the workflow's intermediate tables, each checked complete before it is used.

A gating job writes its tables, then a manifest of them (rows and sha256 of each) as its last
output; the aggregation reads a table only when it is exactly what its manifest describes, so a
table cut short, emptied or edited after its job is refused with one line naming it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from ..errors import CytotrialError, WriteError

__all__ = [
    "MANIFEST_COLUMNS",
    "read_tsvs",
    "write_error",
    "write_manifest",
    "write_tsv",
    "writing",
]

#: Columns of a gating batch's manifest: each table's file name (beside it), data rows, sha256.
MANIFEST_COLUMNS = ["file", "rows", "sha256"]

# What a user can act on when a write fails, by errno.
_WRITE_PROBLEMS = {
    errno.ENOSPC: "no space left on the device; free some space",
    errno.EDQUOT: "disk quota exceeded; free some space",
    errno.EFBIG: "file too large for the file system; write to another one",
    errno.EACCES: "permission denied; make the folder writable",
    errno.EPERM: "operation not permitted; make the folder writable",
    errno.EROFS: "read-only file system; run from a folder you can write",
}
# Errors from HDF5 carry the errno in their message only.
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def _errno_of(error: OSError) -> int | None:
    if error.errno is not None:
        return error.errno
    found = _HDF5_ERRNO.search(str(error))
    return int(found.group(1)) if found else None


def _shown(path: str | os.PathLike) -> str:
    """A path as messages show it: relative to the working folder (no path of the machine)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return Path(path).name


def write_error(error: OSError, path: str | os.PathLike | None = None) -> WriteError | None:
    """A one-line :class:`WriteError` naming the path for a disk-full or permission error, else None.

    Parameters
    ----------
    error
        The error a write raised.
    path
        The file being written (else the one the error names).
    """
    problem = _WRITE_PROBLEMS.get(_errno_of(error))
    where = error.filename if error.filename is not None else path
    if problem is None or where is None:
        return None
    return WriteError(f"cannot write {_shown(where)}: {problem}, then run the same command again")


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn a disk-full or permission error while writing ``path`` into a one-line WriteError."""
    try:
        yield
    except OSError as error:
        converted = write_error(error, path)
        if converted is None:
            raise
        raise converted from None


def write_tsv(table: pd.DataFrame, path: str | Path) -> None:
    """Write a tidy table (tab-separated, a header, one line per row).

    Raises
    ------
    cytotrial.errors.WriteError
        No space left, no permission or a read-only file system, naming ``path``.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, sep="\t", index=False, lineterminator="\n")


def _data_rows(content: bytes) -> int:
    """Data rows of a table written by :func:`write_tsv` (lines after the header)."""
    return max(0, content.count(b"\n") - 1)


def write_manifest(tables: Sequence[str | Path], path: str | Path) -> None:
    """Record the rows and sha256 of each table in a manifest beside them (written last).

    Parameters
    ----------
    tables
        The tables just written (in the manifest's folder).
    path
        The manifest (:data:`MANIFEST_COLUMNS`).
    """
    rows = []
    for table in tables:
        content = Path(table).read_bytes()
        rows.append(
            {
                "file": os.path.relpath(table, Path(path).parent),
                "rows": _data_rows(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
    write_tsv(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), path)


def _manifest_entries(manifests: Sequence[str | Path]) -> dict[str, tuple[int, str]]:
    """Each listed table (normalised path) -> (rows, sha256), from every manifest."""
    entries = {}
    for manifest in manifests:
        retry = f"delete {_shown(manifest)} and run the same command again"
        try:
            table = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError):
            raise CytotrialError(f"{_shown(manifest)} cannot be read: {retry}") from None
        if list(table.columns) != MANIFEST_COLUMNS or not table["rows"].str.isdigit().all():
            raise CytotrialError(f"{_shown(manifest)} is damaged: {retry}")
        for row in table.itertuples(index=False):
            listed = os.path.normpath(Path(manifest).parent / row.file)
            entries[listed] = (int(row.rows), row.sha256)
    return entries


def _verified(path: str | Path, entries: dict[str, tuple[int, str]]) -> bytes:
    """The bytes of a table, checked against its manifest entry."""
    retry = f"delete {_shown(path)} and run the same command again"
    entry = entries.get(os.path.normpath(path))
    if entry is None:
        raise CytotrialError(f"{_shown(path)} is not listed in its gating manifest: {retry}")
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise CytotrialError(f"{_shown(path)} cannot be read ({error.strerror}): {retry}") from None
    rows, digest = entry
    found = _data_rows(content)
    if found != rows:
        raise CytotrialError(
            f"{_shown(path)} is incomplete ({found} rows, {rows} when written): {retry}"
        )
    if hashlib.sha256(content).hexdigest() != digest:
        raise CytotrialError(f"{_shown(path)} changed after it was written: {retry}")
    return content


def read_tsvs(
    paths: Sequence[str | Path],
    columns: Sequence[str],
    *,
    manifests: Sequence[str | Path] | None = None,
) -> pd.DataFrame:
    """Concatenate tables of one kind (``sample_id`` read as text); empty: ``columns`` only.

    Parameters
    ----------
    paths
        The tables.
    columns
        Their columns (for an empty result).
    manifests
        The manifests listing them: each table is checked complete and unchanged before it is
        read. ``None``: read as they are.

    Raises
    ------
    cytotrial.errors.CytotrialError
        A table is missing from its manifest, cut short, or differs from what was written (one
        line naming it and what to do).
    """
    entries = None if manifests is None else _manifest_entries(manifests)
    frames = []
    for path in paths:
        source = path if entries is None else io.BytesIO(_verified(path, entries))
        frames.append(
            pd.read_csv(source, sep="\t", dtype={"sample_id": str}, keep_default_na=False)
        )
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))
