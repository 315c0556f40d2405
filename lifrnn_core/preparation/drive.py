"""Driving the network to a state: the controller names and :func:`prepare_state`, which runs
any of the four controllers for a preparation window and then holds the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from lifrnn_core.control import ThalamicLoop
from lifrnn_core.dynamics import GainName, gain_function, simulate
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.preparation.controllers import hold_input, min_energy_input
from lifrnn_core.preparation.loop import _simulate_loop, loop_offset
from lifrnn_core.preparation.timing import TrialTiming, _check_batch

__all__ = ["CONTROLLERS", "ControllerName", "PreparedState", "prepare_state"]


ControllerName = Literal["feedforward", "lqr", "min_energy", "thalamic_loop"]
CONTROLLERS: tuple[str, ...] = get_args(ControllerName)
"""Names of the controllers, in the order of the comparison table."""


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
