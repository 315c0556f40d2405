"""What the fits return: a grid point of the condition fit (:class:`GridPoint`), inferred
single-trial states (:class:`InferredStates`), the whole fit (:class:`SpikeFit`) and sampled
ground-truth trials (:class:`SampledTrials`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.spike_fitting.poisson import PoissonReadout
from lifrnn_core.spike_trials import SpikeTrials


@dataclass(frozen=True)
class GridPoint:
    """One regularisation setting of :func:`fit_spikes` and how it did.

    Attributes:
        readout_decay, state_prior: the setting.
        best_val_nll: best val negative log-likelihood of all neurons, nats per spike.
        best_iteration: the iteration (within this point's fit, 0: its first guess) that had it:
            the iterate kept.
        iterations: L-BFGS iterations taken.
        converged: whether the penalised cost met the tolerance.
        stop_reason: ``relative_tolerance``, ``stalled``, ``early_stopping`` or
            ``max_iterations``.
        history: the penalised cost after each iteration (index 0: the first guess).
        train_nll: Poisson NLL of the train trials (all neurons, window and forward bins,
            log y! included) under the condition predictions, per iteration, nats per spike.
        val_nll: the same for the val trials.
    """

    readout_decay: float
    state_prior: float
    best_val_nll: float
    best_iteration: int
    iterations: int
    converged: bool
    stop_reason: str
    history: list[float]
    train_nll: list[float]
    val_nll: list[float]


@dataclass(frozen=True)
class InferredStates:
    """Result of :func:`infer_initial_states`.

    Attributes:
        states: (trials, n) MAP initial states.
        iterations: L-BFGS iterations, summed over trial batches.
        converged: whether every batch met the tolerance.
    """

    states: Tensor
    iterations: int
    converged: bool


@dataclass
class SpikeFit:
    """A network fitted to spike trials by :func:`fit_spikes`, with its single-trial predictions.

    Neurons are ordered held-in first, then held-out (as in NLB's forward-prediction arrays).

    Attributes:
        conditions: (K,) condition labels; ``x_star`` row k belongs to ``conditions[k]``.
        trial_condition: (trials,) index of each trial's condition into ``conditions``.
        x_star: (K, n) fitted initial state of each condition.
        readout: the Poisson readout of every neuron, (neurons, n_excitatory) and (neurons,).
        n_heldin: neurons that are held-in (the first rows of the readout).
        prior_width: single-trial prior width ``s`` (RMS per unit, same units as x).
        grid: every regularisation setting tried, in the order tried, with its NLL curves.
        chosen: index into ``grid`` of the setting with the best val NLL, whose kept iterate
            gave ``x_star`` (and the first readout).
        prior_width_scores: (width, training trials' held-out NLL in nats per spike) per width,
            in the last round.
        readout_refits: stop reason of each single-trial refit of the readout.
        initial_states: (trials, n) each trial's initial state inferred from its held-in counts.
        heldin_rates: (trials, time, n_heldin) predicted counts per bin in the window.
        heldout_rates: (trials, time, n_heldout) predicted counts per bin (co-smoothing).
        forward_rates: (trials, n_forward, neurons) predicted counts per bin after the window.
        condition_rates: (K, time + n_forward, neurons) each condition's prediction from ``x*``,
            spikes per bin.
        inference_iterations: L-BFGS iterations of the single-trial inference, all batches.
        inference_converged: whether every inference batch met its tolerance.
        trial_variance_explained: on test trials, 1 - sum (e - d)^2 / sum e^2 with e the held-in
            counts minus the training PSTH of their condition and d the single-trial prediction
            minus the condition prediction (NaN without test trials).
        trial_variance_explainable: the ceiling of the same number: 1 - (Poisson variance, the
            PSTH's counts) / sum e^2, the share of e that is not spiking noise.
    """

    conditions: np.ndarray
    trial_condition: np.ndarray
    x_star: Tensor
    readout: PoissonReadout
    n_heldin: int
    prior_width: float
    grid: list[GridPoint]
    chosen: int
    prior_width_scores: list[tuple[float, float]]
    readout_refits: list[str]
    initial_states: Tensor
    heldin_rates: Tensor
    heldout_rates: Tensor
    forward_rates: Tensor
    condition_rates: Tensor
    inference_iterations: int
    inference_converged: bool
    trial_variance_explained: float
    trial_variance_explainable: float

    @property
    def fit(self) -> GridPoint:
        """The chosen regularisation setting's condition fit (curves, convergence)."""
        return self.grid[self.chosen]

    @property
    def readout_decay(self) -> float:
        """The readout weight decay chosen on the val trials."""
        return self.fit.readout_decay

    @property
    def state_prior(self) -> float:
        """The x* prior strength chosen on the val trials."""
        return self.fit.state_prior

    @property
    def converged(self) -> bool:
        """Whether the chosen condition fit met its tolerance (not early stopping, not the
        iteration limit)."""
        return self.fit.converged

    def condition_prediction(self) -> tuple[Tensor, Tensor, Tensor]:
        """Each trial's condition prediction (its x*, no single-trial inference), in the layout
        of (``heldin_rates``, ``heldout_rates``, ``forward_rates``), spikes per bin."""
        index = torch.as_tensor(self.trial_condition, device=self.condition_rates.device).long()
        per_trial = self.condition_rates[index]
        n_time = self.heldin_rates.shape[1]
        window = per_trial[:, :n_time]
        return (
            window[..., : self.n_heldin],
            window[..., self.n_heldin :],
            per_trial[:, n_time:],
        )


@dataclass(frozen=True)
class SampledTrials:
    """Spike trials drawn from the observation model by :func:`sample_spike_trials`.

    Attributes:
        trials: the counts, split and labels.
        rates: (trials, time + n_forward, neurons) the true expected counts per bin, held-in
            neurons first.
        initial_states: (trials, n) each trial's true initial state.
    """

    trials: SpikeTrials
    rates: np.ndarray
    initial_states: np.ndarray
