"""Channel harmonisation across sites: the same marker under other channel names."""

from __future__ import annotations

import pytest

from cytotrial.errors import ConfigError, MissingMarkerError
from cytotrial.io import resolve_channels

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
    assert "BV786-A" in message and "FITC-A[CD3]" in message


def test_ambiguous_match_is_an_error():
    with pytest.raises(MissingMarkerError, match="matches several channels"):
        resolve_channels(
            ["X-A", "Y-A"], ["CD8", "CD8 APC-H7"], ["APC-H7-A"], panels=PANELS, file="s.fcs"
        )


def test_a_name_under_two_markers_is_a_config_error():
    with pytest.raises(ConfigError, match="listed under both"):
        resolve_channels(["A"], [""], ["A"], panels={"CD3": ["FITC-A"], "CD4": ["FITC-A"]})
