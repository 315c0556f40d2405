"""What lifrnn asks of a recording file: where its fields are (:class:`NWBLayout`, MC_Maze's
names by default), the limits of what it may declare, and the errors that refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LISTED = 200
"""Most column or series names a summary lists of one kind."""
MAX_TRIALS = 100_000
"""Most rows of a trials table (MC_Maze has 2,869 trials; a day of a few-second reaches fewer)."""
MAX_RECORDED_UNITS = 100_000
"""Most rows of a units table (MC_Maze has 182; several Neuropixels probes a few thousand)."""
MAX_SPIKES = 200_000_000
"""Most spike times of a units table (MC_Maze has a few million; 1,000 units firing at 10 Hz for
five hours 1.8e8)."""
MAX_SAMPLES = 100_000_000
"""Most samples of a behaviour series or its timestamps (1 kHz for a day is 8.6e7; MC_Maze's
hand velocity 1 kHz over about an hour)."""
MAX_DATASET_BYTES = 4 * 2**30
"""Most bytes one dataset that lifrnn reads may declare (uncompressed), unless the caller gives
its own limit: the default of ``LIFRNN_MAX_RECORDING_BYTES``, the largest recording stored."""
MAX_ELEMENT_BYTES = 1 << 16
"""Largest element of any dataset (a fixed-length string of a GB would be read whole by pynwb)."""
READ_CHUNK = 1 << 20
"""Most values the summary reads of a dataset at once."""


class RecordingFileError(ValueError):
    """A recording file that cannot be read, or lacks what is asked of it (422)."""


class RecordingTooLargeError(RecordingFileError):
    """A recording that declares more than the limits allow (413, as an upload's other sizes)."""


@dataclass(frozen=True)
class NWBLayout:
    """Where a recording's fields are in an NWB file; MC_Maze's names by default.

    Attributes:
        units_table: ``"units"`` (the file's units table) or ``"module/table"`` for a units
            table inside a processing module.
        spike_times: the ragged column of spike times (seconds) of the units table.
        start_time, stop_time: trial columns of each trial's start and end (seconds).
        conditions: trial columns whose values, joined by ``/``, label a trial's condition
            (``("trial_type", "trial_version")`` gives ``"3/1"``; one column gives ``"3"``).
        success: trial column of bool success flags; None: every trial counts as successful.
        split: trial column of the split (``train``, ``val``, ``test``); None: no split.
        behavior_module: processing module holding the behaviour.
        velocity: TimeSeries (samples, 2) of hand velocity in that module; None: none read.

    ``success``, ``split`` and ``velocity`` are optional: a file without them reads as all
    successful, without a split, without behaviour, as long as they carry the default names;
    a name set to something else must exist.
    """

    units_table: str = "units"
    spike_times: str = "spike_times"
    start_time: str = "start_time"
    stop_time: str = "stop_time"
    conditions: tuple[str, ...] = ("trial_type", "trial_version")
    success: str | None = "success"
    split: str | None = "split"
    behavior_module: str = "behavior"
    velocity: str | None = "hand_vel"

    @property
    def velocity_path(self) -> str | None:
        """``module/series`` of the hand velocity, or None."""
        return None if self.velocity is None else f"{self.behavior_module}/{self.velocity}"


_DEFAULT = NWBLayout()
