"""Retraining says what it can reach before training, stops when it has converged and keeps the
SOC structure it is asked to keep (docs/science.md §7)."""

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.retraining import (
    FittedNetwork,
    FullNetworkState,
    RetrainConfig,
    project_dale,
    project_structure,
    readout_reachability,
    retrain_full_network,
    structure_measures,
)
from lifrnn_core.trajectories import reach_trajectories


def two_output_targets() -> torch.Tensor:
    """(1, 4, 2): x and y each with zero mean over time."""
    x = torch.tensor([1.0, -1.0, 2.0, -2.0], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    return torch.stack([x, y], dim=-1)[None]


def test_a_readout_with_a_zero_row_cannot_reach_targets_with_a_y_component():
    readout = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    reach = readout_reachability(readout, two_output_targets())
    # Least squares on the x axis keeps x (sum of squares 10) and loses y (4): R^2 = 1 - 4/14.
    assert reach.best_r2_possible == pytest.approx([1 - 4 / 14])
    assert reach.readout_rank == 1 and not reach.reachable
    assert "rank 1 of 2" in reach.reason and "y 0" in reach.reason
    assert reach.metrics()["best_r2_possible"] == pytest.approx(1 - 4 / 14)


def test_best_r2_is_that_of_the_least_squares_projection_on_the_readout_span():
    # A rank-1 readout along (1, 1): a target along (1, -1) is orthogonal to it, best R^2 = 0.
    readout = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64)
    signal = torch.tensor([1.0, -1.0, 3.0, -3.0], dtype=torch.float64)
    orthogonal = torch.stack([signal, -signal], dim=-1)[None]
    along = torch.stack([signal, signal], dim=-1)[None]
    assert readout_reachability(readout, orthogonal).best_r2_possible == pytest.approx([0.0])
    reach = readout_reachability(readout, along)
    assert reach.best_r2_possible == pytest.approx([1.0])
    assert reach.reachable  # in the span, though the readout has rank 1


def test_a_full_rank_or_adapting_readout_reaches_everything():
    targets = two_output_targets()
    full_rank = readout_reachability(torch.eye(2, dtype=torch.float64), targets)
    adapting = readout_reachability(None, targets)
    for reach in (full_rank, adapting):
        assert reach.reachable and reach.readout_rank == 2
        assert reach.best_r2_possible == pytest.approx([1.0])
    assert "adapts" in adapting.reason


def tiny_network(n: int = 12, n_excitatory: int = 9) -> FittedNetwork:
    generator = torch.Generator().manual_seed(3)
    W = project_dale(
        torch.randn(n, n, generator=generator, dtype=torch.float64) * 0.15, n_excitatory
    )
    x_sp = spontaneous_state(n, generator)
    # Two trained initial states and a third, the start of the new movement.
    x_star = x_sp + 0.2 * torch.randn(3, n, generator=generator, dtype=torch.float64)
    C = torch.randn(2, n_excitatory, generator=generator, dtype=torch.float64)
    return FittedNetwork(
        W=W, h=background_input(W, x_sp), x_sp=x_sp, C=C, x_star=x_star, n_excitatory=9
    )


def trained(network: FittedNetwork) -> FittedNetwork:
    """The network with its two trained initial states only."""
    return FittedNetwork(**{**network.__dict__, "x_star": network.x_star[:2]})


def retrain(network: FittedNetwork, **settings: Any) -> tuple:
    old = reach_trajectories([0, 180], duration=0.1, dt=0.005).velocity
    new = reach_trajectories([90], duration=0.1, dt=0.005).velocity
    abscissa = float(torch.linalg.eigvals(network.W).real.max())
    config = RetrainConfig(dt=0.005, stability_bound=abscissa + 0.05, **settings)
    seen: list[torch.Tensor] = []
    result = retrain_full_network(
        trained(network),
        new,
        old,
        config=config,
        new_x_star=network.x_star[2:],
        inspect=seen.append,
    )
    return result, seen


def test_full_network_stops_at_the_cost_tolerance_without_a_step():
    network = tiny_network()
    result, seen = retrain(network, cost_tolerance=1e9)
    assert result.converged and result.stop_reason == "cost_tolerance"
    assert result.iterations == 1 == len(seen)
    assert result.weight_change == 0.0


def test_full_network_stops_when_the_loss_stops_improving():
    network = tiny_network()
    # Any improvement smaller than patience x 1.0 x the best loss counts as none.
    result, _ = retrain(network, cost_tolerance=0.0, relative_tolerance=1.0, patience=2)
    assert result.converged and result.stop_reason == "relative_tolerance"
    assert result.iterations == 3


def test_full_network_at_its_step_limit_says_it_did_not_converge():
    network = tiny_network()
    result, _ = retrain(network, cost_tolerance=0.0, relative_tolerance=0.0, max_iterations=3)
    assert not result.converged and result.stop_reason == "max_iterations"
    assert result.iterations == 3


def test_full_network_keeps_the_row_sums_exactly_after_every_step():
    network = tiny_network()
    before = network.W.sum(dim=1)
    result, seen = retrain(
        network,
        cost_tolerance=0.0,
        relative_tolerance=0.0,
        max_iterations=4,
        keep_structure="kao2021_row_sums",
        learning_rate=0.05,
    )
    assert result.weight_change > 0
    for W in seen:
        assert float((W.sum(dim=1) - before).abs().max()) < 1e-12
    assert result.structure["kept"] == "kao2021_row_sums"
    assert result.structure["row_sum_deviation"] < 1e-12
    unconstrained, _ = retrain(
        network, cost_tolerance=0.0, relative_tolerance=0.0, max_iterations=4, learning_rate=0.05
    )
    assert unconstrained.structure["row_sum_deviation"] > 1e-3  # reported when not kept


def test_the_stop_reason_survives_a_checkpoint():
    state = FullNetworkState(
        W=torch.eye(2), displacement=torch.ones(1, 2), done=True, stop_reason="cost_tolerance"
    )
    tensors, metadata = state.to_tensors()
    again = FullNetworkState.from_tensors(tensors, metadata, like=torch.zeros(1))
    assert again.done and again.stop_reason == "cost_tolerance"


def dale_reference(values: np.ndarray, n_excitatory: int, mask: np.ndarray) -> torch.Tensor:
    """A Dale matrix with the mask whose every row has some excitation and inhibition."""
    reference = project_dale(torch.from_numpy(values), n_excitatory, torch.from_numpy(mask))
    excitatory = torch.arange(10) < n_excitatory
    shift = torch.where(excitatory, 0.5, -0.5).to(reference.dtype)
    return reference + torch.from_numpy(mask) * (1 - torch.eye(10)) * shift


masks = arrays(np.float64, (10, 10), elements=st.sampled_from([0.0, 1.0])).map(
    lambda m: np.maximum(m, np.eye(10, k=-1) + np.eye(10, k=1) + np.eye(10, k=9) + np.eye(10, k=-9))
)


@settings(max_examples=40, deadline=None)
@given(
    W=arrays(np.float64, (10, 10), elements=st.floats(-3, 3)),
    reference=arrays(np.float64, (10, 10), elements=st.floats(-3, 3)),
    mask=masks,
    n_excitatory=st.integers(5, 8),
)
def test_structure_projection_keeps_row_sums_and_ratios_exactly(W, reference, mask, n_excitatory):
    mask_t = torch.from_numpy(mask)
    reference_t = dale_reference(reference, n_excitatory, mask)
    for structure in ("kao2021_row_sums", "hennequin2014_ratios"):
        projected = project_structure(
            torch.from_numpy(W), n_excitatory, mask_t, structure, reference_t
        )
        assert (projected[:, :n_excitatory] >= 0).all()
        assert (projected[:, n_excitatory:] <= 0).all()
        assert (projected.diagonal() == 0).all() and (projected[mask_t == 0] == 0).all()
        if structure == "kao2021_row_sums":
            error = (projected.sum(dim=1) - reference_t.sum(dim=1)).abs().max()
            assert float(error) < 1e-12
        else:
            # mean(W_EI) + g_e mean(W_EE) = 0 and mean(W_II) + g_i mean(W_IE) = 0, with the
            # reference's ratios g: the linear constraints the projection keeps.
            target = structure_measures(reference_t, n_excitatory)
            n_e = n_excitatory
            for rows, gamma in (
                (slice(0, n_e), target["inhibition_ratio_e"]),
                (slice(n_e, 10), target["inhibition_ratio_i"]),
            ):
                excitation = projected[rows, :n_e].mean()
                inhibition = projected[rows, n_e:].mean()
                scale = 1.0 + float(excitation.abs()) * gamma
                assert abs(float(inhibition + gamma * excitation)) < 1e-12 * scale
        again = project_structure(projected, n_excitatory, mask_t, structure, reference_t)
        assert float((again - projected).abs().max()) < 1e-12  # a projection: idempotent
