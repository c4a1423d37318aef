"""Every error cytotrial raises for a user's mistake, in one module.

Each error carries a message a user can act on: which file, row or channel is at fault and what to
do. The command line and the Snakemake rules print ``str(error)`` on one line, never a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CytotrialError",
    "FCSReadError",
    "MissingMarkerError",
    "SampleSheetError",
    "StrategyError",
    "WriteError",
]


class CytotrialError(Exception):
    """Base class of every error caused by input (files, sheets, config), not by a bug."""


class FCSReadError(CytotrialError):
    """An FCS file cannot be read (not FCS, truncated, empty, inconsistent offsets)."""


class StrategyError(CytotrialError):
    """A gating strategy (GatingML 2.0 or FlowJo workspace) cannot be loaded or used."""


class MissingMarkerError(CytotrialError):
    """A file lacks a channel or marker that the gating strategy needs."""


class SampleSheetError(CytotrialError):
    """The sample sheet (or patients table) has a bad row or column."""


class ConfigError(CytotrialError):
    """The workflow configuration has a bad or missing value."""


class WriteError(CytotrialError):
    """An output cannot be written: no space left, no permission, a read-only file system."""
