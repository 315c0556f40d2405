"""Single-trial spike counts in the layout the Neural Latents Benchmark scores (NLB'21, MC_Maze).

A :class:`SpikeTrials` holds binned spike counts of every usable trial, aligned to movement onset,
with the recorded neurons split into *held-in* ones (a model sees them on every trial) and
*held-out* ones (a model sees them on training trials only and predicts them on the others:
co-smoothing), the bins after the window (forward prediction), hand velocity, condition labels and
the train / val / test split of the trials. Every model and every baseline of a ``fit_data`` job
is scored on the same :class:`SpikeTrials`, so on the same split: the split comes from the file or
from a seed and the data, never from a model.

:func:`spike_trials` cuts a :class:`~lifrnn_core.recordings.Recording` into one, as nlb-tools
(Pei et al. 2021) cuts an NWB file: bins on one grid from time 0 (``[k bw, (k + 1) bw)``), the
window starting at the first bin edge at or after ``event + window[0]``, behaviour low-pass
filtered and sampled at each bin's start. docs/science.md, "Spike trains the NLB way", says why.

Shapes: ``(trials, time, neurons)``; times in seconds; counts are spikes per bin.

The package, by concept (every name is re-exported here, so ``lifrnn_core.spike_trials.X`` keeps
working):

- :mod:`~lifrnn_core.spike_trials.trials`: :class:`SpikeTrials`, :class:`SpikeTrialsConfig`,
  :class:`SpikeTrialsError` and the split and exclusion names;
- :mod:`~lifrnn_core.spike_trials.bins`: binning and alignment on the grid from time 0
  (:func:`grid_bins`, :func:`window_first_bins`, :func:`bin_counts`) and the behaviour sampled
  per bin (:func:`behavior_in_bins`);
- :mod:`~lifrnn_core.spike_trials.split`: which trials are kept, which neurons are held out and
  the train / val / test split of the trials;
- :mod:`~lifrnn_core.spike_trials.cut`: :func:`spike_trials`, the whole cut.

May import: numpy, scipy.signal, :mod:`lifrnn_core.recordings`; no web, database, ``lifrnn``,
``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.spike_trials.bins import COUNT_BLOCK as COUNT_BLOCK
from lifrnn_core.spike_trials.bins import DECIMATION_TAPS as DECIMATION_TAPS
from lifrnn_core.spike_trials.bins import (
    behavior_in_bins,
    bin_counts,
    grid_bins,
    window_first_bins,
)
from lifrnn_core.spike_trials.cut import spike_trials
from lifrnn_core.spike_trials.trials import (
    EXCLUSION_REASONS,
    NLB_VELOCITY_LAG,
    SPLITS,
    SpikeTrials,
    SpikeTrialsConfig,
    SpikeTrialsError,
)
from lifrnn_core.spike_trials.trials import UNUSED_SPLIT as UNUSED_SPLIT

__all__ = [
    "EXCLUSION_REASONS",
    "NLB_VELOCITY_LAG",
    "SPLITS",
    "SpikeTrials",
    "SpikeTrialsConfig",
    "SpikeTrialsError",
    "behavior_in_bins",
    "bin_counts",
    "grid_bins",
    "spike_trials",
    "window_first_bins",
]
