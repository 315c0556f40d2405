"""Settings of a Poisson fit to spike trials (:class:`SpikeFitConfig`), the condition fit's
progress callback, and the rule that ends the fits' L-BFGS runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lifrnn_core.dynamics import GainName, Integrator
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.euler import EULER_STEP, HEUN_STEP, euler_step
from lifrnn_core.lbfgs import StopRules

SpikeFitCallback = Callable[[int, float], None]
"""Called after every L-BFGS iteration of the condition fit with (iteration, cost); may raise to
cancel."""

_TOLERANCE_RULES = ("relative_tolerance", "cost_tolerance")

_FIRST_ITERATIONS = 3
"""Iterations before a relative change can end a fit: L-BFGS's first step is a gradient step
scaled by 1 / |gradient|_1, whose small effect says nothing about convergence."""


def _stop_rules(relative_tolerance: float) -> StopRules:
    """:class:`StopRules` of the spike fits: a relative change ends nothing before
    :data:`_FIRST_ITERATIONS` iterations."""
    return StopRules(relative_tolerance, relative_from=_FIRST_ITERATIONS)


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
