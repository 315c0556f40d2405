"""Optimal feedback for preparation: Riccati equations, LQR gains and the thalamo-cortical loop
(docs/science.md §6).

Names and conventions follow python-control:

- ``care(A, B, Q, R)`` solves ``A^T X + X A - X B R^-1 B^T X + Q = 0`` and returns
  ``(X, L, G)``: the stabilising solution, the closed-loop eigenvalues and the gain
  ``G = R^-1 B^T X`` (the feedback is ``u = -G x``);
- ``lqr(A, B, Q, R)`` returns ``(K, S, E)`` with ``u = -K x``.

Kao et al. (2021) write the feedback with the opposite sign, ``u = K x`` with
``K = -B^T X / r2``; :func:`preparatory_feedback` returns that ``K`` for the rate network
linearised as ``x' = (W - I) x + u`` (time in units of tau, ``B = I``, ``R = r2 I``) with ``Q``
the observability Gramian of ``(W - I, C Gamma)`` normalised to trace ``n``.

The thalamo-cortical loop (:class:`ThalamicLoop`) routes that feedback through a gated thalamus
``y`` and a relay ``z``: ``tau_y y' = -y + g(t) (Y r(x) + b)``, ``tau_z z' = -z + Z y``, cortex
receives ``X relu(z)``. :func:`draw_thalamic_input` draws the sparse, excitatory-only ``Y``;
:func:`copy_gain_loop` builds the loop whose ``X Z Y`` copies ``K`` where an excitatory-only
``Y`` can: the ``prepare`` job's default loop (``loop_fit: "copy_gain"``) and the starting point
of :func:`lifrnn_core.preparation.fit_thalamic_loop`, which fits ``X`` to the preparation cost
itself (``loop_fit: "cost"``; docs/science.md §6).

All matrices here are float64 numpy arrays; the functions are small dense linear algebra (SciPy,
LAPACK) and run on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import observability_gramian

__all__ = [
    "PreparatoryFeedback",
    "ThalamicLoop",
    "care",
    "care_residual",
    "copy_gain_loop",
    "draw_thalamic_input",
    "gain_errors",
    "lqr",
    "preparatory_feedback",
    "readout_gramian",
]


def _as_square(name: str, M: np.ndarray, n: int | None = None) -> np.ndarray:
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or (n is not None and M.shape[0] != n):
        size = "square" if n is None else f"({n}, {n})"
        raise InvalidNetworkError(f"{name} must be a {size} matrix, got shape {M.shape}")
    if not np.isfinite(M).all():
        raise InvalidNetworkError(f"{name} contains NaN or infinite values")
    return M


def _input_cost(R: np.ndarray | float, m: int) -> np.ndarray:
    """``R`` as an (m, m) matrix (a scalar ``r`` means ``r I``)."""
    if isinstance(R, int | float):
        return float(R) * np.eye(m)
    return _as_square("R", np.asarray(R), m)


def care(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve the continuous algebraic Riccati equation (python-control's ``care``).

    ``A^T X + X A - X B R^-1 B^T X + Q = 0`` for the stabilising ``X`` (``A - B G`` stable).

    Args:
        A: (n, n) state matrix.
        B: (n, m) input matrix.
        Q: (n, n) symmetric positive semi-definite state cost.
        R: (m, m) symmetric positive definite input cost, or a scalar ``r`` meaning ``r I``.

    Returns:
        X (n, n) symmetric, L (n,) closed-loop eigenvalues of ``A - B G`` (complex), and
        G (m, n) = ``R^-1 B^T X``.

    Raises:
        InvalidNetworkError: on shapes that do not fit, non-finite entries, or when no
            stabilising solution exists (SciPy's solver fails).
    """
    A = _as_square("A", A)
    n = A.shape[0]
    B = np.asarray(B, dtype=np.float64)
    if B.ndim != 2 or B.shape[0] != n:
        raise InvalidNetworkError(f"B must be ({n}, m), got shape {B.shape}")
    m = B.shape[1]
    Q = _as_square("Q", Q, n)
    R_matrix = _input_cost(R, m)
    if np.min(np.linalg.eigvalsh(0.5 * (R_matrix + R_matrix.T))) <= 0:
        raise InvalidNetworkError("R must be positive definite")
    try:
        X = scipy.linalg.solve_continuous_are(A, B, 0.5 * (Q + Q.T), R_matrix)
    except (np.linalg.LinAlgError, ValueError) as error:
        raise InvalidNetworkError(f"no stabilising Riccati solution: {error}") from error
    X = 0.5 * (X + X.T)
    G = np.linalg.solve(R_matrix, B.T @ X)
    L = np.linalg.eigvals(A - B @ G)
    return X, L, G


def care_residual(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray | float, X: np.ndarray
) -> float:
    """Relative residual ``||A^T X + X A - X B R^-1 B^T X + Q||_F / ||Q||_F`` of a Riccati
    solution (all arguments as in :func:`care`)."""
    m = np.asarray(B).shape[1]
    R_matrix = _input_cost(R, m)
    residual = A.T @ X + X @ A - X @ B @ np.linalg.solve(R_matrix, B.T @ X) + Q
    return float(np.linalg.norm(residual) / np.linalg.norm(Q))


def lqr(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear quadratic regulator (python-control's ``lqr``): ``u = -K x`` minimising
    ``integral x^T Q x + u^T R u`` for ``x' = A x + B u``.

    Returns:
        K (m, n) gain, S (n, n) Riccati solution, E (n,) closed-loop eigenvalues.
    """
    X, L, G = care(A, B, Q, R)
    return G, X, L


def readout_gramian(W: np.ndarray, C: np.ndarray, n_excitatory: int) -> np.ndarray:
    """Observability Gramian of ``(W - I, C Gamma)`` normalised to trace ``n`` (Kao's ``Q``).

    Args:
        W: (n, n) weights, columns presynaptic.
        C: (outputs, n_excitatory) readout of the excitatory units (``Gamma`` picks them).
        n_excitatory: number of excitatory units (the first ones).

    Returns:
        Q (n, n), symmetric positive semi-definite, ``trace(Q) = n``.
    """
    W = _as_square("W", W)
    n = W.shape[0]
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2 or C.shape[1] != n_excitatory or not 0 < n_excitatory <= n:
        raise InvalidNetworkError(
            f"C must be (outputs, n_excitatory={n_excitatory}) for n={n}, got shape {C.shape}"
        )
    readout = np.zeros((C.shape[0], n))
    readout[:, :n_excitatory] = C
    O = observability_gramian(W, readout)
    trace = float(np.trace(O))
    if not trace > 0:
        raise InvalidNetworkError("the readout C observes nothing (its Gramian has trace 0)")
    return O * (n / trace)


@dataclass(frozen=True)
class PreparatoryFeedback:
    """Kao et al. 2021 optimal preparatory feedback, ``u = K (r(x) - r(x*))`` plus a constant.

    Attributes:
        K: (n, n) gain, ``K = -B^T X / r2`` (``B = I``); closed loop ``W + K - I`` is stable.
        X: (n, n) stabilising Riccati solution.
        Q: (n, n) state cost (trace-normalised readout Gramian).
        r2: input cost.
        closed_loop_abscissa: largest real part of an eigenvalue of ``W + K - I``.
        residual: relative residual of the Riccati equation (:func:`care_residual`).
    """

    K: np.ndarray
    X: np.ndarray
    Q: np.ndarray
    r2: float
    closed_loop_abscissa: float
    residual: float


def preparatory_feedback(
    W: np.ndarray, C: np.ndarray, n_excitatory: int, r2: float = 0.1, state_weight: float = 0.0
) -> PreparatoryFeedback:
    """Optimal feedback gain of the preparation cost ``integral (x - x*)^T Q (x - x*) + r2 |u|^2``.

    Linearised dynamics ``x' = (W - I) x + u`` (time in units of tau, ``B = I``), ``Q`` from
    :func:`readout_gramian` (Kao et al. 2021) plus ``state_weight * I``. Kao's ``Q`` weighs
    only the directions the readout will see, so the feedback leaves the others to decay at the
    network's own pace; ``state_weight > 0`` also pulls those to ``x*``.

    Args:
        W: (n, n) weights; C: (outputs, n_excitatory) readout; n_excitatory: readout units.
        r2: input cost (> 0).
        state_weight: weight of ``||x - x*||^2`` added to ``Q`` (>= 0; 0 is Kao's cost).
    """
    if not (np.isfinite(r2) and r2 > 0):
        raise InvalidNetworkError(f"r2 must be a positive number, got {r2}")
    if not (np.isfinite(state_weight) and state_weight >= 0):
        raise InvalidNetworkError(f"state_weight must be >= 0, got {state_weight}")
    W = _as_square("W", W)
    n = W.shape[0]
    A = W - np.eye(n)
    Q = readout_gramian(W, C, n_excitatory) + state_weight * np.eye(n)
    B = np.eye(n)
    X, L, _ = care(A, B, Q, r2)
    return PreparatoryFeedback(
        K=-X / r2,
        X=X,
        Q=Q,
        r2=float(r2),
        closed_loop_abscissa=float(np.max(L.real)),
        residual=care_residual(A, B, Q, r2, X),
    )


@dataclass(frozen=True)
class ThalamicLoop:
    """Gains and time constants of the cortico-thalamo-cortical loop.

    ``tau_y y' = -y + g(t) (Y r(x) + b)``, ``tau_z z' = -z + Z y``; cortex receives
    ``X relu(z)``. With ``Y >= 0``, ``Z >= 0`` and rates ``r >= 0`` the relay stays
    non-negative, so at steady state the loop feeds back ``X Z Y r`` (+ ``X Z b``).

    Attributes:
        Y: (m, n) cortex -> thalamus, non-negative, non-zero only on excitatory columns.
        Z: (m, m) thalamus -> relay.
        X: (n, m) relay -> cortex.
        tau_thalamus, tau_relay: time constants, seconds.
        error: ``||X Z Y - K||_F / ||K||_F`` against the full gain.
        error_excitatory: the same against ``K`` restricted to its excitatory columns, the part
            a loop that reads excitatory units only can represent.
    """

    Y: np.ndarray
    Z: np.ndarray
    X: np.ndarray
    tau_thalamus: float
    tau_relay: float
    error: float
    error_excitatory: float

    @property
    def effective_gain(self) -> np.ndarray:
        """``X Z Y`` (n, n): the loop's steady-state feedback gain on the rates."""
        return self.X @ self.Z @ self.Y

    def as_tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Y, Z, X)`` as tensors with the dtype and device of ``like``."""
        return (
            torch.from_numpy(self.Y).to(like),
            torch.from_numpy(self.Z).to(like),
            torch.from_numpy(self.X).to(like),
        )


def draw_thalamic_input(
    n: int, n_excitatory: int, generator: torch.Generator, density: float = 0.1
) -> np.ndarray:
    """Sparse, non-negative cortex -> thalamus weights ``Y`` (2n, n) reading excitatory units.

    Entries on the first ``n_excitatory`` columns are present with probability ``density``,
    weights ``U(0, 1)``, scaled to unit mean row norm; inhibitory columns are zero. Rows come
    in push-pull pairs ``Y = [Y_+; Y_-]``.
    """
    if not 0 < density <= 1:
        raise InvalidNetworkError(f"density must be in (0, 1], got {density}")
    if not 0 < n_excitatory <= n:
        raise InvalidNetworkError(f"n_excitatory must be in 1..{n}, got {n_excitatory}")
    m = 2 * n
    mask = torch.rand(m, n_excitatory, generator=generator, dtype=torch.float64) < density
    weights = torch.rand(m, n_excitatory, generator=generator, dtype=torch.float64)
    Y = np.zeros((m, n))
    Y[:, :n_excitatory] = (mask * weights).numpy()
    row_norms = np.linalg.norm(Y, axis=1)
    Y /= float(row_norms[row_norms > 0].mean()) if (row_norms > 0).any() else 1.0
    return Y


def gain_errors(effective: np.ndarray, K: np.ndarray, n_excitatory: int) -> tuple[float, float]:
    """``||F - K||_F / ||K||_F`` and the same against ``K``'s excitatory columns only.

    ``effective`` (n, n) is a loop's steady-state gain ``F = X Z Y``; ``K`` (n, n) the LQR gain.
    """
    K_excitatory = np.zeros_like(K)
    K_excitatory[:, :n_excitatory] = K[:, :n_excitatory]
    return (
        float(np.linalg.norm(effective - K) / np.linalg.norm(K)),
        float(
            np.linalg.norm(effective - K_excitatory)
            / max(float(np.linalg.norm(K_excitatory)), np.finfo(float).tiny)
        ),
    )


def copy_gain_loop(
    K: np.ndarray,
    n_excitatory: int,
    generator: torch.Generator,
    *,
    drives: np.ndarray | None = None,
    density: float = 0.1,
    tau_thalamus: float = 0.01,
    tau_relay: float = 0.01,
) -> ThalamicLoop:
    """Draw a sparse excitatory-only ``Y`` and build the loop whose ``X Z Y`` copies ``K``.

    The ``prepare`` job's default loop (``loop_fit: "copy_gain"``) and the starting point of
    :func:`lifrnn_core.preparation.fit_thalamic_loop` (which fits the loop to the preparation
    cost instead, ``loop_fit: "cost"``); ``bench/prepare.py`` compares the two.

    The thalamus has ``m = 2 n`` units in push-pull pairs: ``Y = [Y_+; Y_-]``
    (:func:`draw_thalamic_input`), ``Z = I`` (a one-to-one relay) and ``X = [X_1, -X_1]``, so
    that ``X Z Y = X_1 (Y_+ - Y_-)``. Non-negative rates and weights keep every relay unit
    non-negative, where ``relu`` is the identity, and the pairs let a constant thalamic input
    deliver a cortical input of either sign (:func:`lifrnn_core.preparation.loop_offset`).

    ``X_1 = K D^+ + R E^T`` with ``D = Y_+ - Y_-``: ``K D^+`` is the least-squares fit of
    ``X_1 D = K`` (it reproduces ``K``'s excitatory columns, the part an excitatory-only readout
    can represent). ``E`` (n, k) are thalamic directions that receive no cortical feedback
    (``E^T D = 0``) and ``R`` (n, k) the ``k`` cortical ``drives``: ``X_1 E = R`` without
    changing ``X Z Y``, so the constant thalamic input of a movement delivers its drive through
    a dedicated channel of unit size.

    Args:
        K: (n, n) gain to approximate (``u = K r``).
        n_excitatory: the first ``n_excitatory`` units are excitatory.
        generator: source of the random ``Y``.
        drives: (k, n) constant cortical inputs the loop must be able to deliver (e.g. the
            hold inputs ``x* - h - W r(x*)`` of the movements), or None.
        density: connection probability of ``Y`` (0.1).
        tau_thalamus, tau_relay: time constants, seconds (10 ms each).

    Returns:
        The :class:`ThalamicLoop` (``Y`` (2n, n), ``Z`` (2n, 2n), ``X`` (n, 2n)) with its
        approximation errors.
    """
    K = _as_square("K", K)
    n = K.shape[0]
    Y = draw_thalamic_input(n, n_excitatory, generator, density)
    m = 2 * n
    D = Y[:n] - Y[n:]
    D_pinv = np.linalg.pinv(D, rtol=1e-10)
    X1 = K @ D_pinv
    if drives is not None:
        drives = np.atleast_2d(np.asarray(drives, dtype=np.float64))
        if drives.shape[1] != n:
            raise InvalidNetworkError(f"drives must be (k, {n}), got shape {drives.shape}")
        U, singular, _ = np.linalg.svd(D)
        rank = int(np.sum(singular > singular[0] * 1e-10))
        free = U[:, rank:]  # thalamic directions without cortical feedback
        if drives.shape[0] > free.shape[1]:
            raise InvalidNetworkError(
                f"the loop can carry at most {free.shape[1]} movement drives, got {drives.shape[0]}"
            )
        # Channel j (thalamic direction free[:, j]) delivers drive j: X_1 free[:, j] = drive j.
        X1 = X1 + drives.T @ free[:, : drives.shape[0]].T
    X = np.concatenate([X1, -X1], axis=1)
    error, error_excitatory = gain_errors(X1 @ D, K, n_excitatory)
    return ThalamicLoop(
        Y=Y,
        Z=np.eye(m),
        X=X,
        tau_thalamus=float(tau_thalamus),
        tau_relay=float(tau_relay),
        error=error,
        error_excitatory=error_excitatory,
    )
