"""Spiking networks built from a rate network, checked against Brian2 and against the rate
network they stand for (lifrnn_core.spiking; docs/science.md §9; issue 29 points 1 and 3).

The network: a kao2021 SOC network of N = 200 units with reaches fitted on it, its units mapped
to pools of LIF neurons around its spontaneous state. Brian2 runs the same network
(tests/helpers/brian2_peer.py) from the same initial potentials.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.brian2_peer import brian2_simulate
from helpers.networks import kao2021, reaches

from lifrnn_core.dynamics import simulate
from lifrnn_core.spiking import simulate_spiking, spiking_network

pytestmark = pytest.mark.slow

N = 200


@pytest.fixture(scope="module")
def rate_network():
    W, n_e = kao2021(N)
    return W, reaches(W, n_e, conditions=4)


def _initial_potentials(network, batch: int, seed: int) -> torch.Tensor:
    lif = network.lif
    generator = torch.Generator().manual_seed(seed)
    return lif.reset + (lif.threshold - lif.reset) * torch.rand(
        batch, network.neurons, generator=generator, dtype=torch.float64
    )


def test_without_noise_every_spike_is_brian2s(rate_network, one_thread):
    """N = 200 pools of K = 5, 1 s at 0.1 ms, two conditions: every spike at the same step."""
    W, fitted = rate_network
    network = spiking_network(W, fitted.h, fitted.x_sp, tau=0.15, pool_size=5, noise=0.0)
    u0, v0 = fitted.x_star[:2], _initial_potentials(network, 2, seed=1)
    ours = simulate_spiking(network, u0, steps=10_000, v0=v0)
    theirs = brian2_simulate(network, u0.numpy(), v0.numpy(), steps=10_000)
    assert len(ours.spikes) > 10_000  # about 10 Hz per neuron: a test with something to match
    assert ours.spikes.shape == theirs.spikes.shape
    np.testing.assert_array_equal(ours.spikes[:, [0, 2]].numpy(), theirs.spikes[:, [0, 2]])
    assert np.abs(ours.spikes[:, 1].numpy() - theirs.spikes[:, 1]).max() <= 1
    np.testing.assert_allclose(ours.u[:, -1].numpy(), theirs.u_end, atol=1e-9)


def test_with_noise_pool_rates_are_brian2s_within_sampling_error(rate_network, one_thread):
    """3 mV of membrane noise, 1 s, one condition: 12 runs of ours (independent noise) give each
    pool's mean and spread; 3 of Brian2's (its own Euler-Maruyama noise) must sit within it."""
    W, fitted = rate_network
    network = spiking_network(W, fitted.h, fitted.x_sp, tau=0.15, pool_size=5, noise=3.0)
    ours_runs, theirs_runs, steps, seconds = 12, 3, 10_000, 1.0
    ours = simulate_spiking(
        network,
        fitted.x_star[:1].expand(ours_runs, N),
        steps=steps,
        generator=torch.Generator().manual_seed(2),
    )
    ours_rates = ours.counts.sum(dim=1).numpy() / (network.pool_size * seconds)
    peer = brian2_simulate(
        network,
        fitted.x_star[:1].expand(theirs_runs, N).numpy(),
        _initial_potentials(network, theirs_runs, seed=3).numpy(),
        steps=steps,
        seed=4,
    )
    counts = np.zeros((theirs_runs, N))
    np.add.at(counts, (peer.spikes[:, 0], peer.spikes[:, 2] // network.pool_size), 1)
    theirs_rates = counts / (network.pool_size * seconds)
    mean, spread = ours_rates.mean(axis=0), ours_rates.std(axis=0, ddof=1)
    z = (theirs_rates.mean(axis=0) - mean) / (spread * np.sqrt(1 / ours_runs + 1 / theirs_runs))
    assert abs(z.mean()) < 4 / np.sqrt(N)  # no bias beyond four standard errors
    assert 0.7 < z.std() < 1.3  # and the spread that sampling alone gives
    assert np.mean(np.abs(z) > 3) < 0.02
    assert abs(theirs_rates.mean() / ours_rates.mean() - 1) < 0.01


def test_the_mean_field_follows_the_rate_network_through_its_movements(rate_network):
    """The mean-field ODE tau du/dt = -u + W (nu(bias + gain u) / scale) + h, integrated as the
    rate model is, tracks the rate model's movements (R² >= 0.95 at 3 mV of noise)."""
    W, fitted = rate_network
    network = spiking_network(W, fitted.h, fitted.x_sp, tau=0.15, noise=3.0)
    x = simulate(W, fitted.x_star, tau=0.15, dt=1e-3, steps=300, h=fitted.h)
    u, states = fitted.x_star.clone(), [fitted.x_star]
    for _ in range(300):
        rates = network.mean_field_rates(u) / network.rate_scale
        u = u + 1e-3 / 0.15 * (-u + rates @ W.T + fitted.h)
        states.append(u)
    mean_field = torch.stack(states, dim=1)
    r2 = 1 - ((mean_field - x) ** 2).sum() / ((x - x.mean(dim=1, keepdim=True)) ** 2).sum()
    assert r2 >= 0.95
