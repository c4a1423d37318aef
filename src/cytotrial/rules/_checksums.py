"""The sha256 of every FCS file, kept in a cache so that a run hashes only what changed.

A file's cached digest is reused while its size, modification time, status-change time and inode
are the ones it was hashed with. Copying a file over another with its old timestamp (``cp -p``,
``rsync -t``, a restore) cannot keep the status-change time, so such a file is hashed again; and
because the digest, not the timestamp, goes into the batch membership files, a file whose content
changed is gated again whatever its timestamp.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import CytotrialError
from ._tables import writing

__all__ = ["CHECKSUM_CACHE", "file_checksums", "verify_checksums"]

#: The cache of FCS digests (paths as the workflow declares them, relative to its working folder).
CHECKSUM_CACHE = "results/gating/fcs_checksums.tsv"
_COLUMNS = ("path", "size", "mtime_ns", "ctime_ns", "inode", "sha256")
_HEADER = "\t".join(_COLUMNS) + "\n"
_RACY_NS = 2_000_000_000


def _stat_key(path: str) -> tuple[int, int, int, int] | None:
    """What the cache compares: size, mtime and ctime in ns, inode; None for a missing file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def _sha256(path: str) -> str:
    """The file's sha256; "" when it cannot be read (the gating reports why)."""
    try:
        with open(path, "rb", buffering=0) as handle:
            # into one reused buffer; hashing releases the GIL: threads hash files in parallel
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return ""


def _read_cache(cache: Path) -> dict[str, tuple[tuple[int, int, int, int], str]]:
    """Each path -> (stat key, sha256) in a cache file; an unreadable or damaged one counts as empty."""
    try:
        lines = cache.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    if not lines or lines[0] + "\n" != _HEADER:
        return {}
    entries = {}
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != len(_COLUMNS) or len(fields[5]) != 64:
            continue  # a damaged row: that file is hashed again
        try:
            key = (int(fields[1]), int(fields[2]), int(fields[3]), int(fields[4]))
        except ValueError:
            continue
        entries[fields[0]] = (key, fields[5])
    return entries


def _write_cache(cache: Path, entries: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
    rows = (
        "\t".join([path, *map(str, key), digest]) + "\n"
        for path, (key, digest) in sorted(entries.items())
    )
    text = _HEADER + "".join(rows)
    # several jobs may refresh the cache at once: each writes its own file and swaps it in whole
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.partial")
    with writing(cache):
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, cache)


def file_checksums(
    paths: Iterable[str | Path],
    *,
    cache: str | Path | None = CHECKSUM_CACHE,
    prune: bool = False,
    jobs: int = 4,
) -> dict[str, str]:
    """The sha256 of each file, hashing only files that are new or changed since they were cached.

    Parameters
    ----------
    paths
        The files (as the workflow declares them: relative to the working folder).
    cache
        The cache file (read, and rewritten when a digest was computed); ``None``: no cache.
    prune
        Drop cached files that are not among ``paths`` (``paths`` is every file of the run).
    jobs
        Files hashed at once (hashing releases the GIL).

    Returns
    -------
    dict
        path (as given) -> sha256, "" for a file that is missing or cannot be read.

    Raises
    ------
    cytotrial.errors.WriteError
        The cache cannot be written (no space, no permission), naming it.
    """
    paths = list(dict.fromkeys(str(path) for path in paths))
    cached = _read_cache(Path(cache)) if cache is not None else {}
    keys = {path: _stat_key(path) for path in paths}
    digests = {path: "" for path, key in keys.items() if key is None}
    digests.update(
        (path, cached[path][1])
        for path, key in keys.items()
        if key is not None and path in cached and cached[path][0] == key
    )
    stale = [path for path in paths if path not in digests]
    if stale:
        started = time.time_ns()
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(stale)))) as pool:
            digests.update(zip(stale, pool.map(_sha256, stale)))
    entries = {p: c for p, c in cached.items() if not prune or p in keys}
    for path in stale:
        entries.pop(path, None)
        key = keys[path]
        # cached only when unchanged while hashed and older than the file system's timestamp
        # granularity (a file rewritten within one tick would keep its timestamps)
        if digests[path] and _stat_key(path) == key and started - key[2] > _RACY_NS:
            entries[path] = (key, digests[path])
    if cache is not None and entries != cached:
        _write_cache(Path(cache), entries)
    return {path: digests[path] for path in paths}


def verify_checksums(
    samples: Sequence[Mapping[str, str]], *, cache: str | Path | None = None
) -> dict[str, str]:
    """The sha256 of each sample's file as a gating job finds it, checked against its batch's.

    Parameters
    ----------
    samples
        Members of a batch: ``sample_id``, ``fcs`` and the ``sha256`` the batch was formed with
        ("" or absent: not checked).
    cache
        The checksum cache (see :func:`file_checksums`); ``None``: hash every file.

    Returns
    -------
    dict
        sample id -> sha256 of its file now ("" when it cannot be read: the gating says why).

    Raises
    ------
    cytotrial.errors.CytotrialError
        A file changed since its batch was formed (the run began): one line naming it.
    """
    digests = file_checksums([row["fcs"] for row in samples], cache=cache)
    found = {}
    for row in samples:
        now, then = digests[str(row["fcs"])], row.get("sha256", "")
        if then and now and now != then:
            raise CytotrialError(
                f"{row['fcs']} changed after this run began (sample {row['sample_id']}): "
                "run the same command again to gate it anew"
            )
        found[row["sample_id"]] = now
    return found
