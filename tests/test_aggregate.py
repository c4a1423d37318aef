"""Aggregation: every gating batch's counts and MFIs -> populations.h5ad, tidy tables and QC.

A small trial written here as the gating writes it (two batches; blood and tumor panels that differ
in their populations and parents), aggregated once per module.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import patients_table, planted_trial
from cytotrial.config import check_config, population_model
from cytotrial.errors import ConfigError
from cytotrial.rules import run_aggregate
from cytotrial.tl import build_populations, mfi_table

# ---------------------------------------------------------------------------------------------
# the trial

# Per panel: population -> (gate path, parent). nk sits under an unreported gate (cd3_neg): its
# parent is live; cd4_conv is a Boolean (no gate path); tumor has leukocytes and no nk.
BLOOD = {
    "lymphocytes": ("lymphocytes", ""),
    "live": ("lymphocytes/live", "lymphocytes"),
    "cd3": ("lymphocytes/live/cd3", "live"),
    "cd4": ("lymphocytes/live/cd3/cd4", "cd3"),
    "treg": ("lymphocytes/live/cd3/cd4/treg", "cd4"),
    "cd4_conv": ("", "cd4"),
    "cd8": ("lymphocytes/live/cd3/cd8", "cd3"),
    "cd8_ki67": ("lymphocytes/live/cd3/cd8/cd8_ki67", "cd8"),
    "nk": ("lymphocytes/live/cd3_neg/nk", "live"),
}
TUMOR = {
    "lymphocytes": ("lymphocytes", ""),
    "live": ("lymphocytes/live", "lymphocytes"),
    "leukocytes": ("lymphocytes/live/cd45", "live"),
    "cd3": ("lymphocytes/live/cd45/cd3", "leukocytes"),
    "cd4": ("lymphocytes/live/cd45/cd3/cd4", "cd3"),
    "treg": ("lymphocytes/live/cd45/cd3/cd4/treg", "cd4"),
    "cd4_conv": ("", "cd4"),
    "cd8": ("lymphocytes/live/cd45/cd3/cd8", "cd3"),
    "cd8_ki67": ("lymphocytes/live/cd45/cd3/cd8/cd8_ki67", "cd8"),
}
STRUCTURE = {"blood": BLOOD, "tumor": TUMOR}
EVENTS = {"B1": 10000, "B2": 12000, "T1": 6000}  # every event of the file
COUNTS = {
    "B1": dict(
        lymphocytes=8000, live=7000, cd3=4000, cd4=2500, treg=300, cd4_conv=2200, cd8=1200,
        cd8_ki67=150, nk=600,
    ),
    "B2": dict(
        lymphocytes=9000, live=8000, cd3=5000, cd4=3000, treg=0, cd4_conv=3000, cd8=1900,
        cd8_ki67=40, nk=500,
    ),
    "T1": dict(
        lymphocytes=5000, live=4000, leukocytes=3000, cd3=1500, cd4=800, treg=100, cd4_conv=700,
        cd8=600, cd8_ki67=90,
    ),
}  # fmt: skip
SHEET = pd.DataFrame(
    {
        "sample_id": ["B1", "B2", "T1", "X1"],
        "patient_id": ["P01", "P01", "P01", "P02"],
        "arm": ["A", "A", "A", "B"],
        "visit": ["C1D1", "C1D8", "C1D1", "C1D1"],
        "cycle": [1, 1, 1, 1],
        "day": [1, 8, 1, 1],
        "compartment": ["blood", "blood", "tumor", "blood"],
        "panel": ["blood", "blood", "tumor", "blood"],
        "batch": ["b1", "b1", "b2", "b2"],
        "fcs": ["fcs/B1.fcs", "fcs/B2.fcs", "fcs/T1.fcs", "fcs/X1.fcs"],
        "lymphocytes_per_ul": [1500.0, 1200.0, np.nan, 900.0],
    }
)
# (sample, population, marker): channel, n_events, median, median_transformed, rcv
MFI = {
    ("B1", "cd8", "Ki67"): ("APC-A", 1200, 850.5, 2.25, 40.5),
    ("B1", "cd8", "HLA-DR"): ("BV711-A", 1200, 310.0, 1.5, 60.25),
    ("B1", "treg", "CD25"): ("PE-A", 300, 2200.0, 3.125, 35.0),
    ("B1", "cd8_ki67", "Ki67"): ("APC-A", 150, 4100.0, 3.5, 20.0),
    ("B2", "cd8", "Ki67"): ("APC-A", 1900, 990.0, 2.5, 41.0),
    ("B2", "cd8", "HLA-DR"): ("BV711-A", 1900, 400.0, 1.75, 55.5),
    ("B2", "treg", "CD25"): ("PE-A", 0, np.nan, np.nan, np.nan),
    # the gating left values below mfi.min_events: the aggregation blanks them
    ("B2", "cd8_ki67", "Ki67"): ("APC-A", 40, 1000.0, 2.75, 30.0),
    ("T1", "cd8", "Ki67"): ("Comp-APC-A", 600, 700.0, 2.0, 45.0),
    ("T1", "cd8", "HLA-DR"): ("Comp-BV711-A", 600, 500.0, 1.875, 50.0),
    ("T1", "treg", "CD25"): ("Comp-PE-A", 100, 1800.0, 3.0, 33.0),  # exactly min_events: kept
    ("T1", "cd8_ki67", "Ki67"): ("Comp-APC-A", 90, 3000.0, 3.25, 25.0),
}
BATCHES = {"0": ["B1", "B2"], "1": ["T1", "X1"]}  # X1 could not be read: excluded
CONFIG = {
    "samples": "trial/samples.tsv",
    "arms": {"A": "red", "B": "blue"},
    "strategies": {
        panel: {
            "strategy": f"gating/{panel}.xml",
            "populations": {name: name for name, (path, _) in table.items() if path},
        }
        for panel, table in STRUCTURE.items()
    },
    "populations": {
        "cd4_conv": {"label": "Conventional CD4", "boolean": "cd4 and not treg"},
        "cd8": {"label": "CD8+ T cells"},
    },
    "ratios": {"cd8_treg": ["cd8", "treg"], "cd4_cd8": ["cd4", "cd8"], "nk_cd8": ["nk", "cd8"]},
    "frequencies": {"of": ["live", "cd3"]},
    "absolute": {"reference": "live"},
    "mfi": {
        "markers": {"cd8": ["Ki67", "HLA-DR"], "treg": ["CD25"], "cd8_ki67": ["Ki67"]},
        "min_events": 100,
    },
    "qc": {"min_events": {"cd8": 50, "cd8_ki67": 100}},
}
REPORTED = [
    "cd4_conv", "cd8", "lymphocytes", "live", "cd3", "cd4", "treg", "cd8_ki67", "nk", "leukocytes",
]  # fmt: skip
OUTPUTS = {
    "h5ad_out": "results/counts/populations.h5ad",
    "tsv_out": "results/counts/populations.tsv",
    "ratios_out": "results/counts/ratios.tsv",
    "mfi_out": "results/counts/mfi.tsv",
    "qc_out": "results/qc/samples.tsv",
}


def _write_trial(root: Path) -> dict:
    """The project folder as the workflow sees it; returns the resolved config."""
    (root / "trial/fcs").mkdir(parents=True)
    (root / "gating").mkdir()
    (root / "results/gating").mkdir(parents=True)
    for sid in SHEET["sample_id"]:
        (root / "trial/fcs" / f"{sid}.fcs").write_bytes(b"")
    SHEET.to_csv(root / "trial/samples.tsv", sep="\t", index=False)
    for panel in STRUCTURE:
        (root / f"gating/{panel}.xml").write_text(f"<strategy of {panel}/>\n")
    for batch, members in BATCHES.items():
        counts, mfi, qc = [], [], []
        for sid in members:
            if sid not in COUNTS:
                qc.append([sid, "excluded", 0, 0, "", "X1.fcs: truncated file"])
                continue
            qc.append([sid, "ok", EVENTS[sid], EVENTS[sid], "", ""])
            panel = SHEET.set_index("sample_id").at[sid, "panel"]
            for population, (path, parent) in STRUCTURE[panel].items():
                n = COUNTS[sid][population]
                above = COUNTS[sid][parent] if parent else EVENTS[sid]
                counts.append([sid, population, path, parent, n, above])
            mfi += [[s, p, m, *v] for (s, p, m), v in MFI.items() if s == sid]
        columns = ["sample_id", "population", "gate_path", "parent", "count", "parent_count"]
        pd.DataFrame(counts, columns=columns).to_csv(
            root / f"results/gating/batch_{batch}.counts.tsv", sep="\t", index=False
        )
        columns = ["sample_id", "population", "marker", "channel", "n_events", "median"]
        columns += ["median_transformed", "rcv"]
        pd.DataFrame(mfi, columns=columns).to_csv(
            root / f"results/gating/batch_{batch}.mfi.tsv", sep="\t", index=False
        )
        columns = ["sample_id", "status", "events_in", "events_stated", "notes", "message"]
        pd.DataFrame(qc, columns=columns).to_csv(
            root / f"results/gating/batch_{batch}.qc.tsv", sep="\t", index=False
        )
    return check_config(CONFIG, base=root)


def _aggregate(root: Path, config: dict, **changes) -> ad.AnnData:
    """run_aggregate as the rule calls it, from the project folder, with relative paths."""
    kinds = {
        kind: [f"results/gating/batch_{b}.{kind}.tsv" for b in sorted(BATCHES)]
        for kind in ("counts", "mfi", "qc")
    }
    options = dict(
        sheet=config["samples"],
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
        **kinds,
        **OUTPUTS,
    )
    options.update(changes)
    with contextlib.chdir(root):
        return run_aggregate(**options)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    config = _write_trial(root)
    _aggregate(root, config)
    return root


def _read(project: Path, key: str) -> pd.DataFrame:
    # round_trip: the floats exactly as written (the default parser may differ in the last digit)
    path = project / OUTPUTS[key]
    return pd.read_csv(path, sep="\t", dtype={"sample_id": str}, float_precision="round_trip")


@pytest.fixture(scope="module")
def adata(project) -> ad.AnnData:
    return ad.read_h5ad(project / OUTPUTS["h5ad_out"])


def _x(adata: ad.AnnData, layer: str | None, sid: str, population: str) -> float:
    values = adata.X if layer is None else adata.layers[layer]
    i, j = list(adata.obs_names).index(sid), list(adata.var_names).index(population)
    return float(values[i, j])


# ---------------------------------------------------------------------------------------------
# populations


def test_freq_parent_is_the_count_over_the_named_parents_count_on_every_row(project):
    tidy = _read(project, "tsv_out").fillna({"parent": ""})
    assert len(tidy) == sum(len(c) for c in COUNTS.values())
    count = {(r.sample_id, r.population): r.count for r in tidy.itertuples()}
    for row in tidy.itertuples():
        panel = SHEET.set_index("sample_id").at[row.sample_id, "panel"]
        assert row.parent == STRUCTURE[panel][row.population][1]
        above = count[(row.sample_id, row.parent)] if row.parent else EVENTS[row.sample_id]
        if above:
            assert row.freq_parent == row.count / above, row
        else:
            assert math.isnan(row.freq_parent)


def test_layout_follows_the_config(adata):
    assert list(adata.obs_names) == ["B1", "B2", "T1"]  # X1 excluded: not counted
    assert list(adata.var_names) == REPORTED
    assert set(adata.layers) == {"freq_parent", "freq_live", "freq_cd3", "per_ul"}
    assert list(adata.var.columns) == [
        "label", "parent", "parent_blood", "gate_path_blood", "parent_tumor", "gate_path_tumor",
    ]  # fmt: skip
    assert adata.var.at["cd8", "label"] == "CD8+ T cells"
    assert adata.var.at["cd4_conv", "label"] == "Conventional CD4"
    assert adata.var.at["nk", "label"] == "nk"
    # the common parent, or "" where panels differ
    assert adata.var.at["treg", "parent"] == "cd4" and adata.var.at["cd4_conv", "parent"] == "cd4"
    assert adata.var.at["cd3", "parent"] == ""
    assert adata.var.at["cd3", "parent_blood"] == "live"
    assert adata.var.at["cd3", "parent_tumor"] == "leukocytes"
    assert adata.var.at["nk", "gate_path_blood"] == "lymphocytes/live/cd3_neg/nk"
    assert adata.var.at["cd4_conv", "gate_path_blood"] == ""
    assert list(adata.obs.columns) == [*SHEET.columns, "sha256", "qc_flags"]


def test_populations_a_panel_lacks_are_na_and_have_no_rows(project, adata):
    assert math.isnan(_x(adata, None, "T1", "nk")) and math.isnan(
        _x(adata, None, "B1", "leukocytes")
    )
    assert adata.var.at["nk", "parent_tumor"] == "" and adata.var.at["nk", "gate_path_tumor"] == ""
    assert adata.var.at["nk", "parent"] == "live"  # its only panel's
    tidy = _read(project, "tsv_out")
    assert not ((tidy["sample_id"] == "T1") & (tidy["population"] == "nk")).any()
    assert set(tidy.loc[tidy["population"] == "leukocytes", "sample_id"]) == {"T1"}


def test_freq_of_a_reference_is_na_off_its_subtree(adata):
    assert _x(adata, "freq_cd3", "B1", "cd4") == 2500 / 4000
    assert _x(adata, "freq_cd3", "B1", "cd4_conv") == 2200 / 4000  # a Boolean, below cd4
    assert _x(adata, "freq_cd3", "B1", "cd3") == 1.0
    for population in ("lymphocytes", "live", "nk"):
        assert math.isnan(_x(adata, "freq_cd3", "B1", population)), population
    assert math.isnan(_x(adata, "freq_live", "B1", "lymphocytes"))
    assert _x(adata, "freq_live", "B1", "nk") == 600 / 7000
    # in the tumor panel cd3 sits under leukocytes, itself under live
    assert _x(adata, "freq_live", "T1", "cd3") == 1500 / 4000
    assert _x(adata, "freq_live", "T1", "leukocytes") == 3000 / 4000
    assert math.isnan(_x(adata, "freq_cd3", "T1", "leukocytes"))


def test_per_ul_is_the_absolute_references_fraction_times_lymphocytes_per_ul(adata):
    assert _x(adata, "per_ul", "B1", "cd8") == 1200 / 7000 * 1500.0
    assert _x(adata, "per_ul", "B2", "nk") == 500 / 8000 * 1200.0
    assert math.isnan(_x(adata, "per_ul", "B1", "lymphocytes"))  # above the reference
    assert np.isnan(adata.layers["per_ul"][list(adata.obs_names).index("T1")]).all()


def test_per_ul_is_na_without_an_absolute_reference(project, tmp_path):
    config = check_config(CONFIG, base=project)
    with contextlib.chdir(project):
        counts = pd.read_csv("results/gating/batch_0.counts.tsv", sep="\t", keep_default_na=False)
    sheet = SHEET.set_index("sample_id", drop=False).rename_axis(None)
    adata = build_populations(
        counts,
        sheet,
        model=population_model(config),
        panels=list(config["strategies"]),
        ratios={},
        frequencies=[],
        absolute_reference="",
        min_events={},
    )
    assert list(adata.layers) == ["freq_parent", "per_ul"]
    assert np.isnan(adata.layers["per_ul"]).all()
    assert list(adata.obsm["ratios"].columns) == [] and adata.obsm["mfi_median"].shape == (2, 0)
    adata.write_h5ad(tmp_path / "none.h5ad")  # no ratios, no MFIs: still a valid file
    assert ad.read_h5ad(tmp_path / "none.h5ad").obsm["ratios"].shape == (2, 0)


def test_qc_flags_in_a_fixed_order(adata):
    flags = adata.obs["qc_flags"].to_dict()
    assert flags == {
        "B1": "",
        "B2": "too_few_events:cd8_ki67<100,ratio_zero_denominator:cd8_treg,"
        "mfi_too_few_events:treg:CD25,mfi_too_few_events:cd8_ki67:Ki67",
        "T1": "too_few_events:cd8_ki67<100,mfi_too_few_events:cd8_ki67:Ki67",
    }


def test_qc_table(project):
    qc = _read(project, "qc_out")
    assert list(qc["sample_id"]) == ["B1", "B2", "T1", "X1"]
    assert list(qc["status"]) == ["ok", "flagged", "flagged", "excluded"]
    assert [c for c in qc.columns if c.startswith("n_")] == [f"n_{p}" for p in REPORTED]
    assert qc.at[0, "n_cd8"] == 1200 and math.isnan(qc.at[0, "n_leukocytes"])
    assert (project / OUTPUTS["qc_out"]).read_text().splitlines()[1].split("\t")[-11:-1] == [
        "2200", "1200", "8000", "7000", "4000", "2500", "300", "150", "600", "",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# ratios


def test_ratios_in_the_anndata(adata):
    ratios = adata.obsm["ratios"]
    assert list(ratios.columns) == ["cd8_treg", "cd4_cd8", "nk_cd8"]
    assert list(ratios.index) == list(adata.obs_names)
    assert ratios.at["B1", "cd8_treg"] == 1200 / 300
    assert ratios.at["T1", "cd4_cd8"] == 800 / 600
    assert math.isnan(ratios.at["B2", "cd8_treg"])  # zero denominator: NA and a flag
    assert math.isnan(ratios.at["T1", "nk_cd8"])  # no nk in tumor: NA, no flag
    assert "nk_cd8" not in adata.obs.at["T1", "qc_flags"]
    assert {k: list(v) for k, v in adata.uns["ratios"].items()} == CONFIG["ratios"]


def test_ratios_table(project):
    table = _read(project, "ratios_out")
    assert list(table.columns) == [
        "sample_id", "ratio", "numerator", "denominator", "n_numerator", "n_denominator", "value",
    ]  # fmt: skip
    assert list(zip(table["sample_id"], table["ratio"])) == [
        ("B1", "cd8_treg"), ("B1", "cd4_cd8"), ("B1", "nk_cd8"),
        ("B2", "cd8_treg"), ("B2", "cd4_cd8"), ("B2", "nk_cd8"),
        ("T1", "cd8_treg"), ("T1", "cd4_cd8"),
    ]  # fmt: skip
    zero = table[(table["sample_id"] == "B2") & (table["ratio"] == "cd8_treg")].iloc[0]
    assert (zero["n_numerator"], zero["n_denominator"]) == (1900, 0) and math.isnan(zero["value"])
    row = table[(table["sample_id"] == "B1") & (table["ratio"] == "nk_cd8")].iloc[0]
    assert (row["numerator"], row["denominator"], row["value"]) == ("nk", "cd8", 600 / 1200)


# ---------------------------------------------------------------------------------------------
# MFI


def test_mfi_table(project):
    table = _read(project, "mfi_out")
    assert list(table.columns) == [
        "sample_id", "population", "marker", "channel", "n_events", "median",
        "median_transformed", "rcv",
    ]  # fmt: skip
    keys = list(zip(table["sample_id"], table["population"], table["marker"]))
    order = [(p, m) for p, markers in CONFIG["mfi"]["markers"].items() for m in markers]
    assert keys == [(s, p, m) for s in ("B1", "B2", "T1") for p, m in order]
    rows = dict(zip(keys, table.itertuples(), strict=True))
    b1 = rows[("B1", "cd8", "Ki67")]
    assert (b1.channel, b1.n_events, b1.median, b1.median_transformed, b1.rcv) == (
        "APC-A", 1200, 850.5, 2.25, 40.5,
    )  # fmt: skip
    for key in [("B2", "treg", "CD25"), ("B2", "cd8_ki67", "Ki67"), ("T1", "cd8_ki67", "Ki67")]:
        row = rows[key]
        assert np.isnan([row.median, row.median_transformed, row.rcv]).all(), key
        assert row.n_events == MFI[key][1] and row.channel == MFI[key][0]
    assert rows[("T1", "treg", "CD25")].median == 1800.0  # exactly mfi.min_events: kept


def test_mfi_in_the_anndata(adata):
    columns = ["cd8:Ki67", "cd8:HLA-DR", "treg:CD25", "cd8_ki67:Ki67"]
    for key, column in [
        ("mfi_median", 2),
        ("mfi_median_transformed", 3),
        ("mfi_rcv", 4),
        ("mfi_n_events", 1),
    ]:
        frame = adata.obsm[key]
        assert isinstance(frame, pd.DataFrame) and list(frame.columns) == columns
        assert list(frame.index) == list(adata.obs_names)
        for (sid, population, marker), values in MFI.items():
            got = frame.at[sid, f"{population}:{marker}"]
            low = values[1] < CONFIG["mfi"]["min_events"] and key != "mfi_n_events"
            if low or (isinstance(values[column], float) and math.isnan(values[column])):
                assert math.isnan(got), (key, sid, population, marker)
            else:
                assert got == values[column], (key, sid, population, marker)


def test_mfi_of_a_population_its_panel_lacks_is_na(project):
    config = check_config(
        {**CONFIG, "mfi": {"markers": {"nk": ["CD56"], "cd8": ["Ki67"]}, "min_events": 10}},
        base=project,
    )
    mfi = pd.DataFrame(
        [["B1", "nk", "CD56", "PE-Cy7-A", 600, 5000.0, 3.0, 20.0]],
        columns=["sample_id", "population", "marker", "channel", "n_events", "median"]
        + ["median_transformed", "rcv"],
    )
    with contextlib.chdir(project):
        counts = pd.read_csv("results/gating/batch_0.counts.tsv", sep="\t", keep_default_na=False)
        counts = pd.concat(
            [
                counts,
                pd.read_csv("results/gating/batch_1.counts.tsv", sep="\t", keep_default_na=False),
            ]
        )
    adata = build_populations(
        counts,
        SHEET.set_index("sample_id", drop=False).rename_axis(None),
        model=population_model(config),
        panels=list(config["strategies"]),
        ratios={},
        frequencies=["live"],
        absolute_reference="live",
        min_events={},
        mfi=mfi,
        mfi_markers=config["mfi"]["markers"],
        mfi_min_events=10,
    )
    median = adata.obsm["mfi_median"]
    assert list(median.columns) == ["nk:CD56", "cd8:Ki67"]
    assert median.at["B1", "nk:CD56"] == 5000.0 and np.isnan(median.loc["T1"]).all()
    assert set(adata.obs["qc_flags"]) == {""}  # a missing MFI is not a low one


def test_a_marker_with_a_slash_is_a_config_error():
    mfi = pd.DataFrame(
        columns=["sample_id", "population", "marker", "channel", "n_events", "median"]
        + ["median_transformed", "rcv"]
    )
    sheet = SHEET.set_index("sample_id", drop=False).rename_axis(None)
    counts = pd.DataFrame(
        [["B1", "cd8", "cd8", "", 10, 100]],
        columns=["sample_id", "population", "gate_path", "parent", "count", "parent_count"],
    )
    with pytest.raises(ConfigError, match=r"mfi\.markers\.cd8: 'Live/Dead' has a '/'"):
        build_populations(
            counts,
            sheet,
            model={"cd8": {"label": "cd8"}},
            panels=["blood"],
            ratios={},
            frequencies=[],
            absolute_reference="",
            min_events={},
            mfi=mfi,
            mfi_markers={"cd8": ["Live/Dead"]},
            mfi_min_events=1,
        )


def test_mfi_table_keeps_the_configs_pairs_in_order():
    mfi = pd.DataFrame(
        [
            ["s2", "cd8", "Ki67", "APC-A", "", "", "", ""],
            ["s1", "treg", "CD25", "PE-A", "5", "1.5", "0.5", "10"],
            ["s1", "cd8", "Ki67", "APC-A", "500", "2.5", "1.25", "20"],
            ["s1", "nk", "CD56", "PE-Cy7-A", "500", "2.5", "1.25", "20"],  # not configured
        ],
        columns=["sample_id", "population", "marker", "channel", "n_events", "median"]
        + ["median_transformed", "rcv"],
    )
    table = mfi_table(mfi, markers={"cd8": ["Ki67"], "treg": ["CD25"]}, min_events=10)
    assert list(zip(table["sample_id"], table["population"])) == [
        ("s1", "cd8"), ("s1", "treg"), ("s2", "cd8"),
    ]  # fmt: skip
    assert str(table["n_events"].dtype) == "Int64" and table["n_events"].isna().tolist() == [
        False, False, True,
    ]  # fmt: skip
    assert table.loc[1, ["median", "median_transformed", "rcv"]].isna().all()
    assert table.loc[0, "median"] == 2.5


# ---------------------------------------------------------------------------------------------
# contract checks, determinism, provenance


def test_a_parent_count_that_is_not_the_parents_count_fails_loudly(project):
    with contextlib.chdir(project):
        counts = pd.read_csv("results/gating/batch_0.counts.tsv", sep="\t", keep_default_na=False)
    counts.loc[(counts["sample_id"] == "B1") & (counts["population"] == "cd8"), "parent_count"] = 1
    options = dict(
        model=population_model(check_config(CONFIG, base=project)),
        panels=["blood", "tumor"],
        ratios={},
        frequencies=[],
        absolute_reference="",
        min_events={},
    )
    sheet = SHEET.set_index("sample_id", drop=False).rename_axis(None)
    with pytest.raises(ValueError, match="sample B1: parent_count of cd8 is not the count of its"):
        build_populations(counts, sheet, **options)
    counts.loc[0, "population"] = "cd99"
    with pytest.raises(ValueError, match=r"population\(s\) the config does not report: cd99"):
        build_populations(counts, sheet, **options)


def test_same_inputs_same_bytes(project, tmp_path):
    again = tmp_path / "again"
    config = _write_trial(again)
    _aggregate(again, config)
    for key in ("tsv_out", "ratios_out", "mfi_out", "qc_out"):
        assert (again / OUTPUTS[key]).read_bytes() == (project / OUTPUTS[key]).read_bytes(), key
    first, second = (ad.read_h5ad(p / OUTPUTS["h5ad_out"]) for p in (project, again))
    np.testing.assert_array_equal(first.X, second.X)
    for layer in first.layers:
        np.testing.assert_array_equal(first.layers[layer], second.layers[layer])
    for key in first.obsm:
        pd.testing.assert_frame_equal(first.obsm[key], second.obsm[key])
    pd.testing.assert_frame_equal(first.var, second.var)
    pd.testing.assert_frame_equal(first.obs, second.obs)
    assert json.loads(first.uns["provenance"]["config_json"]) == json.loads(
        second.uns["provenance"]["config_json"]
    )


def test_populations_table_columns(project):
    tidy = _read(project, "tsv_out")
    assert list(tidy.columns) == [
        "sample_id", *[c for c in SHEET.columns if c != "sample_id"], "qc_flags", "population",
        "parent", "count", "freq_parent", "freq_cd3", "freq_live", "per_ul",
    ]  # fmt: skip
    assert list(tidy["sample_id"]) == sorted(tidy["sample_id"])


def test_no_absolute_path_in_any_output_or_the_provenance(project, adata):
    for name in (str(project), str(project.resolve()), "/tmp/", str(Path.home())):
        for path in OUTPUTS.values():
            assert name.encode() not in (project / path).read_bytes(), (name, path)
    provenance = adata.uns["provenance"]
    config = json.loads(provenance["config_json"])
    assert config["samples"] == "trial/samples.tsv"
    assert config["strategies"]["blood"]["strategy"] == "gating/blood.xml"
    assert config["ratios"] == CONFIG["ratios"] and config["mfi"] == CONFIG["mfi"]
    assert dict(provenance["strategy_path"]) == {
        "blood": "gating/blood.xml",
        "tumor": "gating/tumor.xml",
    }
    assert len(provenance["strategy_sha256"]["tumor"]) == 64
    assert "anndata" in provenance["versions"]
    assert list(adata.obs["fcs"]) == ["fcs/B1.fcs", "fcs/B2.fcs", "fcs/T1.fcs"]


# ---------------------------------------------------------------------------------------------
# scverse conventions: arm colours, categorical order, paths relative to the sheet

# Visits whose alphabetical order (C10D1, C1D1, C1D8, C2D1) is not their clinical order; config
# arms in an order that is not alphabetical either, with colours scanpy would not pick itself.
CLINICAL = [("C1D1", 1, 1), ("C1D8", 1, 8), ("C2D1", 2, 1), ("C10D1", 10, 1)]
ARM_COLOURS = {"NIVO": "#0072B2", "BEMPEG+NIVO": "crimson"}


def _visits_trial() -> ad.AnnData:
    """Two patients (one per arm) at four visits, in the sheet in neither clinical nor a-z order."""
    rows = [
        (f"{patient}_{visit}", patient, arm, visit, cycle, day)
        for patient, arm in (("P2", "BEMPEG+NIVO"), ("P1", "NIVO"))
        for visit, cycle, day in (CLINICAL[2], CLINICAL[3], CLINICAL[0], CLINICAL[1])
    ]
    sheet = pd.DataFrame(rows, columns=["sample_id", "patient_id", "arm", "visit", "cycle", "day"])
    sheet = sheet.assign(compartment="blood", panel="blood", batch="b1")
    sheet["fcs"] = "fcs/" + sheet["sample_id"] + ".fcs"
    counts = pd.DataFrame(
        {"sample_id": sheet["sample_id"], "population": "cd8", "gate_path": "cd8", "parent": ""}
    ).assign(count=100, parent_count=1000)
    return build_populations(
        counts,
        sheet.set_index("sample_id", drop=False).rename_axis(None),
        model={"cd8": {"label": "CD8"}},
        panels=["blood"],
        ratios={},
        frequencies=[],
        absolute_reference="",
        min_events={},
        arm_colors=ARM_COLOURS,
    )


def test_visits_are_an_ordered_categorical_in_clinical_order(tmp_path):
    built = _visits_trial()
    clinical = [visit for visit, _, _ in CLINICAL]
    assert sorted(clinical) != clinical  # the case alphabetical order gets wrong
    adata = _written_and_read(built, tmp_path)
    visit = adata.obs["visit"]
    assert visit.cat.ordered and list(visit.cat.categories) == clinical
    assert list(adata.obs.sort_values("visit", kind="stable")["visit"]) == [
        v for v in clinical for _ in range(2)
    ]
    assert (visit > "C2D1").sum() == 2 and set(adata.obs_names[visit > "C2D1"]) == {
        "P1_C10D1", "P2_C10D1",
    }  # fmt: skip
    assert list(adata.obs["arm"].cat.categories) == list(ARM_COLOURS)  # the config's order
    assert not adata.obs["arm"].cat.ordered
    for column in ("compartment", "panel"):
        assert list(adata.obs[column].cat.categories) == ["blood"], column


def _written_and_read(adata: ad.AnnData, tmp_path: Path) -> ad.AnnData:
    adata.write_h5ad(tmp_path / "visits.h5ad")
    return ad.read_h5ad(tmp_path / "visits.h5ad")


def test_arm_colours_follow_the_arm_categories(adata, tmp_path):
    # the module's trial: only arm A was gated (X1, arm B, was not): one category, one colour
    assert list(adata.obs["arm"].cat.categories) == ["A"]
    assert list(adata.uns["arm_colors"]) == ["#ff0000"]
    assert adata.obs["visit"].cat.ordered
    assert list(adata.obs["visit"].cat.categories) == ["C1D1", "C1D8"]
    two = _written_and_read(_visits_trial(), tmp_path)
    assert list(two.uns["arm_colors"]) == ["#0072b2", "#dc143c"]  # NIVO, BEMPEG+NIVO


# scanpy's embedding plot sets a colormap's bad colour the way matplotlib 3.11 deprecates (not ours)
@pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")
def test_scanpy_draws_the_arms_in_the_configs_colours(tmp_path):
    import matplotlib.pyplot as plt
    import scanpy as sc
    from matplotlib.colors import to_hex

    adata = _written_and_read(_visits_trial(), tmp_path)
    adata.obsm["X_demo"] = np.arange(2 * adata.n_obs, dtype=float).reshape(-1, 2)
    ax = sc.pl.embedding(adata, basis="demo", color="arm", show=False)
    try:
        legend = ax.get_legend()
        drawn = {
            text.get_text(): to_hex(handle.get_facecolor()[0])
            for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
        }
        points = [to_hex(c) for c in ax.collections[0].get_facecolors()]
    finally:
        plt.close(ax.figure)
    assert drawn == {"NIVO": "#0072b2", "BEMPEG+NIVO": "#dc143c"}
    expected = [drawn[arm] for arm in adata.obs["arm"]]
    assert sorted(points) == sorted(expected)


def test_statistics_and_figure_tables_read_ordered_categoricals_as_text():
    """What populations.h5ad now holds (categoricals, visits ordered) gives the same tables."""
    from cytotrial import pl, tl
    from cytotrial.tl._aggregate import _categorical_obs

    plain = planted_trial()
    assert plain.obs["visit"].dtype == object
    ordered = plain.copy()
    arms = sorted(set(plain.obs["arm"]), reverse=True)  # categories not in a-z order either
    ordered.obs = _categorical_obs(ordered.obs, arms=arms, panels=[])
    assert ordered.obs["visit"].cat.ordered
    assert list(ordered.obs["arm"].cat.categories) == arms
    first, second = (tl.compute_tables(a, patients=patients_table()) for a in (plain, ordered))
    assert list(first) == list(second) and len(first) > 10
    for name, table in first.items():
        pd.testing.assert_frame_equal(table, second[name], obj=name)
    pd.testing.assert_frame_equal(tl.measure_table(plain), tl.measure_table(ordered))
    pd.testing.assert_frame_equal(
        pl.drift_table(plain, ["cd8", "cd4"]), pl.drift_table(ordered, ["cd8", "cd4"])
    )


def test_fcs_paths_in_the_outputs_are_relative_to_the_sheet(project, tmp_path):
    """A sheet that names files by absolute path: the outputs hold them relative to the sheet."""
    import shutil

    root = tmp_path / "moved"
    shutil.copytree(project, root)
    (root / "raw").mkdir()
    (root / "raw/T1.fcs").write_bytes(b"")
    sheet = SHEET.copy()
    sheet.loc[0, "fcs"] = str(root / "trial/fcs/B1.fcs")  # inside the sheet's folder
    sheet.loc[2, "fcs"] = str(root / "raw/T1.fcs")  # beside it
    sheet.to_csv(root / "trial/samples.tsv", sep="\t", index=False)
    adata = _aggregate(root, check_config(CONFIG, base=root))
    assert list(adata.obs["fcs"]) == ["fcs/B1.fcs", "fcs/B2.fcs", "../raw/T1.fcs"]
    for path in OUTPUTS.values():
        data = (root / path).read_bytes()
        assert str(root).encode() not in data and str(tmp_path).encode() not in data, path
    tidy = pd.read_csv(root / OUTPUTS["tsv_out"], sep="\t")
    assert set(tidy["fcs"]) == {"fcs/B1.fcs", "fcs/B2.fcs", "../raw/T1.fcs"}


# ---------------------------------------------------------------------------------------------
# the QC table's caption explains every flag

CAPTION = Path(__file__).resolve().parents[1] / "workflow/report/qc_samples.rst"
GATING = Path(__file__).resolve().parents[1] / "src/cytotrial/gating"
# how the gating raises a flag: data.flags.append("x"), data.flags.extend(f"x:..."),
# record["flags"] = f"x>..."
_RAISED = re.compile(r"""flags(?:\.append\(|\.extend\(|"\] = )f?"([a-z_]+)([:<>]?)""")


def _flag_kind(flag: str) -> str:
    """``too_few_events:cd8<50`` -> ``too_few_events:``; ``uncompensated`` -> itself."""
    found = re.match(r"[a-z_]+[:<>]?", flag)
    assert found, flag
    return found.group(0)


def test_the_qc_caption_explains_every_flag_the_workflow_raises(adata):
    from cytotrial.tl._gates import gate_flags

    raised = {_flag_kind(f) for flags in adata.obs["qc_flags"] for f in str(flags).split(",") if f}
    assert raised == {"too_few_events:", "ratio_zero_denominator:", "mfi_too_few_events:"}
    positions = pd.DataFrame(
        {"sample_id": ["s1", "s2"], "gate": ["treg", "nk"], "status": ["fallback", "adapted"],
         "outlier": [False, True]}
    )  # fmt: skip
    gates = gate_flags(positions, ["s1", "s2"])
    raised |= {_flag_kind(f) for f in gates}
    assert {"adaptive_fallback:", "gate_outlier:"} <= raised
    for module in sorted(GATING.glob("*.py")):
        raised |= {name + mark for name, mark in _RAISED.findall(module.read_text())}
    assert {"uncompensated", "non_finite:", "acquisition_removed>"} <= raised
    caption = CAPTION.read_text(encoding="utf-8")
    for kind in sorted(raised):
        assert f"``{kind}" in caption, kind
