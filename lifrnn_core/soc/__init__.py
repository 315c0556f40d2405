"""Stability-optimised circuits (SOC): E/I weight matrices made stable by gradient descent on the
smoothed spectral abscissa, optimising inhibitory weights only (docs/science.md §2).

Two published variants, named after their papers:

- ``hennequin2014`` (Hennequin, Vogels & Gerstner 2014, as in Stroud's ``soc_function.m``):
  sparse random initial network, shift ``s = max(1.5 a, a + 0.2)``, block renormalisation of
  inhibition, 40 % inhibitory density, stop at spectral abscissa 0.15.
- ``kao2021`` (Kao, Sadabadi & Hennequin 2021): lognormal excitation, dense inhibition, every row
  summing to -10, shift ``s = max(1, 1.2 a)`` (its margin above ``a`` narrowed by ``n / 200``
  for smaller networks, :class:`SOCParameters`), stop at spectral abscissa 0.81.

Weights are (n, n) with column j the presynaptic unit j: the first ``n_excitatory`` columns are
excitatory (>= 0), the rest inhibitory (<= 0), and the diagonal is zero (no autapses).

Each iteration costs one real Schur decomposition of W: it gives the spectral abscissa (the stop
test of the matrix just produced, and the shift of the next step) and, shifted, both Lyapunov
solves (``dtrsyl`` on the triangular factor). The stop test is always made on the updated matrix.

``SOCParameters.step`` chooses the step size: ``"fixed"`` (the default, as published: every step
``rate`` times the gradient) or ``"adaptive"``, which backtracks from a growing step size along
the same gradient, through the same projections, with the same stop test (:func:`_backtrack`);
each trial costs one Schur form, counted in ``SOCResult.factorisations``.

The package, by concept (every name is re-exported here, so ``lifrnn_core.soc.X`` keeps working):

- :mod:`~lifrnn_core.soc.initial`: the random initial networks (:func:`initial_weights`,
  :func:`connection_positions`) and :func:`check_dale`;
- :mod:`~lifrnn_core.soc.steps`: one SOC step, the Schur-Lyapunov factorisations (and the
  ``sign`` and ``scipy`` backends), each variant's shift, gradient and projections
  (:func:`balance_inhibition`, :func:`sparsify_inhibition`, :func:`normalise_rows`,
  :func:`kao2021_shift`) and the adaptive step rule's constants;
- :mod:`~lifrnn_core.soc.optimise`: the optimisation loop (:func:`optimise_inhibition`, the
  adaptive backtracking, :func:`build_soc`) and :class:`SOCResult`;
- :mod:`~lifrnn_core.soc.measures`: :func:`amplification` and
  :func:`smoothed_spectral_abscissa`.

:class:`SOCParameters` and :data:`SOCMethod` live in :mod:`lifrnn_core.soc_parameters` and are
re-exported here.

May import: numpy, scipy, torch, :mod:`lifrnn_core.errors`, :mod:`lifrnn_core.gramians`,
:mod:`lifrnn_core.soc_parameters`, :mod:`lifrnn_core.threads`; no web, database, ``lifrnn``,
``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.soc.initial import check_dale, connection_positions, initial_weights
from lifrnn_core.soc.measures import amplification, smoothed_spectral_abscissa
from lifrnn_core.soc.optimise import CheckpointCallback as CheckpointCallback
from lifrnn_core.soc.optimise import ProgressCallback as ProgressCallback
from lifrnn_core.soc.optimise import SOCResult, build_soc, optimise_inhibition
from lifrnn_core.soc.steps import ADAPTIVE_GROWTH as ADAPTIVE_GROWTH
from lifrnn_core.soc.steps import ADAPTIVE_MAX_FACTOR as ADAPTIVE_MAX_FACTOR
from lifrnn_core.soc.steps import ADAPTIVE_OVERSHOOT as ADAPTIVE_OVERSHOOT
from lifrnn_core.soc.steps import ADAPTIVE_SHRINK as ADAPTIVE_SHRINK
from lifrnn_core.soc.steps import Backend as Backend
from lifrnn_core.soc.steps import (
    balance_inhibition,
    kao2021_shift,
    normalise_rows,
    sparsify_inhibition,
)
from lifrnn_core.soc_parameters import SOCMethod, SOCParameters

__all__ = [
    "SOCMethod",
    "SOCParameters",
    "SOCResult",
    "amplification",
    "balance_inhibition",
    "build_soc",
    "check_dale",
    "connection_positions",
    "initial_weights",
    "kao2021_shift",
    "normalise_rows",
    "optimise_inhibition",
    "smoothed_spectral_abscissa",
    "sparsify_inhibition",
]
