"""After an interrupted run: what is left behind, said in one line with what to do."""

from __future__ import annotations

from pathlib import Path

__all__ = ["stale_lock_note"]


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
