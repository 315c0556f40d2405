"""Lyapunov solvers, controllability/observability Gramians and amplifying directions.

Conventions follow python-control: ``lyap(A, Q)`` solves ``A X + X A^T + Q = 0``. Gramians are
those of the linearised rate dynamics ``x' = (W - I) x`` (time in units of tau), see
docs/science.md §3:

- controllability ``P``: ``(W - I) P + P (W - I)^T = -B B^T``;
- observability ``O``:  ``(W - I)^T O + O (W - I) = -C^T C``.

Two solver families:

- CPU, float64: one real Schur decomposition ``A = Z T Z^T`` (LAPACK ``dgees`` through scipy) and
  the triangular Sylvester solver ``dtrsyl``. A Schur form can be reused for several solves
  (:class:`SchurForm`), which is what makes the SOC builder cheap: one decomposition per iteration
  serves the spectral abscissa and both Gramians.
- torch, any device: Newton iteration on the matrix sign function (Roberts 1980) with determinant
  scaling, batched over leading dimensions; only matrix inverses and products, so it runs on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from scipy.linalg.lapack import dtrsyl

from lifrnn_core.errors import InvalidNetworkError, NotConvergedError

__all__ = [
    "SchurForm",
    "amplifying_directions",
    "controllability_gramian",
    "lyap",
    "lyap_sign",
    "observability_gramian",
    "spectral_abscissa",
]


@dataclass(frozen=True)
class SchurForm:
    """Real Schur decomposition ``A = Z T Z^T`` of a square float64 matrix.

    ``T`` is quasi upper triangular in LAPACK's standardised form: each 2x2 diagonal block (a
    complex pair) has equal diagonal entries, so ``diag(T)`` holds the real parts of all
    eigenvalues. Shifting ``A - s I`` shifts ``T`` by ``s I`` with the same ``Z``.
    """

    T: np.ndarray
    Z: np.ndarray

    @classmethod
    def of(cls, A: np.ndarray) -> SchurForm:
        """Decompose ``A`` (n, n), float64."""
        T, Z = scipy.linalg.schur(np.asarray(A, dtype=np.float64), output="real")
        return cls(T=T, Z=Z)

    @property
    def spectral_abscissa(self) -> float:
        """Largest real part of an eigenvalue of ``A``."""
        return float(np.max(np.diag(self.T)))

    def eigenvalues(self) -> np.ndarray:
        """All eigenvalues of ``A`` (n,), complex, read off the quasi-triangular ``T``."""
        return scipy.linalg.eigvals(self.T)

    def lyap(
        self, Q: np.ndarray | float, *, shift: float = 0.0, transpose: bool = False
    ) -> np.ndarray:
        """Solve a Lyapunov equation of ``A_s = A - shift I`` from this decomposition.

        Args:
            Q: right-hand side (n, n), symmetric, or a scalar ``q`` meaning ``q I``.
            shift: ``s`` in ``A_s = A - s I``; the shifted matrix must be stable.
            transpose: ``False`` solves ``A_s X + X A_s^T + Q = 0`` (controllability form);
                ``True`` solves ``A_s^T X + X A_s + Q = 0`` (observability form).

        Returns:
            X (n, n), symmetric.
        """
        n = self.T.shape[0]
        Ts = self.T - shift * np.eye(n) if shift else self.T
        if np.isscalar(Q):
            # Z^T (q I) Z = q I: no transformation of the right-hand side needed.
            rhs = -float(Q) * np.eye(n)  # type: ignore[arg-type]
        else:
            rhs = -(self.Z.T @ np.asarray(Q, dtype=np.float64) @ self.Z)
        if transpose:
            Y, scale, info = dtrsyl(Ts, Ts, rhs, trana="T", tranb="N")
        else:
            Y, scale, info = dtrsyl(Ts, Ts, rhs, trana="N", tranb="T")
        if info < 0:
            raise ValueError(f"dtrsyl rejected argument {-info}")
        if info == 1:
            raise InvalidNetworkError(
                "Lyapunov equation is (nearly) singular: the matrix has eigenvalues close to "
                "the imaginary axis (it must be stable, spectral abscissa < 0)"
            )
        X = self.Z @ (Y / scale) @ self.Z.T
        return 0.5 * (X + X.T)


def spectral_abscissa(W: np.ndarray | torch.Tensor) -> float:
    """Largest real part of an eigenvalue of a square matrix ``W`` (n, n)."""
    if isinstance(W, torch.Tensor):
        return float(torch.linalg.eigvals(W.detach()).real.max())
    return float(np.max(scipy.linalg.eigvals(W).real))


def lyap(A: np.ndarray, Q: np.ndarray | float) -> np.ndarray:
    """Solve ``A X + X A^T + Q = 0`` for stable ``A`` (n, n) with Schur + ``dtrsyl``, float64.

    ``Q`` is (n, n) symmetric or a scalar ``q`` meaning ``q I``. Returns ``X`` (n, n), symmetric.
    For the observability form ``A^T X + X A + Q = 0`` call ``lyap(A.T, Q)``.
    """
    return SchurForm.of(A).lyap(Q)


def lyap_sign(
    A: torch.Tensor,
    Q: torch.Tensor,
    *,
    tol: float | None = None,
    max_iterations: int = 100,
) -> torch.Tensor:
    """Solve ``A X + X A^T + Q = 0`` by the matrix-sign-function Newton iteration (torch).

    For stable ``A`` the sign of ``H = [[A, Q], [0, -A^T]]`` is ``[[-I, 2X], [0, I]]``; Newton's
    iteration ``H <- (c H + H^-1 / c) / 2`` keeps the block structure, so only ``A_k`` and ``Q_k``
    are iterated. ``c = |det A_k|^(-1/n)`` (determinant scaling) cuts the iteration count to
    about ten. Uses only inverses and products: runs batched on CPU or CUDA.

    Args:
        A: (..., n, n) stable matrices (spectral abscissa < 0).
        Q: (..., n, n) symmetric right-hand sides, broadcastable to ``A``.
        tol: stop when ``||A_k + I||_F / sqrt(n) < tol`` (default: 100 x machine epsilon).
        max_iterations: raise :class:`NotConvergedError` beyond this.

    Returns:
        X (..., n, n), symmetric, same dtype and device as ``A``.
    """
    if A.shape[-1] != A.shape[-2]:
        raise InvalidNetworkError(f"A must be square, got shape {tuple(A.shape)}")
    n = A.shape[-1]
    tol = 100 * torch.finfo(A.dtype).eps if tol is None else tol
    identity = torch.eye(n, dtype=A.dtype, device=A.device)
    Ak, Qk = A, Q.expand_as(A) if Q.dim() < A.dim() else Q
    for _ in range(max_iterations):
        A_inv = torch.linalg.inv(Ak)
        _, logabsdet = torch.linalg.slogdet(Ak)
        c = torch.exp(-logabsdet / n)[..., None, None]
        Ak_next = 0.5 * (c * Ak + A_inv / c)
        Qk = 0.5 * (c * Qk + (A_inv @ Qk @ A_inv.mT) / c)
        Ak = Ak_next
        error = torch.linalg.matrix_norm(Ak + identity) / n**0.5
        if bool((error < tol).all()):
            X = 0.5 * Qk
            return 0.5 * (X + X.mT)
        if not bool(torch.isfinite(error).all()):
            break
    raise NotConvergedError(
        f"sign-function Lyapunov solver did not converge in {max_iterations} iterations; "
        "is A stable (all eigenvalues with negative real part)?"
    )


def _stable_leak_form(W: np.ndarray) -> SchurForm:
    """Schur form of ``W - I``, refusing an unstable one (its Gramians would not exist)."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise InvalidNetworkError(f"W must be a square (n, n) matrix, got shape {W.shape}")
    form = SchurForm.of(W - np.eye(W.shape[0]))
    if form.spectral_abscissa >= 0:
        raise InvalidNetworkError(
            f"W - I is not stable (spectral abscissa of W = {form.spectral_abscissa + 1:.4g} "
            ">= 1): its Gramians do not exist"
        )
    return form


def controllability_gramian(W: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """Controllability Gramian ``P`` of ``x' = (W - I) x + B u``.

    Solves ``(W - I) P + P (W - I)^T = -B B^T``. ``W`` (n, n), columns presynaptic; ``B`` (n, m)
    or ``None`` for the identity (every unit driven). Returns ``P`` (n, n), float64.
    """
    return _stable_leak_form(W).lyap(1.0 if B is None else B @ B.T)


def observability_gramian(W: np.ndarray, C: np.ndarray | None = None) -> np.ndarray:
    """Observability Gramian ``O`` of ``x' = (W - I) x``, ``y = C x``.

    Solves ``(W - I)^T O + O (W - I) = -C^T C``. ``C`` (k, n) or ``None`` for the identity (the
    "energy" Gramian: ``x0^T O x0`` is the integral of ``||x(t)||^2`` from ``x0``, time in units
    of tau). Returns ``O`` (n, n), float64.
    """
    return _stable_leak_form(W).lyap(1.0 if C is None else C.T @ C, transpose=True)


def amplifying_directions(
    gramian: np.ndarray, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` eigenpairs of a Gramian, sorted by decreasing eigenvalue.

    Uses a symmetric eigensolver on ``(G + G^T) / 2``. For the observability Gramian the
    eigenvectors are the initial conditions the network amplifies most (docs/science.md §3).

    Returns:
        values (k,) and vectors (n, k), column ``i`` the unit-norm direction of ``values[i]``.
    """
    G = np.asarray(gramian, dtype=np.float64)
    values, vectors = np.linalg.eigh(0.5 * (G + G.T))
    order = np.argsort(values)[::-1]
    if k is not None:
        if not 1 <= k <= len(values):
            raise ValueError(f"k must be in [1, {len(values)}], got {k}")
        order = order[:k]
    return values[order], vectors[:, order]
