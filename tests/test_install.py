"""Packaging: a plain (not editable) install into a fresh venv runs the workflow; the code is lint-clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a user's clone holds besides the package source: the workflow and its inputs.
WORKFLOW_PARTS = ["Snakefile", "workflow", "config", "resources", "profiles"]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_ruff_lint_and_format_are_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    _run([ruff, "check", str(ROOT)], cwd=ROOT)
    _run([ruff, "format", "--check", str(ROOT)], cwd=ROOT)


@pytest.mark.e2e
def test_plain_install_in_a_fresh_venv_runs_the_demo(tmp_path):
    """`pip install .` (not editable) into a new venv; the workflow, with no source tree beside it, runs."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(ROOT)])
    # The installed copy, not the checkout: no src/ in the project folder the workflow runs from.
    project = tmp_path / "project"
    project.mkdir()
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(
                source, project / part, ignore=shutil.ignore_patterns("demo", "__pycache__")
            )
        elif source.is_file():
            shutil.copy2(source, project / part)
    where = _run(
        [str(python), "-c", "import cytotrial, sys; print(cytotrial.__file__)"], cwd=project
    ).stdout.strip()
    assert where.startswith(str(venv)), where
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    _run([str(python), "-m", "snakemake", "--cores", "2"], cwd=project, env=env)
    for output in ("counts/populations.h5ad", "counts/populations.tsv", "qc/samples.tsv"):
        assert (project / "results" / output).stat().st_size > 0, output
    assert (project / "results/stats/mmrm.tsv").stat().st_size > 0
    version = _run([str(venv / "bin" / "cytotrial"), "--version"]).stdout
    assert version.startswith("cytotrial ")
