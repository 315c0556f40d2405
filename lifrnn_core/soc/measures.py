"""Measures of an SOC: its amplification (the top eigenvalue of the observability Gramian of
``W - I``) and the smoothed spectral abscissa with its gradient (Vanbiervliet et al. 2009)."""

from __future__ import annotations

import numpy as np
import scipy.optimize

from lifrnn_core.gramians import SchurForm, observability_gramian

__all__ = ["amplification", "smoothed_spectral_abscissa"]


def amplification(W: np.ndarray) -> float:
    """Top eigenvalue of the energy observability Gramian of ``W - I`` (rhs ``-I``, C = I).

    ``x0^T O x0`` is the integral of ``||x(t)||^2`` (time in units of tau) from a unit initial
    condition; its maximum over unit ``x0`` measures how strongly the network amplifies.
    Requires ``W - I`` stable (spectral abscissa of W < 1).
    """
    return float(np.linalg.eigvalsh(observability_gramian(W))[-1])


def smoothed_spectral_abscissa(A: np.ndarray, epsilon: float) -> tuple[float, np.ndarray]:
    """Smoothed spectral abscissa of ``A`` (Vanbiervliet et al. 2009) and its gradient.

    The value is the root ``s > alpha(A)`` of ``trace P(s) = 1/epsilon`` with
    ``(A - sI) P + P (A - sI)^T = -I``; it decreases to the spectral abscissa as epsilon -> 0.
    The gradient with respect to ``A`` is ``Q P / trace(Q P)`` with ``Q`` the matching
    observability solution.

    Returns:
        (value, gradient (n, n)).
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    form = SchurForm.of(A)
    alpha = form.spectral_abscissa

    def excess(s: float) -> float:
        return float(np.trace(form.lyap(1.0, shift=s))) - 1.0 / epsilon

    # trace P(s) falls monotonically from +inf at s = alpha to 0 as s -> inf.
    width = max(1e-3, abs(alpha) * 1e-3)
    lower = alpha + 1e-12 * max(1.0, abs(alpha))
    upper = alpha + width
    while excess(upper) > 0:
        width *= 2.0
        upper = alpha + width
    while excess(lower) < 0:
        lower = alpha + (lower - alpha) / 10.0
    s = float(scipy.optimize.brentq(excess, lower, upper, xtol=1e-14, rtol=4 * np.finfo(float).eps))
    P = form.lyap(1.0, shift=s)
    Q = form.lyap(1.0, shift=s, transpose=True)
    QP = Q @ P
    return s, QP / np.trace(QP)
