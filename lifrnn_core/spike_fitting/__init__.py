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

The package holds, by concept:

- :mod:`~lifrnn_core.spike_fitting.config`: :class:`SpikeFitConfig`, the progress callback's type
  and the rule that ends the fits' L-BFGS runs;
- :mod:`~lifrnn_core.spike_fitting.poisson`: the observation model (:class:`PoissonReadout`, the
  simulation, :func:`poisson_rates`) and its likelihood;
- :mod:`~lifrnn_core.spike_fitting.conditions`: the condition-level fit over the regularisation
  grid and its first guess;
- :mod:`~lifrnn_core.spike_fitting.single_trials`: :func:`infer_initial_states`, the prior width,
  the single-trial readout refit and the trial variance explained;
- :mod:`~lifrnn_core.spike_fitting.fit`: :func:`fit_spikes`, the whole fit;
- :mod:`~lifrnn_core.spike_fitting.results`: the result dataclasses;
- :mod:`~lifrnn_core.spike_fitting.ground_truth`: :func:`sample_spike_trials`.

Everything public is imported from here (``from lifrnn_core.spike_fitting import fit_spikes``).

May import: numpy, torch, scipy and other :mod:`lifrnn_core` modules only (today
:mod:`lifrnn_core.data_fitting`, :mod:`lifrnn_core.dynamics`, :mod:`lifrnn_core.errors`,
:mod:`lifrnn_core.euler`, :mod:`lifrnn_core.fitting`, :mod:`lifrnn_core.lbfgs`,
:mod:`lifrnn_core.recordings`, :mod:`lifrnn_core.spike_trials`); no web, database, ``lifrnn``,
``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.spike_fitting.config import SpikeFitCallback, SpikeFitConfig
from lifrnn_core.spike_fitting.fit import fit_spikes
from lifrnn_core.spike_fitting.ground_truth import sample_spike_trials
from lifrnn_core.spike_fitting.poisson import PoissonReadout, poisson_rates
from lifrnn_core.spike_fitting.results import GridPoint, InferredStates, SampledTrials, SpikeFit
from lifrnn_core.spike_fitting.single_trials import infer_initial_states

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
