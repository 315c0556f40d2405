"""The LIF neuron's f–I curve and the mapping of a rate network onto pools of LIF neurons
(lifrnn_core.spiking; docs/science.md §9)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers.networks import kao2021, reaches

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.spiking import (
    LIFParameters,
    drive_for_rate,
    firing_rate,
    firing_rate_slope,
    simulate_spiking,
    spiking_network,
)

LIF = LIFParameters()


@pytest.mark.parametrize("sigma", [0.0, 1.0, 3.0, 6.0])
@pytest.mark.parametrize("dt", [0.0, 1e-4])
def test_drive_for_rate_inverts_the_f_i_curve_and_the_slope_is_its_derivative(sigma, dt):
    rates = np.array([2.0, 10.0, 20.0, 60.0, 200.0])
    drive = drive_for_rate(rates, sigma, LIF, dt)
    # 2 Hz without noise sits 1e-10 mV above threshold: the rate is steep there
    np.testing.assert_allclose(firing_rate(drive, sigma, LIF, dt), rates, rtol=1e-5)
    drive = drive[1:]  # (the slope at 2 Hz without noise is too steep for a finite difference)
    step = 1e-5
    numeric = (
        firing_rate(drive + step, sigma, LIF, dt) - firing_rate(drive - step, sigma, LIF, dt)
    ) / (2 * step)
    np.testing.assert_allclose(firing_rate_slope(drive, sigma, LIF, dt), numeric, rtol=1e-5)


def test_noiseless_f_i_curve_is_the_closed_form_and_siegert_tends_to_it():
    assert firing_rate(19.99, 0.0, LIF) == 0.0
    # mu = 30 mV: the membrane reaches 20 mV from 10 mV after tau_m ln(20 / 10) = 13.86 ms.
    np.testing.assert_allclose(firing_rate(30.0, 0.0, LIF), 1 / (0.002 + 0.02 * np.log(2.0)))
    np.testing.assert_allclose(firing_rate(30.0, 0.05, LIF), firing_rate(30.0, 0.0, LIF), rtol=1e-3)


@pytest.mark.parametrize("sigma", [0.0, 3.0])
def test_a_simulated_neuron_fires_at_the_f_i_curve_rate(sigma):
    """Unconnected pools (W = 0) at a constant drive: the simulated rate is Siegert's to within
    the sampling error plus the bias of testing the threshold once per 0.1 ms step."""
    n, K, steps = 4, 500, 20_000
    W = torch.zeros(n, n, dtype=torch.float64)
    targets = torch.tensor([5.0, 15.0, 30.0, 60.0], dtype=torch.float64)
    network = spiking_network(
        W,
        torch.ones(n, dtype=torch.float64),
        torch.ones(n, dtype=torch.float64),
        tau=0.15,
        pool_size=K,
        noise=sigma,
    )
    drive = torch.from_numpy(drive_for_rate(targets.numpy(), sigma, LIF, dt=network.dt))
    network = replace(network, bias=drive, gain_mv=torch.zeros(n, dtype=torch.float64))
    run = simulate_spiking(
        network,
        torch.ones(1, n, dtype=torch.float64),
        steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    # the first 0.2 s: the neurons leave their uniform start
    rates = run.counts[0, 200:].sum(0) / (K * (steps - 2000) * 1e-4)
    np.testing.assert_allclose(rates.numpy(), targets.numpy(), rtol=0.05)


def test_the_pools_mean_field_has_the_rate_networks_fixed_point_and_slope():
    W, n_e = kao2021(40)
    fitted = reaches(W, n_e, conditions=2)
    network = spiking_network(W, fitted.h, fitted.x_sp, tau=0.15, noise=3.0)
    x = fitted.x_sp
    torch.testing.assert_close(network.mean_field_rates(x), network.target_rates(x))
    step = 1e-4
    slope = (network.mean_field_rates(x + step) - network.mean_field_rates(x - step)) / (2 * step)
    torch.testing.assert_close(slope, torch.full_like(x, network.rate_scale), rtol=1e-4, atol=0)


def test_a_silent_relu_unit_or_an_impossible_rate_is_refused_by_name():
    W, n_e = kao2021(40)
    fitted = reaches(W, n_e, conditions=2)
    point = fitted.x_sp.clone()
    point[3] = -0.5
    with pytest.raises(InvalidNetworkError, match="unit 3"):
        spiking_network(W, fitted.h, point, tau=0.15)
    with pytest.raises(InvalidNetworkError, match=r"\(0, 500\) Hz"):
        spiking_network(W, fitted.h, fitted.x_sp, tau=0.15, rate_scale=400.0)
    with pytest.raises(InvalidNetworkError, match="reset"):
        LIFParameters(reset=25.0)
    with pytest.raises(InvalidNetworkError, match="u0 must be"):
        simulate_spiking(spiking_network(W, fitted.h, fitted.x_sp, tau=0.15), fitted.x_sp, steps=10)


def test_spikes_counts_and_states_agree_and_a_seed_repeats_the_run():
    W, n_e = kao2021(40)
    fitted = reaches(W, n_e, conditions=2)
    network = spiking_network(W, fitted.h, fitted.x_sp, tau=0.15, pool_size=4)

    def run():
        return simulate_spiking(
            network,
            fitted.x_star,
            steps=1000,
            record_every=10,
            generator=torch.Generator().manual_seed(5),
        )

    first, second = run(), run()
    assert torch.equal(first.spikes, second.spikes)
    assert first.counts.shape == (2, 100, 40) and first.u.shape == (2, 101, 40)
    counted = torch.zeros_like(first.counts)
    condition, step, neuron = first.spikes.T
    counted.index_put_(
        (condition, step // 10, neuron // 4),
        torch.ones(len(step), dtype=counted.dtype),
        accumulate=True,
    )
    assert torch.equal(counted, first.counts)
    # no neuron fires twice within the refractory period (20 steps)
    order = torch.argsort(
        first.spikes[:, 0] * 10**9 + first.spikes[:, 2] * 10**5 + first.spikes[:, 1]
    )
    ordered = first.spikes[order]
    same = (ordered[1:, 0] == ordered[:-1, 0]) & (ordered[1:, 2] == ordered[:-1, 2])
    assert (ordered[1:, 1] - ordered[:-1, 1])[same].min() >= 20
    assert 5 < float(first.pool_rates().mean()) < 40
