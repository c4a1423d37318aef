"""The ``aggregate`` rule: every batch's tables into populations.h5ad, its tidy table and the QC table."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..gating import COUNT_COLUMNS, QC_COLUMNS
from ..io import file_sha256, read_sample_sheet
from ..tl import (
    POPULATIONS,
    build_populations,
    populations_long,
)
from ._paths import fcs_relative_to_sheet, sheet_fcs
from ._tables import read_tsvs, write_tsv

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["package_versions", "read_samples_for_outputs", "run_aggregate"]


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
    counts_df = read_tsvs(counts, COUNT_COLUMNS)
    qc_df = read_tsvs(qc, QC_COLUMNS)
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
    write_tsv(populations_long(adata), tsv_out)
    write_tsv(_qc_table(sheet, qc_df, adata), qc_out)
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
