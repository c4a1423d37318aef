"""Reading FCS files: robust to instruments and versions, fast, and honest about what it read.

(Interface fixed here; implementation in progress.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FCSData", "read_fcs", "inspect_fcs"]


@dataclass
class FCSData:
    """One FCS data set, preprocessed per the FCS standard.

    Attributes
    ----------
    path
        The file read.
    events
        ``(n_events, n_channels)`` float64 array: log-amplified channels decoded with ``$PnE``,
        linear channels divided by ``$PnG`` (as the FCS and GatingML 2.0 standards say).
    channels
        ``$PnN`` of each channel, made unique (repeats get a ``_2``, ``_3`` suffix; see ``notes``).
    markers
        ``$PnS`` of each channel, ``""`` where absent.
    spill
        The file's own spillover matrix (``$SPILLOVER``/``$SPILL``/``SPILL``), rows and columns named by
        detector channel, or ``None``.
    n_events_stated
        ``$TOT`` as the file states it.
    n_datasets
        Number of data sets in the file (only the first is read).
    fcs_version
        ``"FCS3.1"`` etc.
    notes
        Human-readable remarks about what reading had to work around (one short sentence each).
    keywords
        All TEXT keywords, lower-cased keys. May hold patient identifiers: never write to outputs.
    """

    path: Path
    events: np.ndarray
    channels: list[str]
    markers: list[str]
    spill: pd.DataFrame | None
    n_events_stated: int
    n_datasets: int = 1
    fcs_version: str = ""
    notes: list[str] = field(default_factory=list)
    keywords: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])


def read_fcs(path: str | Path) -> FCSData:
    """Read the first data set of an FCS file; raise FCSReadError with a one-line reason."""
    raise NotImplementedError


def inspect_fcs(path: str | Path) -> dict:
    """One row for ``cytotrial inspect``: file, events, channels, markers, spillover, status, message."""
    raise NotImplementedError
