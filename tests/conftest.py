"""Shared test fixtures: the external reference data and small helpers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cytotrial.tl import POPULATIONS as CANONICAL_POPULATIONS

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

ARM_A = "BEMPEG+NIVO"
ARM_B = "NIVO"
POPULATIONS = list(CANONICAL_POPULATIONS)
PARENTS = {
    "lymphocytes": "",
    "singlets": "lymphocytes",
    "live": "singlets",
    "leukocytes": "live",
    "cd3": "live",
    "cd4": "cd3",
    "cd8": "cd3",
    "treg": "cd4",
    "nk": "live",
    "cd8_ki67": "cd8",
}
VISITS = {"C1D1": (1, 1), "C1D8": (1, 8), "C2D1": (2, 1)}
COMPARTMENT_VISITS = {"blood": ["C1D1", "C1D8", "C2D1"], "tumor": ["C1D1", "C2D1"]}
# per-patient baseline counts: base + step * patient index
BASE = {
    "cd4": (4000, 100),
    "cd8": (2000, 150),
    "treg": (400, 10),
    "nk": (2500, 50),
    "cd8_ki67": (200, 5),
}


def make_trial(
    *,
    n_per_arm: int = 10,
    effects: Mapping[tuple[str, str, str, str], float] | None = None,
    noise_sd: float = 0.15,
    noise_free: Sequence[str] = ("cd4",),
    patient_effects: Mapping[tuple[str, str, str, str], float] | None = None,
    drop: Sequence[tuple[str, str, str]] = (),
    qc_flags: Mapping[str, str] | None = None,
    seed: int = 0,
) -> ad.AnnData:
    """Simulated populations.h5ad.

    Parameters
    ----------
    effects
        (arm, compartment, population, visit) -> planted log2 fold change from baseline.
    noise_free
        Populations without noise: their log2 fold change equals the planted effect exactly.
    patient_effects
        (patient_id, compartment, population, visit) -> extra log2 change for one patient.
    drop
        (patient_id, compartment, visit) samples to leave out.
    qc_flags
        sample_id -> qc flag text.
    """
    effects = dict(effects or {})
    patient_effects = dict(patient_effects or {})
    rng = np.random.default_rng(seed)
    obs_rows, x_rows = [], []
    patients = [
        (f"P{i + 1:02d}", ARM_A if i < n_per_arm else ARM_B, i % n_per_arm)
        for i in range(2 * n_per_arm)
    ]
    for patient, arm, k in patients:
        lymph_per_ul = 1200.0 + 20 * k
        for compartment, visits in COMPARTMENT_VISITS.items():
            for visit in visits:
                if (patient, compartment, visit) in drop:
                    continue
                sample_id = f"{patient}_{compartment}_{visit}"
                cycle, day = VISITS[visit]
                counts = {"lymphocytes": 60000.0, "singlets": 55000.0, "live": 50000.0}
                counts["leukocytes"] = 30000.0 if compartment == "tumor" else np.nan
                counts["cd3"] = 20000.0
                for population, (base, step) in BASE.items():
                    effect = effects.get((arm, compartment, population, visit), 0.0)
                    effect += patient_effects.get((patient, compartment, population, visit), 0.0)
                    noise = (
                        0.0
                        if population in noise_free or visit == "C1D1"
                        else rng.normal(0, noise_sd)
                    )
                    value = (base + step * k) * 2.0 ** (effect + noise)
                    counts[population] = (
                        value if population in noise_free else float(np.round(value))
                    )
                obs_rows.append(
                    dict(
                        sample_id=sample_id,
                        patient_id=patient,
                        arm=arm,
                        visit=visit,
                        cycle=cycle,
                        day=day,
                        compartment=compartment,
                        panel=compartment,
                        batch="b1",
                        fcs=f"{sample_id}.fcs",
                        lymphocytes_per_ul=lymph_per_ul if compartment == "blood" else np.nan,
                        qc_flags=(qc_flags or {}).get(sample_id, ""),
                    )
                )
                x_rows.append([counts[p] for p in POPULATIONS])
    obs = pd.DataFrame(obs_rows).set_index("sample_id", drop=False)
    obs.index.name = None
    x = np.asarray(x_rows, dtype=float)
    col = {p: i for i, p in enumerate(POPULATIONS)}
    freq_parent = np.full_like(x, np.nan)
    for p, parent in PARENTS.items():
        denominator = np.full(len(x), 100000.0) if not parent else x[:, col[parent]].copy()
        if p == "cd3":  # in the tumor panel CD3 sits under CD45+ leukocytes
            tumor = (obs["compartment"] == "tumor").to_numpy()
            denominator[tumor] = x[tumor, col["leukocytes"]]
        freq_parent[:, col[p]] = x[:, col[p]] / denominator
    freq_live = x / x[:, [col["live"]]]
    per_ul = freq_live * obs["lymphocytes_per_ul"].to_numpy()[:, None]
    var = pd.DataFrame({"parent": [PARENTS[p] for p in POPULATIONS]}, index=POPULATIONS)
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.layers["freq_parent"] = freq_parent
    adata.layers["freq_live"] = freq_live
    adata.layers["per_ul"] = per_ul
    adata.uns["provenance"] = {"strategy_sha256": {"blood": "0" * 64, "tumor": "1" * 64}}
    return adata


# --------------------------------------------------------------------------------------------
# the planted trial
# --------------------------------------------------------------------------------------------
ANALYSIS = {"populations": ["cd4", "cd8"], "reference_arm": ARM_B, "baseline_visit": "C1D1"}
EFFECTS = {
    (ARM_A, "blood", "cd8", "C1D8"): 2.0,  # strong early rise of blood CD8 under the combination
    (ARM_A, "tumor", "cd8", "C2D1"): 1.5,  # and of intratumoral CD8 at the on-treatment biopsy
    (ARM_A, "blood", "cd4", "C2D1"): 1.0,  # noise-free: log2fc must be exactly 1
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
