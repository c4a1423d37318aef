"""Adaptive gates: declarations checked before any work, densities, placement per sample, gate QC.

Positions are checked against what the data say (the density minimum of a known mixture, a
known population's tail and quantile, a cloud's centre) and counts against the simulator's truth;
bad declarations against their one-line message naming the key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import norm

from cytotrial.config import config_problems
from cytotrial.errors import ConfigError
from cytotrial.gating import (
    GATE_POSITION_COLUMNS,
    adaptive_plan,
    check_adaptive,
    count_events,
    gate_samples,
    load_panel_gating,
)
from cytotrial.gating._density import peak_2d, profile, reference_threshold, valley
from cytotrial.gating._engine import engine_for
from cytotrial.io import load_strategy, read_fcs
from cytotrial.pl import write_gate_positions
from cytotrial.sim import simulate_sample, typical_composition, write_fcs
from cytotrial.tl import build_populations

ROOT = Path(__file__).resolve().parents[1]
BLOOD = ROOT / "resources" / "gating" / "blood.xml"
PANELS = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["panels"]
CD4 = "lymphocytes/singlets/live/cd3/cd4"
#: How far an adaptive threshold may move where the template already fits (logicle units: 5% of
#: the axis, a fifth of a decade), and a 2-D gate's population peak (fraction of the anchor).
POSITION_TOLERANCE = 0.05
PEAK_TOLERANCE = 0.05
DECLARED = {
    "lymphocytes": {"method": "follow", "anchor": [52000, 16000], "move": "scale"},
    "live": {"method": "valley", "window": [0.3, 0.6]},
    "cd3": {"method": "valley", "window": [0.3, 0.55]},
    "cd3_neg": {"method": "valley", "window": [0.3, 0.55]},
    "cd4": [
        {"method": "valley", "dimension": "CD4", "window": [0.3, 0.6]},
        {"method": "valley", "dimension": "CD8", "window": [0.3, 0.6]},
    ],
    "cd8": [
        {"method": "valley", "dimension": "APC-H7-A", "window": [0.3, 0.6]},
        {"method": "valley", "dimension": "CD4", "window": [0.3, 0.6]},
    ],
    "treg": [
        {"method": "valley", "dimension": "CD25", "window": [0.3, 0.6]},
        {"method": "valley", "dimension": "CD127", "window": [0.3, 0.55]},
    ],
    "cd8_ki67": {"method": "valley", "window": [0.28, 0.5]},
    "cd8_hladr": {"method": "valley", "window": [0.25, 0.45]},
    "cd8_cd38": {"method": "valley", "window": [0.3, 0.5]},
    "nk": {"method": "valley", "window": [0.3, 0.55]},
}
POPULATIONS = ["cd3", "cd4", "cd8", "treg", "nk", "cd8_ki67", "cd8_hladr", "cd8_cd38"]


@pytest.fixture(scope="module")
def blood():
    return load_strategy(BLOOD)


@pytest.fixture(scope="module")
def plan(blood):
    return adaptive_plan("blood", blood, DECLARED, panels=PANELS)


def _spec(adaptive: dict) -> dict:
    populations = {name: name for name in POPULATIONS}
    return {"strategy": str(BLOOD), "populations": populations, "adaptive": adaptive}


# ------------------------------------------------------------------------------ declarations


def test_declarations_resolve_against_the_strategy_parents_first(blood, plan):
    assert list(plan.boundaries) == [g.path for g in blood.gates if g.path in plan.boundaries]
    cd4 = plan.of(CD4)
    assert [(b.dimension, b.bound, b.template, b.dims) for b in cd4] == [
        (("CD4",), "min", (0.45,), (0,)),
        (("CD8",), "max", (0.45,), (1,)),
    ]
    [lymphocytes] = plan.of("lymphocytes")
    assert lymphocytes.dims == (0, 1) and lymphocytes.template == (52000.0, 16000.0)
    assert lymphocytes.options["max_shift"] == (30000.0, 17750.0)  # a quarter of the extent
    [cd3] = plan.of("lymphocytes/singlets/live/cd3")
    assert (cd3.bound, cd3.window, cd3.options["min_events"]) == ("min", (0.3, 0.55), 200)
    assert plan.of("lymphocytes/singlets") == []


@pytest.mark.parametrize(
    ("declarations", "key", "words"),
    [
        ({"cd33": {"method": "valley", "window": [0.3, 0.5]}}, "adaptive.cd33", "no gate named"),
        (
            {"cd3": {"method": "valley", "dimension": "CD8", "window": [0.3, 0.5]}},
            "adaptive.cd3.dimension",
            "gate 'cd3' has no dimension 'CD8'",
        ),
        (
            {"cd3": {"method": "valley", "window": [0.3, 1.4]}},
            "adaptive.cd3.window",
            "outside the axis of FITC-A",
        ),
        (
            {"cd3": {"method": "valley", "window": [0.45, 0.6]}},
            "adaptive.cd3.window",
            "does not hold the template's position 0.42",
        ),
        ({"cd3": {"method": "tail"}}, "adaptive.cd3.window", "tail needs a search window"),
        (
            {"cd4": {"method": "valley", "window": [0.3, 0.6]}},
            "adaptive.cd4.dimension",
            "name the one that moves",
        ),
        (
            {"singlets": {"method": "valley", "window": [0.3, 0.6]}},
            "adaptive.singlets.method",
            "is a polygon",
        ),
        ({"cd3": {"method": "follow"}}, "adaptive.cd3.method", "follow moves a 2-D"),
        (
            {"cd4": [{"method": "valley", "dimension": "CD4", "window": [0.3, 0.6]}] * 2},
            "adaptive.cd4.1",
            "declared twice",
        ),
    ],
)
def test_a_declaration_that_does_not_fit_stops_with_one_line_naming_its_key(
    declarations, key, words
):
    with pytest.raises(ConfigError) as raised:
        load_panel_gating("blood", _spec(declarations), panels=PANELS)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"config strategies.blood.{key}:"), message
    assert words in message


def test_an_unknown_method_stops_at_the_schema_check_naming_the_key():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["strategies"]["blood"]["adaptive"] = {"cd3": {"method": "mindensity", "window": [0, 1]}}
    problems = config_problems(config, base=ROOT)
    assert len(problems) == 1
    assert problems[0].startswith("config strategies.blood.adaptive.cd3.method: 'mindensity'")


def test_check_adaptive_lists_every_problem_of_a_config_before_any_file_is_read():
    config = {
        "panels": PANELS,
        "strategies": {
            "blood": _spec({"cd3": {"method": "valley", "window": [0.5, 0.6]}, "nk": {"method": "valley"}}),
            "tumor": {"strategy": "resources/gating/tumor.xml", "populations": {"cd3": "cd3"}},
        },
    }  # fmt: skip
    problems = check_adaptive(config, base=ROOT)
    assert [p.split(":")[0] for p in problems] == [
        "config strategies.blood.adaptive.cd3.window",
        "config strategies.blood.adaptive.nk.window",
    ]
    config["strategies"]["blood"] = _spec(DECLARED)
    assert check_adaptive(config, base=ROOT) == []


def test_flowjo_templates_take_declarations_too(external_data):
    workspace = external_data / "flowjo-workspaces" / "simple_diamond_example"
    strategy = load_strategy(workspace / "test_data_diamond_biex_rect.wsp")
    plan = adaptive_plan(
        "diamond",
        strategy,
        {"upper_right": [
            {"method": "valley", "dimension": "channel_A", "bound": "min", "window": [3300, 3600]},
            {"method": "quantile", "dimension": "channel_B", "bound": "max", "window": [3900, 4050]},
        ]},
    )  # fmt: skip
    bounds = [(b.dimension, b.bound, round(b.template[0], 3)) for b in plan.of("upper_right")]
    assert bounds == [(("channel_A",), "min", 3421.838), (("channel_B",), "max", 3975.479)]


# ------------------------------------------------------------------------------ densities


def _profile(values: np.ndarray, lo: float = -0.2, hi: float = 1.0, bins: int = 512):
    step = (hi - lo) / bins
    index = np.floor((values - lo) / step).astype(int)
    counts = np.bincount(np.clip(index, -1, bins) + 1, minlength=bins + 2).astype(float)
    return profile(counts[1:-1], lo, step, below=counts[0], above=counts[-1])


@pytest.mark.parametrize("positive", [0.2, 0.03])
def test_valley_is_the_density_minimum_between_two_modes(positive):
    rng = np.random.default_rng(1)
    n = 40_000
    k = int(positive * n)
    values = np.concatenate([rng.normal(0.15, 0.05, n - k), rng.normal(0.6, 0.06, k)])
    grid = np.linspace(0.25, 0.5, 2501)
    mixture = (1 - positive) * norm.pdf(grid, 0.15, 0.05) + positive * norm.pdf(grid, 0.6, 0.06)
    expected = grid[np.argmin(mixture)]
    found, reason = valley(_profile(values), (0.25, 0.5))
    assert reason == ""
    assert abs(found - expected) < 0.02, (found, expected)


def test_one_mode_or_a_flat_axis_has_no_valley():
    rng = np.random.default_rng(2)
    found, reason = valley(_profile(rng.normal(0.3, 0.05, 20_000)), (0.25, 0.5))
    assert found is None and reason
    found, reason = valley(_profile(rng.uniform(0.0, 0.8, 200_000)), (0.25, 0.5))
    assert found is None and reason


def test_in_an_empty_gap_the_valley_keeps_the_template_position():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0.15, 0.02, 20_000), rng.normal(0.7, 0.02, 5_000)])
    prof = _profile(values)
    assert valley(prof, (0.3, 0.55), prefer=0.42)[0] == pytest.approx(0.42)
    # a template outside the gap's floor moves onto the floor's nearest edge, inside the window
    low, _ = valley(prof, (0.2, 0.55), prefer=0.2)
    assert 0.2 < low < 0.3


def test_tail_and_quantile_of_an_overlapped_negative_population():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(0.2, 0.03, 90_000), rng.normal(0.33, 0.05, 10_000)])
    prof = _profile(values)
    tail, _ = reference_threshold(prof, (0.2, 0.5), (0.1, 0.25), side="below", sds=3.0)
    assert tail == pytest.approx(0.2 + 3 * 0.03, abs=0.01)
    q, _ = reference_threshold(prof, (0.2, 0.5), (0.1, 0.25), side="below", quantile=0.99)
    assert q == pytest.approx(0.2 + norm.ppf(0.99) * 0.03, abs=0.01)
    # a bright population above the threshold, mirrored from its upper half
    mirrored = _profile(0.8 - values)
    high, _ = reference_threshold(mirrored, (0.3, 0.6), (0.55, 0.7), side="above", sds=3.0)
    assert high == pytest.approx(0.8 - (0.2 + 3 * 0.03), abs=0.01)
    assert reference_threshold(prof, (0.2, 0.25), (0.1, 0.25), side="below", sds=3.0)[0] is None


def test_peak_2d_finds_the_cloud_and_refuses_a_ring():
    rng = np.random.default_rng(5)
    edges = np.linspace(0.0, 100.0, 97)
    cloud = rng.normal([40.0, 60.0], [6.0, 4.0], (20_000, 2))
    counts = np.histogram2d(cloud[:, 0], cloud[:, 1], [edges, edges])[0]
    peak, reason = peak_2d(counts, edges, edges)
    assert reason == "" and peak == pytest.approx((40.0, 60.0), abs=1.5)
    angle = rng.uniform(0, 2 * np.pi, 50_000)
    ring = np.column_stack([50 + 40 * np.cos(angle), 50 + 40 * np.sin(angle)])
    counts = np.histogram2d(ring[:, 0], ring[:, 1], [edges, edges])[0]
    assert peak_2d(counts, edges, edges)[0] is None


# ------------------------------------------------------------------------------ samples

DRIFT = {"FSC-A": 0.86, "SSC-A": 1.14, "FITC-A": 0.7, "APC-H7-A": 1.4, "PE-A": 0.75, "APC-A": 1.3}


def _sample(tmp: Path, name: str, **kwargs) -> tuple[Path, object]:
    sample = simulate_sample(panel="blood", **kwargs)
    return write_fcs(sample, tmp / f"{name}.fcs"), sample


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adaptive")
    clean = [_sample(tmp, f"clean{k}", n_events=20_000, seed=10 + k) for k in range(3)]
    drifted = [
        _sample(tmp, f"drift{k}", n_events=20_000, seed=20 + k, gains=DRIFT) for k in range(3)
    ]
    return {"clean": clean, "drifted": drifted}


def _counts(path: Path, strategy, plan=None) -> tuple[dict[str, int], list]:
    engine = engine_for(read_fcs(path), strategy, adaptive=plan)
    result = engine.run()
    return {p.rsplit("/", 1)[-1]: int(m.sum()) for p, m in result.items()}, engine.positions


def test_where_the_template_fits_adaptive_gates_stay_within_tolerance(files, blood, plan):
    for path, sample in files["clean"]:
        counts, positions = _counts(path, blood, plan)
        truth = sample.truth_counts()
        assert all(p.status == "adapted" for p in positions), [p.reason for p in positions]
        for p in positions:
            if p.bound == "peak":
                assert abs(p.position / p.template - 1) < PEAK_TOLERANCE, p
            else:
                assert abs(p.position - p.template) < POSITION_TOLERANCE, p
        for population in POPULATIONS:
            assert counts[population] == pytest.approx(truth[population], rel=0.01), population


def test_drifted_files_adaptive_gates_recover_the_truth_the_template_misses(files, blood, plan):
    clean_peak = np.mean(
        [[p.position for p in _counts(path, blood, plan)[1] if p.gate == "lymphocytes"]
         for path, _ in files["clean"]],
        axis=0,
    )  # fmt: skip
    static_error, adaptive_error = [], []
    for path, sample in files["drifted"]:
        truth = sample.truth_counts()
        static, _ = _counts(path, blood)
        adapted, positions = _counts(path, blood, plan)
        for population in POPULATIONS:
            static_error.append(abs(static[population] / truth[population] - 1))
            adaptive_error.append(abs(adapted[population] / truth[population] - 1))
        peak = [p.position for p in positions if p.gate == "lymphocytes"]
        assert peak / clean_peak == pytest.approx([DRIFT["FSC-A"], DRIFT["SSC-A"]], abs=0.02)
    assert max(static_error) > 0.05  # the lymphocyte gate loses cells of every population
    assert max(adaptive_error) < 0.02, adaptive_error


def test_a_dimension_that_cannot_be_estimated_falls_back_and_flags(tmp_path, blood, plan):
    # too few events for any boundary: every gate keeps its template, the counts are the template's
    small, _ = _sample(tmp_path, "small", n_events=150, seed=3)
    counts, positions = _counts(small, blood, plan)
    assert positions and all(p.status == "fallback" for p in positions)
    assert all(p.position == p.template and "too few parent events" in p.reason for p in positions)
    assert counts == _counts(small, blood)[0]
    # one mode: no Ki67+ CD8 T cells at all
    composition = typical_composition("blood")
    for cell_type in ("cd8_ki67pos", "cd8_act_ki67pos"):
        composition[cell_type] = 0.0
    flat, _ = _sample(tmp_path, "flat", n_events=20_000, seed=4, composition=composition)
    _, positions = _counts(flat, blood, plan)
    [ki67] = [p for p in positions if p.gate == "cd8_ki67"]
    assert (ki67.status, ki67.position) == ("fallback", 0.38)
    assert all(p.status == "adapted" for p in positions if p.gate != "cd8_ki67")


def test_gate_samples_returns_positions_and_the_aggregation_flags(tmp_path, files, blood):
    composition = typical_composition("blood")
    composition["cd8_ki67pos"] = composition["cd8_act_ki67pos"] = 0.0
    flat, _ = _sample(tmp_path, "flat", n_events=20_000, seed=4, composition=composition)
    gating = load_panel_gating("blood", _spec(DECLARED), panels=PANELS)
    rows = [("clean", files["clean"][0][0]), ("flat", flat)]
    sheet = pd.DataFrame(
        {"sample_id": [r[0] for r in rows], "panel": "blood", "fcs": [str(r[1]) for r in rows]}
    )
    batch = gate_samples(sheet, {"blood": gating})
    gates = batch.gates
    assert list(gates.columns) == GATE_POSITION_COLUMNS
    assert len(gates) == 2 * (2 + 13)  # follow: two coordinates, thirteen thresholds
    fallback = gates[gates["status"] == "fallback"]
    assert fallback[["sample_id", "gate"]].values.tolist() == [["flat", "cd8_ki67"]]
    meta = sheet.set_index("sample_id").assign(batch="B01")
    model = {name: {"label": name} for name in gating.order}
    adata = build_populations(
        batch.counts, meta, model=model, panels=["blood"], ratios={}, frequencies=[],
        absolute_reference="", min_events={}, gate_positions=gates,
    )  # fmt: skip
    assert adata.obs.loc["flat", "qc_flags"] == "adaptive_fallback:cd8_ki67"
    assert adata.obs.loc["clean", "qc_flags"] == ""
    adata.write_h5ad(tmp_path / "p.h5ad")  # no "/" in an h5ad key (warnings are errors here)
    wide = adata.obsm["gate_positions"]
    assert wide.loc["flat", f"{CD4}|CD4|min".replace("/", ">")] == pytest.approx(
        gates.query("sample_id == 'flat' and gate == 'cd4' and dimension == 'CD4'")[
            "position"
        ].item()
    )


def test_a_quadrant_gate_moves_its_dividers_in_all_its_quadrants(external_data):
    folder = external_data / "gatingml2-compliance"
    strategy = load_strategy(folder / "gml" / "gml_quadrant1_gate.xml")
    data = read_fcs(folder / "data1.fcs")
    first = strategy.gates[0]
    plan = adaptive_plan(
        "q", strategy, {first.path: {"method": "valley", "dimension": "FL2-H", "window": [5, 30]}}
    )  # fmt: skip
    engine = engine_for(data, strategy, adaptive=plan)
    result = engine.run()
    [position] = engine.positions
    assert position.status == "adapted" and position.position != position.template
    fl2 = data.events[:, data.channels.index("FL2-H")]
    fl4 = data.events[:, data.channels.index("FL4-H")]
    high2, high4 = fl2 >= position.position, fl4 >= 14.22417
    expected = {"FL2P-FL4P": high2 & high4, "FL2N-FL4P": ~high2 & high4,
                "FL2N-FL4N": ~high2 & ~high4, "FL2P-FL4N": high2 & ~high4}  # fmt: skip
    for gate in strategy.gates:
        assert np.array_equal(result[gate.path], expected[gate.name]), gate.name


def test_flowjo_examples_keep_flowjo_counts_where_the_template_is_right(external_data):
    folder = external_data / "flowjo-workspaces"
    quad = load_strategy(folder / "simple_diamond_example" / "simple_diamond_example_quad_gate.wsp")
    data = read_fcs(folder / "simple_diamond_example" / "test_data_diamond_01.fcs")
    declarations = {
        gate.name: [
            {"method": "valley", "dimension": "channel_A", "window": [0.15, 0.23]},
            {"method": "valley", "dimension": "channel_B", "window": [0.15, 0.23]},
        ]
        for gate in quad.gates
    }
    plan = adaptive_plan("diamond", quad, declarations)
    engine = engine_for(data, quad, adaptive=plan)
    counts = {g.name.split(":")[0]: int(m.sum()) for g, m in zip(quad.gates, engine.run().values())}
    assert counts == {"Q1": 49671, "Q2": 50596, "Q3": 50330, "Q4": 49403}  # FlowJo's own
    # uniform data has no valley: every boundary keeps the template (moves by 0) and says why
    assert {(p.status, p.position == p.template) for p in engine.positions} == {("fallback", True)}
    line = folder / "simple_line_example"
    ellipse = load_strategy(line / "single_ellipse_51_events.wsp")
    plan = adaptive_plan("line", ellipse, {"ellipse1": {"method": "follow"}})
    table = count_events(read_fcs(line / "data_set_simple_line_100.fcs"), ellipse, adaptive=plan)
    assert table["count"].tolist() == [51]  # FlowJo's count: 100 events are too few to move


# ------------------------------------------------------------------------------ gate QC


def _positions(batches: dict[str, list[float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, sheet = [], []
    for batch, values in batches.items():
        for k, value in enumerate(values):
            sample_id = f"{batch}_{k}"
            sheet.append({"sample_id": sample_id, "panel": "blood", "batch": batch})
            rows.append(
                {"sample_id": sample_id, "gate": "cd3", "gate_path": "a/cd3", "dimension": "CD3",
                 "bound": "min", "method": "valley", "template": 0.42, "position": value,
                 "lo": 0.3, "hi": 0.55, "status": "adapted", "reason": "", "parent_events": 9000}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=GATE_POSITION_COLUMNS), pd.DataFrame(sheet).set_index(
        "sample_id"
    )


def test_gate_qc_flags_outlier_samples_and_outlier_batches(tmp_path):
    from cytotrial.tl._gates import gate_flags, gate_positions_table

    rng = np.random.default_rng(6)
    shifts = rng.normal(0, 0.01, 5)  # batches drift a little, samples within a batch less
    batches = {
        f"B{b:02d}": list(0.42 + shifts[b - 1] + rng.normal(0, 0.004, 8)) for b in range(1, 6)
    }
    batches["B03"][2] = 0.52  # one sample far from its batch
    batches["B06"] = list(0.52 + rng.normal(0, 0.004, 8))  # one batch far from the others
    positions, sheet = _positions(batches)
    table = gate_positions_table(positions, sheet)
    flagged = set(table.loc[table["outlier"], "sample_id"])
    assert flagged == {"B03_2"} | {f"B06_{k}" for k in range(8)}
    flags = gate_flags(table, list(sheet.index))
    assert flags["B03_2"] == "gate_outlier:cd3" and flags["B01_0"] == ""
    assert table["acquisition_order"].tolist() == sorted(table["acquisition_order"])
    png, pdf = write_gate_positions(table, tmp_path / "gate_positions")
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    empty, _ = write_gate_positions(table.iloc[:0], tmp_path / "none")
    assert empty.stat().st_size > 1_000


def test_a_conditional_threshold_reads_the_events_inside_the_gates_other_bounds(files, blood):
    from cytotrial.gating import transformed_events

    declarations = {
        "treg": [
            {"method": "valley", "dimension": "CD127", "window": [0.25, 0.55]},
            {"method": "valley", "dimension": "CD25", "window": [0.3, 0.6], "conditional": True},
        ]
    }
    plan = adaptive_plan("blood", blood, declarations, panels=PANELS)
    path, _ = files["drifted"][0]
    data = read_fcs(path)
    engine = engine_for(data, blood, adaptive=plan)
    result = engine.run()
    cd127, cd25 = engine.positions
    # by hand: the CD25 density of the CD4 T cells below the CD127 threshold placed first
    cd4 = result[CD4]
    values = transformed_events(data, blood, ["PE-A", "BV421-A"], events=cd4)
    inside = values[values[:, 1] < cd127.position, 0]
    expected, _ = valley(_profile(inside, -0.82, 1.04, 256), (0.3, 0.6), prefer=0.43)
    assert cd25.status == "adapted" and cd25.position == pytest.approx(expected, abs=0.02)
    # the same file gives the same positions, bit for bit
    again = engine_for(read_fcs(path), blood, adaptive=plan)
    again.run()
    assert again.positions == engine.positions


def test_flowkit_with_a_samples_placed_gates_counts_what_the_engine_counts(files, blood, plan):
    from dataclasses import replace

    from cytotrial.gating import flowkit_session_counts, placed_gating_strategy

    path, _ = files["drifted"][0]
    engine = engine_for(read_fcs(path), blood, adaptive=plan)
    ours = {p: int(m.sum()) for p, m in engine.run().items()}
    assert any(p.position != p.template for p in engine.positions)
    placed = replace(blood, gating_strategy=placed_gating_strategy(blood, engine.placements))
    reference = flowkit_session_counts(path, placed).set_index("gate_path")["count"]
    assert reference.to_dict() == ours
    # the template itself is untouched
    template = count_events(read_fcs(path), blood).set_index("gate_path")["count"]
    assert flowkit_session_counts(path, blood).set_index("gate_path")["count"].equals(template)
