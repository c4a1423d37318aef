"""The user's populations per panel: mapped gates, Boolean populations, their true parents and counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytotrial.config import population_model
from cytotrial.errors import ConfigError
from cytotrial.gating import (
    COUNT_COLUMNS,
    gate_events,
    gate_population_model,
    gate_samples,
    load_panel_gating,
    panel_gating,
)
from cytotrial.io import load_strategy, read_fcs
from cytotrial.sim import simulate_sample, write_fcs

ROOT = Path(__file__).resolve().parents[1]
BLOOD = str(ROOT / "resources/gating/blood.xml")
TUMOR = str(ROOT / "resources/gating/tumor.xml")
GATES = ["lymphocytes", "singlets", "live", "cd3", "cd4", "treg", "cd8"]
GATES += ["cd8_ki67", "cd8_hladr", "cd8_cd38", "nk"]


def _config(populations=None, blood=None, tumor=None) -> dict:
    strategies = {
        "blood": {"strategy": BLOOD, "populations": blood or {g: g for g in GATES}},
        "tumor": {
            "strategy": TUMOR,
            "populations": tumor or {g: g for g in [*GATES, "leukocytes"]},
        },
    }
    return {"populations": populations or {}, "strategies": strategies}


DEMO_BOOLEANS = {
    "cd4_conv": {"boolean": "cd4 and not treg"},
    "cd8_activated": {"boolean": "cd8_hladr and cd8_cd38"},
}


@pytest.fixture(scope="module")
def blood_fcs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("populations")
    return write_fcs(simulate_sample(panel="blood", n_events=8000, seed=21), folder / "b.fcs")


@pytest.fixture(scope="module")
def memberships(blood_fcs) -> dict[str, np.ndarray]:
    by_path = gate_events(read_fcs(blood_fcs), load_strategy(BLOOD))
    return {path.rsplit("/", 1)[-1]: mask for path, mask in by_path.items()}


def _gate(fcs: Path, config: dict, panel: str = "blood") -> pd.DataFrame:
    gating = load_panel_gating(panel, config["strategies"][panel], model=population_model(config))
    samples = pd.DataFrame({"sample_id": ["s"], "panel": [panel], "fcs": [str(fcs)]})
    result = gate_samples(samples, {panel: gating})
    counts, qc = result.counts, result.qc
    assert qc["status"].tolist() == ["ok"], qc["message"].tolist()
    assert list(counts.columns) == COUNT_COLUMNS
    return counts.set_index("population")


def test_boolean_populations_equal_numpy_on_the_memberships(blood_fcs, memberships):
    m = memberships
    populations = {
        **DEMO_BOOLEANS,
        "t_or_nk": {"boolean": "cd3 or nk"},
        "act_not_cycling": {"boolean": "cd8_activated and not cd8_ki67"},  # over a Boolean
        "odd": {"boolean": "(cd4 or cd8) and not (treg or cd8_ki67)"},
    }
    counts = _gate(blood_fcs, _config(populations))
    expected = {
        "cd4_conv": m["cd4"] & ~m["treg"],
        "cd8_activated": m["cd8_hladr"] & m["cd8_cd38"],
        "t_or_nk": m["cd3"] | m["nk"],
        "act_not_cycling": m["cd8_hladr"] & m["cd8_cd38"] & ~m["cd8_ki67"],
        "odd": (m["cd4"] | m["cd8"]) & ~(m["treg"] | m["cd8_ki67"]),
    }
    for name, mask in expected.items():
        assert counts.loc[name, "count"] == int(mask.sum()), name
        assert counts.loc[name, "gate_path"] == ""
    for gate in GATES:
        assert counts.loc[gate, "count"] == int(m[gate].sum()), gate
    assert counts.loc["cd8_activated", "count"] > 0 and counts.loc["cd4_conv", "count"] > 0
    # output order: the top-level populations first, then the mapped ones in order
    assert list(counts.index) == [*populations, *GATES]


def test_parents_skip_unmapped_gates_and_count_the_reported_ancestor(blood_fcs, memberships):
    m = memberships
    mapped = {"lymphocytes": "lymphocytes", "live": "live", "cd8": "cd8", "nk": "nk"}
    mapped["cd8_ki67"] = "lymphocytes/singlets/live/cd3/cd8/cd8_ki67"  # a path works too
    counts = _gate(blood_fcs, _config(blood=mapped))
    assert counts["parent"].to_dict() == {
        "lymphocytes": "",
        "live": "lymphocytes",  # singlets is not reported
        "cd8": "live",  # nor is cd3
        "nk": "live",  # nk sits under the unmapped cd3_neg
        "cd8_ki67": "cd8",
    }
    assert counts.loc["lymphocytes", "parent_count"] == 8000  # every event of the file
    for name in ("live", "cd8", "nk", "cd8_ki67"):
        parent = counts.loc[name, "parent"]
        assert counts.loc[name, "parent_count"] == counts.loc[parent, "count"] == m[parent].sum()
    assert counts.loc["cd8", "gate_path"] == "lymphocytes/singlets/live/cd3/cd8"


def test_boolean_parents_overrides_and_absent_populations():
    strategy = load_strategy(BLOOD)
    populations = {
        **DEMO_BOOLEANS,
        "cd8_activated_of_t": {"boolean": "cd8_hladr and cd8_cd38", "parent": "cd3"},
        "t_subsets": {"boolean": "cd4 or cd8"},
        "not_treg": {"boolean": "cd4 or not treg"},
        "tumor_only": {"boolean": "leukocytes and cd3"},
        "nk_of_lymphocytes": {"parent": "lymphocytes"},
    }
    config = _config(populations, blood={**{g: g for g in GATES}, "nk_of_lymphocytes": "nk"})
    gating = panel_gating("blood", strategy, population_model(config))
    assert gating.parents["cd4_conv"] == "cd4"
    assert gating.parents["cd8_activated"] == "cd8"  # both operands sit under cd8
    assert gating.parents["cd8_activated_of_t"] == "cd3"
    assert gating.parents["t_subsets"] == "cd3"
    assert gating.parents["not_treg"] == ""
    assert gating.parents["nk_of_lymphocytes"] == "lymphocytes"
    assert gating.parents["nk"] == "live"
    assert "tumor_only" not in gating.order and "leukocytes" not in gating.order
    assert gating.gate_path("cd4_conv") == "" and gating.populations["cd4"].endswith("/cd4")
    tumor = panel_gating("tumor", load_strategy(TUMOR), population_model(config))
    assert tumor.parents["tumor_only"] == "leukocytes" and tumor.parents["cd3"] == "leukocytes"


def test_two_names_on_one_gate_and_a_parent_override_outside_the_panel():
    strategy = load_strategy(BLOOD)
    config = _config(
        {"cd8_of_live": {"parent": "leukocytes"}},  # not reported in blood: the gate rule applies
        blood={"cd3": "cd3", "t_cells": "cd3", "cd8": "cd8", "cd8_of_live": "cd8"},
    )
    gating = panel_gating("blood", strategy, population_model(config))
    assert gating.order == ["cd8_of_live", "cd3", "t_cells", "cd8"]
    assert gating.parents == {"cd8_of_live": "cd3", "cd3": "", "t_cells": "", "cd8": "cd3"}


def test_a_gatingml_boolean_gate_follows_the_gate_rule(tmp_path, blood_fcs, memberships):
    text = Path(BLOOD).read_text(encoding="utf-8")
    gate = """
    <gating:BooleanGate gating:id="cd8_resting" gating:parent_id="cd3">
        <gating:and>
            <gating:gateReference gating:ref="cd8" />
            <gating:gateReference gating:ref="cd8_ki67" gating:use-as-complement="true" />
        </gating:and>
    </gating:BooleanGate>
"""
    strategy = tmp_path / "blood_boolean.xml"
    strategy.write_text(text.replace("</gating:Gating-ML>", gate + "</gating:Gating-ML>"))
    config = _config(blood={"live": "live", "cd8": "cd8", "cd8_resting": "cd8_resting"})
    config["strategies"]["blood"]["strategy"] = str(strategy)
    counts = _gate(blood_fcs, config)
    m = memberships
    assert counts.loc["cd8_resting", "count"] == int((m["cd8"] & ~m["cd8_ki67"]).sum())
    # its gate parent cd3 is not reported: the nearest reported ancestor gate (not cd8, an operand)
    assert counts.loc["cd8_resting", "parent"] == "live"
    assert counts.loc["cd8_resting", "gate_path"] == "lymphocytes/singlets/live/cd3/cd8_resting"


def test_a_population_the_strategy_lacks_is_a_one_line_config_error():
    config = _config(blood={"cd8": "cd8", "mait": "cd8/mait"})
    with pytest.raises(ConfigError) as error:
        load_panel_gating("blood", config["strategies"]["blood"], model=population_model(config))
    message = str(error.value)
    assert message.startswith("config strategies.blood.populations.mait: ")
    assert "\n" not in message and "cd8/mait" in message


def test_without_a_config_every_gate_is_reported_under_its_name():
    strategy = load_strategy(BLOOD)
    gating = panel_gating("", strategy, gate_population_model(strategy))
    assert gating.order == [gate.name for gate in strategy.gates]
    assert gating.parents["nk"] == "cd3_neg" and gating.parents["lymphocytes"] == ""


def test_a_sample_of_another_panel_reports_only_its_populations(tmp_path):
    tumor = write_fcs(simulate_sample(panel="tumor", n_events=4000, seed=3), tmp_path / "t.fcs")
    counts = _gate(tumor, _config(DEMO_BOOLEANS), panel="tumor")
    assert counts.loc["cd3", "parent"] == "leukocytes"
    assert counts.loc["cd3", "parent_count"] == counts.loc["leukocytes", "count"]
    assert counts.loc["cd8_activated", "parent"] == "cd8"
