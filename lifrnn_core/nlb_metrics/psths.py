"""PSTHs (NLB'21's ``psth R2``): the data's condition-averaged, smoothed spikes, the R² of a
model's condition-averaged rates against them, and their split-half reliability (the noise
ceiling)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lifrnn_core.nlb_metrics.velocity import _r2_per_output
from lifrnn_core.recordings import condition_average, gaussian_smooth
from lifrnn_core.spike_trials import SpikeTrials

__all__ = [
    "NLB_PSTH_KERNEL_SD",
    "condition_psths",
    "psth_r2",
    "psth_reliability",
    "trial_psths",
]

NLB_PSTH_KERNEL_SD = 0.07
"""Seconds: sd of the Gaussian smoothing the data's spikes into PSTHs (NLB's MC_Maze: 70 ms)."""


def condition_psths(
    spikes: np.ndarray,
    conditions: np.ndarray,
    bin_width: float,
    kernel_sd: float = NLB_PSTH_KERNEL_SD,
) -> tuple[np.ndarray, list[str]]:
    """The data's PSTHs: spikes averaged over each condition's trials, smoothed in time.

    NLB smooths the continuous 1 ms spike trains and then bins them; here the binned counts of
    each trial's window are smoothed (averaging first, which gives the same for a linear filter),
    with the window's ends mirrored, so the first and last ~2 sd are approximate.

    Args:
        spikes: (trials, time, neurons) counts, spikes per bin (NLB uses every trial of the
            condition, whatever its split, and all neurons).
        conditions: (trials,) condition label of each trial (compared as ``str``).
        bin_width: seconds per bin.
        kernel_sd: seconds, sd of the Gaussian kernel (NLB's MC_Maze: 70 ms).

    Returns:
        psths: (conditions, time, neurons) spikes per bin; labels: the conditions in natural order.
    """
    averages, labels, _ = condition_average(np.asarray(spikes), conditions)
    return gaussian_smooth(averages, kernel_sd, bin_width, axis=1), labels


def trial_psths(
    trials: SpikeTrials, kernel_sd: float = NLB_PSTH_KERNEL_SD
) -> tuple[np.ndarray, list[str]]:
    """:func:`condition_psths` of every trial's held-in then held-out neurons, (conditions,
    time, neurons). The two groups are averaged apart and joined (smoothing is per neuron, so
    the numbers are the same): joining every trial's counts first costs ~0.5 GB at MC_Maze's
    size."""
    parts = [
        condition_psths(counts, trials.condition, trials.bin_width, kernel_sd)
        for counts in (trials.heldin, trials.heldout)
    ]
    return np.concatenate([part[0] for part in parts], axis=-1), parts[0][1]


def psth_r2(
    rates: np.ndarray,
    conditions: np.ndarray,
    psths: np.ndarray,
    psth_conditions: Sequence[str] | np.ndarray,
) -> float:
    """R² of the condition-averaged predicted rates against the data's PSTHs, as NLB'21 scores it.

    For each PSTH's condition with evaluated trials, the predicted rates of those trials are
    averaged; the bins where the PSTH is NaN (its first neuron's) are left out; the R² of all
    conditions' bins stacked is averaged over neurons. Conditions without evaluated trials, and
    trials of conditions without a PSTH, are left out.

    Args:
        rates: (trials, time, neurons) predicted rates of the evaluated trials, spikes per bin.
        conditions: (trials,) condition label of each evaluated trial (compared as ``str``).
        psths: (conditions, time, neurons) the data's PSTHs, spikes per bin (see
            :func:`condition_psths`), NaN where a condition is shorter.
        psth_conditions: (conditions,) the label of each PSTH.

    Returns:
        R² averaged over neurons (a neuron whose PSTHs are constant scores 1 if matched exactly,
        else 0, as scikit-learn does).
    """
    rates = np.asarray(rates)  # averaged in float64 below, without a float64 copy of it all
    psths = np.asarray(psths, dtype=np.float64)
    labels = np.array([str(label) for label in conditions], dtype=object)
    if rates.ndim != 3 or psths.ndim != 3 or rates.shape[1:] != psths.shape[1:]:
        raise ValueError(
            f"psth_r2: rates {rates.shape} and psths {psths.shape} must be "
            "(trials | conditions, time, neurons) with the same time and neurons"
        )
    if len(labels) != len(rates) or len(psth_conditions) != len(psths):
        raise ValueError("psth_r2: one condition label per trial and per PSTH is needed")
    observed, predicted = [], []
    for label, psth in zip(psth_conditions, psths, strict=True):
        trials = labels == str(label)
        if not trials.any():
            continue
        known = ~np.isnan(psth[:, 0])
        mean_rates = rates[trials].mean(axis=0, dtype=np.float64)[known]
        if np.isnan(mean_rates).any():
            raise ValueError(f"psth_r2: NaN rate predictions in condition {label!r}")
        observed.append(psth[known])
        predicted.append(mean_rates)
    if not observed:
        raise ValueError("psth_r2: no evaluated trial belongs to a condition with a PSTH")
    return float(_r2_per_output(np.vstack(observed), np.vstack(predicted)).mean())


def psth_reliability(
    counts: np.ndarray, conditions: np.ndarray, bin_width: float, generator: np.random.Generator
) -> float:
    """Split-half reliability of the PSTHs, Spearman-Brown corrected: the noise ceiling.

    Each condition's trials are split at random into two halves; each half's PSTHs are smoothed
    as NLB smooths them (:func:`condition_psths`); per neuron, ``r`` is the
    correlation of the two halves' PSTHs over conditions and time, and ``2 r / (1 + r)`` the
    reliability of the PSTHs of all the trials (Spearman-Brown): the share of their variance that
    is not trial noise, so the largest R² any model of the true PSTHs reaches on them.

    Args:
        counts: (trials, time, neurons) spike counts.
        conditions: (trials,) condition labels.
        bin_width: seconds per bin.
        generator: draws the halves.

    Returns:
        The reliability averaged over neurons whose halves vary (NaN when none does, or when no
        condition has two trials).
    """
    labels = np.asarray(conditions).astype(str)
    half = np.zeros(len(labels), dtype=bool)
    usable = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < 2:
            continue
        usable[members] = True
        half[generator.permutation(members)[: members.size // 2]] = True
    if not usable.any():
        return math.nan
    first, order = condition_psths(counts[usable & half], labels[usable & half], bin_width)
    second, other = condition_psths(counts[usable & ~half], labels[usable & ~half], bin_width)
    if order != other:
        return math.nan
    a = first.reshape(-1, first.shape[-1])
    b = second.reshape(-1, second.shape[-1])
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    scale = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    varies = scale > 0
    if not varies.any():
        return math.nan
    r = (a[:, varies] * b[:, varies]).sum(axis=0) / scale[varies]
    corrected = 2 * r / (1 + r)
    return float(np.mean(np.where(r > -1, corrected, -1.0)))
