"""The default gating strategies (resources/gating/*.xml): the contract tree and truthful counts.

Gated counts match the simulator's truth when FlowKit itself applies them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytotrial.sim import PANELS, simulate_sample, simulate_trial, write_fcs

flowkit = pytest.importorskip("flowkit")

STRICT = ("cd3", "cd4", "cd8", "treg", "nk", "cd8_ki67", "cd8_hladr", "cd8_cd38")
TOLERANCE = 0.03  # median over samples of |gated - truth| / truth
# The demo config's Boolean populations over the gates: (gate, gate, whether the second is negated)
BOOLEANS = {"cd8_activated": ("cd8_hladr", "cd8_cd38", False), "cd4_conv": ("cd4", "treg", True)}

BELOW_LIVE = {
    "cd3": (),
    "cd4": ("cd3",),
    "treg": ("cd3", "cd4"),
    "cd8": ("cd3",),
    "cd8_ki67": ("cd3", "cd8"),
    "cd8_hladr": ("cd3", "cd8"),
    "cd8_cd38": ("cd3", "cd8"),
    "cd3_neg": (),
    "nk": ("cd3_neg",),
}


def _contract_tree(panel: str) -> set[tuple[str, tuple[str, ...]]]:
    """(gate name, parent path) of every gate of the contract tree, FlowKit-style."""
    top = ("root", "lymphocytes", "singlets", "live")
    tree = {
        ("lymphocytes", ("root",)),
        ("singlets", ("root", "lymphocytes")),
        ("live", ("root", "lymphocytes", "singlets")),
    }
    if panel == "tumor":
        tree.add(("leukocytes", top))
        top = top + ("leukocytes",)
    tree |= {(name, top + above) for name, above in BELOW_LIVE.items()}
    return tree


@pytest.fixture(scope="module")
def strategies(project_root) -> dict[str, object]:
    return {
        panel: flowkit.parse_gating_xml(str(project_root / "resources" / "gating" / f"{panel}.xml"))
        for panel in PANELS
    }


@pytest.mark.parametrize("panel", list(PANELS))
def test_strategy_is_the_contract_tree(strategies, panel):
    strategy = strategies[panel]
    assert set(strategy.get_gate_ids()) == _contract_tree(panel)
    logicle = strategy.transformations["logicle"]
    assert (logicle.param_t, logicle.param_w, logicle.param_m, logicle.param_a) == (
        262144.0, 0.5, 4.5, 0.0,
    )  # fmt: skip
    channels = {name for name, _ in PANELS[panel]}
    for name, path in strategy.get_gate_ids():
        gate = strategy.get_gate(name, gate_path=path)
        for dimension in gate.dimensions:
            assert dimension.id in channels, (name, dimension.id)
            if dimension.id.startswith(("FSC", "SSC")):
                assert dimension.compensation_ref == "uncompensated"
                assert dimension.transformation_ref is None
            else:
                assert dimension.compensation_ref == "FCS", (name, dimension.id)
                assert dimension.transformation_ref == "logicle", (name, dimension.id)


def _boolean_membership(session, sample_id: str, population: str) -> np.ndarray:
    """Events of a Boolean population of the demo config, from FlowKit's gate memberships."""
    first, second, negated = BOOLEANS[population]
    a = np.asarray(session.get_gate_membership(sample_id, first), dtype=bool)
    b = np.asarray(session.get_gate_membership(sample_id, second), dtype=bool)
    return a & ~b if negated else a & b


def _boolean_counts(session, sample_ids) -> pd.DataFrame:
    """Gated counts of the Boolean populations, FlowKit report style."""
    return pd.DataFrame(
        [
            (sample_id, population, int(_boolean_membership(session, sample_id, population).sum()))
            for sample_id in sample_ids
            for population in BOOLEANS
        ],
        columns=["sample_id", "gate_name", "count"],
    )


@pytest.mark.parametrize("panel", list(PANELS))
def test_hladr_and_cd38_gates_are_positive_ranges_under_cd8(strategies, panel):
    strategy = strategies[panel]
    paths = dict(strategy.get_gate_ids())
    for name, channel, marker in (
        ("cd8_hladr", "BV711-A", "HLA-DR"),
        ("cd8_cd38", "PE-CF594-A", "CD38"),
    ):
        assert paths[name][-1] == "cd8", name
        assert (channel, marker) in PANELS[panel]
        gate = strategy.get_gate(name, gate_path=paths[name])
        [dimension] = gate.dimensions
        assert dimension.id == channel
        # open-ended: positive events above the gap between negative (dim) and positive cells
        assert dimension.max is None and 0.3 < dimension.min < 0.45, (name, dimension.min)


@pytest.fixture(scope="module")
def gated_trial(tmp_path_factory, strategies) -> pd.DataFrame:
    """Gated and true counts of every population in a small simulated trial, gated by FlowKit."""
    out = tmp_path_factory.mktemp("trial")
    simulate_trial(out, patients_per_arm=2, events=20_000, tumor_events=20_000, seed=31)
    sheet = pd.read_csv(out / "samples.tsv", sep="\t")
    truth = pd.read_csv(out / "truth" / "populations.tsv", sep="\t")
    rows = []
    for panel, group in sheet.groupby("panel"):
        samples = [
            flowkit.Sample(str(out / fcs), sample_id=sample_id)
            for sample_id, fcs in zip(group.sample_id, group.fcs)
        ]
        session = flowkit.Session(gating_strategy=strategies[panel], fcs_samples=samples)
        session.analyze_samples(use_mp=False)
        report = session.get_analysis_report()
        rows.append(report[["sample_id", "gate_name", "count"]].assign(panel=panel))
        rows.append(_boolean_counts(session, group.sample_id).assign(panel=panel))
    gated = pd.concat(rows).rename(columns={"gate_name": "population", "count": "gated"})
    merged = gated.merge(truth, on=["sample_id", "population"], validate="one_to_one")
    return merged.assign(error=(merged.gated - merged["count"]).abs() / merged["count"])


@pytest.mark.parametrize("panel", list(PANELS))
def test_gated_counts_match_the_truth_for_the_median_sample(gated_trial, panel):
    counts = gated_trial[gated_trial.panel == panel]
    assert counts.sample_id.nunique() >= 3
    median_error = counts.groupby("population").error.median()
    for population in STRICT + tuple(BOOLEANS):
        assert median_error[population] <= TOLERANCE, (panel, population, median_error[population])
    # the gates above them hold too
    upper = ["lymphocytes", "singlets", "live"] + (["leukocytes"] if panel == "tumor" else [])
    for population in upper:
        assert median_error[population] <= TOLERANCE, (panel, population, median_error[population])


@pytest.mark.parametrize("panel", list(PANELS))
@pytest.mark.parametrize("gain", [0.92, 1.08])
def test_gates_hold_event_by_event_under_batch_shifts(tmp_path, strategies, panel, gain):
    simulated = simulate_sample(
        panel=panel,
        n_events=20_000,
        gains={channel: gain for channel, _ in PANELS[panel]},
        dead_rate=0.12,
        doublet_rate=0.06,
        seed=17,
    )
    path = write_fcs(simulated, tmp_path / f"{panel}.fcs")
    session = flowkit.Session(
        gating_strategy=strategies[panel],
        fcs_samples=[flowkit.Sample(str(path), sample_id="s")],
    )
    session.analyze_samples(use_mp=False)
    truth = simulated.truth_membership()
    for population in STRICT + tuple(BOOLEANS):
        if population in BOOLEANS:
            gated = _boolean_membership(session, "s", population)
        else:
            gated = np.asarray(session.get_gate_membership("s", population), dtype=bool)
        wrong = np.count_nonzero(gated != truth[population])
        assert wrong / truth[population].sum() <= TOLERANCE, (population, wrong)


def test_without_compensation_the_gates_fail(tmp_path, strategies):
    # the same events with an identity $SPILLOVER: FlowKit then gates detector values, and
    # spillover (FITC into PE, BV421 into BV510, ...) moves cells across the gates
    simulated = simulate_sample(panel="blood", n_events=20_000, seed=2)
    spill = simulated.spill
    identity = pd.DataFrame(np.eye(len(spill)), index=spill.index, columns=spill.columns)
    path = write_fcs(replace(simulated, spill=identity), tmp_path / "uncompensated.fcs")
    session = flowkit.Session(
        gating_strategy=strategies["blood"],
        fcs_samples=[flowkit.Sample(str(path), sample_id="s")],
    )
    session.analyze_samples(use_mp=False)
    truth = simulated.truth_counts()
    errors = {
        population: abs(session.get_gating_results("s").get_gate_count(population) - count) / count
        for population, count in truth.items()
        if population in STRICT
    }
    assert max(errors.values()) > 0.10, errors


def test_header_comment_names_every_gate(project_root):
    for panel in PANELS:
        text = (Path(project_root) / "resources" / "gating" / f"{panel}.xml").read_text()
        header = text.split("<gating:Gating-ML", 1)[0]
        names = ["lymphocytes", "singlets", "live", "cd3", "cd4", "treg", "cd8", "cd8_ki67", "nk"]
        names += ["cd8_hladr", "cd8_cd38"]
        for name in names + (["leukocytes"] if panel == "tumor" else []):
            assert f"    {name} " in header or f"      {name} " in header, (panel, name)
