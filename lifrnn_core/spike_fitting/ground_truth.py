"""Ground truth: spike trials drawn from the observation model (:func:`sample_spike_trials`), for
fits and benchmarks."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.spike_fitting.config import SpikeFitConfig
from lifrnn_core.spike_fitting.poisson import PoissonReadout, poisson_rates
from lifrnn_core.spike_fitting.results import SampledTrials
from lifrnn_core.spike_trials import SpikeTrials


def sample_spike_trials(
    W: Tensor,
    h: Tensor,
    x_star: Tensor,
    readout: PoissonReadout,
    *,
    n_excitatory: int,
    n_heldin: int,
    trials_per_condition: int,
    trial_noise: float,
    generator: torch.Generator,
    bin_width: float = 0.005,
    window: tuple[float, float] = (-0.25, 0.45),
    forward: float = 0.2,
    split_fractions: tuple[float, float] = (0.6, 0.2),
    config: SpikeFitConfig | None = None,
) -> SampledTrials:
    """Spike trials drawn from the observation model: ground truth for fits and benchmarks.

    Trial i of condition c starts at ``x*_c + trial_noise * xi`` (xi ~ N(0, I), per unit); its
    counts are Poisson with the means of :func:`poisson_rates`. Within each condition the trials
    are split at random into train / val / test by ``split_fractions`` (train, val; the rest test).

    Args:
        W, h: the network, (n, n) and (n,).
        x_star: (K, n) the conditions' initial states; condition k is labelled ``c{k:02d}``.
        readout: Poisson readout of every neuron; the first ``n_heldin`` rows are held-in.
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        n_heldin: held-in neurons.
        trials_per_condition: trials drawn per condition.
        trial_noise: sd of each unit's initial-state noise (same units as x).
        generator: the noise, the spikes and the split (a CPU generator).
        bin_width: seconds per bin.
        window: (start, stop) seconds of the window around movement onset.
        forward: seconds predicted after the window.
        split_fractions: fractions of each condition's trials in train and in val.
        config: tau, gain and Euler step (None: the defaults).
    """
    config = config or SpikeFitConfig()
    n_conditions, n = x_star.shape
    n_time = round((window[1] - window[0]) / bin_width)
    n_forward = round(forward / bin_width)
    labels = np.repeat([f"c{k:02d}" for k in range(n_conditions)], trials_per_condition)
    noise = torch.randn(len(labels), n, generator=generator, dtype=torch.float64)
    centres = x_star.detach().repeat_interleave(trials_per_condition, dim=0)
    x0 = centres + trial_noise * noise.to(W)
    with torch.no_grad():
        rates = poisson_rates(
            W,
            h,
            x0,
            readout.detach(),
            n_excitatory=n_excitatory,
            bin_width=bin_width,
            bins=n_time + n_forward,
            config=config,
        )
    rates64 = rates.cpu().double()
    counts = torch.poisson(rates64, generator=generator).numpy()
    split = np.empty(len(labels), dtype=object)
    n_train = round(split_fractions[0] * trials_per_condition)
    n_val = round(split_fractions[1] * trials_per_condition)
    for k in range(n_conditions):
        order = torch.randperm(trials_per_condition, generator=generator).numpy()
        index = k * trials_per_condition + order
        split[index[:n_train]] = "train"
        split[index[n_train : n_train + n_val]] = "val"
        split[index[n_train + n_val :]] = "test"
    n_neurons = counts.shape[-1]
    spike_trials = SpikeTrials(
        heldin=counts[:, :n_time, :n_heldin],
        heldout=counts[:, :n_time, n_heldin:],
        heldin_forward=counts[:, n_time:, :n_heldin],
        heldout_forward=counts[:, n_time:, n_heldin:],
        behavior=None,
        condition=labels,
        split=split.astype(str),
        time=window[0] + bin_width * np.arange(n_time),
        bin_width=bin_width,
        heldin_units=np.arange(n_heldin),
        heldout_units=np.arange(n_heldin, n_neurons),
        trial_index=np.arange(len(labels)),
    )
    return SampledTrials(spike_trials, rates64.numpy(), x0.detach().cpu().double().numpy())
