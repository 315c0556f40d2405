"""Binned single trials (:class:`SpikeTrials`), how a recording is cut into them
(:class:`SpikeTrialsConfig`), the error when it cannot be, and the names of the splits and of
the reasons a trial is left out.

Shapes: ``(trials, time, neurons)``; times in seconds; counts are spikes per bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "EXCLUSION_REASONS",
    "NLB_VELOCITY_LAG",
    "SPLITS",
    "UNUSED_SPLIT",
    "SpikeTrials",
    "SpikeTrialsConfig",
    "SpikeTrialsError",
]

SPLITS = ("train", "val", "test")
"""Trial splits: models are fitted on ``train``, their regularisation chosen on ``val``, and they
are scored on ``test``."""


UNUSED_SPLIT = "none"
"""The split NLB's files give the trials no split uses (failed ones, for instance): left out."""


EXCLUSION_REASONS = (
    "missing_event",
    "failed",
    "unused_split",
    "window_outside_recording",
    "test_without_heldout",
)
"""Keys of ``SpikeTrials.excluded_trials``, in the order they are checked: a trial is counted
under the first reason that applies to it."""


NLB_VELOCITY_LAG = 0.1
"""Seconds by which NLB'21 decodes MC_Maze's hand velocity after the spikes (its ``lag``, 100 ms):
``SpikeTrialsConfig(behavior_lag=NLB_VELOCITY_LAG)`` gives the velocity NLB scores."""


class SpikeTrialsError(ValueError):
    """A recording that cannot be cut into scored single trials (422).

    Attributes:
        missing: what the recording lacks, in words (``"move_onset_time"``, ``"held-out
            neurons"``, ``"val trials"``, ...).
        minimum: the fewest needed, where a count falls short; None otherwise.
    """

    def __init__(self, message: str, *, missing: str, minimum: int | None = None) -> None:
        super().__init__(message)
        self.missing = missing
        self.minimum = minimum


@dataclass(frozen=True)
class SpikeTrialsConfig:
    """How a recording is cut into :class:`SpikeTrials` (NLB'21's MC_Maze defaults).

    Attributes:
        bin_width: seconds per bin (NLB: 5 ms).
        align_event: the trial event the window is aligned to.
        window: (start, stop) seconds around the event (NLB: -250 ms to +450 ms).
        forward: seconds after the window predicted by forward prediction (NLB: 200 ms).
        heldout_fraction: fraction of the neurons held out when the file does not say which
            (NLB MC_Maze: 45 of 182).
        val_fraction: fraction of the training trials kept for validation when the file has no
            ``val`` trials.
        test_fraction: fraction of the trials held out for testing when the file has no split.
        seed: draws the held-out neurons and the trial split when the file does not give them
            (from the data alone, so every model is scored on the same split).
        min_heldout: fewest held-out neurons a score is defined on.
        min_trials: fewest trials in each of train, val and test.
        behavior_lag: seconds by which ``SpikeTrials.behavior`` follows the spikes: bin ``k``
            holds the velocity at ``time[k] + behavior_lag`` (0: the window itself;
            :data:`NLB_VELOCITY_LAG` for NLB's velocity decoding).
    """

    bin_width: float = 0.005
    align_event: str = "move_onset_time"
    window: tuple[float, float] = (-0.25, 0.45)
    forward: float = 0.2
    heldout_fraction: float = 0.25
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    min_heldout: int = 2
    min_trials: int = 2
    behavior_lag: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bin_width) and self.bin_width > 0):
            raise ValueError(
                f"bin_width must be a positive number of seconds, got {self.bin_width}"
            )
        window = (float(self.window[0]), float(self.window[1]))
        object.__setattr__(self, "window", window)
        if not window[1] > window[0]:
            raise ValueError(f"window must have stop > start, got {window}")
        if self.n_time < 1:
            raise ValueError(f"window {window} is shorter than one bin of {self.bin_width} s")
        if not (math.isfinite(self.forward) and self.forward >= 0):
            raise ValueError(f"forward must be >= 0 seconds, got {self.forward}")
        for name in ("heldout_fraction", "val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if self.min_heldout < 1 or self.min_trials < 1:
            raise ValueError(
                f"min_heldout and min_trials must be >= 1, got {self.min_heldout} and "
                f"{self.min_trials}"
            )
        if not math.isfinite(self.behavior_lag):
            raise ValueError(f"behavior_lag must be a number of seconds, got {self.behavior_lag}")

    @property
    def n_time(self) -> int:
        """Bins in the window."""
        return round((self.window[1] - self.window[0]) / self.bin_width)

    @property
    def n_forward(self) -> int:
        """Bins after the window, for forward prediction."""
        return round(self.forward / self.bin_width)


@dataclass(frozen=True)
class SpikeTrials:
    """Binned single trials, held-in and held-out neurons, and the trial split.

    Attributes:
        heldin: (trials, time, n_heldin) spike counts of the held-in neurons in the window.
        heldout: (trials, time, n_heldout) spike counts of the held-out neurons in the window.
        heldin_forward: (trials, n_forward, n_heldin) counts in the bins after the window.
        heldout_forward: (trials, n_forward, n_heldout) counts in the bins after the window.
        behavior: (trials, time, 2) hand velocity in the window, or None when the file has none.
        condition: (trials,) condition label of each trial (str).
        split: (trials,) ``train``, ``val`` or ``test``.
        time: (time,) start of each bin, seconds relative to ``align_event``.
        bin_width: seconds per bin.
        heldin_units: (n_heldin,) index of each held-in neuron into the recording's units.
        heldout_units: (n_heldout,) index of each held-out neuron into the recording's units.
        trial_index: (trials,) index of each trial into the recording's trial table.
        split_from_file: True when the trial split was the file's own, False when drawn.
        heldout_from_file: True when the held-out neurons were the file's own choice.
        behavior_lag: seconds by which ``behavior`` follows the spikes (see
            :class:`SpikeTrialsConfig`).
        excluded_trials: reason (:data:`EXCLUSION_REASONS`) -> trials left out for it.
        split_rule: how the split came about: ``file`` (the file's train / val / test),
            ``file_val_drawn`` (the file's train and test; val drawn from its train trials),
            ``file_val_as_test`` (a file with train and val but no scorable test trials, as
            NLB's train files: its val trials are the test set, val drawn from its train
            trials) or ``drawn`` (all drawn by the seed).
    """

    heldin: np.ndarray
    heldout: np.ndarray
    heldin_forward: np.ndarray
    heldout_forward: np.ndarray
    behavior: np.ndarray | None
    condition: np.ndarray
    split: np.ndarray
    time: np.ndarray
    bin_width: float
    heldin_units: np.ndarray
    heldout_units: np.ndarray
    trial_index: np.ndarray
    split_from_file: bool = False
    heldout_from_file: bool = False
    behavior_lag: float = 0.0
    excluded_trials: dict[str, int] = field(default_factory=dict)
    split_rule: str = "drawn"

    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return int(self.heldin.shape[0])

    def mask(self, split: str) -> np.ndarray:
        """(trials,) bool: the trials of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.asarray(self.split == split)
