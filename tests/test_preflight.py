"""The pre-flight check as a library: what it returns, what it lets through, how it reads a typo.

The bad-input corpus (``test_bad_input.py``) holds the many ways to get input wrong; these tests
hold the check's own contract.
"""

from __future__ import annotations

import copy
import io
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT
from cytotrial.config import check_config, diagnose_config
from cytotrial.errors import CytotrialError
from cytotrial.preflight import Findings, check_before_run, check_inputs, preflight


def _demo_config() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "config/config.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's config in a folder with a small simulated demo trial and the demo's strategies."""
    from cytotrial.sim import simulate_trial

    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(PROJECT_ROOT / "resources/gating", root / "resources/gating")
    simulate_trial(
        root / "resources/demo", patients_per_arm=2, events=2000, tumor_events=1000, seed=5
    )
    return root


def test_the_demo_passes_and_resolves_as_check_config(demo_project: Path) -> None:
    config = _demo_config()
    findings = preflight(config, base=demo_project)
    assert findings == Findings(errors=[], warnings=[], config=findings.config)
    assert findings.config == check_config(config, base=demo_project)
    assert check_before_run(config, base=demo_project) == findings.config
    check_inputs(findings.config, base=demo_project)  # the demo's sheet and patients agree


def test_the_checked_sheet_is_kept_for_the_run_only_when_it_has_no_problem(
    demo_project: Path,
) -> None:
    """The workflow reads a big sheet once: the check hands over the table it read."""
    import pandas as pd

    from cytotrial.io import read_sample_sheet

    config = _demo_config()
    kept: dict = {}
    resolved = check_before_run(config, base=demo_project, keep=kept)
    expected = read_sample_sheet(
        demo_project / config["samples"],
        arms=list(resolved["arms"]),
        panels=list(resolved["strategies"]),
    )
    pd.testing.assert_frame_equal(kept["samples"], expected)
    again: dict = {}
    check_inputs(resolved, base=demo_project, keep=again)
    pd.testing.assert_frame_equal(again["samples"], expected)

    # a sheet with a problem: an error, and nothing kept
    sheet = demo_project / "bad_samples.tsv"
    table = pd.read_csv(demo_project / config["samples"], sep="\t", dtype=str)
    table.loc[0, "arm"] = "placebo"
    table.to_csv(sheet, sep="\t", index=False)
    bad = {**config, "samples": str(sheet)}
    nothing: dict = {}
    with pytest.raises(CytotrialError, match="placebo"):
        check_before_run(bad, base=demo_project, keep=nothing, stream=io.StringIO())
    assert nothing == {}


def test_inputs_are_left_alone_when_asked(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo_project)  # as the workflow runs: paths relative to the working folder
    config = _demo_config()
    config["samples"] = "nowhere/samples.tsv"
    assert preflight(config, inputs=False).errors == []
    assert preflight(config).errors == [
        "nowhere/samples.tsv: sample sheet not found; check the path in config"
    ]


def test_warnings_are_written_and_errors_raised_one_line_each(demo_project: Path) -> None:
    config = _demo_config()
    sheet = (demo_project / "resources/demo/samples.tsv").read_text(encoding="utf-8")
    patients = (demo_project / "resources/demo/patients.tsv").read_text(encoding="utf-8")
    first = patients.splitlines()[1].split("\t")[0]
    kept = [line for line in patients.splitlines() if not line.startswith(f"{first}\t")]
    (demo_project / "patients_short.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    config["patients"] = "patients_short.tsv"
    stream = io.StringIO()
    check_before_run(config, base=demo_project, stream=stream)
    assert stream.getvalue().splitlines() == [
        f"cytotrial: warning: patients_short.tsv: patient {first!r} has samples in "
        "resources/demo/samples.tsv but no row here: left out of the response rate and the "
        "responder and survival tables; add a row (an empty best_response counts as NE, not "
        "evaluable)"
    ]
    assert first in sheet
    config["analysis"]["alpha"] = 2
    config["arms"]["NIVO"] = "not a colour"
    with pytest.raises(CytotrialError) as raised:
        check_before_run(config, base=demo_project, stream=io.StringIO())
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("config analysis.alpha: 2 is greater than or equal to the maximum")
    assert lines[1].startswith("config arms.NIVO: 'not a colour' is not a colour")


def test_a_typo_is_read_as_meant_so_what_it_holds_is_checked_too() -> None:
    config = _demo_config()
    config["qc"] = {"min_event": {"cd8": -1, "cd99": 5}}
    problems, resolved = diagnose_config(config, base=PROJECT_ROOT)
    assert problems == [
        "config qc: 'min_event' was unexpected; did you mean 'min_events'?",
        "config qc.min_events.cd8: -1 is less than the minimum of 0",
        "config qc.min_events.cd99: 'cd99' is not a reported population (lymphocytes, singlets, "
        "live, leukocytes, cd3, cd4, cd4_conv, treg, cd8, cd8_ki67, cd8_hladr, cd8_cd38, "
        "cd8_activated, nk)",
    ]
    assert resolved is not None and resolved["qc"]["min_events"] == {"cd8": -1, "cd99": 5}


def test_a_value_of_the_wrong_type_is_left_out_of_the_later_checks() -> None:
    config = _demo_config()
    config["ratios"] = {"cd8_treg": "cd8/treg"}  # a string, not a pair
    config["analysis"]["populations"] = [
        p for p in config["analysis"]["populations"] if p != "cd8_treg"
    ]
    problems, resolved = diagnose_config(config, base=PROJECT_ROOT)
    assert problems == ["config ratios.cd8_treg: 'cd8/treg' is not of type 'array'"]
    assert resolved is not None and resolved["ratios"] == {}


def test_a_config_that_is_no_mapping_is_one_line() -> None:
    assert diagnose_config(["samples.tsv"]) == (
        ["config: must be a mapping of keys; see config/README.md"],
        None,
    )
    findings = preflight(["samples.tsv"])
    assert findings.config is None and len(findings.errors) == 1


def test_without_the_required_keys_nothing_further_is_checked() -> None:
    config = copy.deepcopy(_demo_config())
    del config["strategies"]
    config["analysis"]["reference_arm"] = "PLACEBO"  # would be a problem, but is not reached
    findings = preflight(config, base=PROJECT_ROOT)
    assert findings.errors == ["config (top level): 'strategies' is a required property"]
    assert findings.config is None


def test_cytotrial_gate_with_a_config_says_every_problem_of_its_panel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cytotrial.cli import main
    from cytotrial.sim import spillover_matrix

    config = _demo_config()
    for spec in config["strategies"].values():
        spec["strategy"] = str(PROJECT_ROOT / spec["strategy"])
    config["strategies"]["blood"]["populations"]["treg"] = "Treg"
    config["strategies"]["tumor"]["populations"]["nk"] = "NK"  # another panel: not this run's
    (spillover_matrix("blood") * 100).to_csv(tmp_path / "matrix.csv")
    config["gating"]["compensation"] = str(tmp_path / "matrix.csv")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code = main(["gate", str(tmp_path / "none.fcs"), "--config", str(tmp_path / "config.yaml"),
                 "--panel", "blood"])  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 2, lines
    assert lines[0].startswith(
        "cytotrial: config strategies.blood.populations.treg: blood.xml: no gate named 'Treg'"
    )
    assert lines[1].startswith("cytotrial: config gating.compensation: ") and (
        "the diagonal must be 1" in lines[1]
    )


def test_the_strategies_findings_are_kept_until_something_they_read_changes(
    demo_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-run reads the strategies' findings back.

    An edit to a strategy, the config or the sample sheet checks again; a run with a problem is
    always checked.
    """
    import cytotrial.preflight._strategies as strategies

    project = tmp_path / "project"
    shutil.copytree(demo_project, project)
    cache = tmp_path / "cache" / "preflight.json"
    config = _demo_config()
    config["mfi"]["markers"]["cd8"].append("CD999")  # a warning the strategies' check gives
    first = preflight(config, base=project, cache=cache)
    assert first.errors == [] and any("CD999" in w for w in first.warnings)
    assert cache.is_file()
    loads = []
    real = strategies.strategy_findings
    monkeypatch.setattr(
        strategies, "strategy_findings", lambda *a, **k: loads.append(1) or real(*a, **k)
    )
    assert preflight(config, base=project, cache=cache) == first and loads == []

    # the config changes: checked again (and kept under the new key)
    config["mfi"]["markers"]["cd8"].remove("CD999")
    again = preflight(config, base=project, cache=cache)
    assert loads == [1] and not any("CD999" in w for w in again.warnings)
    assert preflight(config, base=project, cache=cache) == again and loads == [1]

    # a strategy file changes: a reported gate is renamed, the problem is said
    strategy = project / config["strategies"]["blood"]["strategy"]
    text = strategy.read_text(encoding="utf-8")
    strategy.write_text(text.replace('gating:id="cd8"', 'gating:id="cd8x"'), encoding="utf-8")
    kept = cache.read_bytes()
    broken = preflight(config, base=project, cache=cache)
    assert loads == [1, 1] and any("cd8" in e for e in broken.errors)
    assert cache.read_bytes() == kept  # findings with an error are not kept
    assert preflight(config, base=project, cache=cache).errors == broken.errors
    assert loads == [1, 1, 1]
    strategy.write_text(text, encoding="utf-8")
    assert preflight(config, base=project, cache=cache) == again and loads == [1, 1, 1]

    # the sample sheet changes (a FlowJo sample group is matched against it): checked again
    sheet = project / config["samples"]
    sheet.write_text(sheet.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    preflight(config, base=project, cache=cache)
    assert loads == [1, 1, 1, 1]
    # an unreadable cache is no cache
    cache.write_text("{not json", encoding="utf-8")
    assert preflight(config, base=project, cache=cache) == again and len(loads) == 5
