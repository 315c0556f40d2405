"""Every baseline on the same trials, split and seed (:func:`run_baselines`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lifrnn_core.baselines.common import BaselinePrediction
from lifrnn_core.baselines.condition_mean import condition_mean_baseline
from lifrnn_core.baselines.gpfa import GPFA_LATENT_DIMS, gpfa_baseline
from lifrnn_core.baselines.ridge import ridge_baseline
from lifrnn_core.baselines.smoothing import smoothing_baseline
from lifrnn_core.spike_trials import SpikeTrials

logger = logging.getLogger(__name__)


def run_baselines(
    trials: SpikeTrials,
    *,
    seed: int = 0,
    latent_dims: Sequence[int] = GPFA_LATENT_DIMS,
    em_max_iters: int = 50,
    max_em_trials: int = 200,
    max_selection_trials: int = 400,
) -> dict[str, BaselinePrediction]:
    """Every baseline on the same trials and split.

    Args:
        trials: the binned trials and their split.
        seed: draws the trials used for hyper-parameter selection when there are more than
            ``max_selection_trials``; the same seed gives the same predictions.
        latent_dims: GPFA latent dimensions to try.
        em_max_iters: most EM iterations per GPFA fit.
        max_em_trials: most train trials GPFA's EM runs on.
        max_selection_trials: most train (and val) trials used to choose hyper-parameters.

    Returns:
        ``{"smoothing", "gpfa", "ridge", "condition_mean"}`` -> :class:`BaselinePrediction`.
    """
    predictions = {
        "smoothing": smoothing_baseline(
            trials, max_selection_trials=max_selection_trials, seed=seed
        ),
        "gpfa": gpfa_baseline(
            trials,
            latent_dims=latent_dims,
            em_max_iters=em_max_iters,
            max_em_trials=max_em_trials,
            max_selection_trials=max_selection_trials,
            seed=seed,
        ),
        "ridge": ridge_baseline(trials),
        "condition_mean": condition_mean_baseline(trials),
    }
    for name, prediction in predictions.items():
        logger.info(
            "baseline %s: %s in %.1f s", name, prediction.hyperparameters, prediction.fit_seconds
        )
    return predictions
