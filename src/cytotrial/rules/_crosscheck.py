"""The ``events`` rule: the event-level cross-check of the gates (UMAP, Leiden)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..config import population_model
from ..gating import load_panel_gating
from ..io import read_compensation
from ..tl import (
    cluster_events,
    cluster_gate_agreement,
    subsample_events,
)
from ._paths import resolve_sheet_fcs
from ._tables import write_tsv

__all__ = ["run_event_crosscheck"]


def _gated_samples(h5ad: str | Path, *, sheet: str | Path) -> pd.DataFrame:
    """The samples that were gated (obs of populations.h5ad), without loading the counts.

    Their ``fcs`` paths, recorded relative to the sample sheet, are resolved against it.
    """
    import anndata as ad

    adata = ad.read_h5ad(h5ad, backed="r")
    obs = adata.obs.copy()
    adata.file.close()
    obs["fcs"] = [str(resolve_sheet_fcs(value, sheet)) for value in obs["fcs"]]
    return obs


def _panel_gatings(
    strategies: Mapping[str, Mapping], panels_used, populations: Mapping[str, Mapping] | None = None
) -> dict:
    """Each panel's strategy with the config's populations (Booleans included) and parents."""
    model = population_model({"populations": populations or {}, "strategies": strategies})
    return {
        panel: load_panel_gating(panel, strategies[panel], model=model)
        for panel in sorted(set(panels_used))
    }


def run_event_crosscheck(
    h5ad: str | Path,
    *,
    sheet: str | Path,
    strategies: Mapping[str, Mapping],
    panels: Mapping[str, Sequence[str]] | None,
    compensation: str,
    options: Mapping,
    arm_colors: Mapping[str, str],
    populations: Mapping[str, Mapping] | None = None,
    within: str | None = None,
    labels: Sequence[str] | None = None,
    reading: Mapping | None = None,
    h5ad_out: str | Path,
    table_out: str | Path,
    out_png: Sequence[str | Path],
    out_pdf: Sequence[str | Path],
) -> float:
    """Subsample events of every gated sample, UMAP + Leiden, agreement with the gates, figures.

    ``sheet`` is the sample sheet the ``fcs`` paths of ``populations.h5ad`` are relative to;
    ``options`` is the config's ``events:`` section (``per_sample``, ``max_events``,
    ``leiden_resolution``, ``seed``); ``populations`` its top-level ``populations:`` (so Boolean
    populations label events too); events are subsampled ``within`` that population and labelled
    with the deepest of ``labels`` holding them. Returns the adjusted Rand index.
    """
    from ..pl import plot_umaps  # matplotlib: only for the figure steps

    obs = _gated_samples(h5ad, sheet=sheet)
    matrix = None if str(compensation).lower() == "fcs" else read_compensation(compensation)
    per_sample = int(options["per_sample"])
    cap = int(options["max_events"])
    per_sample = max(10, min(per_sample, cap // max(1, len(obs))))
    events = subsample_events(
        obs,
        _panel_gatings(strategies, obs["panel"], populations),
        panels=panels,
        compensation=matrix,
        per_sample=per_sample,
        seed=int(options["seed"]),
        within=within,
        labels=labels,
        reading=reading,
    )
    cluster_events(
        events,
        resolution=float(options["leiden_resolution"]),
        seed=int(options["seed"]),
    )
    ari, table = cluster_gate_agreement(events)
    events.uns["adjusted_rand_index"] = ari
    Path(h5ad_out).parent.mkdir(parents=True, exist_ok=True)
    events.write_h5ad(h5ad_out)
    write_tsv(table, table_out)
    plot_umaps(events, arm_colors=arm_colors, out_png=out_png, out_pdf=out_pdf, ari=ari)
    return ari
