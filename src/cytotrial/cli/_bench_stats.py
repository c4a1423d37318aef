"""``cytotrial bench-stats``: calibration of the statistics tables on trials simulated from the truth.

Each trial is drawn like the simulator's (:mod:`cytotrial.sim`) but without events or FCS files:
per patient, log-normal factors per cell type (shared and individual, as the simulator draws
them); per sample, abundances = typical baseline x fold change x patient factor x visit noise, the
cell types of ``n_events`` events drawn multinomially, then doublets and dead cells binomially;
the truth populations are sums of live singlets of their cell types. The counts go through
:func:`cytotrial.tl.build_populations` (counts, parents, layers, as the workflow builds them) and
:func:`cytotrial.tl.compute_tables`. Every patient has every visit (no dropout).

Scenarios: ``null`` (no change at all), ``variable`` (the simulator's BEMPEG+NIVO blood and
tumor changes in *both* arms, raised per patient to a log-normal responsiveness, so on-treatment
changes vary between patients but the arms do not differ) and ``effect <x>`` (no change except
NK cells in BEMPEG+NIVO blood, x-fold at every on-treatment visit).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

# the simulator's model internals: the bench draws truth counts without writing events
from ..errors import ConfigError
from ..sim import ARMS, BLOOD_EFFECTS, CELL_TYPES, POPULATIONS, TUMOR_EFFECTS, VISITS
from ..sim._effects import _BLOOD_BASELINE, _RATES, _TUMOR_BASELINE, _composition
from ..sim._panel import _LYMPH_SCATTER, _LYMPHOID
from ..sim._truth import _PARENT, _POPULATION_TYPES

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ANALYSIS", "bench_stats", "run_bench_stats", "simulate_counts"]

EVENTS = {"blood": 20_000, "tumor": 10_000}
VISIT_SD = {"blood": 0.15, "tumor": 0.25}  # as the simulator's visit noise
RESPONSIVENESS_SD = 0.5  # log sd of the per-patient exponent of the change ("variable")
PLANTED = ("blood", "nk")  # the feature of the planted arm effect (per_ul: exactly x-fold)
FEATURES = ["cd3", "cd4", "cd4_conv", "cd8", "treg", "nk", "cd8_ki67", "cd8_activated", "cd8_treg"]
ANALYSIS = {
    "baseline_visit": "C1D1",
    "measure": {"blood": "per_ul", "tumor": "freq_parent"},
    "populations": FEATURES,
    "reference_arm": ARMS[1],
    "response_visit": "C1D8",
    "alpha": 0.05,
    "pseudocount": 1.0,
    "primary": {"populations": ["cd8", "nk", "treg", "cd8_activated", "cd8_ki67"]},
}
_SHEET_COLUMNS = [
    "sample_id", "patient_id", "arm", "visit", "cycle", "day", "compartment", "lymphocytes_per_ul",
]  # fmt: skip
TABLES = ("arm_comparison", "mmrm", "mixed_model", "change_from_baseline")


# --------------------------------------------------------------------------------------------
# simulated counts
# --------------------------------------------------------------------------------------------
def _fold(scenario: str, effect: float, compartment: str, arm: str, visit: str) -> dict:
    """Cell type -> fold change of the typical patient at a visit in a scenario."""
    if scenario == "variable":
        if compartment == "blood":
            return dict(BLOOD_EFFECTS[ARMS[0]].get(visit, {}))
        return dict(TUMOR_EFFECTS.get(visit, {}))
    on_treatment = visit != VISITS[compartment][0][0]
    if scenario == "effect" and (compartment, arm) == (PLANTED[0], ARMS[0]) and on_treatment:
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
        ``null``, ``variable`` or ``effect``.
    effect
        Fold change of the planted feature (scenario ``effect``).
    """
    from ..tl import build_populations

    n = 2 * n_per_arm
    arms = [ARMS[0]] * n_per_arm + [ARMS[1]] * n_per_arm
    factors = _patient_factors(rng, n)
    spread = RESPONSIVENESS_SD if scenario == "variable" else 0.0
    responsiveness = np.exp(spread * rng.standard_normal(n))
    sheet, rows = [], []
    for i, arm in enumerate(arms):
        patient = f"P{i + 1:03d}"
        for compartment, visits in VISITS.items():
            own = {t: float(f[i]) for t, f in factors[compartment].items()}
            for visit, cycle, day in visits:
                fold = _fold(scenario, effect, compartment, arm, visit)
                fold = {t: x ** responsiveness[i] for t, x in fold.items()}
                abundance = _abundance(rng, compartment, fold, own)
                sample_id = f"{patient}_{compartment}_{visit}"
                per_ul = sum(abundance[t] for t in _LYMPHOID) if compartment == "blood" else np.nan
                sheet.append((sample_id, patient, arm, visit, cycle, day, compartment, per_ul))
                counts = _truth_counts(rng, compartment, abundance)
                rows += _count_rows(sample_id, compartment, counts)
    sheet = pd.DataFrame(sheet, columns=_SHEET_COLUMNS).set_index("sample_id", drop=False)
    sheet["panel"] = sheet["compartment"]
    names = list(dict.fromkeys([*POPULATIONS["tumor"], *POPULATIONS["blood"]]))
    return build_populations(
        pd.DataFrame(
            rows,
            columns=["sample_id", "population", "gate_path", "parent", "count", "parent_count"],
        ),
        sheet,
        model={name: {"label": name} for name in names},
        panels=list(VISITS),
        ratios={"cd8_treg": ["cd8", "treg"]},
        frequencies=["live"],
        absolute_reference="live",
        min_events={},
    )


# --------------------------------------------------------------------------------------------
# the tests of each table and their true values
# --------------------------------------------------------------------------------------------
def _tests(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table that test something, with a ``visit`` and an ``arm`` column."""
    if name == "mmrm":
        rows = table[table["contrast"] == f"{ARMS[0]} - {ARMS[1]}"]
        return rows.assign(arm="difference")
    if name == "mixed_model":
        terms = table["term"].astype(str).str.extract(r"^arm\[[^\]]+\]:visit\[([^\]]+)\]$")[0]
        return table[terms.notna()].assign(visit=terms[terms.notna()], arm="difference")
    if name == "arm_comparison":
        return table.assign(arm="difference")
    return table  # change_from_baseline: one row per arm and visit


def _truth(rows: pd.DataFrame, scenario: str, effect: float) -> np.ndarray:
    """The true value each test row estimates (NaN: not known in this scenario)."""
    planted = (rows["compartment"] == PLANTED[0]) & (rows["population"] == PLANTED[1])
    planted &= rows["arm"].isin(["difference", ARMS[0]])
    within = (rows["arm"] != "difference").to_numpy()
    truth = np.zeros(len(rows))
    if scenario == "effect":
        truth[planted.to_numpy()] = np.log2(effect)
    if scenario == "variable":
        truth[within] = np.nan  # the within-arm changes are real but not known exactly
    return truth


def _collect(
    name: str, table: pd.DataFrame, scenario: str, effect: float, alpha: float
) -> pd.DataFrame:
    """Per test row of one trial's table: rejected (p, q), covered, truth, family."""
    rows = _tests(name, table)
    truth = _truth(rows, scenario, effect)
    p = rows["p_value"].to_numpy(dtype=float)
    q = rows["q_value"].to_numpy(dtype=float) if "q_value" in rows else np.full(len(rows), np.nan)
    low, high = (rows[c].to_numpy(dtype=float) for c in ("ci_low", "ci_high"))
    family = rows["family"].astype(str) if "family" in rows else pd.Series(name, index=rows.index)
    return pd.DataFrame(
        {
            "table": name,
            "compartment": rows["compartment"].to_numpy(),
            "visit": rows["visit"].astype(str).to_numpy(),
            "truth": truth,
            "tested": np.isfinite(p),
            "reject": p < alpha,
            "reject_q": q < alpha,
            "has_q": np.isfinite(q),
            "has_ci": np.isfinite(low) & np.isfinite(high),
            "covered": (low <= truth) & (truth <= high),
            "family": family.to_numpy(),
        }
    )


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------
def _one_trial(
    rng: np.random.Generator, n_per_arm: int, scenario: str, effect: float, alpha: float
) -> tuple[pd.DataFrame, list[str]]:
    """The test rows of every table of one simulated trial and its warnings' categories."""
    import warnings

    from ..tl import compute_tables

    adata = simulate_counts(rng, n_per_arm, scenario, effect)
    # recorded, not hidden: the printout counts them (e.g. a mixed model that did not converge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = compute_tables(
            adata, analysis=ANALYSIS, tables=list(TABLES), arms=list(ARMS), frequencies_of=["live"]
        )
    frames = [_collect(name, tables[name], scenario, effect, alpha) for name in TABLES]
    return pd.concat(frames, ignore_index=True), [w.category.__name__ for w in caught]


def _family_error(rows: pd.DataFrame) -> float:
    """Share of trials with a false rejection (q < alpha) in the primary family (else all)."""
    tested = rows[rows["family"] != "estimate"]
    primary = tested[tested["family"].str.startswith("primary")]
    family = primary if not primary.empty else tested
    if not family["has_q"].any():
        return np.nan
    null = family[family["truth"] == 0]
    return float(
        null.groupby("trial")["reject_q"]
        .any()
        .reindex(family["trial"].unique(), fill_value=False)
        .mean()
    )


def _summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per table, compartment and visit (and ``all``): type I error, coverage, FWER, power."""
    out = []
    for (table, compartment), cell in rows.groupby(["table", "compartment"], sort=False):
        visits = list(dict.fromkeys(cell["visit"])) + ["all"]
        for visit in visits:
            part = cell if visit == "all" else cell[cell["visit"] == visit]
            null = part[(part["truth"] == 0) & part["tested"]]
            alt = part[np.isfinite(part["truth"]) & (part["truth"] != 0) & part["tested"]]
            ci = part[part["has_ci"] & np.isfinite(part["truth"])]
            out.append(
                {
                    "table": table,
                    "compartment": compartment,
                    "visit": visit,
                    "n_null": len(null),
                    "type1": null["reject"].mean() if len(null) else np.nan,
                    "coverage": ci["covered"].mean() if len(ci) else np.nan,
                    "fwer": _family_error(part) if visit == "all" else np.nan,
                    "n_alt": len(alt),
                    "power": alt["reject"].mean() if len(alt) else np.nan,
                    "power_q": alt["reject_q"].mean() if alt["has_q"].any() else np.nan,
                }
            )
    return pd.DataFrame(out)


def _configurations(
    per_arm: Sequence[int], effects: Sequence[float]
) -> list[tuple[str, int, float]]:
    """(scenario, patients per arm, effect) in the order they are run and printed."""
    configs = []
    for n in per_arm:
        configs += [("null", n, 1.0), ("variable", n, 1.0)]
        configs += [("effect", n, float(x)) for x in effects if float(x) != 1.0]
    return configs


def bench_stats(
    *,
    trials: int = 200,
    per_arm: Sequence[int] = (12, 24),
    seed: int = 0,
    effects: Sequence[float] = (1.5, 2.0),
    alpha: float = 0.05,
    echo=print,
) -> pd.DataFrame:
    """Simulate ``trials`` trials per scenario and print the calibration of every table.

    Parameters
    ----------
    trials
        Trials per scenario and size.
    per_arm
        Patients per arm; every scenario is run at each size.
    seed
        Seed: the same arguments give the same printout (but the time).
    effects
        Fold changes of the planted arm effect (scenario ``effect``; 1.0 is skipped).
    alpha
        Level of the tests (p < alpha rejects; q < alpha for the family-wise error).
    echo
        Where the lines go.

    Returns
    -------
    pandas.DataFrame
        The printed numbers, one row per scenario, size, table, compartment and visit.
    """
    start = time.perf_counter()
    echo(_LEGEND.format(alpha=alpha))
    results, warned = [], []
    for k, (scenario, n, effect) in enumerate(_configurations(per_arm, effects)):
        frames = []
        for trial in range(trials):
            rng = np.random.default_rng([seed, k, trial])
            rows, caught = _one_trial(rng, n, scenario, effect, alpha)
            frames.append(rows.assign(trial=trial))
            warned += caught
        summary = _summary(pd.concat(frames, ignore_index=True))
        label = f"{scenario} x{effect:g}" if scenario == "effect" else scenario
        summary.insert(0, "scenario", label)
        summary.insert(1, "per_arm", n)
        results.append(summary)
        echo(f"\n== scenario {label}, {n} patients per arm, {trials} trials ==")
        echo(_format(summary.drop(columns=["scenario", "per_arm"])))
    if warned:
        counts = pd.Series(warned).value_counts()
        echo("\nwarnings: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    echo(f"\nbench-stats: {trials} trials per scenario in {time.perf_counter() - start:.1f} s")
    return pd.concat(results, ignore_index=True)


_LEGEND = """bench-stats: tests of each table on simulated trials (see cytotrial.cli._bench_stats)
  n_null   tests whose true value is 0 (arm differences; within-arm changes unless 'variable')
  type1    share of them with p < {alpha}
  coverage share of confidence intervals holding the true value (all tests with a known truth)
  fwer     share of trials with q < {alpha} in a true-null test of the family: the primary
           family where the table has one, else the table's q-value family per compartment
  n_alt    tests of the planted effect (NK cells per uL in BEMPEG+NIVO blood)
  power    share of them with p < {alpha}; power_q: with q < {alpha}"""


def _format(summary: pd.DataFrame) -> str:
    """The summary as aligned text, rates with 3 decimals, NA as ``-``."""
    shown = summary.copy()
    for column in ("type1", "coverage", "fwer", "power", "power_q"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
    return shown.to_string(index=False)


def run_bench_stats(args: argparse.Namespace) -> int:
    """``cytotrial bench-stats``: check the arguments, run :func:`bench_stats`."""
    if args.trials < 1:
        raise ConfigError(f"bench-stats: --trials must be at least 1, not {args.trials}")
    if min(args.per_arm) < 3:
        raise ConfigError(f"bench-stats: --per-arm must be at least 3, not {min(args.per_arm)}")
    if min(args.effects) <= 0:
        raise ConfigError(f"bench-stats: --effects must be positive, not {min(args.effects)}")
    bench_stats(trials=args.trials, per_arm=args.per_arm, seed=args.seed, effects=args.effects)
    return 0
