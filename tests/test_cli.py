"""The command line: simulate, inspect and gate, with one-line errors and honest exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cytotrial.cli import main
from cytotrial.io import load_strategy

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
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(table.columns) == [
        "file",
        "population",
        "gate_path",
        "parent",
        "count",
        "parent_count",
    ]
    n_gates = len(load_strategy(ROOT / "resources/gating/blood.xml").gates)
    assert table.groupby("file").size().tolist() == [n_gates, n_gates]
    assert table["file"].unique().tolist() == [str(f) for f in blood]  # in the order given
    first = table[table["file"] == str(blood[0])].set_index("population")
    assert first.loc["nk", "parent"] == "cd3_neg" and first.loc["lymphocytes", "parent"] == ""
    assert first.loc["nk", "parent_count"] == first.loc["cd3_neg", "count"]
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
    n_gates = len(load_strategy(ROOT / "resources/gating/tumor.xml").gates)
    assert len(_table(captured.out)) == n_gates  # the tumor file was still gated


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


def _config_file(tmp_path: Path, **gating) -> Path:
    """The demo's config for a trial of one's own: strategies by absolute path, no demo section."""
    import yaml

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text(encoding="utf-8"))
    del config["demo"]
    config["samples"] = str(tmp_path / "samples.tsv")
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    config["gating"].update(gating)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_gate_with_the_config_counts_exactly_as_the_workflow_step(trial, tmp_path):
    """One code path: compensation from a config matrix file, aliases, populations, Booleans."""
    import yaml

    from cytotrial.config import check_config
    from cytotrial.io import read_fcs
    from cytotrial.rules import run_gate_batch

    sheet = pd.read_csv(trial / "samples.tsv", sep="\t")
    blood = sorted(trial / f for f in sheet.loc[sheet["panel"] == "blood", "fcs"][:3])
    matrix = read_fcs(blood[0]).spill.copy()
    matrix.loc["FITC-A", "PE-A"] += 0.15  # CD3 spills more into CD25: Treg gating moves
    matrix.loc["APC-H7-A", "PerCP-Cy5-5-A"] += 0.1
    matrix.to_csv(tmp_path / "matrix.csv")
    config_path = _config_file(tmp_path, compensation=str(tmp_path / "matrix.csv"))
    config = check_config(yaml.safe_load(config_path.read_text(encoding="utf-8")))

    out, mfi_out = tmp_path / "cli.tsv", tmp_path / "cli_mfi.tsv"
    code = main(
        ["gate", *map(str, blood), "--config", str(config_path), "--panel", "blood"]
        + ["--out", str(out), "--mfi-out", str(mfi_out)]
    )
    assert code == 0
    cli = pd.read_csv(out, sep="\t", keep_default_na=False)

    def workflow(compensation: str) -> pd.DataFrame:
        run_gate_batch(
            [{"sample_id": p.stem, "panel": "blood", "fcs": str(p)} for p in blood],
            strategies=config["strategies"],
            panels=config["panels"],
            compensation=compensation,
            populations=config["populations"],
            mfi=config["mfi"],
            counts_out=tmp_path / "counts.tsv",
            qc_out=tmp_path / "qc.tsv",
            mfi_out=tmp_path / "mfi.tsv",
        )
        return pd.read_csv(tmp_path / "counts.tsv", sep="\t", keep_default_na=False)

    own = workflow("fcs")  # the files' own $SPILLOVER
    step = workflow(config["gating"]["compensation"])
    assert cli["file"].map(lambda f: Path(f).stem).tolist() == step["sample_id"].tolist()
    assert cli.drop(columns="file").equals(step.drop(columns="sample_id"))
    assert "cd8_activated" in set(cli["population"]) and "cd4_conv" in set(cli["population"])
    assert not own["count"].equals(step["count"])  # the matrix matters
    mfi = pd.read_csv(mfi_out, sep="\t", keep_default_na=False)
    step_mfi = pd.read_csv(tmp_path / "mfi.tsv", sep="\t", keep_default_na=False)
    assert len(mfi) == 3 * 4  # cd8: Ki67, HLA-DR, CD38; treg: CD25
    assert mfi.drop(columns="file").equals(step_mfi.drop(columns="sample_id"))


def test_gate_with_the_config_chooses_the_panel(trial, tmp_path, capsys):
    sheet = pd.read_csv(trial / "samples.tsv", sep="\t")
    tumor = trial / sheet.loc[sheet["panel"] == "tumor", "fcs"].iloc[0]
    config = str(_config_file(tmp_path))
    assert main(["gate", str(tumor), "--config", config]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "cytotrial: gate: the config has panels blood, tumor; choose one with --panel"
    strategy = str(ROOT / "resources/gating/tumor.xml")
    assert main(["gate", str(tumor), "--config", config, "--strategy", strategy]) == 0
    table = _table(capsys.readouterr().out).set_index("population")
    assert table.loc["cd3", "parent"] == "leukocytes"
    assert (
        main(["gate", str(tumor), "--config", config, "--panel", "blood", "--strategy", strategy])
        == 2
    )
    assert "is not the strategy of panel blood" in capsys.readouterr().err
    assert main(["gate", str(tumor), "--config", config, "--panel", "marrow"]) == 2
    assert "--panel marrow is not a panel" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("arms: {A: red}\n")
    assert main(["gate", str(tumor), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert all(l.startswith("cytotrial: config") for l in capsys.readouterr().err.splitlines())
