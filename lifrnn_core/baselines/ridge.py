"""Ridge co-smoothing (:func:`ridge_baseline`): smoothed held-in rates mapped linearly to the
held-out counts, every penalty from one eigendecomposition (:func:`ridge_path`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from lifrnn_core.baselines.common import (
    KERNEL_WIDTHS,
    RATE_FLOOR,
    BaselinePrediction,
    _flat,
    _label,
    _smooth,
    _split_indices,
)
from lifrnn_core.baselines.glm import poisson_log_likelihood
from lifrnn_core.spike_trials import SpikeTrials
from lifrnn_core.threads import blas_threads

logger = logging.getLogger(__name__)

RIDGE_ALPHAS: tuple[float, ...] = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5)
"""Penalties tried for ridge co-smoothing (scikit-learn's ``Ridge`` scale: against summed
squares, so the useful range grows with the data; each extra penalty costs almost nothing)."""


def ridge_baseline(
    trials: SpikeTrials,
    *,
    kernel_widths: Sequence[float] = KERNEL_WIDTHS,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> BaselinePrediction:
    """Ridge co-smoothing: smoothed held-in rates -> held-out counts, linear, clipped.

    scikit-learn's ``Ridge`` (with intercept) maps each bin's smoothed held-in counts to the
    held-out counts of the same bin; predictions below ``RATE_FLOOR`` are raised to it. Kernel
    width and penalty are chosen together on val, all on every train trial: per width, one
    eigendecomposition of the features' scatter matrix gives the fit at every penalty (what
    ``Ridge`` computes once per penalty; :func:`ridge_path`).

    Args:
        trials: the binned trials and their split.
        kernel_widths: kernel standard deviations to try, seconds.
        alphas: ridge penalties to try.

    Returns:
        Held-out rates (trials, time, n_heldout) spikes per bin; no forward prediction.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    floor = RATE_FLOOR * trials.bin_width

    def predict(fit: tuple[np.ndarray, np.ndarray], smoothed: np.ndarray) -> np.ndarray:
        """(trials, time, n_heldout) floored predictions from (trials, time, n_heldin)."""
        weights, intercept = fit
        return np.maximum(smoothed @ weights + intercept, floor)

    best: tuple[float, dict[str, float], tuple[np.ndarray, np.ndarray]] | None = None
    selection: dict[str, float] = {}
    for width in kernel_widths:
        x_train = _flat(_smooth(trials.heldin[train], width, trials.bin_width))
        path = ridge_path(x_train, _flat(trials.heldout[train]), alphas)
        del x_train
        x_val = _smooth(trials.heldin[val], width, trials.bin_width)
        for alpha, fit in zip(alphas, path, strict=True):
            candidate = {"kernel_width": width, "alpha": alpha}
            score = poisson_log_likelihood(predict(fit, x_val), trials.heldout[val])
            selection[_label(candidate)] = score
            if best is None or score > best[0]:
                best = (score, candidate, fit)
    if best is None:
        raise ValueError("kernel_widths and alphas must not be empty")
    _, chosen, fit = best
    logger.debug("ridge validation log-likelihoods %s; chose %s", selection, chosen)
    rates = predict(fit, _smooth(trials.heldin, chosen["kernel_width"], trials.bin_width))
    return BaselinePrediction(
        rates=rates,
        forward_rates=None,
        hyperparameters=chosen,
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )


def ridge_path(
    features: np.ndarray, targets: np.ndarray, alphas: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ridge regression with intercept at several penalties, from one eigendecomposition.

    Solves scikit-learn's ``Ridge(alpha)`` problem, ``min ||Y - X W - b||^2 + alpha ||W||^2``
    with the intercept unpenalised: centring removes ``b``, and with ``Xc^T Xc = V S V^T``,
    ``W = V (S + alpha)^-1 V^T Xc^T Yc``.

    Args:
        features: (samples, features).
        targets: (samples, outputs).
        alphas: penalties (>= 0; 0 needs full-rank features).

    Returns:
        (weights (features, outputs), intercept (outputs,)) for each alpha, in order.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    centred = x - x_mean
    with blas_threads(1):
        eigenvalues, basis = np.linalg.eigh(centred.T @ centred)
        rotated = basis.T @ (centred.T @ (y - y_mean))
    fits = []
    for alpha in alphas:
        if alpha < 0:
            raise ValueError(f"ridge penalties must be >= 0, got {alpha}")
        weights = basis @ (rotated / (np.maximum(eigenvalues, 0.0) + alpha)[:, None])
        fits.append((weights, y_mean - x_mean @ weights))
    return fits
