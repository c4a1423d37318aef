"""The workflow config check: each problem named by its key, one line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from cytotrial.config import config_problems

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_default_config_is_fine():
    assert config_problems(_config(), base=ROOT) == []


def test_bad_values_name_their_keys():
    config = _config()
    config["gating"]["batch_size"] = 0
    config["analysis"]["measure"]["blood"] = "percent"
    config["qc"]["min_evnts"] = {}
    problems = config_problems(config, base=ROOT)
    assert any(
        p.startswith("config gating.batch_size: 0 is less than the minimum of 1") for p in problems
    )
    assert any(
        p.startswith("config analysis.measure.blood: 'percent' is not one of") for p in problems
    )
    assert any(p.startswith("config qc:") and "min_evnts" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_missing_strategy_file_and_unknown_reference_arm():
    config = _config()
    config["strategies"]["tumor"]["strategy"] = "resources/gating/nowhere.xml"
    config["analysis"]["reference_arm"] = "PLACEBO"
    problems = config_problems(config, base=ROOT)
    assert (
        "config strategies.tumor.strategy: file resources/gating/nowhere.xml not found" in problems
    )
    assert any("reference_arm: 'PLACEBO' is not one of the arms" in p for p in problems)


def test_snakemake_stops_on_a_bad_config_with_one_line_per_problem(tmp_path):
    config = _config()
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    config["gating"]["batch_size"] = -3
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(tmp_path),
            "-n",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "cytotrial: config gating.batch_size: -3 is less than the minimum of 1 (FCS files per gating job.)"
    ]
