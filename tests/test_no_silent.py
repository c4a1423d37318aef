"""No silent wrong numbers at the level of one FCS file, in a batch whose other samples complete.

An unusable spillover keyword, non-finite event values and ``$PnS`` labels that contradict the
config's panels each either exclude their sample with a one-line reason (naming the keyword,
channel or marker, never a keyword's value) or are gated in a stated way and flagged. Every
other sample of the batch gets exactly the counts it gets when gated alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cytotrial.config import population_model
from cytotrial.gating import gate_events, gate_samples, load_panel_gating, population_masks
from cytotrial.io import read_compensation, read_fcs
from cytotrial.sim import simulate_sample, write_fcs

ROOT = Path(__file__).resolve().parents[1]
BLOOD = str(ROOT / "resources/gating/blood.xml")
GATES = ["lymphocytes", "singlets", "live", "cd3", "cd4", "treg", "cd8", "cd8_ki67", "nk"]
PANELS = yaml.safe_load((ROOT / "config/config.yaml").read_text(encoding="utf-8"))["panels"]
CANARY = "Jane Doe 1961"

UNCOMPENSATED_GML = """<?xml version="1.0" encoding="UTF-8"?>
<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating"
  xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">
  <gating:RectangleGate gating:id="cells">
    <gating:dimension gating:min="20000" gating:compensation-ref="uncompensated">
      <data-type:fcs-dimension data-type:name="FSC-A"/>
    </gating:dimension>
  </gating:RectangleGate>
</gating:Gating-ML>
"""


@pytest.fixture(scope="module")
def simulated():
    return simulate_sample(panel="blood", n_events=4000, seed=14)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("no_silent")


@pytest.fixture(scope="module")
def good(simulated, folder) -> Path:
    return write_fcs(simulated, folder / "good.fcs")


def _gating(mfi_markers: dict | None = None, strategy: str = BLOOD, gates=GATES):
    spec = {"strategy": strategy, "populations": {g: g for g in gates}}
    config = {"strategies": {"blood": spec}}
    return load_panel_gating(
        "blood", spec, model=population_model(config), mfi_markers=mfi_markers or {}
    )


def _batch(files: dict[str, Path], gating=None, **options):
    gating = gating or _gating()
    samples = pd.DataFrame(
        {"sample_id": list(files), "panel": "blood", "fcs": [str(p) for p in files.values()]}
    )
    result = gate_samples(samples, {"blood": gating}, panels=PANELS, **options)
    return result, result.qc.set_index("sample_id")


def _counts(result, sample_id: str) -> dict[str, int]:
    rows = result.counts[result.counts["sample_id"] == sample_id]
    return dict(zip(rows["population"], rows["count"]))


def _direct_counts(data, gating=None) -> dict[str, int]:
    """Counts of the same gating applied to ``data`` as it is (no batch, no checks)."""
    gating = gating or _gating()
    masks = population_masks(gating, gate_events(data, gating.strategy))
    return {name: int(np.count_nonzero(masks[name])) for name in gating.order}


def _assert_excluded_alone(result, qc, bad: str, *, says: list[str], good_alone: dict) -> None:
    assert qc.loc[bad, "status"] == "excluded"
    message = qc.loc[bad, "message"]
    assert "\n" not in message and message.startswith(f"{bad}.fcs: ")
    for text in says:
        assert text in message, message
    assert "Doe" not in message and "1961" not in message
    assert qc.loc["good", "status"] == "ok" and qc.loc["good", "message"] == ""
    assert _counts(result, "good") == good_alone and bad not in set(result.counts["sample_id"])


@pytest.fixture(scope="module")
def good_alone(good) -> dict[str, int]:
    result, qc = _batch({"good": good})
    assert qc.loc["good", "status"] == "ok" and qc.loc["good", "flags"] == ""
    return _counts(result, "good")


# --------------------------------------------------------------------------------------------------
# the file's own spillover


SPILL_CASES = {
    "unparseable": (CANARY, ["$SPILLOVER", "does not start with the number of detectors"]),
    "non-square": (
        "2,FITC-A,PE-A,1,0.1,0.2",
        ["$SPILLOVER", "spillover for 2 detectors needs 7 comma-separated items, found 6"],
    ),
    "non-numeric": (
        f"2,FITC-A,PE-A,1,0.1,{CANARY},1",
        ["$SPILLOVER", "holds a value that is not a number"],
    ),
    "channel the file lacks": (
        f"2,FITC-A,{CANARY},1,0.1,0.2,1",
        ["$SPILLOVER names 1 of its 2 detectors after no channel of the file"],
    ),
}


@pytest.mark.parametrize("case", SPILL_CASES)
def test_unusable_spillover_excludes_its_sample_only(
    simulated, good, folder, good_alone, case
) -> None:
    value, says = SPILL_CASES[case]
    bad = write_fcs(simulated, folder / "bad.fcs", keywords={"$SPILLOVER": value})
    result, qc = _batch({"good": good, "bad": bad})
    _assert_excluded_alone(
        result,
        qc,
        "bad",
        says=[*says, "cannot be compensated", "gating.unreadable_compensation: uncompensated"],
        good_alone=good_alone,
    )


@pytest.mark.parametrize("case", SPILL_CASES)
def test_unusable_spillover_gated_uncompensated_when_config_says_so(
    simulated, good, folder, good_alone, case
) -> None:
    value, _ = SPILL_CASES[case]
    bad = write_fcs(simulated, folder / "bad.fcs", keywords={"$SPILLOVER": value})
    result, qc = _batch({"good": good, "bad": bad}, unreadable_compensation="uncompensated")
    assert qc.loc["bad", "status"] == "ok" and qc.loc["bad", "flags"] == "uncompensated"
    assert "Gated uncompensated" in qc.loc["bad", "notes"]
    assert "Doe" not in qc.loc["bad", "notes"]
    data = read_fcs(bad)
    data.spill = None  # GatingML: uncompensated
    assert _counts(result, "bad") == _direct_counts(data)
    assert _counts(result, "bad") != good_alone  # compensation matters for these populations
    assert _counts(result, "good") == good_alone and qc.loc["good", "flags"] == ""


def test_unusable_spillover_does_not_matter_where_the_gating_does_not_use_it(
    simulated, good, folder, tmp_path
) -> None:
    bad = write_fcs(simulated, folder / "bad.fcs", keywords={"$SPILLOVER": CANARY})
    # a matrix in config replaces every file's own
    matrix = tmp_path / "matrix.csv"
    simulated.spill.to_csv(matrix, index=False)
    result, qc = _batch({"good": good, "bad": bad}, compensation=read_compensation(matrix))
    assert (qc["status"] == "ok").all() and (qc["flags"] == "").all()
    assert _counts(result, "bad") == _counts(result, "good")
    # a strategy that compensates nothing and no MFIs: the file's spillover is never applied
    strategy = tmp_path / "uncompensated.xml"
    strategy.write_text(UNCOMPENSATED_GML, encoding="utf-8")
    result, qc = _batch(
        {"good": good, "bad": bad}, _gating(strategy=str(strategy), gates=["cells"])
    )
    assert (qc["status"] == "ok").all() and (qc["flags"] == "").all()
    assert _counts(result, "bad") == _counts(result, "good")
    # with MFIs, which are taken from compensated values, it is needed again
    gating = _gating(mfi_markers={"cells": ["Ki67"]}, strategy=str(strategy), gates=["cells"])
    _, qc = _batch({"good": good, "bad": bad}, gating)
    assert qc["status"].tolist() == ["excluded", "ok"]


# --------------------------------------------------------------------------------------------------
# non-finite values


def _with_values(simulated, rows: dict[str, np.ndarray], value_of: dict[str, float]):
    events = simulated.events.astype(np.float32).copy()
    for channel, where in rows.items():
        events[where, simulated.channels.index(channel)] = value_of[channel]
    return dataclasses.replace(simulated, events=events)


def test_non_finite_events_are_counted_flagged_and_left_out_of_gating(
    simulated, good, folder, good_alone
) -> None:
    rng = np.random.default_rng(3)
    n = simulated.events.shape[0]
    nan_rows, inf_rows, neg_rows = (rng.choice(n, k, replace=False) for k in (7, 3, 2))
    events = simulated.events.astype(np.float32).copy()
    fitc, apc, time = (simulated.channels.index(c) for c in ("FITC-A", "APC-A", "Time"))
    events[nan_rows, fitc] = np.nan
    events[inf_rows, apc] = np.inf
    events[neg_rows, apc] = -np.inf
    events[:5, time] = np.nan  # Time: a channel the gating does not read
    bad = write_fcs(dataclasses.replace(simulated, events=events), folder / "bad.fcs")
    result, qc = _batch({"good": good, "bad": bad})
    assert qc.loc["bad", "status"] == "ok"
    assert qc.loc["bad", "flags"] == "non_finite:FITC-A,non_finite:APC-A,non_finite:Time"
    notes = qc.loc["bad", "notes"]
    assert "Non-finite values in $P4N (7 NaN), $P9N (3 +inf, 2 -inf), $P15N (5 NaN)" in notes
    left_out = np.zeros(n, dtype=bool)
    left_out[np.concatenate([nan_rows, inf_rows, neg_rows])] = True
    k = int(left_out.sum())
    assert f"{k} event(s) with non-finite values in FITC-A, APC-A, which the gating reads" in notes
    assert qc.loc["bad", "events_in"] == n - k and qc.loc["bad", "events_stated"] == n
    # exactly the counts of the same gating on the finite events only
    data = read_fcs(bad)
    data.events = data.events[~left_out]
    assert _counts(result, "bad") == _direct_counts(data)
    top = result.counts[(result.counts["sample_id"] == "bad") & (result.counts["parent"] == "")]
    assert (top["parent_count"] == n - k).all()
    assert _counts(result, "good") == good_alone and qc.loc["good", "flags"] == ""


def test_non_finite_values_only_where_the_gating_does_not_read_are_flagged_not_left_out(
    simulated, good, folder, good_alone
) -> None:
    bad = write_fcs(
        _with_values(simulated, {"Time": np.arange(10)}, {"Time": np.inf}), folder / "bad.fcs"
    )
    result, qc = _batch({"good": good, "bad": bad})
    assert qc.loc["bad", "flags"] == "non_finite:Time"
    assert qc.loc["bad", "events_in"] == simulated.events.shape[0]
    assert "left out" not in qc.loc["bad", "notes"]
    assert _counts(result, "bad") == good_alone  # the same events otherwise


def test_a_channel_the_gating_reads_with_no_finite_value_excludes_its_sample(
    simulated, good, folder, good_alone
) -> None:
    n = simulated.events.shape[0]
    bad = write_fcs(
        _with_values(simulated, {"PE-A": np.arange(n)}, {"PE-A": np.nan}), folder / "bad.fcs"
    )
    result, qc = _batch({"good": good, "bad": bad})
    _assert_excluded_alone(
        result, qc, "bad", says=["channel PE-A holds no finite value"], good_alone=good_alone
    )


def test_no_event_finite_everywhere_the_gating_reads_excludes_its_sample(
    simulated, good, folder, good_alone
) -> None:
    n = simulated.events.shape[0]
    bad = write_fcs(
        _with_values(
            simulated,
            {"FSC-A": np.arange(0, n, 2), "SSC-A": np.arange(1, n, 2)},
            {"FSC-A": np.nan, "SSC-A": -np.inf},
        ),
        folder / "bad.fcs",
    )
    result, qc = _batch({"good": good, "bad": bad})
    _assert_excluded_alone(
        result,
        qc,
        "bad",
        says=["no event has finite values in every channel the gating reads", "FSC-A", "SSC-A"],
        good_alone=good_alone,
    )


# --------------------------------------------------------------------------------------------------
# $PnS labels against the config's panels


def test_swapped_marker_labels_exclude_their_sample(simulated, good, folder, good_alone) -> None:
    labels = list(simulated.markers)
    cd3, cd8 = labels.index("CD3"), labels.index("CD8")
    labels[cd3], labels[cd8] = "CD8", "CD3"
    bad = write_fcs(dataclasses.replace(simulated, markers=labels), folder / "bad.fcs")
    result, qc = _batch({"good": good, "bad": bad})
    _assert_excluded_alone(
        result,
        qc,
        "bad",
        says=[
            "channel FITC-A is labelled CD8 by its $P4S but the strategy reads it as CD3",
            "channel APC-H7-A is labelled CD3 by its $P10S but the strategy reads it as CD8",
        ],
        good_alone=good_alone,
    )


# --------------------------------------------------------------------------------------------------
# the config key, through the workflow's step and the command line


def test_unreadable_compensation_key_default_and_values() -> None:
    from cytotrial.config import check_config, diagnose_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text(encoding="utf-8"))
    assert check_config(config, base=ROOT)["gating"]["unreadable_compensation"] == "exclude"
    config["gating"]["unreadable_compensation"] = "ignore"
    problems, _ = diagnose_config(config, base=ROOT)
    assert any("gating.unreadable_compensation" in p for p in problems), problems


def test_workflow_step_passes_unreadable_compensation(simulated, good, folder, tmp_path) -> None:
    from cytotrial.rules import run_gate_batch

    bad = write_fcs(simulated, folder / "bad.fcs", keywords={"$SPILLOVER": CANARY})
    samples = [
        {"sample_id": "bad", "panel": "blood", "fcs": str(bad)},
        {"sample_id": "good", "panel": "blood", "fcs": str(good)},
    ]
    strategies = {"blood": {"strategy": BLOOD, "populations": {g: g for g in GATES}}}
    outputs = {f"{kind}_out": tmp_path / f"{kind}.tsv" for kind in ("counts", "qc", "mfi")}
    for policy, status, flags in [
        ("exclude", "excluded", ""),
        ("uncompensated", "ok", "uncompensated"),
    ]:
        result = run_gate_batch(
            samples,
            strategies=strategies,
            panels=PANELS,
            compensation="fcs",
            unreadable_compensation=policy,
            **outputs,
        )
        qc = pd.read_csv(outputs["qc_out"], sep="\t", keep_default_na=False).set_index("sample_id")
        assert qc.loc["bad", "status"] == status and qc.loc["bad", "flags"] == flags
        assert qc.loc["good", "status"] == "ok"
        assert "Doe" not in outputs["qc_out"].read_text()
        assert set(result.counts["sample_id"]) == (
            {"good"} if status == "excluded" else {"bad", "good"}
        )


def test_gate_command_reads_unreadable_compensation_from_the_config(
    simulated, good, folder, tmp_path, capsys
) -> None:
    from cytotrial.cli import main

    bad = write_fcs(simulated, folder / "bad.fcs", keywords={"$SPILLOVER": CANARY})
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text(encoding="utf-8"))
    del config["demo"]
    config["samples"] = str(tmp_path / "samples.tsv")
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    path = tmp_path / "config.yaml"
    out = tmp_path / "counts.tsv"
    for policy, code in [("exclude", 1), ("uncompensated", 0)]:
        config["gating"]["unreadable_compensation"] = policy
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        args = ["gate", str(good), str(bad), "--config", str(path), "--panel", "blood"]
        assert main([*args, "--out", str(out)]) == code
        err = capsys.readouterr().err
        files = set(pd.read_csv(out, sep="\t")["file"].map(lambda f: Path(f).name))
        if policy == "exclude":
            (line,) = err.splitlines()
            assert "bad.fcs: $SPILLOVER" in line and "Doe" not in line
            assert files == {"good.fcs"}
        else:
            assert files == {"good.fcs", "bad.fcs"} and "Doe" not in err
