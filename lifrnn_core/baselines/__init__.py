"""The baselines a fitted network is judged beside, on the Neural Latents Benchmark's split.

NLB'21 (Pei et al. 2021, "Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks) scores
every model on the same held-out tensors; these are the simple models every submission is
compared with, each a pure function of a :class:`~lifrnn_core.spike_trials.SpikeTrials`:

- :func:`smoothing_baseline`: held-in spikes smoothed with a Gaussian kernel, log-transformed,
  then a Poisson GLM to the held-out neurons (NLB's spike-smoothing baseline);
- :func:`gpfa_baseline`: GPFA latents (Yu et al. 2009, ``elephant``'s implementation) of the
  held-in neurons, then a Poisson GLM to the held-out neurons; the latents' Gaussian process
  also extrapolates into the forward-prediction bins;
- :func:`ridge_baseline`: ridge regression from smoothed held-in rates to held-out counts;
- :func:`condition_mean_baseline`: each trial predicted by its condition's mean over training
  trials (a PSTH), which never looks at the trial itself;
- :func:`run_baselines`: all of them, same split, same seed.

Every baseline fits on ``train`` trials only (held-out neurons of ``val`` and ``test`` trials, and
their forward bins, are never read), chooses its hyper-parameters on ``val`` trials by the
held-out neurons' Poisson log-likelihood, and returns rates in spikes per bin for every trial.
:func:`fit_poisson_glm` is the GLM they share: scikit-learn's ``PoissonRegressor`` objective,
fitted for all output neurons at once.

Linear algebra runs on one BLAS thread: at MC_Maze's size on two shared cores, a GLM fit took
3.0 s on one thread and 7.2 s on two, a ridge path 0.14 s against 1.6 s (the products are thin,
and idle threads spin against the other work on the machine).

Shapes: ``(trials, time, neurons)``; times in seconds; counts and rates in spikes per bin.

The package holds, by concept:

- :mod:`~lifrnn_core.baselines.common`: :class:`BaselinePrediction`, the shared grids
  (:data:`KERNEL_WIDTHS`, :data:`ALPHAS`, :data:`RATE_FLOOR`) and the split, smoothing and
  selection helpers;
- :mod:`~lifrnn_core.baselines.glm`: :class:`PoissonGLM`, :func:`fit_poisson_glm` and
  :func:`poisson_log_likelihood`;
- :mod:`~lifrnn_core.baselines.smoothing`: :func:`smoothing_baseline` (and :data:`LOG_OFFSET`);
- :mod:`~lifrnn_core.baselines.gpfa`: :class:`GPFAFit`, :func:`fit_gpfa`, :func:`gpfa_baseline`
  (and :data:`GPFA_LATENT_DIMS`);
- :mod:`~lifrnn_core.baselines.ridge`: :func:`ridge_baseline`, :func:`ridge_path` (and
  :data:`RIDGE_ALPHAS`);
- :mod:`~lifrnn_core.baselines.condition_mean`: :func:`condition_mean_baseline` (and
  :data:`CONDITION_KERNEL_WIDTHS`);
- :mod:`~lifrnn_core.baselines.run`: :func:`run_baselines`.

Everything public is imported from here (``from lifrnn_core.baselines import run_baselines``).

May import: numpy, scipy, elephant (GPFA, imported when used), :mod:`lifrnn_core.recordings`,
:mod:`lifrnn_core.spike_trials`, :mod:`lifrnn_core.threads`; no web, database, ``lifrnn``,
``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.baselines.common import ALPHAS, KERNEL_WIDTHS, RATE_FLOOR, BaselinePrediction
from lifrnn_core.baselines.condition_mean import CONDITION_KERNEL_WIDTHS, condition_mean_baseline
from lifrnn_core.baselines.glm import PoissonGLM, fit_poisson_glm, poisson_log_likelihood
from lifrnn_core.baselines.gpfa import GPFA_LATENT_DIMS, GPFAFit, fit_gpfa, gpfa_baseline
from lifrnn_core.baselines.ridge import RIDGE_ALPHAS, ridge_baseline, ridge_path
from lifrnn_core.baselines.run import run_baselines
from lifrnn_core.baselines.smoothing import LOG_OFFSET, smoothing_baseline

__all__ = [
    "ALPHAS",
    "CONDITION_KERNEL_WIDTHS",
    "GPFA_LATENT_DIMS",
    "KERNEL_WIDTHS",
    "LOG_OFFSET",
    "RATE_FLOOR",
    "RIDGE_ALPHAS",
    "BaselinePrediction",
    "GPFAFit",
    "PoissonGLM",
    "condition_mean_baseline",
    "fit_gpfa",
    "fit_poisson_glm",
    "gpfa_baseline",
    "poisson_log_likelihood",
    "ridge_baseline",
    "ridge_path",
    "run_baselines",
    "smoothing_baseline",
]
