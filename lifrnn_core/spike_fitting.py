"""Fitting a network to single-trial spike counts with a Poisson observation model, and inferring
each trial's initial state from its held-in neurons (docs/science.md §8, "A Poisson
observation model and single trials").

The counts ``y`` of neuron ``j`` in bin ``t`` of a trial of condition ``c`` are Poisson with mean

    lambda_tj = softplus(c_j . r_E(x(t)) + b_j) * bin_width      (spikes per bin)

    tau dx/dt = -x + W r(x) + h,    x(0) = x*_c (condition fit) or x0_i (single trial i)

with ``x(t)`` sampled at the start of each bin (time index 0 is the window's first bin) and
integrated with Heun's second-order method (:func:`lifrnn_core.dynamics.simulate`) at steps of
at most 2.5 ms inside the data's bins (:meth:`SpikeFitConfig.step`): with forward Euler the
fitted scores moved by ~5 % when the step was halved; with Heun they hold (docs/science.md).
The first guess of x* (a Gaussian fit to the PSTHs) is still integrated with Euler.

Softplus, not exp:
above a few spikes/s it is linear, so the readout is the Gaussian fit's linear map of the
excitatory rates on the Poisson scale, and a large readout weight cannot make the rate (and the
gradient) explode exponentially; below, it decays like exp, keeping every rate positive.

- :func:`fit_spikes` fits one initial state ``x*_c`` per condition and the readout ``(C, b)`` of
  every neuron (held-in and held-out) jointly by L-BFGS on the Poisson negative log-likelihood of
  the ``train`` trials' counts in the window and the forward bins. A condition's trials share
  ``x*_c``, so the likelihood only needs each condition's summed counts (one simulation per
  condition, not per trial). The regularisation (readout weight decay, a Gaussian prior pulling
  ``x*`` toward ``x_sp``, early stopping) is chosen on the ``val`` trials: every grid point's fit
  keeps the iterate with the best val likelihood of all neurons under its condition predictions,
  and the grid point with the best of those wins.
- :func:`infer_initial_states` finds each trial's MAP initial state from its held-in counts only,
  ``x0 = argmin NLL(held-in) + ||x0 - x*_c||^2 / (2 s^2)`` (isotropic prior width ``s``), batched
  over trials. ``s`` is chosen on training trials by co-smoothing: infer from their held-in
  neurons, score their held-out neurons' likelihood, over a grid of widths (0 = the condition
  mean). The condition fit sees the readout only along the directions in which the conditions'
  trajectories differ; ``single_trial_rounds`` times, the readout is refitted on those training
  trials' inferred single-trial trajectories and ``s`` chosen again.
- The fraction of the held-in neurons' trial-to-trial variance (test trials, around the training
  PSTH) that the inferred initial states explain is reported beside its Poisson ceiling: the
  preparatory-state hypothesis (Kao et al. 2021), measured.
- Every likelihood is summed in float64 (its terms in the fit's dtype): in float32 a sum over
  millions of bins cannot resolve an L-BFGS step's change. "Converged" means the relative
  tolerance was met; early stopping, a stall and the iteration limit are named as such.

Shapes: ``(trials, time, neurons)``; times in seconds; rates in spikes per second inside the
readout and spikes per bin in results; potentials ``(batch, n)``. Every tensor takes its dtype
(float32 or float64) and device from ``W``.

May import: numpy, torch, :mod:`lifrnn_core.data_fitting`, :mod:`lifrnn_core.dynamics`,
:mod:`lifrnn_core.errors`, :mod:`lifrnn_core.euler`, :mod:`lifrnn_core.fitting`,
:mod:`lifrnn_core.lbfgs`, :mod:`lifrnn_core.recordings`, :mod:`lifrnn_core.spike_trials`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import softplus

from lifrnn_core.data_fitting import DataFitConfig, fit_to_data, ridge_map
from lifrnn_core.dynamics import GainName, Integrator, gain_function, simulate
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.euler import EULER_STEP, HEUN_STEP, euler_step
from lifrnn_core.fitting import initial_state_basis, random_initial_states
from lifrnn_core.lbfgs import RememberingClosure, StopRules
from lifrnn_core.recordings import gaussian_smooth
from lifrnn_core.spike_trials import SpikeTrials

__all__ = [
    "GridPoint",
    "InferredStates",
    "PoissonReadout",
    "SampledTrials",
    "SpikeFit",
    "SpikeFitCallback",
    "SpikeFitConfig",
    "fit_spikes",
    "infer_initial_states",
    "poisson_rates",
    "sample_spike_trials",
]

logger = logging.getLogger(__name__)

SpikeFitCallback = Callable[[int, float], None]
"""Called after every L-BFGS iteration of the condition fit with (iteration, cost); may raise to
cancel."""

_TOLERANCE_RULES = ("relative_tolerance", "cost_tolerance")

_FIRST_ITERATIONS = 3
"""Iterations before a relative change can end a fit: L-BFGS's first step is a gradient step
scaled by 1 / |gradient|_1, whose small effect says nothing about convergence."""


def _stop_rule(
    rules: StopRules,
    optimiser: torch.optim.Optimizer,
    moved: bool,
    previous: float,
    cost: float,
    iteration: int,
) -> str | None:
    """:meth:`StopRules.after`, except that a relative change ends nothing before
    :data:`_FIRST_ITERATIONS` iterations."""
    rule = rules.after(optimiser, moved, previous, cost)
    if rule == "relative_tolerance" and iteration < _FIRST_ITERATIONS:
        return None
    return rule


@dataclass(frozen=True)
class SpikeFitConfig:
    """Settings of a Poisson fit to spike trials.

    Attributes:
        tau: time constant of the network, seconds.
        integration_dt: integration step, seconds; it divides the bin width (None: the
            largest step that does, of at most 2.5 ms with Heun and 2 ms with Euler,
            :meth:`step`).
        gain: ``"relu"`` or ``"tanh_shifted"``.
        integrator: ``"heun"`` (second order: the scores hold when the step is halved) or
            ``"euler"`` (:func:`lifrnn_core.dynamics.simulate`).
        state_radius: scale of ``x* - x_sp`` (RMS per unit): the first guess's distance, the unit
            of the x* prior and of the prior widths.
        n_modes: observability-Gramian eigenvectors spanning ``x* - x_sp`` and the single-trial
            deviations (None: all n).
        fit_x_star: False keeps the given ``x_star`` fixed and fits the readout only.
        warm_start_iterations: L-BFGS iterations of the Gaussian fit
            (:func:`lifrnn_core.data_fitting.fit_to_data`) to the training PSTHs that gives the
            first guess of x* (0: a random first guess, :func:`random_initial_states`).
        warm_start_smoothing: sd of the Gaussian smoothing those PSTHs, seconds.
        readout_decays: grid of readout weight decays: ``decay * mean(C~^2) / trials`` is added
            to the cost, ``C~ = C r_scale sqrt(n_e) / nu`` the readout in units where a weight
            of 1 maps the network's typical rate ``r_scale`` to the data's mean rate ``nu``, and
            ``trials`` the training trials.
        state_priors: grid of x* prior strengths: ``prior * ||X* - x_sp||_F^2 / (K n
            state_radius^2) / trials`` is added to the cost. The cost itself is the fraction of
            the null model's deviance left unexplained, so both are dimensionless, and
            dividing them by the trials makes them priors of fixed strength: one unit weighs
            as much as one trial's null deviance, and more trials outweigh them.
        max_iterations: L-BFGS iterations of each grid point's condition fit, at most.
        relative_tolerance: a fit converges when its penalised cost changes by at most this.
        patience: early stopping: a grid point's fit stops when its val likelihood has not
            improved for this many iterations, and keeps its best iterate.
        prior_widths: grid of single-trial prior widths ``s`` in units of ``state_radius``
            (0: every trial starts at its condition's x*, the condition-mean prediction).
        prior_trials: training trials (drawn at random) on which ``s`` is chosen and the
            readout refitted, at most.
        single_trial_rounds: times the readout is refitted on those training trials' inferred
            trajectories (and ``s`` chosen again) after the condition fit (0: never).
        inference_iterations: L-BFGS iterations of each batch's single-trial inference, at most.
        inference_tolerance: relative change of the MAP cost at which inference converges.
        refit_tolerance: relative change at which a single-trial refit of the readout converges
            (its cost is dominated by spiking noise, so its relative changes are small).
        trial_batch: trials simulated together in inference and prediction (memory bound).
        divergence_limit: activity beyond this (max |x|) counts as diverged.
    """

    tau: float = 0.15
    integration_dt: float | None = None
    gain: GainName = "relu"
    integrator: Integrator = "heun"
    state_radius: float = 0.2
    n_modes: int | None = None
    fit_x_star: bool = True
    warm_start_iterations: int = 60
    warm_start_smoothing: float = 0.02
    single_trial_rounds: int = 1
    readout_decays: tuple[float, ...] = (1.0, 10.0, 100.0)
    state_priors: tuple[float, ...] = (1.0, 10.0)
    max_iterations: int = 100
    relative_tolerance: float = 1e-5
    patience: int = 10
    prior_widths: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    prior_trials: int = 256
    inference_iterations: int = 50
    inference_tolerance: float = 1e-6
    refit_tolerance: float = 1e-7
    trial_batch: int = 256
    divergence_limit: float = 1e4

    def step(self, bin_width: float) -> float:
        """The integration step, seconds: ``integration_dt``, else the largest divisor of the
        bin not above :data:`~lifrnn_core.euler.HEUN_STEP` (Heun) or ``EULER_STEP`` (Euler)."""
        largest = HEUN_STEP if self.integrator == "heun" else EULER_STEP
        return euler_step(bin_width, self.integration_dt, largest)

    def __post_init__(self) -> None:
        if not (self.readout_decays and self.state_priors and self.prior_widths):
            raise InvalidNetworkError("the regularisation grids must not be empty")
        grids = (*self.readout_decays, *self.state_priors, *self.prior_widths)
        if any(not (math.isfinite(value) and value >= 0) for value in grids):
            raise InvalidNetworkError("decays, priors and prior widths must be finite and >= 0")
        if self.max_iterations < 1 or self.inference_iterations < 1 or self.patience < 1:
            raise InvalidNetworkError("iteration limits and patience must be >= 1")
        if self.trial_batch < 1 or self.prior_trials < 1:
            raise InvalidNetworkError("trial_batch and prior_trials must be >= 1")
        if self.warm_start_iterations < 0 or self.single_trial_rounds < 0:
            raise InvalidNetworkError("warm_start_iterations and single_trial_rounds must be >= 0")
        if not self.state_radius > 0:
            raise InvalidNetworkError("state_radius must be > 0")


@dataclass
class PoissonReadout:
    """``rate = softplus(r_E C^T + b)`` in spikes per second, from excitatory rates ``r_E``.

    Attributes:
        C: (neurons, n_excitatory) weights.
        b: (neurons,) offsets, spikes per second before the softplus.
    """

    C: Tensor
    b: Tensor

    def __call__(self, rates: Tensor) -> Tensor:
        """(..., n_excitatory) network rates -> (..., neurons) firing rates, spikes/s."""
        return softplus(self.drive(rates))

    def drive(self, rates: Tensor) -> Tensor:
        """(..., n_excitatory) -> (..., neurons): the softplus's argument, spikes/s."""
        return rates @ self.C.T + self.b

    def rows(self, index: slice | Sequence[int] | Tensor) -> PoissonReadout:
        """The readout of the neurons in ``index`` only."""
        return PoissonReadout(self.C[index], self.b[index])

    def detach(self) -> PoissonReadout:
        """The same readout, out of the autograd graph."""
        return PoissonReadout(self.C.detach(), self.b.detach())


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


# --- the observation model -----------------------------------------------------------------------


class _Simulator:
    """Simulates the network from initial states and reads the excitatory rates at bin starts."""

    def __init__(
        self, W: Tensor, h: Tensor, n_excitatory: int, config: SpikeFitConfig, bin_width: float
    ) -> None:
        self.W, self.h, self.n_e, self.config = W, h, n_excitatory, config
        self.bin_width = bin_width
        step = config.step(bin_width)
        self.substeps = round(bin_width / step)
        self.step = bin_width / self.substeps
        self.gain = gain_function(config.gain)

    def states(self, x0: Tensor, bins: int) -> Tensor:
        """(batch, bins, n) potentials at the start of each bin from x0 (batch, n)."""
        return simulate(
            self.W,
            x0,
            tau=self.config.tau,
            dt=self.step,
            steps=(bins - 1) * self.substeps,
            h=self.h,
            gain=self.config.gain,
            record_every=self.substeps,
            method=self.config.integrator,
        )

    def rates(self, x0: Tensor, bins: int) -> Tensor:
        """(batch, bins, n_excitatory) network rates; raises _DivergedError on blow-up."""
        states = self.states(x0, bins)
        peak = states.detach().abs().max()
        if not bool(torch.isfinite(peak)) or float(peak) > self.config.divergence_limit:
            raise _DivergedError
        return self.gain(states[..., : self.n_e])


class _DivergedError(Exception):
    """Internal signal: the simulation blew up."""


def _expected_and_log(
    readout: PoissonReadout, rates: Tensor, bin_width: float
) -> tuple[Tensor, Tensor]:
    """(expected counts per bin, their log) of the readout of ``rates``: one softplus, and its
    log exact where the softplus underflows (there log softplus(z) = z)."""
    drive = readout.drive(rates)
    rate = softplus(drive)
    log_rate = torch.where(drive > -20.0, torch.log(rate.clamp_min(1e-30)), drive)
    return rate * bin_width, log_rate + math.log(bin_width)


def poisson_rates(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    readout: PoissonReadout,
    *,
    n_excitatory: int,
    bin_width: float,
    bins: int,
    config: SpikeFitConfig | None = None,
) -> Tensor:
    """Expected spike counts per bin of the observation model, from initial states.

    Args:
        W: (n, n) weights, columns presynaptic; its dtype and device are the result's.
        h: (n,) background input.
        x0: (batch, n) initial potentials, the state at the start of the first bin.
        readout: Poisson readout of the neurons, (neurons, n_excitatory).
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        bin_width: seconds per bin.
        bins: number of bins.
        config: tau, gain and Euler step (None: the defaults).

    Returns:
        (batch, bins, neurons) expected counts, spikes per bin; bin t's rate is the readout of
        the state at its start.
    """
    simulator = _Simulator(W, h, n_excitatory, config or SpikeFitConfig(), bin_width)
    try:
        rates = simulator.rates(x0, bins)
    except _DivergedError:
        raise DivergenceError("the simulation diverged from the given initial states") from None
    return _expected_and_log(readout, rates, bin_width)[0]


# --- the data, per condition ---------------------------------------------------------------------


@dataclass(frozen=True)
class _SplitCounts:
    """Sufficient statistics of one split for condition-level predictions.

    ``sums`` (K, bins, neurons) summed counts, ``trials`` (K, 1, 1) trials per condition,
    ``saturated`` (K, bins, neurons) the per-entry constant that makes the NLL a deviance,
    ``nll_offset`` what turns the deviance back into the full NLL (log y! included), ``spikes``.
    """

    sums: Tensor
    trials: Tensor
    saturated: Tensor
    nll_offset: float
    spikes: float

    @classmethod
    def of(
        cls,
        trials: SpikeTrials,
        mask: np.ndarray,
        codes: np.ndarray,
        n_conditions: int,
        like: Tensor,
    ) -> _SplitCounts:
        """The statistics of the trials in ``mask`` (codes: every trial's condition index),
        gathered one condition at a time to keep memory at one condition's counts."""
        bins = trials.heldin.shape[1] + trials.heldin_forward.shape[1]
        n_neurons = trials.heldin.shape[2] + trials.heldout.shape[2]
        sums = np.zeros((n_conditions, bins, n_neurons))
        counts_per_condition = np.zeros((n_conditions, 1, 1))
        log_factorials = 0.0
        for condition in range(n_conditions):
            index = np.flatnonzero(mask & (codes == condition))
            if len(index) == 0:
                continue
            counts = _all_neurons(trials, index)
            sums[condition] = counts.sum(axis=0)
            counts_per_condition[condition] = len(index)
            log_factorials += float(torch.lgamma(torch.from_numpy(counts + 1.0)).sum())
        means = np.divide(
            sums, counts_per_condition, out=np.ones_like(sums), where=counts_per_condition > 0
        )
        saturated = np.where(sums > 0, sums * np.log(np.where(sums > 0, means, 1.0)), 0.0) - sums
        return cls(
            sums=torch.from_numpy(sums).to(like),
            trials=torch.from_numpy(counts_per_condition).to(like),
            saturated=torch.from_numpy(saturated).to(like),
            nll_offset=log_factorials - float(saturated.sum()),
            spikes=max(float(sums.sum()), 1.0),
        )

    def deviance(self, expected: Tensor, log_expected: Tensor) -> Tensor:
        """Half the Poisson deviance of condition predictions (K, bins, neurons) per bin: >= 0,
        0 when every prediction is its condition's mean count."""
        terms = self.trials * expected - self.sums * log_expected + self.saturated
        return terms.sum(dtype=torch.float64)

    def nll_per_spike(self, deviance: float) -> float:
        """The full negative log-likelihood, nats per spike, from :meth:`deviance`."""
        return (deviance + self.nll_offset) / self.spikes


def _all_neurons(trials: SpikeTrials, index: np.ndarray) -> np.ndarray:
    """(len(index), time + n_forward, neurons) counts of the trials in ``index``, held-in
    neurons first, float64."""
    window = np.concatenate([trials.heldin[index], trials.heldout[index]], axis=-1)
    forward = np.concatenate([trials.heldin_forward[index], trials.heldout_forward[index]], axis=-1)
    return np.concatenate([window, forward], axis=1).astype(np.float64)


# --- the condition fit ---------------------------------------------------------------------------


@dataclass
class _Scales:
    """Units of the fitted parameters, so that every unknown is of order 1 and the readout's
    unknowns are not correlated by the rates' mean: x* - x_sp in ``radius``; the readout as
    ``softplus(C~ (r - centre) unit + b~ offset)``: ``centre`` (n_e,) the excitatory units' mean
    rates, ``unit = nu / (r_scale sqrt(n_e))`` with ``r_scale`` their RMS deviation from it and
    ``nu = offset`` the data's mean rate (spikes/s)."""

    radius: float
    readout: float
    offset: float
    centre: Tensor

    def scaled(self, readout: PoissonReadout) -> tuple[Tensor, Tensor]:
        """(C~, b~) of a readout."""
        return readout.C / self.readout, (readout.b + readout.C @ self.centre) / self.offset

    def readout_of(self, C_scaled: Tensor, b_scaled: Tensor) -> PoissonReadout:
        """The readout (C, b) of (C~, b~)."""
        C = C_scaled * self.readout
        return PoissonReadout(C, b_scaled * self.offset - C @ self.centre)


class _Parameters:
    """The condition fit's unknowns packed into one flat tensor (for L-BFGS):
    ``theta~`` (K, modes) when x* is fitted, ``C~`` (neurons, n_e), ``b~`` (neurons,)."""

    def __init__(
        self,
        x_sp: Tensor,
        basis: Tensor,
        fixed_x_star: Tensor | None,
        n_conditions: int,
        n_neurons: int,
        n_excitatory: int,
        scales: _Scales,
        n_trials: int,
    ) -> None:
        self.x_sp, self.basis, self.fixed_x_star, self.scales = x_sp, basis, fixed_x_star, scales
        self.n_trials = n_trials
        modes = basis.shape[1]
        self.shapes = [(n_neurons, n_excitatory), (n_neurons,)]
        if fixed_x_star is None:
            self.shapes.insert(0, (n_conditions, modes))
        self.sizes = [math.prod(shape) for shape in self.shapes]

    def pack(self, theta: Tensor | None, readout: PoissonReadout) -> Tensor:
        """Flat tensor from theta (K, modes) in radius units and the readout."""
        parts = list(self.scales.scaled(readout))
        if self.fixed_x_star is None and theta is not None:
            parts.insert(0, theta)
        return torch.cat([part.reshape(-1) for part in parts])

    def unpack(self, flat: Tensor) -> tuple[Tensor | None, Tensor, PoissonReadout]:
        """(theta~ or None, x* (K, n), readout in natural units) from the flat tensor."""
        pieces = [
            piece.reshape(shape)
            for piece, shape in zip(torch.split(flat, self.sizes), self.shapes, strict=True)
        ]
        if self.fixed_x_star is None:
            theta = pieces.pop(0)
            x_star = self.x_sp + self.scales.radius * theta @ self.basis.T
        else:
            theta, x_star = None, self.fixed_x_star
        return theta, x_star, self.scales.readout_of(*pieces)

    def penalty(self, flat: Tensor, readout_decay: float, state_prior: float) -> Tensor:
        """``(decay mean(C~^2) + prior ||X* - x_sp||^2 / (K n radius^2)) / training trials``."""
        theta, _, _ = self.unpack(flat)
        C_scaled = flat[-self.sizes[-1] - self.sizes[-2] : -self.sizes[-1]]
        total = readout_decay * C_scaled.pow(2).mean()
        if theta is not None:
            total = total + state_prior * theta.pow(2).sum() / (theta.shape[0] * self.x_sp.numel())
        return total / self.n_trials


@dataclass
class _PointFit:
    flat: Tensor
    point: GridPoint


def _fit_point(
    simulator: _Simulator,
    parameters: _Parameters,
    start: Tensor,
    train: _SplitCounts,
    val: _SplitCounts,
    null_deviance: float,
    readout_decay: float,
    state_prior: float,
    bins: int,
    config: SpikeFitConfig,
    callback: SpikeFitCallback | None,
    iteration_offset: int,
) -> _PointFit:
    """L-BFGS on one grid point's penalised cost, keeping the iterate with the best val NLL."""
    flat = start.clone().requires_grad_(True)
    seen: deque[tuple[Tensor, float, float]] = deque(maxlen=16)

    def cost(with_grad: bool) -> tuple[Tensor, float]:
        _, x_star, readout = parameters.unpack(flat)
        expected, log_expected = _expected_and_log(
            readout, simulator.rates(x_star, bins), simulator.bin_width
        )
        deviance = train.deviance(expected, log_expected)
        total = deviance / null_deviance + parameters.penalty(flat, readout_decay, state_prior)
        if not bool(torch.isfinite(total)):
            raise _DivergedError
        with torch.no_grad():
            val_deviance = float(val.deviance(expected, log_expected))
        seen.append(
            (
                flat.detach().clone(),
                train.nll_per_spike(float(deviance.detach())),
                val.nll_per_spike(val_deviance),
            )
        )
        if with_grad:
            total.backward()  # type: ignore[no-untyped-call]
        return total, float(total.detach())

    def recorded() -> tuple[float, float]:
        point = flat.detach()
        for remembered, train_nll, val_nll in reversed(seen):
            if torch.equal(remembered, point):
                return train_nll, val_nll
        raise RuntimeError("the accepted point was never evaluated")  # pragma: no cover

    def forward() -> float:
        return cost(with_grad=False)[1]

    try:
        with torch.no_grad():
            first = forward()
    except _DivergedError:
        raise DivergenceError("diverged at the first guess", iteration=0) from None
    history = [first]
    train_nll, val_nll = map(list, zip(recorded(), strict=True))
    best_flat, best_val, best_iteration = flat.detach().clone(), val_nll[0], 0
    if callback is not None:
        callback(iteration_offset, first)

    optimiser = torch.optim.LBFGS(
        [flat],
        lr=1.0,
        max_iter=1,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    closure = RememberingClosure(flat, lambda: cost(with_grad=True))
    rules = StopRules(config.relative_tolerance)
    stop_reason = "max_iterations"
    for iteration in range(1, config.max_iterations + 1):
        try:
            moved, value = closure.step(optimiser, forward)
        except _DivergedError:
            raise DivergenceError(
                f"diverged at iteration {iteration}: activity became non-finite or exceeded "
                f"{config.divergence_limit:g}",
                iteration=iteration,
            ) from None
        previous = history[-1]
        history.append(value)
        train_now, val_now = recorded()
        train_nll.append(train_now)
        val_nll.append(val_now)
        if callback is not None:
            callback(iteration_offset + iteration, value)
        if val_now < best_val:
            best_flat, best_val, best_iteration = flat.detach().clone(), val_now, iteration
        rule = _stop_rule(rules, optimiser, moved, previous, value, iteration)
        if rule is not None:
            stop_reason = rule
            break
        if iteration - best_iteration >= config.patience:
            stop_reason = "early_stopping"
            break
    point = GridPoint(
        readout_decay=readout_decay,
        state_prior=state_prior,
        best_val_nll=best_val,
        best_iteration=best_iteration,
        iterations=len(history) - 1,
        converged=stop_reason in _TOLERANCE_RULES,
        stop_reason=stop_reason,
        history=history,
        train_nll=train_nll,
        val_nll=val_nll,
    )
    return _PointFit(best_flat, point)


# --- single trials -------------------------------------------------------------------------------


def _minimise(
    parameter: Tensor,
    cost: Callable[[bool], tuple[Tensor, float]],
    max_iterations: int,
    tolerance: float,
) -> tuple[int, str]:
    """L-BFGS on ``cost(with_grad)`` over ``parameter`` until a stop rule or the limit; returns
    (iterations, stop reason). ``cost`` raises _DivergedError on blow-up."""
    optimiser = torch.optim.LBFGS(
        [parameter],
        lr=1.0,
        max_iter=1,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    closure = RememberingClosure(parameter, lambda: cost(True))
    rules = StopRules(tolerance)
    with torch.no_grad():
        previous = cost(False)[1]
    for iteration in range(1, max_iterations + 1):
        moved, value = closure.step(optimiser, lambda: cost(False)[1])
        rule = _stop_rule(rules, optimiser, moved, previous, value, iteration)
        previous = value
        if rule is not None:
            return iteration, rule
    return max_iterations, "max_iterations"


def infer_initial_states(
    W: Tensor,
    h: Tensor,
    centres: Tensor,
    heldin_counts: Tensor,
    readout: PoissonReadout,
    *,
    n_excitatory: int,
    prior_width: float,
    bin_width: float,
    config: SpikeFitConfig | None = None,
    basis: Tensor | None = None,
    initial: Tensor | None = None,
) -> InferredStates:
    """Each trial's MAP initial state given its held-in counts (and nothing else).

    Minimises, for all trials of a batch at once (one L-BFGS per ``config.trial_batch`` trials;
    the trials' terms do not interact), ``sum_i NLL(heldin_counts_i | x0_i) + ||x0_i -
    centre_i||^2 / (2 s^2)`` with ``x0_i = centre_i + s u_i V^T``, in the whitened ``u``.

    Args:
        W: (n, n) weights; dtype and device of the result.
        h: (n,) background input.
        centres: (trials, n) prior means: each trial's condition x*.
        heldin_counts: (trials, time, n_heldin) counts of the held-in neurons in the window.
        readout: Poisson readout of the held-in neurons, (n_heldin, n_excitatory).
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        prior_width: isotropic prior sd ``s`` of x0 around its centre (units of x); 0 returns
            the centres.
        bin_width: seconds per bin.
        config: tau, gain, Euler step, iteration limit, tolerance, batch size (None: defaults).
        basis: (n, modes) orthonormal directions x0 - centre may take (None: all n).
        initial: (trials, n) first guess (None: the centres).

    Returns:
        the states (trials, n), L-BFGS iterations over all batches, and whether every batch met
        ``config.inference_tolerance``.
    """
    config = config or SpikeFitConfig()
    centres = centres.detach().to(W)
    if prior_width == 0 or centres.shape[0] == 0:
        return InferredStates(centres.clone(), 0, True)
    simulator = _Simulator(W, h, n_excitatory, config, bin_width)
    readout = readout.detach()
    counts = heldin_counts.to(W)
    bins = counts.shape[1]
    identity = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    directions = identity if basis is None else basis.to(W)
    states, iterations, converged = [], 0, True
    for start in range(0, centres.shape[0], config.trial_batch):
        batch = slice(start, start + config.trial_batch)
        centre, y = centres[batch], counts[batch]
        saturated = torch.xlogy(y, y) - y
        first = centre if initial is None else initial[batch].detach().to(W)
        u = ((first - centre) @ directions / prior_width).requires_grad_(True)

        def cost(
            with_grad: bool,
            u: Tensor = u,
            centre: Tensor = centre,
            y: Tensor = y,
            saturated: Tensor = saturated,
        ) -> tuple[Tensor, float]:
            x0 = centre + prior_width * u @ directions.T
            rates = simulator.rates(x0, bins)
            expected, log_expected = _expected_and_log(readout, rates, bin_width)
            deviance = (expected - y * log_expected + saturated).sum(dtype=torch.float64)
            total = (deviance + 0.5 * u.pow(2).sum(dtype=torch.float64)) / centre.shape[0]
            if not bool(torch.isfinite(total)):
                raise _DivergedError
            if with_grad:
                total.backward()  # type: ignore[no-untyped-call]
            return total, float(total.detach())

        try:
            taken, rule = _minimise(
                u, cost, config.inference_iterations, config.inference_tolerance
            )
        except _DivergedError:
            raise DivergenceError(
                "single-trial inference diverged: activity became non-finite or exceeded "
                f"{config.divergence_limit:g}"
            ) from None
        iterations += taken
        converged = converged and rule in _TOLERANCE_RULES
        states.append((centre + prior_width * u.detach() @ directions.T).detach())
    return InferredStates(torch.cat(states), iterations, converged)


def _predict(
    simulator: _Simulator, x0: Tensor, readout: PoissonReadout, bins: int, batch: int
) -> Tensor:
    """(trials, bins, neurons) expected counts from x0 (trials, n), in batches, no gradients."""
    pieces = [torch.zeros(0, bins, readout.b.shape[0], dtype=x0.dtype, device=x0.device)]
    with torch.no_grad():
        for start in range(0, x0.shape[0], batch):
            rates = simulator.rates(x0[start : start + batch], bins)
            pieces.append(_expected_and_log(readout, rates, simulator.bin_width)[0])
    return torch.cat(pieces)


def _poisson_nll(expected: Tensor, counts: Tensor) -> float:
    """Poisson NLL (with log y!) of ``counts`` under ``expected`` (same shape), nats per spike."""
    total = expected - torch.xlogy(counts, expected) + torch.lgamma(counts + 1.0)
    return float(total.sum(dtype=torch.float64)) / max(float(counts.sum()), 1.0)


@dataclass(frozen=True)
class _TrainingTrials:
    """The training trials on which the prior width is chosen and the readout refitted."""

    centres: Tensor
    heldin: Tensor
    counts: Tensor


def _choose_prior_width(
    W: Tensor,
    h: Tensor,
    sample: _TrainingTrials,
    readout: PoissonReadout,
    n_heldin: int,
    n_excitatory: int,
    simulator: _Simulator,
    config: SpikeFitConfig,
    basis: Tensor,
) -> tuple[float, list[tuple[float, float]], Tensor, int]:
    """The width whose held-in inference best predicts the held-out neurons of ``sample``:
    (width, (width, held-out NLL per spike) per width, the sample's states at that width,
    iterations). Widths are tried in increasing order, each starting from the last's states,
    until one scores worse than the one before."""
    n_time = sample.heldin.shape[1]
    heldout = sample.counts[:, :n_time, n_heldin:]
    scores: list[tuple[float, float]] = []
    best: tuple[float, float, Tensor] | None = None
    states, iterations = sample.centres, 0
    for relative in sorted(config.prior_widths):
        width = relative * config.state_radius
        inferred = infer_initial_states(
            W,
            h,
            sample.centres,
            sample.heldin,
            readout.rows(slice(0, n_heldin)),
            n_excitatory=n_excitatory,
            prior_width=width,
            bin_width=simulator.bin_width,
            config=config,
            basis=basis,
            initial=states,
        )
        states, iterations = inferred.states, iterations + inferred.iterations
        predicted = _predict(
            simulator, states, readout.rows(slice(n_heldin, None)), n_time, config.trial_batch
        )
        scores.append((width, _poisson_nll(predicted, heldout)))
        if best is not None and scores[-1][1] >= best[1]:
            break  # past the optimum: the held-out likelihood is unimodal in the width
        best = (width, scores[-1][1], states)
    assert best is not None  # the grid is not empty (SpikeFitConfig)
    return best[0], scores, best[2], iterations


def _refit_readout(
    simulator: _Simulator,
    states: Tensor,
    counts: Tensor,
    readout: PoissonReadout,
    parameters: _Parameters,
    readout_decay: float,
    null_deviance: float,
    config: SpikeFitConfig,
) -> tuple[PoissonReadout, str]:
    """The readout of every neuron refitted on single trials: Poisson deviance of ``counts``
    (trials, bins, neurons) given the trajectories from ``states`` (trials, n), over
    ``null_deviance`` (the condition fit's, per trial, times the trials here: the same scale as
    the condition fit's cost, whose gradient this one's equals when all of a condition's trials
    share x*), plus the decay penalty; returns (readout, stop reason). The condition fit only
    sees the directions in which the conditions' trajectories differ; single trials visit
    others."""
    bins = counts.shape[1]
    with torch.no_grad():
        rates = torch.cat(
            [
                simulator.rates(states[i : i + config.trial_batch], bins)
                for i in range(0, states.shape[0], config.trial_batch)
            ]
        )
    saturated = torch.xlogy(counts, counts) - counts
    scales = parameters.scales
    flat = torch.cat([part.reshape(-1) for part in scales.scaled(readout)])
    flat = flat.detach().clone().requires_grad_(True)
    n_weights = readout.C.numel()

    def cost(with_grad: bool) -> tuple[Tensor, float]:
        C_scaled, b_scaled = flat[:n_weights].reshape(readout.C.shape), flat[n_weights:]
        candidate = scales.readout_of(C_scaled, b_scaled)
        expected, log_expected = _expected_and_log(candidate, rates, simulator.bin_width)
        deviance = (expected - counts * log_expected + saturated).sum(dtype=torch.float64)
        penalty = readout_decay * C_scaled.pow(2).mean() / parameters.n_trials
        total = deviance / null_deviance + penalty
        if with_grad:
            total.backward()  # type: ignore[no-untyped-call]
        return total, float(total.detach())

    _, stop_reason = _minimise(flat, cost, config.max_iterations, config.refit_tolerance)
    fitted = flat.detach()
    refitted = scales.readout_of(fitted[:n_weights].reshape(readout.C.shape), fitted[n_weights:])
    return refitted, stop_reason


def _variance_explained(
    counts: np.ndarray, psth: np.ndarray, single: np.ndarray, condition: np.ndarray
) -> tuple[float, float]:
    """(explained, explainable) share of ``counts - psth``: see :class:`SpikeFit`."""
    residual = counts - psth
    total = float((residual**2).sum())
    if counts.size == 0 or total <= 0:
        return math.nan, math.nan
    explained = 1.0 - float(((residual - (single - condition)) ** 2).sum()) / total
    return explained, 1.0 - float(psth.sum()) / total


def _warm_start(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    train: _SplitCounts,
    in_train: Tensor,
    n_excitatory: int,
    config: SpikeFitConfig,
    bin_width: float,
    generator: torch.Generator,
) -> Tensor:
    """First guess of x* (K, n): the Gaussian fit of :mod:`lifrnn_core.data_fitting` to the
    training PSTHs (smoothed, spikes/s), or random states when ``warm_start_iterations`` is 0;
    conditions without training trials at ``x_sp``."""
    x_star = x_sp.expand(in_train.shape[0], -1).clone()
    if config.warm_start_iterations == 0:
        x_star[in_train] = random_initial_states(
            W, x_sp, int(in_train.sum()), generator, radius=config.state_radius, gain=config.gain
        )
        return x_star
    mean_counts = (train.sums / train.trials.clamp_min(1.0))[in_train]
    psth = gaussian_smooth(
        mean_counts.cpu().double().numpy() / bin_width, config.warm_start_smoothing, bin_width
    )
    gaussian = fit_to_data(
        W,
        h,
        x_sp,
        torch.from_numpy(psth).to(W),
        n_excitatory=n_excitatory,
        config=DataFitConfig(
            tau=config.tau,
            dt=bin_width,
            integration_dt=config.integration_dt,
            gain=config.gain,
            state_radius=config.state_radius,
            n_modes=config.n_modes,
            max_iterations=config.warm_start_iterations,
            divergence_limit=config.divergence_limit,
        ),
        generator=generator,
    )
    x_star[in_train] = gaussian.x_star
    return x_star


# --- the whole fit -------------------------------------------------------------------------------


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


def _fit_conditions(
    simulator: _Simulator,
    parameters: _Parameters,
    start: Tensor,
    train: _SplitCounts,
    val: _SplitCounts,
    null_deviance: float,
    bins: int,
    config: SpikeFitConfig,
    callback: SpikeFitCallback | None,
) -> tuple[_PointFit, int, list[GridPoint]]:
    """Every grid point's condition fit, strongest regularisation first, each starting from the
    previous point's kept iterate; returns the one with the best val NLL and the whole grid."""
    settings = sorted(
        itertools.product(config.readout_decays, config.state_priors),
        key=lambda setting: (-setting[0], -setting[1]),
    )
    fits: list[_PointFit] = []
    offset = 0
    for readout_decay, state_prior in settings:
        fit = _fit_point(
            simulator,
            parameters,
            start,
            train,
            val,
            null_deviance,
            readout_decay,
            state_prior,
            bins,
            config,
            callback,
            offset,
        )
        offset += fit.point.iterations + 1
        fits.append(fit)
        start = fit.flat
        logger.info(
            "spike fit, decay %g, prior %g: val NLL %.5f nats/spike (iteration %d of %d, %s)",
            readout_decay,
            state_prior,
            fit.point.best_val_nll,
            fit.point.best_iteration,
            fit.point.iterations,
            fit.point.stop_reason,
        )
    chosen = min(range(len(fits)), key=lambda index: fits[index].point.best_val_nll)
    return fits[chosen], chosen, [fit.point for fit in fits]


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
        torch.as_tensor(trials.heldin, dtype=W.dtype, device=W.device),
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


# --- ground truth --------------------------------------------------------------------------------


def sample_spike_trials(
    W: Tensor,
    h: Tensor,
    x_star: Tensor,
    readout: PoissonReadout,
    *,
    n_excitatory: int,
    n_heldin: int,
    trials_per_condition: int,
    trial_noise: float,
    generator: torch.Generator,
    bin_width: float = 0.005,
    window: tuple[float, float] = (-0.25, 0.45),
    forward: float = 0.2,
    split_fractions: tuple[float, float] = (0.6, 0.2),
    config: SpikeFitConfig | None = None,
) -> SampledTrials:
    """Spike trials drawn from the observation model: ground truth for fits and benchmarks.

    Trial i of condition c starts at ``x*_c + trial_noise * xi`` (xi ~ N(0, I), per unit); its
    counts are Poisson with the means of :func:`poisson_rates`. Within each condition the trials
    are split at random into train / val / test by ``split_fractions`` (train, val; the rest test).

    Args:
        W, h: the network, (n, n) and (n,).
        x_star: (K, n) the conditions' initial states; condition k is labelled ``c{k:02d}``.
        readout: Poisson readout of every neuron; the first ``n_heldin`` rows are held-in.
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        n_heldin: held-in neurons.
        trials_per_condition: trials drawn per condition.
        trial_noise: sd of each unit's initial-state noise (same units as x).
        generator: the noise, the spikes and the split (a CPU generator).
        bin_width: seconds per bin.
        window: (start, stop) seconds of the window around movement onset.
        forward: seconds predicted after the window.
        split_fractions: fractions of each condition's trials in train and in val.
        config: tau, gain and Euler step (None: the defaults).
    """
    config = config or SpikeFitConfig()
    n_conditions, n = x_star.shape
    n_time = round((window[1] - window[0]) / bin_width)
    n_forward = round(forward / bin_width)
    labels = np.repeat([f"c{k:02d}" for k in range(n_conditions)], trials_per_condition)
    noise = torch.randn(len(labels), n, generator=generator, dtype=torch.float64)
    centres = x_star.detach().repeat_interleave(trials_per_condition, dim=0)
    x0 = centres + trial_noise * noise.to(W)
    with torch.no_grad():
        rates = poisson_rates(
            W,
            h,
            x0,
            readout.detach(),
            n_excitatory=n_excitatory,
            bin_width=bin_width,
            bins=n_time + n_forward,
            config=config,
        )
    rates64 = rates.cpu().double()
    counts = torch.poisson(rates64, generator=generator).numpy()
    split = np.empty(len(labels), dtype=object)
    n_train = round(split_fractions[0] * trials_per_condition)
    n_val = round(split_fractions[1] * trials_per_condition)
    for k in range(n_conditions):
        order = torch.randperm(trials_per_condition, generator=generator).numpy()
        index = k * trials_per_condition + order
        split[index[:n_train]] = "train"
        split[index[n_train : n_train + n_val]] = "val"
        split[index[n_train + n_val :]] = "test"
    n_neurons = counts.shape[-1]
    spike_trials = SpikeTrials(
        heldin=counts[:, :n_time, :n_heldin],
        heldout=counts[:, :n_time, n_heldin:],
        heldin_forward=counts[:, n_time:, :n_heldin],
        heldout_forward=counts[:, n_time:, n_heldin:],
        behavior=None,
        condition=labels,
        split=split.astype(str),
        time=window[0] + bin_width * np.arange(n_time),
        bin_width=bin_width,
        heldin_units=np.arange(n_heldin),
        heldout_units=np.arange(n_heldin, n_neurons),
        trial_index=np.arange(len(labels)),
    )
    return SampledTrials(spike_trials, rates64.numpy(), x0.detach().cpu().double().numpy())
