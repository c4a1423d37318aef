"""The trial simulator.

FCS files as the contracts say, truth that adds up, the effect model of the issue, determinism,
identifiers that stay in the FCS files.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree as ET

import flowio
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cytotrial.errors import ConfigError
from cytotrial.sim import (
    ARMS,
    CANARY,
    CELL_TYPES,
    IDENTIFYING_KEYWORDS,
    PANELS,
    POPULATIONS,
    effect_model,
    simulate_sample,
    simulate_trial,
    spillover_matrix,
    truth_events,
    typical_composition,
    write_fcs,
)

SHEET_COLUMNS = [
    "sample_id",
    "patient_id",
    "arm",
    "visit",
    "cycle",
    "day",
    "compartment",
    "panel",
    "batch",
    "fcs",
    "lymphocytes_per_ul",
]
PATIENT_COLUMNS = [
    "patient_id",
    "arm",
    "best_response",
    "pfs_months",
    "pfs_event",
    "os_months",
    "os_event",
]
CONTRACT_PANEL = {
    "FITC-A": "CD3",
    "PE-A": "CD25",
    "PE-CF594-A": "CD38",
    "PerCP-Cy5-5-A": "CD4",
    "PE-Cy7-A": "CD56",
    "APC-A": "Ki67",
    "APC-H7-A": "CD8",
    "BV421-A": "CD127",
    "BV510-A": "Viability",
    "BV605-A": "CD16",
    "BV711-A": "HLA-DR",
}
CANONICAL_PARENT = {
    "singlets": "lymphocytes",
    "live": "singlets",
    "leukocytes": "live",
    "cd3": "live",
    "cd4": "cd3",
    "cd8": "cd3",
    "treg": "cd4",
    "nk": "live",
    "cd8_ki67": "cd8",
    "cd8_hladr": "cd8",
    "cd8_cd38": "cd8",
    "cd8_activated": "cd8",
    "cd4_conv": "cd4",
}
CD8_TYPES = {
    "cd8_ki67neg",
    "cd8_ki67pos",
    "cd8_act_ki67neg",
    "cd8_act_ki67pos",
    "cd8_hladr_only",
    "cd8_cd38_only",
}


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    """A small trial: enough patients for medians and dropout, few events per file."""
    out = tmp_path_factory.mktemp("trial")
    summary = simulate_trial(out, patients_per_arm=10, events=3000, tumor_events=3000, seed=2024)
    assert summary.n_files > 0
    return out


@pytest.fixture(scope="module")
def sheet(trial) -> pd.DataFrame:
    return pd.read_csv(trial / "samples.tsv", sep="\t")


@pytest.fixture(scope="module")
def truth(trial, sheet) -> pd.DataFrame:
    """Truth counts, one row per sample, joined with the sheet."""
    counts = pd.read_csv(trial / "truth" / "populations.tsv", sep="\t")
    wide = counts.pivot(index="sample_id", columns="population", values="count")
    return sheet.set_index("sample_id").join(wide)


def _tree_of_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- files -----------------------------------------------------------------------------------


def test_every_file_reads_with_flowkit_with_the_stated_event_count(trial, sheet):
    flowkit = pytest.importorskip("flowkit")
    for row in sheet.itertuples():
        sample = flowkit.Sample(str(trial / row.fcs))
        expected = 3000
        assert sample.event_count == expected, row.sample_id
        assert int(sample.metadata["tot"]) == expected
        channels = dict(zip(sample.pnn_labels, sample.pns_labels))
        for channel, marker in CONTRACT_PANEL.items():
            assert channels[channel] == marker, (row.sample_id, channel)
        assert {"FSC-A", "FSC-H", "SSC-A", "Time"} <= set(channels)
        assert ("BV786-A" in channels) == (row.panel == "tumor")
        if row.panel == "tumor":
            assert channels["BV786-A"] == "CD45"


def test_files_are_float32_fcs31_with_a_spillover_keyword(trial, sheet):
    path = trial / sheet["fcs"].iloc[0]
    assert path.read_bytes()[:6] == b"FCS3.1"
    text = flowio.FlowData(str(path)).text
    assert text["datatype"] == "F"
    assert all(text[f"p{i}b"] == "32" for i in range(1, int(text["par"]) + 1))
    fields = text["spillover"].split(",")
    n = int(fields[0])
    assert fields[1 : n + 1] == list(spillover_matrix("blood").columns)
    assert len(fields) == 1 + n + n * n


@pytest.mark.parametrize("panel", ["blood", "tumor"])
def test_compensating_with_the_files_own_spillover_recovers_the_unmixed_signal(tmp_path, panel):
    flowkit = pytest.importorskip("flowkit")
    simulated = simulate_sample(panel=panel, n_events=3000, seed=11)
    path = write_fcs(simulated, tmp_path / f"{panel}.fcs")
    sample = flowkit.Sample(str(path))
    sample.apply_compensation(sample.metadata["spillover"])
    compensated = sample.get_events(source="comp")
    raw = sample.get_events(source="raw")
    fluorescence = [i for i, marker in enumerate(simulated.markers) if marker]
    unmixed = simulated.unmixed[:, fluorescence].astype(np.float64)
    np.testing.assert_allclose(compensated[:, fluorescence], unmixed, rtol=1e-4, atol=0.5)
    # and compensation matters: the raw detector values are far from the unmixed signal
    assert np.max(np.abs(raw[:, fluorescence] - unmixed)) > 500
    # negatives near 0 with spread: some compensated values are below 0
    assert np.mean(compensated[:, fluorescence] < 0) > 0.05
    # the file holds exactly the simulated events (FlowKit scales Time by $TIMESTEP)
    not_time = [i for i, channel in enumerate(simulated.channels) if channel != "Time"]
    np.testing.assert_array_equal(
        raw[:, not_time].astype(np.float32), simulated.events[:, not_time]
    )


def test_spillover_matrix_follows_the_fcs_convention():
    for panel in PANELS:
        spill = spillover_matrix(panel)
        detectors = [c for c, m in PANELS[panel] if m]
        assert list(spill.index) == list(spill.columns) == detectors
        assert np.allclose(np.diag(spill.to_numpy()), 1.0)
        # FITC spills into PE much more than PE into FITC (row = source, column = detector)
        assert spill.loc["FITC-A", "PE-A"] > 5 * spill.loc["PE-A", "FITC-A"]
    sample = simulate_sample(panel="blood", n_events=500, seed=1)
    fluorescence = [i for i, marker in enumerate(sample.markers) if marker]
    mixed = (
        sample.unmixed[:, fluorescence].astype(np.float64) @ spillover_matrix("blood").to_numpy()
    )
    np.testing.assert_allclose(sample.events[:, fluorescence], mixed, rtol=1e-4, atol=0.05)


def test_hladr_and_cd38_channels_spill_into_and_from_their_neighbours():
    for panel in PANELS:
        spill = spillover_matrix(panel)
        # PE-CF594 sits next to PE (yellow-green laser), BV711 between BV605 and BV786 (violet)
        assert spill.loc["PE-A", "PE-CF594-A"] > 0.1 and spill.loc["PE-CF594-A", "PE-A"] > 0
        assert spill.loc["PE-CF594-A", "PerCP-Cy5-5-A"] > 0
        assert spill.loc["BV605-A", "BV711-A"] > 0.1 and spill.loc["BV711-A", "BV605-A"] > 0
        if panel == "tumor":
            assert spill.loc["BV711-A", "BV786-A"] > 0.1 and spill.loc["BV786-A", "BV711-A"] > 0
        # every channel is mixed with some other one, both ways
        off_diagonal = spill.to_numpy() - np.eye(len(spill))
        assert (off_diagonal.sum(axis=0) > 0).all() and (off_diagonal.sum(axis=1) > 0).all()


def test_hladr_and_cd38_expression_is_continuous_and_where_biology_puts_it():
    sample = simulate_sample(
        panel="blood", n_events=60_000, dead_rate=0.0, doublet_rate=0.0, seed=8
    )
    labels = np.array(CELL_TYPES)[sample.cell_type]
    hladr = sample.unmixed[:, sample.markers.index("HLA-DR")]
    cd38 = sample.unmixed[:, sample.markers.index("CD38")]

    def median(values, *types):
        return float(np.median(values[np.isin(labels, types)]))

    resting_t = ("cd4_conv", "cd8_ki67neg")
    activated = ("cd8_act_ki67neg", "cd8_act_ki67pos")
    # HLA-DR bright on B cells and on activated T cells, negative on resting T cells
    assert median(hladr, "b") > median(hladr, *activated) > 10 * median(hladr, *resting_t)
    # CD38 on NK cells, B cells and activated T cells, dim on resting T cells
    for types in (("nk",), ("b",), activated):
        assert median(cd38, *types) > 10 * median(cd38, *resting_t), types
    assert 30 < median(cd38, *resting_t) < 300  # dim, not absent
    # continuous: a log-normal cloud spanning several-fold, not a point
    low, high = np.percentile(cd38[np.isin(labels, activated)], [5, 95])
    assert high > 2 * low > 0


# --- truth -----------------------------------------------------------------------------------


def test_truth_counts_are_the_labels_of_the_events():
    sample = simulate_sample(panel="tumor", n_events=4000, seed=5)
    membership = sample.truth_membership()
    counts = sample.truth_counts()
    assert list(counts) == list(POPULATIONS["tumor"])
    assert counts == {k: int(v.sum()) for k, v in membership.items()}
    labels = np.array(CELL_TYPES)[sample.cell_type]
    cd8 = membership["cd8"]
    assert set(labels[cd8]) == CD8_TYPES
    assert not sample.dead[cd8].any() and not sample.doublet[cd8].any()
    # the Boolean populations, event by event, as the demo config defines them
    activated = membership["cd8_activated"]
    np.testing.assert_array_equal(activated, membership["cd8_hladr"] & membership["cd8_cd38"])
    np.testing.assert_array_equal(membership["cd4_conv"], membership["cd4"] & ~membership["treg"])
    assert set(labels[activated]) == {"cd8_act_ki67neg", "cd8_act_ki67pos"}
    assert set(labels[membership["cd8_hladr"] & ~activated]) == {"cd8_hladr_only"}
    assert set(labels[membership["cd8_cd38"] & ~activated]) == {"cd8_cd38_only"}
    # lymphocytes include their dead cells and doublets; small tumor cells scatter like them
    lymph = membership["lymphocytes"]
    assert sample.dead[lymph].any() and sample.doublet[lymph].any()
    assert "tumor_small" in set(labels[lymph]) and "tumor_small" not in set(
        labels[membership["leukocytes"]]
    )
    assert not np.isin(labels[lymph], ["debris", "monocyte", "granulocyte", "tumor_large"]).any()


@pytest.mark.parametrize("panel", ["blood", "tumor"])
def test_truth_populations_sit_at_their_gate_paths_in_the_demo_strategies(project_root, panel):
    # the simulator's truth is its own; it must still match the gates of the demo strategies
    from cytotrial.sim._truth import _GATE_PATHS

    parent = {}
    root = ET.parse(project_root / "resources" / "gating" / f"{panel}.xml").getroot()
    for element in root.iter():
        attributes = {name.rsplit("}", 1)[-1]: value for name, value in element.attrib.items()}
        if element.tag.endswith("Gate") and "id" in attributes:
            parent[attributes["id"]] = attributes.get("parent_id")

    def path(gate: str) -> tuple[str, ...]:
        return (*path(parent[gate]), gate) if parent[gate] else (gate,)

    assert POPULATIONS[panel] == (*_GATE_PATHS[panel], "cd8_activated", "cd4_conv")
    for population, gate_path in _GATE_PATHS[panel].items():
        assert gate_path == path(population), population
    assert {"cd8_hladr", "cd8_cd38"} <= set(_GATE_PATHS[panel])


def test_truth_parents_follow_the_reported_population_rule():
    # nearest truth population above on the gate path (cd3_neg is a gate, not a population);
    # a Boolean's parent is the deepest population above all its positive operands
    from cytotrial.sim._truth import _PARENT

    for panel in PANELS:
        lineage = "leukocytes" if panel == "tumor" else "live"
        expected = {**CANONICAL_PARENT, "lymphocytes": None}
        if panel == "tumor":
            expected |= {"cd3": lineage, "nk": lineage}
        else:
            del expected["leukocytes"]
        assert _PARENT[panel] == expected


def test_truth_table_has_every_sample_and_population(trial, sheet):
    counts = pd.read_csv(trial / "truth" / "populations.tsv", sep="\t")
    assert list(counts.columns) == ["sample_id", "population", "count"]
    for row in sheet.itertuples():
        got = counts.loc[counts["sample_id"] == row.sample_id, "population"].tolist()
        assert got == list(POPULATIONS[row.panel]), row.sample_id
    assert "leukocytes" not in set(counts.merge(sheet)[lambda d: d.panel == "blood"].population)


def test_truth_counts_add_up_along_the_tree(truth):
    assert {"cd8_hladr", "cd8_cd38", "cd8_activated", "cd4_conv"} <= set(truth.columns)
    for sample_id, row in truth.iterrows():
        for child, parent in CANONICAL_PARENT.items():
            if row.panel == "tumor" and child in ("cd3", "nk"):
                parent = "leukocytes"
            if pd.isna(row.get(child)):
                assert row.panel == "blood" and child == "leukocytes"
                continue
            assert 0 <= row[child] <= row[parent], (sample_id, child)
        assert row.cd4 + row.cd8 <= row.cd3
        # Booleans: conventional CD4 and Treg make up CD4; activated CD8 are HLA-DR+ and CD38+
        assert row.cd4_conv + row.treg == row.cd4
        assert row.cd8_activated <= min(row.cd8_hladr, row.cd8_cd38)
        assert row.cd8_hladr + row.cd8_cd38 - row.cd8_activated <= row.cd8
        lineage = row.leukocytes if row.panel == "tumor" else row.live
        assert row.cd3 + row.nk <= lineage
        assert row.lymphocytes <= 3000


def test_every_file_has_its_event_truth_and_acquisition_facts(trial, sheet):
    counts = pd.read_csv(trial / "truth" / "populations.tsv", sep="\t")
    acquisition = pd.read_csv(trial / "truth" / "acquisition.tsv", sep="\t", keep_default_na=False)
    assert acquisition.sample_id.tolist() == sheet.sample_id.tolist()
    assert (acquisition.anomaly == "").all() and (acquisition.anomalous_events == 0).all()
    assert (acquisition.instrument == "").all() and acquisition.site.str.fullmatch(r"S\d").all()
    assert (acquisition.events == 3000).all()
    for row in sheet.itertuples():
        events = truth_events(trial, row.sample_id)
        assert events.n_events == 3000 and not events.anomalous.any()
        own = counts[counts.sample_id == row.sample_id]
        assert dict(zip(own.population, own["count"])) == events.counts()
    # the clean mode's batch shift: a few percent, one gain per batch and channel, no offsets
    drift = pd.read_csv(trial / "truth" / "drift.tsv", sep="\t").merge(
        sheet[["sample_id", "batch"]]
    )
    assert (drift.groupby(["batch", "channel"]).gain.nunique() == 1).all()
    assert drift.gain.between(0.85, 1.15).all() and drift.gain.std() > 0
    assert (drift.offset == 0).all() and (drift.spread == 1).all()


def test_baseline_blood_frequencies_are_near_published_values(truth):
    baseline = truth[(truth.compartment == "blood") & (truth.visit == "C1D1")]
    assert 0.25 <= (baseline.cd8 / baseline.cd3).median() <= 0.40
    assert 0.05 <= (baseline.treg / baseline.cd4).median() <= 0.10
    assert 0.05 <= (baseline.nk / baseline.lymphocytes).median() <= 0.20
    assert 0.02 <= (baseline.cd8_activated / baseline.cd8).median() <= 0.10


def test_activated_cd8_t_cells_are_more_often_ki67_positive():
    sample = simulate_sample(panel="blood", n_events=100_000, seed=12)
    membership = sample.truth_membership()
    ki67 = membership["cd8_ki67"]
    activated = membership["cd8_activated"]
    resting = membership["cd8"] & ~activated
    assert ki67[activated].mean() > 5 * ki67[resting].mean()
    assert 0.2 <= ki67[activated].mean() <= 0.6


def _per_ul_change(truth: pd.DataFrame, population: str, visit: str) -> pd.DataFrame:
    blood = truth[truth.compartment == "blood"]
    per_ul = blood[population] / blood.live * blood.lymphocytes_per_ul
    wide = blood.assign(value=per_ul).pivot_table(
        index=["patient_id", "arm"], columns="visit", values="value"
    )
    return (wide[visit] / wide["C1D1"]).dropna().rename("ratio").reset_index()


@pytest.mark.parametrize("population", ["cd8", "nk", "treg", "cd8_activated"])
def test_bempeg_raises_blood_counts_at_c1d8_more_than_nivo(truth, population):
    change = _per_ul_change(truth, population, "C1D8")
    bempeg = change.loc[change.arm == "BEMPEG+NIVO", "ratio"]
    nivo = change.loc[change.arm == "NIVO", "ratio"]
    assert len(bempeg) >= 5 and len(nivo) >= 5
    assert bempeg.median() > 1.5
    assert (bempeg > 1).mean() >= 0.8
    assert bempeg.median() > 1.5 * nivo.median()


def test_activated_cd8_rise_at_c1d8_is_found_against_nivo_and_fades(truth):
    # the workflow's arm comparison: Mann-Whitney on log2 fold changes of per_ul
    change = {visit: _per_ul_change(truth, "cd8_activated", visit) for visit in ("C1D8", "C5D1")}
    c1d8 = change["C1D8"].assign(log2fc=lambda d: np.log2(d.ratio))
    bempeg = c1d8.loc[c1d8.arm == "BEMPEG+NIVO", "log2fc"]
    nivo = c1d8.loc[c1d8.arm == "NIVO", "log2fc"]
    assert stats.mannwhitneyu(bempeg, nivo, alternative="two-sided").pvalue < 0.001
    assert (nivo.median() > 0) and (bempeg.median() > 2.5)  # log2: NIVO a little, combo ~10x
    c5d1 = change["C5D1"]
    late = np.log2(c5d1.loc[c5d1.arm == "BEMPEG+NIVO", "ratio"])
    assert late.median() < bempeg.median() - 1.5


def test_expected_fractions_of_the_effect_model_mirror_the_sampler():
    # the effect model is computed from expected fractions; a large sample must agree
    from cytotrial.sim._effects import _expected_fractions

    for panel in PANELS:
        composition = typical_composition(panel)
        sample = simulate_sample(
            panel=panel, n_events=200_000, composition=composition, dead_rate=0.1,
            doublet_rate=0.05, seed=3,
        )  # fmt: skip
        expected = _expected_fractions(panel, composition, 0.1, 0.05)
        counts = sample.truth_counts()
        assert set(expected) == set(counts)
        for population, count in counts.items():
            mean = expected[population] * sample.n_events
            assert abs(count - mean) < 5 * np.sqrt(mean) + 1, (panel, population)


# --- effect model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def effects(trial) -> pd.DataFrame:
    table = pd.read_csv(trial / "truth" / "effects.tsv", sep="\t")
    pd.testing.assert_frame_equal(table, effect_model(), check_exact=False, rtol=1e-9)
    return table.set_index(["arm", "compartment", "population", "visit", "measure"])["fold_change"]


def test_effect_table_layout(trial):
    table = pd.read_csv(trial / "truth" / "effects.tsv", sep="\t")
    assert list(table.columns) == [
        "arm", "compartment", "population", "visit", "measure", "fold_change",
    ]  # fmt: skip
    assert set(table.arm) == set(ARMS)
    blood, tumor = table[table.compartment == "blood"], table[table.compartment == "tumor"]
    assert set(blood.measure) == {"per_ul", "freq_parent"}
    assert set(tumor.measure) == {"freq_parent"}
    assert set(blood.visit) == {"C1D1", "C1D8", "C2D1", "C3D1", "C5D1"}
    assert set(tumor.visit) == {"C1D1", "C2D1"}
    assert set(blood.population) == set(POPULATIONS["blood"])
    assert set(tumor.population) == set(POPULATIONS["tumor"])
    assert np.allclose(table.loc[table.visit == "C1D1", "fold_change"], 1.0)
    assert not table.duplicated(["arm", "compartment", "population", "visit", "measure"]).any()


def test_effect_model_is_the_one_of_the_issue(effects):
    bempeg = effects.loc["BEMPEG+NIVO", "blood"]
    nivo = effects.loc["NIVO", "blood"]
    for population in ("cd8", "nk", "treg"):
        peak = bempeg.loc[(population, "C1D8", "per_ul")]
        assert 2.0 <= peak <= 4.0, population
        later = [bempeg.loc[(population, v, "per_ul")] for v in ("C2D1", "C3D1", "C5D1")]
        assert max(later) < peak, population  # the peak is at C1D8
        assert nivo.loc[(population, "C1D8", "per_ul")] < 1.2
    assert bempeg.loc[("cd8_ki67", "C1D8", "freq_parent")] >= 3.0  # Ki67+ fraction of CD8
    # nk's parent is live: NK expand more than the other lymphocytes
    assert 1.2 <= bempeg.loc[("nk", "C1D8", "freq_parent")] < bempeg.loc[("nk", "C1D8", "per_ul")]
    assert 1.3 <= nivo.loc[("cd8_ki67", "C1D8", "freq_parent")] <= 1.7
    # CD8 gains attenuate by C3 while Tregs stay high
    assert bempeg.loc[("cd8", "C3D1", "per_ul")] < 1.5
    assert bempeg.loc[("treg", "C3D1", "per_ul")] >= 2.0
    assert bempeg.loc[("treg", "C5D1", "per_ul")] >= 2.0


@pytest.mark.parametrize("measure", ["per_ul", "freq_parent"])
def test_activated_cd8_rise_early_and_fade_like_ki67_more_with_bempeg(effects, measure):
    bempeg = effects.loc["BEMPEG+NIVO", "blood"]
    nivo = effects.loc["NIVO", "blood"]
    visits = ["C1D8", "C2D1", "C3D1", "C5D1"]
    for population in ("cd8_activated", "cd8_ki67"):
        combo = [bempeg.loc[(population, visit, measure)] for visit in visits]
        alone = [nivo.loc[(population, visit, measure)] for visit in visits]
        assert combo == sorted(combo, reverse=True) and combo[-1] > 1.0, population  # fades
        assert combo[0] >= (8.0 if measure == "per_ul" else 3.0), population  # strongly at C1D8
        assert all(1.0 < a < 1.6 for a in alone), population  # NIVO: a small rise
        assert all(c > a for c, a in zip(combo, alone)), population
        assert combo[0] > 2 * alone[0], population
    # the fraction of CD8 that is activated, as the Ki67+ fraction: several-fold at C1D8
    assert bempeg.loc[("cd8_activated", "C1D8", "freq_parent")] >= 3.0
    # conventional CD4 (parent cd4) shrink as a fraction while Tregs expand
    assert bempeg.loc[("cd4_conv", "C1D8", "freq_parent")] < 1.0


def test_tumor_effects_do_not_differ_between_arms(effects):
    bempeg = effects.loc["BEMPEG+NIVO", "tumor"]
    nivo = effects.loc["NIVO", "tumor"]
    pd.testing.assert_series_equal(bempeg, nivo)
    assert bempeg.loc[("cd8", "C2D1", "freq_parent")] > 1.0  # but there is a change
    assert bempeg.loc[("cd8_activated", "C2D1", "freq_parent")] > 1.0


# --- trial design ----------------------------------------------------------------------------


def test_sample_sheet_columns_and_values(trial, sheet):
    assert list(sheet.columns) == SHEET_COLUMNS
    assert sheet.sample_id.is_unique
    assert set(sheet.arm) == set(ARMS)
    assert all(re.fullmatch(r"P\d{3}", p) for p in sheet.patient_id)
    for row in sheet.itertuples():
        assert row.sample_id == f"{row.patient_id}_{row.visit}_{row.compartment}"
        assert row.visit == f"C{row.cycle}D{row.day}"
        assert row.panel == row.compartment
        assert row.fcs == f"fcs/{row.sample_id}.fcs" and (trial / row.fcs).is_file()
        assert re.fullmatch(r"B\d{2,}", row.batch)
    blood = sheet[sheet.compartment == "blood"]
    tumor = sheet[sheet.compartment == "tumor"]
    assert set(blood.visit) <= {"C1D1", "C1D8", "C2D1", "C3D1", "C5D1"}
    assert set(tumor.visit) <= {"C1D1", "C2D1"}
    assert (blood.lymphocytes_per_ul > 100).all() and tumor.lymphocytes_per_ul.isna().all()
    assert sheet.batch.nunique() > 1
    raw = (trial / "samples.tsv").read_text().splitlines()
    assert raw[0].split("\t") == SHEET_COLUMNS
    tumor_line = next(line for line in raw if "_tumor\t" in line)
    assert tumor_line.endswith("\t")  # lymphocytes_per_ul left empty for tumor


def test_patients_stop_early_mostly_on_progression(trial, sheet):
    patients = pd.read_csv(trial / "patients.tsv", sep="\t")
    assert list(patients.columns) == PATIENT_COLUMNS
    assert patients.patient_id.tolist() == sorted(sheet.patient_id.unique())
    assert (patients.arm.value_counts() == 10).all()
    assert set(patients.best_response) <= {"CR", "PR", "SD", "PD"}
    assert patients.pfs_event.isin([0, 1]).all() and patients.os_event.isin([0, 1]).all()
    assert (patients.os_months >= patients.pfs_months).all() and (patients.pfs_months > 0).all()
    blood = sheet[sheet.compartment == "blood"]
    assert set(blood.loc[blood.visit == "C1D1", "patient_id"]) == set(patients.patient_id)
    visits = blood.visit.value_counts()
    assert visits["C5D1"] < visits["C1D1"]
    stopped = patients[~patients.patient_id.isin(blood.loc[blood.visit == "C5D1", "patient_id"])]
    assert (stopped.best_response == "PD").mean() > 0.5
    # progressive disease means early progression
    pd_patients = patients[patients.best_response == "PD"]
    assert (pd_patients.pfs_months < 3).all() and (pd_patients.pfs_event == 1).all()


def test_objective_response_rate_is_realistic(tmp_path):
    simulate_trial(tmp_path, patients_per_arm=150, events=20, tumor_events=20, seed=9)
    patients = pd.read_csv(tmp_path / "patients.tsv", sep="\t")
    orr = patients.best_response.isin(["CR", "PR"]).mean()
    assert 0.25 <= orr <= 0.40


def test_patients_per_arm_takes_a_pair(tmp_path):
    summary = simulate_trial(tmp_path, patients_per_arm=(3, 2), events=50, tumor_events=50, seed=1)
    patients = pd.read_csv(tmp_path / "patients.tsv", sep="\t")
    assert patients.arm.value_counts().to_dict() == {"BEMPEG+NIVO": 3, "NIVO": 2}
    sheet = pd.read_csv(tmp_path / "samples.tsv", sep="\t")
    assert summary.n_files == len(sheet) == len(list((tmp_path / "fcs").glob("*.fcs")))
    expected_events = 50 * len(sheet)
    assert summary.n_events == expected_events
    assert summary.seconds > 0 and summary.files_per_second > 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"patients_per_arm": 0},
        {"patients_per_arm": (3, 0)},
        {"patients_per_arm": (1, 2, 3)},
        {"events": 0},
        {"tumor_events": -5},
        {"jobs": 0},
        {"seed": -1},
    ],
)
def test_bad_arguments_raise_a_one_line_config_error(tmp_path, arguments):
    with pytest.raises(ConfigError) as error:
        simulate_trial(tmp_path, **arguments)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "samples.tsv").exists()


def test_unknown_panel_or_cell_type_raise_config_errors():
    with pytest.raises(ConfigError, match="panel"):
        simulate_sample(panel="marrow", n_events=10)
    with pytest.raises(ConfigError, match="cell type"):
        simulate_sample(panel="blood", n_events=10, composition={"neuron": 1.0})


# --- determinism and identifiers -------------------------------------------------------------


def test_same_arguments_give_byte_identical_files_whatever_the_jobs(tmp_path):
    arguments = {"patients_per_arm": 2, "events": 1500, "tumor_events": 1000, "seed": 42}
    simulate_trial(tmp_path / "a", **arguments)
    simulate_trial(tmp_path / "b", **arguments)
    simulate_trial(tmp_path / "c", **arguments, jobs=2)
    first = _tree_of_files(tmp_path / "a")
    assert len(first) > 10
    assert first == _tree_of_files(tmp_path / "b")
    assert first == _tree_of_files(tmp_path / "c")
    simulate_trial(tmp_path / "d", **{**arguments, "seed": 43})
    other = _tree_of_files(tmp_path / "d")
    common = set(first) & set(other) - {"truth/effects.tsv"}
    assert all(first[name] != other[name] for name in common if name.startswith("fcs/"))


def test_samples_use_independent_random_streams():
    a = simulate_sample(panel="blood", n_events=2000, seed=np.random.SeedSequence(1).spawn(2)[0])
    b = simulate_sample(panel="blood", n_events=2000, seed=np.random.SeedSequence(1).spawn(2)[1])
    assert not np.array_equal(a.cell_type, b.cell_type)
    assert abs(np.corrcoef(a.events[:, 3], b.events[:, 3])[0, 1]) < 0.1


def test_identifiers_are_in_the_fcs_text_and_nowhere_else(trial, sheet):
    names = set()
    for fcs in sheet.fcs.iloc[:8]:
        text = flowio.FlowData(str(trial / fcs)).text
        for keyword in IDENTIFYING_KEYWORDS:
            value = text[keyword.lstrip("$").lower()]
            assert CANARY in value, keyword
        assert re.fullmatch(r"\d{2}-[A-Z]{3}-\d{4}", text["date"])
        assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", text["btim"])
        names.add(text["src"].split("-")[3])  # the made-up surname
    tables = [trial / "samples.tsv", trial / "patients.tsv", *(trial / "truth").glob("*.tsv")]
    for table in tables:
        content = table.read_text()
        assert CANARY not in content, table.name
        assert not any(name in content for name in names), table.name
