"""Shared test fixtures: the external reference data and small helpers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _external_data_dir() -> Path:
    env = os.environ.get("CYTOTRIAL_EXTERNAL_DATA")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared" / "data" / "external"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def external_data() -> Path:
    """The real reference data (GatingML suite, FlowJo workspaces, FCS variety), read in place.

    Under CI a missing folder is a failure, never a skip.
    """
    path = _external_data_dir()
    if not path.is_dir():
        message = (
            f"external reference data not found at {path}; set CYTOTRIAL_EXTERNAL_DATA "
            "or place shared/ beside the project"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


# ---------------------------------------------------------------------------------------------
# Running the workflow


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, in_place: bool = False
) -> subprocess.CompletedProcess:
    """`snakemake ARGS` on ``workdir``.

    The project's Snakefile with ``-d workdir``; or, with ``in_place``, run inside ``workdir`` (a
    project folder holding its own Snakefile), as a user types it.
    """
    where = {"cwd": workdir} if in_place else {}
    target = [] if in_place else ["-s", str(PROJECT_ROOT / "Snakefile"), "-d", str(workdir)]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *target, *args], capture_output=True, text=True, **where
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="session")
def default_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo run end to end, once per test process, shared by the end-to-end modules.

    The project's config with its strategies by path: the trial a user's first `snakemake
    --cores 2` makes. Tests read it (or build its report, which changes no output); a test that
    changes anything copies it first.
    """
    import time

    import yaml

    workdir = tmp_path_factory.mktemp("demo")
    config = yaml.safe_load((PROJECT_ROOT / "config" / "config.yaml").read_text())
    for spec in config["strategies"].values():
        spec["strategy"] = str(PROJECT_ROOT / spec["strategy"])
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    run_snakemake(workdir, "--cores", "2")
    print(f"demo workflow: {time.perf_counter() - start:.0f} s on 2 cores")
    return workdir


def planned_jobs(workdir: Path, *args: str, in_place: bool = False) -> dict[str, int]:
    """Rule -> number of jobs a dry run would run (``args``: targets, options).

    Targets come before `--quiet rules`: the profile's options follow on the command line.
    """
    result = run_snakemake(workdir, "-n", *args, "--quiet", "rules", in_place=in_place)
    jobs = {}
    for line in (result.stdout + result.stderr).splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


# ---------------------------------------------------------------------------------------------
# FCS files of many instruments (read in place from the external data)

# Every data file of fcs-variety/ plus the GatingML and FlowJo example files.
VARIETY_FILES = [
    "fcs-variety/100715.fcs",
    "fcs-variety/3FITC_4PE_004.fcs",
    "fcs-variety/4_color_beads/Compensation Controls_Blue B Stained Control_005.fcs",
    "fcs-variety/4_color_beads/Compensation Controls_Green A Stained Control_006.fcs",
    "fcs-variety/4_color_beads/Compensation Controls_Red A Stained Control_004.fcs",
    "fcs-variety/4_color_beads/Compensation Controls_Red B Stained Control_003.fcs",
    "fcs-variety/B01 KC-A-W---91-US.fcs",
    "fcs-variety/G11.fcs",
    "fcs-variety/coulter.lmd",
    "fcs-variety/data1.fcs",
    "fcs-variety/data_start_offset_discrepancy_example.fcs",
    "fcs-variety/data_stop_offset_discrepancy_example.fcs",
    "fcs-variety/index_sorted_example.fcs",
    "fcs-variety/test_comp_example.fcs",
    "fcs-variety/variable_int_example.fcs",
]


def raw_keywords(path: Path, *, offset: int = 0) -> dict[str, str]:
    """TEXT keywords straight from the bytes (keys upper-case, with ``$``), no FlowIO involved."""
    raw = Path(path).read_bytes()
    start = int(raw[offset + 10 : offset + 18])
    stop = int(raw[offset + 18 : offset + 26])
    text = raw[offset + start : offset + stop + 1].decode("latin-1")
    delimiter, items, buffer, i = text[0], [], [], 1
    while i < len(text):
        char = text[i]
        if char == delimiter and i + 1 < len(text) and text[i + 1] == delimiter:
            buffer.append(delimiter)
            i += 2
            continue
        if char == delimiter:
            items.append("".join(buffer))
            buffer = []
        else:
            buffer.append(char)
        i += 1
    return {k.upper(): v for k, v in zip(items[::2], items[1::2])}


# ---------------------------------------------------------------------------------------------
# A tiny simulated trial with planted effects (statistics and figures tests)
#
# populations.h5ad as the aggregation writes it (X counts; layers freq_parent, freq_live, per_ul;
# var label, parent, parent_<panel>; obsm ratios and mfi_median), three compartments with their
# own visits. Feature names here are the test's own: the code under test knows none of them.

ARM_A = "BEMPEG+NIVO"
ARM_B = "NIVO"
POPULATIONS = [
    "lymphocytes", "singlets", "live", "leukocytes", "cd3", "cd4", "cd8", "treg", "nk", "cd8_ki67",
]  # fmt: skip
LABELS = {
    "lymphocytes": "Lymphocytes",
    "singlets": "Single cells",
    "live": "Live cells",
    "leukocytes": "CD45+ leukocytes",
    "cd3": "CD3+ T cells",
    "cd4": "CD4+ T cells",
    "cd8": "CD8+ T cells",
    "treg": "Regulatory T cells",
    "nk": "NK cells",
    "cd8_ki67": "Ki67+ of CD8+ T cells",
}
MARROW = "bone marrow"
# compartment -> its panel; each panel's parent of each population ("" = all events)
PANELS = {"blood": "blood", "tumor": "tumor", MARROW: "marrow"}
_BLOOD_PARENTS = {
    "lymphocytes": "", "singlets": "lymphocytes", "live": "singlets", "cd3": "live", "cd4": "cd3",
    "cd8": "cd3", "treg": "cd4", "nk": "live", "cd8_ki67": "cd8",
}  # fmt: skip
PANEL_PARENTS = {
    "blood": _BLOOD_PARENTS,
    "marrow": _BLOOD_PARENTS,
    "tumor": {**_BLOOD_PARENTS, "leukocytes": "live", "cd3": "leukocytes"},
}
RATIOS = {"cd4_treg": ["cd4", "treg"]}  # noise-free populations: log2fc = cd4's minus treg's
MFI = "cd8:Ki67"
VISITS = {"SCREEN": (0, 1), "C1D1": (1, 1), "C1D8": (1, 8), "C2D1": (2, 1)}
COMPARTMENT_VISITS = {
    "blood": ["C1D1", "C1D8", "C2D1"],
    "tumor": ["C1D1", "C2D1"],
    MARROW: ["SCREEN", "C2D1"],
}
BASELINES = {"blood": "C1D1", "tumor": "C1D1", MARROW: "SCREEN"}
# per-patient baseline values: base + step * patient index (counts; the MFI's median)
BASE = {
    "cd4": (4000, 100),
    "cd8": (2000, 150),
    "treg": (400, 25),  # so that cd4_treg differs between patients
    "nk": (2500, 50),
    "cd8_ki67": (200, 5),
    MFI: (800, 40),
}


def _obs_row(patient: str, arm: str, k: int, compartment: str, visit: str, flags: str) -> dict:
    sample_id = f"{patient}_{compartment.replace(' ', '_')}_{visit}"
    cycle, day = VISITS[visit]
    return dict(
        sample_id=sample_id,
        patient_id=patient,
        arm=arm,
        visit=visit,
        cycle=cycle,
        day=day,
        compartment=compartment,
        panel=PANELS[compartment],
        batch="b1",
        fcs=f"{sample_id}.fcs",
        lymphocytes_per_ul=1200.0 + 20 * k if compartment == "blood" else np.nan,
        qc_flags=flags,
    )


def _layers(x: np.ndarray, obs: pd.DataFrame) -> dict[str, np.ndarray]:
    """freq_parent (each panel's parent), freq_live and per_ul of the counts ``x``."""
    col = {p: i for i, p in enumerate(POPULATIONS)}
    freq_parent = np.full_like(x, np.nan)
    for i, panel in enumerate(obs["panel"]):
        for p, parent in PANEL_PARENTS[panel].items():
            denominator = 100000.0 if not parent else x[i, col[parent]]
            freq_parent[i, col[p]] = x[i, col[p]] / denominator
    below_live = [col[p] for p in POPULATIONS if p not in ("lymphocytes", "singlets")]
    freq_live = np.full_like(x, np.nan)
    freq_live[:, below_live] = x[:, below_live] / x[:, [col["live"]]]
    per_ul = freq_live * obs["lymphocytes_per_ul"].to_numpy()[:, None]
    return {"freq_parent": freq_parent, "freq_live": freq_live, "per_ul": per_ul}


def _var() -> pd.DataFrame:
    var = pd.DataFrame({"label": [LABELS[p] for p in POPULATIONS]}, index=POPULATIONS)
    for panel, parents in PANEL_PARENTS.items():
        var[f"parent_{panel}"] = [parents.get(p, "") for p in POPULATIONS]
    same = var[[f"parent_{panel}" for panel in PANEL_PARENTS]].nunique(axis=1) == 1
    var["parent"] = var["parent_blood"].where(same, "")
    return var


def make_trial(
    *,
    n_per_arm: int = 10,
    effects: Mapping[tuple[str, str, str, str], float] | None = None,
    noise_sd: float = 0.15,
    noise_free: Sequence[str] = ("cd4", "treg", MFI),
    patient_effects: Mapping[tuple[str, str, str, str], float] | None = None,
    drop: Sequence[tuple[str, str, str]] = (),
    qc_flags: Mapping[str, str] | None = None,
    seed: int = 0,
) -> ad.AnnData:
    """Simulated populations.h5ad.

    Parameters
    ----------
    effects
        (arm, compartment, feature, visit) -> planted log2 fold change from baseline (a population
        of ``BASE`` or the MFI).
    noise_free
        Features without noise: their log2 fold change equals the planted effect exactly.
    patient_effects
        (patient_id, compartment, feature, visit) -> extra log2 change for one patient.
    drop
        (patient_id, compartment, visit) samples to leave out.
    qc_flags
        sample_id -> qc flag text.
    """
    effects = dict(effects or {})
    patient_effects = dict(patient_effects or {})
    rng = np.random.default_rng(seed)
    obs_rows, x_rows, mfi = [], [], []
    patients = [
        (f"P{i + 1:02d}", ARM_A if i < n_per_arm else ARM_B, i % n_per_arm)
        for i in range(2 * n_per_arm)
    ]
    for patient, arm, k in patients:
        for compartment, visits in COMPARTMENT_VISITS.items():
            for visit in visits:
                if (patient, compartment, visit) in drop:
                    continue
                row = _obs_row(patient, arm, k, compartment, visit, "")
                row["qc_flags"] = (qc_flags or {}).get(row["sample_id"], "")
                values = {"lymphocytes": 60000.0, "singlets": 55000.0, "live": 50000.0}
                values["leukocytes"] = 30000.0 if compartment == "tumor" else np.nan
                values["cd3"] = 20000.0
                for feature, (base, step) in BASE.items():
                    effect = effects.get((arm, compartment, feature, visit), 0.0)
                    effect += patient_effects.get((patient, compartment, feature, visit), 0.0)
                    at_baseline = visit == BASELINES[compartment]
                    noise = 0.0 if feature in noise_free or at_baseline else rng.normal(0, noise_sd)
                    value = (base + step * k) * 2.0 ** (effect + noise)
                    values[feature] = value if feature in noise_free else float(np.round(value))
                obs_rows.append(row)
                x_rows.append([values[p] for p in POPULATIONS])
                mfi.append(values[MFI] if compartment != MARROW else np.nan)  # not in that panel
    obs = pd.DataFrame(obs_rows).set_index("sample_id", drop=False)
    obs.index.name = None
    x = np.asarray(x_rows, dtype=float)
    adata = ad.AnnData(X=x, obs=obs, var=_var(), layers=_layers(x, obs))
    counts = pd.DataFrame(x, index=obs.index, columns=POPULATIONS)
    adata.obsm["ratios"] = pd.DataFrame(
        {name: counts[a] / counts[b] for name, (a, b) in RATIOS.items()}, index=obs.index
    )
    adata.obsm["mfi_median"] = pd.DataFrame({MFI: mfi}, index=obs.index)
    adata.obsm["mfi_n_events"] = pd.DataFrame({MFI: counts["cd8"].to_numpy()}, index=obs.index)
    adata.uns["ratios"] = {name: list(pair) for name, pair in RATIOS.items()}
    adata.uns["provenance"] = {"strategy_sha256": dict.fromkeys(PANEL_PARENTS, "0" * 64)}
    return adata


# --------------------------------------------------------------------------------------------
# the planted trial
# --------------------------------------------------------------------------------------------
FEATURES = ["cd4", "cd8", "cd4_treg", MFI]
ANALYSIS = {
    "populations": FEATURES,
    "reference_arm": ARM_B,
    "baseline_visit": BASELINES,
    "measure": {"blood": "per_ul"},  # tumor and bone marrow: freq_parent (not listed)
}
EFFECTS = {
    (ARM_A, "blood", "cd8", "C1D8"): 2.0,  # strong early rise of blood CD8 under the combination
    (ARM_A, "tumor", "cd8", "C2D1"): 1.5,  # and of intratumoral CD8 at the on-treatment biopsy
    (ARM_A, "blood", "cd4", "C2D1"): 1.0,  # noise-free: log2fc must be exactly 1
    (ARM_A, "blood", "treg", "C1D8"): -1.0,  # noise-free: cd4_treg rises exactly 1 at C1D8
    (ARM_A, "blood", MFI, "C1D8"): 1.5,  # noise-free MFI: log2fc exactly 1.5
    (ARM_A, MARROW, "cd4", "C2D1"): 0.5,  # noise-free, from the bone marrow's SCREEN baseline
}
# the planted log2 fold change of each noise-free (arm, compartment, feature, visit)
PLANTED = {
    **{(ARM_A, "blood", "cd4", "C2D1"): 1.0, (ARM_A, MARROW, "cd4", "C2D1"): 0.5},
    **{(ARM_A, "blood", "cd4_treg", v): 1.0 for v in ("C1D8", "C2D1")},
    (ARM_A, MARROW, "cd4_treg", "C2D1"): 0.5,
    (ARM_A, "blood", MFI, "C1D8"): 1.5,
}
RESPONDERS = {"P01": "CR", "P02": "PR", "P04": "PR", "P05": "PR", "P11": "PR", "P12": "CR"}
# responders of the combination arm rise one more log2 unit at C1D8
PATIENT_EFFECTS = {(p, "blood", "cd8", "C1D8"): 1.0 for p in ("P01", "P02", "P04", "P05")}
DROPPED = [("P03", "blood", "C1D1")]
FLAGS = {"P05_blood_C1D8": "low_events"}


def planted_trial() -> ad.AnnData:
    return make_trial(
        effects=EFFECTS, patient_effects=PATIENT_EFFECTS, drop=DROPPED, qc_flags=FLAGS, seed=1
    )


def patients_table() -> pd.DataFrame:
    rows = []
    for i in range(20):
        patient = f"P{i + 1:02d}"
        response = RESPONDERS.get(patient, "NE" if patient == "P20" else ("SD" if i % 2 else "PD"))
        rows.append(
            dict(
                patient_id=patient,
                arm=ARM_A if i < 10 else ARM_B,
                best_response=response,
                pfs_months=6.0,
                pfs_event=1,
                os_months=12.0,
                os_event=0,
            )
        )
    return pd.DataFrame(rows)
