"""Which trials are kept, which neurons are held out, and the train / val / test split of the
trials: the file's own where it gives them, otherwise drawn from a seed and the data alone (never
from a model)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from lifrnn_core.recordings import Recording
from lifrnn_core.spike_trials.trials import (
    EXCLUSION_REASONS,
    SPLITS,
    UNUSED_SPLIT,
    SpikeTrialsConfig,
)

logger = logging.getLogger(__name__)


def _split_labels(split: np.ndarray | None, n_trials: int) -> np.ndarray | None:
    """The file's split of each trial, lower case and stripped, or None without a column."""
    if split is None:
        return None
    labels = np.array([str(label).strip().lower() for label in split], dtype=object)
    if len(labels) != n_trials:
        raise ValueError(f"the split column has {len(labels)} values for {n_trials} trials")
    return labels


def _usable_trials(
    recording: Recording,
    first_bins: np.ndarray,
    labels: np.ndarray | None,
    config: SpikeTrialsConfig,
) -> tuple[np.ndarray, dict[str, int]]:
    """(trials,) bool mask of the trials to keep, and how many were excluded for each reason."""
    trials = recording.trials
    event = np.asarray(trials.events[config.align_event], dtype=np.float64)
    # The recording is continuous: a window may reach past its own trial, but it must lie in
    # the span the trial table covers, where spikes were recorded.
    span_start = float(np.min(trials.start_time))
    span_stop = float(np.max(trials.stop_time))
    n_bins = config.n_time + config.n_forward
    tolerance = 1e-9 * max(1.0, span_stop)
    with np.errstate(invalid="ignore"):
        outside = (first_bins * config.bin_width < span_start - tolerance) | (
            (first_bins + n_bins) * config.bin_width > span_stop + tolerance
        )
    reasons = {
        "missing_event": ~np.isfinite(event),
        "failed": ~np.asarray(trials.success, dtype=bool),
        "unused_split": (
            np.zeros(len(trials), dtype=bool) if labels is None else labels == UNUSED_SPLIT
        ),
        "window_outside_recording": outside,
    }
    keep = np.ones(len(trials), dtype=bool)
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    for reason, mask in reasons.items():
        excluded[reason] = int(np.count_nonzero(keep & mask))
        keep &= ~mask
    return keep, excluded


def _heldout_units(
    recording: Recording, config: SpikeTrialsConfig, heldout_units: Sequence[int] | None
) -> tuple[np.ndarray, bool]:
    """(n_heldout,) sorted indices of the held-out units, and whether the file chose them."""
    n_units = recording.n_units
    if heldout_units is not None:
        chosen = np.unique(np.asarray(heldout_units, dtype=np.int64))
        if chosen.size != len(heldout_units) or (
            chosen.size and (chosen[0] < 0 or chosen[-1] >= n_units)
        ):
            raise ValueError(
                f"heldout_units must be distinct unit indices in 0..{n_units - 1}, got "
                f"{list(heldout_units)[:10]}"
            )
        return chosen, False
    if recording.heldout is not None and np.any(recording.heldout):
        return np.flatnonzero(np.asarray(recording.heldout, dtype=bool)), True
    # Drawn from the number of units and the seed alone: the same for every model.
    rng = np.random.default_rng([config.seed, 0])
    count = round(config.heldout_fraction * n_units)
    return np.sort(rng.choice(n_units, size=min(count, n_units), replace=False)), False


def _stratified_pick(
    candidates: np.ndarray, condition: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """(trials,) bool: ``round(fraction * candidates)`` of the candidate trials, shared among
    the conditions in proportion to their candidates (largest remainders, ties at random),
    each condition's chosen at random."""
    chosen = np.zeros(len(condition), dtype=bool)
    index = np.flatnonzero(candidates)
    if index.size == 0:
        return chosen
    _, group = np.unique(condition[index], return_inverse=True)
    sizes = np.bincount(group)
    exact = fraction * sizes
    quota = np.floor(exact).astype(np.int64)
    extra = round(fraction * index.size) - int(quota.sum())
    ties = rng.random(sizes.size)
    quota[np.lexsort((ties, -(exact - quota)))[:extra]] += 1
    order = np.lexsort((rng.random(index.size), group))  # random order within each condition
    sorted_group = group[order]
    rank = np.arange(index.size) - np.searchsorted(sorted_group, sorted_group, side="left")
    chosen[index[order[rank < quota[sorted_group]]]] = True
    return chosen


def _split(
    labels: np.ndarray | None, condition: np.ndarray, config: SpikeTrialsConfig
) -> tuple[np.ndarray, str]:
    """(trials,) split of the kept trials and the rule that made it (``SpikeTrials.split_rule``).

    ``labels``: the file's split of the kept trials (lower case), or None. The draws use a
    generator seeded by ``config.seed`` and nothing but the trials' order and conditions.
    """
    rng = np.random.default_rng([config.seed, 1])
    split = np.full(len(condition), "train", dtype=object)
    known = labels is not None and bool(np.all(np.isin(labels, SPLITS)))
    if labels is not None and not known:
        logger.warning(
            "the file's split column holds %s, not only %s: the split is drawn by the seed",
            sorted(set(labels) - set(SPLITS))[:5],
            SPLITS,
        )
    if known and labels is not None and np.any(labels == "train"):
        has_val, has_test = np.any(labels == "val"), np.any(labels == "test")
        if has_val and has_test:
            split[:] = labels
            return split, "file"
        train = labels == "train"
        if has_test:
            split[labels == "test"] = "test"
            split[_stratified_pick(train, condition, config.val_fraction, rng)] = "val"
            return split, "file_val_drawn"
        if has_val:
            split[labels == "val"] = "test"
            split[_stratified_pick(train, condition, config.val_fraction, rng)] = "val"
            return split, "file_val_as_test"
    everyone = np.ones(len(condition), dtype=bool)
    test = _stratified_pick(everyone, condition, config.test_fraction, rng)
    split[test] = "test"
    split[_stratified_pick(~test, condition, config.val_fraction, rng)] = "val"
    return split, "drawn"
