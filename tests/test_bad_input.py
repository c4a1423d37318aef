"""The bad-input corpus: every kind of user mistake gets one line per problem, naming the thing.

Each case starts from a small, valid project of its own (a sheet of 12 samples in two compartments,
a patients table, the demo's strategies, a config written from nothing) and breaks one thing (or a
few, where a case is about listing them all). For what is knowable before gating (config, strategy,
compensation matrix, sample sheet, patients table) the pre-flight check must say it before any job:
exactly one line per problem on stderr, each naming its key, file, row or column, no traceback, and
exit 1 (warnings: a line each and the run goes on). Two dry runs of the workflow show the same lines
come out of ``snakemake`` before any job is planned. For what only the file can tell (a damaged FCS
file, a missing channel), the sample is gated in a batch with good ones: it alone is excluded with
its one-line reason (or flagged, for non-finite values) and the others are counted exactly as when
gated alone. The table :data:`CORPUS` holds every case; ``test_the_corpus_covers_every_kind``
prints its counts per category.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT, run_snakemake
from cytotrial.errors import CytotrialError
from cytotrial.preflight import check_before_run

ARMS = {"Combination": "#8E44AD", "Control": "#16A085"}
PATIENTS = {"U1": "Combination", "U2": "Combination", "U3": "Control", "U4": "Control"}
VISITS = {"blood": [("C1D1", 1, 1), ("C1D8", 1, 8)], "tumor": [("C1D1", 1, 1), ("C2D1", 2, 1)]}
TUMOR_PATIENTS = ("U1", "U3")
EVENTS = 2000


# ---------------------------------------------------------------------------------------------
# the valid project every case starts from


def _sample_id(patient: str, visit: str, compartment: str) -> str:
    return f"{patient}_{visit}_{compartment}"


def _write_fcs_files(folder: Path) -> None:
    from cytotrial.sim import simulate_sample, write_fcs

    folder.mkdir(parents=True)
    seed = 0
    for compartment, visits in VISITS.items():
        for patient in PATIENTS:
            if compartment == "tumor" and patient not in TUMOR_PATIENTS:
                continue
            for visit, _, _ in visits:
                seed += 1
                sample = simulate_sample(panel=compartment, n_events=EVENTS, seed=seed)
                write_fcs(sample, folder / f"{_sample_id(patient, visit, compartment)}.fcs")
    write_fcs(simulate_sample(panel="blood", n_events=EVENTS, seed=99), folder / "spare.fcs")


def _sheet() -> pd.DataFrame:
    rows = []
    for compartment, visits in VISITS.items():
        for patient, arm in PATIENTS.items():
            if compartment == "tumor" and patient not in TUMOR_PATIENTS:
                continue
            for visit, cycle, day in visits:
                sample = _sample_id(patient, visit, compartment)
                rows.append(
                    dict(
                        sample_id=sample,
                        patient_id=patient,
                        arm=arm,
                        visit=visit,
                        cycle=cycle,
                        day=day,
                        compartment=compartment,
                        panel=compartment,
                        batch="R1",
                        fcs=f"fcs/{sample}.fcs",
                        lymphocytes_per_ul=1500.0 if compartment == "blood" else "",
                    )
                )
    return pd.DataFrame(rows)


def _patients() -> pd.DataFrame:
    responses = {"U1": "PR", "U2": "PD", "U3": "SD", "U4": "CR"}
    return pd.DataFrame(
        [
            dict(
                patient_id=p,
                arm=arm,
                best_response=responses[p],
                pfs_months=5.5,
                pfs_event=1,
                os_months=12.0,
                os_event=0,
            )
            for p, arm in PATIENTS.items()
        ]
    )


def _config() -> dict:
    demo = yaml.safe_load((PROJECT_ROOT / "config/config.yaml").read_text(encoding="utf-8"))
    config = {key: demo[key] for key in ("panels", "populations", "ratios", "mfi", "qc")}
    config["samples"] = "sheet.tsv"
    config["patients"] = "patients.tsv"
    config["arms"] = dict(ARMS)
    config["strategies"] = copy.deepcopy(demo["strategies"])
    for panel, spec in config["strategies"].items():
        spec["strategy"] = f"gating/{panel}.xml"
    config["frequencies"] = {"of": ["live"]}
    config["absolute"] = {"reference": "live"}
    config["analysis"] = {
        "baseline_visit": "C1D1",
        "measure": {"blood": "per_ul", "tumor": "freq_parent"},
        "populations": demo["analysis"]["populations"],
        "reference_arm": "Control",
        "response_visit": "C1D8",
        "primary": {"populations": ["cd8", "nk", "treg"], "correction": "holm"},
    }
    return config


@pytest.fixture(scope="session")
def fcs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "fcs"
    _write_fcs_files(folder)
    return folder


@dataclasses.dataclass
class Project:
    """A user's project folder: config, sheet and patients table in memory until written."""

    root: Path
    config: dict
    sheet: pd.DataFrame
    patients: pd.DataFrame

    def text(self, relative: str) -> str:
        return (self.root / relative).read_text(encoding="utf-8")

    def write(self, relative: str, text: str | bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    def save(self) -> Path:
        """Write config.yaml, the sheet and the patients table; the config file's path."""
        self.sheet.to_csv(self.root / "sheet.tsv", sep="\t", index=False)
        self.patients.to_csv(self.root / "patients.tsv", sep="\t", index=False)
        config = self.root / "config.yaml"
        config.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        return config


def new_project(root: Path, fcs_folder: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "fcs").symlink_to(fcs_folder, target_is_directory=True)
    (root / "gating").mkdir()
    for panel in ("blood", "tumor"):
        shutil.copy(PROJECT_ROOT / "resources/gating" / f"{panel}.xml", root / "gating")
    return Project(root, _config(), _sheet(), _patients())


def preflight_stderr(project: Project) -> tuple[int, str]:
    """Exit status and stderr of the workflow's check of a project, as ``common.smk`` runs it."""
    config = yaml.safe_load(project.save().read_text(encoding="utf-8"))
    stream = io.StringIO()
    try:
        check_before_run(config, stream=stream)
    except CytotrialError as error:  # common.smk's _fail: a line each, exit 1
        stream.write("".join(f"cytotrial: {line}\n" for line in str(error).splitlines()))
        return 1, stream.getvalue()
    return 0, stream.getvalue()


def _matched(lines: list[str], fragments: tuple[str, ...]) -> bool:
    """Whether each line holds its own fragment (a one-to-one matching)."""
    used: set[int] = set()

    def assign(k: int) -> bool:
        if k == len(fragments):
            return True
        for i, line in enumerate(lines):
            if i not in used and fragments[k] in line:
                used.add(i)
                if assign(k + 1):
                    return True
                used.discard(i)
        return False

    return len(lines) == len(fragments) and assign(0)


# ---------------------------------------------------------------------------------------------
# the cases knowable before gating


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: what breaks it, and a fragment of each line the check must write."""

    category: str
    name: str
    edit: Callable[[Project], None]
    errors: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def _set(path: str, value: object) -> Callable[[Project], None]:
    """An edit setting a config key given as a dotted path."""

    def edit(p: Project) -> None:
        *parents, last = path.split(".")
        node = p.config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


def _rename(path: str, new: str) -> Callable[[Project], None]:
    """An edit renaming a config key (a typo)."""

    def edit(p: Project) -> None:
        *parents, last = path.split(".")
        node = p.config
        for key in parents:
            node = node[key]
        node[new] = node.pop(last)

    return edit


def _both(*edits: Callable[[Project], None]) -> Callable[[Project], None]:
    def edit(p: Project) -> None:
        for one in edits:
            one(p)

    return edit


def _cell(sample: str, column: str, value: object) -> Callable[[Project], None]:
    """An edit setting one cell of the sheet."""

    def edit(p: Project) -> None:
        p.sheet[column] = p.sheet[column].astype(object)
        p.sheet.loc[p.sheet["sample_id"] == sample, column] = value

    return edit


def _cells(column: str, value: object, where: Callable[[pd.DataFrame], pd.Series]):
    def edit(p: Project) -> None:
        p.sheet[column] = p.sheet[column].astype(object)
        p.sheet.loc[where(p.sheet), column] = value

    return edit


def _clinical(patient: str, column: str, value: object) -> Callable[[Project], None]:
    """An edit setting one cell of the patients table."""

    def edit(p: Project) -> None:
        p.patients[column] = p.patients[column].astype(object)
        p.patients.loc[p.patients["patient_id"] == patient, column] = value

    return edit


def _strategy(panel: str, old: str, new: str, count: int = 1) -> Callable[[Project], None]:
    """An edit of a strategy file's text."""

    def edit(p: Project) -> None:
        text = p.text(f"gating/{panel}.xml")
        assert old in text
        p.write(f"gating/{panel}.xml", text.replace(old, new, count))

    return edit


def _strategy_file(panel: str, text: str) -> Callable[[Project], None]:
    return lambda p: p.write(f"gating/{panel}.xml", text)


_BOOLEAN_GATE = """
    <gating:BooleanGate gating:id="cd8_or_ghost">
        <gating:or>
            <gating:gateReference gating:ref="cd8" />
            <gating:gateReference gating:ref="ghost" />
        </gating:or>
    </gating:BooleanGate>
</gating:Gating-ML>"""
C1D1 = _sample_id("U1", "C1D1", "blood")
C1D8 = _sample_id("U1", "C1D8", "blood")
U2_C1D8 = _sample_id("U2", "C1D8", "blood")
U3_C1D8 = _sample_id("U3", "C1D8", "blood")


def _spillover() -> pd.DataFrame:
    from cytotrial.sim import spillover_matrix

    return spillover_matrix("tumor")  # the detectors of both panels


def _matrix(
    change: Callable[[pd.DataFrame], pd.DataFrame] = lambda m: m, *, names: bool = True
) -> Callable[[Project], None]:
    """An edit giving the config a spillover matrix file (the valid one, changed)."""

    def edit(p: Project) -> None:
        table = change(_spillover().astype(object))
        p.write("comp/spill.csv", table.to_csv(index=names))
        p.config["gating"] = {"compensation": "comp/spill.csv"}

    return edit


def _singular(m: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Rows ``a`` and ``b`` made equal (1 on both detectors): no inverse, diagonal still 1."""
    m = m.copy()
    m.loc[[a, b]] = 0.0
    m.loc[[a, b], [a, b]] = 1.0
    return m


def _matrix_text(text: str | bytes) -> Callable[[Project], None]:
    def edit(p: Project) -> None:
        p.write("comp/spill.csv", text)
        p.config["gating"] = {"compensation": "comp/spill.csv"}

    return edit


def _cell_of(row: str, column: str, value: object):
    def change(m: pd.DataFrame) -> pd.DataFrame:
        m.loc[row, column] = value
        return m

    return change


def _external_workspace(p: Project, **options: str) -> None:
    """A third panel read from FlowJo's own workspace (the external reference data)."""
    from conftest import _external_data_dir

    workspace = (
        _external_data_dir()
        / "flowjo-workspaces/simple_diamond_example/simple_diamond_example_quad_gate.wsp"
    )
    if not workspace.is_file():
        pytest.skip(f"external reference data not found at {workspace.parent}")
    shutil.copy(workspace, p.root / "gating/diamond.wsp")
    p.config["strategies"]["diamond"] = {
        "strategy": "gating/diamond.wsp",
        **options,
        "populations": {"q1": "Q1: channel_A- , channel_B+"},
    }


def _drop_row(sample: str) -> Callable[[Project], None]:
    def edit(p: Project) -> None:
        p.sheet = p.sheet[p.sheet["sample_id"] != sample].reset_index(drop=True)

    return edit


def _add_row(**values: object) -> Callable[[Project], None]:
    def edit(p: Project) -> None:
        row = p.sheet[p.sheet["sample_id"] == C1D1].iloc[0].to_dict()
        p.sheet = pd.concat([p.sheet, pd.DataFrame([{**row, **values}])], ignore_index=True)

    return edit


CONFIG_CASES = [
    Case("config", "top-level key misspelt", _rename("samples", "sample"),
         ("config (top level): 'sample' was unexpected; did you mean 'samples'?",)),
    Case("config", "section misspelt", _both(_set("figure", {"gating_review": "all"})),
         ("config (top level): 'figure' was unexpected; did you mean 'figures'?",)),
    Case("config", "gating review of a sample not in the sheet",
         _set("figures.gating_review", ["U1_C1D1_blood", "U9_C1D1_blood"]),
         ("config figures.gating_review: sample 'U9_C1D1_blood' is not in the sample sheet "
          "sheet.tsv; list sample ids of the sheet, or use all or flagged",)),
    Case("config", "gating review neither all, flagged nor a list",
         _set("figures.gating_review", "some"),
         ("config figures.gating_review: 'some' is not valid under any of the given schemas "
          "(The samples the gating review draws: `all`, `flagged`",)),
    Case("config", "retired gating QC key", _set("figures.gating_qc_per_batch", 2), (),
         ("config figures.gating_qc_per_batch is retired and ignored",)),
    Case("config", "qc key misspelt", _rename("qc.min_events", "min_event"),
         ("config qc: 'min_event' was unexpected; did you mean 'min_events'?",)),
    Case("config", "strategy key misspelt", _rename("strategies.blood.strategy", "stratgy"),
         ("config strategies.blood: 'stratgy' was unexpected; did you mean 'strategy'?",)),
    Case("config", "population key misspelt", _rename("populations.cd4_conv.boolean", "boolen"),
         ("config populations.cd4_conv: 'boolen' was unexpected; did you mean 'boolean'?",)),
    Case("config", "analysis key misspelt", _rename("analysis.baseline_visit", "baselin_visit"),
         ("config analysis: 'baselin_visit' was unexpected; did you mean 'baseline_visit'?",)),
    Case("config", "primary key misspelt", _rename("analysis.primary.correction", "corection"),
         ("config analysis.primary: 'corection' was unexpected; did you mean 'correction'?",)),
    Case("config", "unknown key, nothing near", _set("mfi.colour", "red"),
         ("config mfi: 'colour' was unexpected; keys here: markers, min_events",)),
    Case("config", "two unknown keys in one section",
         _both(_set("events.per_samples", 10), _set("events.speed", 1)),
         ("config events: 'per_samples' was unexpected; did you mean 'per_sample'?",
          "config events: 'speed' was unexpected")),
    Case("config", "qc.min_events population misspelt", _set("qc.min_events.cd8x", 50),
         ("config qc.min_events.cd8x: 'cd8x' is not a reported population",)),
    Case("config", "mfi.markers population misspelt", _set("mfi.markers.tregs", ["CD25"]),
         ("config mfi.markers.tregs: 'tregs' is not a reported population",)),
    Case("config", "analysis.populations misspelt",
         lambda p: p.config["analysis"]["populations"].append("cd8_ki76"),
         ("config analysis.populations: 'cd8_ki76' is not a reported population",)),
    Case("config", "analysis.primary.populations misspelt",
         lambda p: p.config["analysis"]["primary"]["populations"].append("nks"),
         ("config analysis.primary.populations: 'nks' is not in analysis.populations",)),
    Case("config", "primary feature not analysed",
         lambda p: p.config["analysis"]["primary"]["populations"].append("cd8_hladr"),
         ("config analysis.primary.populations: 'cd8_hladr' is not in analysis.populations",)),
    Case("config", "ratio operand misspelt", _set("ratios.cd8_treg", ["cd8", "tregg"]),
         ("config ratios.cd8_treg: 'tregg' is not a reported population",)),
    Case("config", "ratio named like a population", _set("ratios.cd8", ["cd8", "treg"]),
         ("config ratios.cd8: the name is already a population's",)),
    Case("config", "frequencies.of misspelt", _set("frequencies.of", ["lives"]),
         ("config frequencies.of: 'lives' is not a reported population",)),
    Case("config", "events.labels misspelt", _set("events.labels", ["cd8", "nks"]),
         ("config events.labels: 'nks' is not a reported population",)),
    Case("config", "absolute.reference misspelt", _set("absolute.reference", "lve"),
         ("config absolute.reference: 'lve' is not a reported population",)),
    Case("config", "parent misspelt", _set("populations.cd8.parent", "cd33"),
         ("config populations.cd8.parent: 'cd33' is not a reported population",)),
    Case("config", "population name not allowed", _set("populations.CD8+", {"label": "x"}),
         ("config populations: 'CD8+' is not allowed",)),
    Case("config", "population with neither gate nor boolean", _set("populations.b_cells", {}),
         ("config populations.b_cells: no strategies.<panel>.populations maps it",)),
    Case("config", "boolean syntax", _set("populations.cd4_conv.boolean", "cd4 and"),
         ("config populations.cd4_conv.boolean:",)),
    Case("config", "boolean names an unknown population",
         _set("populations.cd8_activated.boolean", "cd8_hladr and cd8_cd39"),
         ("config populations.cd8_activated.boolean: cd8_cd39 is not a reported population",)),
    Case("config", "booleans referring to each other",
         _both(_set("populations.ping", {"boolean": "pong"}),
               _set("populations.pong", {"boolean": "ping"})),
         ("config populations.ping.boolean: refers to itself",
          "config populations.pong.boolean: refers to itself")),
    Case("config", "population both gate and boolean", _set("populations.cd8.boolean", "cd3"),
         ("config populations.cd8: defined both as a boolean and as a gate",)),
    Case("config", "arm colour invalid", _set("arms.Control", "blu"),
         ("config arms.Control: 'blu' is not a colour",)),
    Case("config", "arm colour hex too short", _set("arms.Combination", "#8E44A"),
         ("config arms.Combination: '#8E44A' is not a colour",)),
    Case("config", "channel under two markers", lambda p: p.config["panels"]["CD8"].append("FITC-A"),
         ("config panels: the name 'FITC-A' is listed under both 'CD3' and 'CD8'",)),
    Case("config", "channel under two markers, other spelling",
         lambda p: p.config["panels"]["Ki67"].append("cd8  APC-H7"),
         ("config panels: the name 'CD8 APC-H7' is listed under both 'Ki67' and 'CD8'",)),
    Case("config", "batch size zero", _set("gating.batch_size", 0),
         ("config gating.batch_size: 0 is less than the minimum of 1",)),
    Case("config", "measure not allowed", _set("analysis.measure.blood", "percent"),
         ("config analysis.measure.blood: 'percent' is not allowed",)),
    Case("config", "freq measure without its reference", _set("analysis.measure.tumor", "freq_cd3"),
         ("config analysis.measure.tumor: freq_cd3 needs 'cd3' in frequencies.of",)),
    Case("config", "per_ul without absolute reference", _set("absolute.reference", ""),
         ("config analysis.measure.blood: per_ul needs absolute.reference",)),
    Case("config", "reference arm unknown", _set("analysis.reference_arm", "Placebo"),
         ("config analysis.reference_arm: 'Placebo' is not one of the arms",)),
    Case("config", "alpha out of range", _set("analysis.alpha", 1.5),
         ("config analysis.alpha: 1.5 is greater than or equal to the maximum of 1",)),
    Case("config", "pseudocount zero", _set("analysis.pseudocount", 0),
         ("config analysis.pseudocount: 0 is less than or equal to the minimum of 0",)),
    Case("config", "correction unknown", _set("analysis.primary.correction", "fdr"),
         ("config analysis.primary.correction: 'fdr' is not one of",)),
    Case("config", "mfi marker no panel or strategy names",
         lambda p: p.config["mfi"]["markers"]["cd8"].append("Ki76"), (),
         ("config mfi.markers.cd8: 'Ki76' is no marker or channel name of config panels:",)),
    Case("config", "mfi marker with a slash",
         lambda p: p.config["mfi"]["markers"]["cd8"].append("Live/Dead"),
         ("config mfi.markers.cd8.3: 'Live/Dead' is not allowed",)),
]  # fmt: skip

STRATEGY_CASES = [
    Case("strategy", "gate name misspelt", _set("strategies.blood.populations.cd8", "cd8x"),
         ("config strategies.blood.populations.cd8: blood.xml: no gate named 'cd8x'; did you "
          "mean 'cd8'?",)),
    Case("strategy", "gate path wrong", _set("strategies.tumor.populations.nk", "lymphocytes/nk"),
         ("config strategies.tumor.populations.nk: tumor.xml: no gate named 'lymphocytes/nk'",)),
    Case("strategy", "gate names wrong in both panels",
         _both(_set("strategies.blood.populations.treg", "Treg"),
               _set("strategies.tumor.populations.treg", "Treg")),
         ("config strategies.blood.populations.treg: blood.xml: no gate named 'Treg'",
          "config strategies.tumor.populations.treg: tumor.xml: no gate named 'Treg'")),
    Case("strategy", "strategy file missing", _set("strategies.tumor.strategy", "gating/none.xml"),
         ("config strategies.tumor.strategy: file gating/none.xml not found",)),
    Case("strategy", "not XML", _strategy_file("blood", "lymphocytes: FSC-A > 30000\n"),
         ("config strategies.blood.strategy: gating/blood.xml: not a readable XML file",)),
    Case("strategy", "XML of another kind", _strategy_file("blood", "<gates><gate/></gates>"),
         ("config strategies.blood.strategy: gating/blood.xml: XML root element <gates> is "
          "neither GatingML 2.0",)),
    Case("strategy", "XML tags that do not match",
         _strategy("blood", "<gating:PolygonGate", "<gating:HexagonGate", 1),
         ("config strategies.blood.strategy: gating/blood.xml: not a readable XML file",)),
    Case("strategy", "GatingML element the schema does not know",
         _strategy("blood", "</gating:Gating-ML>", "<gating:Note>x</gating:Note></gating:Gating-ML>"),
         ("config strategies.blood.strategy: gating/blood.xml: not a valid GatingML 2.0 file "
          "(line",)),
    Case("strategy", "two gates with one id",
         _strategy("tumor", 'gating:id="cd8_ki67"', 'gating:id="cd8_cd38"'),
         ("config strategies.tumor.strategy: gating/tumor.xml: not a valid GatingML 2.0 file "
          "(line",)),
    Case("strategy", "Boolean gate refers to no gate",
         _strategy("blood", "</gating:Gating-ML>", _BOOLEAN_GATE),
         ("config strategies.blood.strategy: gating/blood.xml: not a valid GatingML 2.0 file: "
          "Boolean gate 'cd8_or_ghost' refers to 'ghost', which is no gate of the file",)),
    Case("strategy", "parent_id of no gate",
         _strategy("tumor", 'gating:parent_id="lymphocytes"', 'gating:parent_id="lymphocytez"'),
         ("config strategies.tumor.strategy: gating/tumor.xml: not a valid GatingML 2.0 file: "
          "gate 'singlets' has parent_id 'lymphocytez', which is no gate of the file",)),
    Case("strategy", "transformation not defined",
         _strategy("blood", 'transforms:id="logicle"', 'transforms:id="biex"'),
         ("config strategies.blood.strategy: gating/blood.xml: gates 'lymphocytes/singlets/live', "
          "'lymphocytes/singlets/live/cd3', ",)),
    Case("strategy", "sample group given for GatingML", _set("strategies.blood.sample_group", "All"),
         ("config strategies.blood.strategy: gating/blood.xml: sample_group/sample_id apply to "
          "FlowJo workspaces only",)),
    Case("strategy", "FlowJo sample group missing",
         lambda p: _external_workspace(p, sample_group="Treated"),
         ("config strategies.diamond.strategy: gating/diamond.wsp: no sample group 'Treated' in "
          "the workspace",)),
    Case("strategy", "FlowJo sample missing",
         lambda p: _external_workspace(p, sample_id="nowhere.fcs"),
         ("config strategies.diamond.strategy: gating/diamond.wsp: no sample 'nowhere.fcs' in "
          "the workspace",)),
    Case("strategy", "FlowJo quadrant misspelt",
         _both(lambda p: _external_workspace(p),
               _set("strategies.diamond.populations.q1", "Q1: channel_A-, channel_B+")),
         ("config strategies.diamond.populations.q1: diamond.wsp: no gate named 'Q1: channel_A-, "
          "channel_B+'; did you mean 'Q1: channel_A- , channel_B+'?",)),
    Case("strategy", "adaptive gate misspelt",
         _set("strategies.blood.adaptive", {"cd3x": {"method": "valley", "window": [0.3, 0.6]}}),
         ("config strategies.blood.adaptive.cd3x: blood.xml: no gate named 'cd3x'; did you "
          "mean 'cd3'?",)),
    Case("strategy", "adaptive window off the axis",
         _set("strategies.tumor.adaptive", {"cd3": {"method": "valley", "window": [5, 6]}}),
         ("config strategies.tumor.adaptive.cd3.window: [5, 6] lies outside the axis of FITC-A",)),
    Case("strategy", "Boolean population no panel can report",
         _both(_set("strategies.blood.populations.cd3_neg", "cd3_neg"),
               _set("populations.x", {"boolean": "leukocytes and cd3_neg"})),
         ("config populations.x.boolean: no panel reports all of cd3_neg, leukocytes",)),
    Case("strategy", "ratio of two panels' populations",
         _both(_set("strategies.blood.populations.cd3_neg", "cd3_neg"),
               _set("ratios.mixed", ["leukocytes", "cd3_neg"])),
         ("config ratios.mixed: no panel reports both leukocytes and cd3_neg",)),
]  # fmt: skip

COMPENSATION_CASES = [
    Case("compensation", "matrix file missing", _set("gating.compensation", "comp/none.csv"),
         ("config gating.compensation: matrix file comp/none.csv not found",)),
    Case("compensation", "matrix not square", _matrix(lambda m: m.iloc[:, :-1]),
         ("config gating.compensation: comp/spill.csv: a spillover matrix must be square",)),
    Case("compensation", "cell not a number", _matrix(_cell_of("PE-A", "FITC-A", "0.0x1")),
         ("config gating.compensation: comp/spill.csv: spillover matrix cells must be numbers "
          "(row 3 column 'FITC-A': not a number)",)),
    Case("compensation", "cell empty", _matrix(_cell_of("APC-A", "APC-H7-A", "")),
         ("spillover matrix cells must be numbers (row 7 column 'APC-H7-A': empty)",)),
    Case("compensation", "cell infinite", _matrix(_cell_of("APC-A", "APC-H7-A", "inf")),
         ("spillover matrix cells must be numbers (row 7 column 'APC-H7-A': not finite)",)),
    Case("compensation", "file empty", _matrix_text(""),
         ("config gating.compensation: comp/spill.csv: the spillover matrix file is empty",)),
    Case("compensation", "not text", _matrix_text(bytes(range(256)) * 4),
         ("config gating.compensation: comp/spill.csv: not a readable comma-separated matrix",)),
    Case("compensation", "detector twice",
         _matrix(lambda m: m.rename(columns={"BV605-A": "FITC-A"}), names=False),
         ("config gating.compensation: comp/spill.csv: detector(s) FITC-A appear more than once",)),
    Case("compensation", "percentages", _matrix(lambda m: m * 100),
         ("comp/spill.csv: the diagonal must be 1 (each detector's own signal), not at FITC-A",)),
    Case("compensation", "singular",
         _matrix(lambda m: _singular(m, "FITC-A", "PE-A")),
         ("config gating.compensation: comp/spill.csv: the spillover matrix is singular",)),
    Case("compensation", "row names in another order",
         _matrix(lambda m: m.set_axis(list(reversed(m.index)), axis=0)),
         ("comp/spill.csv: the row names (BV786-A, ", )),
    Case("compensation", "a compensated channel missing",
         _matrix(lambda m: m.drop(index="BV421-A", columns="BV421-A")),
         ("comp/spill.csv: has no detector for BV421-A (strategies blood, tumor), which the gates "
          "compensate",)),
    Case("compensation", "one marker twice",
         _matrix(lambda m: m.rename(index={"BV605-A": "CD8 APC-H7"},
                                    columns={"BV605-A": "CD8 APC-H7"})),
         ("comp/spill.csv: detectors APC-H7-A, CD8 APC-H7 are all marker CD8",)),
]  # fmt: skip


SHEET_CASES = [
    Case("sheet", "column missing", lambda p: p.sheet.drop(columns="visit", inplace=True),
         ("sheet.tsv: missing column(s) visit",)),
    Case("sheet", "not tab-separated", lambda p: setattr(p, "save", _comma_sheet(p)),
         ("sheet.tsv: missing column(s)",)),
    Case("sheet", "header only", lambda p: setattr(p, "sheet", p.sheet.iloc[:0]),
         ("sheet.tsv: has a header but no samples",)),
    Case("sheet", "sheet not found", _set("samples", "samples/sheet.tsv"),
         ("samples/sheet.tsv: sample sheet not found",)),
    Case("sheet", "arm not in config", _cell(C1D8, "arm", "Placebo"),
         ("sheet.tsv row 3: arm 'Placebo' is unknown; the arms of config arms: are Combination, "
          "Control",)),
    Case("sheet", "panel without a strategy", _cell(C1D8, "panel", "marrow"),
         ("sheet.tsv row 3: panel 'marrow' has no gating strategy",)),
    Case("sheet", "sample id twice", _cell(C1D8, "sample_id", C1D1),
         (f"sheet.tsv row 3: sample_id '{C1D1}' repeats row 2",)),
    Case("sheet", "two rows, one FCS file", _cell(C1D8, "fcs", f"fcs/{C1D1}.fcs"),
         (f"sheet.tsv row 3: fcs 'fcs/{C1D1}.fcs' is the file of row 2 too",)),
    Case("sheet", "two rows, one FCS file spelt twice", _cell(C1D8, "fcs", f"./fcs//{C1D1}.fcs"),
         (f"sheet.tsv row 3: fcs './fcs//{C1D1}.fcs' is the file of row 2 too",)),
    Case("sheet", "FCS files missing, all listed",
         _both(_cell(C1D8, "fcs", "fcs/lost1.fcs"), _cell(U2_C1D8, "fcs", "fcs/lost2.fcs"),
               _cell(U3_C1D8, "fcs", "FCS/" + U3_C1D8 + ".fcs")),
         ("sheet.tsv row 3: fcs file 'fcs/lost1.fcs' not found",
          "sheet.tsv row 5: fcs file 'fcs/lost2.fcs' not found",
          f"sheet.tsv row 7: fcs file 'FCS/{U3_C1D8}.fcs' not found")),
    Case("sheet", "cycle not a number", _cell(C1D8, "cycle", "one"),
         ("sheet.tsv row 3: column 'cycle' value 'one' is not allowed",)),
    Case("sheet", "cycle negative", _cell(C1D8, "cycle", -1),
         ("sheet.tsv row 3: column 'cycle' value '-1' is not allowed",)),
    Case("sheet", "day zero", _cell(C1D8, "day", 0),
         ("sheet.tsv row 3: column 'day' value '0' is not allowed",)),
    Case("sheet", "required cell empty", _cell(C1D8, "patient_id", ""),
         ("sheet.tsv row 3: column 'patient_id' is empty; it is required",)),
    Case("sheet", "sample id with a space", _cell(C1D8, "sample_id", "U1 C1D8"),
         ("sheet.tsv row 3: column 'sample_id' value 'U1 C1D8' is not allowed",)),
    Case("sheet", "lymphocyte count negative", _cell(C1D8, "lymphocytes_per_ul", -5),
         ("sheet.tsv row 3: column 'lymphocytes_per_ul' value '-5' is not allowed",)),
    Case("sheet", "visit label against its cycle and day", _cell(C1D8, "day", 9),
         ("sheet.tsv row 3: visit 'C1D8' says cycle 1 day 8 but the row has cycle 1 day 9",)),
    Case("sheet", "a visit consistently at the wrong day",
         _cells("day", 15, lambda s: s["visit"] == "C1D8"),
         ("sheet.tsv rows 3, 5, 7, 9: visit 'C1D8' says cycle 1 day 8 but the row has cycle 1 "
          "day 15",)),
    Case("sheet", "one visit at two times",
         _both(_cells("visit", "BASELINE", lambda s: s["visit"] == "C1D1"),
               _set("analysis.baseline_visit", "BASELINE"), _cell(C1D1, "cycle", 0)),
         ("sheet.tsv: visit 'BASELINE' has more than one cycle and day (cycle 0 day 1 in row 2; "
          "cycle 1 day 1 in rows 4, 6, 8, 10, 12)",)),
    Case("sheet", "two visits at one time", _cell(C1D1, "visit", "PRE"),
         ("sheet.tsv: visits 'PRE' (row 2), 'C1D1' (rows 4, 6, 8) of compartment 'blood' are "
          "all cycle 1 day 1",)),
    Case("sheet", "patient in two arms", _cell(U2_C1D8, "arm", "Control"),
         ("sheet.tsv: patient 'U2' appears in more than one arm",)),
    Case("sheet", "two samples of one visit",
         _add_row(sample_id="U1_C1D1_blood_b", fcs="fcs/spare.fcs"),
         ("sheet.tsv row 14: patient 'U1' has two blood samples at visit 'C1D1'",)),
    Case("sheet", "baseline visit missing in a compartment", _set("analysis.baseline_visit", "C2D1"),
         ("config analysis.baseline_visit: 'C2D1' is no blood sample's visit",)),
    Case("sheet", "baseline of a compartment misspelt",
         _set("analysis.baseline_visit", {"blood": "C1D1", "tumour": "C1D1"}),
         ("config analysis.baseline_visit.tumour: 'tumour' is no compartment of the sample sheet",)),
    Case("sheet", "baseline of a compartment not its visit",
         _set("analysis.baseline_visit", {"blood": "C1D1", "tumor": "C1D8"}),
         ("config analysis.baseline_visit.tumor: 'C1D8' is no tumor sample's visit",)),
    Case("sheet", "measure of a compartment misspelt", _set("analysis.measure.bloood", "count"),
         ("config analysis.measure.bloood: 'bloood' is no compartment of the sample sheet",)),
    Case("sheet", "per_ul without lymphocyte counts",
         lambda p: p.sheet.drop(columns="lymphocytes_per_ul", inplace=True),
         ("config analysis.measure.blood: per_ul needs lymphocytes_per_ul",)),
    Case("sheet", "response visit missing", _set("analysis.response_visit", "C3D1"),
         ("config analysis.response_visit: 'C3D1' is no sample's visit",)),
    Case("sheet", "response visit not after baseline",
         _set("analysis.baseline_visit", {"blood": "C1D8"}),
         ("config analysis.response_visit: 'C1D8' is not after the blood baseline 'C1D8'",)),
    Case("sheet", "reference arm without samples",
         _both(_set("arms.Placebo", "grey"), _set("analysis.reference_arm", "Placebo")),
         ("config analysis.reference_arm: the reference arm 'Placebo' has no samples",)),
]  # fmt: skip


def _comma_sheet(p: Project) -> Callable[[], Path]:
    """``save`` writing the sheet comma-separated."""
    save = p.save

    def write() -> Path:
        config = save()
        p.sheet.to_csv(p.root / "sheet.tsv", index=False)
        return config

    return write


PATIENT_CASES = [
    Case("patients", "response category unknown", _clinical("U2", "best_response", "CRR"),
         ("patients.tsv row 3: column 'best_response' value 'CRR' is not allowed",)),
    Case("patients", "response in lower case", _clinical("U1", "best_response", "pr"),
         ("patients.tsv row 2: column 'best_response' value 'pr' is not allowed",)),
    Case("patients", "negative PFS", _clinical("U3", "pfs_months", -2),
         ("patients.tsv row 4: column 'pfs_months' value '-2' is not allowed",)),
    Case("patients", "negative OS", _clinical("U4", "os_months", -0.5),
         ("patients.tsv row 5: column 'os_months' value '-0.5' is not allowed",)),
    Case("patients", "time not a number", _clinical("U1", "os_months", "soon"),
         ("patients.tsv row 2: column 'os_months' value 'soon' is not allowed",)),
    Case("patients", "event not 0 or 1", _clinical("U2", "pfs_event", 2),
         ("patients.tsv row 3: column 'pfs_event' value '2' is not allowed",)),
    Case("patients", "column missing", lambda p: p.patients.drop(columns="best_response", inplace=True),
         ("patients.tsv: missing column(s) best_response",)),
    Case("patients", "patient twice",
         lambda p: setattr(p, "patients", pd.concat([p.patients, p.patients.iloc[[1]]])),
         ("patients.tsv: patient_id 'U2' appears more than once",)),
    Case("patients", "patient id empty", _clinical("U4", "patient_id", ""),
         ("patients.tsv row 5: column 'patient_id' is empty",)),
    Case("patients", "arm not in config", _clinical("U3", "arm", "Placebo"),
         ("patients.tsv row 4: arm 'Placebo' is unknown",)),
    Case("patients", "arm against the sheet", _clinical("U1", "arm", "Control"),
         ("patients.tsv row 2: patient 'U1' is arm 'Control' here but 'Combination' in "
          "sheet.tsv",)),
    Case("patients", "file not found", _set("patients", "clinical/patients.tsv"),
         ("clinical/patients.tsv: patients table not found",)),
    Case("patients", "file empty", lambda p: setattr(p, "save", _empty_patients(p)),
         ("patients.tsv: patients table is empty",)),
    Case("patients", "patient with samples but no row",
         lambda p: setattr(p, "patients", p.patients[p.patients["patient_id"] != "U4"]),
         (), ("patients.tsv: patient 'U4' has samples in sheet.tsv but no row here: left out of "
              "the response rate",)),
    Case("patients", "row without samples",
         lambda p: setattr(p, "patients", pd.concat([p.patients, _clinical_row("U9")])),
         (), ("patients.tsv row 6: patient 'U9' has no samples in sheet.tsv: counted in the "
              "response rate",)),
    Case("patients", "both directions at once",
         lambda p: setattr(p, "patients", pd.concat(
             [p.patients[p.patients["patient_id"] != "U2"], _clinical_row("U8"),
              _clinical_row("U9")])),
         (), ("patient 'U2' has samples in sheet.tsv but no row here",
              "patients.tsv row 5: patient 'U8' has no samples",
              "patients.tsv row 6: patient 'U9' has no samples")),
]  # fmt: skip


def _clinical_row(patient: str) -> pd.DataFrame:
    return pd.DataFrame([dict(patient_id=patient, arm="Control", best_response="PD")])


def _empty_patients(p: Project) -> Callable[[], Path]:
    save = p.save

    def write() -> Path:
        config = save()
        (p.root / "patients.tsv").write_text("")
        return config

    return write


KNOWABLE = CONFIG_CASES + STRATEGY_CASES + COMPENSATION_CASES + SHEET_CASES + PATIENT_CASES


@pytest.mark.parametrize("case", KNOWABLE, ids=[f"{c.category}: {c.name}" for c in KNOWABLE])
def test_knowable_problems_stop_before_any_job(
    case: Case, tmp_path: Path, fcs_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tmp_path / "project", fcs_folder)
    case.edit(project)
    monkeypatch.chdir(project.root)
    status, stderr = preflight_stderr(project)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert all(line.startswith("cytotrial: ") for line in lines), stderr
    warnings = [line for line in lines if line.startswith("cytotrial: warning: ")]
    errors = [line for line in lines if line not in warnings]
    assert _matched(errors, case.errors), "\n".join(errors)
    assert _matched(warnings, case.warnings), "\n".join(warnings)
    assert status == (1 if case.errors else 0)
    assert str(project.root) not in stderr  # paths as the user wrote them


# ---------------------------------------------------------------------------------------------
# the two dry runs: the same lines come out of the workflow, before any job


def test_a_valid_project_plans_its_jobs(tmp_path: Path, fcs_folder: Path) -> None:
    project = new_project(tmp_path / "project", fcs_folder)
    config = project.save()
    result = run_snakemake(project.root, "-n", "--configfile", str(config), "--quiet", "rules")
    assert "cytotrial:" not in result.stderr  # no problem, no warning
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.MULTILINE))
    assert int(jobs.get("gate", 0)) >= 1 and jobs.get("stats") == "1"


def test_the_workflow_stops_before_any_job_with_every_line(
    tmp_path: Path, fcs_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One problem of each kind at once: the workflow writes exactly the check's lines and stops."""
    project = new_project(tmp_path / "project", fcs_folder)
    for edit in (
        _rename("qc.min_events", "min_event"),
        _set("strategies.blood.populations.cd8", "cd8x"),
        _matrix(lambda m: m * 100),
        _cell(C1D8, "fcs", "fcs/lost.fcs"),
        _clinical("U2", "best_response", "CRR"),
    ):
        edit(project)
    monkeypatch.chdir(project.root)
    status, expected = preflight_stderr(project)
    assert status == 1 and len(expected.splitlines()) == 5
    result = run_snakemake(
        project.root, "-n", "--configfile", str(project.root / "config.yaml"), check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("cytotrial:")]
    assert lines == expected.splitlines()
    assert not (project.root / "results").exists()  # not even a batch file


# ---------------------------------------------------------------------------------------------
# what only the file can tell: that sample alone is excluded (or flagged), the others complete


@dataclasses.dataclass(frozen=True)
class FileCase:
    """A damaged FCS file: how it is made from a good one, and what the gating says of it."""

    name: str
    make: Callable[[bytes, Path], None]
    status: str  # "excluded", or "ok" with a note (flagged)
    says: str


def _text_value(raw: bytes, keyword: str, value: str) -> bytes:
    """``raw`` with a TEXT keyword's value replaced, padded to its length (offsets stay valid)."""
    match = re.search(re.escape(f"/{keyword}/".encode()) + rb"([^/]*)/", raw)
    assert match is not None and len(value) <= len(match.group(1)), keyword
    padded = value.encode().ljust(len(match.group(1)))
    return raw[: match.start(1)] + padded + raw[match.end(1) :]


def _written(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _events(change: Callable[[np.ndarray, list[str]], None]) -> Callable[[bytes, Path], None]:
    """A file of the good sample's events, changed (written by the simulator's writer)."""

    def make(raw: bytes, path: Path) -> None:
        from cytotrial.sim import simulate_sample, write_fcs

        sample = simulate_sample(panel="blood", n_events=EVENTS, seed=1)
        events = sample.events.copy()
        change(events, list(sample.channels))
        write_fcs(dataclasses.replace(sample, events=events), path)

    return make


def _set_value(channel: str, rows: slice | int, value: float):
    def change(events: np.ndarray, channels: list[str]) -> None:
        events[rows, channels.index(channel)] = value

    return change


def _swapped_labels(raw: bytes) -> bytes:
    """CD3's and CD8's ``$PnS`` labels swapped (FITC-A says CD8, APC-H7-A says CD3)."""
    return raw.replace(b"/CD3/", b"/C#3/").replace(b"/CD8/", b"/CD3/").replace(b"/C#3/", b"/CD8/")


FILE_CASES = [
    FileCase("truncated", lambda raw, p: _written(p, raw[: len(raw) // 2]), "excluded",
             "the file is truncated"),
    FileCase("last bytes missing", lambda raw, p: _written(p, raw[:-7]), "excluded",
             "the file is truncated"),
    FileCase("empty", lambda raw, p: _written(p, b""), "excluded", "the file is empty"),
    FileCase("not FCS", lambda raw, p: _written(p, b"sample_id\tcount\n"), "excluded",
             "not an FCS file"),
    FileCase("random bytes after the version", lambda raw, p: _written(
        p, b"FCS3.1    " + np.random.default_rng(0).bytes(400)), "excluded",
             "the FCS HEADER is damaged"),
    FileCase("HEADER offsets not numbers", lambda raw, p: _written(
        p, raw[:26] + b"    abcd" + raw[34:]), "excluded", "the FCS HEADER is damaged"),
    FileCase("$TOT more events than DATA holds", lambda raw, p: _written(
        p, _text_value(raw, "$TOT", "9999")), "excluded", "$TOT=9999 events need"),
    FileCase("$DATATYPE unknown", lambda raw, p: _written(
        p, _text_value(raw, "$DATATYPE", "X")), "excluded", "$DATATYPE is not one of I, F, D"),
    FileCase("$BYTEORD mixed", lambda raw, p: _written(
        p, _text_value(raw, "$BYTEORD", "3,4,1,2")), "excluded", "$BYTEORD 3,4,1,2"),
    FileCase("$PAR against the channels", lambda raw, p: _written(
        p, _text_value(raw, "$PAR", "99")), "excluded", "$PAR is 99"),
    FileCase("no events", lambda raw, p: _written(
        p, _text_value(raw, "$TOT", "0")), "excluded", "$TOT is 0"),
    FileCase("a channel the strategy needs missing", lambda raw, p: _written(
        p, raw.replace(b"APC-H7-A", b"APC-X7-A").replace(b"/CD8/", b"/CD9/")), "excluded",
             "lacks 1 channel(s) the gating strategy needs: APC-H7-A"),
    FileCase("file gone after the check", lambda raw, p: None, "excluded",
             "file not found"),
    FileCase("one NaN value", _events(_set_value("APC-H7-A", 5, np.nan)), "ok",
             "1 event(s) with non-finite values in APC-H7-A"),
    FileCase("one +inf value", _events(_set_value("PE-A", 7, np.inf)), "ok",
             "1 event(s) with non-finite values in PE-A"),
    FileCase("a channel the gating reads all NaN",
             _events(_set_value("BV421-A", slice(None), np.nan)), "excluded",
             "channel BV421-A holds no finite value"),
    FileCase("$SPILLOVER unreadable", lambda raw, p: _written(
        p, _text_value(raw, "$SPILLOVER", "12,abc")), "excluded",
             "$SPILLOVER: spillover for 12 detectors needs 157 comma-separated items"),
    FileCase("$PnS labels of two channels swapped", lambda raw, p: _written(
        p, _swapped_labels(raw)), "excluded",
             "channel FITC-A is labelled CD8 by its $P4S but the strategy reads it as CD3"),
]  # fmt: skip


@pytest.fixture(scope="session")
def blood_gating(tmp_path_factory: pytest.TempPathFactory, fcs_folder: Path):
    """The blood panel's gating as the workflow loads it, and its reference counts of good files."""
    from cytotrial.config import check_config, population_model
    from cytotrial.gating import gate_samples, load_panel_gating

    config = check_config(_config(), base=PROJECT_ROOT / "resources")
    spec = dict(
        config["strategies"]["blood"], strategy=str(PROJECT_ROOT / "resources/gating/blood.xml")
    )
    gating = load_panel_gating(
        "blood", spec, model=population_model(config), mfi_markers=config["mfi"]["markers"]
    )
    good = {
        "a_good": fcs_folder / f"{_sample_id('U1', 'C1D1', 'blood')}.fcs",
        "c_good": fcs_folder / f"{_sample_id('U2', 'C1D8', 'blood')}.fcs",
    }
    alone = gate_samples(
        pd.DataFrame(
            {"sample_id": list(good), "panel": "blood", "fcs": list(map(str, good.values()))}
        ),
        {"blood": gating},
        panels=config["panels"],
        mfi_min_events=config["mfi"]["min_events"],
    )
    assert (alone.qc["status"] == "ok").all()
    return gating, config, good, alone


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.name for c in FILE_CASES])
def test_a_damaged_file_excludes_its_sample_alone(
    case: FileCase, tmp_path: Path, fcs_folder: Path, blood_gating
) -> None:
    from cytotrial.gating import gate_samples

    gating, config, good, alone = blood_gating
    bad = tmp_path / "b_bad.fcs"
    case.make(good["a_good"].read_bytes(), bad)
    samples = pd.DataFrame(
        {"sample_id": ["a_good", "b_bad", "c_good"], "panel": "blood",
         "fcs": [str(good["a_good"]), str(bad), str(good["c_good"])]}
    )  # fmt: skip
    result = gate_samples(
        samples,
        {"blood": gating},
        panels=config["panels"],
        mfi_min_events=config["mfi"]["min_events"],
    )
    qc = result.qc.set_index("sample_id")
    assert qc.loc["b_bad", "status"] == case.status
    said = qc.loc["b_bad", "message" if case.status == "excluded" else "notes"]
    assert case.says in said and "\n" not in said
    if case.status == "excluded":
        assert said.startswith("b_bad.fcs: ")  # names the file
        assert "b_bad" not in set(result.counts["sample_id"]) | set(result.mfi["sample_id"])
    else:
        assert (result.counts["sample_id"] == "b_bad").sum() == len(gating.order)
    assert list(qc.loc[["a_good", "c_good"], "status"]) == ["ok", "ok"]
    others = result.counts[result.counts["sample_id"] != "b_bad"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, alone.counts)
    pd.testing.assert_frame_equal(
        result.mfi[result.mfi["sample_id"] != "b_bad"].reset_index(drop=True), alone.mfi
    )


# ---------------------------------------------------------------------------------------------
# the corpus as a whole


def corpus_counts() -> dict[str, int]:
    """Cases per category (the closing note's table)."""
    counts = Counter(case.category for case in KNOWABLE)
    counts["fcs"] = len(FILE_CASES) + len(E2E_FILES)
    return dict(counts)


def test_the_corpus_covers_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    counts = corpus_counts()
    with capsys.disabled():
        print("\nbad-input corpus:", ", ".join(f"{k} {v}" for k, v in counts.items()),
              f"(total {sum(counts.values())})")  # fmt: skip
    assert set(counts) == {"config", "strategy", "compensation", "sheet", "patients", "fcs"}
    assert min(counts.values()) >= 10
    assert sum(counts.values()) >= 90
    names = [(c.category, c.name) for c in KNOWABLE] + [("fcs", c.name) for c in FILE_CASES]
    assert len(set(names)) == len(names)


# ---------------------------------------------------------------------------------------------
# a real run: two damaged files among good ones

E2E_FILES = {
    _sample_id("U2", "C1D1", "blood"): ("truncated", "the file is truncated"),
    _sample_id("U3", "C1D8", "blood"): (
        "a channel the strategy needs missing",
        "lacks 1 channel(s) the gating strategy needs: APC-H7-A",
    ),
}


@pytest.mark.e2e
def test_a_run_excludes_damaged_files_and_completes_the_others(
    tmp_path: Path, fcs_folder: Path
) -> None:
    project = new_project(tmp_path / "project", fcs_folder)
    (project.root / "fcs").unlink()
    shutil.copytree(fcs_folder, project.root / "fcs")
    makers = {case.name: case.make for case in FILE_CASES}
    for sample, (kind, _) in E2E_FILES.items():
        path = project.root / "fcs" / f"{sample}.fcs"
        makers[kind](path.read_bytes(), path)
    config = project.save()
    targets = ("results/qc/samples.tsv", "results/counts/populations.tsv")
    run_snakemake(project.root, *targets, "--configfile", str(config), "--cores", "2")
    qc = pd.read_csv(project.root / targets[0], sep="\t", keep_default_na=False)
    qc = qc.set_index("sample_id")
    for sample, (_, says) in E2E_FILES.items():
        assert qc.loc[sample, "status"] == "excluded" and says in qc.loc[sample, "message"]
    others = sorted(set(project.sheet["sample_id"]) - set(E2E_FILES))
    assert set(qc.loc[others, "status"]) <= {"ok", "flagged"}
    counts = pd.read_csv(project.root / targets[1], sep="\t")
    assert sorted(set(counts["sample_id"])) == others
