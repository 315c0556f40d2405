"""Optimal preparation of movements (Kao, Sadabadi & Hennequin 2021; docs/science.md §6).

A trial is a spontaneous period (input ``h``), a preparation window in which a controller drives
the network from ``x_sp`` to the movement's initial state ``x*``, an optional delay in which the
controller keeps holding it, then the go cue and the movement (input ``h`` again, the controller
gated off, the readout gated on). The input to cortex is written ``h + u(t)``: ``u`` is the
controller's input, the deviation from the background, and the input energy is
``integral ||u||^2 dt``.

Controllers (``ControllerName``):

- ``feedforward`` (Kao's "naive" control, ``K = 0``): the constant input ``x* - h - W r(x*)``
  that makes ``x*`` a fixed point;
- ``lqr``: ``u = x* - h - (W + K) r(x*) + K r(x)``, the optimal feedback of the preparation cost
  (:func:`lifrnn_core.control.preparatory_feedback`); ``x*`` stays a fixed point and the
  closed loop ``W + K - I`` is stable;
- ``min_energy``: the open-loop input of least energy that reaches ``x*`` at the end of the
  preparation window, then the hold input ``x* - h - W r(x*)`` through the delay (the only input
  that keeps the state at ``x*``). Computed in closed form for the Euler-discretised network
  linearised at ``x*`` (finite-horizon controllability Gramian), then corrected for the gain's
  nonlinearity by shooting: each iteration simulates the nonlinear network and re-aims the
  linear solution at the miss;
- ``thalamic_loop``: cortex receives only ``X relu(z)`` from the gated thalamo-cortical loop
  (:class:`lifrnn_core.control.ThalamicLoop`), whose constant thalamic input ``b`` makes ``x*``
  a fixed point of the loop.

Shapes: states ``(batch, time, n)``, inputs ``(batch, steps, n)`` (input ``k`` acts during Euler
step ``k``, as in :func:`lifrnn_core.dynamics.simulate`), times in seconds. Everything is
vectorised over the batch of movements and takes its dtype and device from ``W``.

The package, by concept (each name is re-exported here, so ``lifrnn_core.preparation.X`` keeps
working):

- ``timing``: :class:`TrialTiming`, the trial's periods and Euler step;
- ``controllers``: :func:`hold_input` and :func:`min_energy_input`;
- ``loop``: the thalamo-cortical loop (:func:`loop_offset`, :func:`fit_thalamic_loop`,
  :class:`LoopFit`);
- ``drive``: :func:`prepare_state` (any controller, from ``x0`` to ``x*``), the controller
  names and :class:`PreparedState`;
- ``trials``: :func:`run_trial` and :class:`Trial`;
- ``metrics``: energy, distances, :func:`preparation_cost` and :func:`prepare_metrics`.

Imports: torch, numpy, scipy and other ``lifrnn_core`` modules only (no web, database, queue,
``lifrnn``, ``api`` or ``worker`` imports).
"""

from lifrnn_core.preparation.controllers import hold_input, min_energy_input
from lifrnn_core.preparation.drive import (
    CONTROLLERS,
    ControllerName,
    PreparedState,
    prepare_state,
)
from lifrnn_core.preparation.loop import LoopFit, fit_thalamic_loop, loop_offset
from lifrnn_core.preparation.loop import _loop_lyapunov_cost as _loop_lyapunov_cost
from lifrnn_core.preparation.loop import _minimise_stable as _minimise_stable
from lifrnn_core.preparation.metrics import (
    REACH_TOLERANCE,
    PrepareMetrics,
    input_energy,
    preparation_cost,
    prepare_distance,
    prepare_metrics,
    state_distance,
)
from lifrnn_core.preparation.timing import TrialTiming
from lifrnn_core.preparation.trials import Trial, run_trial

__all__ = [
    "CONTROLLERS",
    "REACH_TOLERANCE",
    "ControllerName",
    "LoopFit",
    "PrepareMetrics",
    "PreparedState",
    "Trial",
    "TrialTiming",
    "fit_thalamic_loop",
    "hold_input",
    "input_energy",
    "loop_offset",
    "min_energy_input",
    "preparation_cost",
    "prepare_distance",
    "prepare_metrics",
    "prepare_state",
    "run_trial",
    "state_distance",
]
