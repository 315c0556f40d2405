"""Retraining a fitted network on novel movements (docs/science.md §7).

Three answers to the seed's open question — can a trained network learn reaches it never made by
shaping new initial conditions alone, or must the whole network reorganise?

- ``initial_states``: W and C frozen; only the new movements' initial states are fitted, with
  the same Gramian parametrisation and norm constraint as the original fit, and confined to
  directions the frozen readout does not see (it stays silent during preparation).
- ``initial_states_and_readout``: W frozen; every initial state (old and new) and C are fitted
  together on old and new movements, as a fit on the frozen W.
- ``full_network``: W, C and every initial state (old and new) change together. W keeps Dale's
  law exactly (excitatory columns >= 0, inhibitory columns <= 0, no autapses) and, optionally, its
  sparsity pattern and its SOC structure (kao2021 row sums, or hennequin2014's E/I mean ratios),
  by projection after every step; its spectral abscissa is kept at or below a bound by a penalty
  and, after every step, by backtracking toward the previous W. A weighted term keeps the old
  movements. The background input follows W so that the spontaneous state stays a fixed point.
  C is eliminated exactly at every step (the best admissible readout, as in the fit). The
  optimiser is Adam with projection (L-BFGS does not combine with projections); it stops when the
  motor cost falls below ``cost_tolerance`` or the best loss stops improving (reported as
  ``converged`` and ``stop_reason``, as in the fit).

Before training, :func:`readout_reachability` says whether the new targets are reachable at all
by a mode's readout: a frozen C reaches only outputs in its column span, so with a zero row (the
y-row after fitting 0° and 180° only) no initial state can produce a reach off the trained axis.

The package, by concept (each name is re-exported here, so ``lifrnn_core.retraining.X`` keeps
working):

- ``config``: :class:`FittedNetwork`, :class:`RetrainConfig`, :data:`StructureName`;
- ``reachability``: :func:`readout_reachability` and :class:`Reachability`;
- ``results``: :class:`RetrainResult` and :class:`FullNetworkState` (resumable state);
- ``constraints``: Dale's law, SOC structure and stability bound on W (:func:`project_dale`,
  :func:`project_structure`, :func:`structure_measures`, :func:`backtrack_to_bound`);
- ``modes``: the three modes (:func:`retrain_initial_states`,
  :func:`retrain_initial_states_and_readout`, :func:`retrain_full_network`).

Imports: torch, numpy, scipy and other ``lifrnn_core`` modules only (no web, database, queue,
``lifrnn``, ``api`` or ``worker`` imports).
"""

from lifrnn_core.retraining.config import (
    FittedNetwork,
    RetrainConfig,
    StructureName,
)
from lifrnn_core.retraining.config import RetrainCallback as RetrainCallback
from lifrnn_core.retraining.constraints import (
    backtrack_to_bound,
    project_dale,
    project_structure,
    structure_measures,
)
from lifrnn_core.retraining.modes import (
    retrain_full_network,
    retrain_initial_states,
    retrain_initial_states_and_readout,
)
from lifrnn_core.retraining.reachability import (
    REACHABLE_R2,
    Reachability,
    readout_reachability,
)
from lifrnn_core.retraining.results import FullNetworkState, RetrainResult

__all__ = [
    "REACHABLE_R2",
    "FittedNetwork",
    "FullNetworkState",
    "Reachability",
    "RetrainConfig",
    "RetrainResult",
    "StructureName",
    "backtrack_to_bound",
    "project_dale",
    "project_structure",
    "readout_reachability",
    "retrain_full_network",
    "retrain_initial_states",
    "retrain_initial_states_and_readout",
    "structure_measures",
]
