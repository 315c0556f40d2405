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
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from lifrnn_core.control import ThalamicLoop
from lifrnn_core.dynamics import GainName, gain_function, go_cue, simulate
from lifrnn_core.errors import InvalidNetworkError

__all__ = [
    "CONTROLLERS",
    "ControllerName",
    "PreparedState",
    "Trial",
    "TrialTiming",
    "distance_to_target",
    "hold_input",
    "input_energy",
    "loop_offset",
    "min_energy_input",
    "prepare_state",
    "readout_distance",
    "run_trial",
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


def distance_to_target(states: Tensor, x_target: Tensor, x_reference: Tensor) -> Tensor:
    """``||x(t) - x*|| / ||x* - x_ref||`` for states (batch, time, n): (batch, time).

    ``x_target`` (batch, n); ``x_reference`` (n,) or (batch, n), e.g. the spontaneous state.
    """
    scale = torch.linalg.norm(x_target - x_reference, dim=-1, keepdim=True)
    return torch.linalg.norm(states - x_target[:, None, :], dim=-1) / scale


def readout_distance(states: Tensor, x_target: Tensor, x_reference: Tensor, Q: Tensor) -> Tensor:
    """Distance to ``x*`` in the norm of a state cost ``Q``, relative to ``x* - x_ref``.

    ``sqrt((x - x*)^T Q (x - x*) / (x* - x_ref)^T Q (x* - x_ref))`` for states (batch, time, n),
    ``x_target`` (batch, n), ``x_reference`` (n,) or (batch, n), ``Q`` (n, n) symmetric positive
    semi-definite; returns (batch, time). With Kao's ``Q`` (the readout's observability Gramian)
    it measures the part of the error the movement will see.
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
    gain_fn = gain_function(gain)
    Y, Z, X = loop.as_tensors(W)
    a, a_y, a_z = dt / tau, dt / loop.tau_thalamus, dt / loop.tau_relay
    x, y, z = x0, y0, z0
    states, thalamus, relay, inputs = [x], [y], [z], []
    gates = gate.tolist()
    for k, g in enumerate(gates):
        rates = gain_fn(x)
        u = torch.relu(z) @ X.T
        drive = h + u if stimulus is None else h + u + stimulus[k]
        x_next = torch.lerp(x, rates @ W.T + drive, a)
        y = torch.lerp(y, g * (rates @ Y.T + offset), a_y)
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
        distance_at_go: (batch,) distance at the go cue.
        persistence: (batch,) ``||x(go) - x(end of preparation)|| / ||x* - x_sp||``, the drift of
            the prepared state through the delay (0 without delay).
        prepared: the preparation window's :class:`PreparedState`.
    """

    states: Tensor
    inputs: Tensor
    outputs: Tensor
    distance: Tensor
    input_energy: Tensor
    distance_at_go: Tensor
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
    distance = distance_to_target(states, x_star, x_sp)
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
        distance_at_go=distance[:, go],
        persistence=drift,
        prepared=prepared,
    )
