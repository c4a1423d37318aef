"""The FCS reader against real files from many instruments, hand-built files and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import VARIETY_FILES, raw_keywords
from cytotrial.errors import FCSReadError, MissingMarkerError
from cytotrial.io import FCSData, channel_index, inspect_fcs, parse_spillover, read_fcs

OTHER_FILES = [
    "gatingml2-compliance/data1.fcs",
    "flowjo-workspaces/simple_diamond_example/test_data_diamond_01.fcs",
    "flowjo-workspaces/simple_line_example/data_set_simple_line_100.fcs",
]
# Event counts stated by the data's README (independent of any parser).
# FlowIO warns about the off-by-one DATA end it is told to tolerate when it serves as reference.
_FLOWIO_OFFSET_WARNING = pytest.mark.filterwarnings(
    "ignore:FCS file .* reported incorrect data offset:UserWarning"
)
README_COUNTS = {
    "gatingml2-compliance/data1.fcs": 13_367,
    "flowjo-workspaces/simple_diamond_example/test_data_diamond_01.fcs": 200_000,
    "flowjo-workspaces/simple_line_example/data_set_simple_line_100.fcs": 100,
}


# --------------------------------------------------------------------------------------------------
# helpers: an independent TEXT parser and a minimal FCS writer


def write_fcs(
    path: Path,
    values: np.ndarray,
    names: list[str],
    *,
    markers: list[str] | None = None,
    datatype: str = "F",
    order: str = "<",
    widths: list[int] | None = None,
    ranges: list[int] | None = None,
    pne: list[str] | None = None,
    png: list[float | None] | None = None,
    keywords: dict[str, str] | None = None,
    version: str = "3.1",
    delimiter: str = "/",
    encoding: str = "utf-8",
    text_data_offsets: bool = True,
    header_data_offsets: bool = True,
) -> Path:
    """Write a small FCS file exactly as told (including things a good writer would refuse)."""
    values = np.asarray(values)
    n, p = values.shape if values.size else (0, len(names))
    widths = widths or [{"F": 32, "D": 64}.get(datatype, 16)] * p
    pairs: dict[str, str] = {
        "$BYTEORD": "1,2,3,4" if order == "<" else "4,3,2,1",
        "$DATATYPE": datatype,
        "$MODE": "L",
        "$NEXTDATA": "0",
        "$PAR": str(p),
        "$TOT": str(n),
    }
    for k in range(p):
        pairs[f"$P{k + 1}N"] = names[k]
        if markers and markers[k]:
            pairs[f"$P{k + 1}S"] = markers[k]
        pairs[f"$P{k + 1}B"] = str(widths[k])
        pairs[f"$P{k + 1}E"] = pne[k] if pne else "0,0"
        pairs[f"$P{k + 1}R"] = str(ranges[k] if ranges else 1024)
        if png and png[k] is not None:
            pairs[f"$P{k + 1}G"] = str(png[k])
    pairs.update(keywords or {})
    if datatype == "I":
        dtype = np.dtype([(f"c{k}", f"{order}u{w // 8}") for k, w in enumerate(widths)])
        records = np.zeros(n, dtype=dtype)
        for k in range(p):
            records[f"c{k}"] = values[:, k]
        data = records.tobytes()
    elif datatype in ("F", "D"):
        data = values.astype(f"{order}f{4 if datatype == 'F' else 8}").tobytes()
    else:
        data = b""
    placeholder = "0" * 12
    if version != "2.0" and text_data_offsets:
        pairs["$BEGINDATA"] = placeholder
        pairs["$ENDDATA"] = placeholder

    def encode(items: dict[str, str]) -> bytes:
        escaped = (
            f"{key.replace(delimiter, delimiter * 2)}{delimiter}"
            f"{value.replace(delimiter, delimiter * 2)}{delimiter}"
            for key, value in items.items()
        )
        return (delimiter + "".join(escaped)).encode(encoding)

    text_start = 58
    text_stop = text_start + len(encode(pairs)) - 1
    data_start = text_stop + 1
    data_stop = data_start + len(data) - 1 if data else 0
    if version != "2.0" and text_data_offsets:
        pairs["$BEGINDATA"] = f"{data_start:012d}"
        pairs["$ENDDATA"] = f"{data_stop:012d}"
    if not header_data_offsets:  # as FCS 3.x writes them for files over 99,999,999 bytes
        data_start = data_stop = 0
    text = encode(pairs)
    assert len(text) == text_stop - text_start + 1
    header = f"FCS{version}    " + "".join(
        f"{v:>8d}" for v in (text_start, text_stop, data_start, data_stop, 0, 0)
    )
    path.write_bytes(header.encode("ascii") + text + data)
    return path


def assert_one_line_error(error: FCSReadError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "\r" not in message
    assert path.name in message


# --------------------------------------------------------------------------------------------------
# real files: event counts, preprocessing, spillover


def test_every_variety_file_is_covered(external_data: Path) -> None:
    folder = external_data / "fcs-variety"
    on_disk = {
        str(p.relative_to(external_data)) for p in folder.rglob("*") if p.suffix in (".fcs", ".lmd")
    }
    assert on_disk == set(VARIETY_FILES)


@pytest.mark.parametrize("relative", VARIETY_FILES + OTHER_FILES)
def test_reads_tot_events_of_every_external_file(external_data: Path, relative: str) -> None:
    path = external_data / relative
    stated = raw_keywords(path)
    data = read_fcs(path)
    tot, par = int(stated["$TOT"]), int(stated["$PAR"])
    assert data.n_events == data.n_events_stated == tot
    assert data.events.shape == (tot, par)
    assert data.events.dtype == np.float64 and data.events.flags["C_CONTIGUOUS"]
    assert np.isfinite(data.events).all()
    assert len(data.channels) == len(set(data.channels)) == par
    assert len(data.markers) == par
    assert data.fcs_version == path.read_bytes()[:6].decode()
    if relative in README_COUNTS:
        assert data.n_events == README_COUNTS[relative]


def _flowio_raw(path: Path) -> np.ndarray:
    import flowio

    return flowio.FlowData(
        path, ignore_offset_error=True, ignore_offset_discrepancy=True, nextdata_offset=0
    ).as_array()


@_FLOWIO_OFFSET_WARNING
@pytest.mark.parametrize(
    "relative",
    [
        "gatingml2-compliance/data1.fcs",  # FCS 2.0 integers, log channels and gains
        "fcs-variety/test_comp_example.fcs",  # float, big-endian, Time with gain and TIMESTEP
        "fcs-variety/G11.fcs",  # float, little-endian, TIMESTEP
    ],
)
def test_events_equal_flowkit_raw_events(external_data: Path, relative: str) -> None:
    flowkit = pytest.importorskip("flowkit")
    path = external_data / relative
    sample = flowkit.Sample(path, ignore_offset_error=True)
    data = read_fcs(path)
    assert data.channels == list(sample.pnn_labels)
    np.testing.assert_array_equal(data.events, sample.get_events(source="raw"))


@_FLOWIO_OFFSET_WARNING
@pytest.mark.parametrize(
    "relative",
    [
        "fcs-variety/B01 KC-A-W---91-US.fcs",  # 32-bit integers masked to $PnR = 2**24, TIMESTEP
        "fcs-variety/3FITC_4PE_004.fcs",  # 16-bit integers, log 4,0
        "fcs-variety/100715.fcs",  # FCS 2.0 float
        "fcs-variety/coulter.lmd",  # log with f2 = 0.1024, gain 2, first of two data sets
        "fcs-variety/index_sorted_example.fcs",
    ],
)
def test_events_equal_flowio_preprocessing(external_data: Path, relative: str) -> None:
    path = external_data / relative
    np.testing.assert_array_equal(read_fcs(path).events, _flowio_raw(path))


def test_data1_preprocessing_follows_the_fcs_standard(external_data: Path) -> None:
    """Decode data1.fcs by hand from its bytes: gains divide, $PnE=4,0 means 10**(4*x/1024)."""
    path = external_data / "gatingml2-compliance" / "data1.fcs"
    raw = path.read_bytes()
    start, stop = int(raw[26:34]), int(raw[34:42])
    ints = np.frombuffer(raw[start : stop + 1], dtype=">u2").reshape(-1, 8).astype(float)
    data = read_fcs(path)
    np.testing.assert_allclose(data.events[:, 0], ints[:, 0] / 3.67, rtol=1e-12)  # FSC-H, $P1G
    np.testing.assert_allclose(data.events[:, 1], ints[:, 1] / 8, rtol=1e-12)  # SSC-H, $P2G
    np.testing.assert_allclose(data.events[:, 2], 10 ** (4 * ints[:, 2] / 1024), rtol=1e-12)
    np.testing.assert_array_equal(data.events[:, 7], ints[:, 7])  # Time, linear, no gain


@pytest.mark.parametrize(
    ("gate_id", "bounds", "count"),
    [
        ("Rectangle1", {"SSC-H": (20, 80), "FL1-H": (70, 200)}, 252),
        ("Range1", {"FSC-H": (100, np.inf)}, 440),
        ("Range2", {"Time": (20, 80)}, 4710),
    ],
)
def test_gatingml_truth_needs_and_gets_standard_preprocessing(
    external_data: Path, gate_id: str, bounds: dict, count: int
) -> None:
    """Plain rectangle gates of the GatingML suite on read_fcs events match the suite's truth."""
    suite = external_data / "gatingml2-compliance"
    data = read_fcs(suite / "data1.fcs")
    inside = np.ones(data.n_events, dtype=bool)
    for channel, (low, high) in bounds.items():
        values = data.events[:, channel_index(data, channel)]
        inside &= (values >= low) & (values < high)
    truth = np.loadtxt(suite / "truth" / f"Results_{gate_id}.txt", dtype=int).astype(bool)
    assert int(truth.sum()) == count
    np.testing.assert_array_equal(inside, truth)


@pytest.mark.parametrize(
    "relative",
    [
        "fcs-variety/100715.fcs",
        "fcs-variety/B01 KC-A-W---91-US.fcs",
        "fcs-variety/G11.fcs",
        "fcs-variety/index_sorted_example.fcs",
        "fcs-variety/4_color_beads/Compensation Controls_Red A Stained Control_004.fcs",
        "fcs-variety/test_comp_example.fcs",
    ],
)
def test_spillover_equals_the_keyword_in_the_file(external_data: Path, relative: str) -> None:
    from flowutils.compensate import get_spill

    path = external_data / relative
    keywords = raw_keywords(path)
    value = next(keywords[k] for k in ("$SPILLOVER", "$SPILL", "SPILL") if k in keywords)
    matrix, detectors = get_spill(value)
    spill = read_fcs(path).spill
    assert spill is not None
    assert list(spill.index) == list(spill.columns) == detectors
    np.testing.assert_array_equal(spill.to_numpy(), matrix)


def test_spillover_of_test_comp_example_against_its_csv(external_data: Path) -> None:
    """The CSV names the same 14 detectors in the same order; the file itself stores the identity.

    comp_complete_example.csv is a compensation matrix made for this file, not the one in its
    $SPILL keyword: the keyword holds a 14 x 14 identity (checked byte-independently above).
    """
    folder = external_data / "fcs-variety"
    csv = pd.read_csv(folder / "comp_complete_example.csv")
    spill = read_fcs(folder / "test_comp_example.fcs").spill
    assert list(spill.columns) == list(spill.index) == list(csv.columns)
    np.testing.assert_array_equal(spill.to_numpy(), np.eye(14))
    # the parser reads a spillover written from the CSV back into exactly the CSV
    n = csv.shape[1]
    value = ",".join([str(n), *csv.columns, *(repr(float(v)) for v in csv.to_numpy().ravel())])
    parsed = parse_spillover(value)
    pd.testing.assert_frame_equal(
        parsed,
        pd.DataFrame(csv.to_numpy(), index=csv.columns, columns=csv.columns),
        check_names=False,
    )


def test_parse_spillover_maps_parameter_numbers_and_rejects_bad_values() -> None:
    channels = ["FSC-A", "FL1-A", "FL2-A"]
    spill = parse_spillover("2,2,3,1,0.1,0.05,1", channels=channels)
    assert list(spill.index) == ["FL1-A", "FL2-A"]
    assert spill.loc["FL1-A", "FL2-A"] == 0.1 and spill.loc["FL2-A", "FL1-A"] == 0.05
    assert parse_spillover("0").shape == (0, 0)
    for bad in ("", "x,FL1,1", "2,FL1-A,FL2-A,1,0,0", "2,FL1-A,FL2-A,1,0,zero,1", "2,A,A,1,0,0,1"):
        with pytest.raises(FCSReadError) as caught:
            parse_spillover(bad, source="tube.fcs: $SPILL")
        assert "tube.fcs" in str(caught.value) and "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------------
# real files: notes about what was worked around


def test_offset_discrepancies_use_the_offsets_that_hold_tot_events(external_data: Path) -> None:
    folder = external_data / "fcs-variety"
    reference = read_fcs(folder / "variable_int_example.fcs")  # same DATA bytes, no discrepancy
    assert not any("disagree" in note for note in reference.notes)
    for name, header_span in [
        ("data_start_offset_discrepancy_example.fcs", "5555-6188"),
        ("data_stop_offset_discrepancy_example.fcs", "6081-6944"),
    ]:
        data = read_fcs(folder / name)
        assert data.n_events == 2
        np.testing.assert_array_equal(data.events, reference.events)
        note = next(note for note in data.notes if "disagree" in note)
        assert header_span in note and "TEXT 6081-6188" in note and "read the TEXT offsets" in note


def test_mixed_bit_widths_of_variable_int_example(external_data: Path) -> None:
    path = external_data / "fcs-variety" / "variable_int_example.fcs"
    keywords = raw_keywords(path)
    assert {keywords[f"$P{k}B"] for k in range(1, 27)} == {"16", "32"}
    data = read_fcs(path)
    start = int(keywords["$BEGINDATA"])
    row = np.dtype([(f"c{k}", "<u2" if k < 26 else "<u4") for k in range(1, 27)])
    records = np.frombuffer(path.read_bytes()[start : start + 2 * row.itemsize], dtype=row)
    time = records["c26"].astype(np.int64) & (2**24 - 1)  # $P26R = 11209599 -> 24 bits
    np.testing.assert_array_equal(
        data.events[:, 25], time
    )  # Time: no usable TIMESTEP, gain ignored
    np.testing.assert_allclose(data.events[:, 2], records["c3"] / 6.5536, rtol=1e-12)  # $P3G
    np.testing.assert_allclose(
        data.events[:, 0], 10 ** (4 * records["c1"].astype(float) / 65536), rtol=1e-12
    )
    assert any("TIMESTEP" in note for note in data.notes)


def test_off_by_one_data_end_is_read_and_noted(external_data: Path) -> None:
    data = read_fcs(external_data / "fcs-variety" / "test_comp_example.fcs")
    assert data.n_events == 10_703
    assert any("one byte off" in note for note in data.notes)


@_FLOWIO_OFFSET_WARNING
def test_several_data_sets_read_the_first_and_say_so(external_data: Path) -> None:
    import flowio

    path = external_data / "fcs-variety" / "coulter.lmd"
    data = read_fcs(path)
    assert data.n_datasets == 2
    assert any("2 data sets" in note for note in data.notes)
    first = flowio.read_multiple_data_sets(path, ignore_offset_error=True)[0]
    np.testing.assert_array_equal(data.events, first.as_array())


def test_clean_files_have_no_notes(external_data: Path) -> None:
    for relative in OTHER_FILES + ["fcs-variety/G11.fcs", "fcs-variety/100715.fcs"]:
        assert read_fcs(external_data / relative).notes == []


def test_non_ascii_markers_and_file_names_with_spaces(external_data: Path) -> None:
    data = read_fcs(external_data / "fcs-variety" / "G11.fcs")
    assert data.markers[5] == "Alexa Fluor™ 405-A"
    spaced = (
        external_data
        / "fcs-variety"
        / "4_color_beads"
        / "Compensation Controls_Red A Stained Control_004.fcs"
    )
    assert read_fcs(str(spaced)).n_events == 5000


# --------------------------------------------------------------------------------------------------
# hand-built files with known values


def test_integer_data_masked_logged_gained_and_time_scaled(tmp_path: Path) -> None:
    raw = np.array(
        [[1024 + 5, 512, 256, 40], [700, 1023, 0, 2**12 + 8], [3, 1024 * 7 + 100, 1000, 1]]
    )
    path = write_fcs(
        tmp_path / "big endian ints.fcs",
        raw,
        ["FSC-A", "FL1-A", "FL2-A", "Time"],
        datatype="I",
        order=">",
        ranges=[1024, 1024, 1024, 4096],
        pne=["0,0", "4,0", "2,0.5", "0,0"],
        png=[2.0, None, None, 10.0],
        keywords={"$TIMESTEP": "0.5"},
        version="3.0",
    )
    data = read_fcs(path)
    masked = raw & np.array([1023, 1023, 1023, 4095])
    np.testing.assert_allclose(data.events[:, 0], masked[:, 0] / 2, rtol=1e-12)
    np.testing.assert_allclose(data.events[:, 1], 10 ** (4 * masked[:, 1] / 1024), rtol=1e-12)
    np.testing.assert_allclose(data.events[:, 2], 0.5 * 10 ** (2 * masked[:, 2] / 1024), rtol=1e-12)
    np.testing.assert_allclose(data.events[:, 3], masked[:, 3] * 0.5, rtol=1e-12)  # gain ignored
    assert data.notes == []


def test_mixed_widths_little_endian_and_double_data(tmp_path: Path) -> None:
    raw = np.array([[255, 65535, 2**20 + 7], [1, 2, 3]])
    path = write_fcs(
        tmp_path / "mixed.fcs",
        raw,
        ["A", "B", "C"],
        datatype="I",
        widths=[8, 16, 32],
        ranges=[256, 65536, 1024],
    )
    np.testing.assert_array_equal(read_fcs(path).events, [[255, 65535, 7], [1, 2, 3]])
    values = np.array([[1.5, -2.25e9], [np.pi, 1e-300]])
    path = write_fcs(tmp_path / "double.fcs", values, ["X", "Y"], datatype="D", order=">")
    np.testing.assert_array_equal(read_fcs(path).events, values)


def test_delimiters_escapes_and_latin1_labels(tmp_path: Path) -> None:
    values = np.arange(6, dtype=float).reshape(3, 2)
    path = write_fcs(
        tmp_path / "fcs2 latin.fcs",
        values,
        ["FL1-H", "FL2-H"],
        markers=["CD4/CD8 ratio", "Zellzahl ä"],
        version="2.0",
        encoding="latin-1",
    )
    data = read_fcs(path)
    assert data.markers == ["CD4/CD8 ratio", "Zellzahl ä"]
    np.testing.assert_array_equal(data.events, values)
    for delimiter in ("|", "*", "\\", "/"):
        path = write_fcs(
            tmp_path / "delimited.fcs", values, [f"A{delimiter}1", "B"], delimiter=delimiter
        )
        assert read_fcs(path).channels == [f"A{delimiter}1", "B"]


def test_data_offsets_from_only_one_of_header_and_text(tmp_path: Path) -> None:
    values = np.arange(8, dtype=float).reshape(4, 2)
    for name, options in [
        ("header only.fcs", {"text_data_offsets": False}),
        ("text only.fcs", {"header_data_offsets": False}),
    ]:
        path = write_fcs(tmp_path / name, values, ["A", "B"], version="3.0", **options)
        data = read_fcs(path)
        np.testing.assert_array_equal(data.events, values)
        assert data.notes == []


def test_repeated_channel_names_are_made_unique_and_noted(tmp_path: Path) -> None:
    values = np.arange(10, dtype=float).reshape(2, 5)
    path = write_fcs(tmp_path / "dups.fcs", values, ["FSC-A", "CD", "CD", "SSC-A", "CD"])
    data = read_fcs(path)
    assert data.channels == ["FSC-A", "CD", "CD_2", "SSC-A", "CD_3"]
    np.testing.assert_array_equal(data.events, values)
    assert "$P2N, $P3N (now with _2), $P5N (now with _3) repeat one channel name" in data.notes[0]
    assert "'CD'" not in data.notes[0]  # names the keywords, never a TEXT value
    assert inspect_fcs(path)["status"] == "warning"
    clash = write_fcs(tmp_path / "clash.fcs", values, ["X", "X_2", "X", "Y", "Y"])
    channels = read_fcs(clash).channels
    assert len(set(channels)) == 5 and channels[:2] == ["X", "X_2"]


def test_spillover_in_a_file_by_parameter_number_and_malformed(tmp_path: Path) -> None:
    values = np.ones((2, 3))
    names = ["FSC-A", "FL1-A", "FL2-A"]
    path = write_fcs(
        tmp_path / "numbers.fcs", values, names, keywords={"$SPILLOVER": "2,2,3,1,0.1,0.05,1"}
    )
    spill = read_fcs(path).spill
    assert list(spill.index) == ["FL1-A", "FL2-A"] and spill.iloc[0, 1] == 0.1
    path = write_fcs(tmp_path / "bad spill.fcs", values, names, keywords={"SPILL": "3,FL1-A,FL2-A"})
    data = read_fcs(path)
    assert data.spill is None and data.n_events == 2
    assert any("spillover was ignored" in note for note in data.notes)


CANARY = "Jane Doe 1961"


@pytest.mark.parametrize(
    ("keyword", "value", "says"),
    [
        ("$TOT", f"12 {CANARY}", "$TOT is not a whole number"),
        ("$PAR", CANARY, "$PAR is not a whole number"),
        ("$P2E", CANARY, "$P2E is not two numbers f1,f2"),
        ("$P2E", f"4,0,{CANARY}", "$P2E is not two numbers f1,f2"),
        ("$P1G", CANARY, "$P1G is not a number"),
        ("$P2R", CANARY, "$P2R is not a number"),
        ("$NEXTDATA", CANARY, "$NEXTDATA is not a whole number"),
        ("$DATATYPE", CANARY, "$DATATYPE is not one of I, F, D"),
        ("$MODE", CANARY, "$MODE is not L"),
        ("$BYTEORD", CANARY, "$BYTEORD is not a byte order"),
    ],
)
def test_malformed_keyword_named_without_its_value(
    tmp_path: Path, keyword: str, value: str, says: str
) -> None:
    """A malformed technical keyword is named with its problem; its value is never echoed."""
    path = write_fcs(
        tmp_path / "malformed.fcs", np.ones((2, 2)), ["A", "B"], keywords={keyword: value}
    )
    with pytest.raises(FCSReadError) as caught:
        read_fcs(path)
    assert_one_line_error(caught.value, path)
    assert says in str(caught.value), str(caught.value)
    assert "Doe" not in str(caught.value) and "1961" not in str(caught.value)
    assert "Doe" not in str(inspect_fcs(path))


@pytest.mark.parametrize(
    ("keyword", "value", "problem"),
    [
        ("$SPILLOVER", CANARY, "$SPILLOVER: spillover does not start with the number of detectors"),
        ("$SPILL", f"2,A,B,1,0,{CANARY},1", "$SPILL: spillover holds a value that is not a number"),
        ("SPILL", "2,A,B,1,0,0", "$SPILL: spillover for 2 detectors needs 7 comma-separated items"),
        ("$SPILLOVER", "2,A,B,1,nan,0,1", "holds a value that is not a finite number"),
        ("$SPILLOVER", "2,A,A,1,0,0,1", "names a detector twice"),
        ("$SPILLOVER", f"2,A,{CANARY},1,0,0,1", "names 1 of its 2 detectors after no channel"),
    ],
)
def test_unusable_spillover_is_a_problem_named_without_its_value(
    tmp_path: Path, keyword: str, value: str, problem: str
) -> None:
    path = write_fcs(tmp_path / "spill.fcs", np.ones((2, 2)), ["A", "B"], keywords={keyword: value})
    data = read_fcs(path)
    assert data.n_events == 2 and data.spill_problem is not None
    assert problem in data.spill_problem and "Doe" not in data.spill_problem
    assert any(data.spill_problem in note for note in data.notes)
    assert "Doe" not in " ".join(data.notes) and "1961" not in " ".join(data.notes)
    assert data.flags == []
    row = inspect_fcs(path)
    assert row["status"] == "warning" and "Doe" not in str(row)


def test_a_usable_spillover_has_no_problem(tmp_path: Path) -> None:
    path = write_fcs(
        tmp_path / "spill.fcs", np.ones((2, 2)), ["A", "B"], keywords={"$SPILL": "2,A,B,1,0.1,0,1"}
    )
    data = read_fcs(path)
    assert data.spill_problem is None and data.notes == [] and data.spill.loc["A", "B"] == 0.1


def test_non_finite_values_are_counted_per_channel(tmp_path: Path) -> None:
    values = np.array(
        [[1.0, np.nan, 3.0], [np.inf, np.nan, 1.0], [-np.inf, 2.0, 2.0], [np.inf, 5.0, 4.0]]
    )
    path = write_fcs(tmp_path / "nan.fcs", values, ["A", "B", "C"])
    data = read_fcs(path)
    np.testing.assert_array_equal(data.events, values)  # read as they are; gating decides
    assert data.notes == ["Non-finite values in $P1N (2 +inf, 1 -inf), $P2N (2 NaN)."]
    assert inspect_fcs(path)["status"] == "warning"


def test_channel_index_by_channel_or_marker(external_data: Path, tmp_path: Path) -> None:
    data = read_fcs(external_data / "gatingml2-compliance" / "data1.fcs")
    assert channel_index(data, "FL1-H") == 2
    assert channel_index(data, "CD4 FITC") == 2
    with pytest.raises(MissingMarkerError) as caught:
        channel_index(data, "CD56")
    assert "data1.fcs" in str(caught.value) and "CD56" in str(caught.value)
    assert "\n" not in str(caught.value)
    path = write_fcs(tmp_path / "twice.fcs", np.ones((1, 2)), ["A", "B"], markers=["CD8", "CD8"])
    with pytest.raises(MissingMarkerError):
        channel_index(read_fcs(path), "CD8")
    assert list(data.to_frame(label="marker").columns)[:3] == [
        "FSC-Height",
        "SSC-Height",
        "CD4 FITC",
    ]


# --------------------------------------------------------------------------------------------------
# broken files: one-line FCSReadError naming the file; inspect says "error"


def _copy_cut(source: Path, target: Path, size: int) -> Path:
    target.write_bytes(source.read_bytes()[:size])
    return target


def _replace(source: Path, target: Path, old: bytes, new: bytes) -> Path:
    raw = source.read_bytes()
    assert raw.count(old) == 1 and len(old) == len(new)
    target.write_bytes(raw.replace(old, new))
    return target


def _broken(case: str, tmp: Path, external: Path) -> Path:
    data1 = external / "gatingml2-compliance" / "data1.fcs"
    diamond = external / "flowjo-workspaces" / "simple_diamond_example" / "test_data_diamond_01.fcs"
    if case == "empty":
        path = tmp / "empty file.fcs"
        path.write_bytes(b"")
        return path
    if case == "text":
        path = tmp / "sheet.fcs"
        path.write_text("sample_id\tpatient_id\tfcs\nS1\tP01\tS1.fcs\n")
        return path
    if case == "png":
        path = tmp / "plot.fcs"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        return path
    if case == "missing":
        return tmp / "never written.fcs"
    if case == "folder":
        path = tmp / "folder.fcs"
        path.mkdir()
        return path
    if case == "cut in header":
        return _copy_cut(data1, tmp / "cut header.fcs", 30)
    if case == "cut in text":
        return _copy_cut(data1, tmp / "cut text.fcs", 1200)
    if case == "cut in data, FCS 2.0":
        return _copy_cut(data1, tmp / "cut data.fcs", 100_000)
    if case == "cut in data, FCS 3.1":
        return _copy_cut(diamond, tmp / "cut diamond.fcs", 800_000)
    if case == "tot promises more":
        return _replace(data1, tmp / "tot.fcs", b"$TOT\\13367\\", b"$TOT\\93367\\")
    if case == "enddata beyond file":
        raw = diamond.read_bytes()
        path = tmp / "enddata.fcs"
        path.write_bytes(raw[:34] + b"9600502".rjust(8) + raw[42:])
        return _replace(path, path, b"$ENDDATA/1600502/", b"$ENDDATA/9600502/")
    if case == "damaged header":
        raw = data1.read_bytes()
        path = tmp / "header.fcs"
        path.write_bytes(raw[:10] + b"abcdefgh" + raw[18:])
        return path
    if case == "garbage text":
        raw = bytearray(data1.read_bytes())
        raw[256:2320] = np.random.default_rng(3).integers(0, 256, 2064, dtype=np.uint8).tobytes()
        path = tmp / "garbage.fcs"
        path.write_bytes(bytes(raw))
        return path
    if case == "zero events":
        return write_fcs(tmp / "zero.fcs", np.zeros((0, 2)), ["A", "B"])
    if case == "ascii data":
        return write_fcs(
            tmp / "ascii.fcs", np.zeros((0, 2)), ["A", "B"], datatype="A", keywords={"$TOT": "3"}
        )
    if case == "histogram mode":
        return write_fcs(tmp / "hist.fcs", np.ones((2, 2)), ["A", "B"], keywords={"$MODE": "U"})
    raise AssertionError(case)


BROKEN_CASES = {  # case -> what the message must say
    "empty": "empty",
    "text": "not an FCS file",
    "png": "not an FCS file",
    "missing": "not found",
    "folder": "folder",
    "cut in header": "truncated",
    "cut in text": "truncated",
    "cut in data, FCS 2.0": "truncated",
    "cut in data, FCS 3.1": "truncated",
    "tot promises more": "$TOT=93367",
    "enddata beyond file": "past the end of the file",
    "damaged header": "HEADER is damaged",
    "garbage text": "TEXT",
    "zero events": "no events",
    "ascii data": "ASCII",
    "histogram mode": "list-mode",
}


@pytest.mark.parametrize("case", BROKEN_CASES)
def test_broken_file_raises_one_line_fcs_read_error(
    case: str, tmp_path: Path, external_data: Path
) -> None:
    path = _broken(case, tmp_path, external_data)
    with pytest.raises(FCSReadError) as caught:
        read_fcs(path)
    assert_one_line_error(caught.value, path)
    assert BROKEN_CASES[case] in str(caught.value)
    row = inspect_fcs(path)
    assert row["status"] == "error" and row["message"] == str(caught.value)
    assert row["events"] is None and row["file"] == str(path)


def test_every_cut_of_a_file_is_an_fcs_read_error(tmp_path: Path, external_data: Path) -> None:
    for source in (
        external_data / "gatingml2-compliance" / "data1.fcs",
        external_data / "fcs-variety" / "B01 KC-A-W---91-US.fcs",
        external_data / "fcs-variety" / "coulter.lmd",
    ):
        size = source.stat().st_size
        raw = source.read_bytes()
        for cut in np.unique(np.linspace(1, size - 1, 25).astype(int)):
            if source.suffix == ".lmd" and cut > 297_952:
                continue  # the first data set of coulter.lmd is complete past this point
            path = tmp_path / f"cut {cut}.fcs"
            path.write_bytes(raw[:cut])
            with pytest.raises(FCSReadError) as caught:
                read_fcs(path)
            assert_one_line_error(caught.value, path)


def test_corrupted_bytes_never_raise_anything_but_fcs_read_error(
    tmp_path: Path, external_data: Path
) -> None:
    source = external_data / "gatingml2-compliance" / "data1.fcs"
    raw = source.read_bytes()
    rng = np.random.default_rng(11)
    path = tmp_path / "corrupt.fcs"
    for trial in range(60):
        damaged = bytearray(raw)
        region = (0, 58) if trial % 3 == 0 else (256, 2320)
        for position in rng.integers(*region, size=3):
            damaged[position] = int(rng.integers(0, 256))
        path.write_bytes(bytes(damaged))
        try:
            data = read_fcs(path)
        except FCSReadError as error:
            assert_one_line_error(error, path)
        else:
            assert data.n_events == data.n_events_stated
        assert inspect_fcs(path)["status"] in ("ok", "warning", "error")


def test_a_bug_of_ours_is_not_an_fcs_read_error(
    external_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what a damaged file provokes becomes FCSReadError; a programming error propagates."""
    import cytotrial._flowkit
    import cytotrial.io._fcs

    path = external_data / "gatingml2-compliance" / "data1.fcs"

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug of ours")

    with monkeypatch.context() as patch:
        patch.setattr(cytotrial.io._fcs, "decode_records", broken)
        with pytest.raises(TypeError, match="a bug of ours"):
            read_fcs(path)
        with pytest.raises(TypeError, match="a bug of ours"):
            inspect_fcs(path)
    with monkeypatch.context() as patch:  # inside the FlowIO adapter, after FlowIO parsed TEXT
        patch.setattr(cytotrial._flowkit, "_text_of", broken)
        with pytest.raises(TypeError, match="a bug of ours"):
            read_fcs(path)


def test_a_delimiter_flowio_cannot_split_on_is_an_fcs_read_error(tmp_path: Path) -> None:
    path = write_fcs(tmp_path / "paren.fcs", np.ones((2, 2)), ["A", "B"], delimiter="(")
    with pytest.raises(FCSReadError, match="the TEXT segment cannot be parsed") as caught:
        read_fcs(path)
    assert_one_line_error(caught.value, path)


# --------------------------------------------------------------------------------------------------
# inspect


def test_inspect_rows(external_data: Path) -> None:
    row = inspect_fcs(external_data / "gatingml2-compliance" / "data1.fcs")
    assert row == {
        "file": str(external_data / "gatingml2-compliance" / "data1.fcs"),
        "events": 13_367,
        "channels": 8,
        "markers": "FSC-Height,SSC-Height,CD4 FITC,CD8 B PE,CD3 PerCP,CD8 APC,Time (102.40 sec.)",
        "spillover": "no",
        "status": "ok",
        "message": "",
    }
    row = inspect_fcs(external_data / "fcs-variety" / "coulter.lmd")
    assert row["status"] == "warning" and row["events"] == 18_110
    assert (
        "one byte off" in row["message"]
        and "; " in row["message"]
        and "2 data sets" in row["message"]
    )
    assert inspect_fcs(external_data / "fcs-variety" / "100715.fcs")["spillover"] == "yes"


@pytest.mark.parametrize(
    "relative",
    ["fcs-variety/test_comp_example.fcs", "fcs-variety/G11.fcs", "fcs-variety/coulter.lmd"],
)
def test_inspect_leaks_no_identifying_keyword(external_data: Path, relative: str) -> None:
    path = external_data / relative
    keywords = raw_keywords(path)
    private = [
        value.strip()
        for key, value in keywords.items()
        if key.lstrip("$").upper()
        in {"OP", "SRC", "FIL", "EXP", "INST", "SMNO", "@SAMPLEID1", "@SAMPLEID2"}
        and len(value.strip()) > 2
        and value.strip() not in (path.name, "NA")
    ]
    assert private, "the file should hold identifying keywords for this test to mean anything"
    row = inspect_fcs(path)
    shown = " ".join(str(value) for key, value in row.items() if key != "file")
    for value in private:
        assert value not in shown


def test_fcs_module_does_not_import_flowkit() -> None:
    import subprocess
    import sys

    code = "import sys, cytotrial.io; print('flowkit' in sys.modules, 'scanpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_fcsdata_is_what_read_fcs_returns(external_data: Path) -> None:
    data = read_fcs(
        external_data / "flowjo-workspaces" / "simple_line_example" / "data_set_simple_line_100.fcs"
    )
    assert isinstance(data, FCSData) and data.n_channels == 2 and data.n_datasets == 1
    assert data.keywords["tot"].strip() == "100" and data.spill is None
