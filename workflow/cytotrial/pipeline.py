"""The workflow's steps as library functions: gate a batch of samples, aggregate counts to AnnData.

Each function takes plain tables and mappings (no Snakemake inside), so the same code runs from the
rules, from the command line and from tests. A sample that cannot be read or lacks a marker is
excluded with its one-line reason; it never stops the other samples of the batch.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, CytotrialError, StrategyError

__all__ = [
    "POPULATIONS",
    "COUNT_COLUMNS",
    "QC_COLUMNS",
    "PanelGating",
    "assign_batches",
    "load_panel_gating",
    "read_for_gating",
    "read_compensation",
    "gate_samples",
    "qc_flags",
    "build_populations",
    "populations_long",
]

#: Canonical population names, in the order of the outputs.
POPULATIONS = [
    "lymphocytes",
    "singlets",
    "live",
    "leukocytes",
    "cd3",
    "cd4",
    "cd8",
    "treg",
    "nk",
    "cd8_ki67",
]
COUNT_COLUMNS = ["sample_id", "population", "gate_path", "gate_name", "count", "parent_count"]
QC_COLUMNS = ["sample_id", "status", "events_in", "events_stated", "notes", "message"]


def assign_batches(sample_ids: Sequence[str], *, batch_size: int) -> dict[str, int]:
    """Assign samples to gating batches by a stable hash of the sample id.

    A sample keeps its batch when others are added or removed (as long as the number of batches,
    ``ceil(n / batch_size)``, stays the same), so editing one sheet row re-gates one batch only.
    """
    if batch_size < 1:
        raise ConfigError(f"config gating.batch_size must be at least 1, not {batch_size}")
    n_batches = max(1, -(-len(sample_ids) // batch_size))
    return {sid: zlib.crc32(str(sid).encode("utf-8")) % n_batches for sid in sample_ids}


@dataclass
class PanelGating:
    """A panel's loaded strategy and its canonical population -> gate path mapping."""

    panel: str
    strategy: object  # cytotrial.strategy.Strategy
    populations: dict[str, str]


def load_panel_gating(panel: str, spec: Mapping, *, base: Path | None = None) -> PanelGating:
    """Load a panel's strategy (GatingML or FlowJo) and resolve its population mapping.

    Parameters
    ----------
    panel
        The panel name (a value of the sample sheet's ``panel`` column).
    spec
        The config entry: ``strategy`` (path), optional ``sample_group`` / ``sample_id`` (FlowJo) and
        ``populations`` (canonical name -> gate name or gate path).
    base
        Folder that relative strategy paths are relative to (the working directory by default).
    """
    from .strategy import load_strategy

    path = Path(spec["strategy"])
    if base is not None and not path.is_absolute():
        path = base / path
    strategy = load_strategy(path, sample_group=spec.get("sample_group"), sample_id=spec.get("sample_id"))
    populations = {}
    for name, gate in (spec.get("populations") or {}).items():
        if name not in POPULATIONS:
            raise ConfigError(
                f"config strategies.{panel}.populations: {name!r} is not a canonical population "
                f"({', '.join(POPULATIONS)})"
            )
        try:
            populations[name] = strategy.resolve(str(gate)).path
        except StrategyError as error:
            raise ConfigError(f"config strategies.{panel}.populations.{name}: {error}") from None
    return PanelGating(panel=panel, strategy=strategy, populations=populations)


def read_compensation(path: str | Path) -> pd.DataFrame:
    """A spillover matrix from a CSV/TSV file: header = detector names, one row per detector.

    A first column of detector names (as FlowJo and FlowKit export) is accepted too.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config gating.compensation: matrix file {path} not found")
    sep = "\t" if path.suffix.lower() in {".tsv", ".txt"} else ","
    table = pd.read_csv(path, sep=sep)
    if table.shape[1] == table.shape[0] + 1:
        table = table.set_index(table.columns[0])
    if table.shape[0] != table.shape[1]:
        raise ConfigError(
            f"{path}: a spillover matrix must be square (detectors x detectors), not {table.shape[0]}x{table.shape[1]}"
        )
    try:
        values = table.to_numpy(dtype=float)
    except ValueError:
        raise ConfigError(f"{path}: spillover matrix has non-numeric values") from None
    names = [str(c).strip() for c in table.columns]
    return pd.DataFrame(values, index=names, columns=names)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_for_gating(
    fcs: str | Path,
    gating: PanelGating,
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
):
    """Read a file and find its channels for a panel's strategy: ``(FCSData, channel_map)``.

    Raises
    ------
    FCSReadError, MissingMarkerError
        The file cannot be read, or lacks a channel the strategy needs.
    """
    from .fcs import read_fcs
    from .panels import resolve_channels

    data = read_fcs(fcs)
    if compensation is not None:
        data.spill = compensation
    channel_map = resolve_channels(
        data.channels, data.markers, gating.strategy.dimensions(), panels=panels, file=Path(fcs).name
    )
    return data, channel_map


def gate_samples(
    samples: pd.DataFrame,
    gatings: Mapping[str, PanelGating],
    *,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gate every sample of a batch.

    Parameters
    ----------
    samples
        Rows with ``sample_id``, ``panel`` and ``fcs`` (absolute path).
    gatings
        Loaded strategy and population mapping per panel.
    panels
        The config's marker -> channel names mapping (harmonisation).
    compensation
        A spillover matrix to use instead of each file's own.

    Returns
    -------
    counts, qc
        ``counts``: one row per sample and gate (``COUNT_COLUMNS``; ``population`` is the canonical
        name or ""). ``qc``: one row per sample (``QC_COLUMNS``), ``status`` "ok" or "excluded"
        with the one-line reason in ``message``.
    """
    from .gating import count_events

    counts: list[pd.DataFrame] = []
    qc_rows: list[dict] = []
    for row in samples.sort_values("sample_id").itertuples(index=False):
        gating = gatings[row.panel]
        record = {"sample_id": row.sample_id, "status": "ok", "events_in": 0, "events_stated": 0, "notes": "", "message": ""}
        try:
            data, channel_map = read_for_gating(row.fcs, gating, panels=panels, compensation=compensation)
            record["events_in"] = data.n_events
            record["events_stated"] = data.n_events_stated
            record["notes"] = "; ".join(data.notes)
            table = count_events(data, gating.strategy, channel_map=channel_map)
        except CytotrialError as error:
            record["status"] = "excluded"
            record["message"] = _one_line(error)
            qc_rows.append(record)
            continue
        names = {path: name for name, path in gating.populations.items()}
        table = table.assign(sample_id=row.sample_id, population=table["gate_path"].map(names).fillna(""))
        counts.append(table[COUNT_COLUMNS])
        qc_rows.append(record)
    counts_df = pd.concat(counts, ignore_index=True) if counts else pd.DataFrame(columns=COUNT_COLUMNS)
    counts_df["count"] = counts_df["count"].astype("int64")
    counts_df["parent_count"] = counts_df["parent_count"].astype("int64")
    return counts_df, pd.DataFrame(qc_rows, columns=QC_COLUMNS)


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


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
