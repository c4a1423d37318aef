"""The ``aggregate`` rule: every batch's tables into populations.h5ad, tidy tables and the QC table."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..gating import QC_COLUMNS
from ..io import file_sha256, read_sample_sheet
from ..tl import (
    COUNT_INPUT_COLUMNS,
    MFI_COLUMNS,
    build_populations,
    mfi_table,
    populations_long,
    ratios_long,
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
    mfi: Sequence[str | Path],
    qc: Sequence[str | Path],
    sheet: str | Path,
    arms: Sequence[str],
    strategies: Mapping[str, Mapping],
    model: Mapping[str, Mapping[str, Any]],
    ratios: Mapping[str, Sequence[str]],
    frequencies: Sequence[str],
    absolute_reference: str,
    mfi_markers: Mapping[str, Sequence[str]],
    mfi_min_events: int,
    min_events: Mapping[str, int],
    config: Mapping,
    h5ad_out: str | Path,
    tsv_out: str | Path,
    ratios_out: str | Path,
    mfi_out: str | Path,
    qc_out: str | Path,
) -> AnnData:
    """Gather every batch into ``populations.h5ad``, its tidy tables and the per-sample QC table.

    Parameters
    ----------
    counts, mfi, qc
        The count, MFI and QC tables of every gating batch.
    sheet
        The sample sheet (checked again here); ``obs['fcs']`` records each file relative to it.
    arms
        The config's arms.
    strategies
        The config's ``strategies:`` (panels in config order; each strategy's sha256 is recorded).
    model
        :func:`cytotrial.config.population_model` of the config: reported populations, labels.
    ratios
        The config's ``ratios:``.
    frequencies
        ``frequencies.of``: the reference populations.
    absolute_reference
        ``absolute.reference`` ("" for none).
    mfi_markers, mfi_min_events
        ``mfi.markers`` and ``mfi.min_events``.
    min_events
        ``qc.min_events``.
    config
        The whole resolved config the run used, stored as provenance (paths as it gives them).
    h5ad_out, tsv_out, ratios_out, mfi_out, qc_out
        Where ``populations.h5ad``, ``populations.tsv``, ``ratios.tsv``, ``mfi.tsv`` and the QC
        table go.
    """
    sheet = read_samples_for_outputs(sheet, arms=arms, panels=list(strategies))
    counts_df = read_tsvs(counts, COUNT_INPUT_COLUMNS)
    mfi_df = read_tsvs(mfi, MFI_COLUMNS)
    qc_df = read_tsvs(qc, QC_COLUMNS)
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
        counts_df,
        sheet,
        model=model,
        panels=list(strategies),
        ratios=ratios,
        frequencies=frequencies,
        absolute_reference=absolute_reference,
        min_events=min_events,
        mfi=mfi_df,
        mfi_markers=mfi_markers,
        mfi_min_events=mfi_min_events,
        provenance=provenance,
    )
    Path(h5ad_out).parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(h5ad_out)
    write_tsv(populations_long(adata), tsv_out)
    write_tsv(ratios_long(adata), ratios_out)
    mfi_tidy = mfi_table(
        mfi_df, markers=mfi_markers, min_events=mfi_min_events, samples=list(adata.obs_names)
    )
    write_tsv(mfi_tidy, mfi_out)
    write_tsv(_qc_table(sheet, qc_df, adata), qc_out)
    return adata


def _qc_table(sheet: pd.DataFrame, qc: pd.DataFrame, adata: AnnData) -> pd.DataFrame:
    columns = ["sample_id", "patient_id", "arm", "visit", "compartment", "panel", "batch"]
    table = sheet[columns].reset_index(drop=True).merge(qc, on="sample_id", how="left")
    table["status"] = table["status"].fillna("excluded")
    table["message"] = table["message"].fillna("not gated")
    counts = pd.DataFrame(
        adata.X, index=adata.obs_names, columns=[f"n_{p}" for p in adata.var_names]
    )
    table = table.merge(counts, left_on="sample_id", right_index=True, how="left")
    for population in adata.var_names:
        table[f"n_{population}"] = table[f"n_{population}"].astype("Int64")
    flags = adata.obs["qc_flags"].to_dict()
    table["qc_flags"] = table["sample_id"].map(flags).fillna("")
    table.loc[(table["status"] == "ok") & (table["qc_flags"] != ""), "status"] = "flagged"
    return table.sort_values("sample_id", kind="stable").reset_index(drop=True)
