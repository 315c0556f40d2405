"""The thalamic loop fitted to the preparation cost, at CI size (docs/science.md §6)."""

import numpy as np
import pytest
import torch
from helpers import networks

from lifrnn_core.control import copy_gain_loop
from lifrnn_core.preparation import (
    _loop_lyapunov_cost,
    _minimise_stable,
    fit_thalamic_loop,
    hold_input,
)

N = 40
TAU = 0.15


@pytest.fixture(scope="module")
def network():
    return networks.prepared(N)


def fit(net, **options):
    return fit_thalamic_loop(
        net["W"], net["h"], net["x_sp"], net["x_star"], net["feedback"], net["n_e"],
        torch.Generator().manual_seed(1), tau=TAU, **options,
    )  # fmt: skip


def test_the_fitted_loop_costs_no_more_than_the_copy_of_k(network):
    result = fit(network, max_iterations=8)
    assert np.all(np.isfinite(result.cost))
    assert result.iterations > 0
    assert result.cost.sum() <= result.initial_cost.sum()
    assert result.converged == (result.stop_reason in ("tolerance", "gradient"))


def test_an_unstable_copy_of_k_is_replaced_by_a_stable_fitted_loop(network):
    # A slow thalamus makes the copy of K unstable once linearised: the fit starts without
    # feedback and only ever accepts stable loops.
    result = fit(network, tau_thalamus=0.2, tau_relay=0.2, max_iterations=5)
    assert np.all(np.isinf(result.initial_cost))
    assert np.all(np.isfinite(result.cost))
    assert result.stop_reason != "unstable_start"


def test_a_fit_capped_by_its_iterations_is_not_converged(network):
    result = fit(network, max_iterations=1, tolerance=0.0)
    assert (result.iterations, result.stop_reason, result.converged) == (1, "max_iterations", False)


def bowl_in_a_disc(x):
    """``||x - (2, 0)||^2``, defined only inside the unit disc (the 'stable' region)."""
    if x @ x >= 1:
        return None
    return float((x - [2.0, 0.0]) @ (x - [2.0, 0.0])), 2 * (x - [2.0, 0.0])


def test_the_minimiser_never_leaves_the_stable_region():
    # The unconstrained minimum lies outside: every accepted point stays inside.
    result = _minimise_stable(bowl_in_a_disc, np.zeros(2), max_iterations=100, tolerance=1e-12)
    assert result.x @ result.x < 1
    assert bowl_in_a_disc(result.x) is not None
    assert result.value == pytest.approx(bowl_in_a_disc(result.x)[0])
    assert result.x[0] > 0.99


def test_the_minimiser_refuses_an_unstable_start():
    with pytest.raises(ValueError, match="unstable"):
        _minimise_stable(bowl_in_a_disc, np.array([2.0, 0.0]), max_iterations=5, tolerance=0)


def test_the_lyapunov_gradient_matches_finite_differences(network):
    W = network["W"].numpy()
    n_e, feedback = network["n_e"], network["feedback"]
    hold = hold_input(network["W"], network["h"], network["x_star"]).numpy()
    loop = copy_gain_loop(feedback.K, n_e, torch.Generator().manual_seed(1), drives=hold)
    D = loop.Y[:N] - loop.Y[N:]
    U, singular, _ = np.linalg.svd(D)
    basis = U[:, : int(np.sum(singular > singular[0] * 1e-10))]
    X1 = loop.X[:, :N]
    fixed = X1 - X1 @ basis @ basis.T
    channel = np.linalg.lstsq(X1, hold.T, rcond=1e-8)[0].T
    error0 = network["x_sp"].numpy()[None] - network["x_star"].numpy()
    starts = np.concatenate([error0, -channel, -channel], axis=1)
    lags = (TAU / 0.01, TAU / 0.01)

    def cost(M):
        value = _loop_lyapunov_cost(M, basis, fixed, W, D, feedback.Q, 0.1, starts, lags)
        assert value is not None
        return value

    M = 0.1 * X1 @ basis  # a stable point with feedback
    _, gradient = cost(M)
    direction = np.random.default_rng(0).standard_normal(M.shape)
    direction /= np.linalg.norm(direction)
    eps = 1e-5
    numeric = (cost(M + eps * direction)[0].sum() - cost(M - eps * direction)[0].sum()) / (2 * eps)
    assert np.sum(gradient * direction) == pytest.approx(numeric, rel=1e-6)
