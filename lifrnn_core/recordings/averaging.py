"""Averages over the trials of each condition, of rates and of behaviour; conditions in natural
order (digit runs compared as numbers)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["behavior_average", "condition_average"]


def _natural_key(label: str) -> tuple[object, ...]:
    """Sort key reading runs of digits as numbers: "2/1" < "10/1"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label))


@dataclass(frozen=True)
class _Grouping:
    """Trials grouped by condition: ``order`` lists trials condition by condition."""

    labels: list[str]
    order: np.ndarray
    first: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, conditions: np.ndarray) -> _Grouping:
        names = np.array([str(label) for label in conditions], dtype=object)
        labels = sorted(set(names), key=_natural_key)
        index = {label: position for position, label in enumerate(labels)}
        group = np.array([index[name] for name in names], dtype=np.int64)
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=len(labels))
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return cls(labels=labels, order=order, first=first, counts=counts)

    def mean(self, x_in_order: np.ndarray) -> np.ndarray:
        """(conditions, ...) mean of (trials, ...) values already arranged in ``order``."""
        # float64 sums without a float64 copy of every trial (counts are often int32)
        sums = np.add.reduceat(np.asarray(x_in_order), self.first, axis=0, dtype=np.float64)
        return sums / self.counts.reshape((-1,) + (1,) * (sums.ndim - 1))


def condition_average(
    x: np.ndarray, conditions: np.ndarray
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Average trials of the same condition.

    Args:
        x: (trials, ...) per-trial values (e.g. (trials, time, units) rates, spikes/s).
        conditions: (trials,) condition label of each trial (compared as ``str``).

    Returns:
        averages: (conditions, ...) float64 mean over each condition's trials, same units as x.
        labels: the conditions in natural order (digit runs compared as numbers: "2" < "10").
        counts: (conditions,) trials in each condition.
    """
    x = np.asarray(x)
    if len(x) == 0 or len(x) != len(conditions):
        raise ValueError(
            f"x has {len(x)} trials and conditions {len(conditions)}; need the same, at least 1"
        )
    grouping = _Grouping.of(np.asarray(conditions))
    return grouping.mean(x[grouping.order]), grouping.labels, grouping.counts


def behavior_average(
    behavior: np.ndarray,
    behavior_times: np.ndarray,
    event_times: np.ndarray,
    time: np.ndarray,
    dt: float,
    conditions: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Sample behaviour at the centre of each bin of each trial and average per condition.

    Args:
        behavior: (samples, channels) behaviour, e.g. hand velocity (mm/s).
        behavior_times: (samples,) increasing time of each sample, seconds.
        event_times: (trials,) time of each trial's alignment event, seconds.
        time: (time,) start of each bin relative to the event, seconds.
        dt: bin width, seconds.
        conditions: (trials,) condition label of each trial.

    Returns:
        averages: (conditions, time, channels) condition-averaged behaviour, linearly
            interpolated at ``event + time + dt / 2`` (held constant beyond the samples).
        labels: the conditions, in the order of :func:`condition_average`.
    """
    behavior = np.asarray(behavior, dtype=np.float64)
    if behavior.ndim != 2 or behavior.shape[0] != len(behavior_times):
        raise ValueError(
            f"behavior must be (samples, channels) with one time per sample, got "
            f"{behavior.shape} and {len(behavior_times)} times"
        )
    centres = np.asarray(event_times, dtype=np.float64)[:, None] + np.asarray(time) + dt / 2
    per_trial = np.stack(
        [np.interp(centres, behavior_times, channel) for channel in behavior.T], axis=-1
    )
    averages, labels, _ = condition_average(per_trial, conditions)
    return averages, labels
