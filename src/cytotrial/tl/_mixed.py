"""Linear mixed models of the log2 value: arm, visit and their interaction, random patient intercept."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ._analysis import baseline_visits, visit_order
from ._families import interval_notes, secondary_families
from ._measures import _sorted

if TYPE_CHECKING:
    from statsmodels.regression.mixed_linear_model import MixedLMResults

__all__ = ["mixed_models"]

_INTERCEPT = "Intercept"
_FAMILY = ("q_value", "family")

_MIXED_COLUMNS = [
    "population", "compartment", "measure", "term", "estimate", "ci_low", "ci_high", "p_value",
    "q_value", "family", "n_obs", "n_patients", "converged", "random_intercept_var", "note",
]  # fmt: skip


def _design(
    data: pd.DataFrame, *, reference_arm: str, baseline_visit: str, visits: Sequence[str]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Treatment-coded design: intercept, arm, visit, arm x visit; drops what is not estimable."""
    names, cols = _design_columns(
        data, reference_arm=reference_arm, baseline_visit=baseline_visit, visits=visits
    )
    kept_names: list[str] = []
    kept_cols: list[np.ndarray] = []
    dropped: list[str] = []
    for name, col in zip(names, cols):
        trial = np.column_stack(kept_cols + [col])
        if col.any() and np.linalg.matrix_rank(trial) == trial.shape[1]:
            kept_names.append(name)
            kept_cols.append(col)
        else:
            dropped.append(name)
    return np.column_stack(kept_cols), kept_names, dropped


def _design_columns(
    data: pd.DataFrame, *, reference_arm: str, baseline_visit: str, visits: Sequence[str]
) -> tuple[list[str], list[np.ndarray]]:
    """Every term of the full treatment-coded design, in model order, with its column."""
    arms = sorted(set(data["arm"]) - {reference_arm}) if reference_arm in set(data["arm"]) else []
    present = set(data["visit"])
    later = [v for v in visits if v in present and v != baseline_visit]
    arm = data["arm"].to_numpy()
    visit = data["visit"].to_numpy()
    names = [_INTERCEPT]
    cols = [np.ones(len(data))]
    for a in arms:
        names.append(f"arm[{a}]")
        cols.append((arm == a).astype(float))
    for v in later:
        names.append(f"visit[{v}]")
        cols.append((visit == v).astype(float))
    for a in arms:
        for v in later:
            names.append(f"arm[{a}]:visit[{v}]")
            cols.append(((arm == a) & (visit == v)).astype(float))
    return names, cols


def _gls_cov(x: np.ndarray, groups: np.ndarray, *, scale: float, re_var: float) -> np.ndarray:
    """Covariance of the fixed effects given the variance components (random intercept model)."""
    info = np.zeros((x.shape[1], x.shape[1]))
    for g in np.unique(groups):
        xi = x[groups == g]
        k = len(xi)
        # V^-1 = (I - re_var / (scale + k re_var) 11') / scale
        s = xi.sum(axis=0)
        info += (xi.T @ xi - np.outer(s, s) * re_var / (scale + k * re_var)) / scale
    return np.linalg.pinv(info)


def _fit_mixedlm(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray
) -> tuple[MixedLMResults, list[str]]:
    """REML fit of a random-intercept model, and the first line of each warning about the fit."""
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, SingularMatrixWarning

    fit_warnings = (ConvergenceWarning, SingularMatrixWarning, RuntimeWarning)
    with warnings.catch_warnings(record=True) as caught:
        # statsmodels reports a hard fit with ConvergenceWarning / SingularMatrixWarning, and on a
        # near-degenerate likelihood numpy's RuntimeWarnings (e.g. "invalid value encountered in
        # log") come from inside the optimiser: each is about this fit, so it goes into its note.
        for category in fit_warnings:
            warnings.simplefilter("always", category)
        # statsmodels calls a variance component below an absolute 0.01 "on the boundary";
        # _fit_one judges a zero variance relative to the residual variance instead. A retry with
        # the next optimiser is no problem of the fit (a final failure is warned about anyway).
        for message in ("The MLE may be on the boundary", "Retrying MixedLM optimization"):
            warnings.filterwarnings("ignore", message=message, category=ConvergenceWarning)
        result = MixedLM(y, x, groups=groups).fit(reml=True)
    notes = []
    for w in caught:
        if issubclass(w.category, fit_warnings):
            notes.append(str(w.message).splitlines()[0])
        else:  # not about the fit: to the caller's warning filters, as if never caught
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return result, notes


def _failed(info: dict[str, Any], note: str) -> tuple[list[dict], dict]:
    """The one ``model`` row of a model that was not fitted, and its info with the reason."""
    row = dict(term="model", estimate=math.nan, ci_low=math.nan, ci_high=math.nan, p_value=math.nan)
    return [row], dict(info, note=note)


def _fit_one(
    data: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str,
    visits: Sequence[str],
    alpha: float,
) -> tuple[list[dict], dict]:
    """Fit one random-intercept model; a design that cannot be fitted is reported in ``note``."""
    n_obs = len(data)
    n_patients = int(data["patient_id"].nunique())
    info = dict(n_obs=n_obs, n_patients=n_patients, converged=False, random_intercept_var=math.nan)
    if baseline_visit not in set(data["visit"]):
        return _failed(info, f"not fitted: no {baseline_visit} samples")
    if n_patients < 2:
        return _failed(info, "not fitted: fewer than 2 patients")
    x, names, dropped = _design(
        data, reference_arm=reference_arm, baseline_visit=baseline_visit, visits=visits
    )
    if n_obs <= x.shape[1] + 1:
        return _failed(info, f"not fitted: {n_obs} observations for {x.shape[1]} fixed effects")
    y = data["log2_value"].to_numpy(dtype=float)
    groups = data["patient_id"].to_numpy()
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        return _failed(info, "not fitted: the log2 values do not vary")
    notes = [f"not estimable: {', '.join(dropped)}"] if dropped else []
    try:
        result, fit_notes = _fit_mixedlm(y, x, groups)
    except np.linalg.LinAlgError as error:  # a singular Hessian or covariance of a degenerate fit
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return _failed(info, "; ".join(notes + [f"fit failed: {message}"]))
    fe = np.asarray(result.fe_params, dtype=float)
    scale = float(result.scale)
    re_var = float(np.asarray(result.cov_re)[0, 0])
    with np.errstate(invalid="ignore"):
        bse = np.asarray(result.bse_fe, dtype=float)
    notes += [text for text in dict.fromkeys(fit_notes) if text not in notes]
    if not np.all(np.isfinite(bse)) and np.isfinite(scale) and scale > 0:
        cov = _gls_cov(x, groups, scale=scale, re_var=max(re_var, 0.0))
        bse = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        notes.append("fixed-effect standard errors from the GLS covariance (Hessian not usable)")
    if np.isfinite(re_var) and re_var <= 1e-6 * max(scale, 1e-12):
        notes.append("random-intercept variance is 0 (singular fit)")
    converged = bool(result.converged) and bool(np.all(np.isfinite(fe)))
    return _wald_rows(names, fe, bse, alpha=alpha), dict(
        info, converged=converged, random_intercept_var=re_var, note="; ".join(notes)
    )


def _wald_rows(
    names: Sequence[str], fe: np.ndarray, bse: np.ndarray, *, alpha: float
) -> list[dict]:
    """One row per fixed effect: estimate, Wald interval and z-test p (none for the intercept)."""
    z = sps.norm.ppf(1 - alpha / 2)
    rows = []
    for name, est, se in zip(names, fe, bse):
        p = 2 * sps.norm.sf(abs(est / se)) if se > 0 and np.isfinite(se) else math.nan
        rows.append(
            dict(
                term=name,
                estimate=float(est),
                ci_low=float(est - z * se) if np.isfinite(se) else math.nan,
                ci_high=float(est + z * se) if np.isfinite(se) else math.nan,
                p_value=math.nan if name == _INTERCEPT else float(p),
            )
        )
    return rows


def mixed_models(
    values: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str | Mapping[str, str],
    visits: Sequence[str] | None = None,
    alpha: float,
) -> pd.DataFrame:
    """Linear mixed model of the log2 value per feature and compartment.

    ``log2_value ~ arm * visit + (1 | patient_id)``, treatment coding with the reference arm and
    the compartment's baseline visit as references, fitted by REML with statsmodels ``MixedLM``. Every sample
    counts, also of patients without a baseline sample. The ``arm[A]:visit[V]`` term is the
    difference between arms in the change from baseline to visit V (log2 scale).

    Parameters
    ----------
    values
        Output of :func:`measure_table`.
    reference_arm, baseline_visit
        The references of the treatment coding; ``baseline_visit`` one visit, or compartment ->
        visit (``""`` or a compartment left out: its earliest visit).
    visits
        Visit labels in clinical order (default: from the ``cycle`` and ``day`` columns).
    alpha
        Level of the Wald intervals (``1 - alpha``).

    Returns
    -------
    pandas.DataFrame
        Columns ``population, compartment, measure, term, estimate, ci_low, ci_high, p_value,
        q_value, family, n_obs, n_patients, converged, random_intercept_var, note``. Wald z
        tests; the intercept gets no p-value. The arm x visit terms (the arm difference in the
        change from baseline) form the family ``secondary:mixed_model:<compartment>``,
        Benjamini-Hochberg within it; the baseline-imbalance (``arm[A]``) and visit terms are
        estimates with intervals (``family`` ``estimate``, no q-value). A model that cannot be fitted gives one row with ``term`` =
        ``model``, ``converged`` False and the reason in ``note``.
    """
    if visits is None:
        visits = visit_order(values)
    baselines = baseline_visits(values, baseline_visit) if len(values) else {}
    finite = values[np.isfinite(values["log2_value"].to_numpy(dtype=float))]
    rows = []
    for (population, compartment), data in finite.groupby(
        ["population", "compartment"], sort=False
    ):
        data = data.sort_values(["patient_id", "cycle", "day"], kind="mergesort")
        terms, info = _fit_one(
            data,
            reference_arm=reference_arm,
            baseline_visit=baselines[compartment],
            visits=visits,
            alpha=alpha,
        )
        measure = data["measure"].iloc[0]
        for term in terms:
            rows.append(
                dict(
                    population=population, compartment=compartment, measure=measure, **term, **info
                )
            )
    table = pd.DataFrame(rows, columns=[c for c in _MIXED_COLUMNS if c not in _FAMILY])
    table["note"] = interval_notes(
        table, table["n_patients"].to_numpy(), alpha=alpha, note=table["note"]
    )
    interaction = table["term"].astype(str).str.contains(":", regex=False)
    table = secondary_families("mixed_model", table, by_compartment=True, estimate=~interaction)
    # keep term order within a model: sort only by population and compartment (stable)
    populations = list(dict.fromkeys(values["population"]))
    return _sorted(table[_MIXED_COLUMNS], ["population", "compartment"], populations=populations)
