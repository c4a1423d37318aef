"""The sha256 of every FCS file, kept in a cache so that a run hashes only what changed.

A file's cached digest is reused while its size, modification time, status-change time and inode
are the ones it was hashed with. Copying a file over another with its old timestamp (``cp -p``,
``rsync -t``, a restore) cannot keep the status-change time, so such a file is hashed again; and
because the digest, not the timestamp, goes into the batch membership files, a file whose content
changed is gated again whatever its timestamp.

A file that no batch has recorded a digest of yet is not hashed before the run (``defer``): its
gating job hashes it, then reads it from the page cache, so a first run reads each file from disk
once, in the jobs, instead of once more before any job can start (some 45 s for the 27 GB of a
phase 3 trial). Jobs update the cache under a lock, so that one job's digests are not lost to
another's.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
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
    # written to a file of its own and swapped in whole: a reader never sees half a cache
    partial = cache.with_name(f".{cache.name}.{os.getpid()}.partial")
    with writing(cache):
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, cache)


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Hold the cache's lock (a file beside it) while it is read and rewritten.

    Several gating jobs hash their files at once and each adds its digests: without the lock one
    job's rewrite could drop another's. Where the file system cannot lock, the update goes ahead
    unlocked (a digest lost that way is only computed again by a later run).
    """
    import fcntl

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        handle = open(cache.with_name(f".{cache.name}.lock"), "a")  # noqa: SIM115
    except OSError:
        yield
        return
    with handle:
        with suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _update_cache(
    cache: Path,
    added: Mapping[str, tuple[tuple[int, int, int, int], str]],
    dropped: Collection[str],
    keep: Collection[str] | None,
) -> None:
    """Add ``added`` to the cache as it is now, drop ``dropped`` (and, given ``keep``, all else)."""
    with _locked(cache):
        current = _read_cache(cache)
        entries = {p: e for p, e in current.items() if p not in dropped}
        entries.update(added)
        if keep is not None:
            entries = {p: e for p, e in entries.items() if p in keep}
        if entries != current:
            _write_cache(cache, entries)


def file_checksums(
    paths: Iterable[str | Path],
    *,
    cache: str | Path | None = CHECKSUM_CACHE,
    prune: bool = False,
    jobs: int = 4,
    defer: Collection[str] = (),
) -> dict[str, str | None]:
    """The sha256 of each file, hashing only files that are new or changed since they were cached.

    Parameters
    ----------
    paths
        The files (as the workflow declares them: relative to the working folder).
    cache
        The cache file (read, and updated when a digest was computed); ``None``: no cache.
    prune
        Drop cached files that are not among ``paths`` (``paths`` is every file of the run).
    jobs
        Files hashed at once (hashing releases the GIL).
    defer
        Files (among ``paths``, as given) not to hash now: where the cache has no digest for the
        file as it is, its value is ``None`` (its gating job hashes it).

    Returns
    -------
    dict
        path (as given) -> sha256, "" for a file that is missing or cannot be read, ``None`` for a
        deferred file without a cached digest.

    Raises
    ------
    cytotrial.errors.WriteError
        The cache cannot be written (no space, no permission), naming it.
    """
    paths = list(dict.fromkeys(str(path) for path in paths))
    cached = _read_cache(Path(cache)) if cache is not None else {}
    keys = {path: _stat_key(path) for path in paths}
    digests: dict[str, str | None] = {path: "" for path, key in keys.items() if key is None}
    digests.update(
        (path, cached[path][1])
        for path, key in keys.items()
        if key is not None and path in cached and cached[path][0] == key
    )
    later = {str(path) for path in defer}
    digests.update((path, None) for path in paths if path not in digests and path in later)
    stale = [path for path in paths if path not in digests]
    if stale:
        started = time.time_ns()
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(stale)))) as pool:
            digests.update(zip(stale, pool.map(_sha256, stale)))
    added = {}
    for path in stale:
        key = keys[path]
        # cached only when unchanged while hashed and older than the file system's timestamp
        # granularity (a file rewritten within one tick would keep its timestamps)
        if digests[path] and _stat_key(path) == key and started - key[2] > _RACY_NS:
            added[path] = (key, digests[path])
    outdated = {p for p in stale if p in cached and p not in added}
    unlisted = prune and any(p not in keys for p in cached)
    if cache is not None and (added or outdated or unlisted):
        _update_cache(Path(cache), added, outdated, set(keys) if prune else None)
    return {path: digests[path] for path in paths}


def verify_checksums(
    samples: Sequence[Mapping[str, str]], *, cache: str | Path | None = None, jobs: int = 4
) -> dict[str, str]:
    """The sha256 of each sample's file as a gating job finds it, checked against its batch's.

    Parameters
    ----------
    samples
        Members of a batch: ``sample_id``, ``fcs`` and the ``sha256`` the batch was formed with
        ("" or absent: not checked).
    cache
        The checksum cache (see :func:`file_checksums`); ``None``: hash every file.
    jobs
        Files hashed at once (``1``: one after the other, in the order of ``samples``).

    Returns
    -------
    dict
        sample id -> sha256 of its file now ("" when it cannot be read: the gating says why).

    Raises
    ------
    cytotrial.errors.CytotrialError
        A file changed since its batch was formed (the run began): one line naming it.
    """
    digests = file_checksums([row["fcs"] for row in samples], cache=cache, jobs=jobs)
    found: dict[str, str] = {}
    for row in samples:
        now, then = digests[str(row["fcs"])], row.get("sha256", "")
        if then and now and now != then:
            raise CytotrialError(
                f"{row['fcs']} changed after this run began (sample {row['sample_id']}): "
                "run the same command again to gate it anew"
            )
        found[row["sample_id"]] = now or ""
    return found
