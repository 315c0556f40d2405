"""The Poisson GLM the baselines share (:func:`fit_poisson_glm`: scikit-learn's
``PoissonRegressor`` objective, fitted for all output neurons at once), the Poisson
log-likelihood they are scored by, and the path over penalties that picks one on val."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from lifrnn_core.baselines.common import _trial_log_likelihood
from lifrnn_core.threads import blas_threads

logger = logging.getLogger(__name__)

_MAX_LOG_RATE = 30.0
"""Log-rates are clipped here so a line search cannot overflow ``exp``."""


@dataclass(frozen=True)
class PoissonGLM:
    """Log-link Poisson regression from features to the counts of several neurons.

    Attributes:
        weights: (features, outputs).
        intercept: (outputs,).
    """

    weights: np.ndarray
    intercept: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Rates ``exp(features @ weights + intercept)``.

        Args:
            features: (..., features).

        Returns:
            (..., outputs) rates in the counts' units (spikes per bin).
        """
        log_rate = np.asarray(features, dtype=np.float64) @ self.weights + self.intercept
        return np.exp(np.clip(log_rate, -_MAX_LOG_RATE, _MAX_LOG_RATE))


def fit_poisson_glm(
    features: np.ndarray,
    counts: np.ndarray,
    alpha: float,
    *,
    init: PoissonGLM | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
) -> PoissonGLM:
    """Fit a Poisson GLM with log link for every output at once.

    Minimises, for each output ``j``, scikit-learn's ``PoissonRegressor`` objective
    ``mean_i(exp(eta_ij) - y_ij eta_ij) + alpha/2 ||w_j||^2`` with ``eta = X w_j + b_j`` (the
    intercept is not penalised), so ``alpha`` means what it means there. The outputs are
    independent; fitting them as one L-BFGS problem replaces a Python loop over neurons by
    matrix products. Features are centred and whitened inside (with the penalty transformed to
    match, so the solution is unchanged), which keeps L-BFGS well conditioned.

    Args:
        features: (samples, features).
        counts: (samples, outputs) non-negative counts (spikes per bin).
        alpha: L2 penalty on the weights, >= 0.
        init: a previous fit to start from (e.g. the same data at a neighbouring ``alpha``).
        max_iter: most L-BFGS iterations.
        tol: L-BFGS tolerance on the projected gradient (and on the relative decrease of the
            objective, times 1e-3).

    Returns:
        The fitted :class:`PoissonGLM`.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(counts, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"features (samples, features) and counts (samples, outputs) must share samples, "
            f"got {x.shape} and {y.shape}"
        )
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    with blas_threads(1):
        return _fit_poisson_glm(x, y, alpha, init, max_iter, tol)


def _fit_poisson_glm(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    init: PoissonGLM | None,
    max_iter: int,
    tol: float,
) -> PoissonGLM:
    """:func:`fit_poisson_glm` on validated float64 arrays."""
    n_samples, n_features = x.shape
    n_outputs = y.shape[1]
    # Whitened features z = (x - centre) @ basis / sqrt(variance): the intercept and every
    # weight direction then see the same curvature, so L-BFGS needs far fewer iterations than on
    # raw, correlated features. With w = basis @ (w_z / sqrt(variance)), the penalty
    # alpha/2 ||w||^2 is alpha/2 sum_k w_z,k^2 / variance_k: still diagonal, solution unchanged.
    centre = x.mean(axis=0)
    variance, basis = np.linalg.eigh(np.cov(x, rowvar=False, bias=True).reshape(n_features, -1))
    variance = np.maximum(variance, max(float(variance.max()), 1.0) * 1e-12)
    projection = basis / np.sqrt(variance)
    z = (x - centre) @ projection
    penalty = alpha / variance
    if init is None:
        w_z0 = np.zeros((n_features, n_outputs))
        b_z0 = np.log(np.maximum(y.mean(axis=0), 1e-10))
    else:
        w_z0 = (basis.T @ init.weights) * np.sqrt(variance)[:, None]
        b_z0 = init.intercept + centre @ init.weights

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w_z = theta[: n_features * n_outputs].reshape(n_features, n_outputs)
        b_z = theta[n_features * n_outputs :]
        log_rate = np.clip(z @ w_z + b_z, -_MAX_LOG_RATE, _MAX_LOG_RATE)
        rate = np.exp(log_rate)
        value = (rate.sum() - (y * log_rate).sum()) / n_samples
        value += 0.5 * float((penalty[:, None] * w_z**2).sum())
        residual = (rate - y) / n_samples
        grad_w = z.T @ residual + penalty[:, None] * w_z
        grad_b = residual.sum(axis=0)
        return value, np.concatenate([grad_w.ravel(), grad_b])

    result = minimize(
        objective,
        np.concatenate([w_z0.ravel(), b_z0]),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": tol * 1e-3, "maxcor": 20},
    )
    if not result.success:
        logger.info("Poisson GLM stopped before converging: %s", result.message)
    w_z = result.x[: n_features * n_outputs].reshape(n_features, n_outputs)
    b_z = result.x[n_features * n_outputs :]
    weights = projection @ w_z
    return PoissonGLM(weights=weights, intercept=b_z - centre @ weights)


def poisson_log_likelihood(rates: np.ndarray, counts: np.ndarray) -> float:
    """Poisson log-likelihood of counts under rates, without the ``log y!`` term (nats).

    Args:
        rates: predicted rates, spikes per bin, > 0; any shape.
        counts: observed counts of the same shape.

    Returns:
        ``sum(y log(rate) - rate)``: differences between models of the same counts are exact
        log-likelihood differences.
    """
    rates = np.asarray(rates, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    return float((counts * np.log(rates) - rates).sum())


def _glm_path(
    features: np.ndarray,
    counts: np.ndarray,
    alphas: Sequence[float],
    val_features: np.ndarray,
    val_counts: np.ndarray,
) -> tuple[float, PoissonGLM, np.ndarray]:
    """Fit a GLM per alpha (largest first, each warm-starting the next); keep the best on val.

    Args:
        features, counts: (samples, features) and (samples, outputs) training data.
        alphas: penalties to try.
        val_features, val_counts: (trials, time, features) and (trials, time, outputs).

    Returns:
        (alpha, glm, (val trials,) log-likelihoods) of the best alpha.
    """
    best: tuple[float, PoissonGLM, np.ndarray] | None = None
    glm: PoissonGLM | None = None
    for alpha in sorted(alphas, reverse=True):
        glm = fit_poisson_glm(features, counts, alpha, init=glm)
        score = _trial_log_likelihood(glm.predict(val_features), val_counts)
        if best is None or score.sum() > best[2].sum():
            best = (alpha, glm, score)
    if best is None:
        raise ValueError("alphas must not be empty")
    return best
