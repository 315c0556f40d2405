"""Fitting a network to recorded population activity, and judging the fit honestly
(docs/science.md §8).

The recorded, condition-averaged rates ``Y_c(t)`` (conditions, time, neurons) are modelled as a
linear map of the network's excitatory rates started from one initial state per condition:

    Y_c(t) ~ D r_E(x_c(t)) + b,    tau dx_c/dt = -x_c + W r(x_c) + h,    x_c(0) = x*_c

- ``x*_c = x_sp + V theta_c`` in the observability-Gramian basis with the fit's norm constraint
  ``||X* - x_sp||_F^2 = n K radius^2`` (as :mod:`lifrnn_core.fitting`).
- For given initial states the best ``(D, b)`` is a ridge regression, solved exactly (variable
  projection); L-BFGS optimises ``theta`` alone on the cost with ``(D, b)`` eliminated. The cost
  is the fraction of the data's variance left unexplained (plus the ridge term), so 0 is perfect
  and 1 is no better than each neuron's mean.
- Optionally a hand-velocity readout ``v = C r_E + c`` is fitted in the same solve, weighted
  by ``behavior_weight``; with preparation in the window it must be silent before movement onset
  (those samples' targets are zero, weighted ``silence_weight``).
- The network is integrated with forward Euler at ``integration_dt`` (default: the largest
  divisor of ``dt`` up to 2 ms) and compared with the data every ``dt``: a step as coarse as
  the 10 ms bins does not follow these networks' fast dynamics
  (:func:`lifrnn_core.dynamics.euler_step_ratio`).
- ``mode="full_network"`` then adapts W too (Adam on W and theta, W projected onto Dale's law, no
  autapses and its zero pattern after every step, its spectral abscissa kept under a bound by
  backtracking), as retraining does.

:func:`cross_validate` scores the model on conditions and neurons it never saw: K folds over
conditions; for each, ``(D, b)`` comes from the training conditions, and on the held-out
conditions ``x*`` is fitted from a random 75 % of the neurons only (its norm free: a few
conditions need not share the training set's RMS distance); the score is the R^2 of the other
25 % (co-smoothing across conditions). The mean over training conditions (per time and
neuron) is scored on the same entries, as the trivial baseline.

The package, by concept (every name is re-exported here, so ``lifrnn_core.data_fitting.X`` keeps
working):

- :mod:`~lifrnn_core.data_fitting.readout`: the linear maps (:class:`LinearMap`, solved by
  :func:`ridge_map`) and :func:`r2_per_neuron`;
- :mod:`~lifrnn_core.data_fitting.fit`: the fit (:class:`DataFitConfig`, :func:`fit_to_data`,
  :class:`DataFit`, the full-network mode) and :func:`random_like`, its control network;
- :mod:`~lifrnn_core.data_fitting.cross_validation`: :func:`cross_validate`, :class:`FoldScore`
  and :class:`CrossValidation`.

May import: numpy, torch and other :mod:`lifrnn_core` modules only (today
:mod:`lifrnn_core.dynamics`, :mod:`lifrnn_core.errors`, :mod:`lifrnn_core.euler`,
:mod:`lifrnn_core.fitting`, :mod:`lifrnn_core.gramians`, :mod:`lifrnn_core.lbfgs`,
:mod:`lifrnn_core.retraining`); no web, database, ``lifrnn``, ``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.data_fitting.cross_validation import CrossValidation, FoldScore, cross_validate
from lifrnn_core.data_fitting.fit import DataFit, DataFitConfig, fit_to_data, random_like
from lifrnn_core.data_fitting.fit import DataFitCallback as DataFitCallback
from lifrnn_core.data_fitting.fit import DataFitMode as DataFitMode
from lifrnn_core.data_fitting.fit import _Objective as _Objective
from lifrnn_core.data_fitting.readout import LinearMap, r2_per_neuron, ridge_map

__all__ = [
    "CrossValidation",
    "DataFit",
    "DataFitConfig",
    "FoldScore",
    "LinearMap",
    "cross_validate",
    "fit_to_data",
    "r2_per_neuron",
    "random_like",
    "ridge_map",
]
