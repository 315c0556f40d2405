"""Synthetic recordings with a known ground truth: spikes of neurons that read a fitted network.

A network fitted to reaches (:func:`fit_reaches`: initial states ``x*_c`` and a hand readout
``C`` for ``conditions`` directions evenly spread over 360 degrees) is run through a session of
delayed-reach trials (:func:`synthesize_recording`). Each trial ``k`` of condition ``c`` has its
own initial state ``x0_k = x*_c + sigma xi_k`` (``xi_k ~ N(0, I)``; ``sigma = 0`` by default, when
every trial of a condition starts from ``x*_c``):

- from ``start_time`` to ``target_on_time`` the network rests at ``x_sp``;
- from the target onwards (the delay, then the reaction time after the go cue) its state is driven
  from ``x_sp`` towards ``x0_k`` (exponentially, time constant ``preparation_tau``) and set to
  ``x0_k`` exactly at ``move_onset - lead``;
- from ``move_onset - lead`` (``lead`` = 0.25 s) it runs freely from ``x0_k``. This is what a fit
  to the recording assumes with its default window of -0.25..+0.45 s around movement onset: the
  window's first sample is the initial state. The readout was fitted to stay silent for those
  first ``lead`` seconds and then make the reach, so the hand starts moving at ``move_onset``.

So with ``sigma > 0`` trials of one condition differ only through their initial states: what the
preparatory-state hypothesis says, and what single-trial co-smoothing (NLB'21: Pei et al. 2021,
"Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks) can recover from held-in neurons.

The hand velocity is ``C r(x_E)`` on a 1 ms grid throughout (near zero at rest and during
preparation, where the fitted readout is silent). Each recorded neuron fires at a rate that is a
sparse non-negative mixture of the network's excitatory rates plus a baseline, scaled so that its
peak lies between about 10 and 80 spikes/s and clipped at zero; its spikes are an inhomogeneous
Poisson process simulated on the 1 ms grid, each spike placed uniformly inside its bin (on a
30 kHz clock, as an acquisition system stamps spikes). The recorded movement onset lies on the
1 ms grid of the hand signal, as MC_Maze's does. About a quarter of the neurons (NLB MC_Maze: 45
of 182) are marked held out, and every trial's true rates are kept in 5 ms bins around its
recorded movement onset, so the true rates can be scored as any model is.

:func:`synthesize_white_noise_recording` is the null: the same session layout, but the neurons
mix smoothed white-noise latents (one pattern per condition plus each trial's own), with no
network behind them. :func:`generator_problems` says when a generating network is too poor to
stand for a ground truth (not converged, or reaches it cannot make).

Nothing here knows a file format: :mod:`lifrnn.nwb` writes the result as an NWB file.

The package holds, by concept:

- :mod:`~lifrnn_core.synthetic_recordings.reaches`: :class:`ReachFit`, :func:`fit_reaches` and
  :func:`generator_problems` (the network that stands for a ground truth);
- :mod:`~lifrnn_core.synthetic_recordings.session`: the constants, :class:`SyntheticRecording`,
  :func:`condition_label` and what both recordings share (the trial schedule, labels and split,
  the mixing, the Poisson spikes, the truth's bins);
- :mod:`~lifrnn_core.synthetic_recordings.network`: :func:`synthesize_recording`, the spikes of
  a network with per-trial initial-state noise;
- :mod:`~lifrnn_core.synthetic_recordings.white_noise`: :func:`synthesize_white_noise_recording`.

Everything public is imported from here
(``from lifrnn_core.synthetic_recordings import synthesize_recording``).

May import: numpy, scipy (through :mod:`lifrnn_core.recordings`), torch and lifrnn_core; no web,
database, ``lifrnn``, ``api`` or ``worker`` imports.
"""

from __future__ import annotations

from lifrnn_core.synthetic_recordings.network import synthesize_recording
from lifrnn_core.synthetic_recordings.reaches import (
    MIN_REACH_R2,
    ReachFit,
    fit_reaches,
    generator_problems,
)
from lifrnn_core.synthetic_recordings.session import (
    BIN_WIDTH,
    HELDOUT_FRACTION,
    LEAD,
    SPIKE_CLOCK_HZ,
    TRUTH_BIN_WIDTH,
    TRUTH_WINDOW,
    SyntheticRecording,
    condition_label,
)
from lifrnn_core.synthetic_recordings.white_noise import synthesize_white_noise_recording

__all__ = [
    "BIN_WIDTH",
    "HELDOUT_FRACTION",
    "LEAD",
    "MIN_REACH_R2",
    "SPIKE_CLOCK_HZ",
    "TRUTH_BIN_WIDTH",
    "TRUTH_WINDOW",
    "ReachFit",
    "SyntheticRecording",
    "condition_label",
    "fit_reaches",
    "generator_problems",
    "synthesize_recording",
    "synthesize_white_noise_recording",
]
