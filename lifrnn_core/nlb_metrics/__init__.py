"""The Neural Latents Benchmark's four scores of predicted firing rates (Pei et al. 2021, NLB'21).

Every model and baseline of a spike-train ``fit_data`` job is judged by these, on the same trials
(docs/science.md, "The Neural Latents Benchmark's scores"):

- :func:`co_bps`: co-smoothing bits per spike, the held-out neurons' spikes in the window
  predicted from the held-in neurons (the benchmark's headline score);
- :func:`fp_bps`: forward-prediction bits per spike, every neuron's spikes in the bins after the
  window;
- :func:`velocity_r2`: R² of hand velocity decoded from the predicted rates by ridge regression
  (NLB's cross-validated penalty, with the behaviour lagging the rates by 100 ms);
- :func:`psth_r2`: R² of the condition-averaged predictions against the data's PSTHs.

Each computes what ``nlb_tools.evaluation`` computes on the same arrays (checked to 1e-9 in
``tests/unit/test_nlb_metrics.py``), written afresh in numpy: the ridge penalty's grid search
shares one Gram matrix per fold across every penalty, which keeps MC_Maze's ~300,000 samples
cheap. :func:`nlb_scores` computes all four from arrays, :func:`score_spike_trials` from a
:class:`~lifrnn_core.spike_trials.SpikeTrials` and a model's rates for all of its trials.

Shapes: ``(trials, time, neurons)``; rates and counts in spikes per bin; times in seconds.

The package, by concept (every name is re-exported here, so ``lifrnn_core.nlb_metrics.X`` keeps
working):

- :mod:`~lifrnn_core.nlb_metrics.bits`: bits per spike (:func:`bits_per_spike`, :func:`co_bps`,
  :func:`fp_bps`);
- :mod:`~lifrnn_core.nlb_metrics.velocity`: velocity decoding (:func:`velocity_r2`,
  :class:`JoinedRates`);
- :mod:`~lifrnn_core.nlb_metrics.psths`: PSTHs (:func:`condition_psths`, :func:`trial_psths`,
  :func:`psth_r2`, :func:`psth_reliability`);
- :mod:`~lifrnn_core.nlb_metrics.scores`: the four combined (:class:`NLBScores`,
  :func:`nlb_scores`, :func:`score_spike_trials`).

May import: numpy, :mod:`lifrnn_core.recordings`, :mod:`lifrnn_core.spike_trials`; no web,
database, ``lifrnn``, ``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.nlb_metrics.bits import ZERO_RATE, bits_per_spike, co_bps, fp_bps
from lifrnn_core.nlb_metrics.psths import (
    NLB_PSTH_KERNEL_SD,
    condition_psths,
    psth_r2,
    psth_reliability,
    trial_psths,
)
from lifrnn_core.nlb_metrics.scores import (
    NLB_VELOCITY_LAG,
    NLBScores,
    nlb_scores,
    score_spike_trials,
)
from lifrnn_core.nlb_metrics.velocity import (
    NLB_CV_FOLDS,
    NLB_RIDGE_ALPHAS,
    JoinedRates,
    velocity_r2,
)

__all__ = [
    "NLB_CV_FOLDS",
    "NLB_PSTH_KERNEL_SD",
    "NLB_RIDGE_ALPHAS",
    "NLB_VELOCITY_LAG",
    "ZERO_RATE",
    "JoinedRates",
    "NLBScores",
    "bits_per_spike",
    "co_bps",
    "condition_psths",
    "fp_bps",
    "nlb_scores",
    "psth_r2",
    "psth_reliability",
    "score_spike_trials",
    "trial_psths",
    "velocity_r2",
]
