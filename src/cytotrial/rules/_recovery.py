"""The ends of a run: what an interrupted run left behind, and Snakemake's waits at the end."""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["cancel_pending_timers", "stale_lock_note"]


def stale_lock_note(workdir: str | Path = ".") -> str | None:
    """One line about a lock left in ``workdir`` by an earlier run, or None when there is none.

    Snakemake locks the working folder while it runs and removes the lock when it ends, even on
    Ctrl-C; a run killed outright (``kill -9``, a power loss, a node taken away) leaves it, and the
    next run refuses to start until ``snakemake --unlock`` removes it.

    Parameters
    ----------
    workdir
        The workflow's working folder (the one holding ``.snakemake``).
    """
    locks = Path(workdir) / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.glob("*.lock")):
        return None
    return (
        "the folder holds a lock from an earlier run (.snakemake/locks): if no other snakemake "
        "runs here, that run was killed; `snakemake --unlock` removes the lock, then the same "
        "command resumes it"
    )


def cancel_pending_timers() -> int:
    """Cancel the timers still waiting in this process; how many there were.

    Snakemake's scheduler, after each look at the waiting jobs, starts a timer to look again once
    the rate limit's timespan has passed (``--max-jobs-per-timespan``; the profiles set one minute
    so that the scheduler does not look every second). Those timers are not daemon threads: when
    the last job ends, Python would wait for the last of them before the process exits, up to a
    whole timespan after the work is done. The workflow calls this when it ends (``onsuccess``,
    ``onerror``); nothing is left to schedule then, so a timer's wake-up is not needed.
    """
    pending = [
        thread
        for thread in threading.enumerate()
        if isinstance(thread, threading.Timer) and thread.is_alive()
    ]
    for timer in pending:
        timer.cancel()
    return len(pending)
