"""jPCA: how much of a population's dynamics is rotation (Churchland et al. 2012, Nature).

The states of all conditions, less their cross-condition mean at each time, are reduced to their
top principal components ``X``; the derivative is then fitted as a linear function of the state,
``dX/dt = X M`` (one state per row), once with ``M`` unconstrained and once with ``M``
skew-symmetric. A skew-symmetric ``M`` generates pure rotations, so ``r2_skew / r2_full`` near 1
says the dynamics are rotational, and the eigenvalues of ``M_skew`` (pairs ``±iω``) give their
frequencies (every plane's is reported, fastest first). The first jPC plane is the plane of the
fastest rotation. A ratio means little when the full fit's R² is small (white noise gives ratios
near 1 with R² near 0): read the two together.

May import: numpy, :mod:`lifrnn_core.recordings`.

Derivatives are finite differences between consecutive samples, paired with the midpoint states;
for a pure rotation at ``ω`` this fit is exact, with ``ω`` estimated as ``2 tan(ω dt / 2) / dt``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lifrnn_core.recordings import principal_components

__all__ = ["JPCAResult", "jpca", "skew_symmetric_fit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JPCAResult:
    """The fits and the first jPC plane of :func:`jpca`; ``k`` is the number of PCs used.

    Attributes:
        r2_full: R² of the derivative fitted with an unconstrained ``M``.
        r2_skew: R² of the derivative fitted with a skew-symmetric ``M``.
        ratio: ``r2_skew / r2_full``, in [0, 1]; near 1 for rotational dynamics.
        frequency_hz: largest ``|imag|`` of an eigenvalue of ``M_skew``, over 2π: the rotation
            frequency in the first jPC plane, Hz.
        plane: (k, 2) orthonormal basis of the first jPC plane, in PC coordinates (the plane in
            the original dims is ``components @ plane``). Oriented so that the fitted rotation
            runs counter-clockwise (from jPC1 towards jPC2), and turned within the plane so
            that jPC1 is the axis along which the conditions' first states spread most.
        projection: (conditions, time, 2) the mean-subtracted states projected onto the plane.
        variance_captured: fraction of the cross-condition-mean-subtracted variance in the
            top k PCs.
        M_full: (k, k) unconstrained fit, 1/s: ``dX/dt ≈ X M_full``.
        M_skew: (k, k) skew-symmetric fit, 1/s.
        components: (dims, k) the principal axes the fits are expressed in.
        condition_mean: (time, dims) the cross-condition mean subtracted at each time.
        frequencies_hz: the rotation frequency of every jPC plane, Hz, fastest first (one per
            conjugate pair ``±iω`` of ``M_skew``'s eigenvalues; ``frequency_hz`` is the first).
            Data with two rotations show two; read them with ``r2_full``: when the full linear
            fit explains little of the derivative (white noise), no frequency means much.
    """

    r2_full: float
    r2_skew: float
    ratio: float
    frequency_hz: float
    plane: np.ndarray
    projection: np.ndarray
    variance_captured: float
    M_full: np.ndarray
    M_skew: np.ndarray
    components: np.ndarray
    condition_mean: np.ndarray
    frequencies_hz: tuple[float, ...] = ()


def skew_symmetric_fit(states: np.ndarray, derivatives: np.ndarray) -> np.ndarray:
    """Best skew-symmetric ``M`` in the least-squares sense for ``derivatives ≈ states @ M``.

    ``M`` is written in the basis ``K_ab = E_ab - E_ba`` (a < b) of the k(k-1)/2-dimensional
    space of skew-symmetric matrices; the squared error is quadratic in the coefficients, and
    its normal equations involve only ``states^T states`` and ``states^T derivatives``.

    Args:
        states: (samples, k) states, one per row.
        derivatives: (samples, k) their time derivatives (units of states per second).

    Returns:
        (k, k) skew-symmetric matrix, 1/s.
    """
    k = states.shape[1]
    rows, cols = np.triu_indices(k, 1)
    basis = np.zeros((rows.size, k, k))
    pairs = np.arange(rows.size)
    basis[pairs, rows, cols] = 1.0
    basis[pairs, cols, rows] = -1.0
    gram = states.T @ states
    cross = states.T @ derivatives
    # ||D - X M||² = tr(Mᵀ G M) - 2 tr(Mᵀ C) + const, with M = Σ β_p K_p.
    quadratic = np.einsum("pij,il,qlj->pq", basis, gram, basis)
    linear = np.einsum("pij,ij->p", basis, cross)
    coefficients, *_ = np.linalg.lstsq(quadratic, linear, rcond=None)
    return np.einsum("p,pij->ij", coefficients, basis)


def _r_squared(states: np.ndarray, derivatives: np.ndarray, M: np.ndarray) -> float:
    """1 - SSE / SST of ``derivatives ≈ states @ M``, SST taken about zero."""
    residual = derivatives - states @ M
    return float(1.0 - np.sum(residual**2) / np.sum(derivatives**2))


def _plane_frequencies(M_skew: np.ndarray) -> tuple[float, ...]:
    """Angular frequency / 2π of each rotation plane of ``M_skew``, Hz, fastest first: the
    positive imaginary parts of its eigenvalues (each plane gives a pair ``±iω``)."""
    imaginary = np.linalg.eigvals(M_skew).imag
    positive = np.sort(imaginary[imaginary > 1e-12 * max(1.0, float(np.abs(imaginary).max()))])
    return tuple(float(w / (2 * np.pi)) for w in positive[::-1])


def _first_plane(M_skew: np.ndarray, first_states: np.ndarray) -> tuple[np.ndarray, float]:
    """(k, 2) basis of the fastest rotation of ``M_skew`` and its angular frequency (rad/s)."""
    k = M_skew.shape[0]
    # Column convention: d/dt x = A x for a column state x.
    A = M_skew.T
    eigenvalues, eigenvectors = np.linalg.eig(A)
    fastest = int(np.argmax(np.abs(eigenvalues.imag)))
    angular_frequency = float(abs(eigenvalues[fastest].imag))
    if angular_frequency == 0.0:
        plane = np.eye(k)[:, :2]
    else:
        vector = eigenvectors[:, fastest]
        plane, _ = np.linalg.qr(np.stack([vector.real, vector.imag], axis=1))
        if (plane.T @ A @ plane)[1, 0] < 0:
            plane[:, 1] *= -1
    # Turn within the plane (a proper rotation keeps the orientation) so that jPC1 is the axis
    # of largest spread of the first states, then fix the sign like principal components.
    spread = first_states @ plane
    _, axes = np.linalg.eigh(spread.T @ spread)
    cos, sin = axes[:, -1]
    plane = plane @ np.array([[cos, -sin], [sin, cos]])
    if plane[np.argmax(np.abs(plane[:, 0])), 0] < 0:
        plane = -plane
    return plane, angular_frequency


def jpca(x: np.ndarray, dt: float, n_pcs: int = 6) -> JPCAResult:
    """Fit rotational (skew-symmetric) and unconstrained linear dynamics to population states.

    Args:
        x: (conditions, time, dims) states, e.g. normalised condition-averaged rates; needs at
            least 2 conditions and 3 time samples.
        dt: time between samples, seconds.
        n_pcs: number of principal components to fit in (>= 2; Churchland et al. used 6);
            fewer if x has fewer dims. Odd numbers are fine (``M_skew`` then has a zero
            eigenvalue).

    Returns:
        JPCAResult: the two R², their ratio, the rotation frequency (Hz) and the first jPC plane.

    Raises:
        ValueError: bad shapes, non-finite values, or data without variance or dynamics.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (conditions, time, dims), got shape {x.shape}")
    n_conditions, n_time, dims = x.shape
    if n_conditions < 2:
        raise ValueError(f"jPCA needs at least 2 conditions, got {n_conditions}")
    if n_time < 3:
        raise ValueError(f"jPCA needs at least 3 time samples, got {n_time}")
    if dims < 2:
        raise ValueError(f"jPCA needs at least 2 dims, got {dims}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    if n_pcs < 2:
        raise ValueError(f"n_pcs must be >= 2 (a rotation needs a plane), got {n_pcs}")
    k = min(n_pcs, dims)

    condition_mean = x.mean(axis=0)
    centred = x - condition_mean
    if not np.any(centred):
        raise ValueError("all conditions are identical: nothing is left after the mean")
    scores, components, _, explained = principal_components(centred, k)

    derivatives = (np.diff(scores, axis=1) / dt).reshape(-1, k)
    states = ((scores[:, 1:] + scores[:, :-1]) / 2).reshape(-1, k)
    if not np.any(derivatives):
        raise ValueError("the states do not change over time: there are no dynamics to fit")
    M_full, *_ = np.linalg.lstsq(states, derivatives, rcond=None)
    M_skew = skew_symmetric_fit(states, derivatives)
    r2_full = _r_squared(states, derivatives, M_full)
    r2_skew = _r_squared(states, derivatives, M_skew)

    plane, angular_frequency = _first_plane(M_skew, scores[:, 0])
    result = JPCAResult(
        r2_full=r2_full,
        r2_skew=r2_skew,
        ratio=r2_skew / r2_full if r2_full > 0 else float("nan"),
        frequency_hz=angular_frequency / (2 * np.pi),
        plane=plane,
        projection=scores @ plane,
        variance_captured=float(explained.sum()),
        M_full=M_full,
        M_skew=M_skew,
        components=components,
        condition_mean=condition_mean,
        frequencies_hz=_plane_frequencies(M_skew),
    )
    logger.debug(
        "jPCA in %d PCs: R² full %.3f, skew %.3f, ratio %.3f, planes at %s Hz",
        k,
        r2_full,
        r2_skew,
        result.ratio,
        [round(f, 2) for f in result.frequencies_hz],
    )
    return result
