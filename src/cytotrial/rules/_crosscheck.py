"""The ``events`` rule: the event-level cross-check of the gates (UMAP, Leiden)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..config import population_model
from ..errors import ConfigError
from ..gating import load_panel_gating
from ..io import read_compensation
from ..tl import (
    cluster_events,
    cluster_gate_agreement,
    crosscheck_samples,
    subsample_events,
)
from ._paths import resolve_sheet_fcs
from ._tables import write_tsv

if TYPE_CHECKING:
    from anndata import AnnData

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


def _event_labels(options: Mapping, model: Mapping[str, Mapping]) -> list[str]:
    """The config's ``events.labels``, checked against the reported populations.

    Raises
    ------
    ConfigError
        A name that is not a reported population (one line, naming the key and the names).
    """
    labels = [str(name) for name in options.get("labels") or []]
    unknown = [name for name in labels if name not in model]
    if unknown:
        raise ConfigError(
            f"config events.labels: {', '.join(unknown)} not a reported population; "
            f"use names of populations: ({', '.join(model)})"
        )
    return labels


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
    reading: Mapping | None = None,
    h5ad_out: str | Path,
    table_out: str | Path,
    figures: Mapping[str, str | Path],
) -> dict[str, float | int]:
    """Subsample events of the gated samples, UMAP + Leiden, agreement with the gates, figures.

    Parameters
    ----------
    h5ad, sheet
        ``populations.h5ad`` (its ``obs``: the samples that were gated) and the sample sheet its
        ``fcs`` paths are relative to.
    strategies, panels, compensation, reading
        The config's ``strategies:``, ``panels:`` and ``gating.compensation``, and the gating's
        reading options (:func:`cytotrial.gating.read_and_gate`): events as the gating saw them.
    options
        The config's ``events:`` section (``per_sample``, ``max_events``, ``max_samples``,
        ``labels``, ``leiden_resolution``, ``umap_epochs``, ``seed``).
    arm_colors, populations, within
        The config's ``arms:`` (colours; the last arm is the density difference's reference),
        top-level ``populations:`` (labels, Booleans) and first ``frequencies.of`` reference
        (the population whose events are drawn).
    h5ad_out, table_out, figures
        Where the events (AnnData), the clusters-vs-gates table and each figure
        (:data:`cytotrial.pl.CROSSCHECK_FIGURES` -> its PNG path, the PDF beside it) go.

    Returns
    -------
    dict
        ``samples`` read, ``skipped`` (unreadable), ``events``, ``markers``, ``clusters``,
        ``adjusted_rand_index`` and ``purity`` (the share of events in a cluster mostly of their
        own gated population), for the log.
    """
    from ..pl import write_crosscheck_figures  # matplotlib: only for the figure steps

    model = population_model({"populations": populations or {}, "strategies": strategies})
    labels = _event_labels(options, model)
    obs = crosscheck_samples(
        _gated_samples(h5ad, sheet=sheet),
        max_samples=int(options["max_samples"]),
        seed=int(options["seed"]),
    )
    matrix = None if str(compensation).lower() == "fcs" else read_compensation(compensation)
    events = subsample_events(
        obs,
        _panel_gatings(strategies, obs["panel"], populations),
        panels=panels,
        compensation=matrix,
        per_sample=int(options["per_sample"]),
        max_events=int(options["max_events"]),
        seed=int(options["seed"]),
        within=within,
        labels=labels,
        reading=reading,
    )
    cluster_events(
        events,
        resolution=float(options["leiden_resolution"]),
        seed=int(options["seed"]),
        n_epochs=int(options["umap_epochs"]),
    )
    ari, table = cluster_gate_agreement(events)
    events.uns["adjusted_rand_index"] = ari
    Path(h5ad_out).parent.mkdir(parents=True, exist_ok=True)
    events.write_h5ad(h5ad_out)
    write_tsv(table, table_out)
    write_crosscheck_figures(
        events,
        figures,
        arm_colors=arm_colors,
        labels={name: spec["label"] for name, spec in model.items()},
        ari=ari,
    )
    return _summary(events, table, ari)


def _summary(events: AnnData, table: pd.DataFrame, ari: float) -> dict[str, float | int]:
    """What the log says of the cross-check (see :func:`run_event_crosscheck`)."""
    skipped = len(events.uns["skipped_samples"])
    return {
        "samples": int(events.obs["sample_id"].nunique()),
        "skipped": skipped,
        "events": events.n_obs,
        "markers": events.n_vars,
        "clusters": int(events.obs["leiden"].nunique()),
        "adjusted_rand_index": ari,
        # the share of events in a cluster mostly of their own gated population
        "purity": float(table.groupby("cluster")["events"].max().sum() / table["events"].sum()),
    }
