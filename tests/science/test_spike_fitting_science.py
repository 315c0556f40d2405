"""Ground truth for the Poisson fit (lifrnn_core/spike_fitting/): spike trials drawn from a known
network are fitted back on that network, with its true initial states, and its co-smoothing
score (NLB'21's co-bps, on the test trials' held-out neurons) is compared with that of the true
single-trial rates.

The recording: a kao2021 network (n = 40, 32 excitatory units); 8 conditions with their own x*
(RMS distance 0.2 from x_sp), 20 trials each, every trial starting at its condition's x* plus
noise of sd 0.2 per unit; 96 neurons (72 held-in, 24 held-out) reading the excitatory rates
through a softplus; Poisson counts in 5 ms bins, a 250 ms window and 25 ms forward; the network
integrated at 0.42 ms (a twelfth of a bin), near its continuous dynamics.
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
    SpikeFit,
    SpikeFitConfig,
    fit_spikes,
    sample_spike_trials,
)

pytestmark = pytest.mark.slow

CO_BPS_GAP = 0.02
"""Bits per spike by which the fitted model may trail the true rates (issue 28's bar for the
generating network). Measured (the generator at a twelfth of a bin): 0.056 true, 0.046 fitted,
0.027 the condition prediction; with the generator at the default step (until stop 35) 0.050,
0.037, 0.024 (recording seeds 1-3: gaps 0.010-0.013). MAP inference with the true readout and
prior width reached 0.046 there; the rest is the readout, learnt from 96 training trials."""


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def recording() -> dict:
    """The network, its true x*, and spike trials sampled from it (module docstring)."""
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
        config=SpikeFitConfig(integration_dt=0.005 / 12),  # near the continuous dynamics
    )
    return {"W": W, "h": h, "x_sp": x_sp, "x_star": x_star, "n_e": n_e, "sampled": sampled}


def fitted(recording: dict, **settings: object) -> SpikeFit:
    """The Poisson fit on the recording's network with its true x* (``settings``: config)."""
    return fit_spikes(
        recording["W"],
        recording["h"],
        recording["x_sp"],
        recording["sampled"].trials,
        n_excitatory=recording["n_e"],
        config=SpikeFitConfig(fit_x_star=False, state_priors=(1.0,), **settings),  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(1),
        x_star=recording["x_star"],
    )


def test_generating_network_recovers_the_true_rates_co_bps(recording: dict) -> None:
    sampled = recording["sampled"]
    trials = sampled.trials
    fit = fitted(recording)

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


def test_the_scores_hold_when_the_integration_step_is_halved(recording: dict) -> None:
    """The brief's rule for reported numbers: the co-bps moves by less than 1 % when the
    integration step is halved (the default: the 5 ms bin in two Heun steps of 2.5 ms; then
    four). With forward Euler it moved ~5 % (docs/science.md)."""
    trials = recording["sampled"].trials
    test = trials.mask("test")
    observed = trials.heldout[test]
    default = SpikeFitConfig().step(trials.bin_width)
    assert default == pytest.approx(trials.bin_width / 2)
    scores = [
        bits_per_spike(fitted(recording, integration_dt=dt).heldout_rates[test].numpy(), observed)
        for dt in (None, default / 2)
    ]
    assert abs(scores[1] - scores[0]) < 0.01 * abs(scores[1]), scores
