"""The ``gate`` rule: gate a batch of samples and write its tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..gating import gate_samples, load_panel_gating
from ..io import read_compensation
from ._tables import write_tsv

__all__ = ["run_gate_batch"]


def run_gate_batch(
    samples: Sequence[Mapping],
    *,
    strategies: Mapping[str, Mapping],
    panels: Mapping[str, Sequence[str]] | None,
    compensation: str,
    counts_out: str | Path,
    qc_out: str | Path,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gate a batch of samples and write its counts and QC tables.

    Parameters
    ----------
    samples
        Dicts with ``sample_id``, ``panel`` and ``fcs``.
    strategies
        The config's ``strategies:`` entries for the panels of the batch.
    panels
        The config's marker -> channel names mapping.
    compensation
        ``"fcs"`` or the path of a spillover matrix file.
    """
    table = pd.DataFrame(list(samples), columns=["sample_id", "panel", "fcs"])
    gatings = {
        panel: load_panel_gating(panel, strategies[panel]) for panel in sorted(set(table["panel"]))
    }
    matrix = None if str(compensation).lower() == "fcs" else read_compensation(compensation)
    counts, qc = gate_samples(table, gatings, panels=panels, compensation=matrix)
    write_tsv(counts, counts_out)
    write_tsv(qc, qc_out)
    return counts, qc
