"""The workflow config check: each problem named by its key, one line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cytotrial.config import (
    check_config,
    check_section,
    config_problems,
    config_reference,
    defaults,
    load_schema,
    population_model,
    reported_populations,
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
        p.startswith("config analysis.measure.blood: 'percent' is not allowed (one of count")
        for p in problems
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
    assert resolved["analysis"]["measure"] == {"blood": "count"}  # unlisted: freq_parent
    assert resolved["mfi"] == {"markers": {}, "min_events": 100}
    assert resolved["analysis"]["alpha"] == defaults("analysis")["alpha"]
    assert resolved["gating"]["compensation"] == "fcs"
    assert resolved["gating"]["batch_size"] == 400
    assert resolved["gating"]["unreadable_compensation"] == "exclude"
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


def test_the_library_holds_no_population_names():
    """Population names are the user's: the schema only constrains their spelling."""
    schema = load_schema("config")
    assert "enum" not in schema["$defs"]["name"]
    assert load_schema("config") is not load_schema("config")  # callers get their own copy


def test_reported_populations_follow_the_config_order_and_booleans_parse():
    config = _config()
    names = reported_populations(config)
    assert names[: len(config["populations"])] == list(config["populations"])
    model = population_model(config)
    assert model["cd4_conv"]["boolean"] == ("and", ("name", "cd4"), ("not", ("name", "treg")))
    assert model["cd8"]["gates"] == {"blood": "cd8", "tumor": "cd8"}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["populations"].update(x={"boolean": "cd8 and"}),
            "config populations.x.boolean:",
        ),
        (
            lambda c: c["populations"].update(x={"boolean": "cd8 and cd99"}),
            "cd99 is not a reported population",
        ),
        (
            lambda c: c["populations"].update(x={"label": "no gate"}),
            "config populations.x: no strategies",
        ),
        (
            lambda c: c["populations"].update(a={"boolean": "b"}, b={"boolean": "a"}),
            "refers to itself",
        ),
        (lambda c: c["populations"]["cd8"].update(boolean="cd3"), "defined both as a boolean"),
        (
            lambda c: c["populations"]["cd8"].update(parent="cd99"),
            "config populations.cd8.parent: 'cd99'",
        ),
        (lambda c: c["ratios"].update(r=["cd8", "cd99"]), "config ratios.r: 'cd99'"),
        (lambda c: c["ratios"].update(cd8=["cd8", "treg"]), "already a population"),
        (lambda c: c["mfi"]["markers"].update(cd99=["Ki67"]), "config mfi.markers.cd99"),
        (lambda c: c["mfi"]["markers"].update(cd8=["Live/Dead"]), "config mfi.markers.cd8.0"),
        (lambda c: c["qc"]["min_events"].update(cd99=5), "config qc.min_events.cd99"),
        (lambda c: c["analysis"]["populations"].append("cd8:CD99"), "'cd8:CD99' is not a reported"),
        (
            lambda c: c["analysis"]["measure"].update(tumor="freq_cd3"),
            "freq_cd3 needs 'cd3' in frequencies.of",
        ),
        (lambda c: c["frequencies"].update(of=["cd99"]), "config frequencies.of: 'cd99'"),
        (lambda c: c.update(sample="x.tsv"), "'sample' was unexpected"),
    ],
)
def test_bad_population_references_are_one_line_each(edit, expected):
    config = _config()
    edit(config)
    problems = config_problems(config, base=ROOT)
    assert any(expected in line for line in problems), problems
    assert all("\n" not in line for line in problems)


def test_a_users_config_needs_no_demo_defaults(tmp_path):
    """No `live` gate, no `demo:`, no analysis section: the defaults that name populations drop."""
    strategy = tmp_path / "s.xml"
    strategy.write_text((ROOT / "resources/gating/blood.xml").read_text())
    config = {
        "samples": "sheet.tsv",
        "arms": {"A": "red", "B": "blue"},
        "strategies": {"p": {"strategy": str(strategy), "populations": {"t": "cd3"}}},
    }
    resolved = check_config(config, base=tmp_path)
    assert resolved["frequencies"]["of"] == [] and resolved["absolute"]["reference"] == ""
    assert "demo" not in resolved and resolved["analysis"]["reference_arm"] == ""
