"""The workflow config check: each problem named by its key, one line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cytotrial.config import (
    canonical_populations,
    check_config,
    check_section,
    config_problems,
    config_reference,
    defaults,
    load_schema,
    resolve_config,
)
from cytotrial.errors import ConfigError

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
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("cytotrial:")]
    assert line.startswith(
        "cytotrial: config gating.batch_size: -3 is less than the minimum of 1 (FCS files per gating job"
    )


def test_config_readme_is_written_from_the_schema():
    """config/README.md is the output of `cytotrial config-docs`: the schema is the one source."""
    assert (ROOT / "config/README.md").read_text(encoding="utf-8") == config_reference(), (
        "config/README.md is out of date: run `cytotrial config-docs > config/README.md`"
    )


def test_every_key_of_the_schema_is_in_the_readme_with_its_default():
    text = config_reference()
    for section, values in defaults().items():
        if isinstance(values, dict) and values and section not in ("arms",):
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    assert f"| `{section}.{key}` | {value} |" in text, (section, key)


def test_defaults_are_filled_at_every_level():
    config = {
        "samples": "s.tsv",
        "strategies": {"p": {"strategy": "x.xml", "populations": {}}},
        "analysis": {"measure": {"blood": "count"}},
    }
    resolved = resolve_config(config)
    assert resolved["analysis"]["measure"] == {"blood": "count", "tumor": "freq_parent"}
    assert resolved["analysis"]["alpha"] == defaults("analysis")["alpha"]
    assert resolved["gating"] == {"compensation": "fcs", "batch_size": 400}
    assert config["analysis"] == {"measure": {"blood": "count"}}  # the input is left alone


def test_unknown_top_level_key_and_zero_pseudocount_stop_up_front():
    config = _config()
    config["sample"] = config.pop("samples")
    config["analysis"]["pseudocount"] = 0
    with pytest.raises(ConfigError) as error:
        check_config(config, base=ROOT)
    lines = str(error.value).splitlines()
    assert any("'samples' is a required property" in line for line in lines)
    assert any("'sample' was unexpected" in line for line in lines)
    assert any(
        line.startswith("config analysis.pseudocount: 0 is less than or equal") for line in lines
    )


def test_check_section_fills_and_checks_one_section():
    assert check_section("analysis", None) == defaults("analysis")
    with pytest.raises(ConfigError, match=r"config analysis\.alpha: 2 is greater"):
        check_section("analysis", {"alpha": 2})


def test_population_names_live_in_the_schema_only():
    schema = load_schema("config")
    assert canonical_populations() == schema["$defs"]["population"]["enum"]
    assert load_schema("config") is not load_schema("config")  # callers get their own copy
