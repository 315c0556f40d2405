"""Sequential movements: reaches chained within a short interval (docs/science.md §7).

The first reach starts from its prepared initial state. When it ends, a preparation controller
(:func:`lifrnn_core.preparation.prepare_state`) drives the network toward the next reach's initial
state during the interval — the readout gated to zero, as in preparation — and the next reach
then runs from wherever the network has arrived. Each segment is scored against its target, and
the shortest interval that still gives every segment the required R^2 is searched on a grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, gain_function, simulate
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.fitting import r_squared
from lifrnn_core.preparation import ControllerName, prepare_state
from lifrnn_core.retraining import FittedNetwork

__all__ = ["SequenceResult", "run_sequence", "shortest_interval"]


@dataclass
class SequenceResult:
    """One executed sequence.

    Attributes:
        states: (time, n) potentials over the whole sequence.
        outputs: (time, outputs) readout, gated to zero during the intervals.
        segment_r2: R^2 of each reach against its target.
        transition_errors: ``||x(end of interval) - x*|| / ||x* - x_sp||`` before each reach
            after the first.
        interval: seconds between the end of one reach and the start of the next.
        controller: the preparation controller used in the intervals.
    """

    states: Tensor
    outputs: Tensor
    segment_r2: list[float]
    transition_errors: list[float]
    interval: float
    controller: str


def run_sequence(
    network: FittedNetwork,
    order: list[int],
    targets: Tensor,
    *,
    interval: float,
    tau: float,
    dt: float,
    gain: GainName = "relu",
    controller: ControllerName = "lqr",
    K: Tensor | None = None,
) -> SequenceResult:
    """Execute the reaches ``order`` (indices into ``network.x_star``) one after another.

    Args:
        network: fitted network.
        order: movement indices, at least two.
        targets: (len(order), time, outputs) target of each reach in the sequence.
        interval: seconds between reaches (a whole number of ``dt``, > 0).
        tau, dt: seconds; gain: the network's gain.
        controller: preparation controller driving the state during the interval.
        K: (n, n) LQR gain, needed by ``"lqr"``.
    """
    if len(order) < 2:
        raise InvalidNetworkError("a sequence needs at least two movements")
    if targets.shape[0] != len(order):
        raise InvalidNetworkError(f"{targets.shape[0]} targets for {len(order)} movements")
    interval_steps = round(interval / dt)
    if interval_steps < 1 or abs(interval_steps * dt - interval) > 1e-9:
        raise InvalidNetworkError(f"interval {interval} s must be a positive multiple of dt={dt}")
    W, h, x_sp, C = network.W, network.h, network.x_sp, network.C
    n_e = network.n_excitatory
    rate = gain_function(gain)
    steps = targets.shape[1] - 1
    pieces_states: list[Tensor] = []
    pieces_outputs: list[Tensor] = []
    segment_r2: list[float] = []
    transition_errors: list[float] = []
    state = network.x_star[order[0]]
    for position, movement in enumerate(order):
        if position > 0:
            goal = network.x_star[movement]
            prepared = prepare_state(
                W,
                h,
                state,
                goal,
                controller=controller,
                duration=interval,
                tau=tau,
                dt=dt,
                gain=gain,
                K=K,
            )
            gap = prepared.states[0]
            pieces_states.append(gap[1:])
            pieces_outputs.append(torch.zeros(gap.shape[0] - 1, C.shape[0], dtype=W.dtype))
            state = gap[-1]
            transition_errors.append(
                float(torch.linalg.norm(state - goal) / torch.linalg.norm(goal - x_sp))
            )
        reach = simulate(W, state, tau=tau, dt=dt, steps=steps, h=h, gain=gain)[0]
        outputs = rate(reach[:, :n_e]) @ C.T
        segment_r2.append(r_squared(outputs[None], targets[position][None])[0])
        pieces_states.append(reach if position == 0 else reach[1:])
        pieces_outputs.append(outputs if position == 0 else outputs[1:])
        state = reach[-1]
    return SequenceResult(
        states=torch.cat(pieces_states),
        outputs=torch.cat(pieces_outputs),
        segment_r2=segment_r2,
        transition_errors=transition_errors,
        interval=interval,
        controller=controller,
    )


def shortest_interval(
    network: FittedNetwork,
    order: list[int],
    targets: Tensor,
    *,
    longest: float,
    step: float,
    r2_required: float,
    tau: float,
    dt: float,
    gain: GainName = "relu",
    controller: ControllerName = "lqr",
    K: Tensor | None = None,
) -> float | None:
    """Shortest interval on the grid ``step, 2 step, ..., longest`` (seconds) at which every
    segment reaches ``r2_required``; None when even ``longest`` does not."""
    candidates = max(1, round(longest / step))
    for k in range(1, candidates + 1):
        interval = round(k * step / dt) * dt
        result = run_sequence(
            network,
            order,
            targets,
            interval=interval,
            tau=tau,
            dt=dt,
            gain=gain,
            controller=controller,
            K=K,
        )
        if min(result.segment_r2) >= r2_required:
            return interval
    return None
