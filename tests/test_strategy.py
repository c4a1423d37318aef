"""Loading gating strategies (GatingML 2.0, FlowJo 10) and finding gates in them."""

from __future__ import annotations

import hashlib

import pytest

from cytotrial.errors import StrategyError
from cytotrial.io import Gate, Strategy, load_strategy


def _assert_one_line_naming(error: pytest.ExceptionInfo, name: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert name in message


@pytest.fixture(scope="module")
def all_gates(external_data):
    return load_strategy(external_data / "gatingml2-compliance" / "gml" / "gml_all_gates.xml")


def test_gatingml_strategy(all_gates, external_data):
    path = external_data / "gatingml2-compliance" / "gml" / "gml_all_gates.xml"
    assert isinstance(all_gates, Strategy)
    assert all_gates.kind == "gatingml"
    assert all_gates.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    paths = all_gates.paths
    # one population per gate element, except that a quadrant gate gives one per quadrant
    text = path.read_text()
    n_gates = sum(
        text.count(f"<gating:{kind} ")
        for kind in ("RectangleGate", "PolygonGate", "EllipsoidGate", "BooleanGate")
    )
    n_quadrants = text.count("<gating:Quadrant ")
    assert len(paths) == len(set(paths)) == n_gates + n_quadrants
    assert not any(p.startswith("root") for p in paths)
    # parents, and the gates a Boolean gate combines, come first
    seen: set[str] = set()
    for gate in all_gates.gates:
        assert gate.parent_path is None or gate.parent_path in seen
        for ref, _ in gate.references:
            assert ref in seen
        seen.add(gate.path)


def test_gatingml_gate_records(all_gates):
    par = all_gates.resolve("ScalePar1")
    assert (par.path, par.parent_path, par.kind, par.dimensions) == (
        "ScaleRect1/ScalePar1",
        "ScaleRect1",
        "rectangle",
        ("FITC",),
    )
    quadrant = all_gates.resolve("FL2P-FL4N")
    assert quadrant.path == "Quadrant1/FL2P-FL4N"
    assert (
        quadrant.parent_path is None
        and quadrant.kind == "quadrant"
        and quadrant.quadrant == "FL2P-FL4N"
    )
    assert quadrant.dimensions == ("FL2-H", "FL4-H")
    and3 = all_gates.resolve("And3")
    assert and3.kind == "boolean" and and3.dimensions == ()
    assert and3.references == (("Range1", False), ("Ellipse1", True), ("Polygon1", False))
    assert all_gates.resolve("RatRange1").dimensions == ("FL2Rat1",)
    assert [g.path for g in all_gates.children("Polygon1")] == ["Polygon1/ParAnd2"]


def test_gatingml_dimensions_are_channels(all_gates):
    dims = all_gates.dimensions()
    # every channel of data1.fcs the file gates on; the ratio FL2Rat1 = FL2-H / FL2-A brings FL2-A;
    # MySpill's fluorochromes FITC, PE, PerCP are its detectors FL1-H, FL2-H, FL3-H
    assert sorted(dims) == sorted(
        ["FSC-H", "SSC-H", "FL1-H", "FL2-H", "FL3-H", "FL4-H", "FL2-A", "Time"]
    )
    assert len(dims) == len(set(dims))
    assert dims[0] == "FSC-H"  # Range1, the file's first gate


def test_default_blood_strategy(project_root):
    strategy = load_strategy(project_root / "resources" / "gating" / "blood.xml")
    expected = {
        "lymphocytes",
        "singlets",
        "live",
        "cd3",
        "cd4",
        "treg",
        "cd8",
        "cd8_ki67",
        "cd8_hladr",
        "cd8_cd38",
        "cd3_neg",
        "nk",
    }
    assert {g.name for g in strategy.gates} == expected
    assert strategy.resolve("cd8_ki67").path == "lymphocytes/singlets/live/cd3/cd8/cd8_ki67"
    assert strategy.resolve("root/lymphocytes/singlets").name == "singlets"
    assert set(strategy.dimensions()) == {
        "FSC-A",
        "SSC-A",
        "FSC-H",
        "BV510-A",
        "FITC-A",
        "PerCP-Cy5-5-A",
        "APC-H7-A",
        "PE-A",
        "BV421-A",
        "APC-A",
        "PE-Cy7-A",
        "BV711-A",
        "PE-CF594-A",
    }


def test_resolve_by_name_and_path(all_gates):
    by_name = all_gates.resolve("ParAnd2")
    by_path = all_gates.resolve("Polygon1/ParAnd2")
    assert by_name is by_path
    assert isinstance(by_name, Gate)
    assert all_gates.resolve("/Polygon1/ParAnd2/") is by_name


def test_resolve_unknown_gate(all_gates):
    with pytest.raises(StrategyError) as info:
        all_gates.resolve("cd8")
    _assert_one_line_naming(info, "gml_all_gates.xml")
    assert "'cd8'" in str(info.value) and "'Polygon1/ParAnd2'" in str(info.value)


def test_flowjo_workspace(external_data):
    path = (
        external_data
        / "flowjo-workspaces"
        / "simple_diamond_example"
        / "simple_diamond_example_quad_gate.wsp"
    )
    strategy = load_strategy(path)
    assert strategy.kind == "flowjo"
    assert strategy.sample_id == "test_data_diamond_01.fcs"
    assert strategy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [g.path for g in strategy.gates] == [
        "Q1: channel_A- , channel_B+",
        "Q2: channel_A+ , channel_B+",
        "Q3: channel_A+ , channel_B-",
        "Q4: channel_A- , channel_B-",
    ]
    assert all(g.kind == "rectangle" and g.parent_path is None for g in strategy.gates)
    assert strategy.dimensions() == ["channel_A", "channel_B"]
    same = load_strategy(path, sample_id="test_data_diamond_01.fcs")
    assert same.paths == strategy.paths
    by_group = load_strategy(path, sample_group="All Samples")
    assert by_group.sample_id == strategy.sample_id


def test_flowjo_sample_group(external_data):
    path = external_data / "flowjo-workspaces" / "simple_line_example" / "simple_poly_and_rect.wsp"
    strategy = load_strategy(path, sample_group="my_group")
    assert strategy.sample_id == "data_set_simple_line_100.fcs"
    assert [(g.path, g.kind) for g in strategy.gates] == [
        ("poly1", "polygon"),
        ("rect1", "rectangle"),
    ]


def test_flowjo_unknown_sample_or_group(external_data):
    path = external_data / "flowjo-workspaces" / "simple_line_example" / "simple_poly_and_rect.wsp"
    with pytest.raises(StrategyError) as info:
        load_strategy(path, sample_id="nope.fcs")
    _assert_one_line_naming(info, path.name)
    assert "data_set_simple_line_100.fcs" in str(info.value)
    with pytest.raises(StrategyError) as info:
        load_strategy(path, sample_group="nope")
    _assert_one_line_naming(info, path.name)
    assert "my_group" in str(info.value)


def test_not_xml(tmp_path):
    path = tmp_path / "strategy.xml"
    path.write_text("FSC-A > 1000\nthis is not XML\n")
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    _assert_one_line_naming(info, "strategy.xml")


def test_xml_of_another_kind(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text('<?xml version="1.0"?><config><gate name="cd3"/></config>')
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    _assert_one_line_naming(info, "other.xml")
    assert "<config>" in str(info.value)


def test_gatingml_not_valid(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(
        '<?xml version="1.0"?>'
        '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
        'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">'
        '<gating:RectangleGate gating:id="g"><gating:bogus/></gating:RectangleGate>'
        "</gating:Gating-ML>"
    )
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    _assert_one_line_naming(info, "broken.xml")


def test_missing_file(tmp_path):
    with pytest.raises(StrategyError) as info:
        load_strategy(tmp_path / "absent.xml")
    _assert_one_line_naming(info, "absent.xml")


def test_flowjo_options_refused_for_gatingml(external_data):
    path = external_data / "gatingml2-compliance" / "gml" / "gml_rect1_gate.xml"
    with pytest.raises(StrategyError) as info:
        load_strategy(path, sample_group="All Samples")
    _assert_one_line_naming(info, path.name)


def test_flowjo_workspace_missing_an_element(external_data, tmp_path):
    """FlowKit trips over a workspace without <DataSet> (an AttributeError in FlowKit's code)."""
    from lxml import etree

    source = (
        external_data / "flowjo-workspaces" / "simple_line_example" / "simple_poly_and_rect.wsp"
    )
    tree = etree.parse(str(source))
    for element in tree.xpath("//SampleList/Sample/DataSet"):
        element.getparent().remove(element)
    path = tmp_path / "no dataset.wsp"
    tree.write(str(path))
    with pytest.raises(StrategyError, match="cannot read the FlowJo workspace") as info:
        load_strategy(path)
    _assert_one_line_naming(info, "no dataset.wsp")


def test_gatingml_valid_by_schema_but_not_for_flowkit(tmp_path):
    path = tmp_path / "orphan.xml"
    path.write_text(
        '<?xml version="1.0"?>'
        '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
        'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">'
        '<gating:RectangleGate gating:id="A" gating:parent_id="nowhere">'
        '<gating:dimension gating:compensation-ref="uncompensated" gating:min="1">'
        '<data-type:fcs-dimension data-type:name="FSC-H"/></gating:dimension>'
        "</gating:RectangleGate></gating:Gating-ML>"
    )
    with pytest.raises(StrategyError, match=r"not a valid GatingML 2\.0 file") as info:
        load_strategy(path)
    _assert_one_line_naming(info, "orphan.xml")


def test_a_bug_of_ours_is_not_a_strategy_error(external_data, monkeypatch):
    import cytotrial.io._strategy

    def broken(*args, **kwargs):
        raise AttributeError("a bug of ours")

    monkeypatch.setattr(cytotrial.io._strategy, "_gate_record", broken)
    with pytest.raises(AttributeError, match="a bug of ours"):
        load_strategy(external_data / "gatingml2-compliance" / "gml" / "gml_rect1_gate.xml")


def test_quadrant_gate_of_a_nested_population(external_data):
    """Quadrants take as parent the population their quadrant gate was drawn on."""
    strategy = load_strategy(external_data / "gatingml2-compliance" / "gml" / "gml_all_gates.xml")
    quadrants = [g for g in strategy.gates if g.kind == "quadrant"]
    assert quadrants
    for gate in quadrants:
        owner = gate.path.rsplit("/", 2)[0] if gate.path.count("/") >= 2 else None
        assert gate.parent_path == owner and gate.name == gate.quadrant
        assert gate.name in gate.fk_gate.quadrants
