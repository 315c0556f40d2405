"""Writing a synthetic recording (:func:`write_nwb`), or any :class:`Recording` of a simulation
(:func:`write_recording_nwb`), as an NWB file in the MC_Maze layout, with the session metadata
NWB's best practices ask for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
from pynwb import NWBHDF5IO, H5DataIO, NWBFile, TimeSeries
from pynwb.file import Subject
from pynwb.misc import Units

from lifrnn_core.recordings import Recording

if TYPE_CHECKING:
    from lifrnn_core.synthetic_recordings import SyntheticRecording


SESSION_START = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
"""Start time recorded in synthetic files (a fixed date: the session is not a real one)."""

_TRIAL_COLUMNS = {
    "target_on_time": "time the reach target appeared (s)",
    "go_cue_time": "time of the go cue (s)",
    "move_onset_time": "time the hand started moving (s); NaN where it was not detected",
    "trial_type": "condition: reach direction index, 1-based",
    "trial_version": "condition variant (always 0 here)",
    "success": "whether the trial was completed successfully",
    "split": "train, val or test",
}


def _regular_rate(times: np.ndarray) -> float | None:
    """The sampling rate of ``times`` when they are evenly spaced, else None."""
    if len(times) < 2:
        return None
    steps = np.diff(times)
    step = float(np.median(steps))
    if step > 0 and np.allclose(steps, step, rtol=0, atol=1e-9 * max(1.0, float(times[-1]))):
        return float(f"{1.0 / step:.10g}")  # 1000.0, not 999.9999999999 from rounded steps
    return None


def _behaviour_series(
    name: str, data: np.ndarray, times: np.ndarray, unit: str, description: str
) -> TimeSeries:
    compressed = H5DataIO(data, compression="gzip")
    rate = _regular_rate(times)
    if rate is not None:
        return TimeSeries(
            name=name,
            data=compressed,
            unit=unit,
            rate=rate,
            starting_time=float(times[0]),
            description=description,
        )
    return TimeSeries(
        name=name, data=compressed, unit=unit, timestamps=times, description=description
    )


def _units_table(
    recording: Recording, description: str, resolution: float, session_end: float
) -> Units:
    """The units table of ``recording``: ``spike_times``, ``obs_intervals`` (the whole session)
    and ``heldout`` (where the recording marks held-out units), each column built from whole
    arrays (``Units.add_unit`` would hold every spike time as a Python float)."""
    n_units = recording.n_units
    ids = recording.unit_ids if recording.unit_ids is not None else np.arange(n_units)
    spike_times = VectorData(
        name="spike_times",
        description="the spike times for each unit in seconds",
        data=np.concatenate([np.asarray(t, dtype=np.float64) for t in recording.spike_times])
        if n_units
        else np.zeros(0),
    )
    observed = VectorData(
        name="obs_intervals",
        description="the observation intervals for each unit",
        data=np.tile([[0.0, session_end]], (n_units, 1)),
    )
    columns: list[VectorData] = [
        spike_times,
        VectorIndex(
            name="spike_times_index",
            data=np.cumsum([len(t) for t in recording.spike_times], dtype=np.int64),
            target=spike_times,
        ),
        observed,
        VectorIndex(name="obs_intervals_index", data=np.arange(1, n_units + 1), target=observed),
    ]
    if recording.heldout is not None:
        columns.append(
            VectorData(
                name="heldout",
                description="held out from models: the co-smoothing targets (NLB)",
                data=np.asarray(recording.heldout, dtype=bool),
            )
        )
    return Units(
        name="units",
        id=ElementIdentifiers(name="id", data=np.asarray(ids, dtype=np.int64)),
        columns=columns,
        description=description,
        resolution=resolution,
    )


@dataclass(frozen=True)
class SessionText:
    """What an NWB file says of the session it holds (its descriptions)."""

    session: str
    experiment: str
    units: str
    hand_velocity: str
    behaviour: str = "hand kinematics read out from the network"
    keywords: tuple[str, ...] = ("synthetic", "motor cortex", "reaching", "recurrent network")


def write_nwb(
    path: str | Path, synthetic: SyntheticRecording, *, identifier: str | None = None
) -> Path:
    """Write ``synthetic`` to ``path`` as an NWB file in the MC_Maze layout
    (:func:`write_recording_nwb`)."""
    from lifrnn_core.synthetic_recordings import SPIKE_CLOCK_HZ  # torch: only when writing

    white_noise = synthetic.latents == "white-noise"
    text = SessionText(
        session=(
            "Synthetic delayed-reach session made by lifrnn: spikes of neurons whose rates mix "
            + (
                "smoothed white-noise latents, with no network behind them"
                if white_noise
                else "the excitatory rates of a rate network fitted to reaches"
            )
        ),
        experiment=(
            f"{synthetic.n_conditions} conditions; latents of white noise locked to movement onset"
            if white_noise
            else f"{synthetic.n_conditions} reach directions; move onset aligned; free network "
            f"dynamics start {synthetic.lead} s before movement onset"
        ),
        units="simulated neurons: Poisson spikes of rates mixing the "
        + ("white-noise latents" if white_noise else "network's rates"),
        hand_velocity="hand velocity (x, y): "
        + ("a random readout of the latents" if white_noise else "the network's readout C r(x_E)"),
    )
    return write_recording_nwb(
        path,
        synthetic.recording,
        synthetic.condition_index,
        text,
        resolution=1.0 / SPIKE_CLOCK_HZ,
        identifier=identifier,
    )


def write_recording_nwb(
    path: str | Path,
    recording: Recording,
    condition_index: np.ndarray,
    text: SessionText,
    *,
    resolution: float,
    identifier: str | None = None,
) -> Path:
    """Write ``recording`` to ``path`` as an NWB file in the MC_Maze layout.

    The units table holds each neuron's spike times, its ``obs_intervals`` (the whole session)
    and, as NLB's files do, a ``heldout`` flag (where the recording marks held-out neurons): what
    ``nlb_tools.nwb_interface.NWBDataset`` needs to read the file. The trials table ``start_time``,
    ``stop_time``, ``target_on_time``, ``go_cue_time``, ``move_onset_time`` (NaN kept),
    ``trial_type`` (``condition_index`` + 1), ``trial_version`` (0), ``success`` and ``split``;
    ``processing/behavior`` the hand velocity ``hand_vel`` (m/s) and its integral ``hand_pos``
    (m) at the recording's behaviour times. Session metadata (subject, experimenter,
    institution, ...) is filled in so that nwbinspector finds nothing of importance CRITICAL or
    BEST_PRACTICE_VIOLATION. ``resolution``: seconds, the precision of the spike times.
    """
    path = Path(path)
    trials = recording.trials
    identifier = identifier or str(uuid.uuid4())
    nwbfile = NWBFile(
        session_description=text.session,
        identifier=identifier,
        session_start_time=SESSION_START,
        experimenter=["Synthetic, Data"],
        lab="lifrnn",
        institution="lifrnn (synthetic data, no institution)",
        experiment_description=text.experiment,
        keywords=list(text.keywords),
        subject=Subject(
            subject_id="synthetic-monkey",
            species="Macaca mulatta",
            sex="M",
            age="P8Y",
            description="a simulated subject: the recording is generated by a model",
        ),
    )
    nwbfile.units = _units_table(
        recording,
        text.units,
        resolution,
        session_end=float(trials.stop_time[-1]) if len(trials) else 0.0,
    )
    for name, description in _TRIAL_COLUMNS.items():
        nwbfile.add_trial_column(name=name, description=description)
    split = trials.split if trials.split is not None else np.full(len(trials), "train")
    for row in range(len(trials)):
        nwbfile.add_trial(
            start_time=float(trials.start_time[row]),
            stop_time=float(trials.stop_time[row]),
            target_on_time=float(trials.events["target_on_time"][row]),
            go_cue_time=float(trials.events["go_cue_time"][row]),
            move_onset_time=float(trials.events["move_onset_time"][row]),
            trial_type=int(condition_index[row]) + 1,
            trial_version=0,
            success=bool(trials.success[row]),
            split=str(split[row]),
        )
    if recording.behavior is not None and recording.behavior_times is not None:
        behavior = nwbfile.create_processing_module(name="behavior", description=text.behaviour)
        times = recording.behavior_times
        velocity = recording.behavior
        steps = np.diff(times, prepend=times[0])[:, None]
        position = np.cumsum(velocity * steps, axis=0)
        behavior.add(_behaviour_series("hand_vel", velocity, times, "m/s", text.hand_velocity))
        behavior.add(
            _behaviour_series(
                "hand_pos", position, times, "m", "hand position (x, y): the integral of hand_vel"
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path
