"""The whole cut: :func:`spike_trials` turns a :class:`~lifrnn_core.recordings.Recording` into
a :class:`~lifrnn_core.spike_trials.SpikeTrials`, or says with a
:class:`~lifrnn_core.spike_trials.SpikeTrialsError` what the recording lacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from lifrnn_core.recordings import Recording
from lifrnn_core.spike_trials.bins import (
    _SpikeKeys,
    behavior_in_bins,
    bin_counts,
    window_first_bins,
)
from lifrnn_core.spike_trials.split import _heldout_units, _split, _split_labels, _usable_trials
from lifrnn_core.spike_trials.trials import SPLITS, SpikeTrials, SpikeTrialsConfig, SpikeTrialsError

__all__ = ["spike_trials"]

logger = logging.getLogger(__name__)


def _check_recording(recording: Recording, config: SpikeTrialsConfig) -> None:
    """Raise :class:`SpikeTrialsError` for a recording without spikes, trials or the event."""
    if recording.n_units == 0 or sum(len(times) for times in recording.spike_times) == 0:
        raise SpikeTrialsError(
            f"the recording has no spikes ({recording.n_units} units, none with a spike time): "
            f"spike trains need a units table with spike_times, at least "
            f"{config.min_heldout + 1} units",
            missing="spikes",
            minimum=config.min_heldout + 1,
        )
    if len(recording.trials) == 0:
        raise SpikeTrialsError(
            f"the recording has no trials: at least {3 * config.min_trials} are needed "
            f"({config.min_trials} in each of train, val and test)",
            missing="trials",
            minimum=3 * config.min_trials,
        )
    if config.align_event not in recording.trials.events:
        raise SpikeTrialsError(
            f"the trial table has no {config.align_event!r} (the alignment event); it has "
            f"{sorted(recording.trials.events) or 'no event columns'}",
            missing=config.align_event,
        )


def _check_units(n_units: int, n_heldout: int, config: SpikeTrialsConfig) -> None:
    if n_heldout < config.min_heldout:
        raise SpikeTrialsError(
            f"{n_heldout} held-out neuron{'s' if n_heldout != 1 else ''} of {n_units}: "
            f"co-smoothing needs at least min_heldout = {config.min_heldout} (raise "
            f"heldout_fraction, now {config.heldout_fraction}, or record more neurons)",
            missing="held-out neurons",
            minimum=config.min_heldout,
        )
    if n_heldout >= n_units:
        raise SpikeTrialsError(
            f"all {n_units} neurons are held out: at least 1 held-in neuron is needed",
            missing="held-in neurons",
            minimum=1,
        )


def _check_trials(split: np.ndarray, excluded: dict[str, int], config: SpikeTrialsConfig) -> None:
    for name in SPLITS:
        count = int(np.count_nonzero(split == name))
        if count < config.min_trials:
            raise SpikeTrialsError(
                f"{count} usable {name} trial{'s' if count != 1 else ''}: at least min_trials = "
                f"{config.min_trials} are needed in each of train, val and test ({len(split)} "
                f"usable trials; excluded: {excluded})",
                missing=f"{name} trials",
                minimum=config.min_trials,
            )


def spike_trials(
    recording: Recording,
    config: SpikeTrialsConfig,
    heldout_units: Sequence[int] | None = None,
) -> SpikeTrials:
    """Cut a recording into binned single trials, held-in and held-out neurons, and a split.

    Trials are kept unless (first reason counted, :data:`EXCLUSION_REASONS`) the alignment
    event is missing, the trial failed, the file's split marks it ``none``, its window and
    forward bins leave the span of the trial table, or it is one of the file's test trials on
    which the held-out neurons have no spike at all while they fire on training trials (the
    file withholds them there, as NLB's test phase does).

    The window's first bin is the first bin edge of the grid from time 0 at or after
    ``event + window[0]``; ``config.n_time`` bins follow, then ``config.n_forward`` forward bins
    (nlb-tools' alignment). Held-out neurons: ``heldout_units`` when given, else the file's own
    (``Recording.heldout``), else ``round(heldout_fraction * units)`` drawn by ``config.seed``.
    The split: the file's ``train`` / ``val`` / ``test`` when it has all three; a file without
    ``val`` gets one drawn from its train trials; a file with train and val but no test trials
    (NLB's train files) has its val trials scored as test and a val drawn from its train
    trials; any other file gets a split drawn by ``config.seed``, stratified by condition.
    Draws depend on the seed, the trials' order, their conditions and the number of units only:
    never on a model.

    Args:
        recording: spike times, trial table and (optionally) behaviour.
        config: bin width, window, forward bins, fractions, seed and minimums.
        heldout_units: indices into the recording's units to hold out, overriding the file.

    Returns:
        SpikeTrials with int32 counts ``(trials, time, neurons)`` and behaviour (trials, time, 2)
        sampled at ``time + behavior_lag`` (None when the recording has none).

    Raises:
        SpikeTrialsError: no spikes, no trials, no alignment event, fewer than ``min_heldout``
            held-out neurons (or no held-in one), or fewer than ``min_trials`` in a split; the
            message names what is missing and the minimum.
    """
    _check_recording(recording, config)
    trials = recording.trials
    labels = _split_labels(trials.split, len(trials))
    event = np.asarray(trials.events[config.align_event], dtype=np.float64)
    first_bins = np.zeros(len(trials), dtype=np.int64)
    finite = np.isfinite(event)
    first_bins[finite] = window_first_bins(event[finite], config.window[0], config.bin_width)
    keep, excluded = _usable_trials(recording, first_bins, labels, config)
    if not keep.any():
        raise SpikeTrialsError(
            f"no usable trial among {len(trials)} (excluded: {excluded}); each needs "
            f"{config.align_event!r}, success and its window inside the recording",
            missing=f"trials with {config.align_event}",
            minimum=3 * config.min_trials,
        )
    heldout, heldout_from_file = _heldout_units(recording, config, heldout_units)
    _check_units(recording.n_units, heldout.size, config)
    heldin = np.setdiff1d(np.arange(recording.n_units), heldout)
    spikes_out = [recording.spike_times[u] for u in heldout]
    n_time, n_forward = config.n_time, config.n_forward

    kept = np.flatnonzero(keep)
    heldout_counts = bin_counts(spikes_out, first_bins[kept], n_time + n_forward, config.bin_width)
    kept_labels = None if labels is None else labels[kept].copy()
    if kept_labels is not None and np.any(kept_labels == "test"):
        per_trial = heldout_counts.sum(axis=(1, 2))
        test = kept_labels == "test"
        if per_trial[test].sum() == 0 and per_trial[~test].sum() > 0:
            excluded["test_without_heldout"] = int(test.sum())
            logger.warning(
                "the held-out neurons have no spike in the file's %d test trials: those trials "
                "are left out (no held-out data to score)",
                int(test.sum()),
            )
            kept, kept_labels, heldout_counts = (
                kept[~test],
                kept_labels[~test],
                heldout_counts[~test],
            )
    condition = np.asarray(trials.condition)[kept].astype(str)
    split, split_rule = _split(kept_labels, condition, config)
    _check_trials(split, excluded, config)

    starts = first_bins[kept]
    heldin_keys = _SpikeKeys.of(
        [recording.spike_times[u] for u in heldin],
        config.bin_width,
        int(starts.min()),
        int(starts.max()) + n_time + n_forward,
    )
    behavior = None
    if recording.behavior is not None and recording.behavior_times is not None:
        behavior_start = window_first_bins(
            event[kept], config.window[0] + config.behavior_lag, config.bin_width
        )
        behavior = behavior_in_bins(
            recording.behavior, recording.behavior_times, behavior_start, n_time, config.bin_width
        )
    result = SpikeTrials(
        heldin=heldin_keys.counts(starts, n_time),
        heldout=np.ascontiguousarray(heldout_counts[:, :n_time]),
        heldin_forward=heldin_keys.counts(starts + n_time, n_forward),
        heldout_forward=np.ascontiguousarray(heldout_counts[:, n_time:]),
        behavior=behavior,
        condition=condition,
        split=split.astype(str),
        time=config.window[0] + np.arange(n_time) * config.bin_width,
        bin_width=config.bin_width,
        heldin_units=heldin,
        heldout_units=heldout,
        trial_index=kept,
        split_from_file=split_rule != "drawn",
        heldout_from_file=heldout_from_file,
        behavior_lag=config.behavior_lag,
        excluded_trials=excluded,
        split_rule=split_rule,
    )
    logger.info(
        "cut %d trials (%s) x %d + %d bins of %g s, %d held-in and %d held-out neurons "
        "(split: %s; excluded: %s)",
        result.n_trials,
        {name: int(np.count_nonzero(split == name)) for name in SPLITS},
        n_time,
        n_forward,
        config.bin_width,
        heldin.size,
        heldout.size,
        split_rule,
        excluded,
    )
    return result
