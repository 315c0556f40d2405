"""Measures of prepared trajectories: input energy, distances to ``x*``, Kao's preparation cost
and the per-movement metrics of a trial (arrival time, energy split)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lifrnn_core.preparation.timing import TrialTiming

__all__ = [
    "REACH_TOLERANCE",
    "PrepareMetrics",
    "input_energy",
    "preparation_cost",
    "prepare_distance",
    "prepare_metrics",
    "state_distance",
]


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
