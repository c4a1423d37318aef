"""One function per workflow step, reading and writing files: what each Snakemake rule runs.

The rules pass paths and config values; everything else happens here, so a step can be re-run or
tested without Snakemake.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..gating import COUNT_COLUMNS, QC_COLUMNS, gate_samples, load_panel_gating
from ..io import file_sha256, read_compensation, read_sample_sheet
from ..tl import (
    POPULATIONS,
    build_populations,
    cluster_events,
    cluster_gate_agreement,
    populations_long,
    subsample_events,
)
from ._paths import fcs_relative_to_sheet, resolve_sheet_fcs, sheet_fcs

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "package_versions",
    "read_samples_for_outputs",
    "run_aggregate",
    "run_event_crosscheck",
    "run_gate_batch",
    "run_gating_qc",
]


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the results (provenance)."""
    versions = {"python": platform.python_version()}
    for name in (
        "cytotrial",
        "flowkit",
        "flowio",
        "flowutils",
        "numpy",
        "pandas",
        "anndata",
        "scipy",
        "statsmodels",
        "snakemake",
    ):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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
    _write_tsv(counts, counts_out)
    _write_tsv(qc, qc_out)
    return counts, qc


def _write_tsv(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, lineterminator="\n")


def _read_tsv(paths: Sequence[str | Path], columns: Sequence[str]) -> pd.DataFrame:
    frames = [
        pd.read_csv(p, sep="\t", dtype={"sample_id": str}, keep_default_na=False) for p in paths
    ]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


def read_samples_for_outputs(
    sheet: str | Path, *, arms: Sequence[str], panels: Sequence[str]
) -> pd.DataFrame:
    """The checked sample sheet with each ``fcs`` path relative to the sheet, as outputs record it.

    A relative path stays as the sheet gives it, an absolute one becomes relative to the sheet's
    folder, so no output holds a path of the analyst's machine.
    """
    table = read_sample_sheet(sheet, arms=list(arms), panels=list(panels))
    given = sheet_fcs(sheet)
    table["fcs"] = [fcs_relative_to_sheet(given[sid], sheet) for sid in table.index]
    return table


def run_aggregate(
    *,
    counts: Sequence[str | Path],
    qc: Sequence[str | Path],
    sheet: str | Path,
    arms: Sequence[str],
    strategies: Mapping[str, Mapping],
    min_events: Mapping[str, int],
    config: Mapping,
    h5ad_out: str | Path,
    tsv_out: str | Path,
    qc_out: str | Path,
) -> AnnData:
    """Gather every batch into ``populations.h5ad``, its tidy TSV and the per-sample QC table.

    Parameters
    ----------
    counts, qc
        The count and QC tables of every gating batch.
    sheet
        The sample sheet (checked again here); ``obs['fcs']`` records each file relative to it.
    arms
        The config's arms.
    strategies
        The config's ``strategies:``.
    min_events
        The config's ``qc.min_events``.
    config
        The whole (resolved) config, stored as provenance.
    h5ad_out, tsv_out, qc_out
        Where ``populations.h5ad``, ``populations.tsv`` and the QC table go.
    """
    sheet = read_samples_for_outputs(sheet, arms=arms, panels=list(strategies))
    counts_df = _read_tsv(counts, COUNT_COLUMNS)
    qc_df = _read_tsv(qc, QC_COLUMNS)
    counts_df["population"] = counts_df["population"].fillna("").astype(str)

    # The population -> gate path mapping actually used, per panel, from the gating output itself.
    panel_of = sheet["panel"].to_dict()
    canonical = counts_df[counts_df["population"] != ""].copy()
    canonical["panel"] = canonical["sample_id"].map(panel_of)
    mappings: dict[str, dict[str, str]] = {}
    for (panel, population), group in canonical.groupby(["panel", "population"], sort=True):
        mappings.setdefault(panel, {})[population] = group["gate_path"].iloc[0]
    parents = _canonical_parents(mappings)

    provenance = {
        "strategy_sha256": {
            panel: file_sha256(spec["strategy"])
            for panel, spec in sorted(strategies.items())
            if Path(spec["strategy"]).is_file()
        },
        "strategy_path": {
            panel: str(spec["strategy"]) for panel, spec in sorted(strategies.items())
        },
        "versions": package_versions(),
        "config_json": json.dumps(config, sort_keys=True, default=str),
    }
    adata = build_populations(
        counts_df, sheet, mappings, parents, min_events=min_events, provenance=provenance
    )
    Path(h5ad_out).parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(h5ad_out)
    _write_tsv(populations_long(adata), tsv_out)
    _write_tsv(_qc_table(sheet, qc_df, adata), qc_out)
    return adata


def _canonical_parents(mappings: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    parents: dict[str, str] = {}
    for mapping in mappings.values():
        by_path = {path: name for name, path in mapping.items()}
        for name, path in mapping.items():
            parts = path.split("/")[:-1]
            while parts and "/".join(parts) not in by_path:
                parts.pop()
            parents.setdefault(name, by_path["/".join(parts)] if parts else "")
    return parents


def _qc_table(sheet: pd.DataFrame, qc: pd.DataFrame, adata: AnnData) -> pd.DataFrame:
    columns = ["sample_id", "patient_id", "arm", "visit", "compartment", "panel", "batch"]
    table = sheet[columns].reset_index(drop=True).merge(qc, on="sample_id", how="left")
    table["status"] = table["status"].fillna("excluded")
    table["message"] = table["message"].fillna("not gated")
    counts = pd.DataFrame(
        adata.X, index=adata.obs_names, columns=[f"n_{p}" for p in adata.var_names]
    )
    table = table.merge(counts, left_on="sample_id", right_index=True, how="left")
    for population in POPULATIONS:
        if f"n_{population}" in table.columns:
            table[f"n_{population}"] = table[f"n_{population}"].astype("Int64")
    flags = adata.obs["qc_flags"].to_dict()
    table["qc_flags"] = table["sample_id"].map(flags).fillna("")
    table.loc[(table["status"] == "ok") & (table["qc_flags"] != ""), "status"] = "flagged"
    return table.sort_values("sample_id", kind="stable").reset_index(drop=True)


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


def _panel_gatings(strategies: Mapping[str, Mapping], panels_used) -> dict:
    return {
        panel: load_panel_gating(panel, strategies[panel]) for panel in sorted(set(panels_used))
    }


def run_gating_qc(
    h5ad: str | Path,
    *,
    sheet: str | Path,
    strategies: Mapping[str, Mapping],
    panels: Mapping[str, Sequence[str]] | None,
    compensation: str,
    per_batch: int,
    out_png: str | Path,
    out_pdf: str | Path,
) -> list[str]:
    """The gating QC figure for ``per_batch`` gated samples of each panel and acquisition batch.

    ``sheet`` is the sample sheet the ``fcs`` paths of ``populations.h5ad`` are relative to.
    """
    from ..pl import plot_gating_qc  # matplotlib: only for the figure steps

    obs = _gated_samples(h5ad, sheet=sheet)
    matrix = None if str(compensation).lower() == "fcs" else read_compensation(compensation)
    return plot_gating_qc(
        obs,
        _panel_gatings(strategies, obs["panel"]),
        panels=panels,
        compensation=matrix,
        per_batch=per_batch,
        out_png=out_png,
        out_pdf=out_pdf,
    )


def run_event_crosscheck(
    h5ad: str | Path,
    *,
    sheet: str | Path,
    strategies: Mapping[str, Mapping],
    panels: Mapping[str, Sequence[str]] | None,
    compensation: str,
    options: Mapping,
    arm_colors: Mapping[str, str],
    h5ad_out: str | Path,
    table_out: str | Path,
    out_png: Sequence[str | Path],
    out_pdf: Sequence[str | Path],
) -> float:
    """Subsample events of every gated sample, UMAP + Leiden, agreement with the gates, figures.

    ``sheet`` is the sample sheet the ``fcs`` paths of ``populations.h5ad`` are relative to;
    ``options`` is the config's ``events:`` section (``per_sample``, ``max_events``,
    ``leiden_resolution``, ``seed``). Returns the adjusted Rand index.
    """
    from ..pl import plot_umaps  # matplotlib: only for the figure steps

    obs = _gated_samples(h5ad, sheet=sheet)
    matrix = None if str(compensation).lower() == "fcs" else read_compensation(compensation)
    per_sample = int(options["per_sample"])
    cap = int(options["max_events"])
    per_sample = max(10, min(per_sample, cap // max(1, len(obs))))
    events = subsample_events(
        obs,
        _panel_gatings(strategies, obs["panel"]),
        panels=panels,
        compensation=matrix,
        per_sample=per_sample,
        seed=int(options["seed"]),
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
    _write_tsv(table, table_out)
    plot_umaps(events, arm_colors=arm_colors, out_png=out_png, out_pdf=out_pdf, ari=ari)
    return ari
