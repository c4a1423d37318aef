"""The command line: simulate, inspect and gate, with one-line errors and honest exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cytotrial.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial")
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--patients-per-arm",
                "2",
                "--events",
                "3000",
                "--tumor-events",
                "2000",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    return out


def _table(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep="\t")


def test_simulate_prints_speed_and_writes_the_trial(trial, capsys):
    out = trial.parent / "again"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--patients-per-arm",
                "1",
                "--events",
                "2000",
                "--tumor-events",
                "1000",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "files/s" in printed and "events/s" in printed
    sheet = pd.read_csv(out / "samples.tsv", sep="\t")
    assert all((out / f).is_file() for f in sheet["fcs"])


def test_inspect_reports_every_file_and_fails_on_a_broken_one(trial, tmp_path, capsys):
    files = sorted((trial / "fcs").glob("*.fcs"))[:3]
    broken = tmp_path / "broken.fcs"
    broken.write_bytes(files[0].read_bytes()[:2000])
    code = main(["inspect", *map(str, files), str(broken)])
    table = _table(capsys.readouterr().out)
    assert code == 1
    assert list(table.columns) == [
        "file",
        "events",
        "channels",
        "markers",
        "spillover",
        "status",
        "message",
    ]
    assert (table["status"].iloc[:3] == "ok").all() and table["spillover"].iloc[0] == "yes"
    assert table["status"].iloc[3] == "error" and "broken.fcs" in table["message"].iloc[3]
    assert "CANARY" not in table.to_csv()
    assert main(["inspect", *map(str, files)]) == 0


def test_gate_writes_one_row_per_file_and_gate(trial, tmp_path, capsys):
    sheet = pd.read_csv(trial / "samples.tsv", sep="\t")
    blood = [trial / f for f in sheet.loc[sheet["panel"] == "blood", "fcs"][:2]]
    out = tmp_path / "counts.tsv"
    assert (
        main(
            [
                "gate",
                *map(str, blood),
                "--strategy",
                str(ROOT / "resources/gating/blood.xml"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == ["file", "gate_path", "population", "count", "parent_count"]
    assert table.groupby("file").size().tolist() == [10, 10]
    truth = pd.read_csv(trial / "truth/populations.tsv", sep="\t")
    sid = blood[0].stem
    cd8 = table[(table["file"] == str(blood[0])) & (table["population"] == "cd8")]["count"].item()
    true_cd8 = truth[(truth["sample_id"] == sid) & (truth["population"] == "cd8")]["count"].item()
    assert abs(cd8 - true_cd8) <= 0.03 * true_cd8


def test_gate_a_tumor_file_with_the_blood_strategy_names_what_is_missing(trial, capsys):
    sheet = pd.read_csv(trial / "samples.tsv", sep="\t")
    tumor = trial / sheet.loc[sheet["panel"] == "tumor", "fcs"].iloc[0]
    # the tumor strategy needs CD45, which blood files lack
    blood = trial / sheet.loc[sheet["panel"] == "blood", "fcs"].iloc[0]
    code = main(
        ["gate", str(blood), str(tumor), "--strategy", str(ROOT / "resources/gating/tumor.xml")]
    )
    captured = capsys.readouterr()
    assert code == 1
    (line,) = [l for l in captured.err.splitlines() if l.startswith("cytotrial:")]
    assert blood.name in line and "BV786-A" in line
    assert len(_table(captured.out)) == 11  # the tumor file was still gated


def test_user_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "strategy.xml"
    bad.write_text("not xml at all")
    result = subprocess.run(
        [sys.executable, "-m", "cytotrial.cli", "gate", str(bad), "--strategy", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cytotrial:") and "strategy.xml" in lines[0]
