"""NLB'21's spike-smoothing baseline (:func:`smoothing_baseline`): smoothed, log-transformed
held-in spikes, then a Poisson GLM to the held-out neurons."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from lifrnn_core.baselines.common import (
    ALPHAS,
    KERNEL_WIDTHS,
    BaselinePrediction,
    _flat,
    _select,
    _selection_subset,
    _smooth,
    _split_indices,
    _trial_log_likelihood,
)
from lifrnn_core.baselines.glm import _glm_path, fit_poisson_glm
from lifrnn_core.spike_trials import SpikeTrials

LOG_OFFSET = 1e-4
"""Added to smoothed spike counts (spikes/bin) before their logarithm, as NLB's smoothing
baseline does, so silent stretches stay finite."""


def smoothing_baseline(
    trials: SpikeTrials,
    *,
    kernel_widths: Sequence[float] = KERNEL_WIDTHS,
    alphas: Sequence[float] = ALPHAS,
    max_selection_trials: int = 400,
    seed: int = 0,
) -> BaselinePrediction:
    """NLB'21's spike-smoothing baseline: smoothed held-in spikes -> Poisson GLM -> held-out.

    Each trial's held-in counts are smoothed with a Gaussian kernel, ``log(smoothed +
    LOG_OFFSET)`` is taken (as NLB's baseline does: the GLM's log link then makes the held-out
    rates products of powers of held-in rates), and a Poisson GLM maps it to the held-out counts.
    The kernel width is chosen on val at the middle ``alpha``, then ``alpha`` at that width
    (a coordinate search: len(widths) + len(alphas) - 1 fits instead of their product), on at
    most ``max_selection_trials`` train and val trials each; the final GLM is fitted on every
    train trial.

    Args:
        trials: the binned trials and their split.
        kernel_widths: kernel standard deviations to try, seconds.
        alphas: GLM penalties to try.
        max_selection_trials: most train (and val) trials used to choose hyper-parameters.
        seed: draws those trials when there are more.

    Returns:
        Held-out rates (trials, time, n_heldout) spikes per bin; no forward prediction.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    rng = np.random.default_rng(seed)
    sel_train = _selection_subset(train, max_selection_trials, rng)
    sel_val = _selection_subset(val, max_selection_trials, rng)

    def log_rates(width: float, index: np.ndarray) -> np.ndarray:
        """(trials, time, n_heldin) log of the smoothed held-in counts."""
        return np.log(_smooth(trials.heldin[index], width, trials.bin_width) + LOG_OFFSET)

    def score(candidate: dict[str, float]) -> np.ndarray:
        width, alpha = candidate["kernel_width"], candidate["alpha"]
        glm = fit_poisson_glm(
            _flat(log_rates(width, sel_train)), _flat(trials.heldout[sel_train]), alpha
        )
        return _trial_log_likelihood(
            glm.predict(log_rates(width, sel_val)), trials.heldout[sel_val]
        )

    middle_alpha = sorted(alphas)[len(alphas) // 2]
    chosen, selection = _select(
        [{"kernel_width": w, "alpha": middle_alpha} for w in kernel_widths], score
    )
    width = chosen["kernel_width"]
    alpha, _, _ = _glm_path(
        _flat(log_rates(width, sel_train)),
        _flat(trials.heldout[sel_train]),
        alphas,
        log_rates(width, sel_val),
        trials.heldout[sel_val],
    )
    glm = fit_poisson_glm(_flat(log_rates(width, train)), _flat(trials.heldout[train]), alpha)
    rates = glm.predict(log_rates(width, np.arange(trials.n_trials)))
    return BaselinePrediction(
        rates=rates,
        forward_rates=None,
        hyperparameters={"kernel_width": width, "alpha": alpha},
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )
