"""The outcome tables of the statistics step and the Kaplan-Meier figures, as the workflow writes them.

On the planted trial of conftest.py: ``write_stats`` writes the survival (``cox``, ``km``,
``survival_missing``), responder (``responders``) and sample-availability (``availability``,
``missing_samples``) tables with their columns when a patients table is given and a header only
without it, and every table that existed before keeps its bytes. The rule scripts
(``workflow/scripts/stats.py``, ``survival.py``) run here as Snakemake runs them, with a stand-in
for its ``snakemake`` object. Expected values come from the planted trial, never from the code
under test.
"""

from __future__ import annotations

import hashlib
import io
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from conftest import (
    ANALYSIS,
    ARM_A,
    ARM_B,
    DROPPED,
    EFFECTS,
    FEATURES,
    FLAGS,
    LABELS,
    PATIENT_EFFECTS,
    RATIOS,
    make_trial,
    patients_table,
    planted_trial,
)
from cytotrial import tl as stats
from cytotrial.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
REPORT = ROOT / "workflow" / "report"
ARMS = [ARM_A, ARM_B]
COLOURS = {ARM_A: "#C8102E", ARM_B: "#1F77B4"}

OLD_TABLES = [
    "log2fc", "missing_baseline", "summary", "change_from_baseline", "arm_comparison", "response",
]  # fmt: skip
# The new tables and their columns, as the issue and the library functions state them.
NEW_COLUMNS = {
    "cox": [
        "population", "compartment", "endpoint", "term", "hazard_ratio", "ci_low", "ci_high",
        "p_value", "q_value", "family", "n_patients", "n_events", "n_missing", "note",
    ],
    "km": [
        "population", "compartment", "endpoint", "arm", "group", "n_patients", "n_events",
        "median_months", "ci_low", "ci_high", "logrank_p", "q_value", "family",
    ],
    "survival_missing": ["patient_id", "arm", "population", "compartment", "endpoint", "reason"],
    "responders": [
        "analysis", "arm", "compartment", "population", "measure", "visit", "n", "n_responders",
        "n_non_responders", "n_not_evaluable", "n_missing", "median_log2fc_responders",
        "median_log2fc_non_responders", "estimate", "ci_low", "ci_high", "p_value", "q_value",
        "family", "method", "note",
    ],
    "availability": [
        "compartment", "visit", "arm", "expected", "sampled", "missing_progression",
        "missing_other", "excluded",
    ],
    "missing_samples": [
        "compartment", "visit", "arm", "patient_id", "reason", "sample_id", "message",
    ],
}  # fmt: skip
# sha256 of the planted trial's tables written before the outcome tables were added (conftest's
# patients table, ANALYSIS, arms in config order): adding tables must not change a byte of these.
# (change_from_baseline, arm_comparison, response re-pinned for the declared
# multiplicity: ``family`` and ``note`` columns, q-values within families, no pooled rows.)
PINNED = {
    "log2fc": "b8c68edb6c3749bae919f7fb11d24f9ccc1255abc0ccfb83d00dcb2ea5dcf56b",
    "missing_baseline": "79cf0204f3554b19622532c7d0726b3cc174ff6d9975e0ba0a9d72e9b84ef3d0",
    "summary": "a0acc353dcb0b85a996642b06db426268b6fb52c967b4155440da9c4e6e19f7d",
    "change_from_baseline": "36a324ceae87608d1c7c369b7122fda472b8535bf17c86ab938d88af8a533318",
    "arm_comparison": "2c0ed63ddeb3f85235b19704b41ee7fcfa4e83ad41bc9f6c87f828fadf221fa2",
    "response": "5139c42f69e32f7c4c07bb87e90b1b056118f0349fda699afed0f56721ada28b",
}
EXCLUDED = "P03_blood_C1D1"  # not in the trial (dropped): in the sheet, excluded at gating
EXCLUDED_WHY = "file has no CD8 channel"


# --------------------------------------------------------------------------------------------
# inputs as the workflow has them
# --------------------------------------------------------------------------------------------
def _sheet(trial) -> pd.DataFrame:
    """The sample sheet: every sample of the trial, plus the one excluded at gating."""
    columns = [
        "sample_id", "patient_id", "arm", "visit", "cycle", "day", "compartment", "panel",
        "batch", "fcs", "lymphocytes_per_ul",
    ]  # fmt: skip
    sheet = trial.obs[columns].reset_index(drop=True)
    extra = sheet[sheet["sample_id"] == "P04_blood_C1D1"].assign(
        sample_id=EXCLUDED, patient_id="P03", fcs=f"{EXCLUDED}.fcs"
    )
    return pd.concat([sheet, extra], ignore_index=True)


def _qc(sheet: pd.DataFrame) -> pd.DataFrame:
    excluded = sheet["sample_id"] == EXCLUDED
    return pd.DataFrame(
        {
            "sample_id": sheet["sample_id"],
            "status": np.where(excluded, "excluded", "ok"),
            "message": np.where(excluded, EXCLUDED_WHY, ""),
        }
    )


def _survival_patients() -> pd.DataFrame:
    """The patients of conftest with varied survival: P13 progressed at 0.5 months (day 15.2)."""
    table = patients_table()
    k = np.arange(len(table))
    table["pfs_months"] = 2.0 + (k * 7 % 11) * 0.8
    table["pfs_event"] = (k % 4 != 3).astype(int)
    table["os_months"] = table["pfs_months"] + 3.0 + (k % 5)
    table["os_event"] = (k % 3 == 0).astype(int)
    table.loc[table["patient_id"] == "P13", ["pfs_months", "pfs_event"]] = [0.5, 1]
    return table


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    trial = planted_trial()
    trial.write_h5ad(folder / "populations.h5ad")
    sheet = _sheet(trial)
    sheet.to_csv(folder / "samples.tsv", sep="\t", index=False)
    _qc(sheet).to_csv(folder / "qc.tsv", sep="\t", index=False)
    patients_table().to_csv(folder / "patients.tsv", sep="\t", index=False)
    _survival_patients().to_csv(folder / "survival.tsv", sep="\t", index=False)
    return {
        "h5ad": folder / "populations.h5ad",
        "sheet": folder / "samples.tsv",
        "qc": folder / "qc.tsv",
        "patients": folder / "patients.tsv",
        "survival": folder / "survival.tsv",
    }


def _write(inputs, outdir: Path, *, patients: str | None, analysis=ANALYSIS) -> dict[str, Path]:
    return stats.write_stats(
        inputs["h5ad"],
        outdir=outdir,
        analysis=analysis,
        arms=ARMS,
        patients_path=inputs[patients] if patients else None,
        samples_path=inputs["sheet"],
        qc_path=inputs["qc"],
    )


@pytest.fixture(scope="module")
def written(inputs, tmp_path_factory) -> dict[str, Path]:
    """Every table with conftest's patients table (the one the pinned checksums were made with)."""
    return _write(inputs, tmp_path_factory.mktemp("with"), patients="patients")


@pytest.fixture(scope="module")
def survival(inputs) -> dict[str, pd.DataFrame]:
    """The outcome tables with varied survival times."""
    return stats.compute_tables(
        planted_trial(),
        analysis=ANALYSIS,
        patients=stats.read_patients(inputs["survival"]),
        tables=list(NEW_COLUMNS),
        arms=ARMS,
        samples=pd.read_csv(inputs["sheet"], sep="\t"),
        qc=_qc(pd.read_csv(inputs["sheet"], sep="\t")),
    )


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values={})


# --------------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------------
def test_every_table_is_written_and_the_new_ones_have_their_columns(written):
    assert list(written) == list(stats.STAT_TABLES)
    expected = [*OLD_TABLES[:5], "mmrm", OLD_TABLES[5], *NEW_COLUMNS]
    assert list(stats.STAT_TABLES) == expected
    mmrm_columns = list(stats.MMRM_COLUMNS)
    mmrm_columns.insert(mmrm_columns.index("q_value") + 1, "family")
    assert list(_read(written["mmrm"]).columns) == mmrm_columns
    for name, columns in NEW_COLUMNS.items():
        table = _read(written[name])
        assert list(table.columns) == columns, name
        assert len(table) > 0, name


def test_tables_before_the_outcome_tables_keep_their_bytes(inputs, written, tmp_path):
    for name, sha in PINNED.items():
        digest = hashlib.sha256(written[name].read_bytes()).hexdigest()
        assert digest == sha, (name, digest)
    # and without the sheet and QC table, or with only the old tables: the same bytes
    alone = stats.write_stats(
        inputs["h5ad"],
        outputs={name: tmp_path / f"{name}.tsv" for name in OLD_TABLES},
        analysis=ANALYSIS,
        arms=ARMS,
        patients_path=inputs["patients"],
    )
    for name in OLD_TABLES:
        assert alone[name].read_bytes() == written[name].read_bytes(), name


def test_without_a_patients_table_the_new_tables_have_a_header_only(inputs, tmp_path):
    out = _write(inputs, tmp_path, patients=None)
    for name, columns in NEW_COLUMNS.items():
        lines = out[name].read_text().splitlines()
        assert lines == ["\t".join(columns)], name
    for name in OLD_TABLES[:-1]:  # the tables that need no patients table are as with one
        assert hashlib.sha256(out[name].read_bytes()).hexdigest() == PINNED[name], name


def test_survival_tables_cover_both_endpoints_and_list_who_is_left_out(survival):
    cox, km, missing = survival["cox"], survival["km"], survival["survival_missing"]
    assert set(cox["endpoint"]) == set(km["endpoint"]) == {"pfs", "os"}
    # blood CD8 at the response visit C1D8: arm and early change in one model per endpoint
    cd8 = cox[(cox["population"] == "cd8") & (cox["compartment"] == "blood")]
    assert sorted(cd8["term"].unique()) == sorted(["log2fc", f"arm[{ARM_A}]"])
    pfs = cd8[(cd8["endpoint"] == "pfs") & (cd8["term"] == "log2fc")].iloc[0]
    assert pfs["ci_low"] < pfs["hazard_ratio"] < pfs["ci_high"]
    # P03 has no blood baseline: 19 patients, and P03 listed for every blood feature and endpoint
    assert (pfs["n_patients"], pfs["n_missing"]) == (19, 1)
    blood = missing[missing["compartment"] == "blood"]
    assert set(blood["patient_id"]) == {"P03"}
    assert len(blood) == 2 * len(set(cox.loc[cox["compartment"] == "blood", "population"]))
    assert set(blood["reason"]) == {"no blood sample at C1D1"}
    # Kaplan-Meier: per arm the high and low halves, arms in config order
    cell = km[(km["population"] == "cd8") & (km["compartment"] == "blood")]
    cell = cell[cell["endpoint"] == "pfs"]
    assert list(zip(cell["arm"], cell["group"])) == [
        (ARM_A, "high"), (ARM_A, "low"), (ARM_B, "high"), (ARM_B, "low"),
    ]  # fmt: skip
    assert list(cell["n_patients"]) == [4, 5, 5, 5]


def test_responders_are_within_arm_and_arm_adjusted_never_pooled(survival):
    table = survival["responders"]
    assert set(table["analysis"]) == {"within_arm", "arm_adjusted"}
    assert "all" not in set(table["arm"])
    cd8 = table[(table["population"] == "cd8") & (table["compartment"] == "blood")]
    assert list(cd8["arm"]) == [ARM_A, ARM_B, f"{ARM_A}, {ARM_B}"]
    assert set(cd8["visit"]) == {"C1D8"}
    # the combination arm's responders (P01, P02, P04, P05) rose one more log2 unit at C1D8
    within = cd8[cd8["arm"] == ARM_A].iloc[0]
    assert (within["n_responders"], within["n_non_responders"], within["n_missing"]) == (4, 5, 1)
    assert within["estimate"] == pytest.approx(1.0, abs=0.35)
    assert within["ci_low"] > 0


def test_availability_counts_the_excluded_sample_and_the_dropout(inputs):
    """P03's blood baseline was excluded at gating; P13 progressed before C2D1 and was not sampled."""
    trial = make_trial(
        effects=EFFECTS,
        patient_effects=PATIENT_EFFECTS,
        drop=[*DROPPED, ("P13", "blood", "C2D1"), ("P14", "tumor", "C2D1")],
        qc_flags=FLAGS,
        seed=1,
    )
    sheet = _sheet(trial)
    out = stats.compute_tables(
        trial,
        analysis=ANALYSIS,
        patients=stats.read_patients(inputs["survival"]),
        tables=["availability", "missing_samples"],
        arms=ARMS,
        samples=sheet,
        qc=_qc(sheet),
    )
    table = out["availability"].set_index(["compartment", "visit", "arm"])
    assert table.loc[("blood", "C1D1", ARM_A)].to_dict() == dict(
        expected=10, sampled=9, missing_progression=0, missing_other=0, excluded=1
    )
    assert table.loc[("blood", "C2D1", ARM_B)].to_dict() == dict(
        expected=10, sampled=9, missing_progression=1, missing_other=0, excluded=0
    )
    assert table.loc[("tumor", "C2D1", ARM_B), "missing_other"] == 1
    listed = out["missing_samples"]
    assert listed[["patient_id", "visit", "reason"]].values.tolist() == [
        ["P03", "C1D1", "excluded sample"],
        ["P13", "C2D1", "dropout at progression"],
        ["P14", "C2D1", "missed sample"],
    ]
    assert listed.loc[0, ["sample_id", "message"]].tolist() == [EXCLUDED, EXCLUDED_WHY]
    # without the sheet: the samples of populations.h5ad, P03's baseline simply missed
    alone = stats.compute_tables(
        trial, analysis=ANALYSIS, patients=patients_table(), tables=["missing_samples"]
    )["missing_samples"]
    assert alone.loc[alone["patient_id"] == "P03", "reason"].tolist() == ["missed sample"]


@pytest.mark.parametrize("name", ["cox", "km", "survival_missing", "responders"])
def test_early_change_tables_need_a_response_visit_with_samples(name):
    with pytest.raises(ConfigError, match=r"^analysis\.response_visit 'C9D9' is no sample's visit"):
        stats.compute_tables(
            planted_trial(),
            analysis={**ANALYSIS, "response_visit": "C9D9"},
            patients=patients_table(),
            tables=[name],
        )


def test_unreadable_qc_table_is_a_one_line_config_error(inputs, tmp_path):
    bad = tmp_path / "qc.tsv"
    bad.write_text("sample\tstate\nS1\tok\n")
    for path, message in ((bad, "not a QC table"), (tmp_path / "none.tsv", "cannot be read")):
        with pytest.raises(ConfigError, match=message) as error:
            stats.write_stats(
                inputs["h5ad"],
                outputs={"availability": tmp_path / "a.tsv"},
                analysis=ANALYSIS,
                patients_path=inputs["patients"],
                qc_path=path,
            )
        assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------
# the rule scripts, as Snakemake runs them
# --------------------------------------------------------------------------------------------
class _Named(dict):
    """Stand-in for Snakemake's named lists: ``x.name``, ``x.items()``, ``x[0]`` for one value."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _run_script(script: str, monkeypatch, *, inputs, outputs, params, log: Path) -> dict:
    """Run ``workflow/scripts/<script>`` with a ``snakemake`` object; its globals after the run."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # the rule log swaps the streams: restore
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(sys, "path", list(sys.path))
    # the rule log gives numerical libraries the job's threads: this process's are restored after
    for name in runpy.run_path(str(SCRIPTS / "_log.py"))["THREAD_VARIABLES"]:
        monkeypatch.delenv(name, raising=False)
    smk = _Named(
        input=_Named(inputs),
        output=_Named(outputs),
        params=_Named(params),
        log=[str(log)],
        scriptdir=str(SCRIPTS),
        threads=1,
    )
    with threadpool_limits(limits=None):
        return runpy.run_path(str(SCRIPTS / script), init_globals={"snakemake": smk})


def test_stats_script_reads_the_sheet_and_qc_table(inputs, tmp_path, monkeypatch):
    outputs = {name: str(tmp_path / f"{name}.tsv") for name in ("availability", "missing_samples")}
    _run_script(
        "stats.py",
        monkeypatch,
        inputs=dict(
            h5ad=str(inputs["h5ad"]),
            patients=[str(inputs["survival"])],
            sheet=str(inputs["sheet"]),
            qc=str(inputs["qc"]),
        ),
        outputs=outputs,
        params=dict(analysis=ANALYSIS, arms=ARMS, frequencies_of=["live"]),
        log=tmp_path / "stats.log",
    )
    assert (tmp_path / "stats.log").read_text() == "wrote 2 tables\n"
    listed = _read(Path(outputs["missing_samples"]))
    assert listed[["patient_id", "reason", "sample_id", "message"]].values.tolist() == [
        ["P03", "excluded sample", EXCLUDED, EXCLUDED_WHY]
    ]


CD8_FIRST = {**ANALYSIS, "populations": ["cd8", *[f for f in FEATURES if f != "cd8"]]}


@pytest.fixture(scope="module")
def km_stats(inputs, tmp_path_factory) -> Path:
    """log2fc and km tables written with CD8 as the first analysed feature."""
    folder = tmp_path_factory.mktemp("km_stats")
    stats.write_stats(
        inputs["h5ad"],
        outputs={name: folder / f"{name}.tsv" for name in ("log2fc", "km")},
        analysis=CD8_FIRST,
        arms=ARMS,
        patients_path=inputs["survival"],
    )
    return folder


def _km_run(inputs, km_stats, tmp_path, monkeypatch, *, patients: bool) -> tuple[dict, Path]:
    outputs = {
        f"km_{e}_{ext}": str(tmp_path / f"km_{e}.{ext}")
        for e in ("pfs", "os")
        for ext in ("png", "pdf")
    }
    names = _run_script(
        "survival.py",
        monkeypatch,
        inputs=dict(
            h5ad=str(inputs["h5ad"]),
            log2fc=str(km_stats / "log2fc.tsv"),
            km=str(km_stats / "km.tsv"),
            patients=[str(inputs["survival"])] if patients else [],
        ),
        outputs=outputs,
        params=dict(
            analysis=CD8_FIRST,
            arms=COLOURS,
            frequencies_of=["live"],
            labels=LABELS,
            ratios=RATIOS,
        ),
        log=tmp_path / "km.log",
    )
    return names, tmp_path


def _km_job(inputs, km_stats, analysis, endpoints):
    """What km_figures reads of Snakemake's job, for the figures of ``endpoints``."""
    return _Named(
        input=_Named(
            h5ad=str(inputs["h5ad"]),
            log2fc=str(km_stats / "log2fc.tsv"),
            km=str(km_stats / "km.tsv"),
            patients=[str(inputs["survival"])],
        ),
        output=_Named({f"km_{e}_png": "unused" for e in endpoints}),
        params=_Named(
            analysis=analysis, arms=COLOURS, frequencies_of=["live"], labels=LABELS, ratios=RATIOS
        ),
    )


def test_km_figures_draw_the_first_feature_of_the_first_compartment(
    inputs, km_stats, tmp_path, monkeypatch
):
    names, folder = _km_run(inputs, km_stats, tmp_path, monkeypatch, patients=True)
    for endpoint in ("pfs", "os"):
        assert (folder / f"km_{endpoint}.png").read_bytes().startswith(b"\x89PNG")
        assert (folder / f"km_{endpoint}.pdf").read_bytes().startswith(b"%PDF")
    log = (folder / "km.log").read_text()
    assert log.splitlines()[0] == "early change of cd8 in blood at C1D8"
    # the figures as drawn: CD8 in blood, one panel per arm in config order, both groups drawn
    sm = _km_job(inputs, km_stats, CD8_FIRST, ("pfs", "os"))
    figures = names["km_figures"](sm, io.StringIO())
    assert list(figures) == ["pfs", "os"]
    for endpoint, fig in figures.items():
        assert fig.get_suptitle().startswith(f"{LABELS['cd8']}, blood")
        axes = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in axes] == ARMS
        gids = {line.get_gid() for ax in axes for line in ax.get_lines()}
        assert {"km:high", "km:low"} <= gids, endpoint


def test_primary_feature_is_fixed_by_the_config_not_the_results(tmp_path):
    choose = runpy.run_path(str(SCRIPTS / "survival.py"))["primary_feature"]
    fc = pd.DataFrame(
        {
            "visit": ["C1D8", "C1D8", "C1D8", "C1D8", "C2D1"],
            "compartment": ["tumor", "blood", "blood", "bone marrow", "blood"],
            "population": ["cd8", "nk", "cd4", "treg", "cd8"],
        }
    )
    # blood < bone marrow < tumor; in blood the first analysed feature with an early change
    assert choose(fc, ["cd8", "cd4", "nk", "treg"], "C1D8") == ("cd4", "blood")
    assert choose(fc, ["treg", "cd8"], "C1D8") == ("treg", "bone marrow")
    assert choose(fc, ["cd8"], "C1D8") == ("cd8", "tumor")
    assert choose(fc, ["cd8"], "C5D1") is None


def test_km_figures_without_patients_are_placeholders(inputs, km_stats, tmp_path, monkeypatch):
    names, folder = _km_run(inputs, km_stats, tmp_path, monkeypatch, patients=False)
    for endpoint in ("pfs", "os"):
        assert (folder / f"km_{endpoint}.png").read_bytes().startswith(b"\x89PNG")
        assert (folder / f"km_{endpoint}.pdf").read_bytes().startswith(b"%PDF")
    fig = names["placeholder"]("no patients table")
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == ["no patients table"]


# --------------------------------------------------------------------------------------------
# the workflow's lists and captions
# --------------------------------------------------------------------------------------------
def _smk_list(rules: str, name: str) -> list[str]:
    text = (ROOT / "workflow" / "rules" / rules).read_text()
    body = re.search(rf"^{name} = \[(.*?)\]", text, flags=re.S | re.M).group(1)
    return re.findall(r'"([^"]+)"', body)


def test_the_stats_rule_writes_every_library_table_and_each_has_a_caption():
    assert _smk_list("stats.smk", "STAT_TABLES") == list(stats.STAT_TABLES)
    assert _smk_list("plots.smk", "KM_FIGURES") == ["km_pfs", "km_os"]
    for name in [*stats.STAT_TABLES, "km_pfs", "km_os"]:
        assert (REPORT / f"{name}.rst").is_file(), name


@pytest.mark.parametrize("name", [*NEW_COLUMNS, "km_pfs", "km_os"])
def test_new_captions_render_and_name_the_columns(name):
    from docutils.core import publish_doctree

    text = (REPORT / f"{name}.rst").read_text(encoding="utf-8")
    assert "{{" not in text and "{%" not in text
    warnings = io.StringIO()
    tree = publish_doctree(
        text, settings_overrides={"warning_stream": warnings, "report_level": 1, "halt_level": 5}
    )
    assert warnings.getvalue() == ""
    assert len(tree.astext().split()) > 40
    for column in NEW_COLUMNS.get(name, []):
        if column not in ("population", "compartment", "arm", "patient_id", "visit", "measure"):
            assert f"``{column}``" in text, (name, column)


def test_km_figures_draw_the_declared_primary_family_first(inputs, km_stats, tmp_path):
    """With analysis.primary declared, its first feature is the early change drawn."""
    names = runpy.run_path(str(SCRIPTS / "survival.py"))
    second = CD8_FIRST["populations"][1]
    analysis = {**CD8_FIRST, "primary": {"populations": [second, "cd8"], "correction": "holm"}}
    log = io.StringIO()
    names["km_figures"](_km_job(inputs, km_stats, analysis, ("pfs",)), log)
    assert log.getvalue().splitlines()[0] == f"early change of {second} in blood at C1D8"
