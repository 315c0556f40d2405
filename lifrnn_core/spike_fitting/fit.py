"""The whole fit (:func:`fit_spikes`): the condition fit over the grid, the prior width and
readout refits on training trials, then every trial inferred from its held-in neurons and every
neuron predicted."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.data_fitting import ridge_map
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.fitting import initial_state_basis
from lifrnn_core.spike_fitting.conditions import (
    _all_neurons,
    _fit_conditions,
    _Parameters,
    _Scales,
    _SplitCounts,
    _warm_start,
)
from lifrnn_core.spike_fitting.config import SpikeFitCallback, SpikeFitConfig
from lifrnn_core.spike_fitting.poisson import PoissonReadout, _DivergedError, _predict, _Simulator
from lifrnn_core.spike_fitting.results import SpikeFit
from lifrnn_core.spike_fitting.single_trials import (
    _choose_prior_width,
    _refit_readout,
    _TrainingTrials,
    _variance_explained,
    infer_initial_states,
)
from lifrnn_core.spike_trials import SpikeTrials

logger = logging.getLogger(__name__)


def _check(trials: SpikeTrials, W: Tensor, h: Tensor, x_sp: Tensor, n_excitatory: int) -> None:
    n = W.shape[0]
    if W.dim() != 2 or W.shape[1] != n or h.shape != (n,) or x_sp.shape != (n,):
        raise InvalidNetworkError(
            f"W must be (n, n) and h, x_sp (n,); got {tuple(W.shape)}, {tuple(h.shape)}, "
            f"{tuple(x_sp.shape)}"
        )
    if not 0 < n_excitatory <= n:
        raise InvalidNetworkError(f"n_excitatory {n_excitatory} out of range for n={n}")
    if trials.heldin.ndim != 3 or trials.heldout.ndim != 3 or trials.heldout.shape[-1] < 1:
        raise InvalidNetworkError(
            "spike trials need (trials, time, neurons) held-in and held-out counts"
        )
    if trials.heldin.shape[1] < 2:
        raise InvalidNetworkError("spike trials need at least two bins in the window")
    for split in ("train", "val"):
        index = np.flatnonzero(trials.mask(split))
        if len(index) == 0:
            raise InvalidNetworkError(
                f"the fit needs {split} trials (train to fit, val to choose the regularisation)"
            )
        for part in (trials.heldin, trials.heldout, trials.heldin_forward, trials.heldout_forward):
            counts = np.asarray(part[index], dtype=np.float64)
            if not np.isfinite(counts).all() or (counts < 0).any():
                raise InvalidNetworkError(f"the {split} trials' counts must be finite and >= 0")


def fit_spikes(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    trials: SpikeTrials,
    *,
    n_excitatory: int,
    config: SpikeFitConfig,
    generator: torch.Generator,
    x_star: Tensor | None = None,
    callback: SpikeFitCallback | None = None,
) -> SpikeFit:
    """Fit x* per condition and a Poisson readout to spike trials, then infer every trial.

    1. Condition fit: x* and (C, b) on the train trials, per grid point of (readout decay, x*
       prior), early-stopped and chosen on the val trials' likelihood (all neurons).
    2. Single trials: the prior width ``s`` is chosen on training trials (infer from held-in,
       score held-out); ``config.single_trial_rounds`` times, the readout is then refitted on
       those training trials' inferred trajectories and ``s`` chosen again.
    3. Every trial's initial state is inferred from its held-in counts, and every neuron is
       predicted in the window and the forward bins.

    Held-out neurons are read on train and val trials only, never on test trials (whose
    held-out counts may be missing), and inference reads held-in neurons only.

    Args:
        W: (n, n) weights, columns presynaptic; float32 or float64 (the fit's dtype and device).
        h: (n,) background input (``x_sp`` is a fixed point of W with it).
        x_sp: (n,) spontaneous state: the x* prior's centre.
        trials: the binned trials; their bin width is the fit's sampling interval.
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        config: settings (:class:`SpikeFitConfig`).
        generator: randomness of the first guess of x* and of the training trials choosing ``s``.
        x_star: optional (K, n) first guess of x* (kept when ``config.fit_x_star`` is False),
            rows in the order of ``numpy.unique(trials.condition)``.
        callback: called with (iteration, penalised cost) after every condition-fit iteration,
            counted over the whole grid.

    Raises:
        InvalidNetworkError: shapes that do not fit, missing train or val trials, bad counts.
        DivergenceError: when the activity becomes non-finite or exceeds the limit.
    """
    _check(trials, W, h, x_sp, n_excitatory)
    bin_width = float(trials.bin_width)
    simulator = _Simulator(W, h, n_excitatory, config, bin_width)
    conditions, codes = np.unique(np.asarray(trials.condition), return_inverse=True)
    n_conditions, n = len(conditions), W.shape[0]
    n_time, n_heldin = trials.heldin.shape[1], trials.heldin.shape[2]
    bins = n_time + trials.heldin_forward.shape[1]
    train_mask, test_mask = trials.mask("train"), trials.mask("test")
    train = _SplitCounts.of(trials, train_mask, codes, n_conditions, W)
    val = _SplitCounts.of(trials, trials.mask("val"), codes, n_conditions, W)
    n_neurons = train.sums.shape[-1]

    _, basis = initial_state_basis(W, x_sp, config.gain, config.n_modes)
    in_train = torch.as_tensor(train.trials.reshape(-1) > 0, device=W.device)
    if x_star is None:
        x_star = _warm_start(
            W, h, x_sp, train, in_train, n_excitatory, config, bin_width, generator
        )
    elif tuple(x_star.shape) != (n_conditions, n):
        raise InvalidNetworkError(
            f"x_star must be (conditions, n) = ({n_conditions}, {n}), got {tuple(x_star.shape)}"
        )
    x_star = x_star.detach().to(W)
    # Conditions without training trials get no pull from the data: they start (and stay) at x_sp.
    theta0 = torch.where(in_train[:, None], (x_star - x_sp) @ basis, 0.0) / config.state_radius

    # First guess of the readout: ridge from the first guess's rates to the training PSTHs.
    try:
        with torch.no_grad():
            network_rates = simulator.rates(x_star, bins)
    except _DivergedError:
        raise DivergenceError("diverged at the first guess", iteration=0) from None
    centre = network_rates[in_train].mean(dim=(0, 1))
    network_scale = float((network_rates[in_train] - centre).pow(2).mean().sqrt())
    psth = train.sums / train.trials.clamp_min(1.0) / bin_width
    linear, _ = ridge_map(network_rates[in_train], psth[in_train], 1e-2)
    rate_scale = max(float(psth[in_train].mean()), 1e-3)
    scales = _Scales(
        radius=config.state_radius,
        readout=rate_scale / (max(network_scale, 1e-6) * math.sqrt(n_excitatory)),
        offset=rate_scale,
        centre=centre,
    )
    parameters = _Parameters(
        x_sp,
        basis,
        None if config.fit_x_star else x_star,
        n_conditions,
        n_neurons,
        n_excitatory,
        scales,
        int(train_mask.sum()),
    )
    start = parameters.pack(theta0, PoissonReadout(linear.D.detach(), linear.b.detach()))
    # The costs are deviances relative to the null model's (each neuron's mean training rate).
    means = train.sums.sum(dim=(0, 1)) / (float(train.trials.sum()) * bins)
    null = means.clamp_min(1e-12).expand_as(train.sums)
    null_deviance = float(train.deviance(null, null.log())) + 1e-12
    chosen, chosen_index, grid = _fit_conditions(
        simulator, parameters, start, train, val, null_deviance, bins, config, callback
    )
    with torch.no_grad():
        _, fitted_x_star, readout = parameters.unpack(chosen.flat)
        fitted_x_star, readout = fitted_x_star.detach(), readout.detach()
        condition_rates = _predict(simulator, fitted_x_star, readout, bins, config.trial_batch)

    # The prior width (and the readout, refitted on single trials), on training trials only.
    train_index = np.flatnonzero(train_mask)
    draw = torch.randperm(len(train_index), generator=generator)[: config.prior_trials]
    sampled = np.sort(train_index[draw.numpy()])
    sample = _TrainingTrials(
        centres=fitted_x_star[torch.as_tensor(codes[sampled], device=W.device)],
        heldin=torch.as_tensor(trials.heldin[sampled], dtype=W.dtype, device=W.device),
        counts=torch.as_tensor(_all_neurons(trials, sampled), dtype=W.dtype, device=W.device),
    )
    refits: list[str] = []
    iterations = 0
    for _ in range(config.single_trial_rounds + 1):
        prior_width, width_scores, sample_states, taken = _choose_prior_width(
            W, h, sample, readout, n_heldin, n_excitatory, simulator, config, basis
        )
        iterations += taken
        if len(refits) == config.single_trial_rounds:
            break
        readout, stop_reason = _refit_readout(
            simulator,
            sample_states,
            sample.counts,
            readout,
            parameters,
            chosen.point.readout_decay,
            null_deviance * len(sampled) / len(train_index),
            config,
        )
        refits.append(stop_reason)
    logger.info("single-trial prior width %.4g (co-smoothing on training trials)", prior_width)

    # Every trial's initial state from its held-in counts, then every neuron predicted.
    inferred = infer_initial_states(
        W,
        h,
        fitted_x_star[torch.as_tensor(codes, device=W.device)],
        trials.heldin,  # converted a batch at a time: ~0.2 GB at MC_Maze's size
        readout.rows(slice(0, n_heldin)),
        n_excitatory=n_excitatory,
        prior_width=prior_width,
        bin_width=bin_width,
        config=config,
        basis=basis,
    )
    predicted = _predict(simulator, inferred.states, readout, bins, config.trial_batch)
    if refits:
        condition_rates = _predict(simulator, fitted_x_star, readout, bins, config.trial_batch)

    known = test_mask & (train.trials.reshape(-1) > 0).cpu().numpy()[codes]
    scored = np.flatnonzero(known)
    train_psth = (train.sums / train.trials.clamp_min(1.0)).cpu().double().numpy()
    explained, explainable = _variance_explained(
        np.asarray(trials.heldin[scored], dtype=np.float64),
        train_psth[codes[scored], :n_time, :n_heldin],
        predicted[torch.as_tensor(scored, device=W.device), :n_time, :n_heldin]
        .cpu()
        .double()
        .numpy(),
        condition_rates[codes[scored], :n_time, :n_heldin].cpu().double().numpy(),
    )
    logger.info(
        "spike fit: decay %g, prior %g, width %.3g; test held-in trial variance explained %.4f "
        "of %.4f explainable",
        chosen.point.readout_decay,
        chosen.point.state_prior,
        prior_width,
        explained,
        explainable,
    )
    return SpikeFit(
        conditions=conditions,
        trial_condition=codes,
        x_star=fitted_x_star,
        readout=readout,
        n_heldin=n_heldin,
        prior_width=prior_width,
        grid=grid,
        chosen=chosen_index,
        prior_width_scores=width_scores,
        readout_refits=refits,
        initial_states=inferred.states,
        heldin_rates=predicted[:, :n_time, :n_heldin],
        heldout_rates=predicted[:, :n_time, n_heldin:],
        forward_rates=predicted[:, n_time:],
        condition_rates=condition_rates,
        inference_iterations=iterations + inferred.iterations,
        inference_converged=inferred.converged,
        trial_variance_explained=explained,
        trial_variance_explainable=explainable,
    )
