"""Shared by the rule scripts: send output to the rule's log, turn a user's mistake into one line.

A full disk or a folder without write permission is not a mistake in the data but ends the job the
same way: one line naming the path and what to do, never a traceback.
"""

import contextlib
import os
import sys

from cytotrial.errors import CytotrialError


def write_error(error, path):
    """cytotrial.rules.write_error, imported only when a write failed (the module is heavier)."""
    from cytotrial.rules import write_error as convert

    return convert(error, path)


def _stop(message, log=None):
    """End the job with one line, in its log (when it could be opened) and on stderr."""
    line = f"cytotrial: {message}\n"
    if log is not None:
        with contextlib.suppress(OSError):
            log.write(line)
            log.flush()
    sys.__stderr__.write(line)
    sys.__stderr__.flush()
    sys.exit(1)


def _write_problem(error, snakemake):
    """The one-line WriteError of a disk-full or permission error (naming a path), else None."""
    outputs = [str(path) for path in snakemake.output]
    # a write error without a file name (a write cut short) names the job's first output
    return write_error(error, error.filename or (outputs[0] if outputs else None))


#: What numerical libraries read for their threads (OpenMP, OpenBLAS, MKL, Accelerate, numexpr).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def limit_threads(threads):
    """Numerical libraries use the job's threads, as Snakemake sets them for shell commands.

    A script job is left to the libraries' defaults, a thread per core: two one-thread jobs side
    by side then ask for four, and OpenBLAS's idle threads spin on cores the other job needs.
    Libraries loaded later read the variables; those already loaded are limited in place.
    """
    count = max(1, int(threads))
    for name in THREAD_VARIABLES:
        os.environ[name] = str(count)
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=count)


@contextlib.contextmanager
def rule_log(snakemake):
    """Write stdout/stderr to the rule's log; a CytotrialError ends the job with its one-line message.

    So do a full disk, an exceeded quota, a missing write permission and a read-only file system
    (as a :class:`cytotrial.errors.WriteError` naming the path). Numerical libraries use the
    job's threads (:func:`limit_threads`).
    """
    limit_threads(snakemake.threads)
    path = snakemake.log[0]
    try:
        log = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below, even on a full disk)
    except OSError as error:
        problem = write_error(error, path)
        if problem is None:
            raise
        _stop(problem)
    sys.stdout = sys.stderr = log
    try:
        yield log
    except CytotrialError as error:
        _stop(error, log)
    except OSError as error:
        problem = _write_problem(error, snakemake)
        if problem is None:
            raise
        _stop(problem, log)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        with contextlib.suppress(OSError):  # a full disk may refuse the log's last lines
            log.close()
