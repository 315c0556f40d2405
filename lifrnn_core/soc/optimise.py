"""The SOC optimisation loop: gradient steps on the inhibitory weights until the spectral abscissa
reaches the target, with the fixed or the adaptive step size (:func:`_backtrack`), callbacks and
checkpoints; :func:`build_soc` draws the initial network and runs it."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.soc.initial import check_dale, initial_weights
from lifrnn_core.soc.steps import (
    _VARIANTS,
    ADAPTIVE_GROWTH,
    ADAPTIVE_MAX_FACTOR,
    ADAPTIVE_OVERSHOOT,
    ADAPTIVE_SHRINK,
    Backend,
    _Factorisation,
    _factorise,
)
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.threads import blas_threads

__all__ = [
    "CheckpointCallback",
    "ProgressCallback",
    "SOCResult",
    "build_soc",
    "optimise_inhibition",
]

logger = logging.getLogger(__name__)

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
