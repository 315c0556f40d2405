"""Preparation trials and controllers on a small network (docs/science.md §6)."""

import numpy as np
import pytest
import torch
from helpers import networks

from lifrnn_core.control import copy_gain_loop, preparatory_feedback
from lifrnn_core.dynamics import simulate
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.preparation import (
    TrialTiming,
    hold_input,
    input_energy,
    loop_offset,
    prepare_distance,
    prepare_state,
    run_trial,
    state_distance,
)

N = 40
TAU, DT = 0.15, 2e-3


@pytest.fixture(scope="module")
def network():
    net = networks.prepared(N)
    feedback = net.pop("feedback")
    loop = copy_gain_loop(
        feedback.K,
        net["n_e"],
        torch.Generator().manual_seed(1),
        drives=hold_input(net["W"], net["h"], net["x_star"]).numpy(),
    )
    return {
        **net,
        "K": torch.from_numpy(feedback.K),
        "Q": torch.from_numpy(feedback.Q),
        "loop": loop,
    }


def prepare(net, controller, x0=None, duration=0.6, hold=0.0):
    return prepare_state(
        net["W"],
        net["h"],
        net["x_sp"] if x0 is None else x0,
        net["x_star"],
        controller=controller,
        duration=duration,
        hold=hold,
        tau=TAU,
        dt=DT,
        K=net["K"],
        loop=net["loop"],
    )


def test_hold_input_makes_the_target_a_fixed_point(network):
    W, h, x_star = network["W"], network["h"], network["x_star"]
    u = hold_input(W, h, x_star)
    states = simulate(W, x_star, tau=TAU, dt=DT, steps=50, h=h + u)
    assert float((states - x_star[:, None]).abs().max()) < 1e-12


@pytest.mark.parametrize("controller", ["feedforward", "lqr"])
def test_the_target_is_a_fixed_point_under_feedback(network, controller):
    prepared = prepare(network, controller, x0=network["x_star"], duration=0.2)
    assert float((prepared.states - network["x_star"][:, None]).abs().max()) < 1e-10


def test_the_loop_offset_makes_the_target_a_fixed_point_of_the_loop(network):
    W, h, x_star, loop = network["W"], network["h"], network["x_star"], network["loop"]
    b, z_star = loop_offset(loop, W, h, x_star)
    Y, Z, X = loop.as_tensors(W)
    rates = torch.relu(x_star)
    assert torch.allclose(z_star, (rates @ Y.T + b) @ Z.T)  # thalamus and relay at rest
    assert float(z_star.min()) >= 1.0  # baseline: the relay's relu is inert
    assert torch.allclose(torch.relu(z_star) @ X.T, hold_input(W, h, x_star), atol=1e-8)


def test_the_loop_starts_silent_and_drives_cortex_only_through_the_relay(network):
    prepared = prepare(network, "thalamic_loop", duration=0.1)
    assert prepared.thalamus is not None and prepared.relay is not None
    assert float(prepared.relay[:, 0].abs().max()) == 0.0
    assert float(prepared.inputs[:, 0].abs().max()) == 0.0
    _, _, X = network["loop"].as_tensors(network["W"])
    assert torch.allclose(prepared.inputs, torch.relu(prepared.relay[:, :-1]) @ X.T)


def test_min_energy_arrives_exactly_and_then_holds(network):
    prepared = prepare(network, "min_energy", duration=0.4, hold=0.2)
    distance = state_distance(prepared.states, network["x_star"], network["x_sp"])
    arrival = round(0.4 / DT)
    assert float(distance[:, arrival:].max()) < 1e-6
    assert prepared.iterations >= 1


def test_min_energy_spends_least_energy_among_controllers_that_arrive(network):
    duration = 0.4
    least = prepare(network, "min_energy", duration=duration)
    # A strong state weight makes LQR arrive too; it must pay at least as much.
    strong = preparatory_feedback(
        network["W"].numpy(), network["C"].numpy(), network["n_e"], r2=0.1, state_weight=10.0
    )
    lqr = prepare_state(
        network["W"],
        network["h"],
        network["x_sp"],
        network["x_star"],
        controller="lqr",
        duration=duration,
        tau=TAU,
        dt=DT,
        K=torch.from_numpy(strong.K),
    )
    arrived = state_distance(lqr.states, network["x_star"], network["x_sp"])[:, -1]
    assert float(arrived.max()) < 1e-3
    assert torch.all(input_energy(least.inputs, DT) < input_energy(lqr.inputs, DT))


def test_min_energy_is_a_stationary_point_of_energy_under_the_arrival_constraint(network):
    """Small input changes that keep the final state cost energy to second order only."""
    W, h, x_sp, x_star = network["W"], network["h"], network["x_sp"], network["x_star"]
    prepared = prepare(network, "min_energy", duration=0.1)
    inputs = prepared.inputs.clone().requires_grad_(True)
    final = simulate(W, x_sp, tau=TAU, dt=DT, steps=inputs.shape[1], h=h, inputs=inputs)[:, -1]
    energy = input_energy(inputs, DT).sum()
    (grad_energy,) = torch.autograd.grad(energy, inputs, retain_graph=True)
    # The energy gradient must lie in the span of the constraint's gradients (Lagrange).
    rows = [
        torch.autograd.grad(final[b, i], inputs, retain_graph=True)[0].flatten()
        for b in range(2)
        for i in range(N)
    ]
    J = torch.stack(rows)  # (2 N, parameters)
    coefficients = torch.linalg.lstsq(J.T, grad_energy.flatten()).solution
    residual = grad_energy.flatten() - J.T @ coefficients
    assert float(residual.norm() / grad_energy.norm()) < 1e-6
    assert float((final.detach() - x_star).abs().max()) < 1e-8


def test_lqr_reaches_the_readout_relevant_directions_faster_than_feedforward(network):
    lqr = prepare(network, "lqr", duration=0.3)
    naive = prepare(network, "feedforward", duration=0.3)
    args = (network["x_star"], network["x_sp"], network["Q"])
    assert torch.all(
        prepare_distance(lqr.states, *args)[:, -1] < prepare_distance(naive.states, *args)[:, -1]
    )


def test_run_trial_shapes_and_metrics(network):
    timing = TrialTiming(spontaneous=0.1, preparation=0.2, delay=0.1, movement=0.2, dt=DT)
    trial = run_trial(
        network["W"],
        network["h"],
        network["x_sp"],
        network["x_star"],
        network["C"],
        n_excitatory=network["n_e"],
        controller="min_energy",
        timing=timing,
        tau=TAU,
    )
    total = timing.total_steps
    assert total == 300 and timing.go_step == 200
    assert trial.states.shape == (2, total + 1, N)
    assert trial.inputs.shape == (2, total, N)
    assert trial.outputs.shape == (2, 101, 2)
    assert float(trial.inputs[:, :50].abs().max()) == 0.0  # spontaneous: no input
    assert float(trial.inputs[:, 200:].abs().max()) == 0.0  # movement: gate closed
    assert torch.allclose(trial.input_energy, input_energy(trial.inputs, DT))
    assert float(trial.distance[:, 200].max()) < 1e-6
    assert float(trial.persistence.max()) < 1e-6
    assert float(trial.distance[:, 0].min()) == pytest.approx(1.0)


def test_loop_keeps_driving_cortex_briefly_after_the_gate_closes(network):
    timing = TrialTiming(spontaneous=0.0, preparation=0.3, delay=0.0, movement=0.1, dt=DT)
    trial = run_trial(
        network["W"],
        network["h"],
        network["x_sp"],
        network["x_star"],
        network["C"],
        n_excitatory=network["n_e"],
        controller="thalamic_loop",
        timing=timing,
        tau=TAU,
        K=network["K"],
        loop=network["loop"],
    )
    after_go = torch.linalg.norm(trial.inputs[:, timing.go_step :], dim=-1)
    assert float(after_go[:, 0].min()) > 0  # relay still active at the go cue
    assert float(after_go[:, -1].max()) < 1e-3 * float(after_go[:, 0].max())  # ~20 ms decay


def test_timing_must_be_whole_steps():
    with pytest.raises(InvalidNetworkError, match="preparation"):
        TrialTiming(preparation=0.6005, dt=1e-3).steps("preparation")
    with pytest.raises(InvalidNetworkError, match="delay"):
        TrialTiming(delay=-0.1, dt=1e-3).steps("delay")


def test_unknown_controller_and_missing_gains_are_clear_errors(network):
    with pytest.raises(InvalidNetworkError, match="unknown controller 'pid'"):
        prepare(network, "pid")
    with pytest.raises(InvalidNetworkError, match="needs the feedback gain K"):
        prepare_state(
            network["W"],
            network["h"],
            network["x_sp"],
            network["x_star"],
            controller="lqr",
            duration=0.1,
            tau=TAU,
            dt=DT,
        )


def test_prepare_distance_is_zero_at_the_target_and_one_at_rest(network):
    x_star, x_sp, Q = network["x_star"], network["x_sp"], network["Q"]
    states = torch.stack([x_star, x_sp.expand(2, N)], dim=1)
    distance = prepare_distance(states, x_star, x_sp, Q)
    assert np.allclose(distance.numpy(), [[0.0, 1.0], [0.0, 1.0]])


def test_the_go_cue_stimulus_perturbs_the_movement_only(network):
    timing = TrialTiming(spontaneous=0.0, preparation=0.1, delay=0.0, movement=0.1, dt=DT)
    common = {
        "n_excitatory": network["n_e"],
        "controller": "feedforward",
        "timing": timing,
        "tau": TAU,
    }
    args = (network["W"], network["h"], network["x_sp"], network["x_star"], network["C"])
    quiet = run_trial(*args, **common)
    cued = run_trial(*args, **common, go_cue_stimulus=True)
    go = timing.go_step
    assert torch.equal(quiet.states[:, : go + 1], cued.states[:, : go + 1])
    assert float((quiet.states[:, go + 2 :] - cued.states[:, go + 2 :]).abs().min()) > 0
