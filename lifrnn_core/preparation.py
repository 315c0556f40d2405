"""Optimal preparation of movements (Kao, Sadabadi & Hennequin 2021; docs/science.md §6).

A trial is a spontaneous period (input ``h``), a preparation window in which a controller drives
the network from ``x_sp`` to the movement's initial state ``x*``, an optional delay in which the
controller keeps holding it, then the go cue and the movement (input ``h`` again, the controller
gated off, the readout gated on). The input to cortex is written ``h + u(t)``: ``u`` is the
controller's input, the deviation from the background, and the input energy is
``integral ||u||^2 dt``.

Controllers (``ControllerName``):

- ``feedforward`` (Kao's "naive" control, ``K = 0``): the constant input ``x* - h - W r(x*)``
  that makes ``x*`` a fixed point;
- ``lqr``: ``u = x* - h - (W + K) r(x*) + K r(x)``, the optimal feedback of the preparation cost
  (:func:`lifrnn_core.control.preparatory_feedback`); ``x*`` stays a fixed point and the
  closed loop ``W + K - I`` is stable;
- ``min_energy``: the open-loop input of least energy that reaches ``x*`` at the end of the
  preparation window, then the hold input ``x* - h - W r(x*)`` through the delay (the only input
  that keeps the state at ``x*``). Computed in closed form for the Euler-discretised network
  linearised at ``x*`` (finite-horizon controllability Gramian), then corrected for the gain's
  nonlinearity by shooting: each iteration simulates the nonlinear network and re-aims the
  linear solution at the miss;
- ``thalamic_loop``: cortex receives only ``X relu(z)`` from the gated thalamo-cortical loop
  (:class:`lifrnn_core.control.ThalamicLoop`), whose constant thalamic input ``b`` makes ``x*``
  a fixed point of the loop.

Shapes: states ``(batch, time, n)``, inputs ``(batch, steps, n)`` (input ``k`` acts during Euler
step ``k``, as in :func:`lifrnn_core.dynamics.simulate`), times in seconds. Everything is
vectorised over the batch of movements and takes its dtype and device from ``W``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from lifrnn_core.control import (
    PreparatoryFeedback,
    ThalamicLoop,
    copy_gain_loop,
    gain_errors,
)
from lifrnn_core.dynamics import GainName, gain_function, go_cue, simulate
from lifrnn_core.errors import InvalidNetworkError

__all__ = [
    "CONTROLLERS",
    "REACH_TOLERANCE",
    "ControllerName",
    "LoopFit",
    "PrepareMetrics",
    "PreparedState",
    "Trial",
    "TrialTiming",
    "fit_thalamic_loop",
    "hold_input",
    "input_energy",
    "loop_offset",
    "min_energy_input",
    "preparation_cost",
    "prepare_distance",
    "prepare_metrics",
    "prepare_state",
    "run_trial",
    "state_distance",
]

logger = logging.getLogger(__name__)

ControllerName = Literal["feedforward", "lqr", "min_energy", "thalamic_loop"]
CONTROLLERS: tuple[str, ...] = get_args(ControllerName)
"""Names of the controllers, in the order of the comparison table."""


@dataclass(frozen=True)
class TrialTiming:
    """Lengths of the trial's periods, seconds, and the Euler step.

    The controller is on (gate ``g = 1``) during ``preparation + delay``: ``preparation`` is the
    time allowed to reach ``x*``, ``delay`` the time it must then be held; the go cue comes at
    ``spontaneous + preparation + delay``. Every length must be a whole number of steps.
    """

    spontaneous: float = 0.4
    preparation: float = 0.6
    delay: float = 0.0
    movement: float = 0.6
    dt: float = 1e-3

    def steps(self, name: str) -> int:
        """Number of Euler steps of period ``name`` (checked to be whole)."""
        length = float(getattr(self, name))
        steps = round(length / self.dt)
        if length < 0 or abs(steps * self.dt - length) > 1e-6 * max(self.dt, length):
            raise InvalidNetworkError(
                f"{name} ({length} s) must be a non-negative whole number of steps of "
                f"dt = {self.dt} s"
            )
        return steps

    @property
    def go_step(self) -> int:
        """Index (in steps from the trial start) of the go cue."""
        return self.steps("spontaneous") + self.steps("preparation") + self.steps("delay")

    @property
    def total_steps(self) -> int:
        """Steps of the whole trial."""
        return self.go_step + self.steps("movement")


@dataclass
class PreparedState:
    """Result of :func:`prepare_state`.

    Attributes:
        states: (batch, steps + 1, n) potentials, index 0 the initial state.
        inputs: (batch, steps, n) controller input ``u`` (deviation from ``h``).
        thalamus: (batch, steps + 1, m) thalamic activity ``y`` (thalamic loop only, else None).
        relay: (batch, steps + 1, m) relay activity ``z`` (thalamic loop only, else None).
        offset: (batch, m) constant thalamic input ``b`` (thalamic loop only, else None).
        iterations: shooting iterations of ``min_energy`` (0 for the others).
    """

    states: Tensor
    inputs: Tensor
    thalamus: Tensor | None = None
    relay: Tensor | None = None
    offset: Tensor | None = None
    iterations: int = 0


def hold_input(W: Tensor, h: Tensor, x_target: Tensor, gain: GainName = "relu") -> Tensor:
    """Constant input ``u = x* - h - W r(x*)`` that makes ``x*`` a fixed point.

    ``W`` (n, n), ``h`` (n,) or (batch, n), ``x_target`` (batch, n); returns (batch, n).
    """
    return x_target - h - gain_function(gain)(x_target) @ W.T


def input_energy(inputs: Tensor, dt: float) -> Tensor:
    """``integral ||u||^2 dt`` of inputs (batch, steps, n) applied for ``dt`` s each: (batch,)."""
    return inputs.pow(2).sum(dim=(-2, -1)) * dt


def state_distance(states: Tensor, x_target: Tensor, x_reference: Tensor) -> Tensor:
    """``||x(t) - x*|| / ||x* - x_ref||`` for states (batch, time, n): (batch, time).

    ``x_target`` (batch, n); ``x_reference`` (n,) or (batch, n), e.g. the spontaneous state.
    """
    scale = torch.linalg.norm(x_target - x_reference, dim=-1, keepdim=True)
    return torch.linalg.norm(states - x_target[:, None, :], dim=-1) / scale


def prepare_distance(states: Tensor, x_target: Tensor, x_reference: Tensor, Q: Tensor) -> Tensor:
    """Distance to ``x*`` in the norm of a state cost ``Q``, relative to ``x* - x_ref``.

    ``sqrt((x - x*)^T Q (x - x*) / (x* - x_ref)^T Q (x* - x_ref))`` for states (batch, time, n),
    ``x_target`` (batch, n), ``x_reference`` (n,) or (batch, n), ``Q`` (n, n) symmetric positive
    semi-definite; returns (batch, time). With Kao's ``Q`` (the readout's observability Gramian)
    it measures the part of the error the movement will see: the headline distance of the
    ``prepare`` job.
    """
    error = states - x_target[:, None, :]
    reference = x_target - x_reference
    scale = torch.einsum("bi,ij,bj->b", reference, Q, reference)
    energy = torch.einsum("bti,ij,btj->bt", error, Q, error).clamp_min(0.0)
    return torch.sqrt(energy / scale[:, None])


def _check_batch(name: str, tensor: Tensor, W: Tensor) -> Tensor:
    n = W.shape[0]
    if tensor.dim() == 1:
        tensor = tensor[None]
    if tensor.dim() != 2 or tensor.shape[1] != n:
        raise InvalidNetworkError(
            f"{name} must be (batch, {n}) or ({n},), got {tuple(tensor.shape)}"
        )
    return tensor.to(W)


def _slopes(x: Tensor, gain: GainName) -> Tensor:
    """Elementwise derivative of the gain at ``x``."""
    point = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(gain_function(gain)(point).sum(), point)[0]


def min_energy_input(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    x_target: Tensor,
    *,
    tau: float,
    dt: float,
    steps: int,
    gain: GainName = "relu",
    max_iterations: int = 20,
    tolerance: float = 1e-6,
) -> tuple[Tensor, int]:
    """Least-energy open-loop input that takes the network from ``x0`` to ``x_target``.

    For the Euler step ``x_{k+1} = x_k + a (-x_k + W r(x_k) + h + u_k)`` (``a = dt / tau``)
    linearised at the mean target, ``d_{k+1} = M d_k + a u_k`` with ``M = I + a (W D - I)``,
    the input of least ``dt sum ||u_k||^2`` that adds ``d`` to the final state is
    ``u_k = a (M^T)^(N-1-k) G^-1 d`` with ``G = a^2 sum_j M^j M^jT`` (the finite-horizon
    controllability Gramian, from a discrete Lyapunov equation). ``d`` starts as the miss of the
    uncontrolled network; shooting iterations then simulate the nonlinear network and re-aim at
    its miss until ``||x_N - x*|| <= tolerance ||x* - x0||``.

    Args:
        W: (n, n) weights; h: (n,) or (batch, n); x0, x_target: (batch, n) or (n,).
        tau, dt: seconds; steps: N, the number of Euler steps to arrive in.
        gain: the network's gain.
        max_iterations: shooting iterations at most.
        tolerance: relative final distance at which to stop.

    Returns:
        (inputs (batch, steps, n), shooting iterations used).
    """
    x0 = _check_batch("x0", x0, W)
    x_target = _check_batch("x_target", x_target, W)
    batch = max(x0.shape[0], x_target.shape[0])
    n = W.shape[0]
    a = dt / tau
    slopes = _slopes(x_target.mean(dim=0), gain)
    W64 = W.detach().cpu().double().numpy()
    M = np.eye(n) + a * (W64 * slopes.cpu().double().numpy()[None, :] - np.eye(n))
    P = scipy.linalg.solve_discrete_lyapunov(M, a * a * np.eye(n))
    M_N = np.linalg.matrix_power(M, steps)
    gramian = P - M_N @ P @ M_N.T
    gramian_factor = scipy.linalg.cho_factor(0.5 * (gramian + gramian.T))
    M_t = torch.from_numpy(M).to(W)

    def linear_input(miss: Tensor) -> Tensor:
        """Least-energy input (batch, steps, n) adding ``miss`` (batch, n) to the final state."""
        lam = scipy.linalg.cho_solve(gramian_factor, miss.detach().cpu().double().numpy().T).T
        co_state = torch.from_numpy(lam).to(W)  # (batch, n), row form of G^-1 d
        inputs = torch.empty((miss.shape[0], steps, n), dtype=W.dtype, device=W.device)
        for k in range(steps - 1, -1, -1):
            inputs[:, k] = a * co_state
            co_state = co_state @ M_t
        return inputs

    def final_state(inputs: Tensor) -> Tensor:
        return simulate(W, x0, tau=tau, dt=dt, steps=steps, h=h, inputs=inputs, gain=gain)[:, -1]

    zero = torch.zeros((batch, steps, n), dtype=W.dtype, device=W.device)
    miss = x_target - final_state(zero)
    inputs = linear_input(miss.expand(batch, n))
    scale = torch.linalg.norm(x_target - x0, dim=-1).clamp_min(torch.finfo(W.dtype).tiny)
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (reported)
        miss = x_target - final_state(inputs)
        relative = float((torch.linalg.norm(miss, dim=-1) / scale).max())
        if relative <= tolerance:
            break
        inputs = inputs + linear_input(miss)
    else:
        logger.warning(
            "min_energy: final distance %.3g after %d shooting iterations", relative, iterations
        )
    return inputs, iterations


def loop_offset(
    loop: ThalamicLoop,
    W: Tensor,
    h: Tensor,
    x_target: Tensor,
    *,
    gain: GainName = "relu",
    baseline: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Constant thalamic input ``b`` that makes ``x*`` a fixed point of the gated loop.

    At the fixed point the relay is ``z* = Y r(x*) + b`` (``Z = I``) and cortex needs
    ``X relu(z*) = x* - h - W r(x*)``. With ``X = [X_1, -X_1]`` the push-pull pair
    ``z*_+ = relu(w) + c``, ``z*_- = relu(-w) + c`` gives ``X z* = X_1 w``; ``w`` is the
    minimum-norm solution of ``X_1 w = x* - h - W r(x*)`` (exact for the drives the loop was
    fitted with) and ``c = baseline`` keeps every relay unit away from zero, so that the relay's
    ``relu`` stays the identity while the rates move.

    Args:
        loop: the fitted loop (``Y`` (2n, n), ``X`` (n, 2n)).
        W: (n, n); h: (n,); x_target: (batch, n).

    Returns:
        ``b`` (batch, 2n) and the fixed point ``z*`` (batch, 2n).
    """
    x_target = _check_batch("x_target", x_target, W)
    n = W.shape[0]
    drive = hold_input(W, h, x_target, gain).detach().cpu().double().numpy()
    X1 = loop.X[:, :n]
    w = np.linalg.lstsq(X1, drive.T, rcond=1e-8)[0].T  # (batch, n)
    scale = max(float(np.linalg.norm(drive)), np.finfo(np.float64).tiny)
    residual = float(np.linalg.norm(X1 @ w.T - drive.T)) / scale
    if residual > 1e-6:
        logger.warning("thalamic loop cannot deliver this target's drive (residual %.3g)", residual)
    z_star = np.concatenate([np.maximum(w, 0.0), np.maximum(-w, 0.0)], axis=1) + baseline
    rates = gain_function(gain)(x_target).detach().cpu().double().numpy()
    b = z_star - rates @ loop.Y.T
    return torch.from_numpy(b).to(W), torch.from_numpy(z_star).to(W)


def _simulate_loop(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    y0: Tensor,
    z0: Tensor,
    loop: ThalamicLoop,
    offset: Tensor,
    gate: Tensor,
    *,
    tau: float,
    dt: float,
    gain: GainName,
    stimulus: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Euler integration of cortex + gated thalamus + relay, ``steps = len(gate)``.

    Returns states (batch, steps + 1, n), thalamus and relay (batch, steps + 1, m) and the
    cortical input ``X relu(z)`` (batch, steps, n).
    """
    Y, Z, X = loop.as_tensors(W)
    return _loop_dynamics(
        W,
        h,
        (x0, y0, z0),
        (Y, Z, X),
        offset,
        gate.tolist(),
        (dt / tau, dt / loop.tau_thalamus, dt / loop.tau_relay),
        gain,
        stimulus,
    )


def _loop_dynamics(
    W: Tensor,
    h: Tensor,
    start: tuple[Tensor, Tensor, Tensor],
    weights: tuple[Tensor, Tensor, Tensor],
    offset: Tensor,
    gates: list[float],
    rates: tuple[float, float, float],
    gain: GainName,
    stimulus: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_simulate_loop` on tensors (differentiable in ``weights``): ``start`` = (x, y, z),
    ``weights`` = (Y, Z, X), ``rates`` = (dt / tau, dt / tau_y, dt / tau_z)."""
    gain_fn = gain_function(gain)
    Y, Z, X = weights
    a, a_y, a_z = rates
    x, y, z = start
    states, thalamus, relay, inputs = [x], [y], [z], []
    for k, g in enumerate(gates):
        r = gain_fn(x)
        u = torch.relu(z) @ X.T
        drive = h + u if stimulus is None else h + u + stimulus[k]
        x_next = torch.lerp(x, r @ W.T + drive, a)
        y = torch.lerp(y, g * (r @ Y.T + offset), a_y)
        z = torch.lerp(z, y @ Z.T, a_z)
        x = x_next
        states.append(x)
        thalamus.append(y)
        relay.append(z)
        inputs.append(u)
    return (
        torch.stack(states, 1),
        torch.stack(thalamus, 1),
        torch.stack(relay, 1),
        torch.stack(inputs, 1),
    )


def prepare_state(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    x_target: Tensor,
    *,
    controller: ControllerName,
    duration: float,
    hold: float = 0.0,
    tau: float,
    dt: float,
    gain: GainName = "relu",
    K: Tensor | None = None,
    loop: ThalamicLoop | None = None,
    min_energy_iterations: int = 20,
) -> PreparedState:
    """Drive the network from ``x0`` to ``x_target`` in ``duration`` s, then hold it ``hold`` s.

    The reusable building block of preparation (and of sequential movements): the controller is
    on for ``duration + hold`` seconds; feedforward, LQR and the loop apply their law throughout,
    ``min_energy`` arrives at ``duration`` and then applies the hold input.

    Args:
        W: (n, n) weights, columns presynaptic; h: (n,) background input.
        x0: (batch, n) or (n,) initial potentials; x_target: (batch, n) or (n,) targets.
        controller: "feedforward", "lqr", "min_energy" or "thalamic_loop".
        duration, hold: seconds, whole numbers of ``dt``.
        tau, dt: seconds.
        gain: the network's gain.
        K: (n, n) LQR gain (``u = K r``), needed by "lqr".
        loop: fitted loop, needed by "thalamic_loop" (starts silent, ``y = z = 0``).
        min_energy_iterations: shooting iterations of "min_energy" at most.

    Returns:
        :class:`PreparedState` with states (batch, steps + 1, n) and inputs (batch, steps, n),
        ``steps = (duration + hold) / dt``.
    """
    if controller not in CONTROLLERS:
        raise InvalidNetworkError(
            f"unknown controller {controller!r}; choose one of {', '.join(CONTROLLERS)}"
        )
    timing = TrialTiming(spontaneous=0.0, preparation=duration, delay=hold, movement=0.0, dt=dt)
    reach_steps, hold_steps = timing.steps("preparation"), timing.steps("delay")
    steps = reach_steps + hold_steps
    x0 = _check_batch("x0", x0, W)
    x_target = _check_batch("x_target", x_target, W)
    batch = max(x0.shape[0], x_target.shape[0])
    x0 = x0.expand(batch, -1)
    x_target = x_target.expand(batch, -1)
    gain_fn = gain_function(gain)
    hold_u = hold_input(W, h, x_target, gain)
    if controller == "feedforward":
        states = simulate(W, x0, tau=tau, dt=dt, steps=steps, h=h + hold_u, gain=gain)
        return PreparedState(states=states, inputs=hold_u[:, None, :].expand(batch, steps, -1))
    if controller == "lqr":
        if K is None:
            raise InvalidNetworkError("controller 'lqr' needs the feedback gain K")
        K = K.to(W)
        constant = hold_u - gain_fn(x_target) @ K.T  # x* - h - (W + K) r(x*)
        states = simulate(W + K, x0, tau=tau, dt=dt, steps=steps, h=h + constant, gain=gain)
        inputs = constant[:, None, :] + gain_fn(states[:, :-1]) @ K.T
        return PreparedState(states=states, inputs=inputs)
    if controller == "min_energy":
        if reach_steps < 1:
            raise InvalidNetworkError("min_energy needs a preparation of at least one step")
        reach, iterations = min_energy_input(
            W,
            h,
            x0,
            x_target,
            tau=tau,
            dt=dt,
            steps=reach_steps,
            gain=gain,
            max_iterations=min_energy_iterations,
        )
        inputs = torch.cat([reach, hold_u[:, None, :].expand(batch, hold_steps, -1)], dim=1)
        states = simulate(W, x0, tau=tau, dt=dt, steps=steps, h=h, inputs=inputs, gain=gain)
        return PreparedState(states=states, inputs=inputs, iterations=iterations)
    if loop is None:
        raise InvalidNetworkError("controller 'thalamic_loop' needs a fitted ThalamicLoop")
    offset, _ = loop_offset(loop, W, h, x_target, gain=gain)
    m = loop.Y.shape[0]
    silent = torch.zeros((batch, m), dtype=W.dtype, device=W.device)
    gate = torch.ones(steps, dtype=W.dtype)
    states, thalamus, relay, inputs = _simulate_loop(
        W, h, x0, silent, silent, loop, offset, gate, tau=tau, dt=dt, gain=gain
    )
    return PreparedState(
        states=states, inputs=inputs, thalamus=thalamus, relay=relay, offset=offset
    )


def preparation_cost(
    states: Tensor,
    inputs: Tensor,
    x_target: Tensor,
    hold: Tensor,
    Q: Tensor,
    r2: float,
    *,
    tau: float,
    dt: float,
    cost_to_go: Tensor | None = None,
) -> Tensor:
    """Kao's preparation cost of a trajectory, the cost LQR minimises: (batch,).

    ``sum_k (dt / tau) [e_k^T Q e_k + r2 ||u_k - u_hold||^2] + e_N^T P e_N`` with
    ``e_k = x_k - x*``, time in units of ``tau`` as in
    :func:`lifrnn_core.control.preparatory_feedback`. ``u - u_hold`` is the feedback, the
    input beyond the hold input that keeps ``x*`` (:func:`hold_input`); ``P`` (the Riccati
    solution: the optimal cost-to-go) prices what is left at the end of the window, so that
    for the linearised network LQR's cost is ``e_0^T P e_0`` whatever the window.

    Args:
        states: (batch, steps + 1, n) potentials, index 0 the start of the window.
        inputs: (batch, steps, n) input ``u`` (deviation from ``h``), input ``k`` acting
            during step ``k``.
        x_target: (batch, n) ``x*``; hold: (batch, n) ``u_hold``.
        Q: (n, n) state cost; r2: input cost.
        tau, dt: seconds.
        cost_to_go: (n, n) ``P``, or None for the window alone.
    """
    error = states - x_target[:, None, :]
    running = torch.einsum("bti,ij,btj->b", error[:, :-1], Q, error[:, :-1])
    feedback = inputs - hold[:, None, :]
    cost = (running + r2 * feedback.pow(2).sum(dim=(-2, -1))) * (dt / tau)
    if cost_to_go is not None:
        cost = cost + torch.einsum("bi,ij,bj->b", error[:, -1], cost_to_go, error[:, -1])
    return cost


@dataclass(frozen=True)
class LoopFit:
    """Result of :func:`fit_thalamic_loop`.

    Attributes:
        loop: the fitted :class:`ThalamicLoop` (always stable once linearised).
        cost: (movements,) its preparation cost for the linearised loop (infinite horizon),
            per movement.
        initial_cost: (movements,) the same for the loop that copies ``K``
            (:func:`lifrnn_core.control.copy_gain_loop`), where the fit starts (``inf`` when
            that loop is unstable once linearised: the fit then starts without feedback).
        iterations: quasi-Newton iterations taken (steps accepted).
        converged: whether the fit stopped on its tolerance (``stop_reason`` "tolerance" or
            "gradient"), not on its iteration limit or a failed line search.
        stop_reason: "tolerance", "gradient", "max_iterations", "line_search" (no stable step
            lowered the cost) or "unstable_start" (neither the copy of ``K`` nor the loop
            without feedback is stable: the returned loop is the copy of ``K``).
    """

    loop: ThalamicLoop
    cost: np.ndarray
    initial_cost: np.ndarray
    iterations: int
    converged: bool
    stop_reason: str


def _loop_lyapunov_cost(
    M: np.ndarray,
    basis: np.ndarray,
    fixed: np.ndarray,
    W: np.ndarray,
    D: np.ndarray,
    Q: np.ndarray,
    r2: float,
    starts: np.ndarray,
    lags: tuple[float, float],
    *,
    gradient: bool = True,
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Infinite-horizon cost of the linearised loop per start, and the gradient of their sum.

    Augmented state ``(e, y~, z~)`` (3n): cortex error, thalamic and relay push-pull
    differences minus their fixed points. Time in units of ``tau``, ``lags = (tau / tau_y,
    tau / tau_z)``; ``X_1 = M basis^T + fixed``; ``starts`` (k, 3n) the initial states. Cost of
    start ``s`` is ``s^T P s`` with ``A^T P + P A + Q_aug = 0``; the gradient of the summed cost
    in ``M`` comes from the adjoint ``A L + L A^T + S = 0``, ``S = starts^T starts``. One real
    Schur form of ``A`` serves the stability test (its diagonal holds the eigenvalues' real
    parts) and both Lyapunov equations (LAPACK ``trsyl``).

    Returns:
        ``(costs (k,), gradient like M or None)``, or None when the loop is unstable.
    """
    n = W.shape[0]
    X1 = M @ basis.T + fixed
    zeros, eye = np.zeros((n, n)), np.eye(n)
    a_y, a_z = lags
    A = np.block(
        [[W - eye, zeros, X1], [a_y * D, -a_y * eye, zeros], [zeros, a_z * eye, -a_z * eye]]
    )
    T, U = scipy.linalg.schur(A, output="real")
    if float(np.max(np.diag(T))) >= 0:
        return None
    Q_aug = np.zeros((3 * n, 3 * n))
    Q_aug[:n, :n] = Q
    Q_aug[2 * n :, 2 * n :] = r2 * X1.T @ X1
    P_schur, scale, info = scipy.linalg.lapack.dtrsyl(T, T, U.T @ -Q_aug @ U, trana="T")
    if info < 0:
        raise RuntimeError(f"LAPACK trsyl failed (info {info})")
    P = U @ (P_schur / scale) @ U.T
    costs = np.einsum("ki,ij,kj->k", starts, P, starts)
    if not gradient:
        return costs, None
    S = starts.T @ starts
    L_schur, scale, info = scipy.linalg.lapack.dtrsyl(T, T, U.T @ -S @ U, tranb="T")
    if info < 0:
        raise RuntimeError(f"LAPACK trsyl failed (info {info})")
    L = U @ (L_schur / scale) @ U.T
    grad = 2 * (P @ L)[:n, 2 * n :] + 2 * r2 * X1 @ L[2 * n :, 2 * n :]
    return costs, grad @ basis


@dataclass(frozen=True)
class _Minimum:
    x: np.ndarray
    value: float
    iterations: int
    stop_reason: str

    @property
    def converged(self) -> bool:
        return self.stop_reason in ("tolerance", "gradient")


def _minimise_stable(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray] | None],
    x0: np.ndarray,
    *,
    max_iterations: int,
    tolerance: float,
    memory: int = 10,
    max_backtracks: int = 30,
) -> _Minimum:
    """L-BFGS with Armijo backtracking that only ever accepts points where ``objective`` is
    defined (a stable loop): ``objective(x)`` returns ``(value, gradient)`` or None.

    ``x0`` must be feasible. A trial point that is infeasible, or that does not lower the
    value enough, halves the step; the iterate is always the last accepted point, so the
    result is feasible whatever the stop. Stops: "tolerance" (an accepted step lowered the
    value by less than ``tolerance`` relative), "gradient" (zero gradient), "max_iterations",
    "line_search" (``max_backtracks`` halvings found no acceptable point).
    """
    first = objective(x0)
    if first is None:
        raise ValueError("the starting point of the loop fit is unstable")
    x, (value, gradient) = x0, first
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    for iteration in range(max_iterations):
        if not np.any(gradient):
            return _Minimum(x, value, iteration, "gradient")
        direction = -gradient
        alphas = []
        for s, y in reversed(steps):
            alpha = float(s @ direction) / float(s @ y)
            direction = direction - alpha * y
            alphas.append(alpha)
        if steps:
            s, y = steps[-1]
            direction = direction * (float(s @ y) / float(y @ y))
        else:
            direction = direction / max(float(np.linalg.norm(gradient)), 1e-300)
        for (s, y), alpha in zip(steps, reversed(alphas), strict=True):
            direction = direction + s * (alpha - float(y @ direction) / float(s @ y))
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps.clear()
            direction = -gradient / max(float(np.linalg.norm(gradient)), 1e-300)
            slope = float(gradient @ direction)
        step = 1.0
        for _ in range(max_backtracks):
            trial = objective(x + step * direction)
            if trial is not None and trial[0] <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return _Minimum(x, value, iteration, "line_search")
        new_x, (new_value, new_gradient) = x + step * direction, trial
        s, y = new_x - x, new_gradient - gradient
        if float(s @ y) > 1e-12 * float(s @ s):
            steps = [*steps, (s, y)][-memory:]
        decrease = (value - new_value) / max(abs(value), 1e-300)
        x, value, gradient = new_x, new_value, new_gradient
        logger.debug("loop fit: iteration %d, cost %.6g", iteration + 1, value)
        if decrease < tolerance:
            return _Minimum(x, value, iteration + 1, "tolerance")
    return _Minimum(x, value, max_iterations, "max_iterations")


def fit_thalamic_loop(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    x_target: Tensor,
    feedback: PreparatoryFeedback,
    n_excitatory: int,
    generator: torch.Generator,
    *,
    tau: float,
    gain: GainName = "relu",
    density: float = 0.1,
    tau_thalamus: float = 0.01,
    tau_relay: float = 0.01,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
) -> LoopFit:
    """Fit the thalamo-cortical loop to Kao's preparation cost through its own dynamics.

    The loop starts as :func:`lifrnn_core.control.copy_gain_loop` (sparse, non-negative,
    excitatory-only ``Y``; ``Z = I``; ``X = [X_1, -X_1]``; one drive channel per movement).
    The projection back to cortex ``X_1`` is then fitted (L-BFGS) to minimise the cost LQR
    minimises, ``integral e^T Q e + r2 ||u - u_hold||^2`` summed over the movements, for the
    loop's own dynamics linearised like LQR's (``A = W - I`` plus the thalamus and relay with
    their lags, ``3 n`` states, starting from ``x0`` with the loop silent): the cost-to-go is
    ``tr(P S)`` with ``P`` from a Lyapunov equation, and its exact gradient comes from the
    adjoint one. The trial's cost is then measured on the nonlinear simulation
    (:func:`preparation_cost`).

    Only ``X_1``'s action on the thalamic directions that carry cortical feedback (the column
    space of ``D = Y_+ - Y_-``) is fitted; the drive channels stay, so each movement's hold
    drive is still delivered exactly (:func:`loop_offset`). ``Y`` keeps its draw: when ``D``
    has rank ``n_excitatory`` (generic), ``X_1 D`` already spans every gain that reads the
    excitatory units, so fitting ``Y`` too could not change the loop's feedback
    (docs/science.md §6).

    Args:
        W: (n, n) weights; h: (n,) background; x0: (n,) or (batch, n) state when the
            preparation starts; x_target: (batch, n) the movements' ``x*``.
        feedback: the LQR solution (its ``K`` starts the fit; ``Q`` and ``r2`` define the
            cost).
        n_excitatory: the first ``n_excitatory`` units are excitatory.
        generator: source of the random ``Y``.
        tau: seconds; gain: the network's gain.
        density, tau_thalamus, tau_relay: as in :func:`lifrnn_core.control.copy_gain_loop`.
        max_iterations: L-BFGS iterations at most (each one real Schur form of the
            ``3n x 3n`` linearised loop and two triangular Lyapunov solves, more when a step
            is shortened; bounds the fit's time).
        tolerance: stop (converged) when an accepted step lowers the cost by less than this,
            relative. Steps are only accepted where the linearised loop is stable.

    Returns:
        :class:`LoopFit` (costs of the linearised loop, per movement).
    """
    x_target = _check_batch("x_target", x_target, W)
    x0 = _check_batch("x0", x0, W).expand_as(x_target)
    n = W.shape[0]
    hold = hold_input(W, h, x_target, gain)
    initial_loop = copy_gain_loop(
        feedback.K,
        n_excitatory,
        generator,
        drives=hold.detach().cpu().double().numpy(),
        density=density,
        tau_thalamus=tau_thalamus,
        tau_relay=tau_relay,
    )
    D = initial_loop.Y[:n] - initial_loop.Y[n:]
    U, singular, _ = np.linalg.svd(D)
    rank = int(np.sum(singular > singular[0] * 1e-10))
    basis = U[:, :rank]  # thalamic directions that carry cortical feedback
    X1_start = initial_loop.X[:, :n]
    fixed = X1_start - X1_start @ basis @ basis.T  # the drive channels
    drive = hold.detach().cpu().double().numpy()
    channel = np.linalg.lstsq(X1_start, drive.T, rcond=1e-8)[0].T  # (batch, n), loop_offset's w
    error0 = (x0 - x_target).detach().cpu().double().numpy()
    starts = np.concatenate([error0, -channel, -channel], axis=1)  # silent loop: y = z = 0
    W64 = W.detach().cpu().double().numpy()
    lags = (tau / tau_thalamus, tau / tau_relay)

    def evaluate(M: np.ndarray, gradient: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
        return _loop_lyapunov_cost(
            M, basis, fixed, W64, D, feedback.Q, feedback.r2, starts, lags, gradient=gradient
        )

    M_copy = X1_start @ basis
    copied = evaluate(M_copy, gradient=False)
    initial = copied[0] if copied is not None else np.full(len(starts), np.inf)
    # The copy of K can be unstable once linearised (its lag): then start from no feedback,
    # which leaves cortex's own (stable) dynamics.
    M0 = M_copy if copied is not None else np.zeros_like(M_copy)
    begin = copied if copied is not None else evaluate(M0, gradient=False)
    if begin is None:
        logger.warning("thalamic loop fit: no stable starting point; keeping the copy of K")
        return LoopFit(
            loop=initial_loop,
            cost=initial,
            initial_cost=initial,
            iterations=0,
            converged=False,
            stop_reason="unstable_start",
        )
    scale = max(float(begin[0].sum()), np.finfo(np.float64).tiny)

    costs_at: dict[bytes, np.ndarray] = {}  # per-movement costs of the points evaluated

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray] | None:
        evaluated = evaluate(vector.reshape(M0.shape), gradient=True)
        if evaluated is None:
            return None
        costs, gradient = evaluated
        assert gradient is not None
        costs_at[vector.tobytes()] = costs
        return float(costs.sum()) / scale, gradient.ravel() / scale

    result = _minimise_stable(
        objective, M0.ravel(), max_iterations=max_iterations, tolerance=tolerance
    )
    M = result.x.reshape(M0.shape)
    X1 = M @ basis.T + fixed
    error, error_excitatory = gain_errors(X1 @ D, feedback.K, n_excitatory)
    loop = ThalamicLoop(
        Y=initial_loop.Y,
        Z=initial_loop.Z,
        X=np.concatenate([X1, -X1], axis=1),
        tau_thalamus=initial_loop.tau_thalamus,
        tau_relay=initial_loop.tau_relay,
        error=error,
        error_excitatory=error_excitatory,
    )
    # The minimiser only accepts stable points, all of them evaluated by the objective.
    cost = costs_at.get(result.x.tobytes(), begin[0])
    logger.info(
        "thalamic loop fit: linearised cost %.4g -> %.4g in %d L-BFGS iterations (%s)",
        float(initial.sum()),
        float(cost.sum()),
        result.iterations,
        result.stop_reason,
    )
    return LoopFit(
        loop=loop,
        cost=cost,
        initial_cost=initial,
        iterations=result.iterations,
        converged=result.converged,
        stop_reason=result.stop_reason,
    )


@dataclass
class Trial:
    """One controller's trials, one per movement (:func:`run_trial`).

    Attributes:
        states: (batch, total_steps + 1, n) potentials over the whole trial.
        inputs: (batch, total_steps, n) controller input ``u`` (deviation from ``h``).
        outputs: (batch, movement_steps + 1, outputs) readout from the go cue on (the readout is
            gated to zero before it).
        distance: (batch, total_steps + 1) ``||x - x*|| / ||x* - x_sp||``.
        input_energy: (batch,) ``integral ||u||^2 dt`` over the whole trial.
        persistence: (batch,) ``||x(go) - x(end of preparation)|| / ||x* - x_sp||``, the drift of
            the prepared state through the delay (0 without delay).
        prepared: the preparation window's :class:`PreparedState`.
    """

    states: Tensor
    inputs: Tensor
    outputs: Tensor
    distance: Tensor
    input_energy: Tensor
    persistence: Tensor
    prepared: PreparedState


def run_trial(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    x_star: Tensor,
    C: Tensor,
    *,
    n_excitatory: int,
    controller: ControllerName,
    timing: TrialTiming,
    tau: float,
    gain: GainName = "relu",
    K: Tensor | None = None,
    loop: ThalamicLoop | None = None,
    go_cue_stimulus: bool = False,
    min_energy_iterations: int = 20,
) -> Trial:
    """Spontaneous period, preparation (+ delay) by ``controller``, go cue, movement.

    Args:
        W: (n, n); h: (n,) background; x_sp: (n,) spontaneous state (a fixed point with ``h``).
        x_star: (movements, n) prepared states; C: (outputs, n_excitatory) readout.
        n_excitatory: readout units; controller, K, loop: see :func:`prepare_state`.
        timing: period lengths and ``dt``.
        tau: seconds; gain: the network's gain.
        go_cue_stimulus: also send Kao's go cue (:func:`lifrnn_core.dynamics.go_cue`) to every
            unit during the movement. Off by default: the fit's ``x*`` were fitted without it.

    Returns:
        :class:`Trial` for every movement.
    """
    dt = timing.dt
    x_star = _check_batch("x_star", x_star, W)
    batch, n = x_star.shape
    spontaneous_steps = timing.steps("spontaneous")
    movement_steps = timing.steps("movement")
    spontaneous = simulate(W, x_sp, tau=tau, dt=dt, steps=spontaneous_steps, h=h, gain=gain)
    spontaneous = spontaneous.expand(batch, -1, -1)
    prepared = prepare_state(
        W,
        h,
        spontaneous[:, -1],
        x_star,
        controller=controller,
        duration=timing.preparation,
        hold=timing.delay,
        tau=tau,
        dt=dt,
        gain=gain,
        K=K,
        loop=loop,
        min_energy_iterations=min_energy_iterations,
    )
    stimulus = None
    if go_cue_stimulus:
        stimulus = go_cue(torch.arange(movement_steps, dtype=W.dtype, device=W.device) * dt)
    x_go = prepared.states[:, -1]
    if controller == "thalamic_loop" and loop is not None and prepared.offset is not None:
        # Gate off: the thalamus decays (10 ms) and the relay after it, still driving cortex.
        gate = torch.zeros(movement_steps, dtype=W.dtype)
        movement, _, _, residual = _simulate_loop(
            W,
            h,
            x_go,
            prepared.thalamus[:, -1],  # type: ignore[index]
            prepared.relay[:, -1],  # type: ignore[index]
            loop,
            prepared.offset,
            gate,
            tau=tau,
            dt=dt,
            gain=gain,
            stimulus=None if stimulus is None else stimulus[:, None].expand(-1, n),
        )
    else:
        movement = simulate(
            W, x_go, tau=tau, dt=dt, steps=movement_steps, h=h, stimulus=stimulus, gain=gain
        )
        residual = torch.zeros((batch, movement_steps, n), dtype=W.dtype, device=W.device)
    states = torch.cat([spontaneous[:, :-1], prepared.states[:, :-1], movement], dim=1)
    zeros = torch.zeros((batch, spontaneous_steps, n), dtype=W.dtype, device=W.device)
    inputs = torch.cat([zeros, prepared.inputs, residual], dim=1)
    outputs = gain_function(gain)(movement[..., :n_excitatory]) @ C.to(W).T
    distance = state_distance(states, x_star, x_sp)
    go = timing.go_step
    end_of_preparation = spontaneous_steps + timing.steps("preparation")
    scale = torch.linalg.norm(x_star - x_sp, dim=-1)
    drift = torch.linalg.norm(states[:, go] - states[:, end_of_preparation], dim=-1) / scale
    return Trial(
        states=states,
        inputs=inputs,
        outputs=outputs,
        distance=distance,
        input_energy=input_energy(inputs, dt),
        persistence=drift,
        prepared=prepared,
    )


REACH_TOLERANCE = 0.05
"""``prepare_distance`` below which a controller has reached ``x*`` (5 % of the way left)."""


@dataclass(frozen=True)
class PrepareMetrics:
    """Per-movement measures of a trial (:func:`prepare_metrics`), each (batch,).

    Attributes:
        prepare_distance: at the go cue, distance to ``x*`` in the metric of Kao's ``Q``
            (:func:`prepare_distance`): the part of the error the movement will see.
        state_distance: at the go cue, full-state distance ``||x - x*|| / ||x* - x_sp||``.
        reach_time: seconds from the start of preparation until ``prepare_distance`` falls
            below ``tolerance`` and stays there until the go cue; NaN if it never does.
        reach_energy: ``integral ||u||^2 dt`` from the start of preparation to ``reach_time``
            (to the go cue if ``x*`` is never reached): getting to ``x*``.
        hold_energy: from ``reach_time`` to the go cue: staying at ``x*``.
        movement_energy: after the go cue (the thalamic loop's decaying output; 0 otherwise).
        input_energy: the whole trial, ``reach_energy + hold_energy + movement_energy``.
        persistence: ``||x(go) - x(end of preparation)|| / ||x* - x_sp||``, the drift through
            the delay (0 without delay).
    """

    prepare_distance: Tensor
    state_distance: Tensor
    reach_time: Tensor
    reach_energy: Tensor
    hold_energy: Tensor
    movement_energy: Tensor
    input_energy: Tensor
    persistence: Tensor


def prepare_metrics(
    states: Tensor,
    inputs: Tensor,
    x_target: Tensor,
    x_reference: Tensor,
    Q: Tensor,
    timing: TrialTiming,
    *,
    tolerance: float = REACH_TOLERANCE,
) -> PrepareMetrics:
    """Distances at the go cue, arrival time and energy split of whole trials.

    Args:
        states: (batch, total_steps + 1, n) potentials (:attr:`Trial.states`).
        inputs: (batch, total_steps, n) controller input ``u``, input ``k`` acting during
            step ``k``.
        x_target: (batch, n) ``x*``; x_reference: (n,) or (batch, n) the spontaneous state.
        Q: (n, n) Kao's state cost (:func:`lifrnn_core.control.readout_gramian`).
        timing: the trial's periods.
        tolerance: ``prepare_distance`` that counts as having reached ``x*``.

    Returns:
        :class:`PrepareMetrics`.
    """
    dt = timing.dt
    begin = timing.steps("spontaneous")
    end_of_preparation = begin + timing.steps("preparation")
    go = timing.go_step
    distance_q = prepare_distance(states, x_target, x_reference, Q)
    distance = state_distance(states, x_target, x_reference)
    # Arrival: the first step from which the Q-distance stays below tolerance until go.
    window = distance_q[:, begin : go + 1] <= tolerance
    stays = torch.flip(torch.cumprod(torch.flip(window, [1]).to(torch.int64), 1), [1]).bool()
    reached = stays[:, -1]
    arrival = begin + (window.shape[1] - stays.sum(dim=1))
    arrival = torch.where(reached, arrival, torch.full_like(arrival, go))
    power = inputs.pow(2).sum(dim=-1) * dt  # (batch, total_steps)
    step = torch.arange(power.shape[1], device=power.device)[None, :]
    before_go = step < go
    reaching = (step >= begin) & (step < arrival[:, None])
    holding = (step >= arrival[:, None]) & before_go
    nan = torch.full_like(distance_q[:, 0], float("nan"))
    scale = torch.linalg.norm(x_target - x_reference, dim=-1)
    return PrepareMetrics(
        prepare_distance=distance_q[:, go],
        state_distance=distance[:, go],
        reach_time=torch.where(reached, (arrival - begin).to(distance_q) * dt, nan),
        reach_energy=(power * reaching).sum(dim=1) + (power * (step < begin)).sum(dim=1),
        hold_energy=(power * holding).sum(dim=1),
        movement_energy=(power * ~before_go).sum(dim=1),
        input_energy=power.sum(dim=1),
        persistence=torch.linalg.norm(states[:, go] - states[:, end_of_preparation], dim=-1)
        / scale,
    )
