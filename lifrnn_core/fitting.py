"""Fitting optimal initial states ``x*`` and the readout ``C`` by minimising a cost-to-go
(docs/science.md §5).

Started at ``x*_k``, the network's excitatory rates, read out by ``C``, should produce movement
``k``'s target (hand velocity or joint torques) over the movement period:

    cost = (1/K) dt sum_t ||diag(w) (C Gamma r(x_t) - target_t)||^2 + ||C||_F^2 / (2 n_e)

- ``x*_k = x_sp + V theta_k`` with ``V`` the eigenvectors of the observability Gramian of the
  network linearised at ``x_sp`` (the most amplifying directions first), rescaled so that
  ``||X* - x_sp||_F^2 = n K radius^2`` (a global norm, not one per movement).
- ``C`` reads the excitatory units only and is confined to the readouts that are silent at rest
  and at every ``x*``: ``C Gamma [x*_k, x_sp] = 0``.
- The cost is quadratic in ``C``: for given initial states the best admissible ``C`` is one linear
  solve (variable projection). L-BFGS therefore optimises ``theta`` alone, on the cost with ``C``
  eliminated exactly; this is the joint minimum over ``(x*, C)`` with fewer, better-conditioned
  unknowns.
- Stop when the motor cost falls below ``cost_tolerance`` (5e-4) or its relative change below
  ``relative_tolerance`` (1e-4), or at ``max_iterations`` (reported as not converged).
- What the optimisation of ``x*`` adds is reported: the cost and R^2 of the first guess (random
  ``x*``, with its exactly solved readout) beside the optimised ones (``*_initial``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, gain_function, simulate
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.gramians import amplifying_directions, observability_gramian
from lifrnn_core.lbfgs import (
    DivergedError,
    Iteration,
    LBFGSDriver,
    LBFGSMemory,
    RememberingClosure,
    StopRules,
    divergence_error,
)

__all__ = [
    "FitConfig",
    "FitResult",
    "FitState",
    "admissible_readout",
    "fit_initial_states",
    "initial_state_basis",
    "r_squared",
    "random_initial_states",
    "scaled_initial_states",
    "simulate_movements",
]

logger = logging.getLogger(__name__)

FitCallback = Callable[[int, float], None]
"""Called after every L-BFGS iteration with (iteration, motor cost); may raise to cancel."""


@dataclass
class FitState:
    """Everything a fit needs to go on exactly where it stopped (a checkpoint).

    Attributes:
        theta: (movements, modes) current coordinates.
        history: motor cost after each iteration so far (its length is the iteration count).
        stalled: whether the last iteration found no descent (one gradient restart is spent).
        optimiser: the L-BFGS memory (:class:`~lifrnn_core.lbfgs.LBFGSMemory`); None before
            the first step or after a restart.
        stop_reason: set once the fit has stopped; resuming then only re-evaluates the result.
    """

    theta: Tensor
    history: list[float] = field(default_factory=list)
    stalled: bool = False
    optimiser: LBFGSMemory | None = None
    stop_reason: str | None = None

    def to_tensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The state as named tensors and string metadata (for safetensors)."""
        tensors = {"theta": self.theta.detach().clone()}
        tensors["history"] = torch.tensor(self.history, dtype=torch.float64)
        counters = json.dumps(None)
        if self.optimiser is not None:
            memory, counters = self.optimiser.to_tensors("lbfgs.")
            tensors |= memory
        metadata = {
            "stalled": json.dumps(self.stalled),
            "stop_reason": json.dumps(self.stop_reason),
            "lbfgs": counters,
        }
        return tensors, metadata

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, Any], metadata: dict[str, str], like: Tensor
    ) -> FitState:
        """Rebuild a state saved by :meth:`to_tensors`; tensors take ``like``'s dtype/device."""
        return cls(
            theta=torch.as_tensor(tensors["theta"]).to(like.device).to(like.dtype),
            history=[float(v) for v in torch.as_tensor(tensors["history"]).tolist()],
            stalled=bool(json.loads(metadata.get("stalled", "false"))),
            optimiser=LBFGSMemory.from_tensors(
                tensors, metadata.get("lbfgs", "null"), like, "lbfgs."
            ),
            stop_reason=json.loads(metadata.get("stop_reason", "null")),
        )


@dataclass(frozen=True)
class FitConfig:
    """Settings of a cost-to-go fit.

    Attributes:
        tau: time constant, seconds.
        dt: Euler step and sampling interval of the targets, seconds.
        gain: ``"relu"`` or ``"tanh_shifted"``.
        state_radius: RMS distance per unit and movement of ``x*`` from ``x_sp`` (0.2).
        output_weights: weight of each output dimension in the cost (diag(1, 3)).
        n_modes: number of Gramian eigenvectors spanning ``x* - x_sp`` (None: all n).
        max_iterations: L-BFGS iterations at most.
        cost_tolerance: stop when the motor cost is below this.
        relative_tolerance: stop when the motor cost changes by less than this, relatively.
        divergence_limit: activity beyond this (max |x|) counts as diverged.
    """

    tau: float = 0.15
    dt: float = 1e-3
    gain: GainName = "relu"
    state_radius: float = 0.2
    output_weights: tuple[float, ...] = (1.0, 3.0)
    n_modes: int | None = None
    max_iterations: int = 500
    cost_tolerance: float = 5e-4
    relative_tolerance: float = 1e-4
    divergence_limit: float = 1e4


@dataclass
class FitResult:
    """Outcome of :func:`fit_initial_states`.

    Attributes:
        x_star: (movements, n) optimal initial states.
        C: (outputs, n_excitatory) readout.
        theta: (movements, modes) coordinates of ``x* - x_sp`` in the Gramian basis (unscaled).
        states: (movements, time, n) potentials from ``x*`` over the movement.
        outputs: (movements, time, outputs) readout ``C r(x_E)``.
        cost_move: motor part of the cost at the end.
        cost: total cost (motor + readout penalty).
        r2: coefficient of determination per movement, over all output dimensions.
        iterations: L-BFGS iterations taken.
        converged: whether a stop rule (not the iteration limit) ended the fit.
        stop_reason: which rule ended it.
        cost_move_initial: motor cost of the first guess, before any optimiser step: the
            random initial ``x*`` with the best admissible ``C`` for it (variable projection;
            the frozen readout when one is given). ``cost_move_initial - cost_move`` is what
            optimising ``x*`` added.
        cost_initial: total cost of that first guess.
        r2_initial: R^2 per movement of that first guess.
        history: motor cost after each iteration.
    """

    x_star: Tensor
    C: Tensor
    theta: Tensor
    states: Tensor
    outputs: Tensor
    cost_move: float
    cost: float
    r2: list[float]
    iterations: int
    converged: bool
    stop_reason: str
    cost_move_initial: float
    cost_initial: float
    r2_initial: list[float]
    history: list[float] = field(default_factory=list)

    @property
    def null_residual(self) -> float:
        """``max |C Gamma x*|``: how far the readout is from silent at the initial states."""
        n_e = self.C.shape[1]
        return float((self.x_star[:, :n_e] @ self.C.T).abs().max())


def initial_state_basis(
    W: Tensor, x_sp: Tensor, gain: GainName = "relu", n_modes: int | None = None
) -> tuple[Tensor, Tensor]:
    """Eigenvectors of the observability Gramian of the network linearised at ``x_sp``.

    The Jacobian at ``x_sp`` is ``W D - I`` with ``D = diag(r'(x_sp))`` (time in units of tau);
    its energy observability Gramian ``O`` ranks initial conditions by the activity they evoke.

    Returns:
        (values (modes,), vectors (n, modes)), sorted by decreasing eigenvalue, dtype and device
        of ``W``.
    """
    x = x_sp.detach().clone().requires_grad_(True)
    slopes = torch.autograd.grad(gain_function(gain)(x).sum(), x)[0]
    linearised = (W.detach() * slopes[None, :]).cpu().double().numpy()
    O = observability_gramian(linearised)
    values, vectors = amplifying_directions(O, n_modes)
    return (
        torch.from_numpy(values.copy()).to(W),
        torch.from_numpy(vectors.copy()).to(W),
    )


def random_initial_states(
    W: Tensor,
    x_sp: Tensor,
    conditions: int,
    generator: torch.Generator,
    *,
    radius: float = 0.2,
    gain: GainName = "relu",
) -> Tensor:
    """Random initial states in the network's most amplifying directions, as ground truth for
    tests and benchmarks: ``x_sp + V theta`` in the observability-Gramian basis
    (:func:`initial_state_basis`), ``theta`` Gaussian with standard deviations falling from 1
    to 0.05 along the modes, scaled so that the RMS distance from ``x_sp`` per unit and
    condition is ``radius``.

    Returns:
        (conditions, n), dtype and device of W.
    """
    _, basis = initial_state_basis(W, x_sp, gain)
    modes = basis.shape[1]
    theta = torch.randn(conditions, modes, generator=generator, dtype=torch.float64).to(W)
    theta = theta * torch.linspace(1.0, 0.05, modes, dtype=W.dtype, device=W.device)
    return scaled_initial_states(theta, basis, x_sp, radius)


def scaled_initial_states(theta: Tensor, basis: Tensor, x_sp: Tensor, radius: float) -> Tensor:
    """``x* = x_sp + V theta`` rescaled so that ``||X* - x_sp||_F^2 = n K radius^2``: the
    fit's norm constraint (``theta`` (K, modes), ``basis`` V (n, modes); returns (K, n))."""
    displacement = theta @ basis.T
    n_movements, n = displacement.shape
    scale = radius * math.sqrt(n * n_movements) / torch.linalg.norm(displacement)
    return x_sp + scale * displacement


def admissible_readout(
    rates: Tensor,
    targets: Tensor,
    null_states: Tensor,
    *,
    dt: float,
    output_weights: Tensor,
) -> Tensor:
    """Best readout ``C`` that is silent on ``null_states``, for given excitatory rates.

    Minimises ``(1/K) dt sum ||diag(w)(C r_t - y_t)||^2 + ||C||_F^2 / (2 n_e)`` over ``C`` with
    ``C m = 0`` for every column ``m`` of ``null_states``. With ``P`` the projector onto the
    admissible readouts, each output's row is ``(P G P + lambda I)^-1 P b`` — the normal equations
    restricted to the subspace. Differentiable in ``rates``.

    Args:
        rates: (movements, time, n_e) excitatory rates.
        targets: (movements, time, outputs).
        null_states: (n_e, m) excitatory potentials the readout must ignore (m < n_e).
        dt: sampling interval, seconds.
        output_weights: (outputs,) weights.

    Returns:
        C (outputs, n_e).
    """
    n_movements, _, n_e = rates.shape
    R = rates.reshape(-1, n_e)
    Y = targets.reshape(-1, targets.shape[-1])
    M = null_states
    identity = torch.eye(n_e, dtype=R.dtype, device=R.device)
    projector = identity - M @ torch.linalg.solve(M.T @ M, M.T)
    gram = projector @ (R.T @ R) @ projector * (dt / n_movements)
    cross = projector @ (R.T @ Y) * (dt / n_movements)  # (n_e, outputs)
    penalty = 1.0 / (2 * n_e)
    weights2 = output_weights**2
    # One solve per output: the weights scale the data term of each output separately.
    systems = weights2[:, None, None] * gram[None] + penalty * identity[None]
    rhs = (weights2[None, :] * cross).T.unsqueeze(-1)
    # The systems are symmetric positive definite: Cholesky, one output at a time (torch 2.13's
    # batched LU on the CPU fails intermittently with two threads: "DLASWP parameter 6").
    C = torch.stack(
        [
            torch.cholesky_solve(b, torch.linalg.cholesky(A))
            for A, b in zip(systems, rhs, strict=True)
        ]
    ).squeeze(-1)
    return C @ projector  # exact admissibility despite rounding


def simulate_movements(
    W: Tensor,
    h: Tensor,
    x_star: Tensor,
    C: Tensor,
    *,
    tau: float,
    dt: float,
    steps: int,
    gain: GainName = "relu",
) -> tuple[Tensor, Tensor]:
    """Run the network from each ``x*`` for ``steps`` Euler steps and read it out.

    Returns:
        states (movements, steps + 1, n) and outputs (movements, steps + 1, outputs).
    """
    states = simulate(W, x_star, tau=tau, dt=dt, steps=steps, h=h, gain=gain)
    n_e = C.shape[1]
    outputs = gain_function(gain)(states[..., :n_e]) @ C.T
    return states, outputs


def r_squared(outputs: Tensor, targets: Tensor) -> list[float]:
    """R^2 per movement over all output dimensions: 1 - SS_res / SS_tot.

    ``outputs`` and ``targets`` are (movements, time, outputs); SS_tot is taken around each
    output dimension's mean over time.
    """
    residual = ((outputs - targets) ** 2).sum(dim=(1, 2))
    total = ((targets - targets.mean(dim=1, keepdim=True)) ** 2).sum(dim=(1, 2))
    return (1.0 - residual / total).tolist()


def _motor_cost(outputs: Tensor, targets: Tensor, dt: float, weights: Tensor) -> Tensor:
    return ((outputs - targets) * weights).pow(2).sum() * dt / outputs.shape[0]


def fit_initial_states(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    targets: Tensor,
    *,
    n_excitatory: int,
    config: FitConfig,
    generator: torch.Generator,
    callback: FitCallback | None = None,
    readout: Tensor | None = None,
    resume: FitState | None = None,
    checkpoint: Callable[[FitState], None] | None = None,
    on_evaluation: Callable[[], None] | None = None,
) -> FitResult:
    """Fit ``x*`` (one per movement) and ``C`` to ``targets`` by L-BFGS on the cost-to-go.

    With ``readout`` given, ``C`` is frozen to it and only the initial states are fitted (the
    "new initial states" mode of retraining): ``x* - x_sp`` is then confined to the Gramian
    directions that ``C`` does not see, so the frozen readout stays silent at every new ``x*``.

    Args:
        W: (n, n) weights, columns presynaptic; float32 or float64 (the fit's dtype/device).
        h: (n,) background input (``x_sp`` is a fixed point for it).
        x_sp: (n,) spontaneous state.
        targets: (movements, time, outputs) target readout sampled every ``config.dt`` from
            movement onset (time index 0 is the onset).
        n_excitatory: the readout sees the first ``n_excitatory`` units.
        config: settings (see :class:`FitConfig`).
        generator: randomness of the initial guess of ``theta``.
        callback: called with (0, motor cost of the first guess) before the first iteration
            (unless resuming), then after every iteration with (iteration, motor cost); may
            raise.
        readout: optional frozen C (outputs, n_excitatory).
        resume: a state saved by ``checkpoint``: the fit goes on from it exactly as if it had
            never stopped (same iterations, same cost); the random first guess is still drawn
            from ``generator``, since the cost's normalisation derives from it.
        checkpoint: called with the :class:`FitState` after every iteration and once more when
            the fit stops, to save it.
        on_evaluation: called before each evaluation of the cost and its gradient (L-BFGS's
            line search takes one or more per iteration; each is one simulation forward and
            back, the unit of the fit's work), e.g. to pace a progress bar.

    Raises:
        InvalidNetworkError: on shapes that do not fit or non-finite targets.
        DivergenceError: when the activity becomes non-finite or exceeds
            ``config.divergence_limit``; its ``iteration`` says when, and the message the cause.
    """
    if targets.dim() != 3:
        raise InvalidNetworkError(
            f"targets must be (movements, time, outputs), got shape {tuple(targets.shape)}"
        )
    n_movements, n_time, n_outputs = targets.shape
    if not bool(torch.isfinite(targets).all()):
        raise InvalidNetworkError("targets contain NaN or infinite values")
    if len(config.output_weights) != n_outputs:
        raise InvalidNetworkError(
            f"{len(config.output_weights)} output weights for {n_outputs} target outputs"
        )
    if n_movements + 1 >= n_excitatory:
        raise InvalidNetworkError(
            f"{n_movements} movements leave no silent readout among {n_excitatory} E units"
        )
    if n_time < 2:
        raise InvalidNetworkError("targets need at least two time samples")
    targets = targets.to(W)
    weights = torch.tensor(config.output_weights, dtype=W.dtype, device=W.device)
    _, basis = initial_state_basis(W, x_sp, config.gain, config.n_modes)
    n_modes = basis.shape[1]
    # Initial guess: random combinations that favour the most amplifying directions.
    spread = torch.linspace(1.0, 0.05, n_modes, dtype=torch.float64)
    start = torch.randn(n_movements, n_modes, generator=generator, dtype=torch.float64) * spread
    theta = start.to(W).requires_grad_(True)
    steps = n_time - 1
    gain_fn = gain_function(config.gain)
    if readout is not None:
        if readout.shape != (n_outputs, n_excitatory):
            raise InvalidNetworkError(
                f"readout must be ({n_outputs}, {n_excitatory}), got {tuple(readout.shape)}"
            )
        readout = readout.to(W)
        # theta-space projector onto directions the frozen readout cannot see: C Gamma V theta = 0.
        seen = readout @ basis[:n_excitatory]
        basis = basis @ (
            torch.eye(n_modes, dtype=W.dtype, device=W.device) - torch.linalg.pinv(seen) @ seen
        )

    def evaluate(theta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        x_star = scaled_initial_states(theta, basis, x_sp, config.state_radius)
        states = simulate(
            W, x_star, tau=config.tau, dt=config.dt, steps=steps, h=h, gain=config.gain
        )
        rates = gain_fn(states[..., :n_excitatory])
        null_states = torch.cat([x_star, x_sp[None]], dim=0)[:, :n_excitatory].T
        if readout is not None:
            C = readout
        else:
            C = admissible_readout(
                rates, targets, null_states, dt=config.dt, output_weights=weights
            )
        outputs = rates @ C.T
        motor = _motor_cost(outputs, targets, config.dt, weights)
        total = motor + C.pow(2).sum() / (2 * n_excitatory)
        return total, motor, x_star, C, states

    # The cost is invariant to the scale of theta (x* is renormalised), which leaves L-BFGS no
    # curvature along theta and lets its norm drift; a small radial term pins the norm without
    # moving the minimum. The cost is divided by its initial value so that L-BFGS's internal
    # thresholds see numbers of order one whatever the units of the targets. Both derive from
    # the first guess, also when resuming.
    squared_norm0 = float(theta.detach().pow(2).sum())
    with torch.no_grad():
        first_total, first_motor, _, first_C, first_states = evaluate(theta)
        cost_scale = float(first_total)
        r2_initial = r_squared(gain_fn(first_states[..., :n_excitatory]) @ first_C.T, targets)
    stop_reason = "max_iterations"
    if resume is not None:
        with torch.no_grad():
            theta.copy_(resume.theta.to(W))
        if resume.stop_reason is not None:
            stop_reason = resume.stop_reason

    def evaluate_with_gradient() -> tuple[Tensor, float]:
        if on_evaluation is not None:
            on_evaluation()
        total, motor, _, _, states = evaluate(theta)
        if (
            not bool(torch.isfinite(total))
            or float(states.detach().abs().max()) > config.divergence_limit
        ):
            raise DivergedError
        radial = (theta.pow(2).sum() / squared_norm0 - 1.0) ** 2
        objective = total / cost_scale + 0.01 * radial
        objective.backward()  # type: ignore[no-untyped-call]
        return objective, float(motor.detach())

    driver = LBFGSDriver(
        RememberingClosure(theta, evaluate_with_gradient),
        lambda: float(evaluate(theta)[1]),
        StopRules(
            config.relative_tolerance,
            config.cost_tolerance,
            stalled=resume is not None and resume.stalled,
        ),
        history=None if resume is None else resume.history,
        memory=None if resume is None else resume.optimiser,
    )
    last_good = theta.detach().clone()

    def state_now(reason: str | None = None) -> FitState:
        return FitState(
            theta=theta.detach(),
            history=list(driver.history),
            stalled=driver.rules.stalled,
            optimiser=driver.memory(),
            stop_reason=reason,
        )

    def last_finite() -> Tensor:
        return scaled_initial_states(last_good, basis, x_sp, config.state_radius).detach()

    def diverged(iteration: int) -> DivergenceError:
        return divergence_error(iteration, config.divergence_limit, last_finite())

    def after(step: Iteration) -> None:
        nonlocal last_good
        if not math.isfinite(step.cost):
            raise DivergenceError(
                f"diverged at iteration {step.number}",
                iteration=step.number,
                last_finite=last_finite(),
            )
        last_good = theta.detach().clone()
        if checkpoint is not None and step.rule is None:
            checkpoint(state_now())
        if callback is not None:
            callback(step.number, step.cost)

    finished = resume is not None and resume.stop_reason is not None
    if callback is not None and resume is None:
        callback(0, float(first_motor))
    if not finished:
        stop_reason = driver.run(config.max_iterations, after=after, on_divergence=diverged)
        if checkpoint is not None:
            checkpoint(state_now(stop_reason))
    history = driver.history
    converged = stop_reason != "max_iterations"

    with torch.no_grad():
        total, motor, x_star, C, states = evaluate(theta)
        outputs = gain_fn(states[..., :n_excitatory]) @ C.T
    logger.info(
        "fit of %d movements: motor cost %.3g after %d iterations (%s); %.3g before them",
        n_movements,
        float(motor),
        len(history),
        stop_reason,
        float(first_motor),
    )
    return FitResult(
        x_star=x_star.detach(),
        C=C.detach(),
        theta=theta.detach(),
        states=states.detach(),
        outputs=outputs.detach(),
        cost_move=float(motor),
        cost=float(total),
        r2=r_squared(outputs, targets),
        iterations=len(history),
        converged=converged,
        stop_reason=stop_reason,
        cost_move_initial=float(first_motor),
        cost_initial=cost_scale,
        r2_initial=r2_initial,
        history=history,
    )
