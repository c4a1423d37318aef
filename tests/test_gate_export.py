"""Gate export: the gates each sample was gated with, read back by FlowKit, count what we counted.

Simulated files of a drifting trial (adaptive gates move; acquisition QC removes a stretch of one
file) are gated by :func:`gate_samples` as the workflow gates them, then exported
(:func:`export_panel_gates`). FlowKit reads each GatingML file (``parse_gating_xml`` + ``Session``)
and the FlowJo workspace (``Workspace``, finding the files from the workspace's own relative
URIs): every population of every sample must have our count. The workspace read back as the
strategy (each sample's own gate tree; with a fixed strategy, the group's) gives our counts again.
Real files: the GatingML 2.0 compliance suite and FlowJo's own workspaces, exported and read back,
keep the suite's truth and FlowJo's stored counts.
"""

from __future__ import annotations

import copy
import re
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import yaml
from lxml import etree

from cytotrial.config import check_config, population_model
from cytotrial.errors import CytotrialError
from cytotrial.gating import (
    acquisition_qc,
    count_events,
    export_flowjo_workspace,
    export_gatingml,
    export_panel_gates,
    gate_events,
    gate_population_model,
    gate_samples,
    load_panel_gating,
    panel_gating,
    read_for_gating,
    read_gate_positions,
    read_removed_stretches,
    read_sample_gates,
    sample_placements,
)
from cytotrial.gating._engine import engine_for
from cytotrial.io import load_strategy, read_fcs
from cytotrial.sim import simulate_sample, write_fcs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
PANELS = CONFIG["panels"]
GATED = ("ok", "flagged")
N_EVENTS = 20_000
SEEDS = (0, 1, 2, 3)  # seed 0: a drifting file whose acquisition anomaly QC removes


@contextmanager
def flowkit_quiet():
    """FlowKit's own warnings on these files, and only them.

    FlowUtils' log transform warns on non-positive values (``log10``), and FlowKit's
    ``Workspace`` says which files of a workspace it did not load: neither changes a count.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"(invalid value|divide by zero) encountered in log10",
            category=RuntimeWarning,
        )
        yield


def acquisition_settings() -> dict:
    return check_config(copy.deepcopy(CONFIG))["qc"]["acquisition"]


def blood_spec(*, adaptive: bool = True) -> dict:
    spec = copy.deepcopy(CONFIG["strategies"]["blood"])
    spec["strategy"] = str(ROOT / spec["strategy"])
    if not adaptive:
        spec.pop("adaptive", None)
    return spec


def panel(spec: dict):
    model = population_model({"populations": CONFIG["populations"], "strategies": {"blood": spec}})
    return load_panel_gating("blood", spec, model=model, panels=PANELS)


def gate_and_export(files: dict[str, Path], spec: dict, out: Path, **kwargs):
    """Gate the files as the workflow does, write the positions as text, export the gates."""
    gating = panel(spec)
    table = pd.DataFrame(
        [{"sample_id": sid, "panel": "blood", "fcs": str(path)} for sid, path in files.items()]
    )
    acquisition = acquisition_settings()
    result = gate_samples(
        table, {"blood": gating}, panels=PANELS, acquisition=acquisition, **kwargs
    )
    positions_file = out / "batch.gates.tsv"
    result.gates.to_csv(positions_file, sep="\t", index=False, lineterminator="\n")
    positions = read_gate_positions([positions_file])
    # what acquisition QC removed goes through text too, as the workflow's gate job writes it
    removed_file = out / "batch.acquisition.tsv"
    result.acquisition.to_csv(removed_file, sep="\t", index=False, lineterminator="\n")
    gated = set(result.qc.loc[result.qc["status"].isin(GATED), "sample_id"])
    notes = export_panel_gates(
        gating,
        {sid: path for sid, path in files.items() if sid in gated},
        positions,
        workspace=out / "gates" / "blood.wsp",
        gatingml_dir=out / "gates" / "blood",
        panels=PANELS,
        acquisition=acquisition,
        removed=read_removed_stretches([removed_file]),
        flags=dict(zip(result.qc["sample_id"], result.qc["flags"])),
        **kwargs,
    )
    return gating, result, positions, notes


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """Four drifting blood files, gated with the demo's adaptive gates and exported."""
    out = tmp_path_factory.mktemp("export")
    files = {}
    for seed in SEEDS:
        sample = simulate_sample(n_events=N_EVENTS, drift=True, seed=seed)
        files[f"S{seed}"] = write_fcs(sample, out / "fcs" / f"S{seed}.fcs")
    gating, result, positions, notes = gate_and_export(files, blood_spec(), out)
    return {
        "out": out,
        "files": files,
        "gating": gating,
        "counts": result.counts,
        "qc": result.qc,
        "positions": positions,
        "notes": notes,
    }


def flowkit_gatingml_counts(xml: Path, fcs: Path) -> dict[str, int]:
    """Gate id -> FlowKit's count, FlowKit reading the GatingML file and the FCS file itself."""
    import flowkit as fk

    with flowkit_quiet():
        strategy = fk.parse_gating_xml(str(xml))
        session = fk.Session(strategy, fcs_samples=[fk.Sample(str(fcs), sample_id="s")])
        session.analyze_samples(use_mp=False)
        report = session.get_gating_results("s").report
    return {str(name): int(count) for name, count in zip(report["gate_name"], report["count"])}


def flowkit_workspace_counts(wsp: Path) -> dict[str, dict[str, int]]:
    """Sample -> gate name -> FlowKit's count, the files found from the workspace's URIs."""
    import flowkit as fk

    with flowkit_quiet():
        workspace = fk.Workspace(str(wsp), find_fcs_files_from_wsp=True)
        workspace.analyze_samples(use_mp=False)
        counts = {}
        for sample_id in workspace.get_sample_ids():
            report = workspace.get_gating_results(sample_id).report
            counts[sample_id] = {
                str(name): int(count) for name, count in zip(report["gate_name"], report["count"])
            }
    return counts


def exported_name(gating, population: str) -> str:
    """The exported gate of a reported population: its gate's name, or its own (Boolean)."""
    path = gating.populations.get(population)
    return gating.strategy.resolve(path).name if path else population


def assert_counts(ours: pd.DataFrame, theirs: dict[str, int], gating, sample_id: str) -> None:
    rows = ours[ours["sample_id"] == sample_id]
    assert len(rows) == len(gating.order)
    wrong = {
        row.population: (row.count, theirs.get(exported_name(gating, row.population)))
        for row in rows.itertuples()
        if theirs.get(exported_name(gating, row.population)) != row.count
    }
    assert not wrong, f"{sample_id}: population: (ours, theirs) {wrong}"


# ------------------------------------------------------------------------------ the trial


def test_the_trial_moves_gates_and_removes_a_stretch(trial):
    """What the export must carry is there: adapted boundaries, a removed stretch, every sample."""
    qc = trial["qc"].set_index("sample_id")
    assert set(qc["status"]) <= set(GATED)
    assert qc.loc["S0", "events_removed"] > 0
    adapted = trial["positions"][trial["positions"]["status"] == "adapted"]
    moved = adapted[(adapted["position"] - adapted["template"]).abs() > 1e-3]
    assert set(moved["sample_id"]) == set(trial["files"])
    assert trial["notes"] == []


def test_placements_read_back_from_the_positions_table_are_the_engines(trial):
    gating = trial["gating"]
    settings = acquisition_settings()
    for sid, fcs in trial["files"].items():
        data, channel_map = read_for_gating(fcs, gating, panels=PANELS)
        keep = acquisition_qc(data, settings).keep
        engine = engine_for(
            replace(data, events=data.events[keep]),
            gating.strategy,
            channel_map=channel_map,
            adaptive=gating.adaptive,
        )
        engine.run()
        rows = trial["positions"][trial["positions"]["sample_id"] == sid]
        placed = sample_placements(gating, rows, sample_id=sid)
        assert placed.keys() == engine.placements.keys()
        for path, arguments in engine.placements.items():
            assert placed[path].keys() == arguments.keys(), path
            for name, value in arguments.items():
                if name == "vertices":
                    assert np.array_equal(placed[path][name], value), (sid, path)
                else:
                    assert placed[path][name] == value, (sid, path)


def test_gatingml_read_by_flowkit_counts_every_population_as_we_did(trial):
    folder = trial["out"] / "gates" / "blood"
    assert sorted(p.name for p in folder.glob("*.xml")) == sorted(
        f"{s}.xml" for s in trial["files"]
    )
    for sid, fcs in trial["files"].items():
        theirs = flowkit_gatingml_counts(folder / f"{sid}.xml", fcs)
        assert_counts(trial["counts"], theirs, trial["gating"], sid)
        removed = trial["qc"].set_index("sample_id").loc[sid, "events_removed"]
        assert theirs["acquisition_removed"] == removed
        assert theirs["acquisition_qc"] == N_EVENTS - removed


def test_gatingml_files_are_valid_gatingml_2(trial):
    from cytotrial._flowkit import gatingml_schema

    schema = gatingml_schema()
    for path in sorted((trial["out"] / "gates" / "blood").glob("*.xml")):
        assert schema.validate(etree.parse(str(path))), (path.name, schema.error_log)


def test_gatingml_holds_each_samples_own_positions(trial):
    """The moved thresholds are written as placed, to the last bit (read back as floats)."""
    ns = {"gating": "http://www.isac-net.org/std/Gating-ML/v2.0/gating"}
    for sid in trial["files"]:
        root = etree.parse(str(trial["out"] / "gates" / "blood" / f"{sid}.xml")).getroot()
        rows = trial["positions"][trial["positions"]["sample_id"] == sid].set_index(
            ["gate", "dimension"]
        )
        dimension = root.find("gating:RectangleGate[@gating:id='cd3']/gating:dimension", ns)
        placed = rows.loc[("cd3", "FITC-A")]
        assert float(dimension.get(f"{{{ns['gating']}}}min")) == placed["position"]


def test_workspace_read_by_flowkit_counts_every_population_as_we_did(trial):
    counts = flowkit_workspace_counts(trial["out"] / "gates" / "blood.wsp")
    assert set(counts) == set(trial["files"])
    for sid in trial["files"]:
        assert_counts(trial["counts"], counts[sid], trial["gating"], sid)


def test_workspace_has_one_sample_node_per_file_by_relative_path(trial):
    wsp = trial["out"] / "gates" / "blood.wsp"
    text = wsp.read_text()
    assert str(trial["out"]) not in text and "file:" not in text
    root = etree.parse(str(wsp)).getroot()
    uris = {}
    for sample in root.iter("Sample"):
        node = sample.find("SampleNode")
        uris[node.get("name")] = sample.find("DataSet").get("uri")
    assert set(uris) == set(trial["files"])
    for sid, uri in uris.items():
        assert not uri.startswith("/")
        assert (wsp.parent / unquote(uri)).resolve() == trial["files"][sid].resolve()


def test_workspace_marks_gates_placed_for_a_sample_as_its_own(trial):
    """A gate placed away from the template is the sample's own in FlowJo, the others the group's.

    FlowJo marks a sample-specific gate with ``owningGroup=""``; a fixed gate, or one whose
    boundaries stayed at the template's, belongs to the group.
    """
    root = etree.parse(str(trial["out"] / "gates" / "blood.wsp")).getroot()
    group = "All Samples"
    template = {p.get("name"): p for p in root.find("Groups/GroupNode").iter("Population")}
    assert {p.get("owningGroup") for p in template.values()} == {group}
    positions = trial["positions"]
    placed_gates = set(positions["gate"])
    specific = 0
    for sample in root.iter("SampleNode"):
        sid = sample.get("name")
        rows = positions[positions["sample_id"] == sid]
        moved = set(rows.loc[rows["position"] != rows["template"], "gate"])
        moved |= {"acquisition_removed"} if sid == "S0" else set()
        owners = {p.get("name"): p.get("owningGroup") for p in sample.iter("Population")}
        assert set(owners) == set(template)
        for name, owner in owners.items():
            assert owner == ("" if name in moved else group), (sid, name)
        assert owners["singlets"] == group and "singlets" not in placed_gates
        specific += len(moved)
    assert specific >= 2 * len(trial["files"])


def test_workspace_read_back_as_each_samples_strategy_gives_our_counts(trial):
    """FlowJo round trip: each sample gated with its own gate tree from the workspace."""
    wsp = trial["out"] / "gates" / "blood.wsp"
    for sid, fcs in trial["files"].items():
        spec = {
            "strategy": str(wsp),
            "sample_id": sid,
            "populations": CONFIG["strategies"]["blood"]["populations"],
        }
        table = pd.DataFrame([{"sample_id": sid, "panel": "blood", "fcs": str(fcs)}])
        again = gate_samples(
            table, {"blood": panel(spec)}, panels=PANELS, acquisition=acquisition_settings()
        )
        ours = trial["counts"][trial["counts"]["sample_id"] == sid]
        assert (
            again.counts[["population", "count", "parent_count"]]
            .reset_index(drop=True)
            .equals(ours[["population", "count", "parent_count"]].reset_index(drop=True))
        ), sid


def test_fixed_strategy_round_trip_through_the_workspace_group(trial, tmp_path):
    """Without adaptive gates, the workspace fed back with ``sample_group`` gives every count."""
    _, result, _, _ = gate_and_export(trial["files"], blood_spec(adaptive=False), tmp_path)
    wsp = tmp_path / "gates" / "blood.wsp"
    root = etree.parse(str(wsp)).getroot()
    first = root.find("Groups/GroupNode/Group/SampleRefs/SampleRef").get("sampleID")
    first_name = next(
        s.find("SampleNode").get("name")
        for s in root.iter("Sample")
        if s.find("DataSet").get("sampleID") == first
    )
    assert first_name != "S0"  # the group's first sample holds the template's gates
    spec = {
        "strategy": str(wsp),
        "sample_group": "All Samples",
        "populations": CONFIG["strategies"]["blood"]["populations"],
    }
    table = pd.DataFrame(
        [{"sample_id": s, "panel": "blood", "fcs": str(p)} for s, p in trial["files"].items()]
    )
    again = gate_samples(
        table, {"blood": panel(spec)}, panels=PANELS, acquisition=acquisition_settings()
    )
    columns = ["sample_id", "population", "parent", "count", "parent_count"]
    assert again.counts[columns].equals(result.counts[columns])


def test_planted_positions_are_where_the_exported_gates_are(trial, tmp_path):
    """Moved boundaries written from the table: FlowKit and our engine agree on the new counts."""
    gating = trial["gating"]
    sid, fcs = "S1", trial["files"]["S1"]
    rows = trial["positions"][trial["positions"]["sample_id"] == sid].copy()
    planted = {("cd3", "FITC-A"): 0.47, ("lymphocytes", "FSC-A"): 60000.0}
    for (gate, dimension), position in planted.items():
        mask = (rows["gate"] == gate) & (rows["dimension"] == dimension)
        assert mask.sum() == 1
        rows.loc[mask, ["position", "status"]] = [position, "adapted"]
    sample = read_sample_gates(fcs, gating, sample_id=sid, positions=rows, panels=PANELS)
    xml = tmp_path / "planted.xml"
    export_gatingml(gating, xml, sample)
    theirs = flowkit_gatingml_counts(xml, fcs)
    exported = load_strategy(xml)
    data, channel_map = read_for_gating(fcs, gating, panels=PANELS)
    ours = count_events(data, exported, channel_map=channel_map).set_index("gate_name")["count"]
    assert {name: theirs[name] for name in ours.index} == ours.to_dict()
    before = trial["counts"][trial["counts"]["sample_id"] == sid].set_index("population")["count"]
    assert ours["cd3"] != before["cd3"] and ours["lymphocytes"] != before["lymphocytes"]
    assert exported.resolve("cd3").fk_gate.dimensions[0].min == 0.47


def test_a_config_compensation_matrix_is_written_with_the_gates(trial, tmp_path):
    """``gating.compensation: <matrix file>``: the matrix used travels in both exports."""
    fcs = trial["files"]["S2"]
    matrix = read_fcs(fcs).spill.copy()
    matrix.iloc[0, 1] += 0.05  # not the file's own: counts would differ with the file's
    gating, result, _, _ = gate_and_export({"S2": fcs}, blood_spec(), tmp_path, compensation=matrix)
    xml = tmp_path / "gates" / "blood" / "S2.xml"
    assert "spectrumMatrix" in xml.read_text()
    assert_counts(result.counts, flowkit_gatingml_counts(xml, fcs), gating, "S2")
    workspace = flowkit_workspace_counts(tmp_path / "gates" / "blood.wsp")
    assert_counts(result.counts, workspace["S2"], gating, "S2")
    with_file_matrix = trial["counts"][trial["counts"]["sample_id"] == "S2"]["count"].to_numpy()
    assert not np.array_equal(result.counts["count"].to_numpy(), with_file_matrix)


def test_exports_are_deterministic(trial, tmp_path):
    gating = trial["gating"]
    sid, fcs = "S0", trial["files"]["S0"]
    rows = trial["positions"][trial["positions"]["sample_id"] == sid]
    sample = read_sample_gates(
        fcs,
        gating,
        sample_id=sid,
        positions=rows,
        panels=PANELS,
        acquisition=acquisition_settings(),
    )
    export_gatingml(gating, tmp_path / "a.xml", sample, acquisition=True)
    written = (trial["out"] / "gates" / "blood" / f"{sid}.xml").read_bytes()
    assert (tmp_path / "a.xml").read_bytes() == written


def export_trial_again(trial, folder: str, **kwargs) -> list[str]:
    """Export the trial's gates again into ``<out>/<folder>/``, as the fixture exported them.

    Beside ``gates/``: the files' relative paths in the workspace are the same.
    """
    again = trial["out"] / folder
    return export_panel_gates(
        trial["gating"],
        trial["files"],
        trial["positions"],
        workspace=again / "blood.wsp",
        gatingml_dir=again / "blood",
        panels=PANELS,
        acquisition=acquisition_settings(),
        **kwargs,
    )


def test_the_gatings_record_exports_what_reading_each_file_again_does(trial):
    """Exported from the gate job's record or by reading the files again: the same bytes.

    The workflow exports from the record of what acquisition QC removed (the files' TEXT alone
    read); reading every file and running acquisition QC again must write the same files.
    """
    notes = export_trial_again(trial, "reread")
    again = trial["out"] / "reread"
    assert notes == trial["notes"] == []
    written = trial["out"] / "gates"
    for sid in trial["files"]:
        assert (again / "blood" / f"{sid}.xml").read_bytes() == (
            written / "blood" / f"{sid}.xml"
        ).read_bytes(), sid
    assert (again / "blood.wsp").read_bytes() == (written / "blood.wsp").read_bytes()
    removed = read_removed_stretches([trial["out"] / "batch.acquisition.tsv"])
    assert "S0" in set(removed["sample_id"])  # the record holds the stretch that was removed


def test_the_export_from_the_gatings_record_reads_no_event(trial, monkeypatch):
    import cytotrial.io._fcs as fcs_module

    def refuse(*args, **kwargs):
        raise AssertionError("the export read a file's events")

    monkeypatch.setattr(fcs_module, "_read_events", refuse)
    removed = read_removed_stretches([trial["out"] / "batch.acquisition.tsv"])
    notes = export_trial_again(trial, "record", removed=removed, flags={})
    assert notes == []
    assert (trial["out"] / "record" / "blood.wsp").read_bytes() == (
        trial["out"] / "gates" / "blood.wsp"
    ).read_bytes()


def test_a_recorded_stretch_open_at_either_end_is_read_back_open(trial, tmp_path):
    """A stretch at the file's start or end has no bound there: written empty, read as open."""
    from cytotrial.gating import REMOVED_STRETCH_COLUMNS

    table = pd.DataFrame(
        [("S1", "Time", np.nan, 2.5, 3), ("S1", "Time", 7.25, np.nan, 3)],
        columns=REMOVED_STRETCH_COLUMNS,
    )
    path = tmp_path / "batch.acquisition.tsv"
    table.to_csv(path, sep="\t", index=False, lineterminator="\n")
    rows = read_removed_stretches([path])
    sample = read_sample_gates(
        trial["files"]["S1"],
        trial["gating"],
        sample_id="S1",
        positions=trial["positions"][trial["positions"]["sample_id"] == "S1"],
        panels=PANELS,
        acquisition=acquisition_settings(),
        removed=rows,
        flags="non_finite:FITC-A",
    )
    assert sample.removed == [(None, 2.5), (7.25, None)]
    assert sample.time_channel == "Time"
    assert any("counts 3 events differently" in why for why in sample.inexact)
    assert any("non-finite" in why for why in sample.inexact)
    assert read_removed_stretches([]).columns.tolist() == REMOVED_STRETCH_COLUMNS


def test_the_workspace_written_a_node_at_a_time_is_the_whole_documents_bytes(trial, monkeypatch):
    """The workspace streamed a sample node at a time is the whole document's file, byte for byte.

    A trial's workspace holds thousands of nodes; built whole in memory, its tree takes several
    times the file's size. Streaming must not change one byte of what FlowJo reads.
    """
    import cytotrial.gating._export as export_module
    from cytotrial.gating._export_wsp import workspace_document

    def whole(path, samples, template, **kwargs):
        document, left_out = workspace_document(samples, template, **kwargs)
        document.write(str(path), encoding="UTF-8", xml_declaration=True, pretty_print=True)
        return left_out

    monkeypatch.setattr(export_module, "write_workspace", whole)
    removed = read_removed_stretches([trial["out"] / "batch.acquisition.tsv"])
    export_trial_again(trial, "whole", removed=removed)
    again = trial["out"] / "whole"
    streamed = (trial["out"] / "gates" / "blood.wsp").read_bytes()
    assert b"transforms:spilloverMatrix" in streamed  # namespaced nodes inside sample nodes
    assert streamed.count(b"xmlns:transforms=") == 1  # declared once, on the workspace
    assert (again / "blood.wsp").read_bytes() == streamed


def test_a_file_that_no_longer_reads_is_named_and_the_others_exported(trial, tmp_path):
    broken = tmp_path / "S9.fcs"
    broken.write_bytes(b"not an FCS file")
    files = {"S1": trial["files"]["S1"], "S9": broken}
    notes = export_panel_gates(
        trial["gating"],
        files,
        trial["positions"],
        workspace=tmp_path / "blood.wsp",
        gatingml_dir=tmp_path / "blood",
        panels=PANELS,
        acquisition=acquisition_settings(),
    )
    assert len(notes) == 1 and notes[0].startswith("S9: not exported: ")
    assert sorted(p.name for p in (tmp_path / "blood").iterdir()) == ["S1.xml"]
    assert set(flowkit_workspace_counts(tmp_path / "blood.wsp")) == {"S1"}


def test_positions_that_do_not_fit_the_config_are_refused_in_one_line(trial):
    rows = trial["positions"][trial["positions"]["sample_id"] == "S1"]
    rows = rows[rows["gate"] != "cd3"]
    with pytest.raises(CytotrialError) as raised:
        sample_placements(trial["gating"], rows, sample_id="S1")
    message = str(raised.value)
    assert "\n" not in message and "S1" in message and "'cd3'" in message


def test_gates_a_format_cannot_hold_are_left_out_with_the_reason(tmp_path, external_data):
    """An ellipse has no exact FlowJo form, FlowJo's biex none in GatingML: named, not silent."""
    suite = external_data / "gatingml2-compliance"
    strategy = load_strategy(suite / "gml" / "gml_boolean_and2_gate.xml")
    gating = panel_gating("p", strategy, gate_population_model(strategy))
    sample = read_sample_gates(suite / "data1.fcs", gating, sample_id="data1")
    left = export_flowjo_workspace(gating, tmp_path / "x.wsp", [sample])["data1"]
    assert "ellipse" in left["Ellipse1"] and "left out" in left["And2"]
    names = {pop.get("name") for pop in etree.parse(str(tmp_path / "x.wsp")).iter("Population")}
    assert "Ellipse1" not in names and "Polygon1" in names

    biex = (
        external_data / "flowjo-workspaces/simple_diamond_example/test_data_diamond_biex_rect.wsp"
    )
    strategy = load_strategy(biex)
    gating = panel_gating("p", strategy, gate_population_model(strategy))
    left = export_gatingml(gating, tmp_path / "biex.xml")
    assert "biex" in left["upper_right"].lower() or "WSPBiex" in left["upper_right"]


# ------------------------------------------------------------------------------ real files


def _compliance_files(suite: Path) -> list[Path]:
    invalid = {"gml_range_gate_attr_testing.xml"}  # not schema-valid (see test_gatingml_suite)
    return [p for p in sorted((suite / "gml").glob("*.xml")) if p.name not in invalid]


def test_compliance_suite_exported_and_read_back_keeps_every_gate(external_data, tmp_path):
    """Every gate of the GatingML 2.0 suite, exported and read back, keeps the truth.

    Our engine decides every event as before, FlowKit counts the truth, and so do the gates the
    FlowJo workspace holds.
    """
    suite = external_data / "gatingml2-compliance"
    data = read_fcs(suite / "data1.fcs")
    truth = {
        p.stem[len("Results_") :]: int(np.loadtxt(p, dtype=np.int64).sum())
        for p in (suite / "truth").glob("Results_*.txt")
    }
    checked = 0
    for gml in _compliance_files(suite):
        strategy = load_strategy(gml)
        gating = panel_gating("p", strategy, gate_population_model(strategy))
        exported = tmp_path / gml.name
        assert export_gatingml(gating, exported) == {}, gml.name
        before, after = gate_events(data, strategy), gate_events(data, load_strategy(exported))
        assert before.keys() == after.keys(), gml.name
        assert all(np.array_equal(before[k], after[k]) for k in before), gml.name
        theirs = flowkit_gatingml_counts(exported, suite / "data1.fcs")
        assert {k: v for k, v in theirs.items() if k in truth} == {
            k: truth[k] for k in theirs if k in truth
        }, gml.name
        sample = read_sample_gates(suite / "data1.fcs", gating, sample_id="data1")
        wsp = tmp_path / f"{gml.stem}.wsp"
        left = export_flowjo_workspace(gating, wsp, [sample])["data1"]
        counts = flowkit_workspace_counts(wsp)["data1"]
        assert not set(counts) & set(left), gml.name
        for name, count in counts.items():
            if name in truth:
                assert count == truth[name], (gml.name, name)
                checked += 1
    assert checked >= 40


FLOWJO = [
    "simple_diamond_example/simple_diamond_example_quad_gate.wsp",
    "simple_diamond_example/test_data_diamond_asinh_rect.wsp",
    "simple_diamond_example/test_data_diamond_asinh_rect2.wsp",
    "simple_diamond_example/test_data_diamond_biex_rect.wsp",
    "simple_line_example/simple_poly_and_rect.wsp",
    "simple_line_example/simple_poly_and_rect_v2_poly50.wsp",
    "simple_line_example/single_ellipse_51_events.wsp",
]


def _flowjo_stored(workspace: Path, sample_name: str) -> dict[str, int]:
    """Population name -> the count FlowJo stored in the sample's tree (-1, 0: not computed)."""
    root = etree.parse(str(workspace)).getroot()
    node = next(el for el in root.iter("SampleNode") if el.get("name") == sample_name)
    return {
        pop.get("name"): int(pop.get("count"))
        for pop in node.iter("Population", "AndNode", "OrNode", "NotNode")
    }


@pytest.mark.parametrize("relative", FLOWJO, ids=[Path(w).name for w in FLOWJO])
def test_flowjo_workspace_exported_and_read_back_keeps_flowjos_counts(
    external_data, tmp_path, relative
):
    """A FlowJo workspace as the strategy, exported and read back, keeps FlowJo's counts.

    FlowKit and we, reading the export, count what we counted on the original exactly, and what
    FlowJo stored (exact on linear scales, within 0.1% on biex/arcsinh, as reading the original
    itself gives).
    """
    original = external_data / "flowjo-workspaces" / relative
    strategy = load_strategy(original)
    fcs = original.parent / strategy.sample_id
    gating = panel_gating("p", strategy, gate_population_model(strategy))
    sample = read_sample_gates(fcs, gating, sample_id=strategy.sample_id)
    exported = tmp_path / "exported.wsp"
    assert export_flowjo_workspace(gating, exported, [sample]) == {strategy.sample_id: {}}
    ours = count_events(read_fcs(fcs), strategy).set_index("gate_name")["count"].to_dict()
    flowkit = flowkit_workspace_counts(exported)[strategy.sample_id]
    assert flowkit == ours
    again = load_strategy(exported, sample_id=strategy.sample_id)
    reread = count_events(read_fcs(fcs), again).set_index("gate_name")["count"].to_dict()
    assert reread == ours
    linear = not re.search(r"asinh|biex", relative)
    for name, stored in _flowjo_stored(original, strategy.sample_id).items():
        if stored in (-1, 0):
            continue
        if linear:
            assert reread[name] == stored, name
        else:
            assert abs(reread[name] - stored) <= 0.001 * stored, name


# ------------------------------------------------------------------------------ the workflow


@pytest.fixture(scope="module")
def demo(default_demo):
    """The default demo workflow, run once (the project's config, its strategies by path)."""
    return default_demo


@pytest.mark.e2e
def test_demo_exports_reproduce_the_counts_of_every_sample(demo):
    counts = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t")
    qc = pd.read_csv(demo / "results/qc/samples.tsv", sep="\t")
    sheet = pd.read_csv(demo / "resources/demo/samples.tsv", sep="\t")
    config = yaml.safe_load((demo / "config/config.yaml").read_text())
    gated = qc[qc["status"].isin(GATED)]
    assert len(gated) > 100
    members_of = {}
    for panel_name, spec in config["strategies"].items():
        model = population_model(config)
        gating = load_panel_gating(panel_name, spec, model=model, panels=config["panels"])
        members = gated[
            gated["sample_id"].isin(sheet.loc[sheet["panel"] == panel_name, "sample_id"])
        ]
        members_of[panel_name] = members
        folder = demo / "results/gates" / panel_name
        assert sorted(p.stem for p in folder.glob("*.xml")) == sorted(members["sample_id"])
        workspace = flowkit_workspace_counts(demo / "results/gates" / f"{panel_name}.wsp")
        assert set(workspace) == set(members["sample_id"])
        fcs = sheet.set_index("sample_id")["fcs"]
        for sid in members["sample_id"]:
            gml = flowkit_gatingml_counts(folder / f"{sid}.xml", demo / "resources/demo" / fcs[sid])
            assert_counts(counts, gml, gating, sid)
            assert_counts(counts, workspace[sid], gating, sid)
    for panel_name in config["strategies"]:
        log = (demo / "logs/export_gates" / f"{panel_name}.log").read_text()
        assert log.splitlines() == [
            f"exported the gates of {len(members_of[panel_name])} samples of panel {panel_name}"
        ]
    for path in (demo / "results/gates").rglob("*"):
        if path.is_file():
            assert str(demo) not in path.read_text(), path


@pytest.mark.e2e
def test_demo_workspace_read_back_as_each_samples_strategy_gives_its_counts(demo):
    """FlowJo round trip on the demo: samples gated with their own tree from the workspace.

    Samples acquisition QC cut, and others, count what the workflow counted.
    """
    counts = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t")
    qc = pd.read_csv(demo / "results/qc/samples.tsv", sep="\t").set_index("sample_id")
    sheet = pd.read_csv(demo / "resources/demo/samples.tsv", sep="\t").set_index("sample_id")
    config = yaml.safe_load((demo / "config/config.yaml").read_text())
    resolved = check_config(copy.deepcopy(config))
    for panel_name in config["strategies"]:
        members = qc[qc["status"].isin(GATED) & (sheet.reindex(qc.index)["panel"] == panel_name)]
        cut = list(members.index[members["events_removed"] > 0][:2])
        chosen = cut + [s for s in members.index[::25] if s not in cut][:2]
        assert cut, f"{panel_name}: no demo sample had a stretch removed"
        for sid in chosen:
            spec = {
                "strategy": str(demo / "results/gates" / f"{panel_name}.wsp"),
                "sample_id": sid,
                "populations": config["strategies"][panel_name]["populations"],
            }
            model = population_model(
                {"populations": config["populations"], "strategies": {panel_name: spec}}
            )
            gating = load_panel_gating(panel_name, spec, model=model, panels=config["panels"])
            table = pd.DataFrame(
                [{"sample_id": sid, "panel": panel_name,
                  "fcs": str(demo / "resources/demo" / sheet.loc[sid, "fcs"])}]
            )  # fmt: skip
            again = gate_samples(
                table,
                {panel_name: gating},
                panels=config["panels"],
                acquisition=resolved["qc"]["acquisition"],
            ).counts.set_index("population")["count"]
            ours = counts[counts["sample_id"] == sid].set_index("population")["count"]
            assert again.to_dict() == ours.to_dict(), sid


def test_a_panel_without_a_gated_sample_exports_a_workspace_of_its_gates_alone(
    tmp_path, external_data
):
    """Every sample excluded: the workspace holds the template's group and no sample, no crash."""
    suite = external_data / "gatingml2-compliance"
    strategy = load_strategy(suite / "gml" / "gml_boolean_and2_gate.xml")
    gating = panel_gating("p", strategy, gate_population_model(strategy))
    assert export_flowjo_workspace(gating, tmp_path / "none.wsp", []) == {}
    tree = etree.parse(str(tmp_path / "none.wsp"))
    assert list(tree.iter("Sample")) == []
    names = {pop.get("name") for pop in tree.iter("Population")}
    assert "Polygon1" in names  # the group's template gates
