"""Covariance structures of the MMRM: the visits x visits covariance from unconstrained parameters.

Every structure maps a real parameter vector ``theta`` to a positive-definite covariance matrix
(for every ``theta``, by construction), written with operations that also take complex input, so
that :func:`jacobian` gets exact derivatives by the complex step.

* ``unstructured``: ``Sigma = L L'``, ``L`` lower triangular with ``exp(theta)`` on the diagonal
  and free entries below it (``T (T + 1) / 2`` parameters).
* ``heterogeneous_toeplitz``: a standard deviation per visit (log) and a correlation per lag;
  the lags' correlations come from partial autocorrelations ``tanh(theta)`` by the
  Durbin-Levinson recursion, which spans exactly the positive-definite Toeplitz correlations
  (``2 T - 1`` parameters; R: ``corARMA(p = T - 1)`` with ``varIdent``).
* ``heterogeneous_compound_symmetry``: a standard deviation per visit and one correlation in
  ``(-1 / (T - 1), 1)`` (``T + 1``; R: ``corCompSymm`` with ``varIdent``).
* ``compound_symmetry``: one variance and one correlation (2; R: ``corCompSymm``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Structures in the order they are tried: a fit that fails falls back to the next one.
STRUCTURES: tuple[str, ...] = (
    "unstructured",
    "heterogeneous_toeplitz",
    "heterogeneous_compound_symmetry",
    "compound_symmetry",
)

_COMPLEX_STEP = 1e-30


def n_parameters(structure: str, n_visits: int) -> int:
    """Number of covariance parameters of ``structure`` over ``n_visits`` visits."""
    t = n_visits
    return {
        "unstructured": t * (t + 1) // 2,
        "heterogeneous_toeplitz": 2 * t - 1,
        "heterogeneous_compound_symmetry": t + 1,
        "compound_symmetry": 2,
    }[structure]


def _unstructured(theta: np.ndarray, t: int) -> np.ndarray:
    chol = np.zeros((t, t), dtype=theta.dtype)
    chol[np.diag_indices(t)] = np.exp(theta[:t])
    chol[np.tril_indices(t, -1)] = theta[t:]
    return chol @ chol.T


def _lag_correlations(pacf: np.ndarray) -> np.ndarray:
    """Correlations at lags ``0 .. k`` of a stationary series from its partial autocorrelations."""
    rho = [np.ones((), dtype=pacf.dtype)]
    coef: list = []  # AR coefficients of the order-(k-1) predictor
    for k, phi in enumerate(pacf, start=1):
        ahead = sum((coef[j] * rho[k - 1 - j] for j in range(k - 1)), start=0.0)
        back = sum((coef[j] * rho[j + 1] for j in range(k - 1)), start=0.0)
        rho.append(ahead + phi * (1.0 - back))
        coef = [coef[j] - phi * coef[k - 2 - j] for j in range(k - 1)] + [phi]
    return np.array(rho)


def _heterogeneous_toeplitz(theta: np.ndarray, t: int) -> np.ndarray:
    sd = np.exp(theta[:t])
    rho = _lag_correlations(np.tanh(theta[t:]))
    lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    return np.outer(sd, sd) * rho[lag]


def _exchangeable(logit: np.ndarray, t: int) -> np.ndarray:
    """Compound-symmetric correlation matrix, its correlation in ``(-1 / (t - 1), 1)``."""
    low = -1.0 / (t - 1)
    rho = low + (1.0 - low) / (1.0 + np.exp(-logit))
    return (1.0 - rho) * np.eye(t) + rho * np.ones((t, t))


def _heterogeneous_compound_symmetry(theta: np.ndarray, t: int) -> np.ndarray:
    sd = np.exp(theta[:t])
    return np.outer(sd, sd) * _exchangeable(theta[t], t)


def _compound_symmetry(theta: np.ndarray, t: int) -> np.ndarray:
    return np.exp(2.0 * theta[0]) * _exchangeable(theta[1], t)


_SIGMA: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "unstructured": _unstructured,
    "heterogeneous_toeplitz": _heterogeneous_toeplitz,
    "heterogeneous_compound_symmetry": _heterogeneous_compound_symmetry,
    "compound_symmetry": _compound_symmetry,
}


def covariance(structure: str, theta: np.ndarray, n_visits: int) -> np.ndarray:
    """The ``n_visits x n_visits`` covariance of ``structure`` at ``theta``."""
    return _SIGMA[structure](theta, n_visits)


def _unstructured_jacobian(theta: np.ndarray, t: int) -> np.ndarray:
    """``d(L L') = dL L' + L dL'`` for each entry of ``L``."""
    below = np.tril_indices(t, -1)
    chol = np.zeros((t, t))
    chol[np.diag_indices(t)] = np.exp(theta[:t])
    chol[below] = theta[t:]
    rows = np.concatenate([np.arange(t), below[0]])
    cols = np.concatenate([np.arange(t), below[1]])
    scale = np.concatenate([np.exp(theta[:t]), np.ones(len(theta) - t)])
    part = np.zeros((len(theta), t, t))
    part[np.arange(len(theta)), rows, :] = scale[:, None] * chol[:, cols].T  # dL L', row a
    return (part + part.transpose(0, 2, 1)).transpose(1, 2, 0)


def jacobian(structure: str, theta: np.ndarray, n_visits: int) -> np.ndarray:
    """``d Sigma / d theta_j`` as a ``T x T x q`` array (analytic, or complex step: exact)."""
    if structure == "unstructured":
        return _unstructured_jacobian(theta, n_visits)
    q = len(theta)
    out = np.empty((n_visits, n_visits, q))
    for j in range(q):
        shifted = theta.astype(complex)
        shifted[j] += 1j * _COMPLEX_STEP
        out[:, :, j] = covariance(structure, shifted, n_visits).imag / _COMPLEX_STEP
    return out


def _logit_correlation(rho: float, t: int) -> float:
    low = -1.0 / (t - 1)
    share = min(max((rho - low) / (1.0 - low), 0.05), 0.95)
    return float(np.log(share / (1.0 - share)))


def start(structure: str, cov: np.ndarray) -> np.ndarray:
    """Starting parameters of ``structure`` near a positive-definite moment estimate ``cov``."""
    t = len(cov)
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    off = corr[~np.eye(t, dtype=bool)]
    if structure == "unstructured":
        chol = np.linalg.cholesky(cov)
        return np.concatenate([np.log(np.diag(chol)), chol[np.tril_indices(t, -1)]])
    if structure == "heterogeneous_toeplitz":
        lag1 = float(np.mean(np.diag(corr, 1))) if t > 1 else 0.0
        pacf = np.zeros(t - 1)
        if t > 1:
            pacf[0] = np.arctanh(min(max(lag1, -0.8), 0.8))
        return np.concatenate([np.log(sd), pacf])
    mean_rho = float(np.mean(off)) if t > 1 else 0.0
    if structure == "heterogeneous_compound_symmetry":
        return np.concatenate([np.log(sd), [_logit_correlation(mean_rho, t)]])
    return np.array([np.log(np.sqrt(np.mean(sd**2))), _logit_correlation(mean_rho, t)])
