"""The GatingML 2.0 compliance suite: every gate with a truth file, event by event.

Each gate of each ``gml/*.xml`` file is applied to ``data1.fcs`` (read and preprocessed by
``read_fcs``) through ``gate_events``; its membership must equal ``truth/Results_<gate id>.txt``
(one 0/1 line per event) exactly. A gate id appearing in several files is checked in each of them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from cytotrial.errors import StrategyError
from cytotrial.gating import gate_events
from cytotrial.io import load_strategy, read_fcs

# The suite's file for this gate names it ParRectangle1 while its truth file is named ParQuadRect.
TRUTH_ALIASES = {"ParRectangle1": "ParQuadRect"}
# Not GatingML 2.0 schema-valid (an unknown <sample> wrapper element): loading must fail cleanly.
INVALID_FILES = {"gml_range_gate_attr_testing.xml"}


def _suite_dir() -> Path:
    from conftest import _external_data_dir

    return _external_data_dir() / "gatingml2-compliance"


def _cases() -> list[tuple[str, str, str]]:
    """(gml file name, gate path, truth id) for every gate that has a truth file."""
    suite = _suite_dir()
    if not suite.is_dir():
        return []
    truth_ids = {p.stem[len("Results_") :] for p in (suite / "truth").glob("Results_*.txt")}
    cases = []
    for gml in sorted((suite / "gml").glob("*.xml")):
        if gml.name in INVALID_FILES:
            continue
        for gate in _strategy(str(gml)).gates:
            truth_id = TRUTH_ALIASES.get(gate.name, gate.name)
            if truth_id in truth_ids:
                cases.append((gml.name, gate.path, truth_id))
    return cases


@cache
def _strategy(path: str):
    return load_strategy(path)


@cache
def _memberships(gml_name: str) -> dict[str, np.ndarray]:
    suite = _suite_dir()
    data = read_fcs(suite / "data1.fcs")
    return gate_events(data, _strategy(str(suite / "gml" / gml_name)))


@cache
def _truth(truth_id: str) -> np.ndarray:
    values = np.loadtxt(_suite_dir() / "truth" / f"Results_{truth_id}.txt", dtype=np.int64)
    return values.astype(bool)


CASES = _cases()


@pytest.mark.parametrize(
    ("gml_name", "gate_path", "truth_id"), CASES, ids=[f"{c[0]}::{c[1]}" for c in CASES]
)
def test_gate_matches_truth_event_by_event(external_data, gml_name, gate_path, truth_id):
    membership = _memberships(gml_name)[gate_path]
    truth = _truth(truth_id)
    assert membership.shape == truth.shape == (13367,)
    wrong = np.flatnonzero(membership != truth)
    assert wrong.size == 0, (
        f"{gml_name} {gate_path}: {wrong.size} events differ (gated {membership.sum()}, truth {truth.sum()}), "
        f"first at event {wrong[:5].tolist()}"
    )


def test_every_truth_file_is_checked(external_data):
    """All 51 truth files are reached by some gate of some suite file."""
    truth_ids = {
        p.stem[len("Results_") :]
        for p in (external_data / "gatingml2-compliance" / "truth").glob("Results_*.txt")
    }
    checked = {truth_id for _, _, truth_id in _cases()}
    assert len(truth_ids) == 51
    assert checked == truth_ids


def test_documented_counts(external_data):
    """The counts the data README quotes, from the all-gates file."""
    counts = {path: int(m.sum()) for path, m in _memberships("gml_all_gates.xml").items()}
    expected = {
        "Rectangle1": 252,
        "Polygon1": 1582,
        "Ellipse1": 203,
        "Range1": 440,
        "And1": 561,
        "Or2": 8283,
        "ScaleRange7c": 12478,
    }
    assert {k: counts[k] for k in expected} == expected


def test_schema_invalid_suite_file_is_refused(external_data):
    path = external_data / "gatingml2-compliance" / "gml" / "gml_range_gate_attr_testing.xml"
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message
