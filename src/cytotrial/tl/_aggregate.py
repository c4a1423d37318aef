"""Aggregate gated counts of every batch into a samples x populations AnnData and its tidy table."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..config import canonical_populations

__all__ = ["POPULATIONS", "build_populations", "populations_long", "qc_flags"]

#: Canonical population names, in the order of the outputs (the config schema's list).
POPULATIONS = canonical_populations()


def qc_flags(counts: pd.DataFrame, *, min_events: Mapping[str, int]) -> pd.Series:
    """Per-sample flags such as ``too_few_events:cd3<100`` from a samples x populations table."""
    flags = pd.Series("", index=counts.index, dtype=object)
    for population, minimum in (min_events or {}).items():
        if population not in counts.columns:
            continue
        low = counts[population].notna() & (counts[population] < minimum)
        for sid in counts.index[low]:
            flag = f"too_few_events:{population}<{minimum}"
            flags[sid] = f"{flags[sid]},{flag}" if flags[sid] else flag
    return flags


def build_populations(
    counts: pd.DataFrame,
    sheet: pd.DataFrame,
    gatings: Mapping[str, Mapping[str, str]],
    parents: Mapping[str, str],
    *,
    min_events: Mapping[str, int] | None = None,
    provenance: Mapping | None = None,
    absolute_reference: str = "live",
):
    """Samples x populations AnnData from the gated counts of every batch.

    Parameters
    ----------
    counts
        The concatenated ``COUNT_COLUMNS`` tables (canonical rows are those with a population).
    sheet
        The checked sample sheet (index = sample_id); only samples with counts are kept.
    gatings
        Per panel, canonical population -> gate path (stored in ``var`` as ``gate_path_<panel>``).
    parents
        Canonical parent of each canonical population (``var['parent']``): the nearest mapped
        ancestor. ``var['parent_gate_<panel>']`` names the gate ``freq_parent`` divides by.
    min_events
        Population -> minimum event count; samples below are flagged in ``obs['qc_flags']``.
    provenance
        Stored as ``uns['provenance']``.
    absolute_reference
        Population whose events correspond to ``lymphocytes_per_ul`` (default ``live``).

    Returns
    -------
    anndata.AnnData
        X = event counts; layers ``freq_parent``, ``freq_live``, ``per_ul``.
    """
    import anndata as ad

    canonical = counts[counts["population"] != ""]
    samples = [s for s in sheet.index if s in set(canonical["sample_id"])]
    var_names = [p for p in POPULATIONS if p in set(canonical["population"])]
    count = canonical.pivot(index="sample_id", columns="population", values="count")
    parent = canonical.pivot(index="sample_id", columns="population", values="parent_count")
    count = count.reindex(index=samples, columns=var_names).astype(float)
    parent = parent.reindex(index=samples, columns=var_names).astype(float)

    obs = sheet.loc[samples].copy()
    obs["qc_flags"] = qc_flags(count, min_events=min_events or {}).astype(str)
    for column in obs.columns:
        if obs[column].dtype == object:
            obs[column] = obs[column].astype(str)
    obs.index = obs.index.astype(str)

    with np.errstate(divide="ignore", invalid="ignore"):
        freq_parent = (count / parent).where(parent > 0)
        if absolute_reference in count.columns:
            reference = count[absolute_reference]
            freq_live = count.div(reference, axis=0).where(reference > 0, axis=0)
        else:
            freq_live = count * np.nan
        per_ul = freq_live.mul(obs["lymphocytes_per_ul"].astype(float), axis=0)
    # Absolute counts mean cells per µL only at or below the reference gate.
    above = [p for p in var_names if p in ("lymphocytes", "singlets") and p != absolute_reference]
    per_ul[above] = np.nan
    freq_live[above] = np.nan

    var = pd.DataFrame(index=pd.Index(var_names, dtype=str))
    var["parent"] = [parents.get(p, "") for p in var_names]
    for panel, mapping in gatings.items():
        var[f"gate_path_{panel}"] = [mapping.get(p, "") for p in var_names]
        # freq_parent divides by this gate, which need not be canonical (nk: its parent is CD3-).
        var[f"parent_gate_{panel}"] = [mapping.get(p, "").rpartition("/")[0] for p in var_names]

    adata = ad.AnnData(
        X=count.to_numpy(dtype=float),
        obs=obs,
        var=var,
        layers={
            "freq_parent": freq_parent.to_numpy(dtype=float),
            "freq_live": freq_live.to_numpy(dtype=float),
            "per_ul": per_ul.to_numpy(dtype=float),
        },
    )
    adata.uns["provenance"] = _h5_safe(dict(provenance or {}))
    return adata


def _h5_safe(value):
    """Make a nested mapping storable in .h5ad: None -> "", nested lists of mappings -> JSON."""
    if isinstance(value, Mapping):
        return {str(k): _h5_safe(v) for k, v in value.items()}
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float, bool)) for v in value) and value:
            kinds = {type(v) for v in value}
            return list(value) if len(kinds) == 1 else [str(v) for v in value]
        return json.dumps(value, sort_keys=True, default=str)
    return value


def populations_long(adata) -> pd.DataFrame:
    """The AnnData as one tidy table: one row per sample and population."""
    obs_columns = [c for c in adata.obs.columns if c != "sample_id"]
    frames = []
    for j, population in enumerate(adata.var_names):
        frame = adata.obs[obs_columns].copy()
        frame.insert(0, "sample_id", adata.obs_names)
        frame["population"] = population
        frame["parent"] = adata.var["parent"].iloc[j]
        frame["count"] = adata.X[:, j]
        for layer in ("freq_parent", "freq_live", "per_ul"):
            frame[layer] = adata.layers[layer][:, j]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table = table[table["count"].notna()]
    table["count"] = table["count"].astype("int64")
    return table.sort_values(["sample_id", "population"], kind="stable").reset_index(drop=True)
