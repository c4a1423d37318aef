r"""Strategy files as users have them: FlowJo's "Export GatingML" and the names FlowJo allows.

* A FlowJo GatingML export leaves out ``compensation-ref`` and names a compensated parameter
  ``Comp-<channel>``: read as ``<channel>`` compensated with the FCS file's own spillover, any other
  dimension uncompensated (``tests/data/strategies/flowjo_export_aria_tcells.xml`` and its standard
  twin ``aria_tcells_standard.xml``, on the FACSAria file ``fcs-variety/100715.fcs`` whose
  ``$SPILLOVER`` is far from the identity; and the GatingML compliance suite rewritten so).
* Gate names FlowJo allows but XML ids do not (``CD4+``, ``Q1: CD4- , CD8+``, ``Live/CD14-``) keep
  their names in every :class:`Gate`; ``/`` inside a name is ``\/`` in a path.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from cytotrial.errors import StrategyError
from cytotrial.gating import count_events, gate_events
from cytotrial.io import load_strategy, read_fcs
from cytotrial.io._strategy import join_gate_path, split_gate_path

DATA = Path(__file__).parent / "data" / "strategies"
FLOWJO_EXPORT = DATA / "flowjo_export_aria_tcells.xml"
STANDARD = DATA / "aria_tcells_standard.xml"
ARIA = "fcs-variety/100715.fcs"
G = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
D = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"
GATE_TAGS = ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")


def _compensations(gate) -> tuple:
    return tuple(dim.compensation_ref for dim in getattr(gate.fk_gate, "dimensions", None) or [])


@pytest.fixture(scope="module")
def aria(external_data):
    return read_fcs(external_data / ARIA)


@pytest.fixture(scope="module")
def exported():
    return load_strategy(FLOWJO_EXPORT)


# --------------------------------------------------------------------------------------------------
# FlowJo's GatingML export: no compensation-ref, Comp- channels, population names as ids


def test_flowjo_export_gate_records(exported):
    standard = load_strategy(STANDARD)
    assert exported.kind == "gatingml" and len(exported) == len(standard) == 14
    assert [g.name for g in exported.gates] == [
        "Lymphocytes",
        "Single Cells",
        "Live/CD14-",
        "CD3+",
        "CD4+",
        "CCR7- CD45RO+ (EM)",
        "CD8+",
        "Ki67+",
        "Q1: CD4- , CD8+",
        "Q2: CD4+ , CD8+",
        "Q3: CD4+ , CD8-",
        "Q4: CD4- , CD8-",
        "CD4+ or CD8+",
        "CD8+ Ki67-",
    ]
    for ours, theirs in zip(exported.gates, standard.gates):
        assert (ours.kind, ours.dimensions) == (theirs.kind, theirs.dimensions)
        assert _compensations(ours) == _compensations(theirs)
        assert (ours.parent_path is None) == (theirs.parent_path is None)
    cd3 = exported.resolve("CD3+")
    assert cd3.path == "Lymphocytes/Single Cells/Live\\/CD14-/CD3+"
    assert cd3.dimensions == ("R780-A",) and _compensations(cd3) == ("FCS",)
    lymphocytes = exported.resolve("Lymphocytes")
    assert lymphocytes.dimensions == ("FSC-A", "SSC-A")
    assert _compensations(lymphocytes) == ("uncompensated", "uncompensated")
    quadrant = exported.resolve("Q1: CD4- , CD8+")
    assert quadrant.path == f"{cd3.path}/CD4 v CD8/Q1: CD4- , CD8+"
    assert quadrant.parent_path == cd3.path and quadrant.dimensions == ("V655-A", "V800-A")
    assert _compensations(quadrant) == ("FCS", "FCS")
    assert exported.resolve("CD4+ or CD8+").references == (
        (f"{cd3.path}/CD4+", False),
        (f"{cd3.path}/CD8+", False),
    )
    assert exported.resolve("CD8+ Ki67-").references == (
        (f"{cd3.path}/CD8+", False),
        (f"{cd3.path}/CD8+/Ki67+", True),
    )
    assert "Comp-" not in "".join(exported.dimensions())


def test_flowjo_export_counts_equal_its_standard_twin(exported, aria):
    standard = load_strategy(STANDARD)
    ours = count_events(aria, exported)
    reference = count_events(aria, standard)
    assert list(ours["gate_name"]) == [g.name for g in exported.gates]
    assert np.array_equal(ours["count"].to_numpy(), reference["count"].to_numpy())
    assert np.array_equal(ours["parent_count"].to_numpy(), reference["parent_count"].to_numpy())
    counts = ours.set_index("gate_name")["count"]
    assert (counts > 0).all()
    assert counts["CD4+ or CD8+"] == counts["CD4+"] + counts["CD8+"]
    assert counts["CD8+ Ki67-"] == counts["CD8+"] - counts["Ki67+"]
    assert (
        counts["Q1: CD4- , CD8+"] == counts["CD8+"] and counts["Q3: CD4+ , CD8-"] == counts["CD4+"]
    )


def test_comp_prefix_means_the_files_own_spillover(exported, aria, tmp_path):
    """Read uncompensated, the same gates count otherwise: the Comp- channels were compensated."""
    raw = tmp_path / "uncompensated.xml"
    raw.write_text(
        STANDARD.read_text().replace('compensation-ref="FCS"', 'compensation-ref="uncompensated"')
    )
    counts = list(count_events(aria, exported)["count"])
    raw_counts = list(count_events(aria, load_strategy(raw))["count"])
    cd3 = [g.name for g in exported.gates].index("CD3+")
    assert counts[:2] == raw_counts[:2]  # Lymphocytes, Single Cells: scatter, never compensated
    assert counts[cd3] != raw_counts[cd3]


def test_flowjo_export_counts_equal_flowkit(exported, external_data):
    """FlowKit's own Session on the strategy as FlowKit reads it (internal ids, FCS compensation)."""
    import flowkit as fk

    sample = fk.Sample(str(external_data / ARIA), sample_id="aria")
    session = fk.Session(exported.gating_strategy, fcs_samples=[sample])
    session.analyze_samples(use_mp=False)
    report = session.get_gating_results("aria").report
    flowkit = {}
    for ancestors, name, quadrant_gate, count in zip(
        report["gate_path"], report["gate_name"], report["quadrant_parent"], report["count"]
    ):
        names = (
            [*ancestors, quadrant_gate, name]
            if isinstance(quadrant_gate, str)
            else [*ancestors, name]
        )
        flowkit[exported.flowkit_path(names)] = int(count)
    ours = count_events(read_fcs(external_data / ARIA), exported)
    assert dict(zip(ours["gate_path"], ours["count"])) == flowkit
    assert set(exported.flowkit_names.values()) >= {"CD4+", "Live/CD14-", "Q1: CD4- , CD8+"}


def _flowjo_style(source: Path, target: Path) -> dict[str, str]:
    """The file rewritten as FlowJo exports it; returns new id -> old id.

    No compensation-ref (``FCS`` -> ``Comp-`` names); gate, quadrant and divider ids renamed with
    characters XML ids refuse.
    """
    suffixes = ["+", " CD3+ CD8+", ": CD4- , CD8+", " (IFNa+)", "/CCR7-", ",x_y"]
    tree = etree.parse(str(source))
    root = tree.getroot()
    for element in root.iter(f"{G}dimension", f"{G}divider"):
        ref = element.attrib.pop(f"{G}compensation-ref")
        dimension = element.find(f"{D}fcs-dimension")
        if ref == "FCS":
            dimension.set(f"{D}name", "Comp-" + dimension.get(f"{D}name"))
        elif ref != "uncompensated":
            element.set(f"{G}compensation-ref", ref)  # a named matrix stays named
    owners = list(root.iter(*(f"{G}{t}" for t in (*GATE_TAGS, "Quadrant", "divider"))))
    renamed = {}
    for i, element in enumerate(owners):
        old = element.get(f"{G}id")
        renamed[old] = ("1" if i % 7 == 0 else "") + old + suffixes[i % len(suffixes)]
        element.set(f"{G}id", renamed[old])
    for element in root.iter():
        for attribute in (f"{G}parent_id", f"{G}ref", f"{G}divider_ref"):
            if element.get(attribute) in renamed:
                element.set(attribute, renamed[element.get(attribute)])
    tree.write(str(target))
    return {new: old for old, new in renamed.items()}


def test_compliance_suite_written_the_flowjo_way(external_data, tmp_path):
    """gml_all_gates.xml as FlowJo would write it: the same gates, the same events, the truth."""
    suite = external_data / "gatingml2-compliance"
    original = load_strategy(suite / "gml" / "gml_all_gates.xml")
    old_ids = _flowjo_style(suite / "gml" / "gml_all_gates.xml", tmp_path / "flowjo.xml")
    rewritten = load_strategy(tmp_path / "flowjo.xml")
    assert [old_ids[g.name] for g in rewritten.gates] == [g.name for g in original.gates]
    for ours, theirs in zip(rewritten.gates, original.gates):
        assert (ours.kind, ours.dimensions) == (theirs.kind, theirs.dimensions)
        assert _compensations(ours) == _compensations(theirs)
        assert [old_ids[n] for n in split_gate_path(ours.path)] == split_gate_path(theirs.path)
    data = read_fcs(suite / "data1.fcs")
    ours = gate_events(data, rewritten)
    theirs = gate_events(data, original)
    for gate, reference in zip(rewritten.gates, original.gates):
        assert np.array_equal(ours[gate.path], theirs[reference.path]), gate.path
    truth = np.loadtxt(suite / "truth" / "Results_And3.txt", dtype=np.int64).astype(bool)
    and3 = rewritten.resolve(next(n for n, o in old_ids.items() if o == "And3"))
    assert np.array_equal(ours[and3.path], truth)


# --------------------------------------------------------------------------------------------------
# names and paths


@pytest.mark.parametrize(
    "names",
    [
        ["Lymphocytes", "CD3+", "CD4+"],
        ["Live/CD14-", "CD45RA+/CCR7-"],
        ["a\\b", "\\", "/", "", "x\\/y", "Q1: CD4- , CD8+"],
    ],
)
def test_paths_join_and_split(names):
    path = join_gate_path(names)
    assert split_gate_path(path) == names
    if not any("/" in name or "\\" in name for name in names):
        assert path == "/".join(names)


def test_resolve_names_as_flowjo_shows_them(exported):
    cd4 = exported.resolve("CD4+")
    assert cd4.path == "Lymphocytes/Single Cells/Live\\/CD14-/CD3+/CD4+"
    for key in (
        "Lymphocytes/Single Cells/Live\\/CD14-/CD3+/CD4+",
        "root/Lymphocytes/Single Cells/Live\\/CD14-/CD3+/CD4+/",
        " /Lymphocytes/Single Cells/Live\\/CD14-/CD3+/CD4+ ",
    ):
        assert exported.resolve(key) is cd4
    live = exported.resolve("Lymphocytes/Single Cells/Live\\/CD14-")
    assert exported.resolve("Live/CD14-") is live and exported.resolve("Live\\/CD14-") is live
    assert live.name == "Live/CD14-" and live.parent_path == "Lymphocytes/Single Cells"
    with pytest.raises(StrategyError, match="no gate named") as info:
        exported.resolve("Lymphocytes/Single Cells/Live/CD14-")  # "/" unescaped: no such path
    assert "Live\\\\/CD14-" in str(info.value)


def test_internal_id_taken_by_another_gate(tmp_path):
    """``CD4+`` would be ``CD4_x002B_`` inside, which the file already uses: a one-line error."""
    text = FLOWJO_EXPORT.read_text().replace('gating:id="Ki67+"', 'gating:id="CD4_x002B_"')
    text = text.replace('gating:ref="Ki67+"', 'gating:ref="CD4_x002B_"')
    path = tmp_path / "clash.xml"
    path.write_text(text)
    with pytest.raises(StrategyError, match="CD4_x002B_") as info:
        load_strategy(path)
    assert "\n" not in str(info.value) and "clash.xml" in str(info.value)


def test_errors_name_gates_as_the_file_does(tmp_path):
    """FlowKit's message names the gate as the file does, not by its internal id.

    FlowKit 1.3 cannot place a Boolean gate drawn on a population it also refers to (it drops
    the reference edges, the parent edge with them): its error names the gate.
    """
    text = FLOWJO_EXPORT.read_text().replace(
        'gating:id="CD8+ Ki67-" gating:parent_id="CD3+"',
        'gating:id="CD8+ Ki67-" gating:parent_id="CD8+"',
    )
    path = tmp_path / "own parent.xml"
    path.write_text(text)
    with pytest.raises(StrategyError, match=r"not a valid GatingML 2\.0 file") as info:
        load_strategy(path)
    assert "CD8+ Ki67-" in str(info.value) and "_x002B_" not in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# FlowJo workspaces with the names users give


QUAD_WSP = "flowjo-workspaces/simple_diamond_example/simple_diamond_example_quad_gate.wsp"
RENAMED = {
    "Q1: channel_A- , channel_B+": "Q1: A+ , B-",
    "Q2: channel_A+ , channel_B+": "CD4+",
    "Q3: channel_A+ , channel_B-": "CD45RA+/CCR7- (Q3)",
    "Q4: channel_A- , channel_B-": "..",
}


def _boolean(tag: str, name: str, dependents: list[str]) -> etree._Element:
    element = etree.Element(tag, name=name, annotation="", owningGroup="", count="-1")
    holder = etree.SubElement(element, "Dependents")
    for dependent in dependents:
        etree.SubElement(holder, "Dependent", name=dependent)
    return element


def _renamed_workspace(source: Path, target: Path) -> dict[str, int]:
    """The quadrant workspace with user names; returns FlowJo's stored count by new name.

    Plus a gate under ``CD45RA+/CCR7- (Q3)`` and Boolean gates on them (FlowJo ``Dependent`` paths).
    """
    tree = etree.parse(str(source))
    sample = next(tree.getroot().iter("SampleNode"))
    populations = {p.get("name"): p for p in sample.iter("Population")}
    stored = {RENAMED[name]: int(p.get("count")) for name, p in populations.items()}
    q3 = populations["Q3: channel_A+ , channel_B-"]
    inner = copy.deepcopy(q3)
    inner.set("name", "CD8+ /x")
    etree.SubElement(q3, "Subpopulations").append(inner)
    for name, population in populations.items():
        population.set("name", RENAMED[name])
    top = sample.find("Subpopulations")
    top.append(_boolean("OrNode", "CD4+ or Q3", ["CD4+", "CD45RA+/CCR7- (Q3)"]))
    top.append(_boolean("NotNode", "not Q3/x", ["CD45RA+/CCR7- (Q3)/CD8+ /x"]))
    tree.write(str(target))
    return stored


def test_flowjo_workspace_with_user_names(external_data, tmp_path):
    source = external_data / QUAD_WSP
    stored = _renamed_workspace(source, tmp_path / "renamed.wsp")
    strategy = load_strategy(tmp_path / "renamed.wsp")
    assert strategy.paths == [
        "Q1: A+ , B-",
        "CD4+",
        "CD45RA+\\/CCR7- (Q3)",
        "CD45RA+\\/CCR7- (Q3)/CD8+ \\/x",
        "..",
        "CD4+ or Q3",
        "not Q3\\/x",
    ]
    assert strategy.resolve("CD8+ /x").parent_path == "CD45RA+\\/CCR7- (Q3)"
    assert strategy.resolve("CD4+ or Q3").references == (
        ("CD4+", False),
        ("CD45RA+\\/CCR7- (Q3)", False),
    )
    data = read_fcs(source.parent / strategy.sample_id)
    counts = count_events(data, strategy).set_index("gate_name")["count"]
    for name, count in stored.items():  # FlowJo's own counts, linear scale: equal
        assert counts[name] == count, name
    assert counts["CD8+ /x"] == stored["CD45RA+/CCR7- (Q3)"]
    assert counts["CD4+ or Q3"] == stored["CD4+"] + stored["CD45RA+/CCR7- (Q3)"]
    assert counts["not Q3/x"] == data.n_events - stored["CD45RA+/CCR7- (Q3)"]


def test_flowjo_workspace_names_flowkit_takes_are_kept(external_data):
    """Names with +, spaces, ':' and ',' reach FlowKit unchanged: nothing is renamed."""
    strategy = load_strategy(external_data / QUAD_WSP)
    assert strategy.flowkit_names == {}
    assert strategy.resolve("Q2: channel_A+ , channel_B+").path == "Q2: channel_A+ , channel_B+"
