"""The gates each sample was gated with, exported: GatingML 2.0 per sample, a FlowJo 10 workspace.

What a sample was gated with is the panel's strategy, moved where adaptive gates placed it for
the sample (the gate positions table), after acquisition QC removed stretches of events, with
the compensation the gating applied; the config's Boolean populations are combinations of its
gates. :func:`read_sample_gates` gathers what the file adds (its channel names, its spillover
matrix, the Time stretches acquisition QC removes from it: the file is read again, as the gating
reads it), :func:`sample_placements` turns the sample's rows of the gate positions table back
into the placed geometry, and

* :func:`export_gatingml` writes one sample's gates as a GatingML 2.0 file: FlowKit
  (``parse_gating_xml`` and ``Session``) gating the sample's FCS file with it counts every
  population as the workflow did;
* :func:`export_flowjo_workspace` writes a FlowJo 10 workspace of the panel: one sample node per
  file (the file's path relative to the workspace), each with its own gates; the group ``All
  Samples`` holds the strategy as drawn (see ``_export_wsp``).

The acquisition QC gates (``acquisition_removed`` on ``Time``, and ``acquisition_qc``, which holds
the events kept and is the parent of the strategy's top gates) are added when acquisition QC
removed events from any sample of the panel (see ``_export_tree``). Where a file's counts could
not be reproduced from the gates (events with non-finite values left out of gating; a removed
stretch that ends between events of the same ``Time``), :attr:`SampleGates.inexact` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import CytotrialError
from ._export_gml import gatingml_document
from ._export_tree import CONFIG_MATRIX, SampleGates, export_tree
from ._export_wsp import WspSample, data_uri, write_workspace
from ._placement import _Geometry

if TYPE_CHECKING:
    from ._export_tree import XGate
    from ._populations import PanelGating

__all__ = [
    "SampleGates",
    "export_flowjo_workspace",
    "export_gatingml",
    "read_gate_positions",
    "read_removed_stretches",
    "read_sample_gates",
    "sample_placements",
]

_FILE_MATRIX = "Acquisition-defined"  # FlowJo's name of the matrix a file carries


def read_gate_positions(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The gate positions tables of gating batches, with every float as it was written.

    Positions go through text: they are read back as the very floats the gating placed
    (``float_precision="round_trip"``), so the exported gates are where the samples were gated.
    """
    from ._placement import GATE_POSITION_COLUMNS

    return _read_exact(
        paths, GATE_POSITION_COLUMNS, keep_default_na=False, dtype={"sample_id": str}
    )


def read_removed_stretches(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The removed stretches tables of gating batches (``batch_<id>.acquisition.tsv``).

    Read back as the very floats acquisition QC found (``float_precision="round_trip"``): an
    exported Time gate removes what the gating removed. An empty end is open.
    """
    from ._acquisition import REMOVED_STRETCH_COLUMNS

    types = {"sample_id": str, "time_channel": str, "lo": float, "hi": float}
    return _read_exact(paths, REMOVED_STRETCH_COLUMNS, dtype=types)


def _read_exact(paths: Sequence[str | Path], columns: list[str], **options: Any) -> pd.DataFrame:
    """Batch tables concatenated, every float read back as written (``round_trip``)."""
    tables = [
        pd.read_csv(path, sep="\t", float_precision="round_trip", **options) for path in paths
    ]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True)


def sample_placements(
    gating: PanelGating, positions: pd.DataFrame | None, *, sample_id: str = ""
) -> dict[str, dict[str, Any]]:
    """The geometry adaptive gates were placed at in one sample, from its gate positions.

    Parameters
    ----------
    gating
        The panel's gating (its :attr:`PanelGating.adaptive` plan says which boundaries move).
    positions
        The sample's rows of the gate positions table (``gate_path``, ``dimension``, ``bound``,
        ``position``, ``status``; :data:`GATE_POSITION_COLUMNS`).
    sample_id
        For messages.

    Returns
    -------
    dict
        Gate path -> keyword arguments of its shape (as :attr:`Engine.placements`): the engine's
        own geometry for the same positions, boundary by boundary; a ``fallback`` boundary keeps
        the template's position.

    Raises
    ------
    CytotrialError
        A boundary of the plan has no row: the table comes from another config; gate again.
    """
    plan = gating.adaptive
    if not plan:
        return {}
    table = positions if positions is not None else pd.DataFrame()
    rows = {
        (str(r.gate_path), str(r.dimension), str(r.bound)): r for r in table.itertuples(index=False)
    }
    placements: dict[str, dict[str, Any]] = {}
    quadrants: dict[int, dict[str, Any]] = {}  # quadrants share their gate's dividers
    for gate in gating.strategy.gates:
        boundaries = plan.of(gate.path)
        if not boundaries:
            continue
        if gate.kind == "quadrant" and id(gate.fk_gate) in quadrants:
            placements[gate.path] = quadrants[id(gate.fk_gate)]
            continue
        geometry = _Geometry(gate)
        for boundary in boundaries:
            found = []
            for dimension in boundary.dimension:
                row = rows.get((gate.path, dimension, boundary.bound))
                if row is None:
                    raise CytotrialError(
                        f"sample {sample_id}: the gate positions table has no {boundary.bound} of "
                        f"gate {gate.name!r} on {dimension}; gate the sample again with this config"
                    )
                found.append(row)
            if all(row.status == "adapted" for row in found):
                geometry.move(boundary, tuple(float(row.position) for row in found))
        placements[gate.path] = geometry.shape_arguments()
        if gate.kind == "quadrant":
            quadrants[id(gate.fk_gate)] = placements[gate.path]
    return placements


def read_sample_gates(
    fcs: str | Path,
    gating: PanelGating,
    *,
    sample_id: str,
    positions: pd.DataFrame | None = None,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    unreadable_compensation: str = "exclude",
    acquisition: Mapping[str, Any] | None = None,
    removed: pd.DataFrame | None = None,
    flags: str = "",
) -> SampleGates:
    """What one sample was gated with beyond the strategy, read from its file as the gating reads it.

    Parameters are those of :func:`gate_samples` for one file, ``positions``: the sample's rows
    of the gate positions table (:func:`sample_placements`), and what its gating recorded:

    removed
        The sample's rows of its batch's removed stretches table (``GatedBatch.acquisition``,
        :data:`REMOVED_STRETCH_COLUMNS`; none: nothing removed). Given, only the file's TEXT is
        read (channels, markers, spillover); the events are not read nor checked again.
        ``None``: the file is read whole and acquisition QC run again as the gating ran it.
    flags
        With ``removed``: the sample's QC flags (``non_finite:<channel>`` among them).

    Raises
    ------
    FCSReadError, MissingMarkerError
        The file cannot be read as it was when gated.
    CytotrialError
        The positions do not fit the panel's adaptive gates.
    """
    from ._acquisition import acquisition_qc, removed_stretches, time_channel
    from ._samples import read_for_gating

    gating = gating.for_file(fcs)  # a FlowJo sample group: the sample's own tree was gated
    data, channel_map = read_for_gating(
        fcs,
        gating,
        panels=panels,
        compensation=compensation,
        unreadable_compensation=unreadable_compensation,
        events=removed is None,
    )
    sample = SampleGates(
        sample_id=str(sample_id),
        fcs=str(fcs),
        placements=sample_placements(gating, positions, sample_id=str(sample_id)),
        channel_map=dict(channel_map),
        spill=data.spill,
    )
    if compensation is not None:
        sample.spill_source = "config"
    elif data.spill is not None:
        sample.spill_source = "file"
    elif data.spill_problem is not None:
        sample.spill_source = "dropped"
    recorded = data.flags if removed is None else [f for f in str(flags or "").split(",") if f]
    if any(flag.startswith("non_finite") for flag in recorded):
        sample.inexact.append(
            "events with non-finite values were left out of gating; FlowJo and FlowKit gate them"
        )
    column = time_channel(data)
    if column is not None:
        sample.time_channel = str(data.channels[column])
    misplaced = 0
    if removed is not None:
        sample.removed = [(_bound(row.lo), _bound(row.hi)) for row in removed.itertuples()]
        misplaced = int(removed["misplaced"].max()) if len(removed) else 0
    elif acquisition and acquisition.get("enabled") and column is not None:
        qc = acquisition_qc(data, acquisition)
        if qc.n_removed:
            times = np.asarray(data.events[:, column], dtype=np.float64)
            sample.removed, misplaced = removed_stretches(times, qc.keep)
    if misplaced:
        sample.inexact.append(
            f"a stretch acquisition QC removed ends between events of the same Time: "
            f"the Time gate counts {misplaced} events differently"
        )
    return sample


def _bound(value: Any) -> float | None:
    """A removed stretch's end as the table holds it: empty (NaN) is open."""
    value = float(value)
    return None if np.isnan(value) else value


def _comment(gating: PanelGating, what: str) -> str:
    strategy = gating.strategy
    return (
        f"cytotrial: {what}, panel {gating.panel}; strategy {strategy.path.name} "
        f"(sha256 {strategy.sha256[:16]})"
    )


def export_gatingml(
    gating: PanelGating,
    path: str | Path,
    sample: SampleGates | None = None,
    *,
    acquisition: bool | None = None,
) -> dict[str, str]:
    """Write the gates one sample was gated with as a GatingML 2.0 file.

    Parameters
    ----------
    gating
        The panel's strategy and populations (Boolean populations become Boolean gates).
    path
        The file to write.
    sample
        From :func:`read_sample_gates`; ``None``: the strategy as drawn.
    acquisition
        Add the acquisition QC gates (default: where the sample had events removed).

    Returns
    -------
    dict
        The gates and Boolean populations left out (name -> why): GatingML 2.0 has no form of
        FlowJo's biex and log scales nor of a gate of the events outside its shape.
    """
    if acquisition is None:
        acquisition = bool(sample is not None and sample.removed)
    if sample is not None:
        gating = gating.for_file(sample.fcs)
    gates, skipped = export_tree(gating, sample, acquisition=acquisition)
    strategy = gating.strategy.gating_strategy
    extra = None
    if sample is not None and sample.spill_source == "config" and sample.spill is not None:
        extra = (CONFIG_MATRIX, sample.spill)
    what = f"gates of sample {sample.sample_id}" if sample is not None else "template gates"
    if sample is not None:
        what += f" (data file {Path(sample.fcs).name})"
    document, left_out = gatingml_document(
        gates,
        transforms=dict(strategy.transformations or {}),
        matrices=dict(strategy.comp_matrices or {}),
        channels=sample.channel_map if sample is not None else {},
        extra_matrix=extra,
        comment=_comment(gating, what),
    )
    _write(document, path)
    return {**dict.fromkeys(skipped, "an expression more than one level deep"), **left_out}


def _write(document: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.write(str(path), encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _wsp_matrix(
    gating: PanelGating, sample: SampleGates, compensations: set[str]
) -> tuple[tuple[str, list[str], np.ndarray] | None, str | None]:
    """The one spillover matrix a sample node holds (FlowJo: one per sample) and its reference."""
    found: list[tuple[tuple[str, list[str], np.ndarray], str]] = []
    for ref in sorted(compensations - {"uncompensated"}):
        if ref in ("FCS", CONFIG_MATRIX):
            if sample.spill is not None and sample.spill_source in ("file", "config"):
                name = _FILE_MATRIX if sample.spill_source == "file" else CONFIG_MATRIX
                spill = sample.spill
                found.append(((name, [str(c) for c in spill.columns], spill.to_numpy(float)), ref))
            continue
        matrix = gating.strategy.gating_strategy.comp_matrices[ref]
        detectors = [sample.channel_map.get(d, d) for d in matrix.detectors]
        found.append(((ref, detectors, np.asarray(matrix.matrix, dtype=float)), ref))
    if len(found) > 1:
        from ..errors import StrategyError

        raise StrategyError(
            f"{gating.strategy.path.name}: the gates of sample {sample.sample_id} use "
            f"{len(found)} spillover matrices; a FlowJo sample holds one: export GatingML"
        )
    return found[0] if found else (None, None)


def _detector_names(
    gates: Sequence[XGate], gating: PanelGating, channel_map: Mapping[str, str]
) -> None:
    """Dimensions named by a fluorochrome of a strategy's matrix renamed by its detector.

    FlowJo names a compensated parameter by its detector (``Comp-FL1-H``); GatingML may name it
    by the matrix's fluorochrome (``FITC``).
    """
    matrices = gating.strategy.gating_strategy.comp_matrices or {}
    for gate in gates:
        for dim in gate.dims:
            matrix = matrices.get(dim.compensation)
            if matrix is None:
                continue
            fluorochromes = list(matrix.fluorochromes or [])
            if dim.channel in fluorochromes and len(fluorochromes) == len(matrix.detectors):
                detector = matrix.detectors[fluorochromes.index(dim.channel)]
                dim.channel = channel_map.get(detector, detector)


def export_flowjo_workspace(
    gating: PanelGating,
    path: str | Path,
    samples: Sequence[SampleGates],
    *,
    group: str = "All Samples",
    acquisition: bool | None = None,
) -> dict[str, dict[str, str]]:
    """Write a FlowJo 10 workspace of a panel: one sample node per file, each with its own gates.

    Parameters
    ----------
    gating
        The panel's strategy and populations.
    path
        The ``.wsp`` file to write; each sample's ``DataSet`` URI is its file's path relative to
        the workspace's folder.
    samples
        From :func:`read_sample_gates`, in the order FlowJo lists them; a sample whose gates are
        all the template's comes first, so that a workspace read back as a strategy
        (``sample_group``) takes the template.
    group
        The group holding every sample and the template gates.
    acquisition
        Add the acquisition QC gates to every sample (default: where any sample had events
        removed, so that every sample has the same gate tree).

    Returns
    -------
    dict
        Per sample, the gates and Boolean populations left out (name -> why).
    """
    if acquisition is None:
        acquisition = any(sample.removed for sample in samples)
    time = next((s.time_channel for s in samples if s.time_channel), "Time")
    template, _ = export_tree(gating, None, acquisition=acquisition, time_channel=time)
    _detector_names(template, gating, {})
    nodes = []
    skipped: dict[str, list[str]] = {}
    for sample in samples:
        own = gating.for_file(sample.fcs)  # a FlowJo sample group: the sample's own tree
        gates, skipped[sample.sample_id] = export_tree(own, sample, acquisition=acquisition)
        _detector_names(gates, own, sample.channel_map)
        compensations = {d.compensation for g in gates for d in g.dims}
        matrix, ref = _wsp_matrix(own, sample, compensations)
        uri = data_uri(sample.fcs, path)
        transforms = dict(own.strategy.gating_strategy.transformations or {})
        nodes.append(WspSample(sample.sample_id, uri, gates, matrix, ref, transforms))
    order = sorted(range(len(nodes)), key=lambda i: any(g.placed for g in nodes[i].gates))
    if order:  # a sample whose gates all sit where the template has them leads (no gated one: none)
        nodes = [nodes[order[0]], *(n for i, n in enumerate(nodes) if i != order[0])]
    left_out = write_workspace(
        path,
        nodes,
        template,
        transforms=dict(gating.strategy.gating_strategy.transformations or {}),
        group=group,
        comment=_comment(gating, "FlowJo 10 workspace, one sample node per data file"),
    )
    return {
        sid: {**dict.fromkeys(skipped[sid], "no FlowJo form"), **left_out.get(sid, {})}
        for sid in skipped
    }


def export_panel_gates(
    gating: PanelGating,
    samples: Mapping[str, str | Path],
    positions: pd.DataFrame,
    *,
    workspace: str | Path,
    gatingml_dir: str | Path,
    panels: Mapping[str, Sequence[str]] | None = None,
    compensation: pd.DataFrame | None = None,
    unreadable_compensation: str = "exclude",
    acquisition: Mapping[str, Any] | None = None,
    removed: pd.DataFrame | None = None,
    flags: Mapping[str, str] | None = None,
) -> list[str]:
    """Export a panel's gates: ``<gatingml_dir>/<sample_id>.xml`` per sample and one workspace.

    Parameters
    ----------
    gating
        The panel's gating (:func:`load_panel_gating`, with its adaptive plan).
    samples
        Sample id -> its FCS file (relative to the working directory), in sample id order.
    positions
        The gate positions table (:func:`read_gate_positions`) of at least these samples.
    workspace, gatingml_dir
        Where the FlowJo workspace and the GatingML files go.
    panels, compensation, unreadable_compensation, acquisition
        As the samples were gated (:func:`gate_samples`).
    removed, flags
        What the gating recorded: the removed stretches tables of the samples' batches
        (``GatedBatch.acquisition``) and each sample's QC flags. Given, each file's TEXT alone is
        read (:func:`read_sample_gates`); ``None``: the files are read and checked again.

    Returns
    -------
    list of str
        One line per gate left out of an export, per file whose counts the exported gates cannot
        reproduce and per sample that could not be exported (its file no longer reads as it was
        gated: no GatingML file, no sample node), naming the sample and why.
    """
    by_sample = dict(iter(positions.groupby("sample_id", sort=False))) if len(positions) else {}
    stretches: dict[str, pd.DataFrame] = {}
    if removed is not None and len(removed):
        stretches = dict(iter(removed.groupby("sample_id", sort=False)))
    none_removed = None if removed is None else removed.iloc[0:0]
    gathered: list[SampleGates] = []
    notes: list[str] = []
    for sid, fcs in sorted(samples.items()):
        try:
            gathered.append(
                read_sample_gates(
                    fcs,
                    gating,
                    sample_id=sid,
                    positions=by_sample.get(sid),
                    panels=panels,
                    compensation=compensation,
                    unreadable_compensation=unreadable_compensation,
                    acquisition=acquisition,
                    removed=stretches.get(sid, none_removed),
                    flags=(flags or {}).get(sid, ""),
                )
            )
        except CytotrialError as error:  # the file changed since it was gated: the others go on
            notes.append(f"{sid}: not exported: {' '.join(str(error).split())}")
    acquisition_gates = any(sample.removed for sample in gathered)
    folder = Path(gatingml_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for sample in gathered:
        left = export_gatingml(
            gating, folder / f"{sample.sample_id}.xml", sample, acquisition=acquisition_gates
        )
        notes += [f"{sample.sample_id}: GatingML leaves out {n} ({why})" for n, why in left.items()]
        notes += [f"{sample.sample_id}: {why}" for why in sample.inexact]
    left_out = export_flowjo_workspace(gating, workspace, gathered, acquisition=acquisition_gates)
    for sid, left in left_out.items():
        notes += [f"{sid}: the FlowJo workspace leaves out {n} ({why})" for n, why in left.items()]
    return notes
