"""Bits per spike (NLB'21): how much better than each neuron's mean rate predicted rates explain
the spikes, of the held-out neurons in the window (:func:`co_bps`) and of every neuron after it
(:func:`fp_bps`). Rates and counts in spikes per bin, ``(trials, time, neurons)``."""

from __future__ import annotations

import logging
import math

import numpy as np

__all__ = ["ZERO_RATE", "bits_per_spike", "co_bps", "fp_bps"]

logger = logging.getLogger(__name__)

ZERO_RATE = 1e-9
"""Spikes per bin put in place of a predicted rate of exactly 0 (as nlb-tools does), so that a
spike where a model predicted none costs a large but finite log-likelihood."""


def _validated_pair(rates: np.ndarray, spikes: np.ndarray, what: str) -> tuple[np.ndarray, ...]:
    rates = np.asarray(rates, dtype=np.float64)
    spikes = np.asarray(spikes, dtype=np.float64)
    if rates.shape != spikes.shape or rates.ndim < 2:
        raise ValueError(
            f"{what}: rates {rates.shape} and spikes {spikes.shape} must have the same shape, "
            "(trials, time, neurons)"
        )
    return rates, spikes


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """How much better than each neuron's mean rate the predicted rates explain the spikes.

    (log L(rates) - log L(null)) / (total spikes * ln 2), with L the Poisson likelihood of the
    counts and the null model predicting each neuron's mean count over all the given bins.
    0 is no better than the mean rate; higher is better; the log(y!) terms cancel.

    Args:
        rates: (trials, time, neurons) predicted rates, spikes per bin, >= 0; a rate of exactly 0
            is read as ``ZERO_RATE``.
        spikes: (trials, time, neurons) observed counts; NaN marks bins left out of the score (their
            rates may be NaN too).

    Returns:
        bits per spike (float; NaN when the bins hold no spike).

    Raises:
        ValueError: shapes differ, or a scored rate is NaN or negative.
    """
    rates, spikes = _validated_pair(rates, spikes, "bits_per_spike")
    scored = ~np.isnan(spikes)
    null_rates = np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True)
    null_rates = np.broadcast_to(null_rates, spikes.shape)[scored]
    rates, spikes = rates[scored], spikes[scored]
    if np.isnan(rates).any():
        raise ValueError("bits_per_spike: NaN rate predictions in scored bins")
    if (rates < 0).any():
        raise ValueError("bits_per_spike: negative rate predictions; rates are spikes per bin")
    rates = np.where(rates == 0, ZERO_RATE, rates)
    null_rates = np.where(null_rates == 0, ZERO_RATE, null_rates)
    total_spikes = spikes.sum()
    if total_spikes == 0:
        logger.warning("bits_per_spike: no spikes in the scored bins; the score is undefined")
        return math.nan
    gain = spikes * (np.log(rates) - np.log(null_rates)) - (rates - null_rates)
    return float(gain.sum() / total_spikes / math.log(2))


def co_bps(heldout_rates: np.ndarray, heldout_spikes: np.ndarray) -> float:
    """Co-smoothing bits per spike: the held-out neurons of the evaluated trials, in the window.

    Args:
        heldout_rates: (trials, time, n_heldout) rates predicted for the held-out neurons from the
            held-in ones, spikes per bin.
        heldout_spikes: (trials, time, n_heldout) their observed counts.

    Returns:
        :func:`bits_per_spike` of the held-out neurons (NLB'21's ``co-bps``).
    """
    return bits_per_spike(heldout_rates, heldout_spikes)


def fp_bps(forward_rates: np.ndarray, forward_spikes: np.ndarray) -> float:
    """Forward-prediction bits per spike: every neuron in the bins after the window.

    Args:
        forward_rates: (trials, n_forward, neurons) rates predicted for the bins after the window
            from the window's held-in spikes, spikes per bin; neurons are the held-in ones then the
            held-out ones (NLB concatenates both).
        forward_spikes: (trials, n_forward, neurons) their observed counts, in the same order.

    Returns:
        :func:`bits_per_spike` of the forward bins (NLB'21's ``fp-bps``); its null model is each
        neuron's mean over the forward bins themselves.
    """
    return bits_per_spike(forward_rates, forward_spikes)
