"""A user's own trial from a config written from nothing: no demo key, arm, name or path applies.

The trial is built on real data: FlowJo's own workspace of a quadrant gate (population names such as
``Q1: channel_A- , channel_B+``) and its FCS file, read in place from the external reference data
(linked into the project folder, as a user's files would sit beside their config).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e

# FlowJo's stored counts of the four quadrants (the workspace's `count` attributes).
FLOWJO_COUNTS = {
    "a_neg_b_pos": ("Q1: channel_A- , channel_B+", 49671),
    "a_pos_b_pos": ("Q2: channel_A+ , channel_B+", 50596),
    "a_pos_b_neg": ("Q3: channel_A+ , channel_B-", 50330),
    "a_neg_b_neg": ("Q4: channel_A- , channel_B-", 49403),
}
DEMO_WORDS = ["BEMPEG", "NIVO", "resources/demo", "resources/gating", "C1D1", "C1D8", "cd8", "treg"]


def _user_project(root: Path, external: Path) -> Path:
    folder = external / "flowjo-workspaces" / "simple_diamond_example"
    (root / "gating").mkdir(parents=True)
    (root / "gating" / "quadrants.wsp").symlink_to(folder / "simple_diamond_example_quad_gate.wsp")
    (root / "fcs").mkdir()
    rows = []
    for arm, patients in (("Combination", ("U01", "U02")), ("Control", ("U03", "U04"))):
        for patient in patients:
            for visit, day in (("SCREEN", 1), ("WEEK2", 15)):
                for compartment in ("bone marrow", "lymph node"):
                    sample = f"{patient}_{visit}_{compartment.replace(' ', '_')}"
                    link = root / "fcs" / f"{sample}.fcs"
                    link.symlink_to(folder / "test_data_diamond_01.fcs")
                    rows.append(
                        dict(
                            sample_id=sample,
                            patient_id=patient,
                            arm=arm,
                            visit=visit,
                            cycle=1,
                            day=day,
                            compartment=compartment,
                            panel="diamond",
                            batch="R1",
                            fcs=f"fcs/{sample}.fcs",
                        )
                    )
    pd.DataFrame(rows).to_csv(root / "sheet.tsv", sep="\t", index=False)
    config = {
        "samples": "sheet.tsv",
        "arms": {"Combination": "#8E44AD", "Control": "#16A085"},
        "panels": {"MarkerA": ["channel_A"], "MarkerB": ["channel_B"]},
        "strategies": {
            "diamond": {
                "strategy": "gating/quadrants.wsp",
                "populations": {name: gate for name, (gate, _) in FLOWJO_COUNTS.items()},
            }
        },
        "populations": {
            "b_positive": {"boolean": "a_neg_b_pos or a_pos_b_pos", "label": "MarkerB+"},
        },
        "ratios": {"double_pos_per_double_neg": ["a_pos_b_pos", "a_neg_b_neg"]},
        "mfi": {"markers": {"a_pos_b_pos": ["MarkerA"]}, "min_events": 10},
        "analysis": {"measure": {"bone marrow": "count", "lymph node": "freq_parent"}},
    }
    (root / "my_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def user_run(tmp_path_factory, external_data):
    root = _user_project(tmp_path_factory.mktemp("user"), external_data)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(root),
            "--cores",
            "2",
            "--configfile",
            str(root / "my_config.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return root


def test_every_gate_is_reported_under_the_users_names_with_flowjos_counts(user_run):
    table = pd.read_csv(user_run / "results/counts/populations.tsv", sep="\t")
    assert set(table["population"]) == set(FLOWJO_COUNTS) | {"b_positive"}
    for name, (_, count) in FLOWJO_COUNTS.items():
        assert (table.loc[table["population"] == name, "count"] == count).all(), name
    b_positive = table.loc[table["population"] == "b_positive", "count"]
    assert (b_positive == 49671 + 50596).all()
    assert set(table["compartment"]) == {"bone marrow", "lymph node"}
    # freq_parent is count over the count of the population the parent column names
    counts = table.set_index(["sample_id", "population"])["count"]
    for row in table.itertuples():
        parent = row.parent if isinstance(row.parent, str) and row.parent else None
        denominator = counts[(row.sample_id, parent)] if parent else 200_000
        assert row.freq_parent == pytest.approx(row.count / denominator), row


def test_ratio_and_mfi_are_reported(user_run):
    ratios = pd.read_csv(user_run / "results/counts/ratios.tsv", sep="\t")
    assert (ratios["value"].round(9) == round(50596 / 49403, 9)).all()
    mfi = pd.read_csv(user_run / "results/counts/mfi.tsv", sep="\t")
    assert set(mfi["population"]) == {"a_pos_b_pos"} and set(mfi["marker"]) == {"MarkerA"}
    assert (mfi["channel"] == "channel_A").all() and (mfi["n_events"] == 50596).all()
    assert mfi["median"].notna().all()


def test_nothing_of_the_demo_reaches_any_output_or_the_provenance(user_run):
    adata = ad.read_h5ad(user_run / "results/counts/populations.h5ad")
    provenance = json.dumps(adata.uns["provenance"], default=str)
    assert "Combination" in provenance  # the user's config is recorded
    texts = {"provenance": provenance}
    for path in (user_run / "results").rglob("*.tsv"):
        texts[str(path.relative_to(user_run))] = path.read_text()
    for where, text in texts.items():
        for word in DEMO_WORDS:
            assert word not in text, (word, where)
        assert str(user_run) not in text, where
    assert not (user_run / "resources").exists()


def test_statistics_cover_the_users_features_and_compartments(user_run):
    log2fc = pd.read_csv(user_run / "results/stats/log2fc.tsv", sep="\t")
    features = set(log2fc["population"])
    assert {"b_positive", "double_pos_per_double_neg", "a_pos_b_pos:MarkerA"} <= features
    assert set(log2fc["compartment"]) == {"bone marrow", "lymph node"}
    # the baseline is each compartment's earliest visit: SCREEN rows are the baseline (log2fc 0)
    assert set(log2fc["visit"]) == {"SCREEN", "WEEK2"}
    assert (log2fc.loc[log2fc["visit"] == "SCREEN", "log2fc"] == 0).all()
