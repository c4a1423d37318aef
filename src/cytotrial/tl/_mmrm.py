"""MMRM: change from baseline at every post-baseline visit, unstructured covariance, Satterthwaite df.

The model of one feature x compartment x measure::

    change ~ baseline + arm + visit + arm:visit + baseline:visit

with the visits of a patient correlated (one variance per visit and one correlation per pair of
visits: unstructured), fitted by REML (see :mod:`._mmrm_fit`). It is written in cell-means form
(one mean per arm and visit, one baseline slope per visit, the baseline centred at its mean over
the analysed observations), which spans the same model as R's treatment coding, so that every
cell mean is the ``emmeans`` adjusted mean at the mean baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import _mmrm_cov, _mmrm_fit
from ._analysis import baseline_visits, visit_order

__all__ = ["MMRM_COLUMNS", "MMRM_COVARIANCES", "mmrm", "mmrm_models"]

#: Columns of :func:`mmrm` (``q_value`` is NaN here: the multiplicity code fills it).
MMRM_COLUMNS: list[str] = [
    "population", "compartment", "measure", "visit", "contrast", "estimate", "se", "df",
    "ci_low", "ci_high", "p_value", "q_value", "n_patients", "n_obs", "covariance", "note",
]  # fmt: skip

#: Covariance structures in their fallback order (``covariance`` column values, besides
#: ``ancova`` for a single post-baseline visit).
MMRM_COVARIANCES: tuple[str, ...] = _mmrm_cov.STRUCTURES

_LABELS = ("population", "compartment", "measure")
_MIN_PAIRS = 3  # patients seen at both visits of a pair (unstructured) or at a lag (Toeplitz)


@dataclass(frozen=True)
class _Design:
    """The cell-means design of one model."""

    x: np.ndarray
    names: list[tuple]  # ("mean", arm, visit) or ("slope", visit)
    visits: list[str]
    arms: list[str]
    visit_pos: np.ndarray
    patient: np.ndarray  # patient codes 0 .. n_patients - 1
    notes: list[str]

    def wide(self, values: np.ndarray) -> np.ndarray:
        """Patients x visits array of per-observation ``values`` (NaN where not observed)."""
        out = np.full((int(self.patient.max()) + 1, len(self.visits)), np.nan)
        out[self.patient, self.visit_pos] = values
        return out


def _ordered_visits(data: pd.DataFrame, visits: Sequence[str] | None) -> list[str]:
    """The visit order (given, categories, cycle and day, or appearance), checked against data."""
    present = [str(v) for v in dict.fromkeys(data["visit"])]
    if visits is None:
        if isinstance(data["visit"].dtype, pd.CategoricalDtype):
            visits = [str(v) for v in data["visit"].cat.categories]
        elif {"cycle", "day"} <= set(data.columns):
            visits = visit_order(data)
        else:
            visits = present
    unknown = sorted(set(present) - {str(v) for v in visits})
    if unknown:
        raise ValueError(f"visits not in the visit order: {', '.join(unknown)}")
    return [str(v) for v in visits]


def _clean(data: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("patient_id", "arm", "visit", "baseline", "change") if c not in data]
    if missing:
        raise ValueError(f"mmrm input lacks columns: {', '.join(missing)}")
    ok = np.isfinite(data["baseline"].to_numpy(dtype=float)) & np.isfinite(
        data["change"].to_numpy(dtype=float)
    )
    out = data.loc[ok].assign(
        patient_id=data.loc[ok, "patient_id"].astype(str),
        arm=data.loc[ok, "arm"].astype(str),
        visit=data.loc[ok, "visit"].astype(str),
    )
    if out.duplicated(["patient_id", "visit"]).any():
        raise ValueError("mmrm input has more than one row for a patient and visit")
    if out.drop_duplicates(["patient_id", "arm"])["patient_id"].duplicated().any():
        raise ValueError("mmrm input has a patient in more than one arm")
    return out


def _design(data: pd.DataFrame, visits: list[str], arms: list[str]) -> _Design:
    """Columns: a mean per observed arm x visit cell, a baseline slope per visit (if estimable)."""
    arm = data["arm"].to_numpy()
    visit = data["visit"].to_numpy()
    centred = data["baseline"].to_numpy(dtype=float) - float(data["baseline"].mean())
    names, cols, notes = [], [], []
    for v in visits:
        at = visit == v
        for a in arms:
            cell = at & (arm == a)
            if cell.any():
                names.append(("mean", a, v))
                cols.append(cell.astype(float))
        slope = np.where(at, centred, 0.0)
        trial = np.column_stack(cols + [slope])
        if np.linalg.matrix_rank(trial) == trial.shape[1]:
            names.append(("slope", v))
            cols.append(slope)
        else:
            notes.append(f"no baseline slope at {v} (not estimable)")
    pos = {v: i for i, v in enumerate(visits)}
    visit_pos = np.array([pos[v] for v in visit])
    patient = pd.factorize(data["patient_id"])[0]
    return _Design(np.column_stack(cols), names, visits, arms, visit_pos, patient, notes)


def _too_few(structure: str, design: _Design) -> str:
    """Why ``structure`` cannot be fitted on this design before trying (``""``: try it)."""
    t = len(design.visits)
    q = _mmrm_cov.n_parameters(structure, t)
    n, p = design.x.shape
    if n - p <= q:
        return f"{n} observations for {p} fixed effects and {q} covariance parameters"
    if structure == "compound_symmetry" or t == 1:
        return ""
    for i, v in enumerate(design.visits):
        at = design.visit_pos == i
        k = sum(1 for name in design.names if name[-1] == v)
        if at.sum() < k + 2:
            return f"{v}: {int(at.sum())} observations for {k} fixed effects"
    seen = np.isfinite(design.wide(np.zeros(n))).astype(int)
    together = seen.T @ seen
    if structure == "unstructured":
        i, j = np.triu_indices(t, 1)
        worst = int(np.argmin(together[i, j]))
        if together[i[worst], j[worst]] < _MIN_PAIRS:
            a, b = design.visits[i[worst]], design.visits[j[worst]]
            return f"{int(together[i[worst], j[worst]])} patients seen at both {a} and {b}"
    if structure == "heterogeneous_toeplitz":
        for lag in range(1, t):
            if np.trace(together, offset=lag) < _MIN_PAIRS:
                return f"fewer than {_MIN_PAIRS} pairs of visits {lag} apart"
    return ""


def _start_covariance(y: np.ndarray, design: _Design) -> np.ndarray:
    """Positive-definite moment estimate of the visits' covariance from OLS residuals."""
    beta = np.linalg.lstsq(design.x, y, rcond=None)[0]
    res = design.wide(y - design.x @ beta)
    t = len(design.visits)
    var = np.array([np.mean(col[np.isfinite(col)] ** 2) for col in res.T])
    positive = var[var > 0]
    var = np.where(var > 0, var, positive.mean() if positive.size else 1.0)
    corr = np.eye(t)
    for i, j in zip(*np.triu_indices(t, 1)):
        both = np.isfinite(res[:, i]) & np.isfinite(res[:, j])
        if both.sum() >= _MIN_PAIRS:
            a, b = res[both, i], res[both, j]
            denom = math.sqrt(float(a @ a) * float(b @ b))
            corr[i, j] = corr[j, i] = 0.9 * float(a @ b) / denom if denom > 0 else 0.0
    eig, vec = np.linalg.eigh(corr)
    corr = (vec * np.clip(eig, 0.05, None)) @ vec.T
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    sd = np.sqrt(var)
    return corr * np.outer(sd, sd)


class _Fitted(NamedTuple):
    """The fit of one model: its data, the fit (None: none), the outcome's scale, notes."""

    problem: _mmrm_fit.Problem
    fit: _mmrm_fit.Fit | None
    scale: float
    notes: list[str]


def _fit_first(data: pd.DataFrame, design: _Design, covariance: str) -> _Fitted:
    """Fit the structures from ``covariance`` on in fallback order; the first that fits wins."""
    y_raw = data["change"].to_numpy(dtype=float)
    scale = float(np.std(y_raw))
    prob = _mmrm_fit.problem(
        y_raw / (scale or 1.0), design.x, design.patient, design.visit_pos, len(design.visits)
    )
    if scale <= 1e-12 * max(1.0, float(np.max(np.abs(y_raw)))):
        return _Fitted(prob, None, 1.0, ["not fitted: the changes do not vary"])
    if len(design.visits) == 1:
        order = ["unstructured"]
    else:
        order = list(_mmrm_cov.STRUCTURES[_mmrm_cov.STRUCTURES.index(covariance) :])
    start = _start_covariance(y_raw / scale, design)
    failed = []
    for structure in order:
        reason = _too_few(structure, design)
        if not reason:
            try:
                fitted = _mmrm_fit.fit(prob, structure, _mmrm_cov.start(structure, start))
            except _mmrm_fit.FitError as error:
                reason = str(error)
            else:
                notes = [f"{s} not fitted ({r})" for s, r in failed]
                return _Fitted(prob, fitted, scale, notes)
        failed.append((structure, reason))
    return _Fitted(prob, None, scale, ["not fitted: " + "; ".join(f"{s}: {r}" for s, r in failed)])


def _contrasts(
    design: _Design, reference_arm: str
) -> list[tuple[str, str, np.ndarray | None, tuple[str, ...]]]:
    """(visit, label, contrast vector or None if not estimable, arms counted) per output row."""
    index = {name: i for i, name in enumerate(design.names)}
    p = len(design.names)
    others = [a for a in design.arms if a != reference_arm]
    rows = []
    for v in design.visits:
        for a in others:
            c = None
            if ("mean", a, v) in index and ("mean", reference_arm, v) in index:
                c = np.zeros(p)
                c[index[("mean", a, v)]] = 1.0
                c[index[("mean", reference_arm, v)]] = -1.0
            rows.append((v, f"{a} - {reference_arm}", c, (a, reference_arm)))
        for a in [reference_arm] + others:
            c = None
            if ("mean", a, v) in index:
                c = np.zeros(p)
                c[index[("mean", a, v)]] = 1.0
            rows.append((v, f"{a} adjusted mean", c, (a,)))
    return rows


def _inference(estimate: float, se: float, df: float, alpha: float) -> dict:
    if not (se > 0 and math.isfinite(se) and df > 0):
        return dict(ci_low=math.nan, ci_high=math.nan, p_value=math.nan)
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * sps.t.sf(abs(estimate / se), df))
    return dict(ci_low=estimate - half, ci_high=estimate + half, p_value=p)


def _rows(clean: pd.DataFrame, design: _Design, fitted: _Fitted, reference_arm: str) -> list:
    """Per output row: visit, contrast, estimate, se, df, n_patients and note."""
    counts = clean.groupby(["visit", "arm"]).size()
    rows = []
    for v, contrast, c, counted in _contrasts(design, reference_arm):
        notes = fitted.notes + design.notes
        est = se = df = math.nan
        if c is None:
            absent = [a for a in counted if not counts.get((v, a), 0)]
            notes = notes + [f"not estimable: no {' or '.join(absent)} patients at {v}"]
        elif fitted.fit is not None:
            est, se, df = _mmrm_fit.satterthwaite(fitted.problem, fitted.fit, c)
            est, se = est * fitted.scale, se * fitted.scale
        n_patients = int(sum(counts.get((v, a), 0) for a in counted))
        rows.append(
            dict(
                visit=v,
                contrast=contrast,
                estimate=est,
                se=se,
                df=df,
                n_patients=n_patients,
                note="; ".join(notes),
            )
        )
    return rows


def mmrm(
    data: pd.DataFrame,
    *,
    reference_arm: str,
    alpha: float,
    visits: Sequence[str] | None = None,
    covariance: str = "unstructured",
) -> pd.DataFrame:
    """MMRM of the change from baseline of one feature x compartment x measure.

    ``change ~ baseline + arm + visit + arm:visit + baseline:visit``, the visits of a patient
    correlated with an unstructured covariance (one variance per visit, one correlation per pair
    of visits), fitted by REML on every observation (a patient's missing visits drop only those
    rows). Contrasts as R's ``emmeans`` makes them, at the mean baseline of the analysed
    observations: each arm's adjusted mean change at each visit and the difference of each arm
    from the reference arm at each visit, with Satterthwaite degrees of freedom (the gradient of
    the contrast's variance in the covariance parameters and the inverse observed REML
    information, as the R package ``mmrm`` documents; Kenward-Roger is not offered). With one
    post-baseline visit the model is the ANCOVA ``change ~ baseline + arm`` (residual df).

    When a structure cannot be fitted (too few observations per visit or patients per pair of
    visits, no convergence, a correlation at +-1, a REML information that is not positive
    definite) the next one is tried, in this order: ``unstructured``, ``heterogeneous_toeplitz``,
    ``heterogeneous_compound_symmetry``, ``compound_symmetry``.

    Parameters
    ----------
    data
        One row per patient and post-baseline visit: ``patient_id, arm, visit, baseline`` (log2
        baseline value), ``change`` (log2 change from baseline); optional ``population,
        compartment, measure`` (first value copied to the output). Rows with a non-finite
        ``baseline`` or ``change`` are dropped.
    reference_arm
        The arm the others are compared with.
    alpha
        Level of the intervals (``1 - alpha``).
    visits
        Visits in clinical order (default: the categories of an ordered ``visit``, else by
        ``cycle`` and ``day`` if given, else order of appearance). Visits without rows are left
        out.
    covariance
        The structure to try first (one of :data:`MMRM_COVARIANCES`); later ones are fallbacks.

    Returns
    -------
    pandas.DataFrame
        :data:`MMRM_COLUMNS`; per visit, ``"<arm> - <reference>"`` rows then ``"<arm> adjusted
        mean"`` rows (reference arm first). ``n_patients``: patients of the row's arm(s) observed
        at that visit; ``n_obs``: observations of the model. ``covariance``: the structure used
        (``ancova`` for one visit, ``""`` if none could be fitted); ``note``: the structures that
        failed and why, contrasts not estimable. ``q_value`` is NaN (set by the multiplicity
        code).

    Raises
    ------
    ValueError
        Missing columns, two rows for a patient and visit, a patient in two arms, a visit not in
        ``visits``, an unknown ``covariance``.
    """
    if covariance not in _mmrm_cov.STRUCTURES:
        raise ValueError(f"unknown covariance {covariance!r}: one of {', '.join(MMRM_COVARIANCES)}")
    clean = _clean(data)
    order = _ordered_visits(data, visits)
    label = {c: (str(data[c].iloc[0]) if c in data and len(data) else "") for c in _LABELS}
    ordered = [v for v in order if v in set(clean["visit"])]
    arms = [reference_arm] + sorted(set(clean["arm"]) - {reference_arm})
    if clean.empty:
        return pd.DataFrame(columns=MMRM_COLUMNS)
    design = _design(clean, ordered, arms)
    fitted = _fit_first(clean, design, covariance)
    used = ""
    if fitted.fit is not None:
        used = "ancova" if len(ordered) == 1 else fitted.fit.structure
    rows = [
        dict(
            label,
            **row,
            **_inference(row["estimate"], row["se"], row["df"], alpha),
            q_value=math.nan,
            n_obs=len(clean),
            covariance=used,
        )
        for row in _rows(clean, design, fitted, reference_arm)
    ]
    return pd.DataFrame(rows, columns=MMRM_COLUMNS)


def mmrm_models(
    log2fc: pd.DataFrame,
    *,
    reference_arm: str,
    baseline_visit: str | Mapping[str, str],
    alpha: float,
    visits: Sequence[str] | None = None,
    covariance: str = "unstructured",
) -> pd.DataFrame:
    """:func:`mmrm` for every population x compartment x measure of a change table.

    Parameters
    ----------
    log2fc
        Output of :func:`log2_fold_changes` (``baseline_log2_value`` is the baseline, ``log2fc``
        the change; rows at the compartment's baseline visit are left out).
    reference_arm, alpha, covariance
        As in :func:`mmrm`.
    baseline_visit
        As in :func:`log2_fold_changes`.
    visits
        Visits in clinical order (default: by ``cycle`` and ``day``).

    Returns
    -------
    pandas.DataFrame
        :data:`MMRM_COLUMNS`, models in order of first appearance.
    """
    if log2fc.empty:
        return pd.DataFrame(columns=MMRM_COLUMNS)
    if visits is None:
        visits = visit_order(log2fc)
    baselines = baseline_visits(log2fc, baseline_visit)
    after = log2fc[log2fc["visit"].astype(str) != log2fc["compartment"].map(baselines)]
    tables = []
    for _, group in after.groupby(list(_LABELS), sort=False):
        data = group.rename(columns={"baseline_log2_value": "baseline", "log2fc": "change"})
        tables.append(
            mmrm(
                data, reference_arm=reference_arm, alpha=alpha, visits=visits, covariance=covariance
            )
        )
    if not tables:
        return pd.DataFrame(columns=MMRM_COLUMNS)
    return pd.concat(tables, ignore_index=True)[MMRM_COLUMNS]
