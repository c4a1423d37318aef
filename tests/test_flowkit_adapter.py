"""The FlowKit/FlowIO behaviour ``cytotrial._flowkit`` relies on, and that only it goes past their API.

Each workaround in the adapter rests on something FlowKit 1.3 or FlowIO 1.4 does (or gets wrong);
the tests here check exactly that, so an upgrade that changes it fails here first. A test that
checks an upstream bug is still there says, when it fails, that the workaround must go.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import gc
import importlib
import io
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import flowio
import numpy as np
import pytest
from flowio.exceptions import FCSParsingError
from lxml import etree

from conftest import PROJECT_ROOT, VARIETY_FILES
from cytotrial._flowkit import (
    DEFERRED_BY_FLOWKIT,
    FLOWIO_TEXT_ERRORS,
    UnreadableStrategy,
    UnreadableText,
    flowkit_input_errors,
    gatingml_schema,
    internal_name,
    original_name,
    parse_strategy,
    prepare_gatingml,
    prepare_workspace,
    read_text,
)

SRC = PROJECT_ROOT / "src" / "cytotrial"
ADAPTER = SRC / "_flowkit.py"
DATA1 = "gatingml2-compliance/data1.fcs"
POLY_AND_RECT = "flowjo-workspaces/simple_line_example/simple_poly_and_rect.wsp"
BIEX = "flowjo-workspaces/simple_diamond_example/test_data_diamond_biex_rect.wsp"
QUAD = "flowjo-workspaces/simple_diamond_example/simple_diamond_example_quad_gate.wsp"


def _write_fcs(
    path: Path,
    *,
    names: tuple[str, str] = ("A", "B"),
    delimiter: str = "/",
    drop: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
    data_stop_extra: int = 0,
) -> Path:
    """A two-channel, two-event float FCS 3.1 file; ``drop`` leaves TEXT keywords out."""
    data = np.arange(4, dtype="<f4").tobytes()
    pairs = {
        "$BYTEORD": "1,2,3,4",
        "$DATATYPE": "F",
        "$MODE": "L",
        "$NEXTDATA": "0",
        "$PAR": "2",
        "$TOT": "2",
        "$BEGINDATA": "0" * 8,
        "$ENDDATA": "0" * 8,
    }
    for k, name in enumerate(names, start=1):
        pairs.update({f"$P{k}N": name, f"$P{k}B": "32", f"$P{k}E": "0,0", f"$P{k}R": "1024"})
    for key in drop:
        del pairs[key]
    pairs.update(extra or {})

    def encode() -> bytes:
        d = delimiter
        items = "".join(
            f"{k.replace(d, d * 2)}{d}{v.replace(d, d * 2)}{d}" for k, v in pairs.items()
        )
        return (d + items).encode("latin-1")

    text_stop = 58 + len(encode()) - 1
    data_start, data_stop = text_stop + 1, text_stop + len(data) + data_stop_extra
    if "$BEGINDATA" in pairs:
        pairs["$BEGINDATA"], pairs["$ENDDATA"] = f"{data_start:08d}", f"{data_stop:08d}"
    offsets = (58, text_stop, data_start, data_stop, 0, 0)
    header = "FCS3.1    " + "".join(f"{v:>8d}" for v in offsets)
    path.write_bytes(header.encode("ascii") + encode() + data)
    return path


def _flowio_text(path: Path, **options: object) -> flowio.FlowData:
    """FlowIO's TEXT parse from a handle we close (so no test leaves a file open)."""
    with open(path, "rb") as handle:
        return flowio.FlowData(handle, only_text=True, nextdata_offset=0, **options)


# --------------------------------------------------------------------------------------------------
# FlowIO: the handle, the delimiters, the errors, no warnings


def test_flowio_reads_text_from_a_handle_as_from_a_path(external_data: Path) -> None:
    path = external_data / DATA1
    from_path = flowio.FlowData(path, only_text=True, nextdata_offset=0)
    from_handle = _flowio_text(path)
    assert from_handle.text == from_path.text
    assert from_handle.channels == from_path.channels
    assert from_handle.header["text_start"] == int(path.read_bytes()[10:18]) == 256


def test_flowio_leaves_its_own_file_open_when_it_raises(tmp_path: Path) -> None:
    """Why read_text opens the file itself. If this fails, FlowIO closes its files now."""
    path = _write_fcs(tmp_path / "no par.fcs", drop=("$PAR",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(KeyError):
            flowio.FlowData(path, only_text=True, nextdata_offset=0)
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UnreadableText):
            read_text(path)
        gc.collect()
    assert caught == []


@pytest.mark.parametrize("delimiter", ["|", "*", "\\"])
def test_flowio_leaves_regex_delimiters_doubled(tmp_path: Path, delimiter: str) -> None:
    """FlowIO 1.4 bug the adapter un-does. If this fails, FlowIO un-doubles: drop the workaround."""
    name = f"A{delimiter}1"
    path = _write_fcs(tmp_path / "delimited.fcs", names=(name, "B"), delimiter=delimiter)
    flow_data = _flowio_text(path)
    assert flow_data.text["p1n"] == f"A{delimiter * 2}1"
    assert flow_data.pnn_labels[0] == flow_data.channels[1]["pnn"] == f"A{delimiter * 2}1"
    fcs_text = read_text(path)
    assert fcs_text.text["p1n"] == fcs_text.pnn_labels[0] == fcs_text.channels[1].pnn == name


def test_flowio_undoubles_an_ordinary_delimiter(tmp_path: Path) -> None:
    path = _write_fcs(tmp_path / "slash.fcs", names=("A/1", "B"), delimiter="/")
    assert _flowio_text(path).text["p1n"] == "A/1" == read_text(path).pnn_labels[0]


def test_flowio_channel_table_is_what_preprocessing_reads(external_data: Path) -> None:
    """Keys lower case without '$'; per channel pnn, pns, pne (2 floats), png, pnr; Time gain 1."""
    path = external_data / "fcs-variety" / "test_comp_example.fcs"  # Time with a gain
    flow_data = _flowio_text(path)
    assert "tot" in flow_data.text and not any(k.startswith("$") for k in flow_data.text)
    for number, channel in flow_data.channels.items():
        assert set(channel) == {"pnn", "pns", "pne", "png", "pnr"}
        assert len(channel["pne"]) == 2 and isinstance(channel["pnr"], float)
        assert flow_data.pnn_labels[number - 1] == channel["pnn"]
    time = flow_data.time_index
    assert time is not None and flow_data.pnn_labels[time] == "Time"
    assert (
        float(flow_data.text[f"p{time + 1}g"]) != 1.0 and flow_data.channels[time + 1]["png"] == 1
    )
    fcs_text = read_text(path)
    assert fcs_text.time_index == time and fcs_text.text == flow_data.text
    assert fcs_text.channels[time + 1].png == 1.0


def test_flowio_names_a_missing_keyword_in_its_key_error(tmp_path: Path) -> None:
    path = _write_fcs(tmp_path / "no par.fcs", drop=("$PAR",))
    with pytest.raises(KeyError) as caught:
        _flowio_text(path)
    assert caught.value.args == ("par",)
    with pytest.raises(UnreadableText) as unreadable:
        read_text(path)
    assert unreadable.value.missing_keyword == "par" and not unreadable.value.data_past_end
    # FCS 3.x without $BEGINDATA/$ENDDATA: refused unless the HEADER offsets are used
    path = _write_fcs(tmp_path / "no begindata.fcs", drop=("$BEGINDATA", "$ENDDATA"))
    with pytest.raises(UnreadableText) as unreadable:
        read_text(path)
    assert unreadable.value.missing_keyword == "begindata"
    assert read_text(path, use_header_offsets=True).text["tot"] == "2"


def test_flowio_says_greater_than_file_size_for_data_beyond_the_file(tmp_path: Path) -> None:
    path = _write_fcs(tmp_path / "long.fcs", data_stop_extra=100)
    with pytest.raises(FCSParsingError, match="greater than file size"):
        _flowio_text(path)
    with pytest.raises(UnreadableText) as unreadable:
        read_text(path)
    assert unreadable.value.data_past_end and unreadable.value.missing_keyword is None


def _damaged_versions(raw: bytes, rng: np.random.Generator) -> list[bytes]:
    text_stop = int(raw[18:26])
    versions = [raw[:cut] for cut in range(1, text_stop + 60, 3)]
    versions += [raw[:256] + bytes([byte]) + raw[257:] for byte in range(256)]  # every delimiter
    for trial in range(300):
        damaged = bytearray(raw)
        region = (0, 58) if trial % 3 == 0 else (256, text_stop + 1)
        for position in rng.integers(*region, size=int(rng.integers(1, 5))):
            damaged[position] = int(rng.integers(0, 256))
        versions.append(bytes(damaged))
    return versions


def test_flowio_text_errors_are_all_a_damaged_file_raises(
    external_data: Path, tmp_path: Path
) -> None:
    """Cuts at every offset of HEADER and TEXT, every delimiter, random corruptions of data1.fcs."""
    raw = (external_data / DATA1).read_bytes()
    path = tmp_path / "damaged.fcs"
    raised: set[type[BaseException]] = set()
    for version in _damaged_versions(raw, np.random.default_rng(2)):
        path.write_bytes(version)
        try:
            _flowio_text(path, ignore_offset_discrepancy=True)
        except FLOWIO_TEXT_ERRORS as error:
            raised.add(type(error))
    # what these damages provoke (each one a reason for its place in FLOWIO_TEXT_ERRORS)
    assert {KeyError, ValueError, IndexError, FCSParsingError, re.error} <= raised


@pytest.mark.parametrize(
    ("begin", "end", "error"),
    [("-50", "10", OSError), ("5", "9" * 30, OverflowError), ("100", "5000", EOFError)],
    ids=["before the file", "beyond any offset", "beyond the file"],
)
def test_flowio_reads_the_analysis_segment_where_text_says(
    tmp_path: Path, begin: str, end: str, error: type[Exception]
) -> None:
    """FlowIO reads ANALYSIS at $BEGINANALYSIS-$ENDANALYSIS, unchecked, even for TEXT only."""
    extra = {"$BEGINANALYSIS": begin, "$ENDANALYSIS": end}
    path = _write_fcs(tmp_path / "analysis.fcs", extra=extra)
    with pytest.raises(error):
        _flowio_text(path)
    assert issubclass(error, FLOWIO_TEXT_ERRORS)
    with pytest.raises(UnreadableText):
        read_text(path)


@pytest.mark.parametrize("relative", VARIETY_FILES)
def test_flowio_emits_no_warning_reading_text(external_data: Path, relative: str) -> None:
    path = external_data / relative
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            fcs_text = read_text(path)
        except UnreadableText:  # the reader then tries the HEADER offsets, as here
            fcs_text = read_text(path, use_header_offsets=True)
    assert int(fcs_text.text["par"]) == len(fcs_text.channels)


# --------------------------------------------------------------------------------------------------
# FlowKit: the GatingML schema, parser errors, the gate tree's public API


def test_gatingml_schema_is_the_one_flowkit_validates_against(
    external_data: Path, tmp_path: Path
) -> None:
    import flowkit as fk

    schema = gatingml_schema()
    assert isinstance(schema, etree.XMLSchema)
    good = external_data / "gatingml2-compliance" / "gml" / "gml_all_gates.xml"
    assert schema.validate(etree.parse(str(good)))
    bad = tmp_path / "bad.xml"
    bad.write_text(
        '<?xml version="1.0"?>'
        '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating">'
        '<gating:RectangleGate gating:id="g"><gating:bogus/></gating:RectangleGate>'
        "</gating:Gating-ML>"
    )
    assert not schema.validate(etree.parse(str(bad)))
    with pytest.raises(ValueError, match=r"neither GatingML 2\.0 compliant"):
        fk.parse_gating_xml(str(bad))


def _without(source: Path, target: Path, xpath: str) -> Path:
    tree = etree.parse(str(source))
    for element in tree.xpath(xpath):
        element.getparent().remove(element)
    tree.write(str(target))
    return target


def test_flowkit_trips_inside_its_own_code_on_a_workspace_missing_an_element(
    external_data: Path, tmp_path: Path
) -> None:
    """FlowKit does not validate workspaces: a missing <DataSet> is an AttributeError in FlowKit."""
    import flowkit as fk

    path = _without(
        external_data / POLY_AND_RECT, tmp_path / "no dataset.wsp", "//SampleList/Sample/DataSet"
    )
    with pytest.raises(AttributeError) as caught:
        fk.parse_wsp(str(path))
    assert caught.traceback[-1].frame.f_globals["__name__"].startswith("flowkit.")
    with pytest.raises(UnreadableStrategy) as unreadable:
        parse_strategy(fk.parse_wsp, path)
    assert isinstance(unreadable.value.cause, AttributeError)


def test_an_attribute_error_outside_flowkit_propagates(tmp_path: Path) -> None:
    def buggy(path: str) -> None:
        raise AttributeError("a bug of ours")

    with pytest.raises(AttributeError, match="a bug of ours"):
        parse_strategy(buggy, tmp_path / "any.xml")


def _gatingml(tmp_path: Path, gates: str) -> Path:
    path = tmp_path / "strategy.xml"
    path.write_text(
        '<?xml version="1.0"?>'
        '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
        'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">'
        f"{gates}</gating:Gating-ML>"
    )
    return path


def _range(gate_id: str, parent: str | None = None) -> str:
    parent_attr = f' gating:parent_id="{parent}"' if parent else ""
    return (
        f'<gating:RectangleGate gating:id="{gate_id}"{parent_attr}>'
        '<gating:dimension gating:compensation-ref="uncompensated" gating:min="1">'
        '<data-type:fcs-dimension data-type:name="FSC-H"/>'
        "</gating:dimension></gating:RectangleGate>"
    )


@pytest.mark.parametrize(
    ("gates", "error"),
    [
        (_range("A", parent="nowhere"), KeyError),  # parent that does not exist
        (_range("A", parent="B") + _range("B", parent="A"), ValueError),  # cycle
        (_range("A", parent="A"), ValueError),  # its own parent
    ],
    ids=["unknown parent", "cycle", "own parent"],
)
def test_flowkit_parse_errors_for_bad_gatingml(
    tmp_path: Path, gates: str, error: type[Exception]
) -> None:
    import flowkit as fk

    path = _gatingml(tmp_path, gates)
    assert gatingml_schema().validate(etree.parse(str(path)))  # schema-valid, still bad
    with pytest.raises(error):
        fk.parse_gating_xml(str(path))
    assert issubclass(error, flowkit_input_errors())
    with pytest.raises(UnreadableStrategy):
        parse_strategy(fk.parse_gating_xml, path)


def test_flowkit_gate_ids_are_the_tree_in_pre_order(external_data: Path) -> None:
    """What Strategy's gate records are built from (FlowKit's public GatingStrategy API)."""
    import flowkit as fk

    path = external_data / "gatingml2-compliance" / "gml" / "gml_all_gates.xml"
    gating_strategy = fk.parse_gating_xml(str(path))

    def pre_order(gate_id: tuple[str, tuple[str, ...]]) -> list:
        children = gating_strategy.get_child_gate_ids(*gate_id)
        return [gate_id] + [i for child in children for i in pre_order(child)]

    roots = [(g.gate_name, ("root",)) for g in gating_strategy.get_root_gates()]
    expected = [i for root in roots for i in pre_order(root)]
    assert gating_strategy.get_gate_ids() == expected
    quadrant_gate = gating_strategy.get_gate("Quadrant1", gate_path=("root",))
    assert type(quadrant_gate).__name__ == "QuadrantGate"
    quadrants = gating_strategy.get_child_gate_ids("Quadrant1", ("root",))
    assert [name for name, _ in quadrants] == list(quadrant_gate.quadrants)
    with pytest.raises(fk.exceptions.QuadrantReferenceError):
        gating_strategy.get_gate(quadrants[0][0], gate_path=quadrants[0][1])
    and3 = gating_strategy.get_gate("And3", gate_path=("root",))
    assert [(ref["ref"], ref["path"], ref["complement"]) for ref in and3.gate_refs] == [
        ("Range1", ("root",), False),
        ("Ellipse1", ("root",), True),
        ("Polygon1", ("root",), False),
    ]


def test_flowkit_warns_of_numpy_overflow_for_extreme_biex_parameters(
    external_data: Path, tmp_path: Path
) -> None:
    """The RuntimeWarnings load_strategy filters (category, message and module as filtered)."""
    import flowkit as fk

    from cytotrial.io import load_strategy

    text = (external_data / BIEX).read_text()
    path = tmp_path / "extreme biex.wsp"
    path.write_text(text.replace('transforms:pos="4.418539922"', 'transforms:pos="99999"', 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fk.parse_wsp(str(path))
    assert caught and all(
        w.category is RuntimeWarning
        and str(w.message).startswith(("overflow encountered in ", "invalid value encountered in "))
        and "flowkit" in Path(w.filename).parts
        for w in caught
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_strategy(path)) == 1


# --------------------------------------------------------------------------------------------------
# FlowKit: strategies as FlowJo writes them (prepare_gatingml, prepare_workspace)


def _flowjo_dimension(gate_id: str, name: str, parent: str | None = None) -> str:
    """A range gate as FlowJo writes it: no compensation-ref."""
    parent_attr = f' gating:parent_id="{parent}"' if parent else ""
    return (
        f'<gating:RectangleGate gating:id="{gate_id}"{parent_attr} eventsInside="1">'
        f'<gating:dimension gating:min="1"><data-type:fcs-dimension data-type:name="{name}"/>'
        "</gating:dimension></gating:RectangleGate>"
    )


def _prepared_gatingml(path: Path):
    return prepare_gatingml(path, etree.parse(str(path)))


def test_flowkit_refuses_a_dimension_without_compensation_ref(tmp_path: Path) -> None:
    """The schema requires compensation-ref; FlowJo's export has none. prepare_gatingml fills it."""
    import flowkit as fk

    path = _gatingml(
        tmp_path, _flowjo_dimension("A", "Comp-FL1-H") + _flowjo_dimension("B", "FSC-H")
    )
    assert not gatingml_schema().validate(etree.parse(str(path)))
    with pytest.raises(ValueError, match=r"neither GatingML 2\.0 compliant"):
        fk.parse_gating_xml(str(path))
    prepared = _prepared_gatingml(path)
    assert isinstance(prepared.source, bytes) and prepared.names == {}
    assert gatingml_schema().validate(prepared.document)
    gating_strategy = parse_strategy(fk.parse_gating_xml, prepared.source)
    dims = {name: gating_strategy.get_gate(name).dimensions[0] for name in ("A", "B")}
    assert (dims["A"].id, dims["A"].compensation_ref) == ("FL1-H", "FCS")
    assert (dims["B"].id, dims["B"].compensation_ref) == ("FSC-H", "uncompensated")


def test_flowkit_reads_comp_prefix_in_a_workspace_as_the_samples_matrix(
    external_data: Path, tmp_path: Path
) -> None:
    """Where the meaning of a missing compensation-ref comes from: FlowJo's own gate XML.

    FlowKit's parse_wsp strips the sample matrix's prefix (FlowJo: ``Comp-``) and compensates with
    that matrix.
    """
    import flowkit as fk

    tree = etree.parse(str(external_data / QUAD))
    root = tree.getroot()
    t, d = root.nsmap["transforms"], root.nsmap["data-type"]
    matrix = etree.SubElement(
        next(root.iter("Sample")),
        f"{{{t}}}spilloverMatrix",
        prefix="Comp-",
        suffix="",
        name="Acquisition-defined",
        spectral="0",  # FlowJo 10 writes it; FlowKit 1.3.0 requires it
    )
    params = etree.SubElement(matrix, f"{{{d}}}parameters")
    for channel in ("channel_A", "channel_B"):
        etree.SubElement(params, f"{{{d}}}parameter", {f"{{{d}}}name": channel})
    for row, channel in enumerate(("channel_A", "channel_B")):
        spill = etree.SubElement(matrix, f"{{{t}}}spillover", {f"{{{d}}}parameter": channel})
        for col, other in enumerate(("channel_A", "channel_B")):
            value = "1" if row == col else "0.1"
            etree.SubElement(
                spill,
                f"{{{t}}}coefficient",
                {f"{{{d}}}parameter": other, f"{{{t}}}value": value},
            )
    for element in root.iter(f"{{{d}}}fcs-dimension"):
        element.set(f"{{{d}}}name", "Comp-" + element.get(f"{{{d}}}name"))
    path = tmp_path / "compensated.wsp"
    tree.write(str(path))
    sample = fk.parse_wsp(str(path))["samples"]["test_data_diamond_01.fcs"]
    gating_strategy = sample["gating_strategy"]
    name, ancestors = gating_strategy.get_gate_ids()[0]
    dims = gating_strategy.get_gate(name, gate_path=ancestors).dimensions
    assert [(dim.id, dim.compensation_ref) for dim in dims] == [
        ("channel_A", "Acquisition-defined"),
        ("channel_B", "Acquisition-defined"),
    ]


def test_flowkit_refuses_gate_ids_that_are_not_xml_ids(tmp_path: Path) -> None:
    import flowkit as fk

    gates = (
        _range("Lymphocytes")
        + _range("CD4+", parent="Lymphocytes")
        + _range("Q1: CD4- , CD8+", parent="CD4+")
    )
    path = _gatingml(tmp_path, gates)
    with pytest.raises(ValueError, match=r"neither GatingML 2\.0 compliant"):
        fk.parse_gating_xml(str(path))
    prepared = _prepared_gatingml(path)
    assert prepared.names == {
        "CD4_x002B_": "CD4+",
        "Q1_x003A__x0020_CD4-_x0020__x002C__x0020_CD8_x002B_": "Q1: CD4- , CD8+",
    }
    gating_strategy = parse_strategy(fk.parse_gating_xml, prepared.source)
    assert gating_strategy.get_gate_ids()[-1] == (
        "Q1_x003A__x0020_CD4-_x0020__x002C__x0020_CD8_x002B_",
        ("root", "Lymphocytes", "CD4_x002B_"),
    )


def test_flowkit_cannot_place_a_child_of_a_name_with_a_slash(
    external_data: Path, tmp_path: Path
) -> None:
    """FlowKit resolves gates by "/"-joined paths. If this fails, FlowKit now takes such names."""
    import flowkit as fk

    tree = etree.parse(str(external_data / QUAD))
    population = next(tree.getroot().iter("Population"))
    child = copy.deepcopy(population)
    child.set("name", "inner")
    etree.SubElement(population, "Subpopulations").append(child)
    population.set("name", "CD45RA+/CCR7-")
    path = tmp_path / "slash.wsp"
    tree.write(str(path))
    with pytest.raises(fk.exceptions.GateTreeError, match="doesn't exist"):
        fk.parse_wsp(str(path))
    prepared = prepare_workspace(path, etree.parse(str(path)))
    assert prepared.names == {"CD45RA+_x002F_CCR7-": "CD45RA+/CCR7-"}
    sample = parse_strategy(fk.parse_wsp, prepared.source)["samples"]["test_data_diamond_01.fcs"]
    assert ("inner", ("root", "CD45RA+_x002F_CCR7-")) in sample["gating_strategy"].get_gate_ids()


def test_flowkit_parsers_take_a_file_object(external_data: Path) -> None:
    """What parse_strategy relies on to hand FlowKit a rewritten document."""
    import flowkit as fk

    gml = external_data / "gatingml2-compliance" / "gml" / "gml_all_gates.xml"
    from_bytes = fk.parse_gating_xml(io.BytesIO(gml.read_bytes()))
    assert from_bytes.get_gate_ids() == fk.parse_gating_xml(str(gml)).get_gate_ids()
    wsp = external_data / POLY_AND_RECT
    assert fk.parse_wsp(io.BytesIO(wsp.read_bytes())).keys() == fk.parse_wsp(str(wsp)).keys()


def test_readable_strategies_reach_flowkit_untouched(external_data: Path) -> None:
    """Nothing to rewrite: FlowKit reads the file itself, exactly as before."""
    files = sorted((external_data / "gatingml2-compliance" / "gml").glob("*.xml"))
    files += sorted((external_data / "flowjo-workspaces").rglob("*.wsp"))
    for path in files:
        prepare = prepare_workspace if path.suffix == ".wsp" else prepare_gatingml
        prepared = prepare(path, etree.parse(str(path)))
        assert prepared.source == path and prepared.names == {}, path.name


@pytest.mark.parametrize(
    "name",
    [
        "CD4+",
        "CD3+ CD8+",
        "Q1: CD4- , CD8+",
        "IFNa+ (stim)",
        "a/b",
        "1st",
        "-x",
        ".",
        "..",
        "_x0041_",
        "x_y",
        "CD4⁺",
        "é",
        "A\u203f",
        "naïve",
        "🙂",
    ],
)
def test_internal_names_are_xml_ids_and_give_the_name_back(tmp_path: Path, name: str) -> None:
    internal = internal_name(name)
    assert internal == name or original_name(internal) == name  # a changed name comes back
    path = _gatingml(tmp_path, _range(internal))
    assert gatingml_schema().validate(etree.parse(str(path))), internal
    flowjo = internal_name(name, xml_id=False)
    assert flowjo == name or original_name(flowjo) == name
    assert "/" not in flowjo and flowjo not in (".", "..")
    if "/" not in name and name not in (".", ".."):
        assert flowjo == name  # FlowKit takes any other FlowJo name as it is


def test_xml_ids_are_kept(tmp_path: Path) -> None:
    for name in ("CD3-", "Range1", "é", "A.b", "x_y"):
        assert internal_name(name) == name


# --------------------------------------------------------------------------------------------------
# no private FlowKit/FlowIO attribute outside the adapter

_UPSTREAM = ("flowkit", "flowio")
_KNOWN_PRIVATE = {"_gate_tree", "_raw_results", "_lut_func", "_resources"}
_HOLDERS = {"gating_strategy", "fk_gate"}  # attributes of ours that hold FlowKit objects


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _attrs_in(node: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _upstream_names(tree: ast.AST) -> tuple[set[str], list[tuple[int, str]]]:
    """Names bound to FlowKit/FlowIO imports, and private imports from them."""
    bound: set[str] = set()
    private: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in _UPSTREAM:
                    bound.add(alias.asname or parts[0])
                    if any(_is_private(p) for p in parts[1:]):
                        private.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] in _UPSTREAM:
                bound |= {alias.asname or alias.name for alias in node.names}
                names = [alias.name for alias in node.names]
                if any(_is_private(p) for p in parts[1:] + names):
                    private.append((node.lineno, f"from {node.module} import {', '.join(names)}"))
    return bound, private


def _bound_names(target: ast.AST) -> set[str]:
    """Names a target binds (``x``, ``x, y``, ``*x``), not ``x`` of ``x.a = ...``/``x[0] = ...``."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Tuple | ast.List):
        return set().union(*(_bound_names(t) for t in target.elts))
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return set()


def _bindings(node: ast.AST) -> list[tuple[ast.AST | None, list[ast.AST]]]:
    """(value, targets) pairs an AST node binds: assignments, loops, with, arguments."""
    if isinstance(node, ast.Assign):
        return [(node.value, node.targets)]
    if isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
        return [(node.value, [node.target])]
    if isinstance(node, ast.For | ast.comprehension):
        return [(node.iter, [node.target])]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [(node.context_expr, [node.optional_vars])]
    if isinstance(node, ast.arg) and node.annotation is not None:
        return [(node.annotation, [ast.Name(id=node.arg)])]
    return []


def _private_uses(source: str) -> list[tuple[int, str]]:
    """Private FlowKit/FlowIO attributes used in ``source``: (line, what) each."""
    tree = ast.parse(source)
    tainted, found = _upstream_names(tree)
    changed = True
    while changed:  # names bound to what a FlowKit/FlowIO name gives, to a fixed point
        changed = False
        for node in ast.walk(tree):
            for value, targets in _bindings(node):
                if value is None or not _names_in(value) & tainted:
                    continue
                new = set().union(*(_bound_names(t) for t in targets)) - tainted
                if new:
                    tainted |= new
                    changed = True
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            upstream = _names_in(node.value) & tainted or _attrs_in(node.value) & _HOLDERS
            if node.attr in _KNOWN_PRIVATE or upstream:
                found.append((node.lineno, f"{ast.unparse(node)}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _is_private(node.args[1].value)
        ):
            target = node.args[0]
            if node.args[1].value in _KNOWN_PRIVATE or _names_in(target) & tainted:
                found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import flowkit as fk\nfk._models", True),
        ("from flowkit._resources import gml_schema", True),
        ("from flowio import _version", True),
        ("import flowkit._utils.xml_utils", True),
        ("import flowkit as fk\ngs = fk.parse_gating_xml(p)\ngs._gate_tree", True),
        ("import flowkit as fk\ndef f(gs: fk.GatingStrategy):\n    return gs._dag", True),
        ("def f(results):\n    return results._raw_results", True),
        ("strategy.gating_strategy._cached_preprocessed_events", True),
        ("gate.fk_gate._x", True),
        ("getattr(xform, '_lut_func')", True),
        ("import flowkit as fk\nfk.__version__\nfk.parse_wsp(p).keys()", False),
        ("class A:\n    def f(self):\n        return self._by_path", False),
        ("import numpy as np\nnp._core", False),
    ],
)
def test_the_scan_finds_private_upstream_attributes(source: str, flagged: bool) -> None:
    assert bool(_private_uses(source)) is flagged


def test_the_scan_sees_the_adapter_reach_past_the_api() -> None:
    assert _private_uses(ADAPTER.read_text(encoding="utf-8"))


def test_no_private_flowkit_or_flowio_attribute_outside_the_adapter() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if path == ADAPTER:
            continue
        for line, what in _private_uses(path.read_text(encoding="utf-8")):
            problems.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {what}")
    assert not problems, "private FlowKit/FlowIO use outside _flowkit.py:\n" + "\n".join(problems)


# --------------------------------------------------------------------------------------------------
# FlowKit imported without its plotting libraries


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported (not those inside functions or classes)."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)


def _deferred_module(name: str) -> bool:
    return name.split(".")[0] == "bokeh" or name == "scipy.stats" or name.startswith("scipy.stats.")


def test_flowkit_imports_from_its_plotting_modules_only_callables_of_the_deferred_modules() -> None:
    """What import_flowkit rests on.

    FlowKit's modules take from Bokeh and SciPy's statistics, as they are imported, only
    ``from <module> import <callable>`` of the modules it defers.
    """
    import flowkit

    taken = set()
    for path in sorted(Path(flowkit.__file__).parent.rglob("*.py")):
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                assert not any(_deferred_module(a.name) for a in node.names), (path, ast.dump(node))
                continue
            if node.level or not node.module or not _deferred_module(node.module):
                continue
            assert node.module in DEFERRED_BY_FLOWKIT, (path.name, node.module)
            real = importlib.import_module(node.module)
            for alias in node.names:
                assert callable(getattr(real, alias.name)), (path.name, node.module, alias.name)
                taken.add(f"{node.module}.{alias.name}")
    # FlowKit still imports them: else the stubs stand in for nothing and can go
    assert {"bokeh.models.Title", "scipy.stats.gaussian_kde"} <= taken, sorted(taken)


def _fresh_python(code: str) -> str:
    """What ``code`` prints in a new interpreter (which must exit 0: else its traceback is shown)."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_flowkit_is_imported_without_bokeh_or_scipy_stats_and_still_plots(
    external_data: Path,
) -> None:
    code = f"""
        import sys
        from cytotrial._flowkit import DEFERRED_BY_FLOWKIT, import_flowkit

        fk = import_flowkit()
        loaded = sorted(m for m in sys.modules if m.startswith(("bokeh", "scipy.stats")))
        assert not loaded, loaded
        assert import_flowkit() is fk
        sample = fk.Sample({str(external_data / DATA1)!r})
        x, y = sample.pnn_labels[:2]
        histogram = sample.plot_histogram(x, source="raw")  # Bokeh's figure, via the stubs' names
        contour = sample.plot_contour(x, y, source="raw")  # SciPy's gaussian_kde too
        import bokeh.plotting
        import scipy.stats

        assert isinstance(histogram, bokeh.plotting.figure) and isinstance(contour, bokeh.plotting.figure)
        assert all(getattr(sys.modules[m], "__file__", None) for m in DEFERRED_BY_FLOWKIT)
        assert scipy.stats.norm.cdf(0.0) == 0.5
        print("plotted")
    """
    assert _fresh_python(code) == "plotted"


def test_flowkit_imported_after_bokeh_uses_the_real_modules() -> None:
    code = """
        import sys
        import bokeh.models
        import scipy.stats
        from cytotrial._flowkit import import_flowkit

        fk = import_flowkit()
        from flowkit._models import sample

        assert sample.Title is bokeh.models.Title and sample.pd is sys.modules["pandas"]
        print("real")
    """
    assert _fresh_python(code) == "real"


def test_a_flowkit_that_imports_more_than_the_stubs_stand_in_for_is_imported_as_it_is(
    tmp_path: Path,
) -> None:
    """A later FlowKit that imports another Bokeh module is imported as it is.

    The stubs cannot serve that module, so FlowKit is imported with the real modules instead of
    failing.
    """
    fake = tmp_path / "flowkit"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "from bokeh.palettes import Viridis256\nPALETTE = Viridis256\n"
    )
    code = f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from cytotrial._flowkit import import_flowkit

        fk = import_flowkit()
        assert fk.__file__.startswith({str(tmp_path)!r}) and len(fk.PALETTE) == 256
        assert "bokeh.palettes" in sys.modules and sys.modules["bokeh"].__file__
        print("fallback")
    """
    assert _fresh_python(code) == "fallback"


def test_another_package_imported_with_flowkit_gets_the_real_modules(tmp_path: Path) -> None:
    """A dependency that imports SciPy's statistics with FlowKit gets the real module and names.

    FlowKit's own names stay placeholders.
    """
    (tmp_path / "flowkit").mkdir()
    (tmp_path / "flowkit" / "__init__.py").write_text(
        "import helper\nfrom bokeh.models import Title\n"
    )
    (tmp_path / "helper.py").write_text(
        "import scipy.stats as st\nfrom scipy.stats import norm\nfrom scipy.stats import gaussian_kde\n"
    )
    code = f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from cytotrial._flowkit import import_flowkit

        fk = import_flowkit()
        import helper
        import scipy.stats

        assert helper.st is scipy.stats and helper.norm is scipy.stats.norm
        assert helper.gaussian_kde is scipy.stats.gaussian_kde
        assert type(fk.Title).__name__ == "_Deferred" and "bokeh" not in sys.modules
        print("real for others")
    """
    assert _fresh_python(code) == "real for others"
