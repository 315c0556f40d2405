"""Stability-optimised circuits (SOC): E/I weight matrices made stable by gradient descent on the
smoothed spectral abscissa, optimising inhibitory weights only (docs/science.md §2).

Two published variants, named after their papers:

- ``hennequin2014`` (Hennequin, Vogels & Gerstner 2014, as in Stroud's ``soc_function.m``):
  sparse random initial network, shift ``s = max(1.5 a, a + 0.2)``, block renormalisation of
  inhibition, 40 % inhibitory density, stop at spectral abscissa 0.15.
- ``kao2021`` (Kao, Sadabadi & Hennequin 2021): lognormal excitation, dense inhibition, every row
  summing to -10, shift ``s = max(1, 1.2 a)`` (its margin above ``a`` narrowed by ``n / 200``
  for smaller networks, :class:`SOCParameters`), stop at spectral abscissa 0.81.

Weights are (n, n) with column j the presynaptic unit j: the first ``n_excitatory`` columns are
excitatory (>= 0), the rest inhibitory (<= 0), and the diagonal is zero (no autapses).

Each iteration costs one real Schur decomposition of W: it gives the spectral abscissa (the stop
test of the matrix just produced, and the shift of the next step) and, shifted, both Lyapunov
solves (``dtrsyl`` on the triangular factor). The stop test is always made on the updated matrix.

``SOCParameters.step`` chooses the step size: ``"fixed"`` (the default, as published: every step
``rate`` times the gradient) or ``"adaptive"``, which backtracks from a growing step size along
the same gradient, through the same projections, with the same stop test (:func:`_backtrack`);
each trial costs one Schur form, counted in ``SOCResult.factorisations``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import numpy as np
import scipy.linalg
import scipy.optimize
import torch
from scipy.linalg.lapack import dtrsyl

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import SchurForm, lyap_sign, observability_gramian
from lifrnn_core.soc_parameters import InitialDraw, SOCMethod, SOCParameters
from lifrnn_core.threads import blas_threads

__all__ = [
    "SOCMethod",
    "SOCParameters",
    "SOCResult",
    "amplification",
    "balance_inhibition",
    "build_soc",
    "check_dale",
    "connection_positions",
    "initial_weights",
    "kao2021_shift",
    "normalise_rows",
    "optimise_inhibition",
    "smoothed_spectral_abscissa",
    "sparsify_inhibition",
]

logger = logging.getLogger(__name__)

Backend = Literal["schur", "sign", "scipy"]
CheckpointCallback = Callable[[int, np.ndarray, np.ndarray], None]
"""Called with (iteration, W (n, n), abscissa history) to save the state of an optimisation."""
ProgressCallback = Callable[[int, float], None]
"""Called after every iteration with (iteration, spectral abscissa of the updated W); it may raise
to stop the optimisation (cooperative cancellation)."""


@dataclass
class SOCResult:
    """Outcome of an SOC optimisation.

    Attributes:
        weights: final W (n, n), float64.
        initial_weights: W before optimisation (n, n), float64.
        history: spectral abscissa of W after each iteration (iterations + 1,), index 0 the
            initial matrix; one entry per step taken (adaptive trials that were retried
            shorter leave none).
        converged: whether the final abscissa is at or below the target.
        parameters: the parameters used.
        factorisations: Schur forms (eigen-decompositions with the other backends) made by
            this call, the initial one included: ``iterations + 1`` for the fixed step (minus
            the steps of a resumed history), more for the adaptive one, whose rejected trials
            cost one each. The honest measure of work.
    """

    weights: np.ndarray
    initial_weights: np.ndarray
    history: np.ndarray
    converged: bool
    parameters: SOCParameters
    eigenvalues_initial: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    eigenvalues_final: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    factorisations: int = 0

    @property
    def iterations(self) -> int:
        """Number of gradient steps taken."""
        return len(self.history) - 1

    @property
    def spectral_abscissa(self) -> float:
        """Spectral abscissa of the final W."""
        return float(self.history[-1])

    @property
    def inhibitory_density(self) -> float:
        """Fraction of non-zero entries in the inhibitory columns."""
        block = self.weights[:, self.parameters.n_excitatory :]
        return float(np.count_nonzero(block) / block.size)


# ----------------------------------------------------------------------------- initial networks


def connection_positions(
    n: int, n_connections: int, rng: np.random.Generator, draw: InitialDraw = "choice"
) -> np.ndarray:
    """Flat (row-major) indices into an (n, n) matrix of ``n_connections`` distinct off-diagonal
    positions, drawn from ``rng``.

    ``draw="choice"``: ``rng.choice`` over the ``n (n-1)`` off-diagonal positions (row-major
    order), without replacement. ``draw="stroud"``: those positions at the first
    ``n_connections`` entries of ``rng.permutation(n (n-1))``, the documented recipe of the
    matrix Stroud's code is compared on (docs/science.md §2). Both are uniform draws; for the
    same ``rng`` they pick different positions.

    Returns:
        (n_connections,) int64 indices into ``W.ravel()``.
    """
    off_diagonal = np.flatnonzero(~np.eye(n, dtype=bool))
    if draw == "stroud":
        return off_diagonal[rng.permutation(off_diagonal.size)[:n_connections]]
    if draw == "choice":
        return rng.choice(off_diagonal, size=n_connections, replace=False)
    raise ValueError(f"unknown initial draw {draw!r}")


def _hennequin2014_initial(params: SOCParameters, rng: np.random.Generator) -> np.ndarray:
    n, p, gamma = params.n, params.p, params.gamma
    n_connections = round(p * n * (n - 1))
    chosen = connection_positions(n, n_connections, rng, params.initial_draw)
    w0 = math.sqrt(2.0) * params.radius / math.sqrt(p * (1.0 - p) * (1.0 + gamma**2))
    flat = np.zeros(n * n)
    flat[chosen] = w0 / math.sqrt(n)
    W = flat.reshape(n, n)
    W[:, params.n_excitatory :] *= -gamma
    return W


def _kao2021_initial(params: SOCParameters, rng: np.random.Generator) -> np.ndarray:
    n, n_e = params.n, params.n_excitatory
    w0 = 1.2 / math.sqrt(n * params.p * (1.0 - params.p))
    n_inputs = round(params.p * n_e)
    W = np.zeros((n, n))
    for row in range(n):
        candidates = np.delete(np.arange(n_e), row) if row < n_e else np.arange(n_e)
        if n_inputs > len(candidates):
            raise InvalidNetworkError(
                f"p={params.p} asks {n_inputs} excitatory inputs per row, only {len(candidates)}"
            )
        columns = rng.choice(candidates, size=n_inputs, replace=False)
        W[row, columns] = np.exp(math.log(w0) + 0.5 * rng.standard_normal(n_inputs))
    W[:, n_e:] = -rng.uniform(0.0, 1.0, size=(n, n - n_e))
    np.fill_diagonal(W, 0.0)
    return normalise_rows(torch.from_numpy(W), n_e, params.row_sum).numpy()


def initial_weights(params: SOCParameters, rng: np.random.Generator) -> np.ndarray:
    """Random initial E/I network of ``params.method`` (docs/science.md §2), (n, n) float64.

    hennequin2014: exactly ``round(p n (n-1))`` off-diagonal entries at random positions
    (:func:`connection_positions` with ``params.initial_draw``), weight ``w0 / sqrt(n)`` with
    ``w0 = sqrt(2) R / sqrt(p (1-p) (1+gamma^2))``, inhibitory columns multiplied by ``-gamma``.
    kao2021: ``round(p n_e)`` lognormal excitatory inputs per row, all-to-all ``-U(0, 1)``
    inhibition, rows renormalised to sum to ``row_sum`` (``initial_draw`` must be ``"choice"``).
    """
    if params.method == "hennequin2014":
        return _hennequin2014_initial(params, rng)
    if params.method == "kao2021":
        if params.initial_draw != "choice":
            raise InvalidNetworkError(
                f"initial_draw {params.initial_draw!r} is a hennequin2014 recipe; kao2021 "
                "draws its initial network one way only ('choice')"
            )
        return _kao2021_initial(params, rng)
    raise ValueError(f"unknown SOC method {params.method!r}")


def check_dale(W: np.ndarray, n_excitatory: int) -> None:
    """Raise :class:`InvalidNetworkError` unless W (n, n) obeys Dale's law on columns.

    Checks: square and finite, excitatory columns >= 0, inhibitory columns <= 0, zero diagonal,
    at least one inhibitory weight (otherwise there is nothing to optimise).
    """
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise InvalidNetworkError(f"W must be square (n, n), got shape {W.shape}")
    if not 0 < n_excitatory < W.shape[0]:
        raise InvalidNetworkError(f"n_excitatory must be in (0, {W.shape[0]}), got {n_excitatory}")
    if not np.isfinite(W).all():
        raise InvalidNetworkError("W contains NaN or infinite entries")
    if (W[:, :n_excitatory] < 0).any():
        column = int(np.argwhere(W[:, :n_excitatory] < 0)[0, 1])
        raise InvalidNetworkError(f"Dale's law: excitatory column {column} has a negative weight")
    if (W[:, n_excitatory:] > 0).any():
        column = n_excitatory + int(np.argwhere(W[:, n_excitatory:] > 0)[0, 1])
        raise InvalidNetworkError(f"Dale's law: inhibitory column {column} has a positive weight")
    if np.any(np.diag(W) != 0):
        raise InvalidNetworkError("W has autapses: set its diagonal to zero")
    if not (W[:, n_excitatory:] < 0).any():
        raise InvalidNetworkError("W has no inhibitory weight to optimise")


# ----------------------------------------------------------------------------- one SOC step


class _Factorisation(Protocol):
    spectral_abscissa: float

    def gradient(self, shift: float) -> torch.Tensor:
        """``Q P / trace(Q P)`` for ``A = W - shift I`` (n, n)."""
        ...

    def energy(self, shift: float) -> float:
        """``trace P`` for ``A = W - shift I``, ``A P + P A^T = -I`` (requires A stable)."""
        ...


class _SchurFactorisation:
    """CPU: one real Schur form of W gives the abscissa and both Gramians of any shift."""

    def __init__(self, W: torch.Tensor) -> None:
        self.form = SchurForm.of(W.numpy())
        self.spectral_abscissa = self.form.spectral_abscissa
        self._energy: tuple[float, float] | None = None  # (shift, trace P) of the last gradient

    def gradient(self, shift: float) -> torch.Tensor:
        T, Z = self.form.T, self.form.Z
        n = T.shape[0]
        Ts = T - shift * np.eye(n)
        rhs = -np.eye(n)
        # In Schur coordinates Q = Z X Z^T and P = Z Y Z^T, so QP = Z (X Y) Z^T and
        # trace(QP) = trace(XY): no need to rotate either Gramian back separately.
        X, scale_x, info_x = dtrsyl(Ts, Ts, rhs, trana="T", tranb="N")
        Y, scale_y, info_y = dtrsyl(Ts, Ts, rhs, trana="N", tranb="T")
        if info_x or info_y:
            raise InvalidNetworkError("shifted W is not stable: Lyapunov equation is singular")
        XY = (X / scale_x) @ (Y / scale_y)
        G = Z @ XY @ Z.T
        self._energy = (shift, float(np.trace(Y) / scale_y))
        return torch.from_numpy(G / np.trace(XY))

    def energy(self, shift: float) -> float:
        if self._energy is not None and self._energy[0] == shift:
            return self._energy[1]  # the gradient's solve gave it: the trace is rotation-free
        Ts = self.form.T - shift * np.eye(self.form.T.shape[0])
        Y, scale, info = dtrsyl(Ts, Ts, -np.eye(Ts.shape[0]), trana="N", tranb="T")
        if info:
            raise InvalidNetworkError("shifted W is not stable: Lyapunov equation is singular")
        return float(np.trace(Y) / scale)  # trace is invariant under the rotation by Z


class _SignFactorisation:
    """Any torch device: eigvals for the abscissa, sign-function Newton for the Gramians."""

    def __init__(self, W: torch.Tensor) -> None:
        self.W = W
        self.spectral_abscissa = float(torch.linalg.eigvals(W).real.max())

    def gradient(self, shift: float) -> torch.Tensor:
        n = self.W.shape[0]
        identity = torch.eye(n, dtype=self.W.dtype, device=self.W.device)
        A = self.W - shift * identity
        P = lyap_sign(A, identity)
        Q = lyap_sign(A.mT, identity)
        QP = Q @ P
        return QP / torch.trace(QP)

    def energy(self, shift: float) -> float:
        identity = torch.eye(self.W.shape[0], dtype=self.W.dtype, device=self.W.device)
        return float(torch.trace(lyap_sign(self.W - shift * identity, identity)))


class _ScipyFactorisation:
    """The straightforward recipe (baseline): eigvals, then two independent Lyapunov solves."""

    def __init__(self, W: torch.Tensor) -> None:
        self.W = W.numpy()
        self.spectral_abscissa = float(np.max(np.linalg.eigvals(self.W).real))

    def gradient(self, shift: float) -> torch.Tensor:
        n = self.W.shape[0]
        A = self.W - shift * np.eye(n)
        Q = scipy.linalg.solve_continuous_lyapunov(A.T, -2.0 * np.eye(n))
        P = scipy.linalg.solve_continuous_lyapunov(A, -2.0 * np.eye(n))
        QP = Q @ P
        return torch.from_numpy(QP / np.trace(QP))

    def energy(self, shift: float) -> float:
        n = self.W.shape[0]
        P = scipy.linalg.solve_continuous_lyapunov(self.W - shift * np.eye(n), -np.eye(n))
        return float(np.trace(P))


_FACTORISATIONS: dict[str, Callable[[torch.Tensor], _Factorisation]] = {
    "schur": _SchurFactorisation,
    "sign": _SignFactorisation,
    "scipy": _ScipyFactorisation,
}


def _factorise(W: torch.Tensor, backend: Backend) -> _Factorisation:
    return _FACTORISATIONS[backend](W)


def balance_inhibition(W: torch.Tensor, n_excitatory: int, gamma: float) -> torch.Tensor:
    """Rescale inhibitory blocks in place so that inhibition is gamma times excitation on average.

    ``W_EI *= -gamma mean(W_EE) / mean(W_EI)`` and ``W_II *= -gamma mean(W_IE) / mean(W_II)``
    (rows postsynaptic, means over whole blocks, zeros included), as in Stroud's code.
    """
    n_e = n_excitatory
    ee, ei = W[:n_e, :n_e].mean(), W[:n_e, n_e:].mean()
    ie, ii = W[n_e:, :n_e].mean(), W[n_e:, n_e:].mean()
    if ei == 0 or ii == 0:
        raise InvalidNetworkError("an inhibitory block became all zero: lower the rate")
    W[:n_e, n_e:] *= -gamma * ee / ei
    W[n_e:, n_e:] *= -gamma * ie / ii
    return W


def sparsify_inhibition(W: torch.Tensor, n_excitatory: int, density: float) -> torch.Tensor:
    """Keep only the most negative inhibitory weights, in place; zero the rest.

    Keeps ``round(density n n_i) - 1`` entries of the inhibitory columns, the count of Stroud's
    ``soc_function.m``.
    """
    inhibitory = W[:, n_excitatory:]
    n_keep = max(round(density * inhibitory.numel()) - 1, 1)
    kept = torch.topk(-inhibitory.reshape(-1), n_keep, sorted=False).indices
    mask = torch.zeros(inhibitory.numel(), dtype=torch.bool, device=W.device)
    mask[kept] = True
    W[:, n_excitatory:] = torch.where(mask.view_as(inhibitory), inhibitory, 0.0)
    return W


def _hennequin2014_shift(alpha: float, params: SOCParameters) -> float:
    return max(1.5 * alpha, alpha + 0.2)


def _hennequin2014_gradient(factor: _Factorisation, shift: float) -> torch.Tensor:
    return factor.gradient(shift)


def _hennequin2014_update(
    W: torch.Tensor, G: torch.Tensor, rate: float, params: SOCParameters
) -> torch.Tensor:
    n_e = params.n_excitatory
    W = W.clone()
    W[:, n_e:] -= rate * G[:, n_e:]
    W[:, n_e:].clamp_(max=0.0)
    balance_inhibition(W, n_e, params.gamma)
    sparsify_inhibition(W, n_e, params.inhibitory_density)
    W.fill_diagonal_(0.0)
    return W


def normalise_rows(W: torch.Tensor, n_excitatory: int, row_sum: float) -> torch.Tensor:
    """Rescale each row's inhibitory weights in place so that every row sums to ``row_sum``.

    The kao2021 constraint; the factor is positive, so Dale's law is kept.
    """
    n_e = n_excitatory
    excitatory_sum = W[:, :n_e].sum(dim=1)
    inhibitory_sum = W[:, n_e:].sum(dim=1)
    if bool((inhibitory_sum == 0).any()):
        raise InvalidNetworkError("a row lost all its inhibitory weights: lower the rate")
    # A positive factor: signs are kept, and every row sums to exactly row_sum.
    W[:, n_e:] *= ((row_sum - excitatory_sum) / inhibitory_sum)[:, None]
    return W


def kao2021_shift(alpha: float, shift_scale: float = 1.0) -> float:
    """Shift ``s`` of a kao2021 step at spectral abscissa ``alpha``: Kao's ``max(1, 1.2 alpha)``,
    its margin above ``alpha`` multiplied by ``shift_scale`` (``SOCParameters``; 1 at n >= 200).
    """
    published = max(1.0, 1.2 * alpha)
    if shift_scale == 1.0:
        return published  # computed as published, so that default builds stay bit for bit
    return alpha + shift_scale * (published - alpha)


def _kao2021_shift(alpha: float, params: SOCParameters) -> float:
    return kao2021_shift(alpha, params.shift_scale)


def _kao2021_gradient(factor: _Factorisation, shift: float) -> torch.Tensor:
    return factor.gradient(shift).fill_diagonal_(0.0)


def _kao2021_update(
    W: torch.Tensor, G: torch.Tensor, rate: float, params: SOCParameters
) -> torch.Tensor:
    n_e = params.n_excitatory
    W = W.clone()
    W[:, n_e:] -= rate * G[:, n_e:]
    W[:, n_e:].clamp_(max=0.0)
    return normalise_rows(W, n_e, params.row_sum)


class _Variant(NamedTuple):
    """One SOC variant's step, split so that the adaptive rule can retry a step size: the
    ``shift`` s at spectral abscissa alpha, the ``gradient`` (n, n) at that shift of the
    factorised W, and ``update``, which takes a step of a given size along it and applies the
    variant's projections (Dale's law, renormalisation, pruning).
    """

    shift: Callable[[float, SOCParameters], float]
    gradient: Callable[[_Factorisation, float], torch.Tensor]
    update: Callable[[torch.Tensor, torch.Tensor, float, SOCParameters], torch.Tensor]


_VARIANTS = {
    "hennequin2014": _Variant(_hennequin2014_shift, _hennequin2014_gradient, _hennequin2014_update),
    "kao2021": _Variant(_kao2021_shift, _kao2021_gradient, _kao2021_update),
}

ADAPTIVE_GROWTH = 2.0
"""After a step taken at its first try, the next adaptive step first tries this many times it."""
ADAPTIVE_SHRINK = 0.25
"""A rejected adaptive trial is retried at this fraction of its step size (never below rate)."""
ADAPTIVE_MAX_FACTOR = 8.0
"""Adaptive steps are at most this many times ``rate``. Longer steps take fewer Schur forms but
land on less amplifying networks (n = 200 hennequin2014, seeds 0 and 1: 16 rate lost 1-11 % of
the fixed rate's amplification, unbounded 14-18 %; 8 rate 0-5 %)."""
ADAPTIVE_OVERSHOOT = 0.02
"""An adaptive trial may pass the target abscissa by at most this fraction of ``1 - target``
(the stability margin of ``W - I``, which sets the amplification); one that passes it further
is retried shorter, so that the last step lands about where the fixed rule's would."""


# ----------------------------------------------------------------------------- optimisation


def optimise_inhibition(
    W0: np.ndarray,
    params: SOCParameters,
    *,
    backend: Backend = "schur",
    device: str | torch.device = "cpu",
    callback: ProgressCallback | None = None,
    checkpoint: CheckpointCallback | None = None,
    checkpoint_every: int = 100,
    history: Sequence[float] = (),
) -> SOCResult:
    """Optimise the inhibitory weights of ``W0`` until its spectral abscissa reaches the target.

    Args:
        W0: initial weights (n, n), columns presynaptic, obeying Dale's law.
        params: variant and its parameters.
        backend: ``"schur"`` (CPU LAPACK, float64: one Schur form per step, the fast path),
            ``"sign"`` (torch matrix-sign-function solver; runs on ``device``, e.g. CUDA) or
            ``"scipy"`` (the straightforward recipe: eigvals plus two independent
            ``solve_continuous_lyapunov`` calls per step; a baseline for benchmarks and tests).
        device: torch device for the ``"sign"`` backend.
        callback: called after each step with (iteration, new abscissa); may raise to cancel.
        checkpoint: called with (iteration, W, history) every ``checkpoint_every`` steps.
        history: abscissae of the steps already taken when resuming from a checkpoint ``W0``
            (its last entry is ``W0``'s); the iteration count and limit include them.

    With ``params.step == "adaptive"`` each iteration is one step taken (``max_iterations``,
    ``history``, the callback and checkpoints count steps taken, not trials). The adaptive step
    size is not saved in checkpoints, so it restarts from ``params.rate`` at every multiple of
    ``checkpoint_every``, whether or not ``checkpoint`` is given: a build resumed from a
    checkpoint repeats the uninterrupted build bit for bit.

    Returns:
        An :class:`SOCResult`; ``converged`` is False when ``max_iterations`` ran out (the last W
        is still returned).
    """
    if W0.shape != (params.n, params.n):
        raise InvalidNetworkError(f"W has shape {W0.shape}, the parameters say n={params.n} units")
    check_dale(W0, params.n_excitatory)
    if backend != "sign" and torch.device(device).type != "cpu":
        raise ValueError(f"the {backend} backend runs on the CPU; use backend='sign' on a GPU")
    # Small dense LAPACK calls run fastest on one thread; more threads only contend.
    threads = 1 if params.n <= _SINGLE_THREAD_MAX_N else None
    with blas_threads(threads):
        return _optimise(
            W0, params, backend, device, callback, checkpoint, checkpoint_every, list(history)
        )


_SINGLE_THREAD_MAX_N = 600


def _optimise(
    W0: np.ndarray,
    params: SOCParameters,
    backend: Backend,
    device: str | torch.device,
    callback: ProgressCallback | None,
    checkpoint: CheckpointCallback | None,
    checkpoint_every: int,
    previous: list[float],
) -> SOCResult:
    variant = _VARIANTS[params.method]
    W = torch.tensor(W0, dtype=torch.float64, device=device)
    factor = _factorise(W, backend)
    factorisations = 1
    history = [*previous[:-1], factor.spectral_abscissa]
    eigenvalues_initial = np.linalg.eigvals(W0)
    rate = params.rate
    while history[-1] > params.target_abscissa and len(history) <= params.max_iterations:
        shift = variant.shift(factor.spectral_abscissa, params)
        G = variant.gradient(factor, shift).to(W.device)
        if params.step == "fixed":
            W = variant.update(W, G, params.rate, params)
            factor = _factorise(W, backend)
            factorisations += 1
        else:
            if (len(history) - 1) % checkpoint_every == 0:
                # The step size is not checkpointed: restart it wherever a build may resume,
                # so that a resumed build repeats the uninterrupted one bit for bit.
                rate = params.rate
            W, factor, accepted, trials = _backtrack(W, G, factor, shift, rate, params, backend)
            factorisations += trials
            # Grow only after a step taken at its first try; after a backtrack, stay put.
            grown = accepted * ADAPTIVE_GROWTH if accepted == rate else accepted
            rate = min(grown, ADAPTIVE_MAX_FACTOR * params.rate)
        history.append(factor.spectral_abscissa)
        if not math.isfinite(history[-1]):
            raise InvalidNetworkError(
                f"spectral abscissa became {history[-1]} at step {len(history) - 1}"
            )
        if callback is not None:
            callback(len(history) - 1, history[-1])
        if checkpoint is not None and (len(history) - 1) % checkpoint_every == 0:
            checkpoint(len(history) - 1, W.cpu().numpy(), np.asarray(history))
    weights = W.cpu().numpy()
    converged = history[-1] <= params.target_abscissa
    logger.info(
        "SOC %s n=%d, %s step: abscissa %.3f -> %.3f in %d steps, %d factorisations (converged=%s)",
        params.method,
        params.n,
        params.step,
        history[0],
        history[-1],
        len(history) - 1,
        factorisations,
        converged,
    )
    return SOCResult(
        weights=weights,
        initial_weights=np.array(W0, dtype=np.float64),
        history=np.asarray(history),
        converged=converged,
        parameters=params,
        eigenvalues_initial=eigenvalues_initial,
        eigenvalues_final=np.linalg.eigvals(weights),
        factorisations=factorisations,
    )


def _backtrack(
    W: torch.Tensor,
    G: torch.Tensor,
    factor: _Factorisation,
    shift: float,
    rate: float,
    params: SOCParameters,
    backend: Backend,
) -> tuple[torch.Tensor, _Factorisation, float, int]:
    """One adaptive step from ``W`` (n, n), factorised as ``factor``, along the gradient ``G``
    (n, n) taken at ``shift``.

    Tries ``rate``, then ``ADAPTIVE_SHRINK`` times it (never below ``params.rate``) until the
    projected W is accepted: its abscissa is below ``shift`` and ``trace P(shift)`` (the
    Lyapunov energy whose level set defines the smoothed abscissa, :func:`_Factorisation.energy`)
    is lower than W's, i.e. the smoothed abscissa whose gradient ``G`` is has decreased, and its
    abscissa has not passed the target by more than ``ADAPTIVE_OVERSHOOT``. At ``params.rate``
    the step is taken whatever it gives, as the fixed rule would take it.

    Returns:
        (new W (n, n), its factorisation, the step size taken, factorisations made).
    """
    update = _VARIANTS[params.method].update
    energy = factor.energy(shift)
    target = params.target_abscissa
    lowest = target - ADAPTIVE_OVERSHOOT * (1.0 - target)
    trials = 0
    while True:
        at_floor = rate <= params.rate
        try:
            candidate = update(W, G, rate, params)
        except InvalidNetworkError:
            if at_floor:
                raise
            rate = max(rate * ADAPTIVE_SHRINK, params.rate)  # a block emptied: step too long
            continue
        factor = _factorise(candidate, backend)
        trials += 1
        alpha = factor.spectral_abscissa
        if at_floor or (lowest <= alpha < shift and factor.energy(shift) < energy):
            return candidate, factor, rate, trials
        rate = max(rate * ADAPTIVE_SHRINK, params.rate)


def build_soc(
    params: SOCParameters,
    *,
    seed: int,
    initial: np.ndarray | None = None,
    backend: Backend = "schur",
    device: str | torch.device = "cpu",
    callback: ProgressCallback | None = None,
) -> SOCResult:
    """Build a stability-optimised circuit: random initial W from ``seed`` (or ``initial``), then
    :func:`optimise_inhibition`. The same parameters and seed give the same W bit for bit on CPU.
    """
    if initial is None:
        initial = initial_weights(params, np.random.default_rng(seed))
    return optimise_inhibition(initial, params, backend=backend, device=device, callback=callback)


# ----------------------------------------------------------------------------- measures


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
