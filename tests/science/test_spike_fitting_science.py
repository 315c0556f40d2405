"""Ground truth for the Poisson fit (lifrnn_core/spike_fitting.py): spike trials drawn from a known
network are fitted back on that network, with its true initial states, and its co-smoothing
score (NLB'21's co-bps, on the test trials' held-out neurons) is compared with that of the true
single-trial rates.

The recording: a kao2021 network (n = 40, 32 excitatory units); 8 conditions with their own x*
(RMS distance 0.2 from x_sp), 20 trials each, every trial starting at its condition's x* plus
noise of sd 0.2 per unit; 96 neurons (72 held-in, 24 held-out) reading the excitatory rates
through a softplus; Poisson counts in 5 ms bins, a 250 ms window and 25 ms forward.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.fitting import random_initial_states
from lifrnn_core.nlb_metrics import bits_per_spike
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.spike_fitting import (
    PoissonReadout,
    SpikeFitConfig,
    fit_spikes,
    sample_spike_trials,
)

pytestmark = pytest.mark.slow

CO_BPS_GAP = 0.02
"""Bits per spike by which the fitted model may trail the true rates (issue 28's bar for the
generating network). Measured: 0.050 true, 0.037 fitted, 0.024 the condition prediction
(recording seeds 1-3: gaps 0.010-0.013, the condition prediction 0.010-0.016 below the fit).
MAP inference with the true readout and prior width reaches 0.046; the rest is the readout,
learnt from 96 training trials."""


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_generating_network_recovers_the_true_rates_co_bps() -> None:
    params = SOCParameters.for_method("kao2021", n=40)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    n_e = params.n_excitatory
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(40, generator)
    h = background_input(W, x_sp)
    x_star = random_initial_states(W, x_sp, 8, generator, radius=0.2)
    sparse = torch.rand(96, n_e, generator=generator, dtype=torch.float64) < 0.3
    weights = 15 * torch.rand(96, n_e, generator=generator, dtype=torch.float64) * sparse
    offsets = -10 * torch.rand(96, generator=generator, dtype=torch.float64)
    sampled = sample_spike_trials(
        W,
        h,
        x_star,
        PoissonReadout(weights, offsets),
        n_excitatory=n_e,
        n_heldin=72,
        trials_per_condition=20,
        trial_noise=0.2,
        generator=generator,
        window=(-0.1, 0.15),
        forward=0.025,
    )
    trials = sampled.trials

    fit = fit_spikes(
        W,
        h,
        x_sp,
        trials,
        n_excitatory=n_e,
        config=SpikeFitConfig(fit_x_star=False, state_priors=(1.0,)),
        generator=torch.Generator().manual_seed(1),
        x_star=x_star,
    )

    test = trials.mask("test")
    n_time = trials.heldout.shape[1]
    observed = trials.heldout[test]
    truth = bits_per_spike(sampled.rates[test][:, :n_time, 72:], observed)
    model = bits_per_spike(fit.heldout_rates[test].numpy(), observed)
    _, condition_heldout, _ = fit.condition_prediction()
    condition_mean = bits_per_spike(condition_heldout[test].numpy(), observed)
    assert np.isfinite(truth) and truth > 0.03
    assert truth - CO_BPS_GAP < model < truth + 0.005
    assert model > condition_mean + 0.005  # single trials matter here
