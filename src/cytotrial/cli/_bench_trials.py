"""Trials for ``cytotrial bench-stats``: counts drawn from the simulator's truth, and outcomes.

Each trial is drawn like the simulator's (:mod:`cytotrial.sim`) but without events or FCS files:
per patient, log-normal factors per cell type (shared and individual, as the simulator draws
them); per sample, abundances = typical baseline x fold change x patient factor x visit noise, the
cell types of ``n_events`` events drawn multinomially, then doublets and dead cells binomially;
the truth populations are sums of live singlets of their cell types. The counts go through
:func:`cytotrial.tl.build_populations` (counts, parents, layers, as the workflow builds them).

Scenarios:

``null``
    No change at all; every patient has every visit.
``variable``
    The simulator's BEMPEG+NIVO blood and tumor changes in *both* arms, raised per patient to a
    log-normal responsiveness: on-treatment changes vary between patients, the arms do not differ.
``effect``
    No change except NK cells in BEMPEG+NIVO blood, x-fold at every on-treatment visit.
``dropout``
    As ``effect``, but each BEMPEG+NIVO patient's planted change is ``x ** (1 + 0.5 z)`` (normal
    on the log scale, mean ``log2 x``: the arm difference is still exactly ``log2 x``), and
    patients whose observed early change (NK cells per uL at the first on-treatment visit) is
    small progress and stop: with probability :data:`DROPOUT_PROBABILITY` they have no blood
    sample after the second on-treatment visit. Dropout depends on observed data only (missing
    at random): a likelihood model over all visits stays unbiased, a per-visit comparison of
    the patients still on study does not.

Outcomes (every scenario): best response with an objective response rate of 50% in BEMPEG+NIVO
and 20% in NIVO, progression-free and overall survival by response, censored at a uniform
follow-up. Within each arm response and survival are independent of every biomarker, so every
responder and survival test of the early change has a true value of zero (hazard ratio 1), while
pooling the arms would confound the planted arm effect with the arms' response rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

# the simulator's model internals: the bench draws truth counts without writing events
from ..sim import ARMS, BLOOD_EFFECTS, CELL_TYPES, POPULATIONS, TUMOR_EFFECTS, VISITS
from ..sim._effects import _BLOOD_BASELINE, _RATES, _TUMOR_BASELINE, _composition
from ..sim._panel import _LYMPH_SCATTER, _LYMPHOID
from ..sim._truth import _PARENT, _POPULATION_TYPES

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["SCENARIOS", "simulate_counts", "simulate_patients"]

#: The scenarios :func:`simulate_counts` draws (see the module docstring).
SCENARIOS = ("null", "variable", "effect", "dropout")
EVENTS = {"blood": 20_000, "tumor": 10_000}
VISIT_SD = {"blood": 0.15, "tumor": 0.25}  # as the simulator's visit noise
RESPONSIVENESS_SD = 0.5  # log sd of the per-patient exponent of the change ("variable")
DROPOUT_SPREAD = 0.5  # sd of the per-patient exponent 1 + sd * z of the change ("dropout")
#: Probability of stopping after the second on-treatment visit when the early change is small.
DROPOUT_PROBABILITY = 0.8
#: Observed early log2 change of the planted feature below which a patient may stop.
DROPOUT_THRESHOLD = 0.5
PLANTED = ("blood", "nk")  # the feature of the planted arm effect (per_ul: exactly x-fold)
#: Objective response rate per arm (``ARMS`` order): the arms differ, the biomarker does not.
RESPONSE_RATE = (0.5, 0.2)
_SHEET_COLUMNS = [
    "sample_id", "patient_id", "arm", "visit", "cycle", "day", "compartment", "lymphocytes_per_ul",
]  # fmt: skip
_COUNT_COLUMNS = ["sample_id", "population", "gate_path", "parent", "count", "parent_count"]


def _fold(scenario: str, effect: float, compartment: str, arm: str, visit: str) -> dict:
    """Cell type -> fold change of the typical patient at a visit in a scenario."""
    if scenario == "variable":
        if compartment == "blood":
            return dict(BLOOD_EFFECTS[ARMS[0]].get(visit, {}))
        return dict(TUMOR_EFFECTS.get(visit, {}))
    on_treatment = visit != VISITS[compartment][0][0]
    planted = (compartment, arm) == (PLANTED[0], ARMS[0]) and on_treatment
    if scenario in ("effect", "dropout") and planted:
        return dict.fromkeys(_POPULATION_TYPES[PLANTED[1]], effect)
    return {}


def _patient_factors(rng: np.random.Generator, n: int) -> dict[str, dict[str, np.ndarray]]:
    """Between-patient log-factors per compartment and cell type (the simulator's spreads)."""
    shared = {"blood": 0.25 * rng.standard_normal(n), "tumor": 0.6 * rng.standard_normal(n)}
    factors: dict[str, dict[str, np.ndarray]] = {"blood": {}, "tumor": {}}
    for cell_type in CELL_TYPES[1:]:
        individual = rng.standard_normal((2, n))
        if cell_type in _LYMPHOID:
            factors["blood"][cell_type] = shared["blood"] + 0.25 * individual[0]
            factors["tumor"][cell_type] = shared["tumor"] + 0.40 * individual[1]
        elif cell_type in ("monocyte", "granulocyte"):
            sd = 0.3 if cell_type == "monocyte" else 0.5
            factors["blood"][cell_type] = sd * individual[0]
            factors["tumor"][cell_type] = shared["tumor"] + 0.40 * individual[1]
        else:
            factors["tumor"][cell_type] = 0.2 * individual[1]
    return factors


def _truth_counts(
    rng: np.random.Generator, compartment: str, abundance: Mapping[str, float]
) -> dict[str, int]:
    """One sample's true count of every truth population, drawn from its abundances."""
    rates = {k: rng.uniform(*v) for k, v in _RATES[compartment].items()}
    composition = _composition(abundance, rates["debris"])
    p = np.array([composition[t] for t in CELL_TYPES])
    n_type = dict(zip(CELL_TYPES, rng.multinomial(EVENTS[compartment], p / p.sum())))
    lymph = [t for t in _LYMPH_SCATTER if n_type[t]]
    singlets = {t: rng.binomial(n_type[t], 1.0 - rates["doublet"]) for t in lymph}
    live = {t: rng.binomial(singlets[t], 1.0 - rates["dead"]) for t in lymph}
    counts = {
        "lymphocytes": int(sum(n_type[t] for t in lymph)),
        "singlets": int(sum(singlets.values())),
        "live": int(sum(live.values())),
    }
    for population in POPULATIONS[compartment][3:]:
        counts[population] = int(sum(live.get(t, 0) for t in _POPULATION_TYPES[population]))
    return counts


def _abundance(
    rng: np.random.Generator,
    compartment: str,
    fold: Mapping[str, float],
    log_factors: Mapping[str, float],
) -> dict[str, float]:
    """One sample's abundances: typical baseline x fold change x patient x visit noise."""
    baseline = _BLOOD_BASELINE if compartment == "blood" else _TUMOR_BASELINE
    abundance = {}
    for cell_type, value in baseline.items():
        sd = 0.4 if cell_type == "granulocyte" else VISIT_SD[compartment]
        noise = sd * rng.standard_normal()
        abundance[cell_type] = (
            value * fold.get(cell_type, 1.0) * np.exp(log_factors[cell_type] + noise)
        )
    return abundance


def _count_rows(sample_id: str, compartment: str, counts: Mapping[str, int]) -> list[tuple]:
    """The gating's count rows of one sample (:data:`cytotrial.tl.COUNT_INPUT_COLUMNS`)."""
    rows = []
    for population, count in counts.items():
        parent = _PARENT[compartment][population] or ""
        parent_count = counts[parent] if parent else EVENTS[compartment]
        rows.append(
            (sample_id, population, f"{compartment}/{population}", parent, count, parent_count)
        )
    return rows


def _exponents(rng: np.random.Generator, n: int, scenario: str) -> np.ndarray:
    """Per patient, the exponent of the fold change (1: every patient changes alike)."""
    z = rng.standard_normal(n)
    if scenario == "variable":
        return np.exp(RESPONSIVENESS_SD * z)
    if scenario == "dropout":
        return 1.0 + DROPOUT_SPREAD * z
    return np.ones(n)


def _planted_value(counts: Mapping[str, int], per_ul: float) -> float:
    """The planted feature's value in a blood sample (per uL: its share of live x per_ul)."""
    return counts[PLANTED[1]] / counts["live"] * per_ul if counts["live"] else np.nan


class _Dropout:
    """Decides, per patient, whether blood samples stop after the second on-treatment visit."""

    def __init__(self, rng: np.random.Generator, active: bool) -> None:
        self.rng, self.active = rng, active
        self.baseline = np.nan
        self.stopped = False

    def start(self) -> None:
        self.baseline, self.stopped = np.nan, False

    def observe(self, v: int, value: float) -> None:
        """Record the planted feature at visit index ``v``; decide at the first on-treatment one."""
        if v == 0:
            self.baseline = value
        elif v == 1 and self.active:
            early = np.log2(value / self.baseline)
            small = not np.isfinite(early) or early < DROPOUT_THRESHOLD
            self.stopped = bool(small and self.rng.random() < DROPOUT_PROBABILITY)

    def keeps(self, compartment: str, v: int) -> bool:
        return compartment != PLANTED[0] or v < 3 or not self.stopped


def simulate_counts(
    rng: np.random.Generator, n_per_arm: int, scenario: str, effect: float = 1.0
) -> AnnData:
    """One simulated trial's ``populations.h5ad`` (see the module docstring).

    Parameters
    ----------
    rng
        The trial's random generator.
    n_per_arm
        Patients in each arm.
    scenario
        One of :data:`SCENARIOS`.
    effect
        Fold change of the planted feature (scenarios ``effect`` and ``dropout``).
    """
    from ..tl import build_populations

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    n = 2 * n_per_arm
    arms = [ARMS[0]] * n_per_arm + [ARMS[1]] * n_per_arm
    factors = _patient_factors(rng, n)
    exponent = _exponents(rng, n, scenario)
    dropout = _Dropout(rng, scenario == "dropout")
    sheet, rows = [], []
    for i, arm in enumerate(arms):
        patient = f"P{i + 1:03d}"
        dropout.start()
        for compartment, visits in VISITS.items():
            own = {t: float(f[i]) for t, f in factors[compartment].items()}
            for v, (visit, cycle, day) in enumerate(visits):
                fold = _fold(scenario, effect, compartment, arm, visit)
                fold = {t: x ** exponent[i] for t, x in fold.items()}
                abundance = _abundance(rng, compartment, fold, own)
                counts = _truth_counts(rng, compartment, abundance)
                blood = compartment == "blood"
                per_ul = sum(abundance[t] for t in _LYMPHOID) if blood else np.nan
                if blood:
                    dropout.observe(v, _planted_value(counts, per_ul))
                if not dropout.keeps(compartment, v):
                    continue
                sample_id = f"{patient}_{compartment}_{visit}"
                sheet.append((sample_id, patient, arm, visit, cycle, day, compartment, per_ul))
                rows += _count_rows(sample_id, compartment, counts)
    sheet = pd.DataFrame(sheet, columns=_SHEET_COLUMNS).set_index("sample_id", drop=False)
    sheet["panel"] = sheet["compartment"]
    sheet["batch"] = "B1"  # no gating here: acquisition batches play no part
    names = list(dict.fromkeys([*POPULATIONS["tumor"], *POPULATIONS["blood"]]))
    return build_populations(
        pd.DataFrame(rows, columns=_COUNT_COLUMNS),
        sheet,
        model={name: {"label": name} for name in names},
        panels=list(VISITS),
        ratios={"cd8_treg": ["cd8", "treg"]},
        frequencies=["live"],
        absolute_reference="live",
        min_events={},
    )


def simulate_patients(rng: np.random.Generator, n_per_arm: int) -> pd.DataFrame:
    """The trial's patients table (as :func:`cytotrial.tl.read_patients` returns it).

    Best response CR/PR with probability :data:`RESPONSE_RATE` of the patient's arm, else SD/PD;
    PFS exponential with mean 14 months for responders and 4 for the others, OS = PFS plus an
    exponential of mean 12 or 6 months; both censored at a follow-up uniform on 12-36 months.
    """
    arms = np.repeat(np.array(ARMS[:2]), n_per_arm)
    rate = np.where(arms == ARMS[0], RESPONSE_RATE[0], RESPONSE_RATE[1])
    responder = rng.random(arms.size) < rate
    first, second = rng.random(arms.size) < 0.25, rng.random(arms.size) < 0.5
    response = np.where(responder, np.where(first, "CR", "PR"), np.where(second, "SD", "PD"))
    pfs = rng.exponential(np.where(responder, 14.0, 4.0))
    os_ = pfs + rng.exponential(np.where(responder, 12.0, 6.0))
    follow_up = rng.uniform(12.0, 36.0, arms.size)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i + 1:03d}" for i in range(arms.size)],
            "arm": arms,
            "best_response": response,
            "pfs_months": np.round(np.minimum(pfs, follow_up), 2),
            "pfs_event": (pfs <= follow_up).astype(int),
            "os_months": np.round(np.minimum(os_, follow_up), 2),
            "os_event": (os_ <= follow_up).astype(int),
        }
    )
