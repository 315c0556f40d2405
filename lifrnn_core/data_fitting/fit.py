"""The fit of a network to recorded, condition-averaged rates (:func:`fit_to_data`): initial
states by L-BFGS with the linear maps eliminated, then optionally W too (``full_network``); and
:func:`random_like`, the random network a fit is compared with. The model is described in
:mod:`lifrnn_core.data_fitting`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from lifrnn_core.data_fitting.readout import LinearMap, ridge_map
from lifrnn_core.dynamics import GainName, background_input, gain_function, simulate
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.euler import euler_step
from lifrnn_core.fitting import initial_state_basis, scaled_initial_states
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.lbfgs import (
    DivergedError,
    Iteration,
    LBFGSDriver,
    RememberingClosure,
    StopRules,
    divergence_error,
)
from lifrnn_core.retraining import backtrack_to_bound, project_dale

__all__ = [
    "DataFit",
    "DataFitCallback",
    "DataFitConfig",
    "DataFitMode",
    "fit_to_data",
    "random_like",
]

logger = logging.getLogger(__name__)

DataFitCallback = Callable[[int, float], None]
"""Called after every optimiser iteration with (iteration, cost); may raise to cancel."""
DataFitMode = Literal["initial_states", "full_network"]


@dataclass(frozen=True)
class DataFitConfig:
    """Settings of a fit to recorded rates.

    Attributes:
        tau: time constant, seconds.
        dt: sampling interval of the data, seconds.
        integration_dt: Euler step of the simulation, seconds; it divides ``dt`` (None: the
            largest step of at most 2 ms that does, :func:`lifrnn_core.euler.euler_step`).
            Forward Euler is only accurate for steps well below the network's fastest time scale
            (:func:`lifrnn_core.dynamics.euler_step_ratio`): for a kao2021 network (eigenvalues
            of W - I down to -11, tau = 0.15 s) a 10 ms step reproduces a 1 ms simulation's
            rates with R^2 0.26, a 2 ms step with 0.998.
        gain: ``"relu"`` or ``"tanh_shifted"``.
        state_radius: RMS distance per unit and condition of ``x*`` from ``x_sp``.
        n_modes: Gramian eigenvectors spanning ``x* - x_sp`` (None: all n).
        ridge: ridge penalty of the linear maps, relative to the mean variance of the rates.
        behavior_weight: weight of the behaviour's unexplained variance in the cost.
        silent_samples: leading time samples (preparation, before movement onset) in which the
            behaviour readout must be silent.
        silence_weight: weight of those samples' zero targets.
        mode: ``"initial_states"`` (W fixed) or ``"full_network"`` (W adapts too).
        max_iterations: L-BFGS iterations at most (and Adam steps at most in full_network).
        relative_tolerance: stop when the cost changes by less than this, relatively.
        learning_rate: Adam step of full_network.
        stability_bound: spectral abscissa W must stay below in full_network (None: its
            initial abscissa + 0.05, at least 0.95 for a stable rate network's W).
        patience: full_network stops when the best cost improved by less than
            ``10 * relative_tolerance`` over this many steps.
        divergence_limit: activity beyond this (max |x|) counts as diverged.
    """

    tau: float = 0.15
    dt: float = 0.01
    integration_dt: float | None = None
    gain: GainName = "relu"
    state_radius: float = 0.2
    n_modes: int | None = None
    ridge: float = 1e-3
    behavior_weight: float = 1.0
    silent_samples: int = 0
    silence_weight: float = 10.0
    mode: DataFitMode = "initial_states"
    max_iterations: int = 100
    relative_tolerance: float = 1e-4
    learning_rate: float = 2e-3
    stability_bound: float | None = None
    patience: int = 10
    divergence_limit: float = 1e4

    def __post_init__(self) -> None:
        euler_step(self.dt, self.integration_dt)

    @property
    def substeps(self) -> int:
        """Euler steps per data sample."""
        return round(self.dt / euler_step(self.dt, self.integration_dt))


def random_like(W: Tensor, n_excitatory: int, generator: torch.Generator) -> Tensor:
    """A random E/I network with W's zero pattern and column signs, its entries shuffled
    within each E/I block, scaled to W's spectral abscissa (the fit's control network).

    Args:
        W: (n, n) reference weights.
        n_excitatory: the first columns are excitatory.
        generator: randomness of the shuffle.

    Returns:
        (n, n) weights, dtype and device of W.
    """
    reference = W.detach().cpu().double()
    n = reference.shape[0]
    shuffled = torch.zeros_like(reference)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    for columns in (slice(0, n_excitatory), slice(n_excitatory, n)):
        block = reference[:, columns]
        where = off_diagonal[:, columns]
        values = block[where]
        order = torch.randperm(values.numel(), generator=generator)
        target = torch.zeros_like(block)
        target[where] = values[order]
        shuffled[:, columns] = target
    goal, now = spectral_abscissa(reference), spectral_abscissa(shuffled)
    if now > 0 and goal > 0:
        shuffled = shuffled * (goal / now)
    return shuffled.to(W)


@dataclass
class DataFit:
    """Outcome of :func:`fit_to_data`.

    Attributes:
        W: (n, n) weights (changed only in full_network).
        h: (n,) background input keeping ``x_sp`` a fixed point of W.
        x_star: (conditions, n) initial states.
        theta: (conditions, modes) their coordinates in the Gramian basis (unscaled).
        readout: the map to the recorded neurons (frozen when one was given).
        behavior_readout: the map to hand velocity, or None.
        states: (conditions, time, n) potentials.
        predicted: (conditions, time, neurons) model activity of the fitted neurons.
        behavior_predicted: (conditions, time, 2) model velocity, or None.
        cost: unexplained variance (+ ridge and behaviour terms) at the end.
        cost_initial: the same for the first guess (random x*, its maps solved exactly).
        r2: R^2 over every neuron, condition and time (pooled variance).
        r2_initial: the same for the first guess.
        behavior_r2: R^2 of the velocity (pooled), or None.
        iterations: optimiser iterations taken (L-BFGS, then Adam steps in full_network).
        converged: whether a stop rule, not the iteration limit, ended it.
        stop_reason: which rule ended it.
        history: cost after each iteration.
    """

    W: Tensor
    h: Tensor
    x_star: Tensor
    theta: Tensor
    readout: LinearMap
    behavior_readout: LinearMap | None
    states: Tensor
    predicted: Tensor
    behavior_predicted: Tensor | None
    cost: float
    cost_initial: float
    r2: float
    r2_initial: float
    behavior_r2: float | None
    iterations: int
    converged: bool
    stop_reason: str
    history: list[float] = field(default_factory=list)


def _pooled_r2(predicted: Tensor, data: Tensor) -> float:
    flat = data.reshape(-1, data.shape[-1])
    total = float((flat - flat.mean(0)).pow(2).sum())
    return 1.0 - float((predicted - data).pow(2).sum()) / max(total, 1e-300)


class _Objective:
    """The cost of a fit for given W and initial-state coordinates, maps eliminated."""

    def __init__(
        self,
        data: Tensor,
        behavior: Tensor | None,
        n_excitatory: int,
        config: DataFitConfig,
        readout: LinearMap | None,
    ) -> None:
        self.data, self.n_e, self.config, self.readout = data, n_excitatory, config, readout
        flat = data.reshape(-1, data.shape[-1])
        self.total = (flat - flat.mean(0)).pow(2).sum()
        self.gain = gain_function(config.gain)
        self.behavior = behavior
        self.behavior_weights: Tensor | None = None
        if behavior is not None:
            targets = behavior.clone()
            weights = torch.ones(behavior.shape[:2], dtype=data.dtype, device=data.device)
            silent = min(config.silent_samples, behavior.shape[1])
            targets[:, :silent] = 0.0
            weights[:, :silent] = config.silence_weight
            self.behavior = targets
            self.behavior_weights = weights
            centred = targets - (targets * weights[..., None]).sum((0, 1)) / weights.sum()
            self.behavior_total = (centred.pow(2) * weights[..., None]).sum()

    def __call__(
        self, W: Tensor, h: Tensor, x_star: Tensor
    ) -> tuple[Tensor, Tensor, LinearMap, LinearMap | None, Tensor]:
        """(cost, states, readout, behaviour readout, predicted activity)."""
        substeps = self.config.substeps
        states = simulate(
            W,
            x_star,
            tau=self.config.tau,
            dt=self.config.dt / substeps,
            steps=(self.data.shape[1] - 1) * substeps,
            h=h,
            gain=self.config.gain,
            record_every=substeps,
        )
        rates = self.gain(states[..., : self.n_e])
        if self.readout is None:
            readout, penalty = ridge_map(rates, self.data, self.config.ridge)
        else:
            readout, penalty = self.readout, torch.zeros((), dtype=W.dtype, device=W.device)
        predicted = readout(rates)
        cost = ((predicted - self.data).pow(2).sum() + penalty) / self.total
        behavior_readout = None
        if self.behavior is not None and self.behavior_weights is not None:
            behavior_readout, behavior_penalty = ridge_map(
                rates, self.behavior, self.config.ridge, self.behavior_weights
            )
            residual = (behavior_readout(rates) - self.behavior).pow(2)
            unexplained = (residual * self.behavior_weights[..., None]).sum() + behavior_penalty
            cost = cost + self.config.behavior_weight * unexplained / self.behavior_total
        return cost, states, readout, behavior_readout, predicted


def _check(data: Tensor, behavior: Tensor | None, W: Tensor, n_excitatory: int) -> None:
    if data.dim() != 3:
        raise InvalidNetworkError(
            f"data must be (conditions, time, neurons), got shape {tuple(data.shape)}"
        )
    if data.shape[1] < 2:
        raise InvalidNetworkError("data need at least two time samples")
    if not bool(torch.isfinite(data).all()):
        raise InvalidNetworkError("data contain NaN or infinite values")
    if behavior is not None and (
        behavior.dim() != 3 or tuple(behavior.shape[:2]) != tuple(data.shape[:2])
    ):
        raise InvalidNetworkError(
            f"behaviour must be (conditions, time, outputs) = {tuple(data.shape[:2])} + (k,), "
            f"got {tuple(behavior.shape)}"
        )
    if not 0 < n_excitatory <= W.shape[0]:
        raise InvalidNetworkError(f"n_excitatory {n_excitatory} out of range for n={W.shape[0]}")


def fit_to_data(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    data: Tensor,
    *,
    n_excitatory: int,
    config: DataFitConfig,
    generator: torch.Generator,
    behavior: Tensor | None = None,
    readout: LinearMap | None = None,
    callback: DataFitCallback | None = None,
    basis: Tensor | None = None,
) -> DataFit:
    """Fit one initial state per condition (and the maps, and W in full_network) to ``data``.

    Args:
        W: (n, n) weights, columns presynaptic; float32 or float64 (the fit's dtype and device).
        h: (n,) background input (``x_sp`` is a fixed point of W with it).
        x_sp: (n,) spontaneous state.
        data: (conditions, time, neurons) recorded rates sampled every ``config.dt`` from the
            window's start (time index 0 is the initial state).
        n_excitatory: the maps read the first ``n_excitatory`` units.
        config: settings (:class:`DataFitConfig`).
        generator: randomness of the first guess.
        behavior: optional (conditions, time, 2) hand velocity to read out too.
        readout: optional frozen map to the neurons (only x* is fitted then, as for held-out
            conditions); ``data`` then holds only that map's outputs.
        callback: called with (iteration, cost) after every iteration (0: the first guess).
        basis: (n, modes) the Gramian basis of W at ``x_sp`` when already known
            (:func:`lifrnn_core.fitting.initial_state_basis`; cross-validation computes it once).

    Raises:
        InvalidNetworkError: on shapes that do not fit or non-finite data.
        DivergenceError: when the activity becomes non-finite or exceeds the limit.
    """
    _check(data, behavior, W, n_excitatory)
    data = data.to(W)
    behavior = None if behavior is None else behavior.to(W)
    objective = _Objective(data, behavior, n_excitatory, config, readout)
    if basis is None:
        _, basis = initial_state_basis(W, x_sp, config.gain, config.n_modes)
    n_modes = basis.shape[1]
    spread = torch.linspace(1.0, 0.05, n_modes, dtype=torch.float64)
    start = torch.randn(data.shape[0], n_modes, generator=generator, dtype=torch.float64) * spread
    radius = config.state_radius
    # With a frozen map (held-out conditions) the norm of X* - x_sp is free: a subset of
    # conditions need not share the training set's RMS distance, which the map was fitted for.
    free_norm = readout is not None
    if free_norm:
        displacement = start.to(W) @ basis.T
        start = start * (radius * math.sqrt(displacement.numel()) / float(displacement.norm()))
    theta = start.to(W).requires_grad_(True)

    def initial_states(theta: Tensor) -> Tensor:
        if free_norm:
            return x_sp + theta @ basis.T
        return scaled_initial_states(theta, basis, x_sp, radius)

    def diverged(states: Tensor, cost: Tensor) -> bool:
        return not bool(torch.isfinite(cost)) or (
            float(states.detach().abs().max()) > config.divergence_limit
        )

    with torch.no_grad():
        first = objective(W, h, initial_states(theta))
    cost_initial = float(first[0])
    r2_initial = _pooled_r2(first[4], data)
    if diverged(first[1], first[0]):
        raise DivergenceError("diverged at the first guess", iteration=0)
    if callback is not None:
        callback(0, cost_initial)
    squared_norm0 = float(theta.detach().pow(2).sum())

    def evaluate() -> tuple[Tensor, float]:
        cost, states, *_ = objective(W, h, initial_states(theta))
        if diverged(states, cost):
            raise DivergedError
        # x* is renormalised, so the cost ignores theta's scale: a small radial term pins it.
        total = cost / max(cost_initial, 1e-12)
        if not free_norm:
            total = total + 0.01 * (theta.pow(2).sum() / squared_norm0 - 1.0) ** 2
        total.backward()  # type: ignore[no-untyped-call]
        return total, float(cost.detach())

    def forward() -> float:
        return float(objective(W, h, initial_states(theta))[0])

    def after(step: Iteration) -> None:
        if callback is not None:
            callback(step.number, step.cost)

    driver = LBFGSDriver(
        RememberingClosure(theta, evaluate), forward, StopRules(config.relative_tolerance)
    )
    stop_reason = driver.run(
        config.max_iterations,
        before=cost_initial,
        after=after,
        on_divergence=lambda iteration: divergence_error(iteration, config.divergence_limit),
    )
    history = driver.history
    converged = stop_reason != "max_iterations"

    if config.mode == "full_network" and readout is None:
        W, h, theta, stop_reason, converged = _adapt_weights(
            W, x_sp, theta.detach(), basis, objective, config, history, callback
        )

    with torch.no_grad():
        x_star = initial_states(theta)
        cost_now, states, fitted_readout, behavior_readout, predicted = objective(W, h, x_star)
        behavior_predicted = (
            None
            if behavior_readout is None
            else behavior_readout(gain_function(config.gain)(states[..., :n_excitatory]))
        )
    behavior_r2 = (
        None
        if behavior is None or behavior_predicted is None
        else _pooled_r2(behavior_predicted, behavior)
    )
    logger.info(
        "data fit of %d conditions: unexplained variance %.3g after %d iterations (%s)",
        data.shape[0],
        float(cost_now),
        len(history),
        stop_reason,
    )
    return DataFit(
        W=W.detach(),
        h=h.detach(),
        x_star=x_star.detach(),
        theta=theta.detach(),
        readout=fitted_readout.detach(),
        behavior_readout=None if behavior_readout is None else behavior_readout.detach(),
        states=states.detach(),
        predicted=predicted.detach(),
        behavior_predicted=None if behavior_predicted is None else behavior_predicted.detach(),
        cost=float(cost_now),
        cost_initial=cost_initial,
        r2=_pooled_r2(predicted, data),
        r2_initial=r2_initial,
        behavior_r2=behavior_r2,
        iterations=len(history),
        converged=converged,
        stop_reason=stop_reason,
        history=history,
    )


def _adapt_weights(
    W0: Tensor,
    x_sp: Tensor,
    theta0: Tensor,
    basis: Tensor,
    objective: _Objective,
    config: DataFitConfig,
    history: list[float],
    callback: DataFitCallback | None,
) -> tuple[Tensor, Tensor, Tensor, str, bool]:
    """Adam on (W, theta) with W projected onto Dale's law, its zero pattern and the
    stability bound after every step; returns (W, h, theta, stop_reason, converged)."""
    n_e = objective.n_e
    mask = (W0 != 0).to(W0.dtype)
    abscissa = spectral_abscissa(W0)
    bound = config.stability_bound if config.stability_bound is not None else abscissa + 0.05
    if abscissa > bound:
        raise InvalidNetworkError(
            f"the network's spectral abscissa {abscissa:.4f} already exceeds the stability "
            f"bound {bound}"
        )
    W = W0.clone().requires_grad_(True)
    theta = theta0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([W, theta], lr=config.learning_rate)
    best = history[-1] if history else math.inf
    since_best = 0
    offset = len(history)
    stop_reason = "max_iterations"
    for step in range(1, config.max_iterations + 1):
        optimiser.zero_grad()
        h = background_input(W, x_sp, config.gain)
        cost, *_ = objective(W, h, scaled_initial_states(theta, basis, x_sp, config.state_radius))
        if not bool(torch.isfinite(cost)):
            raise DivergenceError(f"diverged at full-network step {step}", iteration=step)
        cost.backward()  # type: ignore[no-untyped-call]
        previous = W.detach().clone()
        optimiser.step()
        with torch.no_grad():
            W.copy_(project_dale(W, n_e, mask))
            backtrack_to_bound(W, previous, bound)
        value = float(cost.detach())
        history.append(value)
        if callback is not None:
            callback(offset + step, value)
        if value < best * (1 - 10 * config.relative_tolerance):
            best, since_best = value, 0
        else:
            since_best += 1
            if since_best >= config.patience:
                stop_reason = "relative_tolerance"
                break
    W_final = W.detach()
    return (
        W_final,
        background_input(W_final, x_sp, config.gain),
        theta.detach(),
        stop_reason,
        stop_reason != "max_iterations",
    )
