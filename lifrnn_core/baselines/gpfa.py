"""The GPFA baseline (:func:`gpfa_baseline`): GPFA latents (Yu et al. 2009, ``elephant``'s
implementation, imported when used) of the held-in neurons, then Poisson GLMs to the held-out
neurons and, through the latents' Gaussian process continued past the window, to the forward
bins."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifrnn_core.baselines.common import (
    ALPHAS,
    BaselinePrediction,
    _flat,
    _select,
    _selection_subset,
    _split_indices,
)
from lifrnn_core.baselines.glm import _glm_path
from lifrnn_core.spike_trials import SpikeTrials
from lifrnn_core.threads import blas_threads

GPFA_LATENT_DIMS: tuple[int, ...] = (4, 8, 16, 32)
"""GPFA latent dimensions tried (NLB'21's GPFA on MC_Maze used 52)."""


def _gpfa_sequences(counts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Elephant's GPFA data structure from counts, as ``gpfa_util.get_seqs`` builds it.

    Args:
        counts: (trials, time, neurons) spike counts.
        keep: (neurons,) bool, the neurons GPFA models (those that spiked in training).

    Returns:
        Record array with ``T`` (bins) and ``y`` ((neurons, T) square-rooted counts) per trial:
        elephant bins ``neo.SpikeTrain`` objects into exactly this, so skipping the round trip
        through per-trial, per-neuron Python objects changes nothing but the time it takes.
    """
    sqrt_counts = np.sqrt(np.asarray(counts, dtype=np.float64)[:, :, keep]).transpose(0, 2, 1)
    seqs = np.empty(len(sqrt_counts), dtype=[("T", int), ("y", "O")])
    seqs["T"] = counts.shape[1]
    for k, trial in enumerate(sqrt_counts):
        seqs["y"][k] = np.ascontiguousarray(trial)
    return seqs


@dataclass(frozen=True)
class GPFAFit:
    """Elephant's estimated GPFA parameters and the neurons they cover.

    Attributes:
        params: elephant's parameter dict (``C``, ``d``, ``R``, ``gamma``, ``eps``, ...; GP
            times in bins).
        keep: (neurons,) bool, the neurons modelled (those that spiked in training).
        bin_width: seconds per bin.
    """

    params: dict[str, Any]
    keep: np.ndarray
    bin_width: float

    def latents(self, counts: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """(trials, time, x_dim) posterior-mean latents (not orthonormalised) from counts.

        Trials are inferred ``chunk`` at a time: elephant stacks a chunk's square-rooted
        counts several times over, and at NLB's sizes all trials at once would take gigabytes.
        """
        from elephant.gpfa import gpfa_core

        out: list[np.ndarray] = []
        with blas_threads(1):
            for first in range(0, len(counts), chunk):
                seqs, _ = gpfa_core.exact_inference_with_ll(
                    _gpfa_sequences(counts[first : first + chunk], self.keep),
                    self.params,
                    get_ll=False,
                )
                out.extend(latent.T for latent in seqs["latent_variable"])
        return np.stack(out)

    def extrapolate(self, latents: np.ndarray, n_forward: int) -> np.ndarray:
        """(trials, n_forward, x_dim) posterior means of the latents after the window.

        The future of each latent GP given the data is the GP's conditional mean given the
        window's latents, ``K_fw K_ww^-1 E[x_w | y]``: the spikes depend on the future only
        through the window's latents, so this is exact for the posterior mean.
        """
        n_time = latents.shape[1]
        window = np.arange(n_time, dtype=np.float64)
        future = np.arange(n_time, n_time + n_forward, dtype=np.float64)
        out = np.empty((latents.shape[0], n_forward, latents.shape[2]))
        for i, (gamma, eps) in enumerate(
            zip(self.params["gamma"], self.params["eps"], strict=True)
        ):
            k_ww = (1 - eps) * np.exp(-gamma / 2 * (window[:, None] - window[None, :]) ** 2)
            k_ww += eps * np.eye(n_time)
            k_fw = (1 - eps) * np.exp(-gamma / 2 * (future[:, None] - window[None, :]) ** 2)
            gain = np.linalg.solve(k_ww, k_fw.T).T
            out[:, :, i] = latents[:, :, i] @ gain.T
        return out


def fit_gpfa(
    counts: np.ndarray,
    bin_width: float,
    x_dim: int,
    *,
    em_max_iters: int = 50,
    tau_init: float = 0.1,
) -> GPFAFit:
    """Fit GPFA with ``elephant`` (``gpfa_core.fit``, what ``elephant.gpfa.GPFA.fit`` runs).

    Args:
        counts: (trials, time, neurons) training spike counts.
        bin_width: seconds per bin.
        x_dim: latent dimension.
        em_max_iters: most EM iterations (elephant's default is 500).
        tau_init: initial GP timescale, seconds.

    Returns:
        The fit; ``latents`` infers (trials, time, x_dim) posterior means from any counts.
    """
    from elephant.gpfa import gpfa_core

    keep = np.asarray(counts, dtype=np.float64).sum(axis=(0, 1)) > 0
    seqs = _gpfa_sequences(counts, keep)
    # elephant reports its progress with print(); keep it out of the caller's output. Its EM
    # works on 20-bin segments: small matrices, fastest on one BLAS thread (so is inference:
    # one (x_dim * time)^2 inverse, then products that threads barely speed up).
    with contextlib.redirect_stdout(io.StringIO()), blas_threads(1):
        params, _ = gpfa_core.fit(
            seqs_train=seqs,
            x_dim=x_dim,
            bin_width=bin_width * 1e3,
            em_max_iters=em_max_iters,
            tau_init=tau_init * 1e3,
        )
    return GPFAFit(params=params, keep=keep, bin_width=bin_width)


def gpfa_baseline(
    trials: SpikeTrials,
    *,
    latent_dims: Sequence[int] = GPFA_LATENT_DIMS,
    alphas: Sequence[float] = ALPHAS,
    em_max_iters: int = 50,
    max_em_trials: int = 200,
    max_selection_trials: int = 400,
    seed: int = 0,
) -> BaselinePrediction:
    """GPFA (Yu et al. 2009) on the held-in neurons, then Poisson GLMs to what is predicted.

    GPFA (``elephant``, square-rooted counts at the data's bin width) is fitted on the held-in
    neurons of train trials; each trial's latents are inferred from its own held-in spikes only.
    A Poisson GLM from latents to held-out counts gives co-smoothing rates. For forward
    prediction, each latent's Gaussian process is continued past the window
    (``K_fw K_ww^-1 x_w``) and a second Poisson GLM, from the continued latents to every
    neuron's counts, is fitted on the train trials' forward bins. Both GLMs'
    penalties are chosen on val trials, and so is the latent dimension, by the
    one-standard-error rule: the smallest dimension whose validation log-likelihood is within
    one standard error (over val trials) of the best. Beyond the true dimension the score is
    flat within noise, and the rule keeps the latent space as small as the data allow.
    GPFA's EM, whose cost grows with the trials and the dimension, runs on at most
    ``max_em_trials`` train trials (at NLB's sizes, tens of thousands of bins: ample for its
    ``C``, ``d``, ``R`` and timescales); the final GLMs use every train trial.

    Args:
        trials: the binned trials and their split.
        latent_dims: latent dimensions to try (each below the number of held-in neurons).
        alphas: GLM penalties to try.
        em_max_iters: most EM iterations per GPFA fit.
        max_em_trials: most train trials GPFA's EM runs on.
        max_selection_trials: most train (and val) trials used to choose hyper-parameters.
        seed: draws those trials when there are more.

    Returns:
        Held-out rates (trials, time, n_heldout) and forward rates
        (trials, n_forward, n_heldin + n_heldout), spikes per bin.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    n_heldin = trials.heldin.shape[2]
    dims = sorted({int(d) for d in latent_dims if 0 < int(d) < n_heldin})
    if not dims:
        raise ValueError(f"no latent dimension in {tuple(latent_dims)} is in 1..{n_heldin - 1}")
    rng = np.random.default_rng(seed)
    sel_train = _selection_subset(train, max_selection_trials, rng)
    sel_val = _selection_subset(val, max_selection_trials, rng)

    em_train = _selection_subset(sel_train, max_em_trials, rng)
    fits: dict[int, GPFAFit] = {}
    n_sel = sel_train.size

    def score(candidate: dict[str, float]) -> np.ndarray:
        x_dim = int(candidate["x_dim"])
        fits[x_dim] = fit_gpfa(
            trials.heldin[em_train], trials.bin_width, x_dim, em_max_iters=em_max_iters
        )
        # One inference call for both subsets: its cost is dominated by a per-length inverse.
        latents = fits[x_dim].latents(trials.heldin[np.concatenate([sel_train, sel_val])])
        _, _, value = _glm_path(
            _flat(latents[:n_sel]),
            _flat(trials.heldout[sel_train]),
            alphas,
            latents[n_sel:],
            trials.heldout[sel_val],
        )
        return value

    chosen, selection = _select([{"x_dim": float(d)} for d in dims], score, parsimonious=True)
    x_dim = int(chosen["x_dim"])
    gpfa = fits[x_dim]
    latents = gpfa.latents(trials.heldin)
    alpha, glm, _ = _glm_path(
        _flat(latents[train]),
        _flat(trials.heldout[train]),
        alphas,
        latents[val],
        trials.heldout[val],
    )
    rates = glm.predict(latents)
    hyperparameters = {"x_dim": float(x_dim), "alpha": alpha}

    forward_rates = None
    n_forward = trials.heldin_forward.shape[1]
    if n_forward > 0:
        features = gpfa.extrapolate(latents, n_forward)
        counts = np.concatenate([trials.heldin_forward, trials.heldout_forward], axis=2)
        forward_alpha, forward_glm, _ = _glm_path(
            _flat(features[train]), _flat(counts[train]), alphas, features[val], counts[val]
        )
        forward_rates = forward_glm.predict(features)
        hyperparameters["forward_alpha"] = forward_alpha
    return BaselinePrediction(
        rates=rates,
        forward_rates=forward_rates,
        hyperparameters=hyperparameters,
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )
