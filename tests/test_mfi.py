"""Median fluorescence intensities per sample, population and marker, against direct numpy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytotrial.config import population_model
from cytotrial.gating import MFI_COLUMNS, gate_events, gate_samples, load_panel_gating
from cytotrial.io import load_strategy, read_fcs
from cytotrial.rules import run_gate_batch
from cytotrial.sim import simulate_sample, write_fcs

ROOT = Path(__file__).resolve().parents[1]
BLOOD = str(ROOT / "resources/gating/blood.xml")
GATES = ["lymphocytes", "singlets", "live", "cd3", "cd4", "treg", "cd8"]
GATES += ["cd8_ki67", "cd8_hladr", "cd8_cd38", "nk"]
CONFIG = {
    "populations": {"cd4_conv": {"boolean": "cd4 and not treg"}},
    "strategies": {"blood": {"strategy": BLOOD, "populations": {g: g for g in GATES}}},
}
PANELS = {"Ki67": ["APC-A"], "HLA-DR": ["BV711-A"], "CD25": ["PE-A"]}


def _logicle(values: np.ndarray) -> np.ndarray:
    from flowkit import transforms

    xform = transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    return xform.apply(values.reshape(-1, 1)).reshape(-1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mfi")
    return simulate_sample(panel="blood", n_events=8000, seed=8), folder


@pytest.fixture(scope="module")
def blood_fcs(sample) -> Path:
    simulated, folder = sample
    return write_fcs(simulated, folder / "b.fcs")


def _memberships(fcs: Path) -> dict[str, np.ndarray]:
    by_path = gate_events(read_fcs(fcs), load_strategy(BLOOD))
    masks = {path.rsplit("/", 1)[-1]: mask for path, mask in by_path.items()}
    masks["cd4_conv"] = masks["cd4"] & ~masks["treg"]
    return masks


def _compensated(fcs: Path, spill: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every event compensated by ``numpy.linalg.solve`` (detectors in file order), as FlowKit does."""
    data = read_fcs(fcs)
    spill = data.spill if spill is None else spill
    detectors = [c for c in data.channels if c in spill.columns]
    columns = [data.channels.index(c) for c in detectors]
    matrix = spill.loc[detectors, detectors].to_numpy(dtype=float)
    solved = np.linalg.solve(matrix.T, data.events[:, columns].T).T
    table = pd.DataFrame(data.events, columns=data.channels)
    table[detectors] = solved
    return table


def _mfi(fcs, markers, *, min_events=1, compensation=None, panels=PANELS) -> pd.DataFrame:
    gating = load_panel_gating(
        "blood", CONFIG["strategies"]["blood"], model=population_model(CONFIG), mfi_markers=markers
    )
    samples = pd.DataFrame({"sample_id": ["s"], "panel": ["blood"], "fcs": [str(fcs)]})
    result = gate_samples(
        samples,
        {"blood": gating},
        panels=panels,
        compensation=compensation,
        mfi_min_events=min_events,
    )
    assert result.qc["status"].tolist() == ["ok"], result.qc["message"].tolist()
    assert list(result.mfi.columns) == MFI_COLUMNS
    return result.mfi.set_index(["population", "marker"])


def test_medians_equal_numpy_on_the_gated_compensated_events(blood_fcs):
    markers = {"cd8": ["Ki67", "HLA-DR", "CD38"], "treg": ["CD25"], "cd4_conv": ["CD25"]}
    mfi = _mfi(blood_fcs, markers)
    masks = _memberships(blood_fcs)
    values = _compensated(blood_fcs)
    channels = {"Ki67": "APC-A", "HLA-DR": "BV711-A", "CD38": "PE-CF594-A", "CD25": "PE-A"}
    assert list(mfi.index) == [(p, m) for p, ms in markers.items() for m in ms]
    for (population, marker), row in mfi.iterrows():
        gated = values[channels[marker]].to_numpy()[masks[population]]
        assert row["channel"] == channels[marker]  # CD38: its $PnS label, no panels: entry
        assert row["n_events"] == gated.size > 100
        assert row["median"] == pytest.approx(np.median(gated), rel=1e-12, abs=1e-9)
        low, high = np.percentile(gated, [15.87, 84.13])
        if row["median"] > 0:
            assert row["rcv"] == pytest.approx(100 * (high - low) / 2 / np.median(gated), rel=1e-9)
        else:
            assert np.isnan(row["rcv"])
        # every one of these channels is gated on the logicle scale, compensated with $SPILLOVER
        expected = np.median(_logicle(gated))
        assert row["median_transformed"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert mfi.loc[("treg", "CD25"), "median"] > 10 * mfi.loc[("cd4_conv", "CD25"), "median"]


def test_too_few_events_give_na_with_the_count(blood_fcs):
    masks = _memberships(blood_fcs)
    n_ki67 = int(masks["cd8_ki67"].sum())
    mfi = _mfi(blood_fcs, {"cd8": ["Ki67"], "cd8_ki67": ["Ki67"]}, min_events=n_ki67 + 1)
    low = mfi.loc[("cd8_ki67", "Ki67")]
    assert low["n_events"] == n_ki67 > 0
    assert np.isnan([low["median"], low["median_transformed"], low["rcv"]]).all()
    assert np.isfinite(mfi.loc[("cd8", "Ki67"), ["median", "median_transformed", "rcv"]]).all()


def test_ungated_and_scatter_channels(blood_fcs):
    masks = _memberships(blood_fcs)
    values = _compensated(blood_fcs)
    mfi = _mfi(blood_fcs, {"cd8": ["CD16", "FSC-A"]})
    ungated = mfi.loc[("cd8", "CD16")]  # found by its $PnS label; compensated, no gate reads it
    assert ungated["channel"] == "BV605-A" and np.isnan(ungated["median_transformed"])
    gated = values["BV605-A"].to_numpy()[masks["cd8"]]
    assert ungated["median"] == pytest.approx(np.median(gated), rel=1e-12, abs=1e-9)
    scatter = mfi.loc[("cd8", "FSC-A")]  # a channel name; raw, and gated without a transform
    raw = read_fcs(blood_fcs).events[masks["cd8"], 0]
    assert scatter["median"] == np.median(raw) == scatter["median_transformed"]


def test_the_config_matrix_compensates_the_intensities(blood_fcs):
    own = read_fcs(blood_fcs).spill
    altered = own.copy()
    altered.loc["APC-H7-A", "APC-A"] += 0.08  # CD8 spills more into Ki67's detector
    mfi = _mfi(blood_fcs, {"cd8": ["Ki67"]}, compensation=altered)
    masks = _memberships(blood_fcs)  # the gates barely move; the intensities do
    gated = _compensated(blood_fcs, altered)["APC-A"].to_numpy()
    gating = load_panel_gating(
        "blood", CONFIG["strategies"]["blood"], model=population_model(CONFIG)
    )
    data = read_fcs(blood_fcs)
    data.spill = altered
    from cytotrial.gating import population_masks

    cd8 = population_masks(gating, gate_events(data, gating.strategy))["cd8"]
    assert mfi.loc[("cd8", "Ki67"), "median"] == pytest.approx(np.median(gated[cd8]), rel=1e-12)
    assert mfi.loc[("cd8", "Ki67"), "median"] != pytest.approx(
        _mfi(blood_fcs, {"cd8": ["Ki67"]}).loc[("cd8", "Ki67"), "median"], rel=1e-3
    )
    assert int(cd8.sum()) == pytest.approx(int(masks["cd8"].sum()), rel=0.05)


def test_a_missing_marker_excludes_only_its_sample(sample, blood_fcs, tmp_path):
    simulated, _ = sample
    labels = ["" if m == "CD16" else m for m in simulated.markers]
    unlabelled = write_fcs(dataclasses.replace(simulated, markers=labels), tmp_path / "u.fcs")
    config = {**CONFIG, "strategies": {"blood": dict(CONFIG["strategies"]["blood"])}}
    out = {name: tmp_path / f"{name}.tsv" for name in ("counts", "qc", "mfi")}
    result = run_gate_batch(
        [
            {"sample_id": "a", "panel": "blood", "fcs": str(blood_fcs)},
            {"sample_id": "b", "panel": "blood", "fcs": str(unlabelled)},
        ],
        strategies=config["strategies"],
        panels=None,
        compensation="fcs",
        populations=config["populations"],
        mfi={"markers": {"cd8": ["CD16"], "cd8_ki67": ["CD16"]}, "min_events": 10_000},
        counts_out=out["counts"],
        qc_out=out["qc"],
        mfi_out=out["mfi"],
    )
    counts, qc, mfi = result.counts, result.qc, result.mfi
    assert qc["status"].tolist() == ["ok", "excluded"]
    message = qc["message"].iloc[1]
    assert "u.fcs" in message and "CD16" in message and "mfi.markers.cd8" in message
    assert "\n" not in message
    assert set(counts["sample_id"]) == set(mfi["sample_id"]) == {"a"}
    written = pd.read_csv(out["mfi"], sep="\t", keep_default_na=False)
    assert list(written.columns) == MFI_COLUMNS
    # below mfi.min_events every statistic is an empty cell (NA), the count is kept
    assert (written[["median", "median_transformed", "rcv"]] == "").all().all()
    assert written["n_events"].tolist() == mfi["n_events"].tolist()
