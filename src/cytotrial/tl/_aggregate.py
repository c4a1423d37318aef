"""Aggregate the gated counts of every batch into a samples x populations AnnData and its tidy table.

The populations are the config's reported populations, in output order; each panel names its own
parent of every population (the gating writes it per row), and every fraction divides by the count
of exactly the population its ``parent`` names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._analysis import visit_order
from ._features import mfi_matrices, mfi_table, ratio_values
from ._gates import GATE_COLUMNS, gate_flags, gate_positions_table, gate_positions_wide

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["COUNT_INPUT_COLUMNS", "build_populations", "populations_long", "qc_flags"]

#: The columns of a gating batch's count table the aggregation reads.
COUNT_INPUT_COLUMNS = ["sample_id", "population", "gate_path", "parent", "count", "parent_count"]


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
    *,
    model: Mapping[str, Mapping[str, Any]],
    panels: Sequence[str],
    ratios: Mapping[str, Sequence[str]],
    frequencies: Sequence[str],
    absolute_reference: str,
    min_events: Mapping[str, int],
    mfi: pd.DataFrame | None = None,
    mfi_markers: Mapping[str, Sequence[str]] | None = None,
    mfi_min_events: int = 0,
    provenance: Mapping | None = None,
    gate_positions: pd.DataFrame | None = None,
    arm_colors: Mapping[str, str] | None = None,
) -> AnnData:
    """Samples x reported populations AnnData from the gated counts (and MFIs) of every batch.

    Parameters
    ----------
    counts
        The concatenated count tables of the gating (:data:`COUNT_INPUT_COLUMNS`): one row per
        sample and reported population of its panel, with that panel's ``parent`` of it ("" at the
        top, where ``parent_count`` is every event of the file).
    sheet
        The checked sample sheet (index = sample_id); only samples with counts are kept, in its order.
    model
        :func:`cytotrial.config.population_model`: the reported populations in output order, each
        with its ``label``.
    panels
        The config's panels (``strategies:`` keys), in config order.
    ratios
        ``{name: [numerator, denominator]}`` (config ``ratios:``).
    frequencies
        Reference populations (``frequencies.of``): one layer ``freq_<ref>`` each.
    absolute_reference
        The population ``lymphocytes_per_ul`` counts (layer ``per_ul``); "" for none.
    min_events
        Population -> minimum event count; samples below are flagged (``too_few_events``).
    mfi
        The concatenated MFI tables of the gating (see :func:`mfi_table`), or None.
    mfi_markers
        ``mfi.markers``: population -> markers (the ``obsm`` columns ``<population>:<marker>``, in
        this order); None: every pair of ``mfi`` in order of first appearance.
    mfi_min_events
        ``mfi.min_events``: below it, median, median_transformed and rcv are NA and the sample is
        flagged ``mfi_too_few_events:<population>:<marker>``.
    provenance
        Stored as ``uns['provenance']``.
    gate_positions
        The gating's adaptive gate positions (``cytotrial.gating.GATE_POSITION_COLUMNS``), or None:
        with their robust outliers (:func:`gate_positions_table`) in ``uns['gate_positions']``,
        samples x boundaries in ``obsm['gate_positions']``, and flags ``adaptive_fallback:<gate>``
        and ``gate_outlier:<gate>``.
    arm_colors
        The config's ``arms:`` (arm -> colour, in config order): the order of the ``arm``
        categories and ``uns['arm_colors']`` (scanpy's ``<key>_colors``, so ``sc.pl.*(color=
        'arm')`` draws the config's colours); None: arms sorted, no colours stored.

    Returns
    -------
    anndata.AnnData
        X = event counts (NA where the sample's panel lacks the population); layers
        ``freq_parent``, ``freq_<ref>`` per reference, ``per_ul``; var ``label``, ``parent``,
        ``parent_<panel>``, ``gate_path_<panel>``; obs = the sheet's columns (with the file's
        ``sha256`` when the sheet carries it) and ``qc_flags``, ``arm``, ``compartment`` and
        ``panel`` categorical (the config's order, compartments sorted) and ``visit`` an ordered
        categorical in clinical order (cycle, then day); obsm ``ratios``, ``mfi_median``, ``mfi_median_transformed``,
        ``mfi_rcv``, ``mfi_n_events``; uns ``ratios``, ``provenance`` and, with ``arm_colors``,
        ``arm_colors``.

    Raises
    ------
    ValueError
        The count table breaks its contract: a missing column, a population the config does not
        report, two rows of one sample and population, panels that disagree within themselves
        on a population's gate or parent, or a ``parent_count`` that is not its parent's count;
        or an arm of the samples has no colour in ``arm_colors``.
    """
    import anndata as ad

    names = [str(name) for name in model]
    rows = _reported_rows(counts, sheet, names)
    present = set(rows["sample_id"])
    samples = [s for s in sheet.index if s in present]
    count = _pivot(rows, "count", samples, names)
    parent_count = _pivot(rows, "parent_count", samples, names)
    panel_of = sheet.loc[samples, "panel"].astype(str)
    structure = _panel_structure(rows, sheet["panel"].astype(str))
    _check_parent_counts(count, parent_count, panel_of, structure)

    with np.errstate(divide="ignore", invalid="ignore"):
        layers = {"freq_parent": (count / parent_count).where(parent_count > 0)}
        for reference in frequencies:
            layers[f"freq_{reference}"] = _fraction_of(count, reference, panel_of, structure)
        layers["per_ul"] = count * np.nan
        if absolute_reference and "lymphocytes_per_ul" in sheet.columns:
            of_reference = layers.get(f"freq_{absolute_reference}")
            if of_reference is None:
                of_reference = _fraction_of(count, absolute_reference, panel_of, structure)
            per_ul = sheet.loc[samples, "lymphocytes_per_ul"].astype(float)
            layers["per_ul"] = of_reference.mul(per_ul, axis=0)

    ratio_table, ratio_flags = ratio_values(count, ratios)
    markers = None if mfi_markers is None else dict(mfi_markers)
    mfi_tidy = mfi_table(mfi, markers=markers, min_events=mfi_min_events, samples=samples)
    mfi_obsm, mfi_flags = mfi_matrices(
        mfi_tidy, markers=markers, min_events=mfi_min_events, samples=samples
    )

    obs = sheet.loc[samples].copy()
    positions = gate_positions_table(
        gate_positions if gate_positions is not None else pd.DataFrame(columns=GATE_COLUMNS),
        sheet.loc[samples],
    )
    obs["qc_flags"] = _join_flags(
        qc_flags(count, min_events=min_events),
        ratio_flags,
        mfi_flags,
        gate_flags(positions, samples),
    )
    for column in obs.columns:
        if obs[column].dtype == object:
            obs[column] = obs[column].astype(str)
    obs.index = obs.index.astype(str)
    obs = _categorical_obs(obs, arms=list(arm_colors or []), panels=panels)

    adata = ad.AnnData(
        X=count.to_numpy(dtype=float),
        obs=obs,
        var=_var_table(names, model, panels, structure),
        layers={name: frame.to_numpy(dtype=float) for name, frame in layers.items()},
    )
    adata.obsm["ratios"] = _indexed(ratio_table, adata.obs_names)
    for key, frame in mfi_obsm.items():
        adata.obsm[key] = _indexed(frame, adata.obs_names)
    adata.uns["ratios"] = {str(name): [str(p) for p in pair] for name, pair in ratios.items()}
    adata.uns["provenance"] = _h5_safe(dict(provenance or {}))
    if arm_colors is not None and "arm" in obs:
        adata.uns["arm_colors"] = _category_colours(obs["arm"], arm_colors)
    if gate_positions is not None:
        adata.obsm["gate_positions"] = _indexed(
            gate_positions_wide(positions, samples), adata.obs_names
        )
        adata.uns["gate_positions"] = positions
    return adata


def _categorical_obs(
    obs: pd.DataFrame, *, arms: Sequence[str], panels: Sequence[str]
) -> pd.DataFrame:
    """The sample table with ``arm``, ``visit``, ``compartment`` and ``panel`` as categoricals.

    Arms and panels in the config's order (others sorted after), compartments sorted, and visits
    an ordered categorical in clinical order (by cycle, then day; never alphabetical), so that
    scverse tools sort and draw them as our figures do. Only values present are categories.
    """
    obs = obs.copy()
    orders = {"arm": arms, "compartment": [], "panel": panels}
    for column, preferred in orders.items():
        if column in obs:
            values = obs[column].astype(str)
            present = set(values)
            first = [str(v) for v in dict.fromkeys(preferred) if str(v) in present]
            order = first + sorted(present - set(first))
            obs[column] = pd.Categorical(values, categories=order)
    if {"visit", "cycle", "day"} <= set(obs.columns):
        visits = obs["visit"].astype(str)
        obs["visit"] = pd.Categorical(
            visits, categories=list(dict.fromkeys(visit_order(obs))), ordered=True
        )
    return obs


def _category_colours(arms: pd.Series, arm_colors: Mapping[str, str]) -> list[str]:
    """The colour of each category of ``arms`` as hex (scanpy's ``uns['arm_colors']``)."""
    from matplotlib.colors import to_hex

    missing = [str(a) for a in arms.cat.categories if a not in arm_colors]
    if missing:
        raise ValueError(f"arm(s) {', '.join(missing)} have no colour in the config's arms:")
    return [to_hex(arm_colors[arm]) for arm in arms.cat.categories]


def _reported_rows(counts: pd.DataFrame, sheet: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The count rows of the sheet's samples, text columns as text; contract problems raise."""
    missing = [c for c in COUNT_INPUT_COLUMNS if c not in counts.columns]
    if missing:
        raise ValueError(f"count table lacks column(s) {', '.join(missing)}")
    rows = counts[COUNT_INPUT_COLUMNS].copy()
    for column in ("sample_id", "population", "gate_path", "parent"):
        rows[column] = rows[column].fillna("").astype(str)
    rows = rows[rows["sample_id"].isin(set(sheet.index))]
    unknown = sorted(set(rows["population"]) - set(names))
    if unknown:
        raise ValueError(
            f"count table has population(s) the config does not report: {', '.join(unknown)}"
        )
    return rows


def _pivot(rows: pd.DataFrame, column: str, samples: list[str], names: list[str]) -> pd.DataFrame:
    table = rows.pivot(index="sample_id", columns="population", values=column)
    table = table.reindex(index=samples, columns=names)
    return table.apply(pd.to_numeric).astype(float).rename_axis(index=None, columns=None)


def _panel_structure(rows: pd.DataFrame, panel_of: pd.Series) -> dict[str, pd.DataFrame]:
    """Per panel: population -> (gate_path, parent) as its samples' rows give them."""
    table = rows.assign(panel=rows["sample_id"].map(panel_of))
    firsts = table.drop_duplicates(["panel", "population", "gate_path", "parent"])
    clash = firsts[firsts.duplicated(["panel", "population"], keep=False)]
    if not clash.empty:
        first = clash.iloc[0]
        raise ValueError(
            f"panel {first['panel']}: samples disagree on the gate path or parent of "
            f"{first['population']}"
        )
    return {
        str(panel): group.set_index("population")[["gate_path", "parent"]]
        for panel, group in firsts.groupby("panel", sort=False)
    }


def _check_parent_counts(
    count: pd.DataFrame,
    parent_count: pd.DataFrame,
    panel_of: pd.Series,
    structure: Mapping[str, pd.DataFrame],
) -> None:
    """Every ``parent_count`` is the count of the population its ``parent`` names (same sample)."""
    for panel, table in structure.items():
        in_panel = (panel_of == panel).to_numpy()
        for population, parent in table["parent"].items():
            if not parent:
                continue
            if parent not in count.columns or parent not in table.index:
                raise ValueError(
                    f"panel {panel}: {population}'s parent {parent} is not a population of the panel"
                )
            given = parent_count.loc[in_panel, population]
            named = count.loc[in_panel, parent]
            wrong = given.notna() & (given != named)
            if wrong.any():
                raise ValueError(
                    f"sample {given.index[wrong][0]}: parent_count of {population} is not the "
                    f"count of its parent {parent}"
                )


def _ancestry(population: str, parents: Mapping[str, str]) -> list[str]:
    """``population`` and its ancestors through the ``parent`` chain of one panel."""
    chain = []
    while population and population not in chain:
        chain.append(population)
        population = parents.get(population, "")
    return chain


def _fraction_of(
    count: pd.DataFrame,
    reference: str,
    panel_of: pd.Series,
    structure: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """The fraction of a reference: NA unless the population is the reference or below it."""
    fraction = pd.DataFrame(np.nan, index=count.index, columns=count.columns)
    if reference not in count.columns:
        return fraction
    for panel, table in structure.items():
        in_panel = (panel_of == panel).to_numpy()
        parents = table["parent"].to_dict()
        denominator = count.loc[in_panel, reference]
        for population in table.index:
            if reference in _ancestry(population, parents):
                fraction.loc[in_panel, population] = (
                    count.loc[in_panel, population] / denominator
                ).where(denominator > 0)
    return fraction


def _var_table(
    names: list[str],
    model: Mapping[str, Mapping[str, Any]],
    panels: Sequence[str],
    structure: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """var: label, the common parent, and each panel's parent and gate path of every population."""
    var = pd.DataFrame(index=pd.Index(names, dtype=str))
    var["label"] = [str(model[name].get("label") or name) for name in names]
    common = []
    for name in names:
        found = {str(t.at[name, "parent"]) for t in structure.values() if name in t.index}
        common.append(found.pop() if len(found) == 1 else "")
    var["parent"] = common
    empty = pd.DataFrame(columns=["gate_path", "parent"], dtype=str)
    for panel in panels:
        table = structure.get(str(panel), empty)
        var[f"parent_{panel}"] = [
            str(table.at[n, "parent"]) if n in table.index else "" for n in names
        ]
        var[f"gate_path_{panel}"] = [
            str(table.at[n, "gate_path"]) if n in table.index else "" for n in names
        ]
    return var


def _join_flags(*flags: pd.Series) -> pd.Series:
    """Comma-joined flags per sample, in the order of the series given."""
    joined = flags[0].astype(str)
    for more in flags[1:]:
        more = more.reindex(joined.index).fillna("").astype(str)
        both = (joined != "") & (more != "")
        joined = joined + np.where(both, ",", "") + more
    return joined.astype(str)


def _indexed(frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    frame = frame.copy()
    frame.index = index
    frame.columns = frame.columns.astype(str)
    return frame


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


def populations_long(adata: AnnData) -> pd.DataFrame:
    """The AnnData as one tidy table: one row per sample and population of its panel.

    Columns: ``sample_id``, the other obs columns but the file's ``sha256`` (in obs and the QC
    table), ``population``, ``parent`` (the population ``freq_parent`` divides by in that sample's
    panel), ``count``, ``freq_parent``, each ``freq_<ref>`` (sorted by name), ``per_ul``. Sorted
    by sample and population.
    """
    obs_columns = [c for c in adata.obs.columns if c not in ("sample_id", "sha256")]
    references = sorted(k for k in adata.layers if k.startswith("freq_") and k != "freq_parent")
    layers = ["freq_parent", *references, "per_ul"]
    panels = adata.obs["panel"].astype(str).to_numpy() if "panel" in adata.obs else None
    frames = []
    for j, population in enumerate(adata.var_names):
        frame = adata.obs[obs_columns].copy()
        frame.insert(0, "sample_id", adata.obs_names)
        frame["population"] = population
        frame["parent"] = _row_parents(adata.var, j, panels, len(frame))
        frame["count"] = adata.X[:, j]
        for layer in layers:
            frame[layer] = adata.layers[layer][:, j]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table = table[table["count"].notna()]
    table["count"] = table["count"].astype("int64")
    return table.sort_values(["sample_id", "population"], kind="stable").reset_index(drop=True)


def _row_parents(var: pd.DataFrame, j: int, panels: np.ndarray | None, n: int) -> np.ndarray:
    """Each sample's panel parent of population ``j`` (``var['parent']`` without panel columns)."""
    common = str(var["parent"].iloc[j]) if "parent" in var else ""
    if panels is None:
        return np.full(n, common, dtype=object)
    by_panel = {
        panel: str(var[f"parent_{panel}"].iloc[j]) if f"parent_{panel}" in var else common
        for panel in set(panels)
    }
    return np.array([by_panel[p] for p in panels], dtype=object)
