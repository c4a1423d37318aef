"""REML fit of a GLS with a block-diagonal covariance, and Satterthwaite degrees of freedom.

``y_i = X_i beta + e_i``, ``e_i ~ N(0, Sigma_i)``, ``Sigma_i`` the rows and columns of the
visits x visits covariance ``Sigma(theta)`` at the visits patient ``i`` was observed. Patients
with the same visits share ``Sigma_i^-1``, so the sums run over visit patterns.

``-2 l_R(theta) = sum_i log|Sigma_i| + log|X' V^-1 X| + r' V^-1 r + (n - p) log(2 pi)``, with
``r = y - X beta_hat(theta)``. Its gradient is ``tr(G dSigma / dtheta_j)`` with
``G = sum_i Sigma_i^-1 - Sigma_i^-1 (r_i r_i' + X_i Phi X_i') Sigma_i^-1`` (embedded at the
patient's visits), ``Phi = (X' V^-1 X)^-1``. ``theta`` is found by BFGS with that gradient
(each parameter kept within wide limits by a quadratic wall; a fit at a limit fails); where its
gradient is not yet below 1e-6 (on the scale of a standardised outcome), Newton steps on the
observed Hessian (central differences of the analytic gradient) polish it.

Satterthwaite degrees of freedom of a contrast ``c' beta`` (as the R package ``mmrm`` documents
them, and as ``emmeans`` computes them for ``nlme::gls``): ``v(theta) = c' Phi(theta) c``,
``df = 2 v^2 / (g' A g)``, ``g = dv / dtheta``, ``A`` the inverse of the observed REML
information (the Hessian of ``-l_R``) at the estimate. ``df`` is infinite where ``g' A g`` is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _mmrm_cov

_LOG_2PI = math.log(2.0 * math.pi)
_HESSIAN_STEP = 1e-5
_GRADIENT_TOL = 1e-4  # on -2 l_R of the standardised outcome
_POLISHED = 1e-6  # no Newton polish below this gradient
_BOUND = {"log": 15.0, "free": 1e4, "atanh": 8.0, "logit": 20.0}
_AT_BOUND = 0.999
_WALL = 1e3
_SINGULAR = 1e-6  # smallest eigenvalue of the correlation matrix of a usable fit


class FitError(Exception):
    """The REML fit of one covariance structure failed; the message says why (one line)."""


@dataclass(frozen=True)
class Pattern:
    """Patients observed at the same visits: ``y`` is ``n x t``, ``x`` is ``n x t x p``."""

    idx: np.ndarray
    y: np.ndarray
    x: np.ndarray


@dataclass(frozen=True)
class Problem:
    """The data of one model, grouped by visit pattern."""

    patterns: tuple[Pattern, ...]
    n_visits: int
    n_obs: int
    n_fixed: int


@dataclass(frozen=True)
class Gls:
    """The GLS solution at one covariance: ``-2 l_R``, ``beta``, ``Phi`` and per-pattern parts."""

    objective: float
    beta: np.ndarray
    phi: np.ndarray
    sinv: tuple[np.ndarray, ...]
    xs: tuple[np.ndarray, ...]  # Sigma_i^-1 X_i, n x t x p per pattern


@dataclass(frozen=True)
class Fit:
    """A converged REML fit of one covariance structure."""

    structure: str
    theta: np.ndarray
    sigma: np.ndarray
    gls: Gls
    jacobian: np.ndarray  # dSigma / dtheta, T x T x q
    information: np.ndarray  # Hessian of -l_R in theta


def problem(
    y: np.ndarray, x: np.ndarray, patient: np.ndarray, visit: np.ndarray, n_visits: int
) -> Problem:
    """Group observations (``visit``: position ``0 .. n_visits - 1``) by their patient's visits."""
    order = np.lexsort((visit, patient))
    y, x, patient, visit = y[order], x[order], patient[order], visit[order]
    starts = np.flatnonzero(np.r_[True, patient[1:] != patient[:-1]])
    bounds = np.r_[starts, len(patient)]
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, s in enumerate(starts):
        groups.setdefault(tuple(visit[s : bounds[k + 1]].tolist()), []).append(s)
    patterns = []
    for key, firsts in groups.items():
        rows = np.array([np.arange(s, s + len(key)) for s in firsts])
        patterns.append(Pattern(idx=np.array(key), y=y[rows], x=x[rows]))
    return Problem(tuple(patterns), n_visits, len(y), x.shape[1])


def gls(prob: Problem, sigma: np.ndarray) -> Gls | None:
    """GLS estimate and ``-2 l_R`` at ``sigma``; None if a block is not positive definite."""
    p = prob.n_fixed
    info = np.zeros((p, p))
    xty = np.zeros(p)
    yty = 0.0
    logdet = 0.0
    sinvs, xss = [], []
    for pat in prob.patterns:
        try:
            chol = np.linalg.cholesky(sigma[np.ix_(pat.idx, pat.idx)])
        except np.linalg.LinAlgError:
            return None
        half = np.linalg.inv(chol)
        sinv = half.T @ half
        logdet += len(pat.y) * 2.0 * float(np.sum(np.log(np.diag(chol))))
        xs = sinv @ pat.x  # Sigma_i^-1 X_i for every patient i
        flat = xs.reshape(-1, p)
        info += flat.T @ pat.x.reshape(-1, p)
        xty += flat.T @ pat.y.ravel()
        yty += float(np.sum((pat.y @ sinv) * pat.y))
        sinvs.append(sinv)
        xss.append(xs)
    try:
        chol_info = np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        return None
    half = np.linalg.inv(chol_info)
    phi = half.T @ half
    beta = phi @ xty
    objective = (
        logdet
        + 2.0 * float(np.sum(np.log(np.diag(chol_info))))
        + (yty - float(xty @ beta))
        + (prob.n_obs - p) * _LOG_2PI
    )
    return Gls(objective, beta, phi, tuple(sinvs), tuple(xss))


def _score_matrix(prob: Problem, sol: Gls) -> np.ndarray:
    """``G``: ``d(-2 l_R) = tr(G dSigma)``."""
    g = np.zeros((prob.n_visits, prob.n_visits))
    for pat, sinv, xs in zip(prob.patterns, sol.sinv, sol.xs):
        n, t, p = xs.shape
        sr = (pat.y - pat.x @ sol.beta) @ sinv
        left = xs.transpose(1, 0, 2).reshape(t, n * p)
        right = (xs @ sol.phi).transpose(1, 0, 2).reshape(t, n * p)
        g[np.ix_(pat.idx, pat.idx)] += n * sinv - sr.T @ sr - left @ right.T
    return g


def _objective(prob: Problem, structure: str, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """``-2 l_R`` and its gradient in ``theta`` (inf where the covariance is not usable)."""
    sigma = _mmrm_cov.covariance(structure, theta, prob.n_visits)
    sol = gls(prob, sigma)
    if sol is None or not math.isfinite(sol.objective):
        return math.inf, np.zeros_like(theta)
    jac = _mmrm_cov.jacobian(structure, theta, prob.n_visits)
    return sol.objective, np.einsum("ab,abj->j", _score_matrix(prob, sol), jac)


def _hessian(prob: Problem, structure: str, theta: np.ndarray) -> np.ndarray:
    """Hessian of ``-2 l_R``: central differences of the analytic gradient, symmetrised."""
    q = len(theta)
    out = np.empty((q, q))
    for j in range(q):
        step = np.zeros(q)
        step[j] = _HESSIAN_STEP
        up = _objective(prob, structure, theta + step)[1]
        down = _objective(prob, structure, theta - step)[1]
        out[:, j] = (up - down) / (2.0 * _HESSIAN_STEP)
    return (out + out.T) / 2.0


def _bounds(structure: str, t: int) -> list[tuple[float, float]]:
    kinds = {
        "unstructured": ["log"] * t + ["free"] * (t * (t - 1) // 2),
        "heterogeneous_toeplitz": ["log"] * t + ["atanh"] * (t - 1),
        "heterogeneous_compound_symmetry": ["log"] * t + ["logit"],
        "compound_symmetry": ["log", "logit"],
    }[structure]
    return [(-_BOUND[k], _BOUND[k]) for k in kinds]


def _newton(
    prob: Problem, structure: str, theta: np.ndarray, *, max_iter: int = 20
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Newton steps with backtracking from ``theta``: ``theta, -2 l_R, gradient, Hessian``."""
    f, grad = _objective(prob, structure, theta)
    hess = _hessian(prob, structure, theta)
    for _ in range(max_iter):
        try:
            chol = np.linalg.cholesky(hess)
            step = -np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
        except np.linalg.LinAlgError:
            break
        decrement = -float(grad @ step)
        if decrement < 1e-14:
            break
        scale = 1.0
        while scale > 1e-4:
            f_new, grad_new = _objective(prob, structure, theta + scale * step)
            if f_new <= f - 1e-4 * scale * decrement:
                break
            scale /= 2.0
        else:
            break
        theta, f, grad = theta + scale * step, f_new, grad_new
        hess = _hessian(prob, structure, theta)
    return theta, f, grad, hess


def fit(prob: Problem, structure: str, theta0: np.ndarray) -> Fit:
    """REML fit of ``structure`` from ``theta0``.

    Raises
    ------
    FitError
        No convergence, a variance or correlation at its bound, a covariance or REML
        information that is not positive definite.
    """
    from scipy import optimize

    bounds = _bounds(structure, prob.n_visits)
    limit = np.array([hi for _, hi in bounds])

    def penalised(th: np.ndarray) -> tuple[float, np.ndarray]:
        # BFGS is unbounded: beyond a parameter's limit the objective is that at the limit
        # plus a steep quadratic wall, so that variances stay finite (such a fit fails below)
        inside = np.clip(th, -limit, limit)
        f, grad = _objective(prob, structure, inside)
        excess = th - inside
        return f + _WALL * float(excess @ excess), grad + 2.0 * _WALL * excess

    result = optimize.minimize(
        penalised, theta0, jac=True, method="BFGS", options={"maxiter": 500, "gtol": 1e-7}
    )
    if not np.isfinite(result.fun):
        raise FitError("no finite REML likelihood")
    theta = np.clip(np.asarray(result.x, dtype=float), -limit, limit)
    _, grad = _objective(prob, structure, theta)
    if np.max(np.abs(grad)) > _POLISHED:
        theta, _, grad, hess = _newton(prob, structure, theta)
    else:
        hess = _hessian(prob, structure, theta)
    if any(abs(th) >= _AT_BOUND * hi for th, (_, hi) in zip(theta, bounds)):
        raise FitError("a variance or correlation at its limit")
    sigma = _mmrm_cov.covariance(structure, theta, prob.n_visits)
    sd = np.sqrt(np.diag(sigma))
    if np.linalg.eigvalsh(sigma / np.outer(sd, sd))[0] <= _SINGULAR:
        raise FitError("singular covariance, a correlation near 1 or -1")
    if not np.all(np.isfinite(grad)) or np.max(np.abs(grad)) > _GRADIENT_TOL:
        raise FitError("REML did not converge")
    eig = np.linalg.eigvalsh(hess)
    if not np.all(np.isfinite(eig)) or eig[0] <= 1e-8 * max(eig[-1], 1.0):
        raise FitError("REML information not positive definite")
    sol = gls(prob, sigma)
    if sol is None:
        raise FitError("covariance matrix not positive definite")
    jac = _mmrm_cov.jacobian(structure, theta, prob.n_visits)
    return Fit(structure, theta, sigma, sol, jac, hess / 2.0)


def satterthwaite(prob: Problem, fitted: Fit, contrast: np.ndarray) -> tuple[float, float, float]:
    """Estimate, standard error and Satterthwaite degrees of freedom of ``contrast' beta``."""
    sol = fitted.gls
    w = sol.phi @ contrast
    var = float(contrast @ w)
    c = np.zeros((prob.n_visits, prob.n_visits))
    for pat, xs in zip(prob.patterns, sol.xs):
        u = xs @ w
        c[np.ix_(pat.idx, pat.idx)] += u.T @ u
    grad = np.einsum("ab,abj->j", c, fitted.jacobian)
    spread = float(grad @ np.linalg.solve(fitted.information, grad))
    df = 2.0 * var**2 / spread if spread > 0 else math.inf
    return float(contrast @ sol.beta), math.sqrt(max(var, 0.0)), df
