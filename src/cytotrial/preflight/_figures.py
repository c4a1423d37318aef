"""The ``figures:`` section against the sample sheet: the samples the gating review is to draw."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

__all__ = ["figure_problems", "figure_warnings"]


def figure_problems(config: Mapping, sheet: pd.DataFrame) -> list[str]:
    """A sample listed in ``figures.gating_review`` that the sample sheet lacks: one line each."""
    choice = (config.get("figures") or {}).get("gating_review")
    if not isinstance(choice, list):
        return []
    known = set(sheet["sample_id"].astype(str))
    return [
        f"config figures.gating_review: sample {str(sid)!r} is not in the sample sheet "
        f"{config['samples']}; list sample ids of the sheet, or use all or flagged"
        for sid in choice
        if str(sid) not in known
    ]


def figure_warnings(config: Mapping) -> list[str]:
    """A retired key of ``figures:`` that a config still sets (ignored)."""
    if "gating_qc_per_batch" not in (config.get("figures") or {}):
        return []
    return [
        "config figures.gating_qc_per_batch is retired and ignored (the gating review replaced the "
        "gating QC figure; figures.gating_review chooses its samples): remove it"
    ]
