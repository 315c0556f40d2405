"""Whole trials: spontaneous period, preparation (+ delay) by a controller, go cue and movement
(:func:`run_trial`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lifrnn_core.control import ThalamicLoop
from lifrnn_core.dynamics import GainName, gain_function, go_cue, simulate
from lifrnn_core.preparation.drive import ControllerName, PreparedState, prepare_state
from lifrnn_core.preparation.loop import _simulate_loop
from lifrnn_core.preparation.metrics import input_energy, state_distance
from lifrnn_core.preparation.timing import TrialTiming, _check_batch

__all__ = ["Trial", "run_trial"]


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
