"""FlowJo round trip: a workspace fed back as a panel's strategy gates each sample with its own tree.

With ``sample_group``, each data file is matched to its own sample of the workspace's group (by the
``DataSet`` path, else the file name) and gated with that sample's gate tree, as FlowJo counts it.

* Our own export of a drifting, adaptively gated trial (``tests/test_gate_export.py``), fed back
  whole, counts every population of every sample as the trial was counted; one tree for all would
  not.
* A workspace edited per sample, as a scientist edits one sample's gate in FlowJo, counts that
  sample as FlowKit's ``Workspace`` counts the edited workspace, and every other sample as before.
* FlowJo's own workspaces, gated through the strategy path, count what FlowJo stored per sample,
  including where a sample's own gate differs from its group's.
* Files no sample is, or several are, a population gate missing from one sample's tree: one line
  naming the file, before any job where the sheet tells it, else that sample excluded alone.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lxml import etree

from cytotrial.errors import StrategyError
from cytotrial.gating import gate_population_model, gate_samples, panel_gating
from cytotrial.io import load_strategy
from cytotrial.preflight import preflight
from cytotrial.sim import simulate_sample, write_fcs
from test_gate_export import (
    CONFIG,
    FLOWJO,
    GATED,
    N_EVENTS,
    PANELS,
    ROOT,
    SEEDS,
    acquisition_settings,
    assert_counts,
    blood_spec,
    flowkit_quiet,
    flowkit_workspace_counts,
    gate_and_export,
    panel,
)

POPULATIONS = CONFIG["strategies"]["blood"]["populations"]
COLUMNS = ["sample_id", "population", "gate_path", "parent", "count", "parent_count"]
COUNTED = [c for c in COLUMNS if c != "gate_path"]  # a workspace's paths start at acquisition_qc
GATING_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
DATA_TYPE = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"
GROUP = "All Samples"


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """The drifting trial of ``test_gate_export``: four files gated adaptively and exported."""
    out = tmp_path_factory.mktemp("roundtrip")
    files = {
        f"S{seed}": write_fcs(
            simulate_sample(n_events=N_EVENTS, drift=True, seed=seed), out / "fcs" / f"S{seed}.fcs"
        )
        for seed in SEEDS
    }
    gating, result, positions, notes = gate_and_export(files, blood_spec(), out)
    assert notes == []
    return {"out": out, "files": files, "gating": gating, "counts": result.counts,
            "qc": result.qc, "positions": positions}  # fmt: skip


def group_spec(wsp: Path, **extra) -> dict:
    return {"strategy": str(wsp), "sample_group": GROUP, "populations": POPULATIONS, **extra}


def regate(files: dict[str, Path], spec: dict):
    table = pd.DataFrame(
        [{"sample_id": sid, "panel": "blood", "fcs": str(path)} for sid, path in files.items()]
    )
    return gate_samples(
        table, {"blood": panel(spec)}, panels=PANELS, acquisition=acquisition_settings()
    )


def sample_rows(counts: pd.DataFrame, sample_id: str, columns=COLUMNS) -> pd.DataFrame:
    return counts.loc[counts["sample_id"] == sample_id, columns].reset_index(drop=True)


def same_counts(a: pd.DataFrame, b: pd.DataFrame, columns=COLUMNS) -> bool:
    key = ["sample_id", "population"]
    left = a[columns].sort_values(key).reset_index(drop=True)
    right = b[columns].sort_values(key).reset_index(drop=True)
    return left.astype(str).equals(right.astype(str))


def one_line(error: BaseException | str) -> str:
    text = str(error)
    assert text and "\n" not in text, text
    return text


# ------------------------------------------------------------------------------ workspace editing


def sample_node(root: etree._Element, sample_id: str) -> etree._Element:
    (node,) = [n for n in root.iter("SampleNode") if n.get("name") == sample_id]
    return node


def population(node: etree._Element, name: str) -> etree._Element:
    (found,) = [p for p in node.iter("Population") if p.get("name") == name]
    return found


def move_rectangle_min(node: etree._Element, gate: str, parameter: str, factor: float) -> None:
    """A scientist drags one boundary of one sample's rectangle (FlowJo keeps raw values)."""
    pop = population(node, gate)
    for dimension in pop.find("Gate").iter(
        f"{{{GATING_NS}}}dimension"
    ):  # its own, not its children's
        if dimension[0].get(f"{DATA_TYPE}name") == parameter:
            key = f"{{{GATING_NS}}}min"
            dimension.set(key, repr(float(dimension.get(key)) * factor))
            pop.set("owningGroup", "")  # FlowJo: now this sample's own gate
            return
    raise AssertionError(f"{gate} has no {parameter}")


def shrink_polygon(node: etree._Element, gate: str, factor: float) -> None:
    """A scientist pulls one sample's polygon in around its centre."""
    pop = population(node, gate)
    vertices = [
        list(v.iter(f"{{{GATING_NS}}}coordinate"))
        for v in pop.find("Gate").iter(f"{{{GATING_NS}}}vertex")
    ]
    key = f"{DATA_TYPE}value"
    values = np.array([[float(c.get(key)) for c in v] for v in vertices])
    centre = values.mean(axis=0)
    for vertex, row in zip(vertices, centre + factor * (values - centre)):
        for coordinate, value in zip(vertex, row):
            coordinate.set(key, repr(float(value)))
    pop.set("owningGroup", "")


def edited(trial_out: Path, name: str, edit) -> Path:
    """The trial's workspace edited by ``edit(root)``, beside it (its relative URIs still hold)."""
    document = etree.parse(str(trial_out / "gates" / "blood.wsp"))
    edit(document.getroot())
    path = trial_out / "gates" / f"{name}.wsp"
    document.write(str(path), xml_declaration=True, encoding="UTF-8")
    return path


# ------------------------------------------------------------------------------ (1) our own export


def test_exported_workspace_fed_back_counts_every_sample_as_the_trial(trial):
    """Every sample has its own placed gates; each is counted with its own, exactly."""
    wsp = trial["out"] / "gates" / "blood.wsp"
    gating = panel(group_spec(wsp))
    assert gating.strategy.sample_trees.distinct_trees() == len(trial["files"])
    again = regate(trial["files"], group_spec(wsp))
    assert set(again.qc["status"]) <= set(GATED)
    assert len(again.counts) == len(trial["counts"]) == len(trial["files"]) * len(gating.order)
    assert same_counts(again.counts, trial["counts"], COUNTED)
    removed = again.qc.set_index("sample_id")["events_removed"]
    assert removed.equals(trial["qc"].set_index("sample_id")["events_removed"])
    assert removed["S0"] > 0  # acquisition QC cut S0: its tree holds the Time gates too
    paths = again.counts.drop_duplicates("population").set_index("population")["gate_path"]
    assert paths.to_dict() == {p: gating.gate_path(p) for p in gating.order}


def test_samples_with_the_groups_gates_share_one_tree_read_once(trial, tmp_path):
    """A fixed strategy's export: S1-S3 hold the group's gates, S0 its own Time gates."""
    _, result, _, _ = gate_and_export(trial["files"], blood_spec(adaptive=False), tmp_path)
    wsp = tmp_path / "gates" / "blood.wsp"
    trees = panel(group_spec(wsp)).strategy.sample_trees
    assert trees.distinct_trees() == 2
    own = {sid: trees.strategy_for(fcs) for sid, fcs in trial["files"].items()}
    assert own["S1"] is own["S2"] is own["S3"] and own["S0"] is not own["S1"]
    again = regate(trial["files"], group_spec(wsp))
    assert same_counts(again.counts, result.counts, COUNTED)


def test_one_tree_for_every_sample_would_count_otherwise(trial):
    """The test above can fail: the first sample's tree on every file gives other counts."""
    wsp = trial["out"] / "gates" / "blood.wsp"
    first = min(trial["files"])
    again = regate(trial["files"], {"strategy": str(wsp), "sample_id": first,
                                    "populations": POPULATIONS})  # fmt: skip
    columns = ["sample_id", "population", "count"]
    assert same_counts(again.counts, trial["counts"], columns) is False
    assert sample_rows(again.counts, first, columns).equals(
        sample_rows(trial["counts"], first, columns)
    )


def test_adaptive_gates_on_a_workspace_start_from_each_samples_own_gates(trial):
    """Declared on top of the workspace, a sample's own positions are its adaptive template."""
    wsp = trial["out"] / "gates" / "blood.wsp"
    spec = group_spec(wsp, adaptive=blood_spec()["adaptive"])
    again = regate(trial["files"], spec)
    assert set(again.qc["status"]) <= set(GATED)
    key = ["sample_id", "gate", "dimension", "bound"]
    first = trial["positions"].set_index(key)
    second = again.gates.set_index(key)
    valley = second[second["method"] == "valley"]
    assert len(valley) == len(first[first["method"] == "valley"]) > 0
    placed = first.loc[valley.index, "position"].to_numpy(float)
    assert np.allclose(valley["template"].to_numpy(float), placed, rtol=0, atol=1e-12)
    moved = first.loc[valley.index, "template"].to_numpy(float) != placed
    assert moved.sum() >= len(trial["files"])  # own templates, not the strategy's


def test_a_workspace_fed_back_exports_each_samples_own_tree_again(trial, tmp_path):
    """Gated with the workspace, each sample is exported with its own tree again.

    Its Time gates stay under this run's (``acquisition_qc_2``): FlowKit reading the new
    workspace counts what this run counted.
    """
    wsp = trial["out"] / "gates" / "blood.wsp"
    (tmp_path / "gates").mkdir()
    gating, result, _, notes = gate_and_export(trial["files"], group_spec(wsp), tmp_path)
    assert notes == []
    flowkit = flowkit_workspace_counts(tmp_path / "gates" / "blood.wsp")
    for sid in trial["files"]:
        assert_counts(result.counts, flowkit[sid], gating, sid)
        assert {"acquisition_qc", "acquisition_qc_2"} <= set(flowkit[sid])
    assert same_counts(result.counts, trial["counts"], COUNTED)


# ------------------------------------------------------------------------------ (2) edited in FlowJo


def test_a_workspace_edited_per_sample_gives_flowkits_counts_of_that_sample(trial):
    """S2's cd3 threshold dragged and S1's group-owned singlets gate redrawn, as in FlowJo."""

    def edit(root):
        move_rectangle_min(sample_node(root, "S2"), "cd3", "Comp-FITC-A", 2.0)
        shrink_polygon(sample_node(root, "S1"), "singlets", 0.9)

    wsp = edited(trial["out"], "edited", edit)
    gating = panel(group_spec(wsp))
    again = regate(trial["files"], group_spec(wsp))
    assert set(again.qc["status"]) <= set(GATED)
    flowkit = flowkit_workspace_counts(wsp)
    before = trial["counts"]
    for sid in ("S1", "S2"):
        assert_counts(again.counts, flowkit[sid], gating, sid)
    changed = {
        sid: set(sample_rows(again.counts, sid).loc[
            sample_rows(again.counts, sid)["count"] != sample_rows(before, sid)["count"],
            "population"])
        for sid in trial["files"]
    }  # fmt: skip
    assert "cd3" in changed["S2"] and "lymphocytes" not in changed["S2"]
    assert "singlets" in changed["S1"] and "lymphocytes" not in changed["S1"]
    assert changed["S0"] == changed["S3"] == set()
    for sid in ("S0", "S3"):
        assert_counts(again.counts, flowkit[sid], gating, sid)


# ------------------------------------------------------------------------------ (3) FlowJo's own


def _stored_by_path(workspace: Path, sample_name: str) -> dict[str, int]:
    root = etree.parse(str(workspace)).getroot()
    node = sample_node(root, sample_name)
    counts: dict[str, int] = {}

    def walk(element, path):
        for sub in element.findall("Subpopulations"):
            for pop in sub:
                if pop.tag in ("Population", "AndNode", "OrNode", "NotNode"):
                    names = [*path, pop.get("name")]
                    counts["/".join(names)] = int(pop.get("count"))
                    walk(pop, names)

    walk(node, [])
    return counts


def _gate_external(strategy, files: dict[str, Path]):
    gating = panel_gating("p", strategy, gate_population_model(strategy, "p"))
    table = pd.DataFrame(
        [{"sample_id": sid, "panel": "p", "fcs": str(path)} for sid, path in files.items()]
    )
    return gating, gate_samples(table, {"p": gating})


def _within(ours: int, flowjo: int, linear: bool) -> bool:
    return ours == flowjo if linear else abs(ours - flowjo) <= 0.001 * flowjo


@pytest.mark.parametrize("relative", FLOWJO, ids=[Path(w).name for w in FLOWJO])
def _flowkit_counts(workspace: Path, files: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Sample -> gate name -> FlowKit's count of the workspace, the data files given."""
    import flowkit as fk

    with flowkit_quiet():
        reference = fk.Workspace(str(workspace), fcs_samples=[str(p) for p in files.values()])
        reference.analyze_samples(use_mp=False)
        reports = {sid: reference.get_gating_results(sid).report for sid in files}
    return {sid: dict(zip(r["gate_name"], map(int, r["count"]))) for sid, r in reports.items()}


@pytest.mark.parametrize("relative", FLOWJO, ids=[Path(w).name for w in FLOWJO])
def test_flowjo_workspaces_through_the_sample_group_count_what_flowjo_stored(
    external_data, relative
):
    """Each sample found by its file name (FlowJo wrote another machine's path), its own tree.

    Where FlowJo stored a count: FlowJo's (exact on linear scales, 0.1% on biex and arcsinh, as
    ``test_flowjo``); where it did not (``-1``, ``0``), FlowKit's count of the workspace.
    """
    workspace = external_data / "flowjo-workspaces" / relative
    groups = ["All Samples", "my_group"] if "simple_poly" in relative else ["All Samples"]
    for group in groups:
        strategy = load_strategy(workspace, sample_group=group)
        trees = strategy.sample_trees
        files = {s.name: workspace.parent / s.file_name for s in trees.samples}
        _, result = _gate_external(strategy, files)
        assert set(result.qc["status"]) == {"ok"}, result.qc["message"].tolist()
        flowkit = _flowkit_counts(workspace, files)
        linear = not re.search(r"asinh|biex", relative)
        for sid in files:
            stored = _stored_by_path(workspace, sid)
            ours = result.counts[result.counts["sample_id"] == sid].set_index("gate_path")
            assert set(ours.index) == set(stored)
            for path, flowjo in stored.items():
                count = int(ours.loc[path, "count"])
                if flowjo in (-1, 0):
                    assert count == flowkit[sid][path], (group, path)
                else:
                    assert _within(count, flowjo, linear), (group, path)


def test_a_samples_own_gate_unlike_its_groups_gives_flowjos_count(external_data, tmp_path):
    """FlowJo's asinh workspace: the sample's own upper_right differs from the group's.

    A second sample (the same data under another name, a link to the file read in place) carries
    the group's gate; each counts with its own tree: the first as FlowJo stored, both as FlowKit
    counts the workspace.
    """
    source = (
        external_data / "flowjo-workspaces/simple_diamond_example/test_data_diamond_asinh_rect.wsp"
    )
    fcs = source.parent / "test_data_diamond_01.fcs"
    document = etree.parse(str(source))
    root = document.getroot()
    group_gate = population(next(root.iter("GroupNode")), "upper_right").find("Gate")
    (sample,) = root.iter("Sample")
    own = population(sample.find("SampleNode"), "upper_right")
    assert own.get("owningGroup") == ""  # FlowJo: adjusted on this sample
    assert etree.tostring(own.find("Gate")[0][0]) != etree.tostring(group_gate[0][0])
    second = copy.deepcopy(sample)
    pop = population(second.find("SampleNode"), "upper_right")
    pop.replace(pop.find("Gate"), copy.deepcopy(group_gate))
    pop.set("owningGroup", GROUP)
    for index, (element, name) in enumerate(((sample, "diamond_a.fcs"), (second, "diamond_b.fcs"))):
        (tmp_path / name).symlink_to(fcs)
        element.find("DataSet").set("uri", name)
        element.find("DataSet").set("sampleID", str(index + 1))
        element.find("SampleNode").set("sampleID", str(index + 1))
        element.find("SampleNode").set("name", name)
    sample.getparent().append(second)
    refs = next(root.iter("GroupNode")).find("Group/SampleRefs")
    etree.SubElement(refs, "SampleRef", sampleID="2")
    wsp = tmp_path / "two samples.wsp"
    document.write(str(wsp), xml_declaration=True, encoding="UTF-8")

    strategy = load_strategy(wsp, sample_group=GROUP)
    assert strategy.sample_trees.distinct_trees() == 2
    files = {name: tmp_path / name for name in ("diamond_a.fcs", "diamond_b.fcs")}
    _, result = _gate_external(strategy, files)
    assert set(result.qc["status"]) == {"ok"}, result.qc["message"].tolist()
    counts = result.counts.set_index(["sample_id", "gate_path"])["count"]
    stored = _stored_by_path(source, "test_data_diamond_01.fcs")["upper_right"]
    assert _within(int(counts["diamond_a.fcs", "upper_right"]), stored, linear=False)
    with flowkit_quiet():
        flowkit = flowkit_workspace_counts(wsp)
    for name in files:
        assert counts[name, "upper_right"] == flowkit[name]["upper_right"], name
    assert counts["diamond_a.fcs", "upper_right"] != counts["diamond_b.fcs", "upper_right"]


# ------------------------------------------------------------------------------ (4) bad input


def test_a_file_no_sample_is_is_excluded_naming_it_and_the_others_counted(trial, tmp_path):
    stray = tmp_path / "S9.fcs"
    shutil.copy(trial["files"]["S1"], stray)  # the same events, but no sample of the workspace
    files = {**trial["files"], "S9": stray}
    again = regate(files, group_spec(trial["out"] / "gates" / "blood.wsp"))
    qc = again.qc.set_index("sample_id")
    assert qc.loc["S9", "status"] == "excluded"
    message = one_line(qc.loc["S9", "message"])
    assert message.startswith("S9.fcs: no sample of group 'All Samples' of blood.wsp is this")
    assert "sample_id" in message and str(tmp_path) not in message
    assert set(qc.drop("S9")["status"]) <= set(GATED)
    assert same_counts(again.counts, trial["counts"], COUNTED)


def test_a_file_two_samples_are_by_name_is_excluded_naming_both(trial, tmp_path):
    """A second sample node whose URI ends in S1.fcs: a copy of S1.fcs elsewhere is ambiguous."""

    def edit(root):
        (original,) = [s for s in root.iter("Sample") if s.find("SampleNode").get("name") == "S1"]
        twin = copy.deepcopy(original)
        twin.find("DataSet").set("uri", "elsewhere/S1.fcs")
        twin.find("DataSet").set("sampleID", "99")
        twin.find("SampleNode").set("sampleID", "99")
        twin.find("SampleNode").set("name", "S1 again")
        original.getparent().append(twin)
        etree.SubElement(root.find("Groups/GroupNode/Group/SampleRefs"), "SampleRef", sampleID="99")

    wsp = edited(trial["out"], "twins", edit)
    (tmp_path / "copy").mkdir()
    copied = shutil.copy(trial["files"]["S1"], tmp_path / "copy" / "S1.fcs")
    files = {"S1": trial["files"]["S1"], "S1b": Path(copied), "S2": trial["files"]["S2"]}
    again = regate(files, group_spec(wsp))
    qc = again.qc.set_index("sample_id")
    assert qc.loc["S1", "status"] in GATED  # found by its path: the workspace's own file
    message = one_line(qc.loc["S1b", "message"])
    assert message.startswith("S1.fcs: samples 'S1' (sampleID ") and "'S1 again'" in message
    assert "by file name" in message and qc.loc["S2", "status"] in GATED


def test_a_gate_missing_from_one_samples_tree_excludes_that_sample_alone(trial):
    wsp = edited(
        trial["out"],
        "pruned",
        lambda root: (
            (pop := population(sample_node(root, "S3"), "cd8_ki67")).getparent().remove(pop)
        ),
    )
    again = regate(trial["files"], group_spec(wsp))
    qc = again.qc.set_index("sample_id")
    assert qc.loc["S3", "status"] == "excluded"
    message = one_line(qc.loc["S3", "message"])
    assert message.startswith("S3.fcs: its gate tree (sample 'S3' of pruned.wsp) has no gate ")
    assert "cd8_ki67'" in message and "population cd8_ki67" in message
    kept = [s for s in trial["files"] if s != "S3"]
    assert set(qc.loc[kept, "status"]) <= set(GATED)
    assert same_counts(
        again.counts, trial["counts"][trial["counts"]["sample_id"].isin(kept)], COUNTED
    )


def test_workspace_keys_said_in_one_line(trial):
    wsp = trial["out"] / "gates" / "blood.wsp"
    with pytest.raises(StrategyError) as raised:
        load_strategy(wsp)  # neither key: the samples' trees differ
    message = one_line(raised.value)
    assert "4 samples of group 'All Samples' have 4 different gate trees" in message
    assert "sample_group" in message and "sample_id" in message
    assert load_strategy(wsp, sample_id="S2").sample_id == "S2"
    twice = edited(trial["out"], "renamed", lambda root: sample_node(root, "S3").set("name", "S2"))
    with pytest.raises(StrategyError) as raised:
        load_strategy(twice, sample_id="S2")
    assert "2 samples are named 'S2'" in one_line(raised.value)


def _project(tmp_path: Path, wsp: Path, files: list[tuple[str, Path]]) -> dict:
    """A config gating panel blood with the workspace's sample group, and its sheet."""
    config = copy.deepcopy(CONFIG)
    config.pop("demo", None)
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
        spec.pop("adaptive", None)
    config["strategies"]["blood"].update(strategy=str(wsp), sample_group=GROUP)
    rows = [
        {"sample_id": sid, "patient_id": f"P{i}", "arm": next(iter(config["arms"])),
         "visit": "C1D1", "cycle": 1, "day": 1, "compartment": "blood", "panel": "blood",
         "batch": "b1", "fcs": str(path)}
        for i, (sid, path) in enumerate(files)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    config["samples"] = str(tmp_path / "samples.tsv")
    config["patients"] = None
    return config


def test_sheet_files_the_group_lacks_stop_before_any_job(trial, tmp_path):
    wsp = trial["out"] / "gates" / "blood.wsp"
    good = sorted(trial["files"].items())
    assert [e for e in preflight(_project(tmp_path, wsp, good), base=tmp_path, inputs=False).errors
            if "sample_group" in e] == []  # fmt: skip
    stray = Path(shutil.copy(trial["files"]["S1"], tmp_path / "S9.fcs"))
    (tmp_path / "b").mkdir()
    twin = Path(shutil.copy(trial["files"]["S2"], tmp_path / "b" / "S2.fcs"))
    (tmp_path / "c").mkdir()
    twin2 = Path(shutil.copy(trial["files"]["S2"], tmp_path / "c" / "S2.fcs"))
    files = [("S0", trial["files"]["S0"]), ("S9", stray), ("S2b", twin), ("S2c", twin2)]
    errors = preflight(_project(tmp_path, wsp, files), base=tmp_path, inputs=False).errors
    lines = [one_line(e) for e in errors if "sample_group" in e]
    assert len(lines) == 2, errors
    assert lines[0] == (
        "config strategies.blood.sample_group: group 'All Samples' of blood.wsp has no sample "
        "for 1 data file: S9.fcs (S9); add the files to the group in FlowJo or drop their rows "
        "from the sheet, or set sample_id to gate every file with one sample's gates"
    )
    assert lines[1].startswith(
        "config strategies.blood.sample_group: data files S2.fcs (S2b), S2.fcs (S2c) all match "
        "sample 'S2' (sampleID "
    )


# ------------------------------------------------------------------------------ the workflow


@pytest.mark.e2e
def test_demo_rerun_with_its_exported_workspaces_counts_every_sample_alike(tmp_path):
    """The demo, then again with each panel's exported workspace as its strategy (sample group).

    The workspaces are copied beside the outputs at the same depth (the export rewrites
    results/gates/, which would then be the gating's own input): their relative URIs still
    lead to the demo's files. Adaptive gates are left out: the positions are in the workspace.
    """
    from conftest import run_snakemake

    config = copy.deepcopy(CONFIG)
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(tmp_path, "--cores", "2")
    first = pd.read_csv(tmp_path / "results/counts/populations.tsv", sep="\t")
    qc_first = pd.read_csv(tmp_path / "results/qc/samples.tsv", sep="\t")

    (tmp_path / "flowjo" / "gates").mkdir(parents=True)
    for name, spec in config["strategies"].items():
        wsp = tmp_path / "flowjo" / "gates" / f"{name}.wsp"
        shutil.copy(tmp_path / "results" / "gates" / f"{name}.wsp", wsp)
        spec.update(strategy=f"flowjo/gates/{name}.wsp", sample_group=GROUP)
        spec.pop("adaptive", None)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(tmp_path, "--cores", "2")  # a new config, not one merged over the first
    second = pd.read_csv(tmp_path / "results/counts/populations.tsv", sep="\t")
    qc_second = pd.read_csv(tmp_path / "results/qc/samples.tsv", sep="\t")

    gated = qc_first.loc[qc_first["status"].isin(GATED), "sample_id"]
    assert len(gated) > 100
    assert list(qc_second.loc[qc_second["status"].isin(GATED), "sample_id"]) == list(gated)
    columns = ["sample_id", "population", "parent", "count", "freq_parent", "freq_live", "per_ul"]
    key = ["sample_id", "population"]
    a = first[columns].sort_values(key).reset_index(drop=True)
    b = second[columns].sort_values(key).reset_index(drop=True)
    assert a.equals(b), a.compare(b).head()
