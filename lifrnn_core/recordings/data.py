"""What a lab's recording holds, with no file format in it: spike times per unit, the trial
table and the hand behaviour (:mod:`lifrnn.nwb` reads NWB files into one)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Recording", "Trials"]


@dataclass(frozen=True)
class Trials:
    """The trial table, one entry per trial; times in seconds on the recording's clock.

    Attributes:
        start_time: (trials,) start of each trial.
        stop_time: (trials,) end of each trial.
        events: event name (``move_onset_time``, ``go_cue_time``, ``target_on_time``, ...) ->
            (trials,) time of that event, NaN where the trial lacks it.
        condition: (trials,) condition label of each trial (str; e.g. ``"3/1"`` from the
            ``trial_type`` and ``trial_version`` columns).
        success: (trials,) bool, False for failed trials (all True when the file has no column).
        split: (trials,) str (``train``, ``val``, ``test``, ...) or None when the file has none.
    """

    start_time: np.ndarray
    stop_time: np.ndarray
    events: dict[str, np.ndarray]
    condition: np.ndarray
    success: np.ndarray
    split: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start_time)


@dataclass(frozen=True)
class Recording:
    """Spiking activity of recorded units during a reach task.

    Attributes:
        spike_times: one sorted (spikes,) float64 array of spike times (s) per unit.
        trials: the trial table.
        behavior: (samples, 2) hand velocity (e.g. mm/s), or None.
        behavior_times: (samples,) time (s) of each behaviour sample, or None.
        unit_ids: (units,) the file's identifiers of the units (default 0..units-1).
        heldout: (units,) bool, True for the units the file holds out (NLB's units column
            ``heldout``), or None when the file does not say.
    """

    spike_times: list[np.ndarray]
    trials: Trials
    behavior: np.ndarray | None = None
    behavior_times: np.ndarray | None = None
    unit_ids: np.ndarray | None = None
    heldout: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        """Number of recorded units."""
        return len(self.spike_times)
