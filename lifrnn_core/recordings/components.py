"""Soft normalisation of condition-averaged rates (Churchland et al. 2012) and their principal
components."""

from __future__ import annotations

import numpy as np

__all__ = ["principal_components", "soft_normalise", "variance_captured"]


def soft_normalise(rates: np.ndarray, soft: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Divide each neuron by its rate range plus ``soft`` (Churchland et al. 2012).

    The soft term keeps weakly modulated neurons from being blown up to the size of strongly
    modulated ones. Rates are not shifted: a neuron firing between 20 and 30 spikes/s becomes
    2 .. 3 with ``soft = 5``.

    Args:
        rates: (conditions, time, neurons) rates, spikes/s.
        soft: spikes/s added to each range, >= 0.

    Returns:
        normalised: (conditions, time, neurons) ``rates / scale``, dimensionless.
        scale: (neurons,) ``max - min`` over conditions and time, plus ``soft``, spikes/s; 1
            where that is 0 (a constant neuron with ``soft = 0``), so nothing is divided by 0.
    """
    if soft < 0:
        raise ValueError(f"soft must be >= 0 spikes/s, got {soft}")
    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim != 3:
        raise ValueError(f"rates must be (conditions, time, neurons), got shape {rates.shape}")
    scale = np.ptp(rates, axis=(0, 1)) + soft
    scale = np.where(scale > 0, scale, 1.0)
    return rates / scale, scale


def principal_components(
    x: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of the states of all conditions at all times.

    The rows of the (conditions * time, dims) matrix are the samples; their mean is subtracted.

    Args:
        x: (conditions, time, dims) e.g. normalised rates.
        k: number of components, 1 <= k <= dims.

    Returns:
        scores: (conditions, time, k) ``(x - mean) @ components``, units of x.
        components: (dims, k) orthonormal axes in order of decreasing variance; each one's
            largest-magnitude loading is positive, so the result is deterministic.
        mean: (dims,) mean state over conditions and time.
        explained_variance_ratio: (k,) fraction of the total variance along each component.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (conditions, time, dims), got shape {x.shape}")
    dims = x.shape[2]
    if not 1 <= k <= dims:
        raise ValueError(f"k must be between 1 and dims = {dims}, got {k}")
    samples = x.reshape(-1, dims)
    mean = samples.mean(axis=0)
    centred = samples - mean
    variances, axes = np.linalg.eigh(centred.T @ centred)
    variances = np.clip(variances[::-1], 0.0, None)
    axes = axes[:, ::-1]
    total = variances.sum()
    if not total > 0:
        raise ValueError("x has no variance over conditions and time: nothing to decompose")
    components = axes[:, :k]
    largest = np.argmax(np.abs(components), axis=0)
    components = components * np.sign(components[largest, np.arange(k)])
    scores = (centred @ components).reshape(x.shape[0], x.shape[1], k)
    return scores, components, mean, variances[:k] / total


def variance_captured(x: np.ndarray, k: int = 6) -> float:
    """Fraction of the variance of (conditions * time, dims) states in their top ``k`` PCs.

    The variance is about the mean state over conditions and time (as in
    :func:`principal_components`); to measure it about the cross-condition mean at each time,
    as jPCA does, pass ``x - x.mean(axis=0)``.

    Args:
        x: (conditions, time, dims) states.
        k: number of components; more than dims counts all of them (fraction 1).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (conditions, time, dims), got shape {x.shape}")
    _, _, _, ratio = principal_components(x, min(k, x.shape[2]))
    return float(ratio.sum())
