"""``cytotrial bench-stats``: calibration of the statistics tables on trials simulated from the truth.

Trials, scenarios and outcomes are drawn by :mod:`._bench_trials` (counts from the simulator's
truth, no events). Each trial goes through :func:`cytotrial.tl.compute_tables` as the workflow
runs it, and every row of every table with a p-value is a test: ``arm_comparison``, ``mmrm``
(arm difference), ``change_from_baseline`` (within arm), ``response`` and ``responders`` (early
change in responders vs non-responders, within arm and arm-adjusted), ``cox`` (hazard ratio of
the early change, adjusted for arm) and ``km`` (log-rank, high vs low early change within arm).
For each, the printout gives the type I error (share of true-null tests with p < alpha), the
coverage of its confidence intervals, the family-wise error of its q-values (the declared
primary family where the table has one), and, for the planted effect, power and bias.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..sim import ARMS
from ._bench_trials import PLANTED, SCENARIOS, simulate_counts, simulate_patients

__all__ = ["ANALYSIS", "TABLES", "bench_stats", "run_bench_stats", "simulate_counts"]

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
#: The tables whose tests the bench counts.
TABLES = (
    "arm_comparison", "mmrm", "change_from_baseline", "response", "responders", "cox", "km",
)  # fmt: skip
#: Columns holding each table's estimate and p-value (others: ``estimate``, ``p_value``).
_ESTIMATE = {"change_from_baseline": "hl_log2fc", "cox": "hazard_ratio", "km": None}
_P_VALUE = {"km": "logrank_p"}


# --------------------------------------------------------------------------------------------
# the tests of each table and their true values
# --------------------------------------------------------------------------------------------
def _tests(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table that test something, with ``visit`` and ``arm`` columns.

    ``arm`` is ``difference`` for arm differences, the arm for within-arm tests and ``adjusted``
    for tests stratified or adjusted by arm; ``visit`` is the endpoint for survival.
    """
    if name == "mmrm":
        rows = table[table["contrast"] == f"{ARMS[0]} - {ARMS[1]}"]
        return rows.assign(arm="difference")
    if name == "arm_comparison":
        return table.assign(arm="difference")
    if name == "response":
        return table[table["analysis"] == "early_change"]
    if name == "responders":
        adjusted = table["analysis"] == "arm_adjusted"
        return table.assign(arm=table["arm"].where(~adjusted, "adjusted"))
    if name == "cox":
        return table[table["term"] == "log2fc"].assign(visit=table["endpoint"], arm="adjusted")
    if name == "km":  # one log-rank test per arm: its "high" row
        return table[table["group"] == "high"].assign(visit=table["endpoint"])
    return table  # change_from_baseline: one row per arm and visit


def _truth(name: str, rows: pd.DataFrame, scenario: str, effect: float) -> np.ndarray:
    """The true value each test row estimates (NaN: not known in this scenario).

    Responder and survival tests are null in every scenario (outcomes do not depend on any
    biomarker within an arm): 0, or a hazard ratio of 1.
    """
    if name in ("response", "responders", "km"):
        return np.zeros(len(rows))
    if name == "cox":
        return np.ones(len(rows))
    planted = (rows["compartment"] == PLANTED[0]) & (rows["population"] == PLANTED[1])
    planted &= rows["arm"].isin(["difference", ARMS[0]])
    within = (rows["arm"] != "difference").to_numpy()
    truth = np.zeros(len(rows))
    if scenario in ("effect", "dropout"):
        truth[planted.to_numpy()] = np.log2(effect)
    if scenario == "variable":
        truth[within] = np.nan  # the within-arm changes are real but not known exactly
    return truth


def _collect(
    name: str, table: pd.DataFrame, scenario: str, effect: float, alpha: float
) -> pd.DataFrame:
    """Per test row of one trial's table: rejected (p, q), covered, estimate, truth, family."""
    rows = _tests(name, table)
    truth = _truth(name, rows, scenario, effect)
    null_value = 1.0 if name == "cox" else 0.0
    p = rows[_P_VALUE.get(name, "p_value")].to_numpy(dtype=float)
    q = rows["q_value"].to_numpy(dtype=float) if "q_value" in rows else np.full(len(rows), np.nan)
    column = _ESTIMATE.get(name, "estimate")
    estimate = rows[column].to_numpy(dtype=float) if column else np.full(len(rows), np.nan)
    if "ci_low" in rows and name != "km":  # km's interval is of a median survival time
        low, high = (rows[c].to_numpy(dtype=float) for c in ("ci_low", "ci_high"))
    else:
        low = high = np.full(len(rows), np.nan)
    family = rows["family"].astype(str) if "family" in rows else pd.Series(name, index=rows.index)
    return pd.DataFrame(
        {
            "table": name,
            "compartment": rows["compartment"].to_numpy(),
            "visit": rows["visit"].astype(str).to_numpy(),
            "truth": truth,
            "null": truth == null_value,
            "estimate": estimate,
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
    patients = simulate_patients(rng, n_per_arm)
    # recorded, not hidden: the printout counts them (e.g. a model that did not converge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = compute_tables(
            adata,
            analysis=ANALYSIS,
            patients=patients,
            tables=list(TABLES),
            arms=list(ARMS),
            frequencies_of=["live"],
        )
    frames = [_collect(name, tables[name], scenario, effect, alpha) for name in TABLES]
    return pd.concat(frames, ignore_index=True), [w.category.__name__ for w in caught]


def _seeded_trial(
    task: tuple[list[int], int, str, float, float],
) -> tuple[pd.DataFrame, list[str]]:
    """:func:`_one_trial` of one task ``(seed, n_per_arm, scenario, effect, alpha)``."""
    seed, n, scenario, effect, alpha = task
    return _one_trial(np.random.default_rng(seed), n, scenario, effect, alpha)


def _run(tasks: list, jobs: int) -> list[tuple[pd.DataFrame, list[str]]]:
    """The trials of ``tasks`` in order, on ``jobs`` processes (each trial has its own seed)."""
    if jobs <= 1:
        return [_seeded_trial(task) for task in tasks]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_seeded_trial, tasks, chunksize=4))


def _family_error(rows: pd.DataFrame) -> float:
    """Share of trials with a false rejection (q < alpha) in the primary family (else all)."""
    tested = rows[rows["family"] != "estimate"]
    primary = tested[tested["family"].str.startswith("primary")]
    family = primary if not primary.empty else tested
    if not family["has_q"].any():
        return np.nan
    null = family[family["null"]]
    return float(
        null.groupby("trial")["reject_q"]
        .any()
        .reindex(family["trial"].unique(), fill_value=False)
        .mean()
    )


def _rate(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else np.nan


def _summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per table, compartment and visit (and ``all``): type I error, coverage, FWER, power, bias."""
    out = []
    for (table, compartment), cell in rows.groupby(["table", "compartment"], sort=False):
        visits = list(dict.fromkeys(cell["visit"])) + ["all"]
        for visit in visits:
            part = cell if visit == "all" else cell[cell["visit"] == visit]
            null = part[part["null"] & part["tested"]]
            alt = part[np.isfinite(part["truth"]) & ~part["null"] & part["tested"]]
            ci = part[part["has_ci"] & np.isfinite(part["truth"])]
            out.append(
                {
                    "table": table,
                    "compartment": compartment,
                    "visit": visit,
                    "n_null": len(null),
                    "type1": _rate(null["reject"]),
                    "coverage": _rate(ci["covered"]),
                    "fwer": _family_error(part) if visit == "all" else np.nan,
                    "n_alt": len(alt),
                    "power": _rate(alt["reject"]),
                    "power_q": _rate(alt["reject_q"]) if alt["has_q"].any() else np.nan,
                    "bias": _rate(alt["estimate"] - alt["truth"]),
                    "alt_coverage": _rate(alt.loc[alt["has_ci"], "covered"]),
                }
            )
    return pd.DataFrame(out)


def _configurations(
    per_arm: Sequence[int],
    effects: Sequence[float],
    scenarios: Sequence[str],
    dropout_effect: float,
) -> list[tuple[str, int, float]]:
    """(scenario, patients per arm, effect) in the order they are run and printed."""
    configs = []
    for n in per_arm:
        configs += [(s, n, 1.0) for s in ("null", "variable") if s in scenarios]
        if "effect" in scenarios:
            configs += [("effect", n, float(x)) for x in effects if float(x) != 1.0]
        if "dropout" in scenarios:
            configs.append(("dropout", n, float(dropout_effect)))
    return configs


def bench_stats(
    *,
    trials: int = 200,
    per_arm: Sequence[int] = (12, 24),
    seed: int = 0,
    effects: Sequence[float] = (1.5, 2.0),
    scenarios: Sequence[str] = SCENARIOS,
    dropout_effect: float = 2.0,
    alpha: float = 0.05,
    jobs: int = 1,
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
    scenarios
        Which of ``null``, ``variable``, ``effect`` and ``dropout`` to run.
    dropout_effect
        Fold change of the planted arm effect in scenario ``dropout``.
    alpha
        Level of the tests (p < alpha rejects; q < alpha for the family-wise error).
    jobs
        Processes running trials at once (the printout does not depend on it).
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
    for scenario, n, effect in _configurations(per_arm, effects, scenarios, dropout_effect):
        # each configuration's trials are seeded by its own name: adding one leaves others alone
        key = [seed, SCENARIOS.index(scenario), n, round(effect * 1000)]
        tasks = [([*key, trial], n, scenario, effect, alpha) for trial in range(trials)]
        frames = []
        for trial, (rows, caught) in enumerate(_run(tasks, jobs)):
            frames.append(rows.assign(trial=trial))
            warned += caught
        summary = _summary(pd.concat(frames, ignore_index=True))
        label = f"{scenario} x{effect:g}" if scenario in ("effect", "dropout") else scenario
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
  n_null   true-null tests: arm differences and within-arm changes of unchanged features (not
           within-arm in 'variable'); every responder and survival test of the early change
  type1    share of them with p < {alpha}
  coverage share of confidence intervals holding the true value (all tests with a known truth;
           cox: hazard ratio 1)
  fwer     share of trials with q < {alpha} in a true-null test of the family: the primary
           family where the table has one, else the table's q-value family per compartment
  n_alt    tests of the planted effect (NK cells per uL in BEMPEG+NIVO blood)
  power    share of them with p < {alpha}; power_q: with q < {alpha}
  bias     mean estimate minus the true log2 effect; alt_coverage: their CIs' coverage
  scenario 'dropout x<e>': patients with a small early change stop after C2D1 (missing at random)"""


def _format(summary: pd.DataFrame) -> str:
    """The summary as aligned text, rates with 3 decimals, NA as ``-``."""
    shown = summary.copy()
    for column in ("type1", "coverage", "fwer", "power", "power_q", "bias", "alt_coverage"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
    return shown.to_string(index=False)


def run_bench_stats(args: argparse.Namespace) -> int:
    """``cytotrial bench-stats``: check the arguments, run :func:`bench_stats`."""
    if args.trials < 1:
        raise ConfigError(f"bench-stats: --trials must be at least 1, not {args.trials}")
    if min(args.per_arm) < 3:
        raise ConfigError(f"bench-stats: --per-arm must be at least 3, not {min(args.per_arm)}")
    if args.jobs < 1:
        raise ConfigError(f"bench-stats: --jobs must be at least 1, not {args.jobs}")
    if min(args.effects) <= 0 or args.dropout_effect <= 0:
        bad = min(*args.effects, args.dropout_effect)
        raise ConfigError(f"bench-stats: --effects must be positive, not {bad}")
    bench_stats(
        trials=args.trials,
        per_arm=args.per_arm,
        seed=args.seed,
        effects=args.effects,
        scenarios=args.scenarios,
        dropout_effect=args.dropout_effect,
        jobs=args.jobs,
    )
    return 0
