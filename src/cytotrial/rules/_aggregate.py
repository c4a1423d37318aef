"""The ``qc_table`` and ``aggregate`` rules: batch tables to the QC table and populations.h5ad.

Every batch's tables become the per-sample QC table, and populations.h5ad with its tidy tables.
The QC table comes from a job of its own that succeeds even when no sample could be gated, so the
table that says why each sample was excluded is kept; the aggregation then stops with one line.
Every batch table is checked against its manifest before it is read.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import CytotrialError
from ..gating import GATE_POSITION_COLUMNS, QC_COLUMNS
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
from ._tables import read_tsvs, write_tsv, writing

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["package_versions", "read_samples_for_outputs", "run_aggregate", "run_qc_table"]


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


def _gathered(
    counts: Sequence[str | Path],
    mfi: Sequence[str | Path],
    qc: Sequence[str | Path],
    manifests: Sequence[str | Path] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every batch's count, MFI and QC tables, each checked against its manifest first."""
    return (
        read_tsvs(counts, COUNT_INPUT_COLUMNS, manifests=manifests),
        read_tsvs(mfi, MFI_COLUMNS, manifests=manifests),
        read_tsvs(qc, [*QC_COLUMNS, "sha256"], manifests=manifests),
    )


def _with_checksums(sheet: pd.DataFrame, qc: pd.DataFrame) -> pd.DataFrame:
    """The sheet with the ``sha256`` of each file as its gating job found it ("" if not gated)."""
    found = dict(zip(qc["sample_id"], qc["sha256"])) if "sha256" in qc else {}
    return sheet.assign(sha256=[str(found.get(sid, "") or "") for sid in sheet.index])


def _populations(
    counts: pd.DataFrame,
    mfi: pd.DataFrame,
    sheet: pd.DataFrame,
    *,
    strategies: Mapping[str, Mapping],
    model: Mapping[str, Mapping[str, Any]],
    ratios: Mapping[str, Sequence[str]],
    frequencies: Sequence[str],
    absolute_reference: str,
    mfi_markers: Mapping[str, Sequence[str]],
    mfi_min_events: int,
    min_events: Mapping[str, int],
    provenance: Mapping | None = None,
    flags: Mapping[str, str] | None = None,
    gate_positions: pd.DataFrame | None = None,
    arm_colors: Mapping[str, str] | None = None,
) -> AnnData | None:
    """The samples x populations AnnData of the gated samples; None when no sample was gated.

    ``flags``: per sample, the flags its gating raised (the QC table's ``flags``), put first in
    ``qc_flags``. ``gate_positions``: the batches' adaptive gate positions (gate QC).
    ``arm_colors``: the config's ``arms:`` (``uns['arm_colors']``).
    """
    if counts.empty:
        return None
    adata = build_populations(
        counts,
        sheet,
        model=model,
        panels=list(strategies),
        ratios=ratios,
        frequencies=frequencies,
        absolute_reference=absolute_reference,
        min_events=min_events,
        mfi=mfi,
        mfi_markers=mfi_markers,
        mfi_min_events=mfi_min_events,
        provenance=provenance,
        gate_positions=gate_positions,
        arm_colors=arm_colors,
    )
    gating = [str((flags or {}).get(sid, "")) for sid in adata.obs_names]
    adata.obs["qc_flags"] = [
        ",".join(f for f in pair if f) for pair in zip(gating, adata.obs["qc_flags"])
    ]
    return adata


def _gate_positions(
    gates: Sequence[str | Path], manifests: Sequence[str | Path] | None
) -> pd.DataFrame | None:
    """Every batch's adaptive gate positions (``None``: no table given)."""
    if not gates:
        return None
    return read_tsvs(gates, GATE_POSITION_COLUMNS, manifests=manifests)


def _gating_flags(qc: pd.DataFrame) -> dict[str, str]:
    """Sample -> the flags its gating raised (``non_finite:<channel>``, ``acquisition_removed>x``)."""
    if "flags" not in qc:
        return {}
    return {str(sid): str(f) for sid, f in zip(qc["sample_id"], qc["flags"]) if f}


def run_qc_table(
    *,
    counts: Sequence[str | Path],
    mfi: Sequence[str | Path],
    qc: Sequence[str | Path],
    manifests: Sequence[str | Path] | None = None,
    sheet: str | Path,
    arms: Sequence[str],
    qc_out: str | Path,
    gates: Sequence[str | Path] = (),
    **populations: Any,
) -> pd.DataFrame:
    """Write the per-sample QC table: status, reason, events, counts, flags and file sha256.

    Written whether or not any sample could be gated (then every sample is ``excluded`` with its
    reason), so the table survives a run in which nothing could be counted.

    Parameters
    ----------
    counts, mfi, qc, manifests
        The count, MFI and QC tables of every gating batch and their manifests (each table is
        checked against its manifest; ``None``: not checked).
    sheet
        The sample sheet.
    arms
        The config's arms.
    qc_out
        Where the QC table goes.
    gates
        The adaptive gate positions tables of every gating batch (their flags join
        ``qc_flags``).
    **populations
        What :func:`run_aggregate` takes to count the populations (``strategies``, ``model``,
        ``ratios``, ``frequencies``, ``absolute_reference``, ``mfi_markers``, ``mfi_min_events``,
        ``min_events``), for the counts and flags of the table.
    """
    counts_df, mfi_df, qc_df = _gathered(counts, mfi, qc, manifests)
    table = read_samples_for_outputs(sheet, arms=arms, panels=list(populations["strategies"]))
    table = _with_checksums(table, qc_df)
    positions = _gate_positions(gates, manifests)
    adata = _populations(
        counts_df,
        mfi_df,
        table,
        flags=_gating_flags(qc_df),
        gate_positions=positions,
        **populations,
    )
    result = _qc_table(table, qc_df, adata, names=[str(name) for name in populations["model"]])
    write_tsv(result, qc_out)
    return result


def run_aggregate(
    *,
    counts: Sequence[str | Path],
    mfi: Sequence[str | Path],
    qc: Sequence[str | Path],
    manifests: Sequence[str | Path] | None = None,
    samples_qc: str | Path = "results/qc/samples.tsv",
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
    qc_out: str | Path | None = None,
    gates: Sequence[str | Path] = (),
    gates_out: str | Path | None = None,
) -> AnnData:
    """Gather every batch into ``populations.h5ad`` and its tidy tables.

    Parameters
    ----------
    counts, mfi, qc, manifests
        The count, MFI and QC tables of every gating batch and their manifests (each table is
        checked against its manifest before it is read; ``None``: not checked).
    samples_qc
        The per-sample QC table (:func:`run_qc_table`), named when no sample could be gated.
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
        The whole resolved config the run used, stored as provenance (file paths relative to the
        working folder); its ``arms:`` colours become ``uns['arm_colors']``.
    h5ad_out, tsv_out, ratios_out, mfi_out
        Where ``populations.h5ad``, ``populations.tsv``, ``ratios.tsv`` and ``mfi.tsv`` go.
    qc_out
        Where the QC table goes, if here (the workflow writes it in a job of its own:
        :func:`run_qc_table`).
    gates, gates_out
        The adaptive gate positions tables of every gating batch, and where their gathered table
        with batches, acquisition order and outliers goes (``results/gating/gate_positions.tsv``).

    Raises
    ------
    cytotrial.errors.CytotrialError
        No sample could be gated (one line naming the QC table), or a batch table is incomplete.
    """
    counts_df, mfi_df, qc_df = _gathered(counts, mfi, qc, manifests)
    table = read_samples_for_outputs(sheet, arms=arms, panels=list(strategies))
    table = _with_checksums(table, qc_df)
    provenance = _provenance(table, sheet=sheet, strategies=strategies, config=config)
    adata = _populations(
        counts_df,
        mfi_df,
        table,
        strategies=strategies,
        model=model,
        ratios=ratios,
        frequencies=frequencies,
        absolute_reference=absolute_reference,
        mfi_markers=mfi_markers,
        mfi_min_events=mfi_min_events,
        min_events=min_events,
        provenance=provenance,
        flags=_gating_flags(qc_df),
        gate_positions=_gate_positions(gates, manifests),
        arm_colors=_arm_colours(config, arms),
    )
    if adata is None:
        raise CytotrialError(_none_gated(table, qc_df, samples_qc))
    with writing(h5ad_out):
        Path(h5ad_out).parent.mkdir(parents=True, exist_ok=True)
        adata.write_h5ad(h5ad_out)
    write_tsv(populations_long(adata), tsv_out)
    write_tsv(ratios_long(adata), ratios_out)
    mfi_tidy = mfi_table(
        mfi_df, markers=mfi_markers, min_events=mfi_min_events, samples=list(adata.obs_names)
    )
    write_tsv(mfi_tidy, mfi_out)
    if gates_out is not None:
        empty = pd.DataFrame(columns=GATE_POSITION_COLUMNS)
        write_tsv(adata.uns.get("gate_positions", empty), gates_out)
    if qc_out is not None:
        write_tsv(_qc_table(table, qc_df, adata, names=list(adata.var_names)), qc_out)
    return adata


def _arm_colours(config: Mapping, arms: Sequence[str]) -> dict[str, str] | None:
    """The config's arm -> colour, in the order of ``arms`` (None: the config gives no colours)."""
    colours = config.get("arms")
    if not isinstance(colours, Mapping):
        return None
    return {str(arm): str(colours[arm]) for arm in arms if arm in colours}


def _none_gated(sheet: pd.DataFrame, qc: pd.DataFrame, samples_qc: str | Path) -> str:
    """One line: no sample could be gated, the most frequent reason, where every reason is."""
    reasons = qc.loc[qc["status"] != "ok", "message"].astype(str) if "message" in qc else []
    common = pd.Series(reasons, dtype=str).value_counts()
    most = f" (most often: {common.index[0]}, {common.iloc[0]} samples)" if len(common) else ""
    return (
        f"no sample could be gated: all {len(sheet)} samples were excluded{most}; "
        f"{samples_qc} gives each sample's reason"
    )


def _relative(value: str) -> str:
    """A file path of the config as provenance records it: relative to the working folder."""
    return os.path.relpath(value) if value and os.path.isabs(value) else value


def _config_paths_relative(config: Mapping) -> dict:
    """The config with its file paths relative to the working folder (no path of the machine)."""
    config = json.loads(json.dumps(config, default=str))
    for key in ("samples", "patients"):
        if isinstance(config.get(key), str):
            config[key] = _relative(config[key])
    for spec in (config.get("strategies") or {}).values():
        if isinstance(spec, dict) and isinstance(spec.get("strategy"), str):
            spec["strategy"] = _relative(spec["strategy"])
    gating = config.get("gating") or {}
    if isinstance(gating.get("compensation"), str):
        gating["compensation"] = _relative(gating["compensation"])
    return config


def _provenance(
    samples: pd.DataFrame,
    *,
    sheet: str | Path,
    strategies: Mapping[str, Mapping],
    config: Mapping,
) -> dict:
    """What the results were made from: digests, package versions, the config.

    The digests of the strategies, the sheet and every sample's FCS file; the config with its file
    paths relative to the working folder.
    """
    return {
        "strategy_sha256": {
            panel: file_sha256(spec["strategy"])
            for panel, spec in sorted(strategies.items())
            if Path(spec["strategy"]).is_file()
        },
        "strategy_path": {
            panel: _relative(str(spec["strategy"])) for panel, spec in sorted(strategies.items())
        },
        "sample_sheet_sha256": file_sha256(sheet),
        # every sample of the sheet, gated or not ("": not gated)
        "fcs_sha256": {
            "sample_id": [str(sid) for sid in samples.index],
            "sha256": [str(value) for value in samples["sha256"]],
        },
        "versions": package_versions(),
        "config_json": json.dumps(_config_paths_relative(config), sort_keys=True, default=str),
    }


def _qc_table(
    sheet: pd.DataFrame, qc: pd.DataFrame, adata: AnnData | None, *, names: Sequence[str]
) -> pd.DataFrame:
    """One row per sample of the sheet: file sha256, QC row, counts (``n_<population>``), flags."""
    columns = ["sample_id", "patient_id", "arm", "visit", "compartment", "panel", "batch", "sha256"]
    qc = qc.drop(columns=["sha256", "flags"], errors="ignore")  # the gating's flags: in qc_flags
    table = sheet[columns].reset_index(drop=True).merge(qc, on="sample_id", how="left")
    table["status"] = table["status"].fillna("excluded")
    table["message"] = table["message"].fillna("not gated")
    populations = list(adata.var_names) if adata is not None else list(names)
    if adata is not None:
        counts = pd.DataFrame(
            adata.X, index=adata.obs_names, columns=[f"n_{p}" for p in populations]
        )
        flags = adata.obs["qc_flags"].to_dict()
    else:
        counts = pd.DataFrame(columns=[f"n_{p}" for p in populations], dtype=float)
        flags = {}
    table = table.merge(counts, left_on="sample_id", right_index=True, how="left")
    for population in populations:
        table[f"n_{population}"] = table[f"n_{population}"].astype("Int64")
    table["qc_flags"] = table["sample_id"].map(flags).fillna("")
    table.loc[(table["status"] == "ok") & (table["qc_flags"] != ""), "status"] = "flagged"
    return table.sort_values("sample_id", kind="stable").reset_index(drop=True)
