"""The condition-mean baseline (:func:`condition_mean_baseline`): each trial predicted by its
condition's smoothed mean over the training trials (a PSTH), which never looks at the trial."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from lifrnn_core.baselines.common import (
    RATE_FLOOR,
    BaselinePrediction,
    _select,
    _smooth,
    _split_indices,
    _trial_log_likelihood,
)
from lifrnn_core.spike_trials import SpikeTrials

CONDITION_KERNEL_WIDTHS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04)
"""Kernel widths (seconds) tried for smoothing condition-mean PSTHs: averages over many trials
need less smoothing than single trials."""


def condition_mean_baseline(
    trials: SpikeTrials, *, kernel_widths: Sequence[float] = CONDITION_KERNEL_WIDTHS
) -> BaselinePrediction:
    """Each trial predicted by its condition's mean over train trials (a smoothed PSTH).

    The mean runs over the window and the forward bins together (held-in and held-out neurons),
    so it forecasts too; it is smoothed along that whole span. A condition with no train trial
    gets the mean over all train trials. Rates are floored at ``RATE_FLOOR``. The kernel width
    is chosen on val.

    Args:
        trials: the binned trials and their split.
        kernel_widths: kernel standard deviations to try, seconds (0: no smoothing).

    Returns:
        Held-out rates (trials, time, n_heldout) and forward rates
        (trials, n_forward, n_heldin + n_heldout), spikes per bin.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    n_time = trials.heldin.shape[1]
    n_heldin = trials.heldin.shape[2]
    labels, code = np.unique(trials.condition, return_inverse=True)
    code = code.ravel()
    n_per_condition = np.bincount(code[train], minlength=len(labels))[:, None, None]

    def condition_means(counts: np.ndarray) -> np.ndarray:
        """(conditions, time, n) mean over each condition's train trials (all train if none)."""
        sums = np.zeros((len(labels), *counts.shape[1:]))
        np.add.at(sums, code[train], counts[train])
        fallback = counts[train].mean(axis=0, dtype=np.float64)
        return np.where(n_per_condition > 0, sums / np.maximum(n_per_condition, 1), fallback)

    # (conditions, time + n_forward, heldin + heldout): the whole span every neuron was recorded.
    means = np.concatenate(
        [
            np.concatenate([condition_means(trials.heldin), condition_means(trials.heldout)], 2),
            np.concatenate(
                [condition_means(trials.heldin_forward), condition_means(trials.heldout_forward)],
                2,
            ),
        ],
        axis=1,
    )
    floor = RATE_FLOOR * trials.bin_width

    def psth(width: float) -> np.ndarray:
        return np.maximum(_smooth(means, width, trials.bin_width), floor)

    def score(candidate: dict[str, float]) -> np.ndarray:
        predicted = psth(candidate["kernel_width"])[code[val], :n_time, n_heldin:]
        return _trial_log_likelihood(predicted, trials.heldout[val])

    chosen, selection = _select([{"kernel_width": w} for w in kernel_widths], score)
    predicted = psth(chosen["kernel_width"])
    return BaselinePrediction(
        rates=predicted[:, :n_time, n_heldin:][code],
        forward_rates=predicted[:, n_time:, :][code] if predicted.shape[1] > n_time else None,
        hyperparameters=chosen,
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )
