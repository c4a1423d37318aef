"""A simulated immunotherapy trial: FCS files whose every event has a known identity.

The simulator writes what a trial's flow cytometry core would hand over for the model case
(bempegaldesleukin + nivolumab, ``BEMPEG+NIVO``, versus nivolumab alone, ``NIVO``; 21-day cycles;
blood at C1D1, C1D8, C2D1, C3D1, C5D1; tumor biopsies at C1D1 and C2D1), together with the truth
that real data never has.

Layout written by :func:`simulate_trial` into ``DIR``::

    fcs/<sample_id>.fcs        FCS 3.1, float32, one file per sample (panels ``blood``/``tumor``)
    samples.tsv                the sample sheet (contract columns, ``fcs`` relative to DIR)
    patients.tsv               clinical outcome per patient (RECIST 1.1 best response, PFS, OS)
    truth/populations.tsv      true event count of every canonical population in every sample
    truth/effects.tsv          the effect model: true fold change versus baseline

Signal model
------------
Every event is drawn as one cell type (:data:`CELL_TYPES`): lymphocyte subsets (conventional
CD4 T, Treg, Ki67- CD8 T, Ki67+ CD8 T, NK, B, other T cells), monocytes, granulocytes, debris and,
in tumor, large and small CD45- tumor cells. Independently, each cell (not debris) is dead with
the sample's dead rate and a doublet with the sample's doublet rate. Scatter is log-normal per
type (doublets: FSC-A and SSC-A grow by part of a partner's, FSC-H barely; dead cells: lower FSC,
higher SSC). Each marker is either negative or a log-normal cloud (a Gaussian cloud on a logicle
scale); negatives sit near 0 with spread from electronic noise, autofluorescence and spillover
spreading, so compensated values go below 0 as in real data. Dead cells are viability-dye
bright. The unmixed signal is then mixed with the panel's spillover matrix ``S`` (FCS convention:
``observed = unmixed @ S``, row ``i`` of ``S`` is how fluorochrome ``i`` spills into every
detector), which is written as ``$SPILLOVER``, so ``observed @ inv(S)`` recovers the unmixed
signal. Acquisition batches shift intensities by a few percent.

Truth
-----
A population's true count is the number of events whose labels satisfy every criterion on the
population's gate path in the default gating trees (``resources/gating/blood.xml``,
``tumor.xml``):

- ``lymphocytes``: events of lymphocyte scatter, i.e. lymphocyte subsets and, in tumor, small
  tumor cells that scatter like lymphocytes, including their dead cells and doublets;
- ``singlets``: lymphocytes that are not doublets;
- ``live``: singlets that are not dead;
- ``leukocytes`` (tumor only): live events of a CD45+ lymphocyte subset;
- ``cd3``: live (tumor: leukocytes) conventional CD4, Treg, CD8 and other T cells;
- ``cd4``: live conventional CD4 T cells and Tregs; ``treg``: live Tregs;
- ``cd8``: live CD8 T cells, Ki67- and Ki67+; ``cd8_ki67``: live Ki67+ CD8 T cells;
- ``nk``: live NK cells.

Trial model
-----------
Blood: each patient has baseline abundances per microlitre of every lymphocyte subset (published
blood values for the typical patient: CD8 ~32% of CD3, Treg ~7% of CD4, NK ~12% of
lymphocytes), spread between patients. At each visit the abundance is
``baseline x fold_change ** responsiveness x visit noise``, with the arm's fold change of
:data:`BLOOD_EFFECTS`; ``lymphocytes_per_ul`` is the sum over lymphocyte subsets, and the file's
event composition follows (plus monocytes, granulocytes, debris, dead cells and doublets).
Tumor: relative abundances of infiltrating subsets, myeloid cells and tumor cells, with the same
on-treatment change in both arms (:data:`TUMOR_EFFECTS`). Patients get a RECIST best response
(objective response rate about a third, equal in both arms), progression-free and overall
survival; patients stop at progression (mostly progressive disease, early) or for toxicity, so
later visits have fewer samples. ``truth/effects.tsv`` gives, for the typical noise-free
patient, the fold change versus baseline of ``per_ul`` (blood: count / live x
lymphocytes_per_ul) and ``freq_parent`` (count / count of the population's parent gate in the
default tree, all events for ``lymphocytes``; ``nk`` is a frequency of ``cd3_neg``, the live
(tumor: CD45+) CD3- cells, i.e. NK and B cells).

Identifiers: the TEXT segment carries keywords a site would leave (``$SRC`` with a made-up
patient name, ``$OP``, ``$FIL``, ``$INST``, ``$COM``, ``$SMNO``, ``PATIENT ID``), each value
containing :data:`CANARY` so that any leak into outputs is easy to find; ``$DATE``/``$BTIM``/
``$ETIM`` are valid FCS dates and times derived from the seed. None of them reaches the tables.

Randomness: one :class:`numpy.random.SeedSequence` per trial; the trial design draws from one
child, and every sample from its own spawned child, so files are byte-identical for the same
arguments whatever the number of worker processes.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import flowio
import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..tl._aggregate import POPULATIONS as CANONICAL_POPULATIONS

__all__ = [
    "ARMS",
    "BLOOD_EFFECTS",
    "CANARY",
    "CELL_TYPES",
    "IDENTIFYING_KEYWORDS",
    "PANELS",
    "POPULATIONS",
    "TUMOR_EFFECTS",
    "VISITS",
    "SimulatedSample",
    "TrialSummary",
    "effect_model",
    "simulate_sample",
    "simulate_trial",
    "spillover_matrix",
    "typical_composition",
    "write_fcs",
]

#: Substring of every identifying TEXT value written to the FCS files.
CANARY = "CANARY"

#: Treatment arms, in the order of ``patients_per_arm`` when it is a pair.
ARMS: tuple[str, str] = ("BEMPEG+NIVO", "NIVO")

#: Demo panels: ``($PnN, $PnS)`` of every channel, in file order.
PANELS: dict[str, tuple[tuple[str, str], ...]] = {
    "blood": (
        ("FSC-A", ""),
        ("FSC-H", ""),
        ("SSC-A", ""),
        ("FITC-A", "CD3"),
        ("PE-A", "CD25"),
        ("PerCP-Cy5-5-A", "CD4"),
        ("PE-Cy7-A", "CD56"),
        ("APC-A", "Ki67"),
        ("APC-H7-A", "CD8"),
        ("BV421-A", "CD127"),
        ("BV510-A", "Viability"),
        ("BV605-A", "CD16"),
        ("Time", ""),
    ),
}
PANELS["tumor"] = PANELS["blood"][:-1] + (("BV786-A", "CD45"), ("Time", ""))

#: Canonical populations per panel, parents before children.
POPULATIONS: dict[str, tuple[str, ...]] = {
    "blood": tuple(p for p in CANONICAL_POPULATIONS if p != "leukocytes"),
    "tumor": tuple(CANONICAL_POPULATIONS),
}

#: Parent gate of each population in the default trees (None: top level, parent = all events).
_PARENT: dict[str, dict[str, str | None]] = {
    "blood": {
        "lymphocytes": None,
        "singlets": "lymphocytes",
        "live": "singlets",
        "cd3": "live",
        "cd4": "cd3",
        "cd8": "cd3",
        "treg": "cd4",
        "cd3_neg": "live",
        "nk": "cd3_neg",
        "cd8_ki67": "cd8",
    },
}
_PARENT["tumor"] = {
    **_PARENT["blood"],
    "leukocytes": "live",
    "cd3": "leukocytes",
    "cd3_neg": "leukocytes",
}

#: Every label an event can have (index = code in :attr:`SimulatedSample.cell_type`).
CELL_TYPES: tuple[str, ...] = (
    "debris",
    "cd4_conv",
    "treg",
    "cd8_ki67neg",
    "cd8_ki67pos",
    "nk",
    "b",
    "t_other",
    "monocyte",
    "granulocyte",
    "tumor_large",
    "tumor_small",
)
_LYMPHOID = ("cd4_conv", "treg", "cd8_ki67neg", "cd8_ki67pos", "nk", "b", "t_other")
_LYMPH_SCATTER = _LYMPHOID + ("tumor_small",)

#: Cell types making up each population (among live singlets of lymphocyte scatter);
#: ``cd3_neg`` is a gate of the trees, not a canonical population.
_POPULATION_TYPES: dict[str, tuple[str, ...]] = {
    "leukocytes": _LYMPHOID,
    "cd3_neg": ("nk", "b"),
    "cd3": ("cd4_conv", "treg", "cd8_ki67neg", "cd8_ki67pos", "t_other"),
    "cd4": ("cd4_conv", "treg"),
    "cd8": ("cd8_ki67neg", "cd8_ki67pos"),
    "treg": ("treg",),
    "nk": ("nk",),
    "cd8_ki67": ("cd8_ki67pos",),
}

#: Visits per compartment: (visit, cycle, day); the first is baseline.
VISITS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "blood": (("C1D1", 1, 1), ("C1D8", 1, 8), ("C2D1", 2, 1), ("C3D1", 3, 1), ("C5D1", 5, 1)),
    "tumor": (("C1D1", 1, 1), ("C2D1", 2, 1)),
}
_CYCLE_DAYS = 21

#: Typical baseline blood abundances, cells per microlitre (lymphocyte subsets sum to ~1,450).
_BLOOD_BASELINE: dict[str, float] = {
    "cd4_conv": 590.0,
    "treg": 45.0,
    "cd8_ki67neg": 330.0,
    "cd8_ki67pos": 13.0,
    "nk": 180.0,
    "b": 200.0,
    "t_other": 90.0,
    "monocyte": 450.0,
    "granulocyte": 120.0,  # residual after density separation
}

#: Fold change of the typical patient's abundance per microlitre, by arm and visit (1 if absent).
BLOOD_EFFECTS: dict[str, dict[str, dict[str, float]]] = {
    "BEMPEG+NIVO": {
        "C1D8": {
            "cd4_conv": 1.3,
            "treg": 3.2,
            "cd8_ki67neg": 2.4,
            "cd8_ki67pos": 12.0,
            "nk": 3.0,
            "t_other": 1.6,
            "monocyte": 1.2,
        },
        "C2D1": {
            "cd4_conv": 1.15,
            "treg": 2.6,
            "cd8_ki67neg": 1.5,
            "cd8_ki67pos": 3.0,
            "nk": 1.8,
            "t_other": 1.2,
        },
        "C3D1": {
            "cd4_conv": 1.1,
            "treg": 2.5,
            "cd8_ki67neg": 1.2,
            "cd8_ki67pos": 1.8,
            "nk": 1.5,
            "t_other": 1.1,
        },
        "C5D1": {
            "cd4_conv": 1.1,
            "treg": 2.4,
            "cd8_ki67neg": 1.1,
            "cd8_ki67pos": 1.5,
            "nk": 1.4,
            "t_other": 1.05,
        },
    },
    "NIVO": {
        "C1D8": {"cd8_ki67neg": 1.05, "cd8_ki67pos": 1.5},
        "C2D1": {"cd8_ki67neg": 1.05, "cd8_ki67pos": 1.4},
        "C3D1": {"cd8_ki67pos": 1.3},
        "C5D1": {"cd8_ki67pos": 1.2},
    },
}

#: Typical baseline tumor composition, relative units (tumor cells 100, infiltrate ~25% of cells).
_TUMOR_BASELINE: dict[str, float] = {
    "cd4_conv": 7.3,
    "treg": 2.0,
    "cd8_ki67neg": 7.6,
    "cd8_ki67pos": 0.9,
    "nk": 0.9,
    "b": 1.3,
    "t_other": 1.1,
    "monocyte": 11.0,
    "granulocyte": 1.5,
    "tumor_large": 75.0,
    "tumor_small": 25.0,
}

#: Fold change of the typical tumor composition on treatment, the same in both arms.
TUMOR_EFFECTS: dict[str, dict[str, float]] = {
    "C2D1": {
        "cd4_conv": 1.1,
        "cd8_ki67neg": 1.8,
        "cd8_ki67pos": 3.0,
        "nk": 1.4,
        "t_other": 1.2,
        "monocyte": 1.2,
        "tumor_large": 0.85,
        "tumor_small": 0.85,
    },
}

#: Sample-level rates: (low, high) of a uniform draw; the typical patient has the midpoint.
_RATES: dict[str, dict[str, tuple[float, float]]] = {
    "blood": {"debris": (0.04, 0.12), "dead": (0.02, 0.10), "doublet": (0.015, 0.045)},
    "tumor": {"debris": (0.10, 0.25), "dead": (0.08, 0.20), "doublet": (0.03, 0.06)},
}

#: TEXT keywords whose values identify a person or site; each contains :data:`CANARY`.
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "$SRC",
    "$OP",
    "$FIL",
    "$INST",
    "$COM",
    "$SMNO",
    "PATIENT ID",
)

# --- signal model ---------------------------------------------------------------------------

# Scatter per cell type: FSC-A median, natural-log sd, SSC-A median, natural-log sd.
_SCATTER: dict[str, tuple[float, float, float, float]] = {
    "debris": (7000.0, 0.45, 5000.0, 0.6),
    "cd4_conv": (52000.0, 0.10, 16000.0, 0.15),
    "treg": (53000.0, 0.10, 16500.0, 0.15),
    "cd8_ki67neg": (52000.0, 0.10, 16000.0, 0.15),
    "cd8_ki67pos": (56000.0, 0.10, 17500.0, 0.15),
    "nk": (57000.0, 0.10, 18000.0, 0.15),
    "b": (50000.0, 0.10, 14500.0, 0.15),
    "t_other": (52000.0, 0.10, 16000.0, 0.15),
    "monocyte": (90000.0, 0.12, 76000.0, 0.15),
    "granulocyte": (115000.0, 0.12, 150000.0, 0.15),
    "tumor_large": (175000.0, 0.18, 140000.0, 0.20),
    "tumor_small": (54000.0, 0.10, 17000.0, 0.15),
}
_SINGLET_HEIGHT_RATIO = 0.85  # FSC-H / FSC-A of single cells
_SINGLET_RATIO_SD = 0.035  # natural-log sd of that ratio
_SCATTER_MAX = 262143.0

# Marker expression per cell type: marker -> (median, log10 sd, fraction positive). Absent = negative.
_EXPRESSION: dict[str, dict[str, tuple[float, float, float]]] = {
    "debris": {"Viability": (6000.0, 0.35, 0.5)},
    "cd4_conv": {
        "CD3": (4000.0, 0.18, 1.0),
        "CD4": (5500.0, 0.18, 1.0),
        "CD127": (3000.0, 0.20, 0.85),
        "CD25": (80.0, 0.30, 1.0),
        "CD45": (12000.0, 0.18, 1.0),
    },
    "treg": {
        "CD3": (4000.0, 0.18, 1.0),
        "CD4": (5000.0, 0.18, 1.0),
        "CD25": (5000.0, 0.20, 1.0),
        "CD127": (60.0, 0.25, 1.0),
        "CD45": (12000.0, 0.18, 1.0),
    },
    "cd8_ki67neg": {
        "CD3": (4500.0, 0.18, 1.0),
        "CD8": (8000.0, 0.20, 1.0),
        "CD127": (2000.0, 0.25, 0.7),
        "CD56": (2500.0, 0.25, 0.05),
        "CD45": (13000.0, 0.18, 1.0),
    },
    "cd8_ki67pos": {
        "CD3": (4500.0, 0.18, 1.0),
        "CD8": (8000.0, 0.20, 1.0),
        "Ki67": (3000.0, 0.22, 1.0),
        "CD25": (300.0, 0.30, 1.0),
        "CD127": (800.0, 0.30, 0.5),
        "CD45": (13000.0, 0.18, 1.0),
    },
    "nk": {
        "CD56": (4000.0, 0.22, 1.0),
        "CD16": (6000.0, 0.25, 0.9),
        "CD8": (800.0, 0.30, 0.35),
        "CD45": (11000.0, 0.18, 1.0),
    },
    "b": {"CD45": (10000.0, 0.18, 1.0)},
    "t_other": {
        "CD3": (4000.0, 0.18, 1.0),
        "CD56": (3000.0, 0.25, 0.2),
        "CD127": (2000.0, 0.25, 0.8),
        "CD45": (12000.0, 0.18, 1.0),
    },
    "monocyte": {
        "CD4": (1200.0, 0.20, 1.0),
        "CD16": (3000.0, 0.30, 0.15),
        "CD45": (9000.0, 0.18, 1.0),
    },
    "granulocyte": {"CD16": (20000.0, 0.25, 0.95), "CD45": (5000.0, 0.20, 1.0)},
    "tumor_large": {"CD56": (2500.0, 0.30, 0.3)},
    "tumor_small": {"CD56": (2500.0, 0.30, 0.3)},
}
_DEAD_VIABILITY = (15000.0, 0.22)  # median, log10 sd of the dye in dead cells
_DEAD_MARKER_DIMMING = 0.7
_DEAD_SCATTER = (0.9, 1.05)  # FSC, SSC factors
_AUTOFLUORESCENCE_SCALE: dict[str, float] = {
    "debris": 0.5,
    "monocyte": 3.0,
    "granulocyte": 5.0,
    "tumor_large": 5.0,
    "tumor_small": 3.0,
}  # lymphocytes 1

# Per fluorescence detector: electronic noise sd, lymphocyte autofluorescence.
_DETECTOR: dict[str, tuple[float, float]] = {
    "FITC-A": (35.0, 40.0),
    "PE-A": (45.0, 25.0),
    "PerCP-Cy5-5-A": (40.0, 20.0),
    "PE-Cy7-A": (45.0, 10.0),
    "APC-A": (25.0, 8.0),
    "APC-H7-A": (35.0, 6.0),
    "BV421-A": (30.0, 35.0),
    "BV510-A": (40.0, 45.0),
    "BV605-A": (40.0, 20.0),
    "BV786-A": (50.0, 10.0),
}
_SPREADING = 1.5  # photon-counting variance per unit of spilled signal

# Spillover of each fluorochrome's detector into the others (diagonal 1), a four-laser analyser.
_SPILL: dict[str, dict[str, float]] = {
    "FITC-A": {"PE-A": 0.18, "PerCP-Cy5-5-A": 0.03, "PE-Cy7-A": 0.005},
    "PE-A": {"FITC-A": 0.01, "PerCP-Cy5-5-A": 0.12, "PE-Cy7-A": 0.02, "BV605-A": 0.03},
    "PerCP-Cy5-5-A": {"PE-Cy7-A": 0.15, "APC-A": 0.02, "APC-H7-A": 0.04, "BV786-A": 0.02},
    "PE-Cy7-A": {"PerCP-Cy5-5-A": 0.03, "APC-H7-A": 0.05, "BV786-A": 0.08},
    "APC-A": {"PerCP-Cy5-5-A": 0.01, "APC-H7-A": 0.12},
    "APC-H7-A": {"APC-A": 0.03, "PE-Cy7-A": 0.08, "BV786-A": 0.04},
    "BV421-A": {"FITC-A": 0.02, "BV510-A": 0.25, "BV605-A": 0.03},
    "BV510-A": {"BV421-A": 0.01, "FITC-A": 0.05, "BV605-A": 0.10},
    "BV605-A": {"PE-A": 0.05, "PerCP-Cy5-5-A": 0.02, "BV510-A": 0.01, "BV786-A": 0.06},
    "BV786-A": {"PE-Cy7-A": 0.05, "APC-H7-A": 0.02, "BV605-A": 0.01},
}
_VOLTAGES: dict[str, int] = {
    "FSC-A": 350,
    "FSC-H": 350,
    "SSC-A": 260,
    "FITC-A": 480,
    "PE-A": 520,
    "PerCP-Cy5-5-A": 600,
    "PE-Cy7-A": 560,
    "APC-A": 610,
    "APC-H7-A": 580,
    "BV421-A": 420,
    "BV510-A": 440,
    "BV605-A": 470,
    "BV786-A": 520,
}
_EVENT_RATE = 2500.0  # events per second
_TIMESTEP = 0.01  # seconds per unit of the Time channel


def _check_panel(panel: str) -> None:
    if panel not in PANELS:
        raise ConfigError(f"unknown panel {panel!r}: use one of {', '.join(PANELS)}")


def _fluorescence_channels(panel: str) -> list[str]:
    _check_panel(panel)
    return [name for name, marker in PANELS[panel] if marker]


def spillover_matrix(panel: str = "blood") -> pd.DataFrame:
    """The panel's spillover matrix, as written to ``$SPILLOVER``.

    Parameters
    ----------
    panel
        ``"blood"`` or ``"tumor"``.

    Returns
    -------
    Square DataFrame over the fluorescence detectors (``$PnN``); row ``i`` is how the
    fluorochrome read in detector ``i`` spills into every detector (``observed = unmixed @ S``).
    """
    detectors = _fluorescence_channels(panel)
    return pd.DataFrame(_spill_array(panel), index=detectors, columns=detectors)


@cache
def _spill_array(panel: str) -> np.ndarray:
    detectors = _fluorescence_channels(panel)
    matrix = np.eye(len(detectors))
    for i, source in enumerate(detectors):
        for target, value in _SPILL[source].items():
            if target in detectors:
                matrix[i, detectors.index(target)] = value
    matrix.flags.writeable = False
    return matrix


@dataclass(frozen=True)
class _PanelModel:
    """Per-panel parameters; fluorescence tables are (channel, cell type code)."""

    channels: tuple[str, ...]
    markers: tuple[str, ...]
    fluorescence: tuple[str, ...]
    fluorescence_rows: slice
    spill: np.ndarray
    spill_off_diagonal: np.ndarray
    median: np.ndarray
    log_sd: np.ndarray
    fraction_positive: np.ndarray
    autofluorescence_base: np.ndarray
    autofluorescence_scale: np.ndarray
    noise_var: np.ndarray
    scatter: np.ndarray
    lymph_scatter: np.ndarray
    viability: int


@cache
def _panel_model(panel: str) -> _PanelModel:
    _check_panel(panel)
    fluorescence = _fluorescence_channels(panel)
    markers = [dict(PANELS[panel])[channel] for channel in fluorescence]
    first = [name for name, _ in PANELS[panel]].index(fluorescence[0])
    rows = slice(first, first + len(fluorescence))  # fluorescence channels are consecutive
    assert [name for name, _ in PANELS[panel]][rows] == fluorescence
    spill = _spill_array(panel).astype(np.float32)
    n_types, n_fluor = len(CELL_TYPES), len(fluorescence)
    median = np.zeros((n_types, n_fluor), dtype=np.float32)
    log_sd = np.zeros((n_types, n_fluor), dtype=np.float32)
    fraction = np.zeros((n_types, n_fluor), dtype=np.float32)
    for t, cell_type in enumerate(CELL_TYPES):
        for j, marker in enumerate(markers):
            if marker in _EXPRESSION[cell_type]:
                median[t, j], log_sd[t, j], fraction[t, j] = _EXPRESSION[cell_type][marker]
    base_af = np.array([_DETECTOR[c][1] for c in fluorescence], dtype=np.float32)
    scale = np.array([_AUTOFLUORESCENCE_SCALE.get(t, 1.0) for t in CELL_TYPES], dtype=np.float32)
    off_diagonal = spill.copy()
    np.fill_diagonal(off_diagonal, 0.0)
    return _PanelModel(
        channels=tuple(name for name, _ in PANELS[panel]),
        markers=tuple(marker for _, marker in PANELS[panel]),
        fluorescence=tuple(fluorescence),
        fluorescence_rows=rows,
        spill=spill,
        spill_off_diagonal=off_diagonal * _SPREADING,
        median=np.ascontiguousarray(median.T),
        log_sd=np.ascontiguousarray(log_sd.T) * np.float32(np.log(10.0)),
        fraction_positive=np.ascontiguousarray(fraction.T),
        autofluorescence_base=base_af[:, None],
        autofluorescence_scale=scale,
        noise_var=np.array([[_DETECTOR[c][0] ** 2] for c in fluorescence], dtype=np.float32),
        scatter=np.array([_SCATTER[t] for t in CELL_TYPES], dtype=np.float32),
        lymph_scatter=np.array([t in _LYMPH_SCATTER for t in CELL_TYPES]),
        viability=markers.index("Viability"),
    )


@dataclass
class SimulatedSample:
    """One simulated sample: the file's events, the signal before spillover and every label.

    Attributes
    ----------
    panel
        ``"blood"`` or ``"tumor"``.
    channels, markers
        ``$PnN`` and ``$PnS`` (``""`` for scatter and time) in file order.
    events
        ``(n_events, n_channels)`` float32 as written to the file (fluorescence with spillover).
    unmixed
        Same shape: the signal before spillover (scatter and time identical to ``events``).
    spill
        The spillover matrix written as ``$SPILLOVER``.
    cell_type
        Code of each event's cell type (index into :data:`CELL_TYPES`).
    dead, doublet
        Whether each event is a dead cell / a doublet.
    """

    panel: str
    channels: list[str]
    markers: list[str]
    events: np.ndarray
    unmixed: np.ndarray
    spill: pd.DataFrame
    cell_type: np.ndarray
    dead: np.ndarray
    doublet: np.ndarray

    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    def truth_membership(self) -> dict[str, np.ndarray]:
        """Boolean true membership of every event in each canonical population of the panel."""
        lymph = _panel_model(self.panel).lymph_scatter[self.cell_type]
        singlets = lymph & ~self.doublet
        live = singlets & ~self.dead
        membership = {"lymphocytes": lymph, "singlets": singlets, "live": live}
        for population in POPULATIONS[self.panel][3:]:
            codes = [CELL_TYPES.index(t) for t in _POPULATION_TYPES[population]]
            membership[population] = live & np.isin(self.cell_type, codes)
        return membership

    def truth_counts(self) -> dict[str, int]:
        """True event count of each canonical population of the panel (see module docstring)."""
        return _truth_counts(self.panel, self.cell_type, self.dead, self.doublet)


def _truth_counts(
    panel: str, cell_type: np.ndarray, dead: np.ndarray, doublet: np.ndarray
) -> dict[str, int]:
    n_types = len(CELL_TYPES)
    # one bincount over (type, dead, doublet) gives every population as a sum of cells
    table = np.bincount(
        cell_type.astype(np.int64) * 4 + dead * 2 + doublet, minlength=n_types * 4
    ).reshape(n_types, 4)
    all_events = table.sum(axis=1)
    live_singlets = table[:, 0]
    lymph = _panel_model(panel).lymph_scatter
    counts = {
        "lymphocytes": int(all_events[lymph].sum()),
        "singlets": int(table[lymph][:, [0, 2]].sum()),
        "live": int(live_singlets[lymph].sum()),
    }
    for population in POPULATIONS[panel][3:]:
        codes = [CELL_TYPES.index(t) for t in _POPULATION_TYPES[population]]
        counts[population] = int(live_singlets[codes].sum())
    return counts


def typical_composition(panel: str = "blood") -> dict[str, float]:
    """Probability of each cell type among the events of the typical baseline sample.

    Parameters
    ----------
    panel
        ``"blood"`` or ``"tumor"``.

    Returns
    -------
    Mapping cell type -> probability (sums to 1, includes ``"debris"``).
    """
    _check_panel(panel)
    baseline = _BLOOD_BASELINE if panel == "blood" else _TUMOR_BASELINE
    debris = float(np.mean(_RATES[panel]["debris"]))
    return _composition(baseline, debris)


def _composition(abundance: Mapping[str, float], debris: float) -> dict[str, float]:
    total = float(sum(abundance.values()))
    probabilities = dict.fromkeys(CELL_TYPES, 0.0)
    probabilities["debris"] = debris
    for cell_type, value in abundance.items():
        probabilities[cell_type] = (1.0 - debris) * float(value) / total
    return probabilities


def _as_generator(seed: int | np.random.SeedSequence | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    # SFC64: the fastest of numpy's generators for the millions of normals a file needs
    return np.random.Generator(np.random.SFC64(seed))


def simulate_sample(
    *,
    panel: str = "blood",
    n_events: int = 20_000,
    composition: Mapping[str, float] | None = None,
    dead_rate: float | None = None,
    doublet_rate: float | None = None,
    gains: Mapping[str, float] | None = None,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
) -> SimulatedSample:
    """Simulate the events of one sample, fully vectorized.

    Parameters
    ----------
    panel
        ``"blood"`` or ``"tumor"`` (channels of :data:`PANELS`).
    n_events
        Number of events.
    composition
        Probability of each cell type of :data:`CELL_TYPES` (missing types: 0; normalised).
        Default: :func:`typical_composition`.
    dead_rate, doublet_rate
        Probability that a cell is dead / a doublet. Default: the typical rates of the panel.
    gains
        Intensity factor per channel (acquisition batch shift): fluorescence by detector
        ``$PnN``, ``"FSC-A"`` scales FSC-A and FSC-H, ``"SSC-A"`` scales SSC-A. Default: 1.
    seed
        Seed, SeedSequence or Generator of this sample's random stream.

    Returns
    -------
    SimulatedSample
    """
    model = _panel_model(panel)
    if n_events < 1:
        raise ConfigError(f"n_events must be a positive number of events, not {n_events}")
    rng = _as_generator(seed)
    rates = _RATES[panel]
    dead_rate = float(np.mean(rates["dead"])) if dead_rate is None else float(dead_rate)
    doublet_rate = float(np.mean(rates["doublet"])) if doublet_rate is None else float(doublet_rate)
    for label, rate in (("dead_rate", dead_rate), ("doublet_rate", doublet_rate)):
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"{label} must be a probability in [0, 1), not {rate}")
    composition = typical_composition(panel) if composition is None else composition
    unknown = set(composition) - set(CELL_TYPES)
    if unknown:
        raise ConfigError(f"unknown cell type(s) {sorted(unknown)}: use those of CELL_TYPES")
    p = np.array([max(float(composition.get(t, 0.0)), 0.0) for t in CELL_TYPES])
    if p.sum() <= 0:
        raise ConfigError("composition must give a positive probability to some cell type")
    gains = dict(gains or {})

    # Events are generated grouped by cell type (exact multinomial counts), so per-type
    # parameters broadcast instead of being gathered per event, then shuffled into
    # acquisition order.
    counts = rng.multinomial(n_events, p / p.sum())
    cell_type = np.repeat(np.arange(len(CELL_TYPES), dtype=np.int8), counts)
    is_cell = cell_type != 0
    dead = is_cell & (rng.random(n_events, dtype=np.float32) < dead_rate)
    doublet = is_cell & (rng.random(n_events, dtype=np.float32) < doublet_rate)

    blocks = _blocks(counts)
    fsc_a, fsc_h, ssc_a = _scatter(model, rng, blocks, dead)
    fluorescence = _fluorescence(model, rng, blocks, cell_type, dead)
    _add_doublet_partners(model, rng, cell_type, doublet, fsc_a, fsc_h, ssc_a, fluorescence)

    # shuffle into acquisition order while assembling the channel-major file rows, then hand
    # out (event, channel) views
    order = rng.permutation(n_events)
    cell_type, dead, doublet = cell_type[order], dead[order], doublet[order]
    events = np.empty((len(model.channels), n_events), dtype=np.float32)
    unmixed = np.empty_like(events)
    rows = model.fluorescence_rows
    np.take(fluorescence, order, axis=1, out=unmixed[rows], mode="clip")
    unmixed[rows] *= np.array([[gains.get(c, 1.0)] for c in model.fluorescence], dtype=np.float32)
    _mix(unmixed[rows], model.spill, out=events[rows])
    for channel, values, gain in (
        ("FSC-A", fsc_a, gains.get("FSC-A", 1.0)),
        ("FSC-H", fsc_h, gains.get("FSC-A", 1.0)),
        ("SSC-A", ssc_a, gains.get("SSC-A", 1.0)),
    ):
        row = unmixed[model.channels.index(channel)]
        np.take(values, order, out=row, mode="clip")
        row *= np.float32(gain)
        np.clip(row, 0.0, _SCATTER_MAX, out=row)
    time_row = unmixed[model.channels.index("Time")]
    np.cumsum(rng.exponential(1.0 / (_EVENT_RATE * _TIMESTEP), n_events), out=time_row)
    scatter_rows = [i for i in range(len(model.channels)) if not model.markers[i]]
    events[scatter_rows] = unmixed[scatter_rows]
    return SimulatedSample(
        panel=panel,
        channels=list(model.channels),
        markers=list(model.markers),
        events=events.T,
        unmixed=unmixed.T,
        spill=spillover_matrix(panel),
        cell_type=cell_type,
        dead=dead,
        doublet=doublet,
    )


def _blocks(counts: np.ndarray) -> list[tuple[int, int, int]]:
    """(cell type code, start, stop) of each non-empty run of the type-sorted events."""
    stops = np.cumsum(counts)
    return [(t, int(stops[t] - counts[t]), int(stops[t])) for t in np.flatnonzero(counts)]


def _scatter(
    model: _PanelModel,
    rng: np.random.Generator,
    blocks: list[tuple[int, int, int]],
    dead: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = dead.size
    z = rng.standard_normal((3, n), dtype=np.float32)
    fsc_a, ssc_a = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    for t, start, stop in blocks:
        fsc_median, fsc_sd, ssc_median, ssc_sd = model.scatter[t]
        z0, z1 = z[0, start:stop], z[1, start:stop]
        fsc_a[start:stop] = fsc_median * np.exp(fsc_sd * z0)
        # larger cells scatter more to the side too: correlate FSC and SSC within a population
        ssc_a[start:stop] = ssc_median * np.exp(ssc_sd * (0.5 * z0 + 0.866 * z1))
    fsc_a[dead] *= _DEAD_SCATTER[0]
    ssc_a[dead] *= _DEAD_SCATTER[1]
    fsc_h = fsc_a * (_SINGLET_HEIGHT_RATIO * np.exp(_SINGLET_RATIO_SD * z[2]))
    return fsc_a, fsc_h, ssc_a


def _fluorescence(
    model: _PanelModel,
    rng: np.random.Generator,
    blocks: list[tuple[int, int, int]],
    cell_type: np.ndarray,
    dead: np.ndarray,
) -> np.ndarray:
    """Unmixed fluorescence, channel-major ``(n_channels, n_events)``."""
    n, m = cell_type.size, len(model.fluorescence)
    signal = np.zeros((m, n), dtype=np.float32)
    for t, start, stop in blocks:
        expressed = np.flatnonzero(model.fraction_positive[:, t])
        if expressed.size == 0:
            continue
        size = stop - start
        z = rng.standard_normal((expressed.size, size), dtype=np.float32)
        values = model.median[expressed, t, None] * np.exp(model.log_sd[expressed, t, None] * z)
        for row, channel in enumerate(expressed):
            fraction = model.fraction_positive[channel, t]
            if fraction < 1.0:  # a subset of the type carries the marker
                values[row] *= rng.random(size, dtype=np.float32) < fraction
        signal[expressed, start:stop] = values
    # dead cells: bright viability dye, dimmer antibody staining
    signal[:, dead] *= np.float32(_DEAD_MARKER_DIMMING)
    n_dead = int(np.count_nonzero(dead))
    signal[model.viability, dead] = _DEAD_VIABILITY[0] * np.exp(
        np.float32(_DEAD_VIABILITY[1] * np.log(10.0))
        * rng.standard_normal(n_dead, dtype=np.float32)
    )
    # autofluorescence: one brightness per event, shared by all detectors
    brightness = np.exp(np.float32(0.35) * rng.standard_normal(n, dtype=np.float32))
    brightness *= model.autofluorescence_scale[cell_type]
    autofluorescence = model.autofluorescence_base * brightness
    # noise: electronic, plus spreading from photons of other fluorochromes spilling in
    variance = model.noise_var + _mix(signal, model.spill_off_diagonal)
    noise = np.sqrt(variance) * rng.standard_normal((m, n), dtype=np.float32)
    signal += autofluorescence
    signal += noise
    return signal


def _mix(x: np.ndarray, matrix: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """``(x.T @ matrix).T`` for channel-major ``x``, summed in a fixed order without BLAS.

    The matrices are small and sparse; this is faster than a threaded BLAS call on a shared
    machine and gives the same bits whatever the thread settings. ``out`` must not overlap ``x``.
    """
    out = np.empty_like(x) if out is None else out
    term = np.empty_like(x[0])
    for j in range(matrix.shape[1]):
        sources = np.flatnonzero(matrix[:, j])
        if sources.size == 0:
            out[j] = 0.0
            continue
        np.multiply(x[sources[0]], matrix[sources[0], j], out=out[j])
        for k in sources[1:]:
            np.multiply(x[k], matrix[k, j], out=term)
            out[j] += term
    return out


def _add_doublet_partners(
    model: _PanelModel,
    rng: np.random.Generator,
    cell_type: np.ndarray,
    doublet: np.ndarray,
    fsc_a: np.ndarray,
    fsc_h: np.ndarray,
    ssc_a: np.ndarray,
    fluorescence: np.ndarray,
) -> None:
    """Give each doublet part of a partner cell's light (lymphocytes pair with lymphocytes)."""
    lymph = model.lymph_scatter[cell_type]
    cells = np.flatnonzero(cell_type != 0)
    for group, pool in ((doublet & lymph, np.flatnonzero(lymph)), (doublet & ~lymph, cells)):
        index = np.flatnonzero(group)
        if index.size == 0 or pool.size == 0:
            continue
        partner = pool[rng.integers(0, pool.size, index.size)]
        overlap = rng.uniform(0.5, 1.0, index.size).astype(np.float32)
        fsc_h[index] = np.maximum(fsc_h[index], overlap * fsc_h[partner]) * (1 + 0.1 * overlap)
        fsc_a[index] += overlap * fsc_a[partner]
        ssc_a[index] += overlap * ssc_a[partner]
        fluorescence[:, index] += overlap * fluorescence[:, partner]


def _spill_keyword(spill: pd.DataFrame) -> str:
    values = ",".join(f"{v:.6g}" for v in spill.to_numpy().ravel())
    return f"{spill.shape[0]},{','.join(spill.columns)},{values}"


def write_fcs(
    sample: SimulatedSample, path: str | Path, *, keywords: Mapping[str, str] | None = None
) -> Path:
    """Write a simulated sample as FCS 3.1 (float32, little-endian) with FlowIO.

    Parameters
    ----------
    sample
        From :func:`simulate_sample`.
    path
        File to write (parent folders are created).
    keywords
        Extra TEXT keywords (``$`` keywords and others), e.g. the site's identifiers.

    Returns
    -------
    The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"$SPILLOVER": _spill_keyword(sample.spill), "$TIMESTEP": f"{_TIMESTEP:g}"}
    for i, channel in enumerate(sample.channels, start=1):
        metadata[f"$P{i}R"] = "262144"
        if channel != "Time":
            metadata[f"$P{i}V"] = str(_VOLTAGES[channel])
    metadata.update(keywords or {})
    data = array("f")
    # event-major rows, little-endian float32 as $BYTEORD 1,2,3,4 says; no intermediate copy
    data.frombytes(memoryview(np.ascontiguousarray(sample.events, dtype="<f4")).cast("B"))
    with open(path, "wb") as handle:
        flowio.create_fcs(
            handle,
            data,
            sample.channels,
            opt_channel_names=sample.markers,
            metadata_dict=metadata,
        )
    return path


# --- effect model -----------------------------------------------------------------------------


def _visit_abundance(compartment: str, arm: str, visit: str) -> dict[str, float]:
    """Typical (noise-free) abundances at a visit."""
    if compartment == "blood":
        effect = BLOOD_EFFECTS[arm].get(visit, {})
        baseline = _BLOOD_BASELINE
    else:
        effect = TUMOR_EFFECTS.get(visit, {})
        baseline = _TUMOR_BASELINE
    return {t: v * effect.get(t, 1.0) for t, v in baseline.items()}


def _expected_fractions(
    panel: str, composition: Mapping[str, float], dead_rate: float, doublet_rate: float
) -> dict[str, float]:
    """Expected fraction of all events in each population and cd3_neg (mirrors the sampler)."""
    lymph = sum(composition.get(t, 0.0) for t in _LYMPH_SCATTER)
    kept = (1.0 - doublet_rate) * (1.0 - dead_rate)
    fractions = {
        "lymphocytes": lymph,
        "singlets": lymph * (1.0 - doublet_rate),
        "live": lymph * kept,
    }
    for population in (*POPULATIONS[panel][3:], "cd3_neg"):
        fractions[population] = kept * sum(
            composition.get(t, 0.0) for t in _POPULATION_TYPES[population]
        )
    return fractions


def _typical_measures(compartment: str, arm: str, visit: str) -> dict[str, dict[str, float]]:
    """Expected ``freq_parent`` (and, in blood, ``per_ul``) of every population, typical patient."""
    rates = {k: float(np.mean(v)) for k, v in _RATES[compartment].items()}
    abundance = _visit_abundance(compartment, arm, visit)
    fractions = _expected_fractions(
        compartment, _composition(abundance, rates["debris"]), rates["dead"], rates["doublet"]
    )
    parents = _PARENT[compartment]
    populations = POPULATIONS[compartment]
    measures = {
        "freq_parent": {
            p: fractions[p] / (fractions[parents[p]] if parents[p] else 1.0) for p in populations
        }
    }
    if compartment == "blood":
        # per_ul = count / live x lymphocytes_per_ul, lymphocytes_per_ul = sum of the subsets
        per_live = sum(abundance[t] for t in _LYMPHOID) / fractions["live"]
        measures["per_ul"] = {p: fractions[p] * per_live for p in populations}
    return measures


def effect_model() -> pd.DataFrame:
    """True fold change versus baseline of the typical noise-free patient.

    Returns
    -------
    Tidy DataFrame with columns arm, compartment, population, visit, measure, fold_change:
    measure ``per_ul`` (blood; count / live x lymphocytes_per_ul) and ``freq_parent`` (both
    compartments; count / count of the parent gate in the default tree, all events for
    lymphocytes, cd3_neg for nk). Baseline rows have fold change 1.
    """
    rows = []
    for arm in ARMS:
        for compartment in ("blood", "tumor"):
            visits = [visit for visit, _, _ in VISITS[compartment]]
            measures = {visit: _typical_measures(compartment, arm, visit) for visit in visits}
            baseline = measures[visits[0]]
            for measure in ("per_ul", "freq_parent"):
                if measure not in baseline:
                    continue
                for population in POPULATIONS[compartment]:
                    for visit in visits:
                        value = measures[visit][measure][population] / baseline[measure][population]
                        rows.append((arm, compartment, population, visit, measure, round(value, 6)))
    return pd.DataFrame(
        rows, columns=["arm", "compartment", "population", "visit", "measure", "fold_change"]
    )


# --- trial design ---------------------------------------------------------------------------

_FIRST_NAMES = (
    "Jane", "John", "Maria", "Ahmed", "Wei", "Olga", "Pierre", "Aiko", "Carlos", "Fatima",
    "Lars", "Priya", "Tomas", "Grace", "Kofi", "Ingrid", "Mateo", "Yuki", "Sara", "Noah",
)  # fmt: skip
_LAST_NAMES = (
    "Doe", "Roe", "Smith", "Garcia", "Chen", "Ivanova", "Martin", "Tanaka", "Silva", "Khan",
    "Larsen", "Patel", "Novak", "Okafor", "Berg", "Rossi", "Kowalski", "Murphy", "Haddad", "Moreau",
)  # fmt: skip
_SITES = ("Northbridge", "Lakeside", "Riverside", "Hillcrest", "Westbay", "Eastgate")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_RESPONSES = ("CR", "PR", "SD", "PD")
_RESPONSE_PROBABILITY = (0.08, 0.25, 0.27, 0.40)  # objective response rate 0.33
_DAYS_PER_MONTH = 30.4375
_BATCH_DAYS = 42  # samples are acquired in six-weekly batches


@dataclass(frozen=True)
class _SampleTask:
    """Everything one worker needs to write one file (small and picklable)."""

    sample_id: str
    panel: str
    n_events: int
    composition: tuple[float, ...]
    dead_rate: float
    doublet_rate: float
    gains: tuple[tuple[str, float], ...]
    keywords: tuple[tuple[str, str], ...]
    path: str
    seed: np.random.SeedSequence


@dataclass(frozen=True)
class TrialSummary:
    """What :func:`simulate_trial` wrote and how fast."""

    out: Path
    n_files: int
    n_events: int
    seconds: float

    @property
    def files_per_second(self) -> float:
        return self.n_files / self.seconds if self.seconds > 0 else float("inf")

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")


def _whole_number(label: str, value: object, *, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or a one-line ConfigError."""
    try:
        number = int(value)  # type: ignore[call-overload]
        ok = number == value and number >= minimum
    except (TypeError, ValueError):
        ok = False
    if not ok:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{label} must be {kind}, not {value!r}")
    return number


def _patients_per_arm(value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        first, second = pair  # type: ignore[misc]
        return (
            _whole_number("patients_per_arm", first, minimum=1),
            _whole_number("patients_per_arm", second, minimum=1),
        )
    except (TypeError, ValueError, ConfigError):
        raise ConfigError(
            f"patients_per_arm must be a positive integer or a pair of them, not {value!r}"
        ) from None


def _clinical(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Best response, progression-free and overall survival, and the day each patient stops."""
    response = rng.choice(len(_RESPONSES), size=n, p=_RESPONSE_PROBABILITY)
    u = rng.random(n)
    pfs_true = np.select(
        [response == 0, response == 1, response == 2],
        [
            8.0 + rng.exponential(40.0, n),
            4.0 + rng.exponential(16.0, n),
            2.8 + rng.exponential(5.0, n),
        ],
        default=0.6 + 2.0 * u,  # progression at or before the first scans
    )
    os_true = pfs_true + np.choose(response, [
        rng.exponential(80.0, n), rng.exponential(30.0, n), rng.exponential(14.0, n),
        rng.exponential(8.0, n),
    ])  # fmt: skip
    follow_up = rng.uniform(12.0, 36.0, n)
    toxicity_stop = np.where(rng.random(n) < 0.08, rng.uniform(10.0, 150.0, n), np.inf)
    off_study = np.minimum(np.minimum(pfs_true, follow_up) * _DAYS_PER_MONTH, toxicity_stop)
    return pd.DataFrame(
        {
            "best_response": np.array(_RESPONSES)[response],
            "pfs_months": np.round(np.minimum(pfs_true, follow_up), 2),
            "pfs_event": (pfs_true <= follow_up).astype(int),
            "os_months": np.round(np.minimum(os_true, follow_up), 2),
            "os_event": (os_true <= follow_up).astype(int),
            "off_study_day": off_study,
        }
    )


def _names(rng: np.random.Generator, n: int) -> list[tuple[str, str, int]]:
    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    number = rng.integers(0, 10000, n)
    return [(_FIRST_NAMES[f], _LAST_NAMES[s], int(k)) for f, s, k in zip(first, last, number)]


def _patient_factors(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Between-patient log-factors per cell type and compartment, and responsiveness."""
    blood_shared = 0.25 * rng.standard_normal(n)
    tumor_shared = 0.6 * rng.standard_normal(n)
    blood, tumor = {}, {}
    for cell_type in CELL_TYPES[1:]:
        individual = rng.standard_normal((2, n))
        if cell_type in _LYMPHOID:
            blood[cell_type] = blood_shared + 0.25 * individual[0]
            tumor[cell_type] = tumor_shared + 0.40 * individual[1]
        elif cell_type in ("monocyte", "granulocyte"):
            blood[cell_type] = (0.3 if cell_type == "monocyte" else 0.5) * individual[0]
            tumor[cell_type] = tumor_shared + 0.40 * individual[1]
        else:
            tumor[cell_type] = 0.2 * individual[1]
    return {
        "blood": blood,
        "tumor": tumor,
        "responsiveness": np.exp(0.3 * rng.standard_normal(n)),
    }


def _sample_abundance(
    rng: np.random.Generator,
    compartment: str,
    arm: str,
    visit: str,
    patient_log_factor: Mapping[str, float],
    responsiveness: float,
) -> dict[str, float]:
    if compartment == "blood":
        baseline, effect = _BLOOD_BASELINE, BLOOD_EFFECTS[arm].get(visit, {})
    else:
        baseline, effect = _TUMOR_BASELINE, TUMOR_EFFECTS.get(visit, {})
    visit_sd = 0.15 if compartment == "blood" else 0.25
    abundance = {}
    for cell_type, value in baseline.items():
        noise = (0.4 if cell_type == "granulocyte" else visit_sd) * rng.standard_normal()
        fold = effect.get(cell_type, 1.0) ** responsiveness
        abundance[cell_type] = value * fold * np.exp(patient_log_factor[cell_type] + noise)
    return abundance


def _date(day_number: int) -> str:
    day = pd.Timestamp("2019-01-01") + pd.Timedelta(days=int(day_number))
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def _clock(seconds: float) -> str:
    seconds = int(seconds) % 86400
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _site_keywords(
    rng: np.random.Generator,
    *,
    name: tuple[str, str, int],
    operator: tuple[str, str, int],
    site: str,
    visit: str,
    compartment: str,
    date_number: int,
    n_events: int,
) -> dict[str, str]:
    first, last, number = name
    record = f"{number:04d}{number * 7919 % 1000:03d}"  # a made-up hospital record number
    start = int(rng.integers(8 * 3600, 17 * 3600))
    return {
        "$CYT": "BD LSRFortessa",
        "$CYTSN": "H647800" + str(1 + (date_number // 365) % 3),
        "$SRC": f"{CANARY}-PATIENT-{first}-{last}-{number:04d}",
        "$OP": f"{CANARY}-OPERATOR-{operator[0]}-{operator[1]}",
        "$FIL": f"{CANARY}-{last}_{first}_{visit}_{compartment}.fcs",
        "$INST": f"{CANARY}-SITE-{site} Cancer Center",
        "$COM": f"{CANARY} {first} {last}, MRN {record}, {visit}",
        "$SMNO": f"{CANARY}-SPECIMEN-{last[:3].upper()}{number:04d}-{visit}",
        "PATIENT ID": f"{CANARY}-MRN-{record}",
        "$DATE": _date(date_number),
        "$BTIM": _clock(start),
        "$ETIM": _clock(start + n_events / _EVENT_RATE + 5),
        "CREATOR": "BD FACSDiva Software Version 8.0.1",
        "TUBE NAME": f"{compartment} panel",
        "APPLY COMPENSATION": "TRUE",
    }


def _attends(
    rng: np.random.Generator, compartment: str, v: int, study_day: int, off: float
) -> bool:
    """Whether a sample exists: on study at the visit and not missed (biopsies often are)."""
    draw = rng.random()
    if v > 0 and study_day >= off:
        return False
    if compartment == "blood":
        return v == 0 or draw >= 0.04
    return draw >= (0.08 if v == 0 else 0.25)


def _batch_gains(rng: np.random.Generator, batches: Sequence[str]) -> dict[str, dict[str, float]]:
    """Intensity factor per acquisition batch and channel: a few percent, scatter less."""
    channels = [c for c, _ in PANELS["tumor"] if c not in ("FSC-H", "Time")]
    sd = np.array([0.02 if c.startswith(("FSC", "SSC")) else 0.04 for c in channels])
    return {
        batch: dict(zip(channels, np.exp(sd * rng.standard_normal(len(sd))).tolist()))
        for batch in sorted(batches)
    }


def _design_trial(
    counts: tuple[int, int], *, events: int, tumor_events: int, seed: int, out: Path
) -> tuple[pd.DataFrame, pd.DataFrame, list[_SampleTask]]:
    """Patients, their samples (in sheet order: patient, compartment, visit) and one task each."""
    design_seed, samples_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(design_seed)
    n = sum(counts)
    width = max(3, len(str(n)))
    patients = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": [f"P{i + 1:0{width}d}" for i in range(n)],
                    "arm": rng.permutation(np.repeat(np.array(ARMS), counts)),
                }
            ),
            _clinical(rng, n),
        ],
        axis=1,
    )
    factors = _patient_factors(rng, n)
    enrolment = np.sort(rng.uniform(0.0, max(180.0, float(n)), n)).astype(int)
    names, operators = _names(rng, n), _names(rng, 4)
    site = rng.integers(0, len(_SITES), n)
    first_day = int(rng.integers(0, 365))

    rows, draws = [], []
    for i, (patient_id, arm, off_day) in enumerate(
        zip(patients["patient_id"], patients["arm"], patients["off_study_day"])
    ):
        for compartment in ("blood", "tumor"):
            for v, (visit, cycle, day) in enumerate(VISITS[compartment]):
                study_day = (cycle - 1) * _CYCLE_DAYS + day
                if not _attends(rng, compartment, v, study_day, off_day):
                    continue
                abundance = _sample_abundance(
                    rng,
                    compartment,
                    arm,
                    visit,
                    {t: f[i] for t, f in factors[compartment].items()},
                    factors["responsiveness"][i],
                )
                rates = {k: float(rng.uniform(*r)) for k, r in _RATES[compartment].items()}
                acquisition_day = int(enrolment[i]) + study_day - 1
                sample_id = f"{patient_id}_{visit}_{compartment}"
                n_events = events if compartment == "blood" else tumor_events
                keywords = _site_keywords(
                    rng,
                    name=names[i],
                    operator=operators[int(rng.integers(0, len(operators)))],
                    site=_SITES[site[i]],
                    visit=visit,
                    compartment=compartment,
                    date_number=first_day + acquisition_day,
                    n_events=n_events,
                )
                rows.append(
                    {
                        "sample_id": sample_id,
                        "patient_id": patient_id,
                        "arm": arm,
                        "visit": visit,
                        "cycle": cycle,
                        "day": day,
                        "compartment": compartment,
                        "panel": compartment,
                        "batch": f"B{1 + acquisition_day // _BATCH_DAYS:02d}",
                        "fcs": f"fcs/{sample_id}.fcs",
                        "lymphocytes_per_ul": (
                            round(sum(abundance[t] for t in _LYMPHOID), 1)
                            if compartment == "blood"
                            else np.nan
                        ),
                    }
                )
                draws.append((n_events, _composition(abundance, rates["debris"]), rates, keywords))

    sheet = pd.DataFrame(rows)
    gains = _batch_gains(rng, sheet["batch"].unique())
    tasks = [
        _SampleTask(
            sample_id=row["sample_id"],
            panel=row["panel"],
            n_events=n_events,
            composition=tuple(composition[t] for t in CELL_TYPES),
            dead_rate=rates["dead"],
            doublet_rate=rates["doublet"],
            gains=tuple(gains[row["batch"]].items()),
            keywords=tuple(keywords.items()),
            path=str(out / row["fcs"]),
            seed=sample_seed,
        )
        for row, (n_events, composition, rates, keywords), sample_seed in zip(
            rows, draws, samples_seed.spawn(len(rows))
        )
    ]
    patients = patients[
        ["patient_id", "arm", "best_response", "pfs_months", "pfs_event", "os_months", "os_event"]
    ]
    return sheet, patients, tasks


def _run_task(task: _SampleTask) -> tuple[str, dict[str, int]]:
    sample = simulate_sample(
        panel=task.panel,
        n_events=task.n_events,
        composition=dict(zip(CELL_TYPES, task.composition)),
        dead_rate=task.dead_rate,
        doublet_rate=task.doublet_rate,
        gains=dict(task.gains),
        seed=task.seed,
    )
    write_fcs(sample, task.path, keywords=dict(task.keywords))
    return task.sample_id, sample.truth_counts()


def simulate_trial(
    out: str | Path,
    *,
    patients_per_arm: int | Sequence[int] = 12,
    events: int = 20_000,
    tumor_events: int = 10_000,
    seed: int = 0,
    jobs: int = 1,
) -> TrialSummary:
    """Write a simulated trial: FCS files, sample sheet, clinical table and the truth.

    Parameters
    ----------
    out
        Output folder (created); see the module docstring for what is written.
    patients_per_arm
        Patients in each arm, or a pair ``(BEMPEG+NIVO, NIVO)``, e.g. ``(391, 392)``.
    events
        Events per blood file.
    tumor_events
        Events per tumor file.
    seed
        Seed of the whole trial: the same arguments and seed give byte-identical files.
    jobs
        Worker processes writing files (results do not depend on it).

    Returns
    -------
    TrialSummary
        Number of files and events written and the seconds it took.
    """
    start = time.perf_counter()
    counts = _patients_per_arm(patients_per_arm)
    events = _whole_number("events", events, minimum=1)
    tumor_events = _whole_number("tumor_events", tumor_events, minimum=1)
    jobs = _whole_number("jobs", jobs, minimum=1)
    seed = _whole_number("seed", seed, minimum=0)
    out = Path(out)
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    sheet, patients, tasks = _design_trial(
        counts, events=events, tumor_events=tumor_events, seed=seed, out=out
    )
    if jobs == 1:
        results = [_run_task(task) for task in tasks]
    else:
        # fork where the platform has it: workers need nothing from the caller's __main__
        method = "fork" if "fork" in get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context(method)) as pool:
            results = list(pool.map(_run_task, tasks, chunksize=max(1, len(tasks) // (8 * jobs))))

    truth = [
        (sample_id, population, count)
        for sample_id, counts_ in results
        for population, count in counts_.items()
    ]
    pd.DataFrame(truth, columns=["sample_id", "population", "count"]).to_csv(
        out / "truth" / "populations.tsv", sep="\t", index=False
    )
    effect_model().to_csv(out / "truth" / "effects.tsv", sep="\t", index=False)
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False, na_rep="")
    patients.to_csv(out / "patients.tsv", sep="\t", index=False)
    return TrialSummary(
        out=out,
        n_files=len(tasks),
        n_events=int(sum(task.n_events for task in tasks)),
        seconds=time.perf_counter() - start,
    )
