"""Prepare metrics on tiny hand-made trials (docs/science.md §6, issue 18)."""

import math

import pytest
import torch

from lifrnn_core.preparation import (
    TrialTiming,
    preparation_cost,
    prepare_distance,
    prepare_metrics,
    state_distance,
)

# 2 steps spontaneous, 3 preparation, 1 delay, 2 movement at dt = 0.5 s: go at step 6.
TIMING = TrialTiming(spontaneous=1.0, preparation=1.5, delay=0.5, movement=1.0, dt=0.5)
X_SP = torch.tensor([0.0, 0.0], dtype=torch.float64)
X_STAR = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
Q = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # sees the first unit only


def trial(path: list[list[float]], inputs: list[float]):
    states = torch.tensor([path], dtype=torch.float64)
    u = torch.tensor(inputs, dtype=torch.float64)[None, :, None].expand(1, -1, 2)
    return states, u.contiguous()


# time index:  0 1 | 2 prep 3 4 | 5 delay | 6 go 7 8
PATH = [[0, 0], [0, 0], [0, 0], [1, 0], [1.98, 0.5], [2, 0.5], [2, 0.5], [2, 1], [2, 1]]
INPUTS = [0, 0, 1, 2, 3, 4, 5, 6]  # per unit, so ||u||^2 = 2 u^2


def test_distances_by_hand():
    states, _ = trial(PATH, INPUTS)
    full = state_distance(states, X_STAR, X_SP)[0]
    in_q = prepare_distance(states, X_STAR, X_SP, Q)[0]
    scale = math.sqrt(5.0)  # ||x* - x_sp||
    assert full[3].item() == pytest.approx(math.sqrt(1 + 1) / scale)
    assert full[6].item() == pytest.approx(0.5 / scale)
    # Q sees only the first unit, whose distance to x* is 2 at rest: (x1 - 2) / 2.
    assert in_q[3].item() == pytest.approx(0.5)
    assert in_q[6].item() == 0.0


def test_metrics_at_go_arrival_and_energy_split():
    states, inputs = trial(PATH, INPUTS)
    m = prepare_metrics(states, inputs, X_STAR, X_SP, Q, TIMING, tolerance=0.05)
    assert m.prepare_distance.item() == 0.0
    assert m.state_distance.item() == pytest.approx(0.5 / math.sqrt(5.0))
    # Q-distance 0.01 at step 4 (within tolerance) and 0 after: reached 2 steps after step 2.
    assert m.reach_time.item() == pytest.approx(1.0)
    energy = [2 * u * u * 0.5 for u in INPUTS]
    assert m.reach_energy.item() == pytest.approx(sum(energy[2:4]))
    assert m.hold_energy.item() == pytest.approx(sum(energy[4:6]))
    assert m.movement_energy.item() == pytest.approx(sum(energy[6:]))
    total = m.reach_energy + m.hold_energy + m.movement_energy
    assert torch.allclose(total, m.input_energy)
    assert m.input_energy.item() == pytest.approx(sum(energy))
    assert m.persistence.item() == pytest.approx(0.0)  # steps 5 and 6 are the same state


def test_a_controller_that_never_arrives_spends_everything_reaching():
    path = [[0, 0]] * 6 + [[1, 0]] * 3  # halfway in Q at go
    states, inputs = trial(path, INPUTS)
    m = prepare_metrics(states, inputs, X_STAR, X_SP, Q, TIMING)
    assert m.prepare_distance.item() == pytest.approx(0.5)
    assert math.isnan(m.reach_time.item())
    assert m.hold_energy.item() == 0.0
    assert torch.allclose(m.reach_energy + m.movement_energy, m.input_energy)


def test_leaving_x_star_before_go_is_not_arrival():
    path = [[0, 0], [0, 0], [0, 0], [2, 1], [2, 1], [1, 1], [2, 1], [2, 1], [2, 1]]
    states, inputs = trial(path, INPUTS)
    m = prepare_metrics(states, inputs, X_STAR, X_SP, Q, TIMING)
    assert m.reach_time.item() == pytest.approx(2.0)  # from step 6 on, not step 3
    assert torch.allclose(m.reach_energy + m.hold_energy + m.movement_energy, m.input_energy)


def test_preparation_cost_by_hand():
    states = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 3.0]]], dtype=torch.float64)
    inputs = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]], dtype=torch.float64)
    hold = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    P = 2 * torch.eye(2, dtype=torch.float64)
    cost = preparation_cost(states, inputs, X_STAR, hold, Q, 0.5, tau=2.0, dt=1.0, cost_to_go=P)
    # running: (4 + 0.5 * 1) + (1 + 0.5 * 1), times dt / tau = 0.5; terminal 2 * (0 + 4)
    assert cost.item() == pytest.approx(0.5 * (4.5 + 1.5) + 8.0)
