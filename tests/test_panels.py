"""Channel harmonisation across sites: the same marker under other channel names."""

from __future__ import annotations

import pytest

from cytotrial.errors import ConfigError, MissingMarkerError
from cytotrial.io import panel_marker, resolve_channels, shown_channel_names

PANELS = {"CD8": ["APC-H7-A", "CD8 APC-H7", "Comp-APC-H7-A"], "CD3": ["FITC-A", "CD3 FITC"]}


def test_exact_names_map_to_themselves():
    mapping = resolve_channels(
        ["FSC-A", "APC-H7-A"], ["", "CD8"], ["FSC-A", "APC-H7-A"], panels=PANELS
    )
    assert mapping == {"FSC-A": "FSC-A", "APC-H7-A": "APC-H7-A"}


def test_other_site_names_found_by_marker_label_or_alias():
    # site 2 put CD8 on a BUV channel, labelled by $PnS; site 3 names the channel "CD8 APC-H7"
    assert resolve_channels(["BUV805-A"], ["CD8"], ["APC-H7-A"], panels=PANELS) == {
        "APC-H7-A": "BUV805-A"
    }
    assert resolve_channels(["CD8 APC-H7"], [""], ["APC-H7-A"], panels=PANELS) == {
        "APC-H7-A": "CD8 APC-H7"
    }
    # FlowJo's Comp- prefix on the strategy side
    assert resolve_channels(["FITC-A"], ["CD3"], ["Comp-FITC-A"], panels=PANELS) == {
        "Comp-FITC-A": "FITC-A"
    }


def test_missing_marker_is_one_line_with_file_and_what_is_missing():
    with pytest.raises(MissingMarkerError) as info:
        resolve_channels(
            ["FSC-A", "FITC-A"],
            ["", "CD3"],
            ["FSC-A", "APC-H7-A", "BV786-A"],
            panels=PANELS,
            file="s1.fcs",
        )
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert (
        message.startswith("s1.fcs: lacks 2 channel(s)") and "APC-H7-A (as APC-H7-A/CD8)" in message
    )
    assert "BV786-A" in message and "add the file's names for them under config panels:" in message


def test_messages_quote_no_channel_name_of_the_file_that_config_and_strategy_do_not_know():
    """A $PnN or $PnS is a value of the file's TEXT: named by its keyword, never quoted."""
    with pytest.raises(MissingMarkerError) as info:
        resolve_channels(
            ["FSC-A", "Jane Doe", "FITC-A"], ["", "Doe J", "CD3"], ["FSC-A", "APC-H7-A"],
            panels=PANELS, file="s1.fcs",
        )  # fmt: skip
    assert "Doe" not in str(info.value) and "APC-H7-A (as APC-H7-A/CD8)" in str(info.value)
    with pytest.raises(MissingMarkerError) as info:  # two channels labelled with CD8's names
        resolve_channels(
            ["Jane Doe", "Y-A"], ["CD8", "CD8 APC-H7"], ["APC-H7-A"], panels=PANELS, file="s.fcs"
        )
    assert "($P1N, Y-A)" not in str(info.value) and "($P1N, $P2N)" in str(info.value)
    assert "Doe" not in str(info.value)
    with pytest.raises(MissingMarkerError) as info:  # a swapped label on an unknown channel name
        resolve_channels(
            ["Jane Doe"], ["CD8"], ["FITC-A"], panels={"CD3": ["FITC-A", "Jane Doe"], "CD8": []}
        )
    assert "channel Jane Doe is labelled CD8" in str(info.value)  # a name config lists is shown
    assert shown_channel_names(
        ["FSC-A", "Jane Doe", "Comp-FITC-A", "TIME"], panels=PANELS, needed=["FSC-A"]
    ) == ["FSC-A", "$P2N", "Comp-FITC-A", "TIME"]


def test_ambiguous_match_is_an_error():
    with pytest.raises(MissingMarkerError, match="matches several channels"):
        resolve_channels(
            ["X-A", "Y-A"], ["CD8", "CD8 APC-H7"], ["APC-H7-A"], panels=PANELS, file="s.fcs"
        )


def test_a_name_under_two_markers_is_a_config_error():
    with pytest.raises(ConfigError, match="listed under both"):
        resolve_channels(["A"], [""], ["A"], panels={"CD3": ["FITC-A"], "CD4": ["FITC-A"]})


def test_swapped_marker_labels_are_refused_naming_channel_label_and_expected_marker():
    # the file's FITC-A carries $PnS "CD8" and APC-H7-A carries "CD3": the labels contradict panels:
    with pytest.raises(MissingMarkerError) as info:
        resolve_channels(
            ["FSC-A", "FITC-A", "APC-H7-A"],
            ["", "CD8", "CD3 FITC"],
            ["FSC-A", "FITC-A", "APC-H7-A"],
            panels=PANELS,
            file="s1.fcs",
        )
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith("s1.fcs: ")
    assert "channel FITC-A is labelled CD8 by its $P2S but the strategy reads it as CD3" in message
    assert (
        "channel APC-H7-A is labelled CD3 by its $P3S but the strategy reads it as CD8" in message
    )
    assert "CD3 FITC" not in message  # the config's marker is named, not the file's label


def test_a_strategy_reading_the_marker_by_name_is_checked_too():
    # strategy dimension "Comp-FITC-A" -> FITC-A by $PnN, whose label names CD8
    with pytest.raises(MissingMarkerError, match=r"FITC-A is labelled CD8 .* reads it as CD3"):
        resolve_channels(["FITC-A"], ["CD8 APC-H7"], ["Comp-FITC-A"], panels=PANELS, file="s.fcs")


def test_labels_that_agree_or_that_no_marker_lists_are_not_refused():
    mapping = resolve_channels(
        ["FITC-A", "APC-H7-A", "PE-A"],
        ["CD3", "cd8  apc-h7", "PD-1"],  # case and blanks ignored; PD-1 is in no alias group
        ["FITC-A", "APC-H7-A", "PE-A"],
        panels=PANELS,
    )
    assert mapping == {"FITC-A": "FITC-A", "APC-H7-A": "APC-H7-A", "PE-A": "PE-A"}
    # another site's channel, found through its label: label and strategy agree
    assert resolve_channels(["BUV805-A"], ["CD8"], ["APC-H7-A"], panels=PANELS) == {
        "APC-H7-A": "BUV805-A"
    }
    # without panels: nothing to check against
    assert resolve_channels(["FITC-A"], ["CD8"], ["FITC-A"]) == {"FITC-A": "FITC-A"}


@pytest.mark.parametrize(
    ("channel", "label", "expected"),
    [
        ("FITC-A", "CD3", "CD3"),  # the channel is one of the marker's names
        ("Comp-APC-H7-A", "", "CD8"),  # FlowJo's prefix ignored
        ("fitc-a ", "Jane Doe 1961", "CD3"),  # the label never shown, whatever it says
        ("B1-A", "cd8 apc-h7", "CD8"),  # the label one of a marker's names: that marker
        ("B1-A", "Jane Doe 1961", ""),  # neither known: no marker
        ("B1-A", "CD3 FITC PHIQX", ""),
    ],
)
def test_an_output_names_a_channels_marker_as_panels_does_never_by_the_files_label(
    channel, label, expected
):
    assert panel_marker(channel, label, panels=PANELS) == expected
    assert panel_marker(channel, label, panels=None) == ""
