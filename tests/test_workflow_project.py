"""End to end in a user's project folder: a plain `snakemake`, a moved folder, a growing trial.

The folder holds the workflow (Snakefile, workflow/, profiles/, config/, resources/gating) and a
small simulated trial in data/, and runs the gating and aggregation with `snakemake` and no flags,
as a user would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import planned_jobs as dry_run_jobs
from conftest import run_snakemake
from cytotrial.cli import main
from cytotrial.rules import assign_batches

ROOT = Path(__file__).resolve().parents[1]
TARGET = "results/counts/populations.h5ad"
BATCH_SIZE = 4
pytestmark = pytest.mark.e2e


def snakemake(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`snakemake ARGS` run in the project folder, as a user types it."""
    return run_snakemake(project, *args, check=check, in_place=True)


def planned_jobs(project: Path, *targets: str) -> dict[str, int]:
    """Rule -> number of jobs a dry run in the project folder would run."""
    return dry_run_jobs(project, *targets, in_place=True)


def read_sheet(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data/samples.tsv", sep="\t", dtype=str, keep_default_na=False)


def copy_project(project: Path, to: Path) -> Path:
    shutil.copytree(project, to, symlinks=True)  # keeps modification times
    return to


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with a 2 + 2 patient trial, gated and aggregated by a plain `snakemake`."""
    root = tmp_path_factory.mktemp("projects") / "trial"
    root.mkdir()
    shutil.copy(ROOT / "Snakefile", root / "Snakefile")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("workflow", "profiles", "config", "resources/gating"):
        shutil.copytree(ROOT / folder, root / folder, ignore=skip)
    arguments = ["--patients-per-arm", "2", "--events", "2000", "--tumor-events", "1000"]
    assert main(["simulate", "--out", str(root / "data"), *arguments, "--seed", "7"]) == 0
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config["samples"] = "data/samples.tsv"
    config["patients"] = "data/patients.tsv"
    config["gating"]["batch_size"] = BATCH_SIZE
    (root / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(root, TARGET)  # no --cores: the default profile gives them
    (root / "first_run.stderr").write_text(result.stderr)
    return root


def test_a_plain_snakemake_uses_the_default_profile(project):
    """Snakemake finds profiles/default beside the Snakefile and takes its settings (here: cores)."""
    stderr = (project / "first_run.stderr").read_text()
    assert "Using workflow specific profile profiles/default for setting default command line" in (
        " ".join(stderr.split())
    )
    assert planned_jobs(project, TARGET) == {}
    without = snakemake(project, TARGET, "--workflow-profile", "none", check=False)
    assert without.returncode != 0 and "cores have to be specified" in without.stderr
    profile = yaml.safe_load((project / "profiles/default/config.yaml").read_text())
    assert profile["keep-going"] is True and profile["rerun-incomplete"] is True


def test_outputs_and_inputs_hold_no_absolute_path(project):
    import anndata as ad

    sheet = read_sheet(project)
    adata = ad.read_h5ad(project / TARGET)
    fcs_of = dict(zip(sheet["sample_id"], sheet["fcs"]))
    assert list(adata.obs["fcs"]) == [fcs_of[s] for s in adata.obs_names]
    assert all(not Path(f).is_absolute() for f in adata.obs["fcs"])
    for path in (project / "results/gating/batches").glob("batch_*.tsv"):
        members = pd.read_csv(path, sep="\t", dtype=str)
        assert list(members.columns) == ["sample_id", "panel", "fcs", "sha256"]
        assert all(f.startswith("data/fcs/") for f in members["fcs"]), path
    for table in ("results/counts/populations.tsv", "results/qc/samples.tsv"):
        assert str(project) not in (project / table).read_text()


def test_a_moved_project_folder_has_nothing_to_do(project, tmp_path):
    first = copy_project(project, tmp_path / "first")
    moved = first.rename(tmp_path / "moved")
    assert planned_jobs(moved, TARGET) == {}


def test_adding_a_sample_regates_one_batch_at_most(project, tmp_path):
    """A new sample that raises the number of batches re-gates only the batch it falls in."""
    work = copy_project(project, tmp_path / "grow")
    sheet = read_sheet(work)
    before = assign_batches(sheet["sample_id"], batch_size=BATCH_SIZE, panels=sheet["panel"])
    # a new patient's baseline blood sample whose batch is full, so that it splits in two
    for number in range(100, 1000):
        new_id = f"P{number}_C1D1_blood"
        after = assign_batches(
            [*sheet["sample_id"], new_id],
            batch_size=BATCH_SIZE,
            panels=[*sheet["panel"], "blood"],
        )
        if len(set(after.values())) > len(set(before.values())):
            break
    template = sheet[(sheet["compartment"] == "blood") & (sheet["visit"] == "C1D1")].iloc[0]
    shutil.copy(work / "data" / template["fcs"], work / "data/fcs" / f"{new_id}.fcs")
    row = template.copy()
    row[["sample_id", "patient_id", "fcs"]] = [new_id, f"P{number}", f"fcs/{new_id}.fcs"]
    pd.concat([sheet, row.to_frame().T]).to_csv(
        work / "data/samples.tsv", sep="\t", index=False, lineterminator="\n"
    )
    files = {p.name: p.stat().st_mtime_ns for p in (work / "results/gating/batches").iterdir()}

    jobs = planned_jobs(work, TARGET)

    old, new = {}, {}
    for sample, batch in before.items():
        old.setdefault(batch, set()).add(sample)
    for sample, batch in after.items():
        new.setdefault(batch, set()).add(sample)
    changed = {batch for batch, members in new.items() if old.get(batch) != members}
    regated = set().union(*(new[batch] for batch in changed))
    assert jobs["gate"] == len(changed) >= 2 and len(new) > len(old)
    assert len(regated) <= BATCH_SIZE + 1 and new_id in regated
    assert jobs["gate"] < len(new)  # the other batches are not re-gated
    for batch in set(new) - changed:  # their membership files keep their timestamps
        assert (
            files[f"batch_{batch}.tsv"]
            == (work / f"results/gating/batches/batch_{batch}.tsv").stat().st_mtime_ns
        )
