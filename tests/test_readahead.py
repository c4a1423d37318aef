"""Files read ahead of their reader on a thread: in order, a bounded number ahead, never an error."""

from __future__ import annotations

import time

import pytest

import cytotrial.io._readahead as readahead
from cytotrial.io import ReadAhead


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(12):
        path = tmp_path / f"f{i:02d}.fcs"
        path.write_bytes(bytes([i]) * (3 * (1 << 20) + 17))  # three blocks and a bit
        paths.append(path)
    return paths


def _recording(monkeypatch) -> list[str]:
    """Record the files the thread reads, in order (the real reading still runs)."""
    seen: list[str] = []
    real = readahead._read

    def record(path, buffer, length):
        real(path, buffer, length)
        seen.append(path)

    monkeypatch.setattr(readahead, "_read", record)
    return seen


def _settle(ahead: ReadAhead, count: int) -> None:
    deadline = time.monotonic() + 10
    while ahead.read < count and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # long enough for a thread that wrongly went on to read one more


def test_files_are_read_in_order_and_never_more_than_ahead_beyond_those_used(files, monkeypatch):
    seen = _recording(monkeypatch)
    with ReadAhead(files, ahead=3) as ahead:
        _settle(ahead, 3)
        assert seen == [str(p) for p in files[:3]]  # waits for the reader
        for used in range(1, 6):
            ahead.used()
            _settle(ahead, min(len(files), used + 3))
            assert len(seen) == used + 3
        ahead.used(len(files))
        _settle(ahead, len(files))
    assert seen == [str(p) for p in files]


def test_leaving_early_stops_a_waiting_thread(files):
    with ReadAhead(files, ahead=2) as ahead:
        _settle(ahead, 2)
        thread = ahead._thread
        assert thread.is_alive()  # waiting for the reader
    assert not thread.is_alive()
    assert ahead.read == 2


def test_a_missing_or_unreadable_file_is_skipped_and_the_next_are_read(files, tmp_path):
    (tmp_path / "folder.fcs").mkdir()
    paths = [files[0], tmp_path / "missing.fcs", tmp_path / "folder.fcs", files[1]]
    with ReadAhead(paths, ahead=8) as ahead:
        _settle(ahead, len(paths))
    assert ahead.read == len(paths)


@pytest.mark.parametrize(("length", "expected"), [(None, 3 * (1 << 20) + 17), (5000, 5000)])
def test_a_file_is_read_whole_or_only_its_first_bytes(files, monkeypatch, length, expected):
    counted: list[int] = []

    class Counting:
        def __init__(self, path, mode, buffering):
            self._handle = open(path, mode, buffering=buffering)  # noqa: SIM115

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

        def readinto(self, view):
            got = self._handle.readinto(view)
            counted.append(got)
            return got

    monkeypatch.setattr(readahead, "open", Counting, raising=False)
    readahead._read(str(files[0]), bytearray(1 << 20), length)
    assert sum(counted) == expected
