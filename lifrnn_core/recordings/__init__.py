"""Recorded population activity, and its preprocessing into condition-averaged rates.

A :class:`Recording` is what a lab's file holds (spike times per unit, a trial table, hand
behaviour), with no file format in it: :mod:`lifrnn.nwb` reads NWB files into one. The
preprocessing functions here are pure and turn it into :class:`ConditionAverages`, the
(conditions, time, neurons) rates a network is fitted to (docs/science.md, "Fitting to
recordings").

The pipeline of :func:`preprocess`, one step per function:

1. keep the usable trials (event present, success, window inside the recorded span);
2. :func:`bin_spikes` each trial's window, padded on both sides so that smoothing sees real data;
3. :func:`condition_average` the counts and convert them to spikes/s;
4. :func:`gaussian_smooth` along time, then cut the padding off;
5. drop units below the rate floor, :func:`soft_normalise` the rest (Churchland et al. 2012);
6. optionally project onto the top :func:`principal_components`.

Averaging and smoothing are both linear, so step 3 comes before step 4: smoothing a handful of
condition averages is much cheaper than smoothing thousands of trials, and gives the same result.

Time conventions: bin ``k`` of a window starting at ``s`` covers ``[s + k dt, s + (k + 1) dt)``;
``ConditionAverages.time[k]`` is the start of bin ``k`` relative to the alignment event.

The package, by concept (every name is re-exported here, so ``lifrnn_core.recordings.X`` keeps
working):

- :mod:`~lifrnn_core.recordings.data`: :class:`Recording` and its :class:`Trials`, what a lab's
  file holds;
- :mod:`~lifrnn_core.recordings.binning`: :func:`bin_spikes` and :func:`gaussian_smooth`;
- :mod:`~lifrnn_core.recordings.averaging`: :func:`condition_average` and
  :func:`behavior_average`;
- :mod:`~lifrnn_core.recordings.components`: :func:`soft_normalise`,
  :func:`principal_components` and :func:`variance_captured`;
- :mod:`~lifrnn_core.recordings.pipeline`: :class:`PreprocessConfig`, :class:`ConditionAverages`
  and the pipeline, :func:`preprocess` and :func:`condition_averages_from_rates`.

May import: numpy and scipy only (no other :mod:`lifrnn_core` module); no web, database,
``lifrnn``, ``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.recordings.averaging import behavior_average, condition_average
from lifrnn_core.recordings.binning import SMOOTHING_TRUNCATE as SMOOTHING_TRUNCATE
from lifrnn_core.recordings.binning import bin_spikes, gaussian_smooth
from lifrnn_core.recordings.components import (
    principal_components,
    soft_normalise,
    variance_captured,
)
from lifrnn_core.recordings.data import Recording, Trials
from lifrnn_core.recordings.pipeline import (
    EXCLUSION_REASONS,
    ConditionAverages,
    PreprocessConfig,
    condition_averages_from_rates,
    preprocess,
)

__all__ = [
    "EXCLUSION_REASONS",
    "ConditionAverages",
    "PreprocessConfig",
    "Recording",
    "Trials",
    "behavior_average",
    "bin_spikes",
    "condition_average",
    "condition_averages_from_rates",
    "gaussian_smooth",
    "preprocess",
    "principal_components",
    "soft_normalise",
    "variance_captured",
]
