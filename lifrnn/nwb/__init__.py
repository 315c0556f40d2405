"""Recordings in NWB files (HDF5): checked, summarised, read into a :class:`Recording`, written.

Labs' recordings follow the layout of the Neural Latents Benchmark's MC_Maze (DANDI 000128): a
``units`` table with ``spike_times``; a ``trials`` table with ``start_time``, ``stop_time``, event
times (``move_onset_time``, ``go_cue_time``, ``target_on_time``), the condition (``trial_type``,
``trial_version``), ``success`` and ``split``; and ``processing/behavior`` with the TimeSeries
``hand_vel`` (samples, 2). :class:`NWBLayout` names what is read, with those names by default.

- :func:`inspect_nwb` judges a file and summarises it as JSON; an upload's stored header is that
  summary, so :func:`check_layout` can refuse a spec naming a column the file lacks at submit.
- :func:`read_nwb` reads spike times (and NLB's ``heldout`` flags of the units), the trial table
  and the hand velocity (``hand_vel``, else the derivative of ``hand_pos`` or ``cursor_pos``).
- :func:`write_nwb` writes a :class:`~lifrnn_core.synthetic_recordings.SyntheticRecording` in the
  MC_Maze layout, with the session metadata NWB's best practices ask for.

Nothing in a file is executed: pynwb reads the format's cached schema as data. A file is opened
by pynwb only after h5py has found no link or dataset that points outside it (HDF5 external links,
external storage, virtual datasets), which could otherwise make the server read another file of
its disk, and no dataset whose elements are larger than :data:`MAX_ELEMENT_BYTES` (pynwb reads
scalar datasets as it opens a file).

A small file can declare far more than it holds: HDF5 keeps chunks never written as a fill value,
and a compressed chunk of zeros takes a few bytes. So nothing is read before the declared size of
every dataset a summary or a reader touches is checked against the limits
(:data:`MAX_TRIALS`, :data:`MAX_RECORDED_UNITS`, :data:`MAX_SPIKES`, :data:`MAX_SAMPLES` and a
limit in bytes, the largest recording accepted), and the summary reads in chunks of at most
:data:`READ_CHUNK` values, or the one value it needs.

The package, by concept (each name is re-exported here, so ``lifrnn.nwb.X`` keeps working):

- ``layout``: :class:`NWBLayout`, the limits (``MAX_*``) and the errors;
- ``safety``: :func:`check_file_safety`, opening a file with pynwb only after it, and the
  declared sizes held to the limits before anything is read;
- ``summary``: :func:`inspect_nwb` (the summary, read in bounded chunks) and
  :func:`check_layout`;
- ``read``: :func:`read_nwb`;
- ``write``: :func:`write_nwb` and :func:`write_recording_nwb` (any :class:`Recording`, with
  its :class:`SessionText`).

Imports: h5py, hdmf, pynwb, numpy, :mod:`lifrnn.headers` and :mod:`lifrnn_core` (its
recordings) only; no database, web, ``api/`` or ``worker/`` imports.
"""

from lifrnn.nwb.layout import MAX_DATASET_BYTES as MAX_DATASET_BYTES
from lifrnn.nwb.layout import MAX_ELEMENT_BYTES as MAX_ELEMENT_BYTES
from lifrnn.nwb.layout import MAX_LISTED as MAX_LISTED
from lifrnn.nwb.layout import MAX_RECORDED_UNITS as MAX_RECORDED_UNITS
from lifrnn.nwb.layout import MAX_SAMPLES as MAX_SAMPLES
from lifrnn.nwb.layout import MAX_SPIKES as MAX_SPIKES
from lifrnn.nwb.layout import MAX_TRIALS as MAX_TRIALS
from lifrnn.nwb.layout import READ_CHUNK as READ_CHUNK
from lifrnn.nwb.layout import NWBLayout, RecordingFileError, RecordingTooLargeError
from lifrnn.nwb.read import POSITION_SERIES as POSITION_SERIES
from lifrnn.nwb.read import read_nwb
from lifrnn.nwb.safety import check_file_safety
from lifrnn.nwb.summary import check_layout, inspect_nwb
from lifrnn.nwb.write import SESSION_START as SESSION_START
from lifrnn.nwb.write import SessionText, write_nwb, write_recording_nwb

__all__ = [
    "NWBLayout",
    "RecordingFileError",
    "RecordingTooLargeError",
    "SessionText",
    "check_file_safety",
    "check_layout",
    "inspect_nwb",
    "read_nwb",
    "write_nwb",
    "write_recording_nwb",
]
