"""Acquisition QC against per-event truth: the drifting simulator's anomalies and planted ones.

The drifting simulator flags every event acquired during a file's acquisition anomaly. Planted
anomalies are independent of it: files are simulated clean, then an anomaly is planted over a
stretch of their acquisition time (a burst of 2-4 times the flow, a flow slowed to 2-10%, a clog
slowing the flow to 30-60% with every channel 55-75% as bright, or 3-5 channels shifted by
0.6-0.75 or 1.35-1.7), over 5-15% of the acquisition time; the events acquired during it are the
truth.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytotrial.config import check_section, defaults, population_model
from cytotrial.errors import ConfigError
from cytotrial.gating import (
    ACQUISITION_BIN_COLUMNS,
    QC_COLUMNS,
    acquisition_qc,
    gate_events,
    gate_samples,
    load_panel_gating,
)
from cytotrial.io import FCSData, load_strategy, read_fcs
from cytotrial.sim import Drift, simulate_sample, write_fcs

ROOT = Path(__file__).resolve().parents[1]
BLOOD = str(ROOT / "resources/gating/blood.xml")
SETTINGS = defaults("qc")["acquisition"]
RATE = 2500.0  # events per second
TIMESTEP = 0.01  # seconds per unit of the simulator's Time channel
KINDS = ("burst", "slow", "clog", "shift")


def _anomaly_times(
    rng: np.random.Generator, n: int, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Acquisition times (s) of a Poisson flow that runs ``factor`` times as fast for a stretch."""
    steady = np.cumsum(rng.exponential(1.0 / RATE, n))
    share = rng.uniform(0.05, 0.15)  # of the acquisition time
    start = rng.uniform(0.05, 0.95 - share)
    total = n / (RATE * (1.0 + (factor - 1.0) * share))
    t0, t1 = start * total, (start + share) * total
    u1 = t0 + factor * (t1 - t0)  # the steady clock at the stretch's end
    during = (steady >= t0) & (steady < u1)
    times = np.where(
        steady < t0, steady, np.where(during, t0 + (steady - t0) / factor, steady - u1 + t1)
    )
    return times, during


def _planted(
    seed: int, kind: str, *, n: int = 20_000, panel: str = "blood"
) -> tuple[FCSData, np.ndarray]:
    """A simulated file with one planted anomaly (``kind``) and which events it holds."""
    rng = np.random.default_rng([seed, 2024])
    sample = simulate_sample(panel=panel, n_events=n, seed=seed)
    events = sample.events.astype(np.float64)
    time = sample.channels.index("Time")
    signal = [i for i, c in enumerate(sample.channels) if c not in ("Time", "FSC-H")]
    factor = {
        "clean": 1.0,
        "burst": rng.uniform(2.0, 4.0),
        "slow": rng.uniform(0.02, 0.1),
        "clog": rng.uniform(0.3, 0.6),
        "shift": 1.0,
    }[kind]
    times, truth = _anomaly_times(rng, n, factor)
    if kind == "clean":
        truth[:] = False
    gains = {}
    if kind == "clog":
        dim = rng.uniform(0.55, 0.75)
        gains = {c: dim * rng.uniform(0.95, 1.05) for c in signal}
    elif kind == "shift":
        low, high = ((0.6, 0.75), (1.35, 1.7))[int(rng.integers(0, 2))]
        chosen = rng.choice(signal, size=int(rng.integers(3, 6)), replace=False)
        gains = {int(c): rng.uniform(low, high) for c in chosen}
    for column, gain in gains.items():
        events[truth, column] *= gain
        if sample.channels[column] == "FSC-A":  # FSC-H moves with FSC-A
            events[truth, sample.channels.index("FSC-H")] *= gain
    events[:, time] = times
    data = FCSData(
        path=Path(f"{kind}_{seed}.fcs"),
        events=events,
        channels=list(sample.channels),
        markers=list(sample.markers),
        spill=sample.spill,
        n_events_stated=n,
    )
    return data, truth


def _rates(files: list[tuple[FCSData, np.ndarray]]) -> tuple[float, float]:
    """Pooled fraction of anomalous events removed, and of normal events removed."""
    found = anomalous = lost = normal = 0
    for data, truth in files:
        removed = ~acquisition_qc(data, SETTINGS).keep
        found += int(np.count_nonzero(removed & truth))
        anomalous += int(np.count_nonzero(truth))
        lost += int(np.count_nonzero(removed & ~truth))
        normal += int(np.count_nonzero(~truth))
    return found / max(anomalous, 1), lost / normal


@pytest.fixture(scope="module")
def planted_files() -> dict[str, list[tuple[FCSData, np.ndarray]]]:
    """Per kind: 10 blood files of 20,000 events and 4 tumor files of 10,000; 12 + 4 clean."""
    files: dict[str, list[tuple[FCSData, np.ndarray]]] = {}
    for k, kind in enumerate(("clean", *KINDS)):
        blood = [_planted(100 * k + s, kind) for s in range(12 if kind == "clean" else 10)]
        tumor = [_planted(100 * k + 50 + s, kind, n=10_000, panel="tumor") for s in range(4)]
        files[kind] = blood + tumor
    return files


def test_finds_the_planted_anomalies_and_keeps_the_normal_events(planted_files):
    """>= 90% of anomalous events found, <= 2% of normal events removed, over 72 files."""
    every = [f for files in planted_files.values() for f in files]
    assert len(every) >= 40
    detected, lost = _rates(every)
    assert detected >= 0.9
    assert lost <= 0.02
    for kind in KINDS:  # every kind on its own, not only the pooled rate
        detected, lost = _rates(planted_files[kind])
        assert detected >= 0.9, kind
        assert lost <= 0.02, kind


@pytest.fixture(scope="module")
def drifting(tmp_path_factory) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(anomaly kind, events kept, truth) of 56 files of the drifting simulator.

    Written and read as the workflow reads them: 42 with an acquisition anomaly, 14 without, a
    quarter of them tumor files.
    """
    folder = tmp_path_factory.mktemp("drifting")
    results = []
    for seed in range(56):
        panel, n = ("tumor", 10_000) if seed % 4 == 3 else ("blood", 20_000)
        drift = Drift(anomaly_fraction=1.0 if seed < 42 else 0.0)
        sample = simulate_sample(panel=panel, n_events=n, drift=drift, seed=seed)
        data = read_fcs(write_fcs(sample, folder / f"{seed}.fcs"))
        kind = sample.drift.anomaly.kind if sample.drift.anomaly is not None else "none"
        results.append((kind, acquisition_qc(data, SETTINGS).keep, sample.anomalous))
    return results


def test_finds_the_drifting_simulators_anomalies(drifting):
    """>= 90% of the anomalous events found, <= 2% of the normal events removed."""
    kinds = {kind for kind, _, _ in drifting}
    assert kinds == {"burst", "gap", "clog", "shift", "none"}
    removed = np.concatenate([~keep for _, keep, _ in drifting])
    truth = np.concatenate([anomalous for _, _, anomalous in drifting])
    assert np.count_nonzero(removed & truth) / np.count_nonzero(truth) >= 0.9
    assert np.count_nonzero(removed & ~truth) / np.count_nonzero(~truth) <= 0.02
    clean = [keep for kind, keep, _ in drifting if kind == "none"]
    assert sum(int(np.count_nonzero(~keep)) for keep in clean) == 0  # a steady file loses nothing


def test_clean_files_lose_nothing(planted_files):
    for data, _ in planted_files["clean"]:
        qc = acquisition_qc(data, SETTINGS)
        assert qc.status == "checked"
        assert qc.n_removed == 0, data.path
        assert qc.note == ""


def test_the_bins_say_what_was_removed_and_why(planted_files):
    data, truth = planted_files["burst"][0]
    qc = acquisition_qc(data, SETTINGS)
    assert list(qc.bins.columns) == ACQUISITION_BIN_COLUMNS
    assert int(qc.bins["events_removed"].sum()) == qc.n_removed > 0
    assert qc.bins["n_events"].sum() == data.n_events
    assert qc.reasons == ("flow rate",)
    burst = qc.bins.loc[qc.bins["departs"], "rate"]
    typical = qc.bins.loc[~qc.bins["departs"], "rate"].median()
    assert (burst >= (1 + SETTINGS["rate_min_change"]) * typical).all()
    assert qc.note.startswith(f"acquisition QC removed {qc.n_removed} of {data.n_events} events")

    data, truth = planted_files["shift"][0]
    qc = acquisition_qc(data, SETTINGS)
    first, last = np.flatnonzero(truth)[[0, -1]]
    moved = {
        c
        for i, c in enumerate(data.channels)
        if not np.allclose(data.events[first:last, i], _planted_raw(data, first, last, i))
    }
    named = {reason.removeprefix("signal ") for reason in qc.reasons}
    assert named and named <= moved | {"FSC-H"}


def _planted_raw(data: FCSData, first: int, last: int, column: int) -> np.ndarray:
    """The simulator's own values of a stretch of events (before the planted shift)."""
    seed = int(Path(data.path).stem.split("_")[1])
    sample = simulate_sample(panel="blood", n_events=data.n_events, seed=seed)
    return sample.events[first:last, column].astype(np.float64)


def test_a_pause_removes_next_to_nothing_and_is_noted():
    data, _ = _planted(7, "clean")
    times = data.events[:, data.channels.index("Time")]
    times[12_000:] += 1.5  # 1.5 s without events: about 3,750 typical intervals
    qc = acquisition_qc(data, SETTINGS)
    assert qc.n_removed <= 3  # at most the events beside the pause
    assert qc.keep[:11_990].all() and qc.keep[12_010:].all()
    assert qc.gaps == 1
    assert "gaps in Time: 1" in qc.note
    longest = qc.bins["max_interval"].max()
    assert longest == pytest.approx(1.5, abs=0.01)


def test_a_file_without_a_usable_time_channel_passes_with_a_note():
    data, _ = _planted(3, "burst")
    time = data.channels.index("Time")
    without = dataclasses.replace(
        data,
        events=np.delete(data.events, time, axis=1),
        channels=[c for c in data.channels if c != "Time"],
        markers=[m for i, m in enumerate(data.markers) if i != time],
    )
    qc = acquisition_qc(without, SETTINGS)
    assert (qc.status, qc.time_channel, qc.n_removed) == ("no_time", "", 0)
    assert qc.keep.all() and qc.keep.size == data.n_events
    assert qc.note == "acquisition_no_time: no Time channel, not checked."

    shuffled = data.events.copy()
    shuffled[5_000:5_010, time] = shuffled[5_000:5_010, time][::-1]  # 10 events out of order
    qc = acquisition_qc(dataclasses.replace(data, events=shuffled), SETTINGS)
    assert (qc.status, qc.time_channel, qc.n_removed) == ("no_time", "Time", 0)
    assert qc.note == (
        "acquisition_no_time: the Time channel goes back 9 times (events not in acquisition "
        "order), not checked."
    )

    constant = data.events.copy()
    constant[:, time] = 5.0
    qc = acquisition_qc(dataclasses.replace(data, events=constant), SETTINGS)
    assert qc.status == "no_time" and "does not advance" in qc.note and qc.keep.all()


def test_a_tiny_file_passes_with_a_note():
    data, _ = _planted(4, "burst", n=3_000)  # 6 bins of 500 events: too few to judge
    qc = acquisition_qc(data, SETTINGS)
    assert (qc.status, qc.n_removed) == ("too_few_events", 0)
    assert qc.note.startswith("acquisition_too_few_events: 3000 events")
    assert qc.bins.empty and list(qc.bins.columns) == ACQUISITION_BIN_COLUMNS


def test_deterministic(planted_files):
    data, _ = planted_files["clog"][1]
    first = acquisition_qc(data, SETTINGS)
    copy = dataclasses.replace(data, events=data.events.copy())
    second = acquisition_qc(copy, SETTINGS)
    assert np.array_equal(first.keep, second.keep)
    pd.testing.assert_frame_equal(first.bins, second.bins)
    assert (first.note, first.reasons) == (second.note, second.reasons)
    assert np.array_equal(copy.events, data.events)  # the input is left as it was


def test_bad_settings_stop_with_one_line_naming_the_key():
    for key, value in (("signal_z", 0), ("bin_events", 10), ("max_removed", 1.5)):
        with pytest.raises(ConfigError) as error:
            check_section("qc", {"acquisition": {key: value}})
        assert f"config qc.acquisition.{key}:" in str(error.value)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=r"qc\.acquisition: 'bin_size' was unexpected"):
        check_section("qc", {"acquisition": {"bin_size": 1000}})
    assert check_section("qc", {})["acquisition"] == SETTINGS


# --------------------------------------------------------------------------------------------
# before gating


@pytest.fixture(scope="module")
def gating_files(tmp_path_factory) -> dict[str, Path]:
    """A file with a burst over events 6,000-10,000 and a clean one, written as FCS."""
    folder = tmp_path_factory.mktemp("acquisition")
    burst = simulate_sample(panel="blood", n_events=20_000, seed=21)
    time = burst.channels.index("Time")
    steps = np.diff(burst.events[:, time].astype(np.float64), prepend=0.0)
    steps[6_000:10_000] /= 5.0
    burst.events[:, time] = np.cumsum(steps)
    clean = simulate_sample(panel="blood", n_events=20_000, seed=22)
    return {
        "burst": write_fcs(burst, folder / "burst.fcs"),
        "clean": write_fcs(clean, folder / "clean.fcs"),
    }


def _gate(files: dict[str, Path], acquisition: dict | None):
    config = {
        "strategies": {
            "blood": {
                "strategy": BLOOD,
                "populations": {"lymphocytes": "lymphocytes", "cd3": "cd3"},
            }
        }
    }
    gating = load_panel_gating(
        "blood", config["strategies"]["blood"], model=population_model(config)
    )
    samples = pd.DataFrame(
        {"sample_id": list(files), "panel": "blood", "fcs": [str(p) for p in files.values()]}
    )
    return gate_samples(samples, {"blood": gating}, acquisition=acquisition)


def test_gating_counts_only_the_events_kept(gating_files):
    result = _gate(gating_files, SETTINGS)
    qc = result.qc.set_index("sample_id")
    assert list(result.qc.columns) == QC_COLUMNS
    burst = qc.loc["burst"]
    assert burst["status"] == "ok"
    assert 4_000 <= burst["events_removed"] <= 4_100  # the 4,000 burst events, edges exact
    assert burst["fraction_removed"] == pytest.approx(burst["events_removed"] / 20_000)
    assert burst["flags"] == ""  # 0.2 of the events or fewer: not flagged
    assert "acquisition QC removed" in burst["notes"] and "flow rate" in burst["notes"]
    assert (qc.loc["clean", "events_removed"], qc.loc["clean", "notes"]) == (0, "")

    data = read_fcs(gating_files["burst"])
    kept = dataclasses.replace(data, events=data.events[acquisition_qc(data, SETTINGS).keep])
    truth = gate_events(kept, load_strategy(BLOOD))
    counts = result.counts.set_index(["sample_id", "population"])
    top = counts.loc[("burst", "lymphocytes")]
    assert top["parent_count"] == 20_000 - burst["events_removed"] == kept.n_events
    assert top["count"] == int(np.count_nonzero(truth["lymphocytes"]))
    cd3 = next(path for path in truth if path.endswith("/cd3"))
    assert counts.loc[("burst", "cd3"), "count"] == int(np.count_nonzero(truth[cd3]))

    unchecked = _gate(gating_files, None)  # every event gated
    assert (unchecked.qc["events_removed"] == 0).all()
    before = unchecked.counts.set_index(["sample_id", "population"])
    assert before.loc[("burst", "lymphocytes"), "parent_count"] == 20_000
    assert before.loc["clean"].equals(counts.loc["clean"])  # nothing removed, same counts
    off = _gate(gating_files, {**SETTINGS, "enabled": False})
    assert off.counts.equals(unchecked.counts)


def test_too_much_removed_flags_then_excludes(gating_files):
    flagged = _gate(gating_files, {**SETTINGS, "max_removed": 0.1}).qc.set_index("sample_id")
    assert flagged.loc["burst", "status"] == "ok"
    assert flagged.loc["burst", "flags"] == "acquisition_removed>0.1"
    assert flagged.loc["clean", "flags"] == ""

    result = _gate(gating_files, {**SETTINGS, "max_removed": 0.1, "exclude_above": 0.15})
    qc = result.qc.set_index("sample_id")
    assert qc.loc["burst", "status"] == "excluded"
    message = qc.loc["burst", "message"]
    assert message.startswith("burst.fcs: acquisition QC removed 0.20")
    assert "(flow rate), more than qc.acquisition.exclude_above (0.15)" in message
    assert "\n" not in message
    assert qc.loc["burst", "events_removed"] > 0
    assert set(result.counts["sample_id"]) == {"clean"}  # the other sample is still gated
