"""The simulator's drift mode.

Gains, offsets and spreads as configured, a true $SPILLOVER, continuous markers that stay
gateable, acquisition anomalies with per-event truth, a trial's instruments, lots and runs,
determinism, and the clean mode left alone.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cytotrial.cli import main
from cytotrial.config import check_config, defaults, load_schema, population_model
from cytotrial.errors import ConfigError, SampleSheetError
from cytotrial.io import read_fcs
from cytotrial.sim import (
    ACQUISITION_COLUMNS,
    ANOMALY_KINDS,
    CELL_TYPES,
    DRIFT_COLUMNS,
    POPULATIONS,
    Anomaly,
    Drift,
    EventTruth,
    SampleDrift,
    simulate_sample,
    simulate_trial,
    truth_events,
    write_fcs,
)

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ("cd3", "cd4", "cd8", "treg", "nk", "cd8_ki67", "cd8_activated")
FLUORESCENCE_BLOOD = [
    "FITC-A", "PE-A", "PE-CF594-A", "PerCP-Cy5-5-A", "PE-Cy7-A", "APC-A", "APC-H7-A", "BV421-A",
    "BV510-A", "BV605-A", "BV711-A",
]  # fmt: skip
STILL = SampleDrift(continuous=False)  # the drift sampler with nothing drifting


def _trees(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _compensated(path: Path) -> tuple[np.ndarray, list[str]]:
    """The file's events with its own $SPILLOVER applied to the fluorescence channels."""
    data = read_fcs(path)
    events = np.array(data.events, dtype=np.float64)
    columns = [data.channels.index(c) for c in data.spill.columns]
    events[:, columns] = events[:, columns] @ np.linalg.inv(data.spill.to_numpy())
    return events, data.channels


def _column(sample, channel: str) -> np.ndarray:
    return sample.unmixed[:, sample.channels.index(channel)]


def _types(sample, *names: str) -> np.ndarray:
    return np.isin(sample.cell_type, [CELL_TYPES.index(n) for n in names])


# --- sizes and their validation --------------------------------------------------------------


def test_drift_defaults_are_the_config_schemas_defaults():
    schema = load_schema("config")["properties"]["demo"]["properties"]["drift"]
    assert schema["default"] is True and defaults("demo")["drift"] is True
    sizes = schema["properties"]
    assert list(sizes) == [f.name for f in fields(Drift)]
    for f in fields(Drift):
        default = getattr(Drift(), f.name)
        assert sizes[f.name]["default"] == (
            list(default) if isinstance(default, tuple) else default
        )


def test_config_sizes_reach_the_simulator_and_bad_ones_stop_with_one_line(tmp_path):
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw["demo"]["drift"] = {"scatter_gain": 0.2, "anomaly_duration": [0.1, 0.2]}
    sizes = check_config(raw, base=ROOT)["demo"]["drift"]
    simulate_trial(tmp_path, patients_per_arm=1, events=300, tumor_events=300, drift=sizes)
    assert "site" in pd.read_csv(tmp_path / "samples.tsv", sep="\t").columns
    raw["demo"]["drift"] = {"scatter_gains": 0.2}
    with pytest.raises(ConfigError, match=r"demo\.drift") as error:
        check_config(raw, base=ROOT)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        ({"scatter_gain": -0.1}, "drift.scatter_gain"),
        ({"reagent_gain": "lots"}, "drift.reagent_gain"),
        ({"anomaly_duration": (0.2, 0.1)}, "drift.anomaly_duration"),
        ({"anomaly_duration": (0.0, 0.1)}, "drift.anomaly_duration"),
        ({"instruments_per_site": 0}, "drift.instruments_per_site"),
        ({"continuous": "yes"}, "drift.continuous"),
        ({"clog_depth": 0.5}, "unknown size 'clog_depth'"),
    ],
)
def test_bad_drift_sizes_raise_one_line_before_any_file(tmp_path, sizes, named):
    with pytest.raises(ConfigError) as error:
        simulate_trial(tmp_path / "t", patients_per_arm=1, events=100, drift=sizes)
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "t").exists()


def test_bad_sample_drift_and_anomaly_raise_config_errors():
    with pytest.raises(ConfigError, match="'PE-B'"):
        simulate_sample(n_events=100, drift=SampleDrift(gain={"PE-B": 1.2}))
    with pytest.raises(ConfigError, match="positive factor"):
        SampleDrift(gain={"PE-A": 0.0})
    with pytest.raises(ConfigError, match="within the acquisition"):
        Anomaly("burst", start=0.95, duration=0.1, rate=3.0)
    with pytest.raises(ConfigError, match="rate"):
        Anomaly("gap", start=0.1, duration=0.1, rate=-1.0)
    with pytest.raises(ConfigError, match="drift must be"):
        simulate_sample(n_events=100, drift=3)


# --- one sample: what each drift does ---------------------------------------------------------


def test_gains_offsets_and_spreads_act_as_configured_and_measure_so_from_the_file(tmp_path):
    drift = SampleDrift(
        gain={"FSC-A": 0.85, "SSC-A": 1.2, "APC-H7-A": 0.7, "FITC-A": 1.3},
        offset={"BV421-A": 200.0},
        spread={"PE-Cy7-A": 1.5},
        continuous=False,
    )
    base = simulate_sample(n_events=30_000, drift=STILL, dead_rate=0.0, doublet_rate=0.0, seed=4)
    moved = simulate_sample(n_events=30_000, drift=drift, dead_rate=0.0, doublet_rate=0.0, seed=4)
    np.testing.assert_array_equal(base.cell_type, moved.cell_type)  # the same cells
    # scatter: every event's FSC-A, FSC-H and SSC-A times the gain (no clipping down there)
    for channel, gain in (("FSC-A", 0.85), ("FSC-H", 0.85), ("SSC-A", 1.2)):
        small = _column(base, channel) * gain < 200_000
        np.testing.assert_allclose(
            _column(moved, channel)[small], _column(base, channel)[small] * gain, rtol=1e-6
        )
    # fluorescence, measured as an analyst would: the file compensated with its own $SPILLOVER
    events = {}
    for name, sample in (("base", base), ("moved", moved)):
        events[name], channels = _compensated(write_fcs(sample, tmp_path / f"{name}.fcs"))

    def median(name, channel, mask):
        return float(np.median(events[name][mask, channels.index(channel)]))

    cd8_t = _types(base, "cd8_ki67neg")
    t_cells = _types(base, "cd4_conv", "cd8_ki67neg")
    assert median("moved", "APC-H7-A", cd8_t) / median("base", "APC-H7-A", cd8_t) == pytest.approx(
        0.7, abs=0.01
    )
    assert median("moved", "FITC-A", t_cells) / median("base", "FITC-A", t_cells) == pytest.approx(
        1.3, abs=0.015
    )
    # the offset moves negatives and positives alike
    b_cells = _types(base, "b")  # CD127-
    for mask in (b_cells, t_cells):
        shift = median("moved", "BV421-A", mask) - median("base", "BV421-A", mask)
        assert shift == pytest.approx(200.0, abs=6.0)
    # the spread: NK cells' CD56 cloud is 1.5 times as wide on a log scale
    nk = _types(base, "nk")
    widths = [
        np.std(np.log(np.clip(events[n][nk, channels.index("PE-Cy7-A")], 1.0, None)))
        for n in ("base", "moved")
    ]
    assert widths[1] / widths[0] == pytest.approx(1.5, rel=0.06)
    # channels without drift stay put
    cd4 = _types(base, "cd4_conv")
    assert median("moved", "PerCP-Cy5-5-A", cd4) == pytest.approx(
        median("base", "PerCP-Cy5-5-A", cd4), rel=0.01
    )


@pytest.mark.parametrize("panel", ["blood", "tumor"])
def test_the_files_spillover_stays_true_under_every_drift(tmp_path, panel):
    anomaly = Anomaly(
        "clog", start=0.3, duration=0.15, rate=0.5, shift={"FSC-A": 0.6, "APC-H7-A": 0.7}
    )
    drifted = simulate_sample(
        panel=panel,
        n_events=20_000,
        drift=SampleDrift(
            gain={"PE-A": 0.6, "BV711-A": 1.4, "SSC-A": 1.1},
            offset={"FITC-A": -40.0, "PE-CF594-A": 60.0},
            spread={"APC-A": 1.2},
            anomaly=anomaly,
        ),
        seed=9,
    )
    events, channels = _compensated(write_fcs(drifted, tmp_path / "drifted.fcs"))
    fluorescence = [i for i, marker in enumerate(drifted.markers) if marker]
    unmixed = drifted.unmixed[:, fluorescence].astype(np.float64)
    np.testing.assert_allclose(events[:, fluorescence], unmixed, rtol=1e-4, atol=0.5)
    # the anomaly's shift is part of the unmixed signal too: CD8 of the clog's events is dimmer
    cd8 = channels.index("APC-H7-A")
    cd8_t = _types(drifted, "cd8_ki67neg")
    inside = np.median(events[drifted.anomalous & cd8_t, cd8])
    outside = np.median(events[~drifted.anomalous & cd8_t, cd8])
    assert inside / outside == pytest.approx(0.7, abs=0.06)


def test_a_drift_of_sizes_draws_a_files_gains_from_its_seed_within_bounds():
    sizes = Drift(scatter_gain=0.2, reagent_gain=0.3, detector_gain=0.1, run_gain=0.1)
    first = simulate_sample(n_events=2000, drift=sizes, seed=3)
    again = simulate_sample(n_events=2000, drift=sizes, seed=3)
    other = simulate_sample(n_events=2000, drift=sizes, seed=4)
    assert first.drift == again.drift and first.drift != other.drift
    np.testing.assert_array_equal(first.events, again.events)
    for channel in ("FSC-A", "SSC-A"):
        assert 1 / 1.2 <= first.drift.gain[channel] <= 1.2
    bound = 1.3 * 1.1 * 1.1
    assert all(1 / bound <= first.drift.gain[c] <= bound for c in FLUORESCENCE_BLOOD)
    assert all(abs(first.drift.offset[c]) <= 50 for c in FLUORESCENCE_BLOOD)
    assert (
        simulate_sample(n_events=2000, drift=True, seed=3).drift
        == simulate_sample(n_events=2000, drift=Drift(), seed=3).drift
    )


# --- continuous markers: valleys remain, the fixed template at nominal is right ----------------


@pytest.fixture(scope="module")
def blood_gating():
    from cytotrial.gating import load_panel_gating

    config = check_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()), base=ROOT)
    model = population_model(config)
    spec = config["strategies"]["blood"]
    return config, load_panel_gating("blood", spec, model=model, base=ROOT)


def _gate_file(path: Path, config, gating, *, undo: SampleDrift | None = None):
    """Population masks of the fixed template; with ``undo``, on events with the drift undone."""
    from cytotrial.gating import gate_events, population_masks, read_for_gating

    data, channel_map = read_for_gating(path, gating, panels=config["panels"])
    if undo is not None:
        events = np.array(data.events, dtype=np.float64)
        spill = data.spill.to_numpy()
        columns = [data.channels.index(c) for c in data.spill.columns]
        unmixed = events[:, columns] @ np.linalg.inv(spill)
        for j, channel in enumerate(data.spill.columns):
            unmixed[:, j] -= undo.offset.get(channel, 0.0)
            unmixed[:, j] /= undo.gain.get(channel, 1.0)
        events[:, columns] = unmixed @ spill
        for channel, detector in (("FSC-A", "FSC-A"), ("FSC-H", "FSC-A"), ("SSC-A", "SSC-A")):
            events[:, data.channels.index(channel)] /= undo.gain.get(detector, 1.0)
        data.events = events
    return population_masks(gating, gate_events(data, gating.strategy, channel_map=channel_map))


def _logicle(values: np.ndarray) -> np.ndarray:
    """The demo strategies' logicle (T=262144, W=0.5, M=4.5, A=0), by FlowKit."""
    from flowkit import transforms

    return transforms.LogicleTransform(262144, 0.5, 4.5, 0).apply(values.reshape(-1, 1)).ravel()


@pytest.fixture(scope="module")
def nominal(tmp_path_factory):
    """A large sample of continuous expression at nominal intensities: truth, compensated file."""
    sample = simulate_sample(n_events=200_000, drift=SampleDrift(), dead_rate=0.05, seed=21)
    membership = sample.truth_membership()
    membership["live_cd3_negative"] = membership["live"] & ~membership["cd3"]
    path = write_fcs(sample, tmp_path_factory.mktemp("nominal") / "nominal.fcs")
    return (membership, *_compensated(path))


@pytest.mark.parametrize(
    ("channel", "threshold", "parent", "positive", "tolerance"),
    [
        ("APC-A", 0.38, "cd8", "cd8_ki67", 0.01),
        ("BV711-A", 0.33, "cd8", "cd8_hladr", 0.01),
        # CD38: resting T cells are CD38 dim, so its valley is shallow (as in real data)
        ("PE-CF594-A", 0.41, "cd8", "cd8_cd38", 0.015),
        ("PE-Cy7-A", 0.42, "live_cd3_negative", "nk", 0.01),
        ("FITC-A", 0.42, "live", "cd3", 0.01),
    ],
)
def test_continuous_markers_keep_a_valley_near_the_template_threshold(
    nominal, channel, threshold, parent, positive, tolerance
):
    membership, events, channels = nominal
    x = _logicle(events[membership[parent], channels.index(channel)])
    is_positive = membership[positive][membership[parent]]
    # continuous: the positive cloud reaches down, over more than a decade (CD3: a compact one)
    low, high = np.percentile(events[membership[positive], channels.index(channel)], [2, 98])
    assert (high / max(low, 1.0) > 10) == (channel != "FITC-A")
    # a density valley lies within 0.12 of the template's threshold ...
    edges = np.arange(threshold - 0.3, threshold + 0.3, 0.005)
    density = np.convolve(np.histogram(x, edges)[0], np.ones(7) / 7, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    window = np.flatnonzero(np.abs(centres - threshold) <= 0.12)
    minima = [i for i in window if density[i] <= density[i - 1] and density[i] <= density[i + 1]]
    assert minima, (channel, "no valley")
    valley = centres[min(minima, key=lambda i: density[i])]
    # ... where a threshold misclassifies little of the positive population
    wrong = np.sum(is_positive != (x >= valley)) / is_positive.sum()
    assert wrong <= tolerance, (channel, valley, wrong)
    # and the template's own threshold is right at nominal intensities
    assert np.sum(is_positive != (x >= threshold)) / is_positive.sum() <= tolerance + 0.005


def test_tregs_are_the_bright_tail_of_a_continuous_cd25_and_cd127_low():
    sample = simulate_sample(n_events=100_000, drift=SampleDrift(), seed=2)
    cd25, cd127 = _column(sample, "PE-A"), _column(sample, "BV421-A")
    conventional, tregs = _types(sample, "cd4_conv"), _types(sample, "treg")
    # conventional CD4 T cells: CD25 from none to dim, a continuum reaching the Tregs' range
    assert np.percentile(cd25[conventional], 99.5) > np.percentile(cd25[tregs], 1)
    assert np.median(cd25[tregs]) > 15 * np.median(cd25[conventional])
    # CD127: continuous, low on Tregs, with a CD127-low tail among conventional cells
    assert np.median(cd127[conventional]) > 10 * np.median(cd127[tregs])
    assert 0.02 < np.mean(cd127[conventional] < 600) < 0.15
    # NK cells: CD56 dim (most) and bright
    cd56 = _column(sample, "PE-Cy7-A")[_types(sample, "nk")]
    assert 0.05 < np.mean(cd56 > 10_000) < 0.2 and np.median(cd56) < 5000


def test_the_issues_scatter_drift_defeats_the_fixed_lymphocyte_gate_not_the_moved_one(
    tmp_path, blood_gating
):
    config, gating = blood_gating
    drift = SampleDrift(gain={"FSC-A": 0.86, "SSC-A": 1.14})
    sample = simulate_sample(n_events=40_000, drift=drift, seed=12)
    path = write_fcs(sample, tmp_path / "batch.fcs")
    truth = sample.truth_counts()
    fixed = _gate_file(path, config, gating)
    moved = _gate_file(path, config, gating, undo=drift)
    for population in ("lymphocytes", *ACCEPTANCE):
        fixed_error = (fixed[population].sum() - truth[population]) / truth[population]
        moved_error = abs(moved[population].sum() - truth[population]) / truth[population]
        assert fixed_error < -0.08, (population, fixed_error)
        assert moved_error < 0.03, (population, moved_error)


@pytest.fixture(scope="module")
def drift_trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drift_trial")
    simulate_trial(out, patients_per_arm=4, events=20_000, tumor_events=10_000, seed=7, drift=True)
    return out


def test_fixed_gates_miss_under_drift_and_gates_moved_by_the_true_drift_recover_the_truth(
    drift_trial, blood_gating
):
    config, gating = blood_gating
    sheet = pd.read_csv(drift_trial / "samples.tsv", sep="\t")
    table = pd.read_csv(drift_trial / "truth" / "drift.tsv", sep="\t")
    rows = []
    for row in sheet[sheet.panel == "blood"].itertuples():
        truth = truth_events(drift_trial, row.sample_id)
        normal = ~truth.anomalous
        counts = truth.counts()
        own = table[table.sample_id == row.sample_id].set_index("channel")
        undo = SampleDrift(gain=own["gain"].to_dict(), offset=own["offset"].to_dict())
        path = drift_trial / row.fcs
        fixed = _gate_file(path, config, gating)
        moved = _gate_file(path, config, gating, undo=undo)
        for population in ACCEPTANCE:
            if counts[population] >= 50:
                rows.append(
                    {
                        "population": population,
                        "fixed": abs((fixed[population] & normal).sum() / counts[population] - 1),
                        "moved": abs((moved[population] & normal).sum() / counts[population] - 1),
                    }
                )
    errors = pd.DataFrame(rows)
    assert len(errors) > 100
    # gates placed for each file recover the truth: its valleys are where the drift moved them
    assert errors["moved"].median() <= 0.01 and errors["moved"].quantile(0.95) <= 0.04
    # the fixed template does not
    assert errors["fixed"].quantile(0.95) >= 3 * errors["moved"].quantile(0.95)
    assert errors["fixed"].max() >= 0.10


# --- acquisition anomalies ---------------------------------------------------------------------


def _time(sample) -> np.ndarray:
    return _column(sample, "Time").astype(np.float64)


@pytest.mark.parametrize(
    ("kind", "rate", "shift"),
    [
        ("burst", 3.0, {}),
        ("gap", 0.05, {}),
        ("clog", 0.4, {"FSC-A": 0.6, "SSC-A": 0.65, "FITC-A": 0.6, "APC-H7-A": 0.62}),
        ("shift", 1.0, {"SSC-A": 1.5, "PE-A": 1.5, "BV421-A": 0.7}),
    ],
)
def test_anomalous_events_are_exactly_those_of_the_stretch(kind, rate, shift):
    anomaly = Anomaly(kind, start=0.4, duration=0.12, rate=rate, shift=shift)
    n = 40_000
    sample = simulate_sample(n_events=n, drift=SampleDrift(anomaly=anomaly), seed=5)
    time = _time(sample)
    assert np.all(np.diff(time) >= 0)  # acquisition order
    start, stop = (s / 0.01 for s in sample.anomaly_seconds)  # $TIMESTEP 0.01 s
    anomalous = sample.anomalous
    np.testing.assert_array_equal(anomalous, (time >= start) & (time < stop))
    # the stretch lasts its share of the acquisition, whatever its rate
    assert (stop - start) / time[-1] == pytest.approx(0.12, abs=0.01)
    assert start / time[-1] == pytest.approx(0.4, abs=0.02)
    expected = n * rate * 0.12 / (1 + (rate - 1) * 0.12)
    assert anomalous.sum() == pytest.approx(expected, abs=4 * np.sqrt(expected))
    # the same cells as without the anomaly; only time and the stated channels differ
    normal = simulate_sample(n_events=n, drift=SampleDrift(), seed=5)
    np.testing.assert_array_equal(sample.cell_type, normal.cell_type)
    for j, channel in enumerate(sample.channels):
        if channel == "Time":
            continue
        factor = shift.get("FSC-A" if channel == "FSC-H" else channel, 1.0)
        unclipped = (sample.unmixed[:, j] < 262_000) & (normal.unmixed[:, j] < 262_000)
        np.testing.assert_allclose(
            sample.unmixed[anomalous & unclipped, j],
            normal.unmixed[anomalous & unclipped, j] * factor,
            rtol=1e-5,
            err_msg=channel,
        )
        np.testing.assert_array_equal(sample.unmixed[~anomalous, j], normal.unmixed[~anomalous, j])
    # the stretch's events are ordinary cells: the same mix of types as the others
    if anomalous.sum() > 1000:
        inside = np.bincount(sample.cell_type[anomalous], minlength=len(CELL_TYPES))
        outside = np.bincount(sample.cell_type[~anomalous], minlength=len(CELL_TYPES))
        assert np.allclose(inside / inside.sum(), outside / outside.sum(), atol=0.015)
    # the truth: anomalous events belong to no population, unless asked for
    assert anomalous.any()
    assert not any(mask[anomalous].any() for mask in sample.truth_membership().values())
    assert sample.truth_counts(include_anomalous=True)["live"] > sample.truth_counts()["live"]


def _binned_outliers(sample, *, bins: int = 200) -> np.ndarray:
    """Events of time bins whose event rate or FSC-A or SSC-A median is a robust outlier."""
    time = _time(sample)
    edges = np.linspace(time[0], time[-1] + 1e-9, bins + 1)
    which = np.clip(np.searchsorted(edges, time, side="right") - 1, 0, bins - 1)
    starts = np.searchsorted(which, np.arange(bins))[1:]  # events are in time order
    statistics = [np.bincount(which, minlength=bins).astype(float)]
    for channel in ("FSC-A", "SSC-A"):
        per_bin = np.split(_column(sample, channel), starts)
        statistics.append(np.array([np.median(v) if v.size else 0.0 for v in per_bin]))
    bad = np.zeros(bins, dtype=bool)
    for statistic in statistics:
        centre = np.median(statistic)
        mad = 1.4826 * np.median(np.abs(statistic - centre))
        bad |= np.abs(statistic - centre) > 5 * mad
    return bad[which]


def test_anomalies_are_found_by_time_binned_rate_and_median_statistics():
    drift = Drift(anomaly_fraction=1.0)
    found: dict[str, list[tuple[float, float]]] = {}
    for seed in range(16):
        sample = simulate_sample(n_events=50_000, drift=drift, seed=seed)
        flagged = _binned_outliers(sample)
        recall = float(np.mean(flagged[sample.anomalous]))
        false_alarm = float(np.mean(flagged[~sample.anomalous]))
        found.setdefault(sample.drift.anomaly.kind, []).append((recall, false_alarm))
    assert set(found) == set(ANOMALY_KINDS)
    for kind, results in found.items():
        for recall, false_alarm in results:
            assert recall >= 0.9 and false_alarm <= 0.02, (kind, recall, false_alarm)


def test_no_file_flags_its_anomaly(tmp_path):
    sample = simulate_sample(
        n_events=5000, drift=SampleDrift(anomaly=Anomaly("burst", 0.2, 0.1, rate=3.0)), seed=1
    )
    path = write_fcs(sample, tmp_path / "burst.fcs")
    data = read_fcs(path)
    assert data.channels == sample.channels  # no extra channel
    text = " ".join(f"{k} {v}" for k, v in data.keywords.items()).lower()
    assert "anomal" not in text and "burst" not in text


# --- the trial: instruments, lots, runs and anomalies -------------------------------------------


def test_a_drift_trial_is_the_clean_trials_design_with_sites_and_instruments(tmp_path, drift_trial):
    clean = tmp_path / "clean"
    simulate_trial(clean, patients_per_arm=4, events=20_000, tumor_events=10_000, seed=7)
    drift_sheet = pd.read_csv(drift_trial / "samples.tsv", sep="\t")
    clean_sheet = pd.read_csv(clean / "samples.tsv", sep="\t")
    at = list(clean_sheet.columns).index("batch") + 1
    assert list(drift_sheet.columns) == [
        *clean_sheet.columns[:at], "site", "instrument", *clean_sheet.columns[at:],
    ]  # fmt: skip
    pd.testing.assert_frame_equal(drift_sheet[clean_sheet.columns], clean_sheet)
    assert (clean / "patients.tsv").read_bytes() == (drift_trial / "patients.tsv").read_bytes()
    # the same patients' samples, but different events
    for fcs in clean_sheet.fcs[:3]:
        assert (clean / fcs).read_bytes() != (drift_trial / fcs).read_bytes()
    assert drift_sheet.site.str.fullmatch(r"S\d").all()
    assert all(i.startswith(s + "-") for s, i in zip(drift_sheet.site, drift_sheet.instrument))
    acquisition = pd.read_csv(drift_trial / "truth" / "acquisition.tsv", sep="\t")
    pd.testing.assert_series_equal(acquisition.site, drift_sheet.site)
    pd.testing.assert_series_equal(acquisition.instrument, drift_sheet.instrument)


def test_files_of_one_run_share_their_drift_and_runs_differ(drift_trial):
    sheet = pd.read_csv(drift_trial / "samples.tsv", sep="\t")
    table = pd.read_csv(drift_trial / "truth" / "drift.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == DRIFT_COLUMNS
    wide = table.merge(sheet[["sample_id", "batch", "site", "instrument"]]).pivot_table(
        index=["batch", "site", "instrument", "sample_id"], columns="channel", values="gain"
    )
    per_run = wide.groupby(level=["batch", "site"])
    assert (per_run.nunique(dropna=True) <= 1).all().all()  # one gain per run and channel
    runs = per_run.first()
    assert len(runs) >= 4 and runs["FSC-A"].nunique() == len(runs)
    assert runs["FSC-A"].between(1 / 1.3, 1.3).all()
    np.testing.assert_array_equal(wide["FSC-H"], wide["FSC-A"])  # FSC-A and FSC-H together
    assert (table.loc[table.channel == "PE-A", "offset"].abs() <= 50).all()
    assert (table.loc[table.channel.isin(["FSC-A", "SSC-A"]), "offset"] == 0).all()


def test_the_instruments_serial_number_is_in_the_file(drift_trial):
    sheet = pd.read_csv(drift_trial / "samples.tsv", sep="\t")
    serial = {}
    for row in sheet.itertuples():
        serial.setdefault(row.instrument, set()).add(
            read_fcs(drift_trial / row.fcs).keywords["cytsn"]
        )
    assert all(len(numbers) == 1 for numbers in serial.values())
    assert len({n for numbers in serial.values() for n in numbers}) == len(serial)


def test_the_truth_tables_agree_with_the_per_event_truth_and_the_files(drift_trial):
    sheet = pd.read_csv(drift_trial / "samples.tsv", sep="\t")
    counts = pd.read_csv(drift_trial / "truth" / "populations.tsv", sep="\t")
    acquisition = pd.read_csv(drift_trial / "truth" / "acquisition.tsv", sep="\t").set_index(
        "sample_id"
    )
    assert list(acquisition.reset_index().columns) == ACQUISITION_COLUMNS
    assert set(acquisition.anomaly.dropna()) <= set(ANOMALY_KINDS)
    for row in sheet.itertuples():
        truth = truth_events(drift_trial, row.sample_id)
        own = counts[counts.sample_id == row.sample_id]
        assert dict(zip(own.population, own["count"])) == truth.counts()
        assert list(own.population) == list(POPULATIONS[row.panel])
        facts = acquisition.loc[row.sample_id]
        assert facts.anomalous_events == truth.anomalous.sum() and facts.events == truth.n_events
        if truth.anomalous.any():
            data = read_fcs(drift_trial / row.fcs)
            time = data.events[:, data.channels.index("Time")]  # seconds
            stretch = time[truth.anomalous]
            assert facts.anomaly_start_s <= stretch.min() and stretch.max() < facts.anomaly_stop_s
            outside = time[~truth.anomalous]
            assert not ((outside >= facts.anomaly_start_s) & (outside < facts.anomaly_stop_s)).any()
        else:
            assert pd.isna(facts.anomaly) and pd.isna(facts.anomaly_start_s)


def test_the_share_of_files_with_an_anomaly_follows_the_size(tmp_path):
    simulate_trial(
        tmp_path, patients_per_arm=10, events=200, tumor_events=200, seed=3,
        drift={"anomaly_fraction": 0.5, "anomaly_duration": [0.1, 0.2]},
    )  # fmt: skip
    acquisition = pd.read_csv(tmp_path / "truth" / "acquisition.tsv", sep="\t")
    share = acquisition.anomaly.notna().mean()
    assert 0.35 <= share <= 0.65, share
    assert set(acquisition.anomaly.dropna()) == set(ANOMALY_KINDS)
    # dead and debris rates range twice as high as the clean mode's
    blood = acquisition[acquisition.sample_id.str.endswith("_blood")]
    assert blood.dead_rate.max() > 0.11 and blood.dead_rate.max() <= 0.20


def test_drift_trial_is_byte_identical_whatever_the_jobs(tmp_path):
    arguments = {"patients_per_arm": 2, "events": 1500, "tumor_events": 1000, "seed": 42}
    simulate_trial(tmp_path / "a", **arguments, drift=True)
    simulate_trial(tmp_path / "b", **arguments, drift=True, jobs=2)
    first = _trees(tmp_path / "a")
    assert any(name.startswith("truth/events/") for name in first)
    assert first == _trees(tmp_path / "b")
    simulate_trial(tmp_path / "c", **arguments, drift={"offset": 10.0})
    assert _trees(tmp_path / "c")["samples.tsv"] == first["samples.tsv"]
    assert (
        _trees(tmp_path / "c")[next(n for n in first if n.startswith("fcs/"))]
        != first[next(n for n in first if n.startswith("fcs/"))]
    )


def test_clean_mode_is_the_default_and_every_spelling_of_it_writes_the_same_bytes(tmp_path):
    arguments = {"patients_per_arm": 1, "events": 800, "tumor_events": 500, "seed": 5}
    simulate_trial(tmp_path / "default", **arguments)
    reference = _trees(tmp_path / "default")
    for name, drift in (("false", False), ("none", None), ("clean", "clean")):
        simulate_trial(tmp_path / name, **arguments, drift=drift)
        assert _trees(tmp_path / name) == reference, name
    clean = simulate_sample(n_events=500, seed=1)
    assert clean.drift is None and not clean.anomalous.any()


# --- per-event truth ---------------------------------------------------------------------------


def test_event_truth_round_trips_through_its_one_byte_code():
    sample = simulate_sample(
        panel="tumor",
        n_events=5000,
        drift=SampleDrift(anomaly=Anomaly("burst", 0.1, 0.2, rate=3.0)),
        seed=2,
    )
    truth = sample.event_truth()
    code = truth.packed()
    assert code.dtype == np.uint8 and code.shape == (5000,)
    back = EventTruth.unpack("tumor", code)
    for name in ("cell_type", "dead", "doublet", "anomalous"):
        np.testing.assert_array_equal(getattr(back, name), getattr(truth, name))
    assert back.counts() == sample.truth_counts()
    assert back.counts(include_anomalous=True) == sample.truth_counts(include_anomalous=True)


def test_truth_events_names_what_is_missing_in_one_line(drift_trial, tmp_path):
    with pytest.raises(SampleSheetError, match="no sample 'P999_C1D1_blood'") as error:
        truth_events(drift_trial, "P999_C1D1_blood")
    assert "\n" not in str(error.value)
    with pytest.raises(SampleSheetError, match="missing"):
        truth_events(tmp_path, "P001_C1D1_blood")


# --- the command line ----------------------------------------------------------------------------


def test_cytotrial_simulate_takes_drift_sizes_or_clean(tmp_path, capsys):
    base = ["simulate", "--patients-per-arm", "1", "--events", "1000", "--tumor-events", "1000"]
    assert main([*base, "--out", str(tmp_path / "d"), "--drift", "{anomaly_fraction: 1}"]) == 0
    acquisition = pd.read_csv(tmp_path / "d" / "truth" / "acquisition.tsv", sep="\t")
    assert acquisition.anomaly.notna().all()
    assert main([*base, "--out", str(tmp_path / "plain"), "--drift"]) == 0
    assert "site" in pd.read_csv(tmp_path / "plain" / "samples.tsv", sep="\t").columns
    assert main([*base, "--out", str(tmp_path / "c"), "--clean"]) == 0
    assert main([*base, "--out", str(tmp_path / "n")]) == 0
    assert _trees(tmp_path / "c") == _trees(tmp_path / "n")  # clean unless asked
    assert "site" not in pd.read_csv(tmp_path / "c" / "samples.tsv", sep="\t").columns
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad"), "--drift", "{offset: many}"]) == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.startswith("cytotrial:")]
    assert "drift.offset" in line
    assert main([*base, "--out", str(tmp_path / "bad"), "--drift", "0.3"]) == 2
    assert "--drift takes a mapping" in capsys.readouterr().err
