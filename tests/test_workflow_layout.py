"""The workflow's catalog-standard layout.

Rule descriptions and logs, profiles beside the Snakefile, catalog file, LICENSE, rule environment.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]


def _demo_workdir(tmp_path: Path) -> Path:
    """A working directory whose config is the demo's, with the strategies found in the project."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def test_list_rules_describes_every_rule(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(_demo_workdir(tmp_path)),
            "--list-rules",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # one entry per rule: `name (description)`, the description's further lines indented
    entries = [line for line in result.stdout.splitlines() if line and not line[0].isspace()]
    names = [line.split()[0] for line in entries]
    for rule in ("all", "simulate_demo", "gate", "aggregate", "stats", "figures", "gating_review"):
        assert rule in names
    undescribed = [line for line in entries if not re.match(r"^\w+ \(.+", line)]
    assert not undescribed, f"rules without a docstring: {undescribed}"
    assert not (tmp_path / "results").exists()


def test_a_bad_config_stops_before_any_work_with_one_line_per_problem(tmp_path):
    workdir = _demo_workdir(tmp_path)
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    config["analysis"]["pseudocount"] = 0
    config["sample"] = "typo.tsv"
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(workdir),
            "-n",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("cytotrial: config")]
    assert any("analysis.pseudocount" in line for line in lines), result.stderr
    assert any("'sample'" in line for line in lines), result.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def _rules(path: Path) -> dict[str, str]:
    """Rule name -> its text, for every rule or checkpoint of a Snakefile."""
    text = path.read_text()
    starts = list(re.finditer(r"^(\s*)(?:rule|checkpoint) (\w+):", text, flags=re.M))
    blocks = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        blocks[match.group(2)] = text[match.end() : end]
    return blocks


def test_every_rule_that_runs_something_has_a_log_and_a_docstring():
    for path in RULE_FILES:
        for name, body in _rules(path).items():
            assert re.match(r'\s*"""', body), f"{path.name}: rule {name} has no docstring"
            runs = re.search(r"^\s+(script|shell|run|notebook|wrapper):", body, flags=re.M)
            if runs:
                assert re.search(r"^\s+log:", body, flags=re.M), f"{path.name}: {name} has no log"


def test_profiles_sit_beside_the_snakefile():
    """Snakemake loads profiles/default beside the Snakefile without flags (not workflow/profiles)."""
    assert not (ROOT / "workflow/profiles").exists()
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert default["keep-going"] is True and default["rerun-incomplete"] is True
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    for name in ("default", "slurm"):
        text = (ROOT / "profiles" / name / "config.yaml").read_text()
        assert "workflow/profiles" not in text


def test_catalog_file_and_license():
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    usage = catalog["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert {"desc", "flags"} <= set(usage["mandatory-flags"])
    assert usage["software-stack-deployment"]["conda"] is True
    assert usage["report"] is True
    assert (ROOT / "config/README.md").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    license_text = (ROOT / "LICENSE").read_text()
    assert "BSD-3-Clause" in str(pyproject["project"]["license"])
    assert license_text.startswith("BSD 3-Clause License")
    assert "the cytotrial authors" in license_text


def test_rule_environment_installs_the_package_not_an_editable_checkout():
    env = yaml.safe_load((ROOT / "workflow/envs/cytotrial.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["../.."]
    # ../.. from workflow/envs/ is the project, whose pyproject names the package
    project = (ROOT / "workflow/envs" / pip[0]).resolve()
    assert tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"] == "cytotrial"
