"""Files read into the operating system's file cache on a thread, a few files ahead of their reader.

A job that reads FCS files one after another (the review, the event-level cross-check, the gate
export) otherwise waits on the disk for each file and leaves its core idle while it waits. A
:class:`ReadAhead` reads the next files in the same order on a thread: the reader finds them in
memory, and the disk and the core work at the same time. Only the file cache keeps the bytes read
ahead; the thread holds one buffer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["ReadAhead"]

_BLOCK = 1 << 20


class ReadAhead:
    """Read ``paths`` in order on a thread, at most ``ahead`` files beyond those used so far.

    Use it as a context manager around the reading and call :meth:`used` as each file is done
    with: the thread waits while ``ahead`` files are read and not yet used, so memory holds a
    bounded number of files whatever the number of them. A file that cannot be read is skipped
    (its reader reports it). Leaving the context stops the thread.

    Parameters
    ----------
    paths
        The files, in the order they will be read.
    ahead
        Files read ahead of the reader at most.
    length
        Bytes read from the start of each file (``None``: the whole file), e.g. an FCS file's
        HEADER and TEXT only.
    """

    def __init__(
        self, paths: Sequence[str | Path], *, ahead: int = 4, length: int | None = None
    ) -> None:
        self._paths = [str(path) for path in paths]
        self._ahead = max(1, int(ahead))
        self._length = length
        self._used = 0
        self._stop = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self.read = 0  # files the thread has read so far

    def __enter__(self) -> ReadAhead:
        if self._paths:
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def used(self, count: int = 1) -> None:
        """The reader is done with ``count`` more files: the thread may read as many more."""
        with self._condition:
            self._used += count
            self._condition.notify_all()

    def _run(self) -> None:
        buffer = bytearray(_BLOCK)
        for position, path in enumerate(self._paths):
            with self._condition:
                while not self._stop and position >= self._used + self._ahead:
                    self._condition.wait()
                if self._stop:
                    return
            _read(path, buffer, self._length)
            self.read = position + 1


def _read(path: str, buffer: bytearray, length: int | None) -> None:
    """Read a file's first ``length`` bytes (all of it: ``None``) into ``buffer``, block by block."""
    left = length if length is not None else -1
    try:
        with open(path, "rb", buffering=0) as handle:
            while left:
                view = memoryview(buffer)[: min(_BLOCK, left) if left > 0 else _BLOCK]
                got = handle.readinto(view)
                if not got:
                    return
                if left > 0:
                    left -= got
    except OSError:
        return
