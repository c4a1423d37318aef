"""Shared by the rule scripts: send output to the rule's log, turn a user's mistake into one line."""

import contextlib
import sys

from cytotrial.errors import CytotrialError


@contextlib.contextmanager
def rule_log(snakemake):
    """Write stdout/stderr to the rule's log; a CytotrialError ends the job with its one-line message."""
    with open(snakemake.log[0], "w", encoding="utf-8") as log:
        sys.stdout = sys.stderr = log
        try:
            yield log
        except CytotrialError as error:
            log.write(f"cytotrial: {error}\n")
            sys.__stderr__.write(f"cytotrial: {error}\n")
            sys.exit(1)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
