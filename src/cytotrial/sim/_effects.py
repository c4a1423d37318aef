"""The trial model: arms, visits, typical abundances, treatment effects and the expected truth."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._panel import _LYMPH_SCATTER, _LYMPHOID, CELL_TYPES, _check_panel
from ._truth import _PARENT, _POPULATION_TYPES, POPULATIONS

#: Treatment arms, in the order of ``patients_per_arm`` when it is a pair.
ARMS: tuple[str, str] = ("BEMPEG+NIVO", "NIVO")

#: Visits per compartment: (visit, cycle, day); the first is baseline.
VISITS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "blood": (("C1D1", 1, 1), ("C1D8", 1, 8), ("C2D1", 2, 1), ("C3D1", 3, 1), ("C5D1", 5, 1)),
    "tumor": (("C1D1", 1, 1), ("C2D1", 2, 1)),
}
_CYCLE_DAYS = 21

#: Typical baseline blood abundances, cells per microlitre (lymphocyte subsets sum to ~1,450).
#: CD8 T cells (343): HLA-DR+CD38+ activated ~5.5%, Ki67+ ~4% (half of them activated).
_BLOOD_BASELINE: dict[str, float] = {
    "cd4_conv": 590.0,
    "treg": 45.0,
    "cd8_ki67neg": 287.0,
    "cd8_ki67pos": 7.0,
    "cd8_act_ki67neg": 12.0,
    "cd8_act_ki67pos": 7.0,
    "cd8_hladr_only": 14.0,
    "cd8_cd38_only": 16.0,
    "nk": 180.0,
    "b": 200.0,
    "t_other": 90.0,
    "monocyte": 450.0,
    "granulocyte": 120.0,  # residual after density separation
}

#: Fold change of the typical patient's abundance per microlitre, by arm and visit (1 if absent).
#: BEMPEG+NIVO: CD8 T cells (activated and proliferating ones most), NK cells and Tregs expand at
#: C1D8; the CD8 and NK gains fade over later cycles, Tregs stay high. NIVO: a small rise of
#: proliferating and activated CD8 T cells.
BLOOD_EFFECTS: dict[str, dict[str, dict[str, float]]] = {
    "BEMPEG+NIVO": {
        "C1D8": {
            "cd4_conv": 1.3,
            "treg": 3.2,
            "cd8_ki67neg": 2.2,
            "cd8_ki67pos": 8.0,
            "cd8_act_ki67neg": 8.0,
            "cd8_act_ki67pos": 16.0,
            "cd8_hladr_only": 2.5,
            "cd8_cd38_only": 2.5,
            "nk": 3.0,
            "t_other": 1.6,
            "monocyte": 1.2,
        },
        "C2D1": {
            "cd4_conv": 1.15,
            "treg": 2.6,
            "cd8_ki67neg": 1.45,
            "cd8_ki67pos": 2.5,
            "cd8_act_ki67neg": 2.5,
            "cd8_act_ki67pos": 3.5,
            "cd8_hladr_only": 1.5,
            "cd8_cd38_only": 1.5,
            "nk": 1.8,
            "t_other": 1.2,
        },
        "C3D1": {
            "cd4_conv": 1.1,
            "treg": 2.5,
            "cd8_ki67neg": 1.18,
            "cd8_ki67pos": 1.6,
            "cd8_act_ki67neg": 1.6,
            "cd8_act_ki67pos": 2.0,
            "cd8_hladr_only": 1.2,
            "cd8_cd38_only": 1.2,
            "nk": 1.5,
            "t_other": 1.1,
        },
        "C5D1": {
            "cd4_conv": 1.1,
            "treg": 2.4,
            "cd8_ki67neg": 1.08,
            "cd8_ki67pos": 1.4,
            "cd8_act_ki67neg": 1.4,
            "cd8_act_ki67pos": 1.5,
            "cd8_hladr_only": 1.1,
            "cd8_cd38_only": 1.1,
            "nk": 1.4,
            "t_other": 1.05,
        },
    },
    "NIVO": {
        "C1D8": {
            "cd8_ki67neg": 1.05,
            "cd8_ki67pos": 1.4,
            "cd8_act_ki67neg": 1.4,
            "cd8_act_ki67pos": 1.7,
        },
        "C2D1": {
            "cd8_ki67neg": 1.05,
            "cd8_ki67pos": 1.3,
            "cd8_act_ki67neg": 1.3,
            "cd8_act_ki67pos": 1.5,
        },
        "C3D1": {"cd8_ki67pos": 1.2, "cd8_act_ki67neg": 1.2, "cd8_act_ki67pos": 1.3},
        "C5D1": {"cd8_ki67pos": 1.15, "cd8_act_ki67neg": 1.15, "cd8_act_ki67pos": 1.2},
    },
}

#: Typical baseline tumor composition, relative units (tumor cells 100, infiltrate ~25% of cells).
#: Tumor-infiltrating CD8 T cells are often activated (a third HLA-DR+CD38+).
_TUMOR_BASELINE: dict[str, float] = {
    "cd4_conv": 7.3,
    "treg": 2.0,
    "cd8_ki67neg": 4.6,
    "cd8_ki67pos": 0.3,
    "cd8_act_ki67neg": 2.2,
    "cd8_act_ki67pos": 0.6,
    "cd8_hladr_only": 0.5,
    "cd8_cd38_only": 0.3,
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
        "cd8_ki67neg": 1.6,
        "cd8_ki67pos": 2.5,
        "cd8_act_ki67neg": 2.4,
        "cd8_act_ki67pos": 3.4,
        "cd8_hladr_only": 1.8,
        "cd8_cd38_only": 1.8,
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


def typical_composition(panel: str = "blood") -> dict[str, float]:
    """Probability of each cell type among the events of the typical baseline sample.

    Parameters
    ----------
    panel
        ``"blood"`` or ``"tumor"``.

    Returns
    -------
    dict of str to float
        Cell type -> probability (sums to 1, includes ``"debris"``).

    Raises
    ------
    ConfigError
        For an unknown panel.
    """
    _check_panel(panel)
    baseline = _BLOOD_BASELINE if panel == "blood" else _TUMOR_BASELINE
    debris = float(np.mean(_RATES[panel]["debris"]))
    return _composition(baseline, debris)


def _composition(abundance: Mapping[str, float], debris: float) -> dict[str, float]:
    """Probability of each cell type: ``debris``, the rest in proportion to ``abundance``."""
    total = float(sum(abundance.values()))
    probabilities = dict.fromkeys(CELL_TYPES, 0.0)
    probabilities["debris"] = debris
    for cell_type, value in abundance.items():
        probabilities[cell_type] = (1.0 - debris) * float(value) / total
    return probabilities


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
    """Expected fraction of all events in each truth population (mirrors the sampler)."""
    lymph = sum(composition.get(t, 0.0) for t in _LYMPH_SCATTER)
    kept = (1.0 - doublet_rate) * (1.0 - dead_rate)
    fractions = {
        "lymphocytes": lymph,
        "singlets": lymph * (1.0 - doublet_rate),
        "live": lymph * kept,
    }
    for population in POPULATIONS[panel][3:]:
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
    pandas.DataFrame
        Tidy, with columns arm, compartment, population, visit, measure, fold_change: measure
        ``per_ul`` (blood; count / live x lymphocytes_per_ul) and ``freq_parent`` (both
        compartments; count / count of the population's parent: the nearest truth population
        above it in the default tree, all events for lymphocytes, live (tumor: leukocytes) for
        nk, cd8 for cd8_activated, cd4 for cd4_conv). Baseline rows have fold change 1.
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
