"""End to end: the workflow on the embedded demo, its outputs against contracts and truth, re-runs.

One run of the default demo (the same trial a user's first `snakemake --cores 2` makes; conftest's
`default_demo`) is shared by the tests of this module and the other end-to-end modules; other tests
run the workflow on small sheets of their own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import planned_jobs as dry_run_jobs
from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
POPULATIONS = ["cd3", "cd4", "cd4_conv", "cd8", "treg", "nk", "cd8_ki67", "cd8_activated"]
pytestmark = pytest.mark.e2e


snakemake = run_snakemake
planned_jobs = dry_run_jobs


def write_config(workdir: Path, **overrides) -> Path:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for spec in config["strategies"].values():
        spec["strategy"] = str(ROOT / spec["strategy"])
    for key, value in overrides.items():
        config[key] = value
    if "samples" in overrides:  # a sheet of one's own: not the demo's config any more
        config.pop("demo")
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def demo(default_demo):
    """The default demo run end to end (default config, strategies from the project)."""
    return default_demo


def test_outputs_follow_the_contract(demo):
    adata = ad.read_h5ad(demo / "results/counts/populations.h5ad")
    sheet = pd.read_csv(demo / "resources/demo/samples.tsv", sep="\t")
    for column in list(sheet.columns) + ["qc_flags"]:
        assert column in adata.obs.columns
    assert list(adata.obs_names) == sorted(adata.obs_names) or set(adata.obs_names) <= set(
        sheet["sample_id"]
    )
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert list(adata.var_names) == list(config["populations"])  # the config's order
    assert adata.var.loc["cd8_activated", "label"] == "Activated CD8 (HLA-DR+CD38+)"
    assert {"freq_parent", "freq_live", "per_ul"} <= set(adata.layers)
    assert adata.var.loc["treg", "parent"] == "cd4" and adata.var.loc["cd8_ki67", "parent"] == "cd8"
    # true parents: nk sits under an unmapped CD3- gate; its parent is the reported ancestor
    assert adata.var.loc["nk", "parent_blood"] == "live"
    assert adata.var.loc["nk", "parent_tumor"] == "leukocytes"
    assert adata.var.loc["cd4_conv", "parent"] == "cd4"
    assert adata.var.loc["cd8_activated", "parent"] == "cd8"
    assert set(adata.obsm["ratios"].columns) == {"cd8_treg"}
    assert {"cd8:Ki67", "treg:CD25"} <= set(adata.obsm["mfi_median"].columns)
    blood = (adata.obs["compartment"] == "blood").to_numpy()
    leuk = list(adata.var_names).index("leukocytes")
    assert np.isnan(adata.X[blood, leuk]).all() and not np.isnan(adata.X[~blood, leuk]).any()
    assert np.isnan(adata.layers["per_ul"][~blood]).all()
    # freq_parent is count over the parent gate: treg / cd4
    treg, cd4 = (list(adata.var_names).index(p) for p in ("treg", "cd4"))
    np.testing.assert_allclose(
        adata.layers["freq_parent"][:, treg], adata.X[:, treg] / adata.X[:, cd4]
    )
    prov = adata.uns["provenance"]
    assert (
        set(prov["strategy_sha256"]) == {"blood", "tumor"}
        and len(prov["strategy_sha256"]["blood"]) == 64
    )
    assert "flowkit" in prov["versions"] and "samples" in prov["config_json"]
    tidy = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t")
    assert len(tidy) == int(np.isfinite(adata.X).sum())
    # FCS paths as the sheet gives them (relative to the sheet), no path of this machine
    fcs_of = dict(zip(sheet["sample_id"], sheet["fcs"]))
    assert list(adata.obs["fcs"]) == [fcs_of[s] for s in adata.obs_names]
    assert set(tidy["fcs"]) <= set(sheet["fcs"]) and not tidy["fcs"].str.startswith("/").any()
    qc = pd.read_csv(demo / "results/qc/samples.tsv", sep="\t")
    assert len(qc) == len(sheet) and set(qc["status"]) <= {"ok", "flagged", "excluded"}
    for name in (
        "summary",
        "change_from_baseline",
        "arm_comparison",
        "mmrm",
        "response",
        "missing_baseline",
    ):
        assert (demo / f"results/stats/{name}.tsv").stat().st_size > 0
    for name in (
        "trajectories",
        "patient_lines",
        "effect_heatmap",
        "umap_population",
        "umap_density_difference",
        "cluster_markers",
        "absolute_values",
        "spider",
        "waterfall",
        "sample_availability",
        "qc_overview",
        "km_pfs",
        "km_os",
        "gate_positions",
    ):
        for ext in ("png", "pdf"):
            assert (demo / f"results/figures/{name}.{ext}").stat().st_size > 10_000


def test_demo_gating_review_has_a_page_per_chosen_sample_and_a_png_per_flagged_one(demo):
    from pypdf import PdfReader

    qc = pd.read_csv(demo / "results/qc/samples.tsv", sep="\t", keep_default_na=False)
    pages = pd.read_csv(demo / "results/gating/review/pages.tsv", sep="\t", keep_default_na=False)
    assert len(pages) > 0 and pages["sample_id"].is_unique
    for panel in ("blood", "tumor"):
        drawn = int((pages["panel"] == panel).sum())
        assert len(PdfReader(demo / f"results/review/{panel}.pdf").pages) == max(drawn, 1)
    status = qc.set_index("sample_id")["status"]
    pngs = {p.stem for p in (demo / "results/review/flagged").glob("*.png")}
    assert pngs == set(pages.loc[pages["png"] != "", "sample_id"])
    assert pngs == {s for s in pages["sample_id"] if status[s] == "flagged"}
    assert (demo / "results/report/figures/gating_review.html").read_text().count("<img ") == len(
        pngs
    )


def test_demo_tables_are_byte_identical_to_the_stored_checksums(demo):
    """The demo's tables are pinned: a refactoring that changes any byte fails here.

    An intended change of results updates tests/demo_checksums.tsv in the same commit, and says so.
    """
    import hashlib

    stored = pd.read_csv(
        ROOT / "tests/demo_checksums.tsv", sep="\t", header=None, names=["path", "sha256"]
    )
    changed = [
        row.path
        for row in stored.itertuples()
        if hashlib.sha256((demo / "results" / row.path).read_bytes()).hexdigest() != row.sha256
    ]
    assert not changed, f"demo tables differ from tests/demo_checksums.tsv: {', '.join(changed)}"


def test_freq_parent_is_count_over_the_named_parent_in_every_row(demo):
    table = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t", keep_default_na=False)
    counts = table.set_index(["sample_id", "population"])["count"]
    qc = pd.read_csv(demo / "results/qc/samples.tsv", sep="\t").set_index("sample_id")
    events = qc["events_in"] - qc["events_removed"]  # the top gate's parent: events kept by QC
    for row in table.itertuples():
        denominator = counts[(row.sample_id, row.parent)] if row.parent else events[row.sample_id]
        assert float(row.freq_parent) == pytest.approx(row.count / denominator), row


def test_ratios_and_mfi_tables(demo):
    ratios = pd.read_csv(demo / "results/counts/ratios.tsv", sep="\t")
    counts = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t").set_index(
        ["sample_id", "population"]
    )["count"]
    for row in ratios.itertuples():
        assert row.value == pytest.approx(
            counts[(row.sample_id, "cd8")] / counts[(row.sample_id, "treg")]
        )
    mfi = pd.read_csv(demo / "results/counts/mfi.tsv", sep="\t")
    assert list(mfi.columns) == [
        "sample_id",
        "population",
        "marker",
        "channel",
        "n_events",
        "median",
        "median_transformed",
        "rcv",
    ]
    assert {("cd8", "Ki67"), ("treg", "CD25")} <= set(zip(mfi["population"], mfi["marker"]))


def test_gated_counts_match_simulator_truth(demo):
    counts = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t")
    truth = pd.read_csv(demo / "resources/demo/truth/populations.tsv", sep="\t")
    merged = counts.merge(truth, on=["sample_id", "population"], suffixes=("", "_truth"))
    merged["error"] = (merged["count"] - merged["count_truth"]).abs() / merged["count_truth"]
    for compartment, table in merged.groupby("compartment"):
        median = table.groupby("population")["error"].median()
        for population in POPULATIONS:
            assert median[population] <= 0.03, (compartment, population, median[population])


def test_counts_equal_flowkit_session(demo):
    from cytotrial.gating import flowkit_session_counts
    from cytotrial.io import load_strategy

    counts = pd.read_csv(demo / "results/counts/populations.tsv", sep="\t")
    sheet = pd.read_csv(demo / "resources/demo/samples.tsv", sep="\t")
    for panel in ("blood", "tumor"):
        row = sheet[sheet["panel"] == panel].iloc[0]
        # the gates as applied to this file (adaptive positions, acquisition QC as Time gates),
        # exported as GatingML 2.0 by the workflow, gated by FlowKit's own Session
        reference = flowkit_session_counts(
            demo / "resources/demo" / row["fcs"],
            load_strategy(demo / f"results/gates/{panel}/{row['sample_id']}.xml"),
        )
        ours = counts[counts["sample_id"] == row["sample_id"]].set_index("population")["count"]
        config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
        gate_of = config["strategies"][panel]["populations"]  # config Booleans are not gates
        by_name = reference.set_index("gate_name")["count"]
        for population in ours.index.intersection(list(gate_of)):
            assert ours[population] == by_name[gate_of[population]], (panel, population)
        # the config's Booleans: treg is a gate under cd4, so "cd4 and not treg" is their difference
        assert ours["cd4_conv"] == by_name["cd4"] - by_name["treg"]
        assert ours["cd8_activated"] <= min(by_name["cd8_hladr"], by_name["cd8_cd38"])


def test_no_fcs_identifier_reaches_outputs(demo):
    from cytotrial.sim import CANARY

    fcs = next((demo / "resources/demo/fcs").glob("*.fcs"))
    assert CANARY.encode() in fcs.read_bytes()
    for path in (demo / "results").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_demo_recovers_the_true_effects(demo):
    """Issue acceptance: the combination's true effects are found, and no false one in tumor.

    BEMPEG+NIVO raises cd8, nk, treg at C1D8 (q < 0.05) against baseline and against NIVO; every
    true blood effect > 1.5x has the right direction; no tumor arm difference.
    """
    within = pd.read_csv(demo / "results/stats/change_from_baseline.tsv", sep="\t")
    between = pd.read_csv(demo / "results/stats/arm_comparison.tsv", sep="\t")
    effects = pd.read_csv(demo / "resources/demo/truth/effects.tsv", sep="\t")
    combo = within[
        (within["arm"] == "BEMPEG+NIVO")
        & (within["compartment"] == "blood")
        & (within["visit"] == "C1D8")
    ]
    combo = combo.set_index("population")
    versus = between[(between["compartment"] == "blood") & (between["visit"] == "C1D8")].set_index(
        "population"
    )
    mmrm = pd.read_csv(demo / "results/stats/mmrm.tsv", sep="\t")
    primary = mmrm[(mmrm["family"] == "primary:blood") & (mmrm["visit"] == "C1D8")].set_index(
        "population"
    )
    for population in ("cd8", "nk", "treg", "cd8_activated"):
        # within-arm changes are estimates (no q-value); the arm difference is tested in the
        # declared primary family (MMRM), and in the secondary arm-comparison family
        assert (
            combo.loc[population, "p_value"] < 0.05 and combo.loc[population, "median_log2fc"] > 0
        ), population
        assert primary.loc[population, "q_value"] < 0.05 and primary.loc[population, "estimate"] > 0
        assert (
            versus.loc[population, "q_value"] < 0.05 and versus.loc[population, "estimate"] > 0
        ), population
    measure = {"blood": "per_ul", "tumor": "freq_parent"}
    checked = 0
    for row in effects.itertuples():
        if row.measure != measure[row.compartment] or row.population not in POPULATIONS:
            continue
        if abs(np.log2(row.fold_change)) <= np.log2(1.5):
            continue
        found = within[
            (within["arm"] == row.arm)
            & (within["compartment"] == row.compartment)
            & (within["population"] == row.population)
            & (within["visit"] == row.visit)
        ]
        assert len(found) == 1
        assert np.sign(found["median_log2fc"].iloc[0]) == np.sign(np.log2(row.fold_change)), row
        checked += 1
    assert checked >= 10
    tumor = between[between["compartment"] == "tumor"]
    assert len(tumor) > 0 and (tumor["q_value"] >= 0.05).all()
    tested = mmrm[(mmrm["compartment"] == "tumor") & (mmrm["family"] != "estimate")]
    assert len(tested) > 0 and not (tested["q_value"] < 0.05).any()  # NA: a model not fitted


def test_second_run_does_nothing(demo):
    assert planned_jobs(demo) == {}


def test_strategy_or_mapping_change_reruns_gating_and_what_follows_only(demo, tmp_path):
    # a copy of the demo state with its own strategy file, so edits stay local
    work = tmp_path / "w"
    shutil.copytree(demo, work, symlinks=True)
    strategy = work / "blood.xml"
    shutil.copy(ROOT / "resources/gating/blood.xml", strategy)
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    config["strategies"]["blood"]["strategy"] = str(strategy)
    (work / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(
        work, "--cores", "2", "--touch", "--rerun-triggers", "mtime", "params", "input", "code"
    )
    assert planned_jobs(work) == {}

    # every step after gating reads what it wrote (or the strategy itself): all of them re-run
    downstream = {
        "qc_table", "aggregate", "stats", "figures", "km_figures", "patient_figures",
        "qc_figures", "gate_positions", "review_pages", "gating_review", "events",
        "export_gates",
        "report_tables", "report_overview", "report_figures", "all",
    }  # fmt: skip
    # a changed gate: the file changes
    text = strategy.read_text()
    time.sleep(0.05)
    strategy.write_text(
        text.replace("</gating:Gating-ML>", "<!-- moved a gate --></gating:Gating-ML>")
    )
    jobs = planned_jobs(work)
    assert set(jobs) == {"gate"} | downstream and "simulate_demo" not in jobs
    sheet = pd.read_csv(work / "resources/demo/samples.tsv", sep="\t")
    # each panel's samples are batched apart: the blood batches alone are gated (the one review
    # job reads the new QC table; only pages whose content changed are drawn again)
    batches = [p.name for p in (work / "results/gating/batches").glob("batch_*.tsv")]
    blood = [name for name in batches if name.startswith("batch_blood_")]
    assert 1 <= len(blood) < len(batches)
    assert jobs["gate"] == len(blood) and jobs["review_pages"] == 1

    # a changed population mapping in config: the same jobs re-run (by the gate rule's params)
    snakemake(work, "--cores", "2", "--touch")
    config["strategies"]["blood"]["populations"]["cd8"] = "lymphocytes/singlets/live/cd3/cd8"
    (work / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = planned_jobs(work)
    assert set(jobs) == {"gate"} | downstream

    # a changed sheet row that gating does not read re-runs aggregation onwards, no gating
    snakemake(work, "--cores", "2", "--touch")
    sheet.loc[0, "lymphocytes_per_ul"] = 1234.0
    sheet.to_csv(work / "resources/demo/samples.tsv", sep="\t", index=False)
    jobs = planned_jobs(work)
    assert "gate" not in jobs and "aggregate" in jobs


def test_lint_is_clean(demo):
    result = snakemake(demo, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations" in output or output.strip() == "", output
    files = [str(ROOT / "Snakefile"), *map(str, sorted((ROOT / "workflow/rules").glob("*.smk")))]
    formatted = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stderr


def test_report_builds(demo):
    snakemake(demo, "--report", "results/report.html")
    report = demo / "results/report.html"
    assert report.stat().st_size > 100_000


def test_bad_sheet_stops_before_work_with_one_line_per_problem(demo, tmp_path):
    sheet = pd.read_csv(demo / "resources/demo/samples.tsv", sep="\t")
    sheet["fcs"] = [str(demo / "resources/demo" / f) for f in sheet["fcs"]]
    bad = sheet.head(4).copy()
    bad.loc[1, "arm"] = "PLACEBO"
    bad.loc[2, "sample_id"] = bad.loc[3, "sample_id"]
    bad.loc[3, "fcs"] = "/nowhere/x.fcs"
    (tmp_path / "samples.tsv").write_text(bad.to_csv(sep="\t", index=False))
    write_config(tmp_path, samples=str(tmp_path / "samples.tsv"), patients="")
    result = snakemake(tmp_path, "--cores", "1", check=False)
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if l.startswith("cytotrial:")]
    assert any("row 3" in l and "PLACEBO" in l for l in lines)
    assert any("repeats row" in l for l in lines)
    assert any("not found" in l and "/nowhere/x.fcs" in l for l in lines)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()

    missing = sheet.head(3).drop(columns=["batch"])
    (tmp_path / "samples.tsv").write_text(missing.to_csv(sep="\t", index=False))
    result = snakemake(tmp_path, "--cores", "1", check=False)
    assert (
        result.returncode != 0
        and "missing column(s) batch" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_broken_files_are_excluded_and_the_rest_counted(demo, tmp_path):
    sheet = pd.read_csv(demo / "resources/demo/samples.tsv", sep="\t")
    sheet = sheet[sheet["compartment"] == "blood"].head(6).reset_index(drop=True)
    sources = [demo / "resources/demo" / f for f in sheet["fcs"]]
    broken = tmp_path / "fcs"
    broken.mkdir()
    cases = {}
    data = sources[0].read_bytes()
    cases[1] = ("truncated.fcs", data[: len(data) - 5000])
    cases[2] = ("empty.fcs", b"")
    cases[3] = ("notes.fcs", b"this is a text file, not FCS\n" * 20)
    # the TEXT promises more events than the data segment holds
    tot = re.search(rb"\$TOT(.)(\d+)\1", data)
    promised = data.replace(
        tot.group(0), b"$TOT" + tot.group(1) + b"9" * len(tot.group(2)) + tot.group(1), 1
    )
    cases[4] = ("promises_more.fcs", promised)
    for index, (name, content) in cases.items():
        (broken / name).write_bytes(content)
        sheet.loc[index, "fcs"] = str(broken / name)
    for index in set(range(len(sheet))) - set(cases):
        sheet.loc[index, "fcs"] = str(sources[index])
    # a readable blood file put on the tumor panel lacks the CD45 channel the tumor strategy needs
    sheet.loc[5, ["panel", "compartment"]] = ["tumor", "tumor"]
    cases[5] = (sources[5].name, None)
    (tmp_path / "samples.tsv").write_text(sheet.to_csv(sep="\t", index=False))
    write_config(tmp_path, samples=str(tmp_path / "samples.tsv"), patients="")
    snakemake(tmp_path, "--cores", "2", "results/counts/populations.h5ad")
    qc = pd.read_csv(tmp_path / "results/qc/samples.tsv", sep="\t").set_index("sample_id")
    for index, (name, _) in cases.items():
        row = qc.loc[sheet.loc[index, "sample_id"]]
        assert row["status"] == "excluded" and name in row["message"] and "\n" not in row["message"]
    assert "BV786-A" in qc.loc[sheet.loc[5, "sample_id"], "message"]
    adata = ad.read_h5ad(tmp_path / "results/counts/populations.h5ad")
    assert adata.n_obs == len(sheet) - len(cases)
    assert set(adata.obs_names) == set(sheet["sample_id"]) - {
        sheet.loc[i, "sample_id"] for i in cases
    }


def test_aggregation_is_deterministic(demo, tmp_path):
    """The same batch outputs and sheet give byte-identical tables."""
    from cytotrial.config import check_config, population_model
    from cytotrial.rules import run_aggregate

    config = check_config(yaml.safe_load((demo / "config/config.yaml").read_text()), base=demo)
    batches = sorted((demo / "results/gating").glob("*.counts.tsv"))
    run_aggregate(
        counts=batches,
        mfi=[p.with_name(p.name.replace(".counts.", ".mfi.")) for p in batches],
        qc=[p.with_name(p.name.replace(".counts.", ".qc.")) for p in batches],
        gates=[p.with_name(p.name.replace(".counts.", ".gates.")) for p in batches],
        sheet=demo / "resources/demo/samples.tsv",
        arms=list(config["arms"]),
        strategies=config["strategies"],
        model=population_model(config),
        ratios=config["ratios"],
        frequencies=config["frequencies"]["of"],
        absolute_reference=config["absolute"]["reference"],
        mfi_markers=config["mfi"]["markers"],
        mfi_min_events=config["mfi"]["min_events"],
        min_events=config["qc"]["min_events"],
        config=config,
        h5ad_out=tmp_path / "p.h5ad",
        tsv_out=tmp_path / "p.tsv",
        ratios_out=tmp_path / "r.tsv",
        mfi_out=tmp_path / "m.tsv",
        qc_out=tmp_path / "q.tsv",
    )
    for ours, theirs in (("r.tsv", "ratios.tsv"), ("m.tsv", "mfi.tsv")):
        assert (tmp_path / ours).read_bytes() == (demo / "results/counts" / theirs).read_bytes()
    assert (tmp_path / "p.tsv").read_bytes() == (
        demo / "results/counts/populations.tsv"
    ).read_bytes()
    assert (tmp_path / "q.tsv").read_bytes() == (demo / "results/qc/samples.tsv").read_bytes()
