"""FlowJo 10 workspaces as strategies: our counts against the counts FlowJo itself stored.

FlowJo writes its count of every population as the ``count`` attribute of the ``Population``
element in the sample's gate tree (``-1`` or ``0`` where it did not compute it; those are skipped).
Counts must be equal on linear scales and within 0.1% on transformed scales (biex, arcsinh).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from cytotrial.errors import StrategyError
from cytotrial.gating import count_events, flowkit_session_counts
from cytotrial.io import load_strategy, read_fcs

WORKSPACES = [
    "simple_diamond_example/simple_diamond_example_quad_gate.wsp",
    "simple_diamond_example/test_data_diamond_asinh_rect.wsp",
    "simple_diamond_example/test_data_diamond_asinh_rect2.wsp",
    "simple_diamond_example/test_data_diamond_biex_rect.wsp",
    "simple_line_example/simple_poly_and_rect.wsp",
    "simple_line_example/simple_poly_and_rect_v2_poly50.wsp",
    "simple_line_example/single_ellipse_51_events.wsp",
]
POPULATION_TAGS = ("Population", "AndNode", "OrNode", "NotNode")


def _flowjo_counts(workspace: Path, sample_name: str) -> dict[str, int]:
    """Gate path -> FlowJo's stored count, from the sample's own gate tree."""
    root = etree.parse(str(workspace)).getroot()
    nodes = [el for el in root.iter("SampleNode") if el.get("name") == sample_name]
    assert len(nodes) == 1, f"{workspace.name}: sample {sample_name!r} not found once"
    counts: dict[str, int] = {}

    def walk(element, path):
        for sub in element.findall("Subpopulations"):
            for pop in sub:
                if pop.tag in POPULATION_TAGS:
                    gate_path = path + [pop.get("name")]
                    counts["/".join(gate_path)] = int(pop.get("count"))
                    walk(pop, gate_path)

    walk(nodes[0], [])
    return counts


def _data_file(workspace: Path, sample_name: str) -> Path:
    path = workspace.parent / sample_name
    assert path.is_file(), f"{workspace.name}: data file {sample_name} not beside the workspace"
    return path


def _is_linear(strategy, gate) -> bool:
    transforms = strategy.gating_strategy.transformations
    for dim in gate.fk_gate.dimensions or []:
        ref = getattr(dim, "transformation_ref", None)
        if ref is not None and type(transforms[ref]).__name__ != "LinearTransform":
            return False
    return True


@pytest.mark.parametrize("relative", WORKSPACES, ids=[Path(w).name for w in WORKSPACES])
def test_counts_equal_flowjo(external_data, relative):
    workspace = external_data / "flowjo-workspaces" / relative
    strategy = load_strategy(workspace)
    assert strategy.kind == "flowjo"
    data = read_fcs(_data_file(workspace, strategy.sample_id))
    ours = count_events(data, strategy).set_index("gate_path")["count"]
    stored = _flowjo_counts(workspace, strategy.sample_id)
    assert set(stored) == set(ours.index)
    compared = 0
    for gate in strategy.gates:
        flowjo = stored[gate.path]
        if flowjo in (-1, 0):
            continue  # FlowJo did not compute this population
        compared += 1
        if _is_linear(strategy, gate):
            assert ours[gate.path] == flowjo, gate.path
        else:
            assert abs(ours[gate.path] - flowjo) <= 0.001 * flowjo, gate.path
    if relative.startswith("simple_diamond") or "ellipse" in relative:
        assert compared == len(strategy.gates)
    else:
        assert compared == 0  # these two workspaces carry no computed counts


def test_documented_flowjo_counts(external_data):
    """The counts quoted in the data README, gate by gate."""
    folder = external_data / "flowjo-workspaces"
    expected = {
        "simple_diamond_example/simple_diamond_example_quad_gate.wsp": {
            "Q1: channel_A- , channel_B+": 49671,
            "Q2: channel_A+ , channel_B+": 50596,
            "Q3: channel_A+ , channel_B-": 50330,
            "Q4: channel_A- , channel_B-": 49403,
        },
        "simple_diamond_example/test_data_diamond_biex_rect.wsp": {"upper_right": 50605},
        "simple_diamond_example/test_data_diamond_asinh_rect.wsp": {"upper_right": 50559},
        "simple_diamond_example/test_data_diamond_asinh_rect2.wsp": {"upper_right": 50699},
        "simple_line_example/single_ellipse_51_events.wsp": {"ellipse1": 51},
    }
    for relative, counts in expected.items():
        workspace = folder / relative
        strategy = load_strategy(workspace)
        data = read_fcs(_data_file(workspace, strategy.sample_id))
        ours = count_events(data, strategy).set_index("gate_path")["count"].to_dict()
        assert ours == counts, relative


def test_nested_gate_names_repeat(external_data, tmp_path):
    """A FlowJo tree with one name under two parents: paths tell them apart, counts follow FlowKit."""
    source = (
        external_data
        / "flowjo-workspaces"
        / "simple_diamond_example"
        / "test_data_diamond_biex_rect.wsp"
    )
    quads = (
        external_data
        / "flowjo-workspaces"
        / "simple_diamond_example"
        / "simple_diamond_example_quad_gate.wsp"
    )
    tree = etree.parse(str(source))
    quad_tree = etree.parse(str(quads))
    sample = next(el for el in tree.getroot().iter("SampleNode"))
    upper = next(el for el in sample.iter("Population") if el.get("name") == "upper_right")
    q2 = next(
        el for el in quad_tree.getroot().iter("Population") if el.get("name").startswith("Q2")
    )
    q2 = copy.deepcopy(q2)
    q2.set("name", "Q2")
    # a second rectangle beside upper_right, and the quadrant inside both
    other = copy.deepcopy(upper)
    other.set("name", "other_rect")
    sample.find("Subpopulations").append(other)
    for parent in (upper, other):
        etree.SubElement(parent, "Subpopulations").append(copy.deepcopy(q2))
    path = tmp_path / "nested.wsp"
    tree.write(str(path))
    strategy = load_strategy(path)
    assert sorted(g.path for g in strategy.gates) == [
        "other_rect",
        "other_rect/Q2",
        "upper_right",
        "upper_right/Q2",
    ]
    with pytest.raises(StrategyError, match="ambiguous") as info:
        strategy.resolve("Q2")
    assert "upper_right/Q2" in str(info.value) and "other_rect/Q2" in str(info.value)
    assert strategy.resolve("upper_right/Q2").parent_path == "upper_right"
    fcs = source.parent / "test_data_diamond_01.fcs"
    ours = count_events(read_fcs(fcs), strategy)
    reference = flowkit_session_counts(fcs, strategy)
    assert ours.equals(reference)
    by_path = ours.set_index("gate_path")
    assert by_path.loc["other_rect", "count"] == by_path.loc["upper_right", "count"] == 50605
    assert by_path.loc["upper_right/Q2", "count"] == by_path.loc["other_rect/Q2", "count"]
    assert 0 < by_path.loc["upper_right/Q2", "count"] <= by_path.loc["upper_right", "count"]
    assert by_path.loc["upper_right/Q2", "parent_count"] == by_path.loc["upper_right", "count"]
